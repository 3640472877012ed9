"""The job layer against a real `huey_consumer` subprocess (the session fixture `consumer`)."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from typing import Any

import helpers
import pytest

from core import settings
from core.corpus.sources import load_catalogue
from core.corpus.uploads import Upload
from core.errors import DistilleryError
from core.methods.corpus import CorpusParams
from core.methods.training import TrainParams
from core.methods.vocabulary import VocabularyParams
from core.progress import StagePlan
from core.recipe import Recipe
from jobs.client import cancel, list_jobs, submit
from jobs.folders import EVALUATION_REQUEST, RECIPE_FILE
from jobs.queue import huey
from jobs.status import TERMINAL, read_status
from jobs.tasks import JobProgress, run_recipe_task


@pytest.fixture(scope="module")
def catalogue():
    return load_catalogue()  # HF_HUB_OFFLINE=1: the local corpus


def poll(job_id: str, until: Callable[[dict[str, Any]], bool], timeout: float, interval: float = 0.2
         ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Read the status until `until(status)` holds; returns the last status and every one seen."""
    seen: list[dict[str, Any]] = []
    deadline = time.time() + timeout
    while time.time() < deadline:
        status = read_status(job_id)
        assert status is not None, f"job {job_id} has no status"
        seen.append(status)
        if until(status):
            return status, seen
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s; last status: {seen[-1] if seen else None}")


def hidden_model_folders() -> list[str]:
    return [p.name for p in settings.models_dir().iterdir() if p.name.startswith(".")]


def job_folders() -> set[str]:
    return {p.name for p in settings.jobs_dir().iterdir()}


# --- refused before anything is queued ---------------------------------------------------------


def test_all_zero_shares_are_refused_and_nothing_is_queued(catalogue):
    before_jobs, before_pending = job_folders(), huey.pending_count()
    recipe = helpers.small_recipe("zero", shares={"academic": 0, "web": 0, "conversational": 0,
                                                  "code": 0, "domain-specific": 0})
    with pytest.raises(DistilleryError, match="zero"):
        submit(recipe, catalogue)
    assert job_folders() == before_jobs
    assert huey.pending_count() == before_pending


def test_pca_dims_above_the_teacher_dimension_is_refused(catalogue):
    before_jobs, before_pending = job_folders(), huey.pending_count()
    recipe = helpers.small_recipe("too-wide", distill=VocabularyParams(pca_dims=1000, max_vocabulary_size=300))
    with pytest.raises(DistilleryError, match="384"):
        submit(recipe, catalogue)
    assert job_folders() == before_jobs
    assert huey.pending_count() == before_pending


def write_upload(folder, name: str = "notes.txt", content: bytes | None = None):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(content if content is not None else
                     "".join(f"Line {i} of the notes, long enough to keep.\n" for i in range(20)).encode())
    return path


def test_submit_accepts_uploads_into_the_job_folder_it_creates(catalogue, tmp_path):
    """Queued (no worker serves this test), then cancelled before it starts: the worker would skip it."""
    before_pending = huey.pending_count()
    upload = write_upload(tmp_path / "incoming")
    status = submit(helpers.small_recipe("with-upload"), catalogue, {"web": [Upload(upload)]})
    try:
        job_id = status["job_id"]
        assert status["state"] == "queued" and status["kind"] == "distillation" and status["name"] == "with-upload"
        folder = settings.jobs_dir() / job_id
        copied = folder / "uploads" / "web" / "notes.txt"
        assert copied.read_bytes() == upload.read_bytes()
        saved = json.loads((folder / RECIPE_FILE).read_text())
        assert [u["location"] for u in saved["uploads"]["web"]] == [str(copied.resolve())]
        assert huey.pending_count() == before_pending + 1
        assert any(j["job_id"] == job_id for j in list_jobs())
    finally:
        assert cancel(status["job_id"])["state"] == "cancelled"
    assert huey.is_revoked(status["task_id"])


@pytest.mark.parametrize("refusal", ["upload", "recipe"])
def test_a_refused_upload_or_recipe_leaves_no_job_folder(catalogue, tmp_path, refusal):
    before_jobs, before_pending = job_folders(), huey.pending_count()
    good = write_upload(tmp_path / "incoming", "good.txt")
    binary = write_upload(tmp_path / "incoming", "image.txt", b"\x89PNG\x00\x00binary" * 50)
    if refusal == "upload":  # the second upload is refused after the first was accepted into the folder
        recipe, uploads, expected = helpers.small_recipe("bad-upload"), {"web": [Upload(good), Upload(binary)]}, "binary"
    else:  # the uploads are accepted, then the recipe is refused
        recipe = helpers.small_recipe("bad-recipe", corpus_size=0)
        uploads, expected = {"web": [Upload(good)]}, "at least 1 text"
    with pytest.raises(DistilleryError, match=expected):
        submit(recipe, catalogue, uploads)
    assert job_folders() == before_jobs
    assert huey.pending_count() == before_pending


def corpus_recipe(name: str, **training) -> Recipe:
    return helpers.small_recipe(name, method="corpus", distill=CorpusParams(pca_dims=64, max_vocabulary_size=300,
                                                                          training=TrainParams(**training)))


