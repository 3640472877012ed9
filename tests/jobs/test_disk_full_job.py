"""A job whose writes the disk refuses: it fails with a message naming the folder and the size, and
nothing already saved is damaged, and no half-written corpus or model is ever visible.

The fault is real and needs no root: the consumer (the real `huey_consumer -k process`, on a data
folder of its own) runs under `RLIMIT_FSIZE`, so the kernel refuses every write past 8 MB in any
file (EFBIG; SIGXFSZ is ignored, as it must be for the write to return the error instead of killing
the worker). That is what a small, nearly full filesystem does to the first big file; huey's SQLite
queue stays far below it. One job fails writing its model (31 MB of float32 weights), one writing
its corpus (45,000 texts, about 11 MB), each after saved models and a finished corpus are in place.
"""

from __future__ import annotations

import hashlib
import os
import re
import resource
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import helpers
import pytest
from huey import SqliteHuey
from model2vec import StaticModel

from core.artifact.folder import ModelFolder
from core.methods.vocabulary import VocabularyParams
from jobs.queue import huey
from jobs.status import TERMINAL, WORKER_KEY, _key
from jobs.tasks import run_recipe_task
from jobs.worker import consumer_command, stop_consumer

pytestmark = pytest.mark.slow  # a consumer of its own, two jobs

LIMIT = 8_000_000  # bytes per file; SQLite's write-ahead log tops out near 4 MB before a checkpoint
SAVED = ("saved-one", "saved-two")


def _limited() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT, LIMIT))


@pytest.fixture(scope="module")
def limited(tmp_path_factory):
    """(data folder, its queue) served by a consumer that may write no file past `LIMIT` bytes."""
    data = Path(tempfile.mkdtemp(prefix="distillery-disk-full-"))
    for i, model_id in enumerate(SAVED):
        ModelFolder.create(helpers.tiny_static_model(seed=i), helpers.tiny_record(model_id), ["a text"],
                           data / "models" / model_id)
    queue = SqliteHuey("distillery", filename=str(data / "queue.db"), results=True)
    log = data / "consumer.log"
    env = {**os.environ, "DISTILLERY_DATA_DIR": str(data)}
    with open(log, "ab") as out:
        process = subprocess.Popen(consumer_command(), cwd=Path(__file__).resolve().parents[2], stdout=out,
                                   stderr=subprocess.STDOUT, env=env, start_new_session=True, preexec_fn=_limited)
    try:
        deadline = time.time() + 60
        while queue.get(WORKER_KEY, peek=True) is None:
            assert time.time() < deadline and process.poll() is None, log.read_text()
            time.sleep(0.25)
        yield data, queue
    finally:
        stop_consumer(process)
        shutil.rmtree(data, ignore_errors=True)


def _fingerprints(models: Path) -> dict[str, str]:
    return {str(p.relative_to(models)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(models.rglob("*")) if p.is_file()}


def _run(data: Path, queue: SqliteHuey, job_id: str, recipe) -> dict:
    (data / "jobs" / job_id).mkdir(parents=True)
    task = run_recipe_task.s(job_id, recipe.to_dict(), job_id)
    queue.storage.enqueue(huey.serialize_task(task), task.priority)  # the session's task, this folder's queue
    deadline = time.time() + 240
    while time.time() < deadline:
        status = queue.get(_key(job_id), peek=True) or {}
        if status.get("state") in TERMINAL:
            return status
        time.sleep(0.5)
    raise AssertionError(f"the job never ended: {status}\n{(data / 'consumer.log').read_text()[-3000:]}")


def _hidden(folder: Path) -> list[str]:
    return [str(p) for p in folder.rglob(".*")]


def _check_saved_models(data: Path, before: dict[str, str]) -> None:
    assert _fingerprints(data / "models") == before  # not one byte of a saved model changed
    assert sorted(p.name for p in (data / "models").iterdir()) == sorted(SAVED)  # no partial, no temporary
    for model_id in SAVED:
        assert StaticModel.from_pretrained(str(data / "models" / model_id)).encode(["still loads"]).shape == (1, 8)


def test_a_model_too_big_for_the_disk_fails_the_job_and_leaves_no_part(limited) -> None:
    data, queue = limited
    before = _fingerprints(data / "models")
    recipe = helpers.small_recipe("disk-full-model", distill=VocabularyParams(
        pca_dims=256, quantize_to="float32", max_vocabulary_size=300, min_frequency=2))  # 31 MB of weights
    status = _run(data, queue, "disk-full-model", recipe)

    assert status["state"] == "failed", status
    error = status["error"]
    assert error.startswith(f"Could not write to {data / 'models'}: a file grew past the largest file "
                            f"this process may write (8.0 MB); the write needed about "), error
    assert re.search(r"needed about 3\d\.\d MB\.", error), error  # (30,522 + the words added) × 256 × 4 bytes
    assert status["stage"] == "save"
    _check_saved_models(data, before)
    corpus = data / "jobs" / "disk-full-model" / "corpus"  # written before the save: whole, and kept
    assert sorted(p.name for p in corpus.iterdir()) == ["corpus.jsonl", "manifest.json"]
    assert _hidden(data / "jobs") == [] and _hidden(data / "models") == []


def test_a_corpus_too_big_for_the_disk_fails_the_job_and_leaves_no_part(limited) -> None:
    data, queue = limited
    before = _fingerprints(data / "models")
    status = _run(data, queue, "disk-full-corpus", helpers.small_recipe("disk-full-corpus", corpus_size=45_000))

    assert status["state"] == "failed", status
    corpus = data / "jobs" / "disk-full-corpus" / "corpus"
    assert status["error"].startswith(f"Could not write to {corpus}: a file grew past the largest file"), status
    assert "the write needed at least 8.0 MB" in status["error"]
    assert not corpus.exists() or list(corpus.iterdir()) == []  # no corpus file, no manifest, no temporary
    assert not (data / "models" / "disk-full-corpus").exists()
    _check_saved_models(data, before)
    assert _hidden(data / "jobs") == [] and _hidden(data / "models") == []
    assert (data / "queue.db").stat().st_size < LIMIT  # the queue itself never met the limit
