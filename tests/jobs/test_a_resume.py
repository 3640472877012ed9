"""Resuming a job whose worker was killed (SIGKILL), by hand and once automatically.

Real consumers, started and killed by this module (so, like test_a_worker_killed.py, it runs before
the session `consumer` starts: conftest.py's RUNS_FIRST). They run with `DISTILLERY_SHARD_ROWS`
small, so a tiny corpus spans several featurization shards and a kill can land between two of them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import helpers
import numpy as np
import pytest

from core import settings
from core.artifact.folder import ModelFolder
from core.corpus.sources import load_catalogue
from core.errors import DistilleryError
from core.methods.corpus import CorpusParams
from core.methods.training import TrainParams
from core.recipe import Recipe
from jobs.client import resume, submit
from jobs.folders import RECIPE_FILE, new_job_dir
from jobs.queue import huey
from jobs.recovery import RETRY_MARK, SCAN_SECONDS, dead_jobs
from jobs.status import STALE_AFTER, WORKER_KEY, read_status, worker_alive, write_status
from jobs.worker import start_consumer, stop_consumer, wait_for_worker

SHARD_ROWS = 128  # a multiple of the CPU teacher batch (64): shard boundaries never change a batch
CORPUS = 600  # 5 shards


@pytest.fixture(autouse=True)
def no_shard_library(monkeypatch):
    """Each job here embeds its own shards: kept across jobs (`ShardLibrary`), the second job on this
    corpus would link them all before a kill could land in its teacher pass."""
    monkeypatch.setenv("DISTILLERY_SHARD_LIBRARY", "off")


def corpus_recipe(name: str) -> Recipe:
    return helpers.small_recipe(name, corpus_size=CORPUS, method="corpus",
                                distill=CorpusParams(pca_dims=32, max_vocabulary_size=100, min_frequency=2,
                                                     training=TrainParams(epochs=2)))


@contextmanager
def own_consumer(data_dir: Path, retries: int) -> Iterator[subprocess.Popen]:
    """A consumer of this module's own (never beside another one), stopped or killed by the end."""
    assert not worker_alive(), "another consumer serves this test queue"
    log = data_dir / "resume-consumer.log"
    process = start_consumer(log, env={"DISTILLERY_SHARD_ROWS": str(SHARD_ROWS),
                                       "DISTILLERY_AUTO_RETRIES": str(retries)})
    try:
        assert wait_for_worker(60), log.read_text()
        yield process
    finally:
        stop_consumer(process)  # a no-op once killed
        huey.get(WORKER_KEY)  # pops its last beat: the next consumer (or module) sees no worker


def kill(process: subprocess.Popen) -> None:
    """SIGKILL the consumer and its worker process: no clean-up of any kind."""
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(10)
    huey.get(WORKER_KEY)