def test_submit_accepts_pair_files_into_the_job_folder_and_names_them_in_the_recipe(catalogue, tmp_path):
    pairs = write_upload(tmp_path / "incoming", "my pairs.tsv",
                         "".join(f"question {i} about the network\tanswer {i} about routing\n" for i in range(5)).encode())
    status = submit(corpus_recipe("with-pairs", pair_weight=0.05), catalogue, pair_uploads=[pairs])
    try:
        folder = settings.jobs_dir() / status["job_id"]
        saved = json.loads((folder / RECIPE_FILE).read_text())
        assert saved["distill"]["pair_files"] == ["uploads/pairs/my_pairs.tsv"]  # inside the job's folder
        assert (folder / "uploads" / "pairs" / "my_pairs.tsv").read_bytes() == pairs.read_bytes()
    finally:
        assert cancel(status["job_id"])["state"] == "cancelled"


@pytest.mark.parametrize("content, expected", [
    (b"\x89PNG\x00\x00binary" * 50, "binary"),
    (b"", "is empty"),
    (b"only one column\nand another line\n", "holds no usable pair: expected two tab-separated columns"),
])
def test_a_refused_pair_file_leaves_no_job_folder(catalogue, tmp_path, content, expected):
    before_jobs, before_pending = job_folders(), huey.pending_count()
    bad = write_upload(tmp_path / "incoming", "pairs.tsv", content)
    with pytest.raises(DistilleryError, match=expected):
        submit(corpus_recipe("bad-pairs", pair_weight=0.05), catalogue, pair_uploads=[bad])
    assert job_folders() == before_jobs
    assert huey.pending_count() == before_pending


def test_pair_files_need_the_corpus_method_and_a_pair_weight(catalogue, tmp_path):
    before_jobs, before_pending = job_folders(), huey.pending_count()
    pairs = write_upload(tmp_path / "incoming", "pairs.csv", b"a question,its answer\nanother one,another answer\n")
    with pytest.raises(DistilleryError, match="Only the corpus method trains on text pairs"):
        submit(helpers.small_recipe("vocabulary-pairs"), catalogue, pair_uploads=[pairs])
    with pytest.raises(DistilleryError, match="pair loss weight is 0"):
        submit(corpus_recipe("weightless-pairs"), catalogue, pair_uploads=[pairs])
    assert job_folders() == before_jobs
    assert huey.pending_count() == before_pending


def test_an_evaluation_is_queued_with_its_request_and_refused_for_unknown_models(tmp_path):
    from core.artifact.folder import ModelFolder
    from jobs.client import submit_evaluation

    before_jobs, before_pending = job_folders(), huey.pending_count()
    for bad in ("no-such-model", "../etc"):
        with pytest.raises(DistilleryError, match="no finished model"):
            submit_evaluation(bad)
    assert job_folders() == before_jobs and huey.pending_count() == before_pending

    model_id = f"queued-evaluation-{tmp_path.name}"
    ModelFolder.create(helpers.tiny_static_model(), helpers.tiny_record(model_id), ["a text"],
                       settings.models_dir() / model_id)
    try:
        with pytest.raises(DistilleryError, match="at least 10"):
            submit_evaluation(model_id, limit=3)
        with pytest.raises(DistilleryError, match="viable ≤ optimal"):
            submit_evaluation(model_id, thresholds={"viable_retention": 0.95})
        assert job_folders() == before_jobs and huey.pending_count() == before_pending
        status = submit_evaluation(model_id, limit=20, tasks=["MRPC"])
        assert status["state"] == "queued" and status["kind"] == "evaluation" and status["name"] == f"evaluate {model_id}"
        request = json.loads((settings.jobs_dir() / status["job_id"] / EVALUATION_REQUEST).read_text())
        assert request == {"model_id": model_id, "limit": 20, "thresholds": {}, "tasks": ["MRPC"], "suite": "en"}
        assert huey.pending_count() == before_pending + 1
        assert cancel(status["job_id"])["state"] == "cancelled"
    finally:
        shutil.rmtree(settings.models_dir() / model_id)

    # No suite named (the Jobs tab's button): the suite of the model's corpus language.
    french_id = f"queued-french-evaluation-{tmp_path.name}"
    french = helpers.tiny_record(french_id, recipe={**helpers.small_recipe(french_id).to_dict(), "language": "fr"})
    ModelFolder.create(helpers.tiny_static_model(), french, ["un texte"], settings.models_dir() / french_id)
    try:
        status = submit_evaluation(french_id, limit=20)
        request = json.loads((settings.jobs_dir() / status["job_id"] / EVALUATION_REQUEST).read_text())
        assert request["suite"] == "fr" and request["tasks"] is None
        assert cancel(status["job_id"])["state"] == "cancelled"
    finally:
        shutil.rmtree(settings.models_dir() / french_id)


def test_cancelling_an_unknown_job_is_refused():
    with pytest.raises(DistilleryError, match="no job"):
        cancel("no-such-job")


