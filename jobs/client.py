"""What the app does with jobs: submit a recipe or an evaluation, list jobs, cancel one. No Gradio here.

Every job is queued through `enqueue`, which writes the queued status, puts the task on the queue
and warns when no worker is running; `submit` is the whole transaction of a distillation (a job
folder, the uploads accepted into it, the recipe checked and queued), and leaves nothing behind
when the recipe is refused.

Public mode (`core.settings.public_mode`): each call takes the `owner` the app derived from the
request (`ui.visitors`), and an owner means a visitor of a shared studio: the job is recorded as
theirs (`jobs.ownership`), only they may list, cancel or resume it, and the per-visitor limits of
`core.limits` apply. Without an owner (a private studio, the worker's own follow-ups) nothing of
that applies, as before.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from core import settings
from core.corpus.pairs import accept_pair_upload
from core.corpus.sources import SourceCatalogue
from core.corpus.uploads import Upload, accept_upload
from core.encoders.teacher import DEFAULT_TEACHER
from core.errors import DistilleryError
from core.evaluation.scoring import check_task_names
from core.evaluation.tasks import DEFAULT_SUITE, check_rows_per_task
from core.evaluation.verdict import Thresholds
from core.files import write_json
from core.keyring import forget, holding, seal_into
from core.limits import Limits, check_active_jobs, check_corpus_rows, check_uploads
from core.memory import check_memory
from core.methods.corpus import CorpusParams
from core.public import apply_public_policy
from core.recipe import Recipe, validate_recipe
from jobs.folders import EVALUATION_REQUEST, RECIPE_FILE, evaluation_job_id, new_job_dir
from jobs.ownership import not_yours, open_model, owns_job, write_access
from jobs.queue import huey
from jobs.status import TERMINAL, placed, read_status, worker_alive, write_status
from jobs.tasks import evaluate_model_task, run_recipe_task

NO_WORKER = ("No worker is running: the job is queued and starts when a worker starts "
             "(`make run` or `python app.py` start one).")


def enqueue(job_id: str, task: Any, name: str, kind: str, message: str = "waiting for a worker",
            owner: str | None = None) -> dict[str, Any]:
    """The one way a job is queued: its queued status first (so a fast worker finds it), then the
    task; the status returned carries a warning when no worker is alive to run it. A job queued
    again keeps the `owner` its status already has."""
    write_status(job_id, state="queued", task_id=task.id, name=name, kind=kind, stage="queued", fraction=0.0,
                 message=message, submitted=time.time(), **({"owner": owner} if owner is not None else {}))
    huey.enqueue(task)
    status = dict(read_status(job_id) or {})
    if not worker_alive():
        status["warning"] = NO_WORKER
    return status


def submit(recipe: Recipe, catalogue: SourceCatalogue, uploads: Mapping[str, Sequence[Upload]] | None = None,
           keys: Mapping[str, str] | None = None, owner: str | None = None,
           pair_uploads: Sequence[Path] = ()) -> dict[str, Any]:
    """Create the job folder, accept `uploads` (per domain) into it, check the recipe, queue it.

    `pair_uploads` are the user's files of text pairs (the corpus method's pair term): each is checked
    and copied into the job's folder (`core.corpus.pairs.accept_pair_upload`), and the recipe's
    `distill.pair_files` names where.

    `keys` (id -> clear key, `core.keyring`) are keys typed in the page: they are held while the
    recipe is checked (an endpoint teacher is probed) and reach the worker sealed, never in clear.
    Raises `DistilleryError` with nothing queued and no folder left when an upload or the recipe
    is refused, when the recipe's estimated peak memory exceeds what this machine has free, or
    when the `owner` is at a per-visitor limit (`core.limits`).
    """
    if owner is not None:
        limits = Limits.from_env()
        check_corpus_rows(recipe.corpus_size, limits)
        check_uploads([Path(u.path).stat().st_size for files in (uploads or {}).values() for u in files]
                      + [Path(p).stat().st_size for p in pair_uploads], limits)
        check_active_jobs(len(active_jobs(owner)), limits)
    job_id, folder = new_job_dir(recipe.name)
    try:
        if owner is not None:
            write_access(folder, owner)  # before the model can exist: it is never visible to others unowned
        for domain, files in (uploads or {}).items():
            for upload in files:
                recipe.uploads.setdefault(domain, []).append(accept_upload(upload, folder, domain).to_dict())
        if pair_uploads:
            _accept_pairs(recipe, pair_uploads, folder)
        apply_public_policy(recipe)  # a public studio: allow-listed teachers and endpoints only
        with holding(keys or {}):
            teacher = validate_recipe(recipe, catalogue, settings.teacher_dirs())  # local teachers: those folders only
        check_memory(recipe, teacher)  # refused here, with the estimate, rather than killed mid-job
        if teacher.is_local and teacher.name != DEFAULT_TEACHER:
            # The folder found inside the allowed ones, by its whole path: the worker resolves the
            # recipe again without those folders, and a bare folder name would read as a Hub id there.
            recipe.teacher = teacher.source
        seal_into(folder, keys or {})
        write_json(folder / RECIPE_FILE, recipe.to_dict())  # a full disk is named as such (`DiskError`)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return enqueue(job_id, run_recipe_task.s(job_id, recipe.to_dict(), job_id), recipe.name or job_id, "distillation",
                   owner=owner)


def _accept_pairs(recipe: Recipe, pair_uploads: Sequence[Path], folder: Path) -> None:
    """Accept the pair files into the job's `folder` and name them in the recipe's `distill.pair_files`."""
    if not isinstance(recipe.params, CorpusParams):
        raise DistilleryError("Only the corpus method trains on text pairs; choose it, or upload no pair file.")
    accepted = [accept_pair_upload(Path(path), folder) for path in pair_uploads]
    recipe.distill = replace(recipe.params, pair_files=(*recipe.params.pair_files, *accepted))


def submit_evaluation(model_id: str, limit: int | None = None, thresholds: dict[str, float] | None = None,
                      tasks: list[str] | None = None, owner: str | None = None,
                      keys: Mapping[str, str] | None = None, suite: str | None = None) -> dict[str, Any]:
    """Check, then queue an evaluation of a saved model (`keys` as for `submit`: an endpoint teacher's
    key typed in the page). `suite` ("en", the default; "fr"; "both") is what runs when no `tasks` are
    named; None: the suite of the model's corpus language (a French student is judged on the French
    sets, as "Evaluate when saved" does). Raises `DistilleryError` (nothing queued), also when the model
    is another visitor's and not shared, or the `owner` is at the job limit."""
    folder = open_model(model_id, owner)
    folder.check()  # refuses an unknown id, a path, a damaged or another's private folder
    suite = suite or folder.record.recipe.get("language") or DEFAULT_SUITE
    Thresholds(**(thresholds or {})).validate()
    check_task_names(tasks, suite)
    check_rows_per_task(limit)
    if owner is not None:
        check_active_jobs(len(active_jobs(owner)), Limits.from_env())
    request = {"limit": limit, "thresholds": thresholds or {}, "tasks": tasks, "suite": suite}
    return queue_evaluation(model_id, request, owner, keys)


