"""What the app does with jobs: submit a recipe or an evaluation, list jobs, cancel one. No Gradio here.

Every job is queued through `enqueue`, which writes the queued status, puts the task on the queue
and warns when no worker is running; `submit` is the whole transaction of a distillation (a job
folder, the uploads accepted into it, the recipe checked and queued), and leaves nothing behind
when the recipe is refused.
"""

from __future__ import annotations

import json
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
from core.keyring import forget, holding, seal_into
from core.memory import check_memory
from core.public import apply_public_policy
from core.recipe import Recipe, validate_recipe
from jobs.folders import EVALUATION_REQUEST, RECIPE_FILE, evaluation_job_id, new_job_dir
from jobs.queue import huey
from jobs.status import TERMINAL, placed, read_status, worker_alive, write_status
from jobs.tasks import evaluate_model_task, run_recipe_task

NO_WORKER = ("No worker is running: the job is queued and starts when a worker starts "
             "(`make run` or `python app.py` start one).")


def enqueue(job_id: str, task: Any, name: str, kind: str, message: str = "waiting for a worker") -> dict[str, Any]:
    """The one way a job is queued: its queued status first (so a fast worker finds it), then the
    task; the status returned carries a warning when no worker is alive to run it."""
    write_status(job_id, state="queued", task_id=task.id, name=name, kind=kind, stage="queued", fraction=0.0,
                 message=message, submitted=time.time())
    huey.enqueue(task)
    status = dict(read_status(job_id) or {})
    if not worker_alive():
        status["warning"] = NO_WORKER
    return status


def submit(recipe: Recipe, catalogue: SourceCatalogue, uploads: Mapping[str, Sequence[Upload]] | None = None,
           keys: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Create the job folder, accept `uploads` (per domain) into it, check the recipe, queue it.

    `keys` (id -> clear key, `core.keyring`) are keys typed in the page: they are held while the
    recipe is checked (an endpoint teacher is probed) and reach the worker sealed, never in clear.
    Raises `DistilleryError` with nothing queued and no folder left when an upload or the recipe
    is refused, or when the recipe's estimated peak memory exceeds what this machine has free.
    """
    job_id, folder = new_job_dir(recipe.name)
    try:
        for domain, files in (uploads or {}).items():
            for upload in files:
                recipe.uploads.setdefault(domain, []).append(accept_upload(upload, folder, domain).to_dict())
        apply_public_policy(recipe)  # a public studio: allow-listed teachers and endpoints only
        with holding(keys or {}):
            teacher = validate_recipe(recipe, catalogue, settings.teacher_dirs())  # local teachers: those folders only
        check_memory(recipe, teacher)  # refused here, with the estimate, rather than killed mid-job
        seal_into(folder, keys or {})
        write_json(folder / RECIPE_FILE, recipe.to_dict())  # a full disk is named as such (`DiskError`)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return enqueue(job_id, run_recipe_task.s(job_id, recipe.to_dict(), job_id), recipe.name or job_id, "distillation")


def submit_evaluation(model_id: str, limit: int | None = None, thresholds: dict[str, float] | None = None,
                      tasks: list[str] | None = None, keys: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Check, then queue an evaluation of a saved model (`keys` as for `submit`: an endpoint teacher's
    key typed in the page). Raises `DistilleryError` (nothing queued)."""
    ModelFolder.open(model_id).check()  # refuses an unknown id, a path or a damaged folder
    Thresholds(**(thresholds or {})).validate()
    check_task_names(tasks)
    check_rows_per_task(limit)
    return queue_evaluation(model_id, {"limit": limit, "thresholds": thresholds or {}, "tasks": tasks}, keys)


def queue_evaluation(model_id: str, request: dict[str, Any], keys: Mapping[str, str] | None = None,
                     ) -> dict[str, Any]:
    """A job folder with the request (and `keys`, sealed), and the evaluation queued (also used by a
    recipe's follow-up, which passes on the keys its own job held)."""
    job_id, folder = new_job_dir(model_id, evaluation_job_id(model_id))
    try:
        seal_into(folder, keys or {})
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
        forget(job_folder(job_id))  # its sealed keys, if any: it will never run
        return write_status(job_id, state="cancelled", message="Cancelled before it started.")
    return write_status(job_id, message="cancelling…", cancel_requested=True)


def resume(job_id: str) -> dict[str, Any]:
    """Queue an interrupted job again (its worker was killed, or the machine restarted): the same job
    id and folder, so the stages whose outputs are complete are not run again — the corpus is reused,
    featurization embeds only its missing shards, and the model folder (written atomically) is made
    once. Refused, with the reason, for any job that is not interrupted."""
    status = read_status(job_id)
    if status is None:
        raise DistilleryError(f"There is no job '{job_id}'.")
    state = status.get("state")
    if state != "interrupted":
        raise DistilleryError(_not_resumable(job_id, status))
    return requeue(job_id, "resumed: finished stages are reused")


def _not_resumable(job_id: str, status: dict[str, Any]) -> str:
    state = status.get("state")
    reason = {
        "queued": "is queued: it has not started yet",
        "running": "is running",
        "done": f"is done: its model is saved as '{status.get('model_id', job_id)}'",
        "cancelled": "was cancelled by a user; submit its recipe again to run it",
        "failed": f"failed ({status.get('error', 'no reason recorded')}); it was refused or raised, so resuming "
                  f"would fail the same way: change the recipe and submit it again",
    }.get(str(state), f"is {state}")
    return f"Job '{job_id}' cannot be resumed: it {reason}. Only a job whose worker stopped (interrupted) can be resumed."


def requeue(job_id: str, message: str, **fields: Any) -> dict[str, Any]:
    """Queue an existing job again from its folder (a resume by hand or an automatic retry): the
    request it was submitted with is read back from the folder, so the task is the one it had."""
    folder = job_folder(job_id)
    status = read_status(job_id) or {}
    if (folder / RECIPE_FILE).is_file():
        recipe = json.loads((folder / RECIPE_FILE).read_text())
        task, kind = run_recipe_task.s(job_id, recipe, job_id), "distillation"
    elif (folder / EVALUATION_REQUEST).is_file():
        request = json.loads((folder / EVALUATION_REQUEST).read_text())
        model_id = request.pop("model_id")
        task, kind = evaluate_model_task.s(job_id, model_id, request), "evaluation"
    else:
        raise DistilleryError(f"Job '{job_id}' has no request in its folder; it cannot be queued again.")
    if kind == "distillation" and (settings.models_dir() / job_id).is_dir():
        # Killed after its model was renamed into place (so it is complete) but before "done" was written.
        return write_status(job_id, state="done", stage="done", fraction=1.0, overall=1.0, error=None,
                            model_id=job_id, message=f"saved {job_id} before its worker stopped; nothing to run again")
    write_status(job_id, resumes=int(status.get("resumes", 0)) + 1, error=None, worker=None, **fields)
    return enqueue(job_id, task, status.get("name") or job_id, kind, message)


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
    A queued job carries its `position` in the queue (`jobs.status.placed`).
    """
    requests = []
    for folder in settings.jobs_dir().iterdir():
        request = next((folder / n for n in (RECIPE_FILE, EVALUATION_REQUEST) if (folder / n).is_file()), None)
        if request is not None:
            requests.append((request.stat().st_mtime_ns, folder.name))
    newest = sorted(requests, reverse=True)[:limit]
    return placed([read_status(job_id) or {"job_id": job_id, "state": "unknown"} for _, job_id in newest])