def test_job_progress_cancels_until_the_model_is_saved():
    """A revoked task stops at the next progress call, but not once its model folder is in place."""
    from core.errors import Cancelled

    task = run_recipe_task.s("progress-probe", {}, "progress-probe")
    progress = JobProgress("progress-probe", task, StagePlan.of([("distill", 1.0), ("index", 1.0), ("save", 1.0)]))
    progress("distill", 0.5, "half way")
    assert read_status("progress-probe")["stage"] == "distill"
    huey.revoke_by_id(task.id)
    try:
        with pytest.raises(Cancelled):
            progress("index", 0.5)
        with pytest.raises(Cancelled):
            progress("save", 0.0)
        progress("save", 1.0, "saved")  # too late to cancel: reporting it must not undo a saved model
        assert read_status("progress-probe")["stage"] == "save"
    finally:
        huey.restore_by_id(task.id)


# --- a job that runs to the end ----------------------------------------------------------------


@pytest.mark.slow  # the consumer runs a distillation
def test_job_runs_to_done_with_progress(consumer, catalogue):
    from model2vec import StaticModel

    submitted = submit(helpers.small_recipe("jobs-done"), catalogue)
    job_id = submitted["job_id"]
    assert submitted["state"] in ("queued", "running")
    assert "warning" not in submitted  # the consumer's heartbeat is visible

    final, seen = poll(job_id, lambda s: s["state"] in TERMINAL, timeout=180)
    assert final["state"] == "done", final
    running = [s for s in seen if s["state"] == "running" and s.get("stage") and 0 < s.get("fraction", 0) < 1]
    assert running, f"no intermediate progress seen in {len(seen)} polls"
    assert {s["stage"] for s in running} & {"corpus", "vocabulary", "distill", "index", "save"}
    assert final["model_id"] == job_id
    assert {"corpus", "distill"} <= set(final["stages"])
    # one overall bar across the job: it never moves back, it fills, and the list of stages is complete
    overall = [s["overall"] for s in seen if s["state"] == "running" and "overall" in s]
    assert overall == sorted(overall) and 0 < overall[len(overall) // 2] < 1, overall
    assert final["overall"] == 1.0 and final["eta"] == 0.0
    assert [name for name, _, _ in final["steps"]] == ["corpus", "vocabulary", "distill", "index", "save"]
    assert {state for _, state, _ in final["steps"]} == {"done"}
    boards = [s["steps"] for s in seen if s["state"] == "running" and s.get("steps")]
    assert any([state for _, state, _ in b].count("running") == 1 and b[-1][1] == "waiting" for b in boards), boards

    folder = settings.models_dir() / job_id
    assert folder.is_dir()
    model = StaticModel.from_pretrained(str(folder))
    assert model.encode(["hello there"], use_multiprocessing=False).shape == (1, 64)
    assert hidden_model_folders() == []

    # reads never consume: the same state, twice, and the job is listed
    assert read_status(job_id)["state"] == read_status(job_id)["state"] == "done"
    assert any(j["job_id"] == job_id and j["state"] == "done" for j in list_jobs())
    # cancelling a finished job changes nothing
    assert cancel(job_id)["state"] == "done"
    assert folder.is_dir()


# --- cancellation ------------------------------------------------------------------------------


@pytest.mark.slow  # the consumer runs (part of) a distillation
def test_cancel_while_distilling_and_while_queued(consumer, catalogue):
    slow = helpers.small_recipe("jobs-cancel", corpus_size=3000,
                                distill=VocabularyParams(pca_dims=64, max_vocabulary_size=3000, min_frequency=2))
    job_id = submit(slow, catalogue)["job_id"]
    # a second job waits behind the first (one worker) and is cancelled before it starts
    queued_id = submit(helpers.small_recipe("jobs-cancel-queued"), catalogue)["job_id"]

    poll(job_id, lambda s: s.get("stage") == "distill" or s["state"] in TERMINAL, timeout=120, interval=0.1)
    assert read_status(queued_id)["state"] == "queued"
    assert cancel(queued_id)["state"] == "cancelled"

    requested = cancel(job_id)
    assert requested.get("cancel_requested") is True
    final, _ = poll(job_id, lambda s: s["state"] in TERMINAL, timeout=60)
    assert final["state"] == "cancelled", final

    assert not (settings.models_dir() / job_id).exists()
    assert hidden_model_folders() == []

    # the worker skips the revoked queued job: it never runs and never makes a model
    deadline = time.time() + 20
    while huey.pending_count() and time.time() < deadline:
        time.sleep(0.2)
    assert huey.pending_count() == 0
    time.sleep(1.0)
    assert read_status(queued_id)["state"] == "cancelled"
    assert not (settings.models_dir() / queued_id).exists()
    assert not (settings.jobs_dir() / queued_id / "corpus").exists()


def test_evaluate_when_saved_judges_a_student_on_its_corpus_language() -> None:
    from core.recipe import Recipe
    from jobs.tasks import follow_up_request

    assert follow_up_request(Recipe(evaluation_rows=50)) == {"limit": 50, "suite": "en"}
    assert follow_up_request(Recipe(language="fr"))["suite"] == "fr"
    assert follow_up_request(Recipe(language="both"))["suite"] == "both"
