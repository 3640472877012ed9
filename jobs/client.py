"""What the app does with jobs: submit a recipe, list jobs, cancel one. No Gradio here."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from core import settings
from core.errors import DistilleryError
from core.recipe import Recipe, validate_recipe
from core.sources import SourceCatalogue
from jobs.folders import new_job_dir
from jobs.queue import huey
from jobs.status import TERMINAL, read_status, worker_alive, write_status
from jobs.tasks import EVALUATION_REQUEST, enqueue_evaluation, run_recipe_task

RECIPE_FILE = "recipe.json"


def submit(recipe: Recipe, catalogue: SourceCatalogue, job_id: str | None = None) -> dict[str, Any]:
    """Validate, then enqueue. Raises `DistilleryError` (nothing queued) when the recipe cannot work."""
    validate_recipe(recipe, catalogue)
    if job_id is None:
        job_id, folder = new_job_dir(recipe.name)
    else:
        folder = job_folder(job_id)
    (folder / RECIPE_FILE).write_text(json.dumps(recipe.to_dict(), indent=2))
    task = run_recipe_task.s(job_id, recipe.to_dict(), job_id)
    write_status(job_id, state="queued", task_id=task.id, name=recipe.name or job_id, stage="queued",
                 fraction=0.0, message="waiting for a worker", submitted=time.time())
    huey.enqueue(task)
    status = read_status(job_id) or {}
    if not worker_alive():
        status["warning"] = ("No worker is running: the job is queued and starts when a worker starts "
                             "(`make run` or `python app.py` start one).")
    return status


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
    """Jobs, newest first: their recipe name and their current status."""
    root = settings.jobs_dir()
    folders = sorted((p for p in root.iterdir() if (p / RECIPE_FILE).is_file() or (p / EVALUATION_REQUEST).is_file()),
                     key=lambda p: p.stat().st_mtime, reverse=True)[:limit]
    jobs = []
    for folder in folders:
        status = read_status(folder.name) or {"job_id": folder.name, "state": "unknown"}
        jobs.append(status)
    return jobs


def submit_evaluation(model_id: str, limit: int | None = None, thresholds: dict[str, float] | None = None,
                      tasks: list[str] | None = None) -> dict[str, Any]:
    """Validate, then enqueue an evaluation of a saved model. Raises `DistilleryError` (nothing queued)."""
    from core.evaluate import Thresholds, check_task_names
    from core.registry import model_dir

    model_dir(model_id)  # refuses an unknown id or a path
    Thresholds(**(thresholds or {})).validate()
    check_task_names(tasks)
    if limit is not None and limit < 10:
        raise DistilleryError("Rows per task must be at least 10 (or empty for every row).")
    job_id = enqueue_evaluation(model_id, {"limit": limit, "thresholds": thresholds or {}, "tasks": tasks})
    status = read_status(job_id) or {}
    if not worker_alive():
        status["warning"] = "No worker is running: the evaluation is queued and starts when a worker starts."
    return status