def queue_evaluation(model_id: str, request: dict[str, Any], owner: str | None = None,
                     keys: Mapping[str, str] | None = None) -> dict[str, Any]:
    """A job folder with the request (and `keys`, sealed), and the evaluation queued (also used by a
    recipe's follow-up, which belongs to the owner of the distillation and passes on the keys its
    own job held)."""
    job_id, folder = new_job_dir(model_id, evaluation_job_id(model_id))
    try:
        seal_into(folder, keys or {})
        write_json(folder / EVALUATION_REQUEST, {"model_id": model_id, **request})
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return enqueue(job_id, evaluate_model_task.s(job_id, model_id, request), f"evaluate {model_id}", "evaluation",
                   owner=owner)


def cancel(job_id: str, owner: str | None = None) -> dict[str, Any]:
    status = _owned_status(job_id, owner)
    if status.get("state") in TERMINAL:
        return status
    huey.revoke_by_id(status["task_id"])
    if status.get("state") == "queued":  # never started: it will be skipped when dequeued
        forget(job_folder(job_id))  # its sealed keys, if any: it will never run
        return write_status(job_id, state="cancelled", message="Cancelled before it started.")
    return write_status(job_id, message="cancelling…", cancel_requested=True)


def resume(job_id: str, owner: str | None = None) -> dict[str, Any]:
    """Queue an interrupted job again (its worker was killed, or the machine restarted): the same job
    id and folder, so the stages whose outputs are complete are not run again — the corpus is reused,
    featurization embeds only its missing shards, and the model folder (written atomically) is made
    once. Refused, with the reason, for any job that is not interrupted, or not the `owner`'s."""
    status = _owned_status(job_id, owner)
    state = status.get("state")
    if state != "interrupted":
        raise DistilleryError(_not_resumable(job_id, status))
    if owner is not None:
        check_active_jobs(len(active_jobs(owner)), Limits.from_env())
    return requeue(job_id, "resumed: finished stages are reused")


def _owned_status(job_id: str, owner: str | None) -> dict[str, Any]:
    """The job's status, refused when there is no such job or it is another visitor's."""
    status = read_status(job_id)
    if status is None:
        raise DistilleryError(f"There is no job '{job_id}'.")
    if not owns_job(status, owner):
        raise not_yours(job_id)
    return status


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


def list_jobs(limit: int = 50, owner: str | None = None) -> list[dict[str, Any]]:
    """Jobs, newest submitted first, in an order that does not change while they run; only the
    `owner`'s when one is given (public mode).

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
    if owner is None:
        newest = sorted(requests, reverse=True)[:limit]
        return placed([read_status(job_id) or {"job_id": job_id, "state": "unknown"} for _, job_id in newest])
    owned = []
    for _, job_id in sorted(requests, reverse=True):
        status = read_status(job_id)
        if status is not None and owns_job(status, owner):
            owned.append(status)
            if len(owned) == limit:
                break
    return placed(owned)


def active_jobs(owner: str) -> list[dict[str, Any]]:
    """The `owner`'s jobs that are queued or running (what the per-visitor job limit counts)."""
    return [j for j in list_jobs(limit=10**6, owner=owner) if j.get("state") in ("queued", "running")]
