"""What the app does with jobs: submit a recipe or an evaluation, list jobs, cancel one. No Gradio here.

Every job is queued through `enqueue`, which writes the queued status, puts the task on the queue
and warns when no worker is running; `submit` is the whole transaction of a distillation (a job
folder, the uploads accepted into it, the recipe checked and queued), and leaves nothing behind
when the recipe is refused.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from core import settings
from core.artifact.folder import ModelFolder
from core.corpus.sources import SourceCatalogue
from core.corpus.uploads import Upload, accept_upload
from core.errors import DistilleryError
from core.evaluation.scoring import check_task_names
from core.evaluation.tasks import check_rows_per_task
from core.evaluation.verdict import Thresholds
from core.files import write_json
from core.memory import check_memory
from core.recipe import Recipe, validate_recipe
from jobs.folders import EVALUATION_REQUEST, RECIPE_FILE, evaluation_job_id, new_job_dir
from jobs.queue import huey
from jobs.status import TERMINAL, read_status, worker_alive, write_status
from jobs.tasks import evaluate_model_task, run_recipe_task

NO_WORKER = ("No worker is running: the job is queued and starts when a worker starts "
             "(`make run` or `python app.py` start one).")


def enqueue(job_id: str, task: Any, name: str, kind: str) -> dict[str, Any]:
    """The one way a job is queued: its queued status first (so a fast worker finds it), then the
    task; the status returned carries a warning when no worker is alive to run it."""
    write_status(job_id, state="queued", task_id=task.id, name=name, kind=kind, stage="queued", fraction=0.0,
                 message="waiting for a worker", submitted=time.time())
    huey.enqueue(task)
    status = dict(read_status(job_id) or {})
    if not worker_alive():
        status["warning"] = NO_WORKER
    return status


def submit(recipe: Recipe, catalogue: SourceCatalogue, uploads: Mapping[str, Sequence[Upload]] | None = None,
           ) -> dict[str, Any]:
    """Create the job folder, accept `uploads` (per domain) into it, check the recipe, queue it.

    Raises `DistilleryError` with nothing queued and no folder left when an upload or the recipe
    is refused, or when the recipe's estimated peak memory exceeds what this machine has free.
    """
    job_id, folder = new_job_dir(recipe.name)
    try:
        for domain, files in (uploads or {}).items():
            for upload in files:
                recipe.uploads.setdefault(domain, []).append(accept_upload(upload, folder, domain).to_dict())
        teacher = validate_recipe(recipe, catalogue, settings.teacher_dirs())  # a local teacher only from those folders
        check_memory(recipe, teacher)  # refused here, with the estimate, rather than killed mid-job
        write_json(folder / RECIPE_FILE, recipe.to_dict())  # a full disk is named as such (`DiskError`)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return enqueue(job_id, run_recipe_task.s(job_id, recipe.to_dict(), job_id), recipe.name or job_id, "distillation")


def submit_evaluation(model_id: str, limit: int | None = None, thresholds: dict[str, float] | None = None,
                      tasks: list[str] | None = None) -> dict[str, Any]:
    """Check, then queue an evaluation of a saved model. Raises `DistilleryError` (nothing queued)."""
    ModelFolder.open(model_id).check()  # refuses an unknown id, a path or a damaged folder
    Thresholds(**(thresholds or {})).validate()
    check_task_names(tasks)
    check_rows_per_task(limit)
    return queue_evaluation(model_id, {"limit": limit, "thresholds": thresholds or {}, "tasks": tasks})


def queue_evaluation(model_id: str, request: dict[str, Any]) -> dict[str, Any]:
    """A job folder with the request, and the evaluation queued (also used by a recipe's follow-up)."""
    job_id, folder = new_job_dir(model_id, evaluation_job_id(model_id))
    try:
        write_json(folder / EVALUATION_REQUEST, {"model_id": model_id, **request})
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return enqueue(job_id, evaluate_model_task.s(job_id, model_id, request), f"evaluate {model_id}", "evaluation")


def cancel(job_id: str) -> dict[str, Any]:
    status = read_status(job_id)
    if status is None:
        raise DistilleryError(f"There is no job '{job_id}'.")
    if status.get("state") in TERMINAL:
        return status
    huey.revoke_by_id(status["task_id"])
    if status.get("state") == "queued":  # never started: it will be skipped when dequeued
        return write_status(job_id, state="cancelled", message="Cancelled before it started.")
    return write_status(job_id, message="cancelling…", cancel_requested=True)


def job_folder(job_id: str) -> Path:
    root = settings.jobs_dir().resolve()
    folder = (root / job_id).resolve()
    if folder.parent != root or not folder.is_dir():
        raise DistilleryError(f"There is no job '{job_id}'.")
    return folder


def list_jobs(limit: int = 50) -> list[dict[str, Any]]:
    """Jobs, newest submitted first, in an order that does not change while they run.

    Ordered by the job's request file (the recipe or the evaluation request), written once when the
    job is submitted: the folder's own modification time moves with every file a job writes, so rows
    used to swap between refreshes. Only the `limit` newest statuses are read (the Jobs tab polls this).
    """
    requests = []
    for folder in settings.jobs_dir().iterdir():
        request = next((folder / n for n in (RECIPE_FILE, EVALUATION_REQUEST) if (folder / n).is_file()), None)
        if request is not None:
            requests.append((request.stat().st_mtime_ns, folder.name))
    newest = sorted(requests, reverse=True)[:limit]
    return [read_status(job_id) or {"job_id": job_id, "state": "unknown"} for _, job_id in newest]