def wait_for(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def shards(job_id: str) -> list[Path]:
    return sorted((settings.jobs_dir() / job_id / "corpus-method" / "targets").glob("targets_*.npy"))


def submit_and_kill_in_featurize(data_dir: Path, retries: int) -> tuple[str, int]:
    """A corpus job killed once its first featurization shard is written; returns it and the shards kept."""
    with own_consumer(data_dir, retries) as process:
        job_id = submit(corpus_recipe("resume"), load_catalogue())["job_id"]
        wait_for(lambda: shards(job_id), 240, "the first featurization shard")
        kill(process)
    kept = len(shards(job_id))
    assert 1 <= kept < -(-CORPUS // SHARD_ROWS), f"killed too late: {kept} shards"
    return job_id, kept


def test_a_killed_job_resumes_reusing_its_shards_and_equals_an_uninterrupted_run(data_dir, tmp_path, monkeypatch):
    from model2vec import StaticModel

    from core.pipeline import run_recipe

    job_id, kept = submit_and_kill_in_featurize(data_dir, retries=0)
    status = wait_for(lambda: (s := read_status(job_id))["state"] == "interrupted" and s, STALE_AFTER + 15,
                      "the job to read as interrupted")
    assert "Resume it" in status["error"]

    queued = resume(job_id)
    assert queued["state"] == "queued" and queued["resumes"] == 1 and "resumed" in queued["message"]
    with pytest.raises(DistilleryError, match="is queued"):
        resume(job_id)
    with own_consumer(data_dir, retries=0):
        status = wait_for(lambda: (s := read_status(job_id))["state"] not in ("queued", "running") and s, 300,
                          "the resumed job to end")
    assert status["state"] == "done", status

    record = ModelFolder.open(job_id).record
    texts = record.corpus["size"]
    # Only the missing shards went through the teacher: the kept ones were read back.
    assert record.training["featurize"] == {"shards": -(-texts // SHARD_ROWS), "reused_shards": kept,
                                               "texts_embedded": texts - kept * SHARD_ROWS}
    with pytest.raises(DistilleryError, match=f"is done: its model is saved as '{job_id}'"):
        resume(job_id)

    # The same recipe and seed, uninterrupted (in this process), gives the same vectors.
    monkeypatch.setenv("DISTILLERY_SHARD_ROWS", str(SHARD_ROWS))
    recipe = Recipe.from_dict(json.loads((settings.jobs_dir() / job_id / RECIPE_FILE).read_text()))
    reference = run_recipe(recipe, tmp_path / "job", tmp_path / "model")
    assert reference.training["featurize"]["reused_shards"] == 0
    resumed = np.asarray(StaticModel.from_pretrained(settings.models_dir() / job_id).embedding)
    uninterrupted = np.asarray(StaticModel.from_pretrained(tmp_path / "model").embedding)
    assert np.array_equal(resumed, uninterrupted)


def test_a_worker_death_is_retried_once_automatically_and_not_twice(data_dir):
    job_id, _ = submit_and_kill_in_featurize(data_dir, retries=1)
    first_worker = read_status(job_id)["worker"]
    others = set(dead_jobs()) - {job_id}  # a retrying consumer would run them too (conftest's RUNS_FIRST order)
    assert not others, f"jobs of other tests are dead on this queue: {others}"
    folder = settings.jobs_dir() / job_id

    with own_consumer(data_dir, retries=1) as process:  # finds the dead job when it starts
        status = wait_for(lambda: (s := read_status(job_id))["state"] == "running"
                          and s.get("worker") not in (None, first_worker) and s, STALE_AFTER + 30,
                          "the automatic retry to run")
        assert status["auto_retries"] == 1 and (folder / f"{RETRY_MARK}1").exists()
        kill(process)  # dies again

    with own_consumer(data_dir, retries=1):
        wait_for(lambda: read_status(job_id)["state"] == "interrupted", STALE_AFTER + 15, "the job to read as interrupted")
        time.sleep(2 * SCAN_SECONDS)  # two scans of the new worker: it leaves the job alone
        assert read_status(job_id)["state"] == "interrupted"
        assert not (folder / f"{RETRY_MARK}2").exists() and huey.pending_count() == 0
    assert "Resume it" in read_status(job_id)["error"]  # by hand it still can be


@pytest.fixture
def job_folder() -> Iterator[str]:
    job_id, folder = new_job_dir("not-resumable")
    (folder / RECIPE_FILE).write_text(json.dumps(helpers.small_recipe("not-resumable").to_dict()))
    yield job_id
    write_status(job_id, state="cancelled")


@pytest.mark.parametrize(("fields", "reason"), [
    ({"state": "done", "model_id": "m-1"}, "is done: its model is saved as 'm-1'"),
    ({"state": "cancelled"}, "was cancelled"),
    ({"state": "failed", "error": "The corpus is empty."}, r"failed \(The corpus is empty.\); it was refused"),
    ({"state": "queued"}, "is queued"),
    ({"state": "running", "worker": "elsewhere:1"}, "is running"),
])
def test_resume_is_refused_with_the_reason(job_folder, fields, reason):
    write_status(job_folder, **fields)
    with pytest.raises(DistilleryError, match=reason):
        resume(job_folder)
    with pytest.raises(DistilleryError, match="no job"):
        resume("no-such-job")


def test_only_a_running_job_whose_worker_is_gone_counts_as_dead(job_folder):
    import socket

    gone = subprocess.Popen(["true"])
    gone.wait()
    dead_worker = f"{socket.gethostname()}:{gone.pid}"
    write_status(job_folder, state="failed", error="refused", worker=dead_worker)  # a refusal: never retried
    assert job_folder not in dead_jobs()
    write_status(job_folder, state="running", worker=f"{socket.gethostname()}:{os.getppid()}")
    assert job_folder not in dead_jobs()  # its process exists, its status is fresh
    write_status(job_folder, state="running", worker=dead_worker)
    assert job_folder in dead_jobs()


def test_a_job_killed_after_its_model_was_saved_resumes_as_done(job_folder):
    from jobs.status import _key

    huey.put(_key(job_folder), {"job_id": job_folder, "state": "running", "updated": time.time() - 60})
    assert read_status(job_folder)["state"] == "interrupted"
    (settings.models_dir() / job_folder).mkdir()  # models are renamed into place whole: there means complete
    try:
        status = resume(job_folder)
        assert status["state"] == "done" and status["model_id"] == job_folder and huey.pending_count() == 0
    finally:
        (settings.models_dir() / job_folder).rmdir()
