"""huey tasks: thin wrappers that run `core` with progress, cancellation and readable failures."""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from huey import signals
from huey.exceptions import CancelExecution

from core import pace, settings
from core.artifact.folder import ModelFolder
from core.artifact.record import ModelRecord
from core.encoders.teacher import resolve_recorded
from core.errors import Cancelled, DistilleryError
from core.evaluation.run import evaluate_saved_model, evaluation_plan
from core.evaluation.scoring import task_refs
from core.evaluation.verdict import Thresholds
from core.keyring import forget, holding, unseal_from
from core.methods.featurize import fanning_out
from core.pipeline import run_recipe, stage_plan
from core.progress import OverallClock, StagePlan, stage_times
from core.recipe import Recipe
from jobs.queue import huey
from jobs.recovery import SCAN_SECONDS, retry_dead_jobs
from jobs.shards import QueueFanout, fanned_out
from jobs.status import Heartbeat, read_status, worker_identity, write_status

log = logging.getLogger("distillery.jobs")
_heartbeat: Heartbeat | None = None


@huey.on_startup()
def start_heartbeat() -> None:
    global _heartbeat
    _heartbeat = Heartbeat()
    _heartbeat.start()
    if settings.auto_retries() > 0:
        threading.Thread(target=_retry_dead_jobs, name="distillery-recovery", daemon=True).start()


@huey.signal(signals.SIGNAL_INTERRUPTED)
def stop_taking_tasks(signal: str, task: Any) -> None:
    """The exit signal that interrupted this worker's task ends the worker too, before it takes another.

    A SIGTERM to the consumer's whole process group (`jobs.worker.stop_consumer`, as `app.py` stops its
    consumer; systemd's default stop does the same) can reach the worker before the consumer has set
    its stop flag. huey's worker then went back to the queue, took the next queued job off it and was
    cut in that one too: after a restart that job read "interrupted" instead of waiting in its place.
    Raised again here, the KeyboardInterrupt leaves huey's process worker loop (`-k process`, the only
    kind `jobs.worker` starts), which exits quietly on it. The interrupted job itself is queued again
    by the next worker (`jobs.recovery`) or by hand.
    """
    raise KeyboardInterrupt


def _retry_dead_jobs() -> None:
    """At start-up, then every few seconds: jobs whose worker died are queued again once (`jobs.recovery`)."""
    while True:
        try:
            retry_dead_jobs()
        except Exception:  # a busy database or a folder removed mid-scan: the next scan retries
            log.exception("scanning for jobs whose worker died")
        time.sleep(SCAN_SECONDS)


class JobProgress:
    """The `core.progress.Progress` of a job: throttled writes to huey's store, and the cancel check.

    Each write carries the running stage and its fraction, the job's overall fraction and ETA (from
    the job's `StagePlan` and the pace so far) and the list of stages with done/running/waiting.
    """

    def __init__(self, job_id: str, task: Any, plan: StagePlan, keys: dict[str, str] | None = None) -> None:
        self.job_id, self.task = job_id, task
        self.keys = keys or {}  # typed in the page, unsealed for this job only (`core.keyring`)
        self.started = time.time()
        self.overall = OverallClock(plan, self.started)
        self._last_write = 0.0
        self._stage = ""

    def __call__(self, stage: str, fraction: float, message: str = "") -> None:
        saved = stage == "save" and fraction >= 1.0  # the model is in place: too late to cancel
        if not saved and huey.is_revoked(self.task):
            raise Cancelled("cancelled by the user")
        now = time.time()
        overall = self.overall.update(stage, fraction)
        if stage == self._stage and now - self._last_write < 0.5 and fraction < 1.0:
            return
        self._stage, self._last_write = stage, now
        write_status(self.job_id, state="running", stage=stage, fraction=round(fraction, 4), message=message,
                     overall=round(overall, 4), elapsed=round(now - self.started, 1),
                     eta=round(self.overall.eta(now), 1),
                     steps=self.overall.plan.board(stage, fraction, self.overall.reached))

    def finished(self) -> dict[str, Any]:
        """The status fields of a job that has ended well: every stage done, the bar full."""
        plan = self.overall.plan
        return {"overall": 1.0, "eta": 0.0, "elapsed": round(time.time() - self.started, 1),
                "steps": [[name, "done", 1.0] for name in plan.names]}


@huey.task(context=True)
def run_recipe_task(job_id: str, recipe_data: dict[str, Any], model_id: str, task=None) -> dict[str, Any]:
    """Run one recipe end to end; its outcome is in the job status and, when done, in the model folder."""
    def work(progress: JobProgress) -> tuple[Recipe, ModelRecord]:
        recipe = Recipe.from_dict(recipe_data)
        # On Redis the teacher pass is shared with every consumer (`jobs.shards`); on SQLite it runs here.
        with fanning_out(QueueFanout(job_id, progress) if fanned_out() else None):
            return recipe, run_recipe(recipe, settings.jobs_dir() / job_id, settings.models_dir() / model_id,
                                      progress)

    outcome = _guarded(job_id, task, work, lambda: stage_plan(Recipe.from_dict(recipe_data)), "distillation")
    if outcome is None:
        return {"error": (read_status(job_id) or {}).get("error", "failed")}
    (recipe, record), progress = outcome
    shortfalls = " ".join(s["message"] for s in record.shortfalls)
    timings = stage_times(record.stages)
    log.info("job %s saved %s; stage times: %s", job_id, model_id, timings)
    follow_up = None
    if recipe.evaluate_after:
        from jobs.client import queue_evaluation  # the one enqueue path (it imports this module)

        owner = (read_status(job_id) or {}).get("owner")  # the follow-up is the submitter's too
        follow_up = queue_evaluation(model_id, follow_up_request(recipe), owner, progress.keys)["job_id"]
    write_status(job_id, state="done", fraction=1.0, stage="done",
                 message=f"saved {model_id} ({timings})" + (f"; evaluation queued as {follow_up}" if follow_up else ""),
                 warning=f"Corpus shortfall: {shortfalls}" if shortfalls else None,
                 model_id=model_id, stages=record.stages, peak_rss_mb=record.peak_rss_mb, **progress.finished())
    return {"model_id": model_id}


def follow_up_request(recipe: Recipe) -> dict[str, Any]:
    """The evaluation "Evaluate when saved" queues: the recipe's rows per task, on the suite of its
    corpus language (a French student is judged on the French sets, a cross-lingual one on both)."""
    return {"limit": recipe.evaluation_rows, "suite": recipe.language}


@huey.task(context=True)
def evaluate_model_task(job_id: str, model_id: str, request: dict[str, Any], task=None) -> dict[str, Any]:
    """Score a saved model and its teacher (mteb), time both, decide; the report lands in the model folder."""
    tasks = task_refs(request.get("tasks"), request.get("suite"))  # a request saved before suites: English

    def plan() -> StagePlan:
        record = ModelFolder.open(model_id).record
        teacher = resolve_recorded(record.teacher)
        return evaluation_plan(teacher, tasks, request.get("limit"))

    outcome = _guarded(job_id, task, lambda progress: evaluate_saved_model(
        ModelFolder.open(model_id).path, tasks, request.get("limit"),
        Thresholds(**request.get("thresholds", {})), progress), plan, "evaluation")
    if outcome is None:
        return {"error": (read_status(job_id) or {}).get("error", "failed")}
    report, progress = outcome
    decision = report["verdict"]
    skipped = report["student_scores"]["skipped"]
    write_status(job_id, state="done", fraction=1.0, stage="done", model_id=model_id,
                 message=f"{model_id}: {decision['verdict']} — retention {decision['retention']:.1%}, "
                         f"speed-up {decision['speedup'] or 0:.0f}× ({report['seconds']:.0f} s)",
                 warning=f"Skipped: {', '.join(skipped)}" if skipped else None, **progress.finished())
    return {"model_id": model_id, "verdict": decision["verdict"]}


def _guarded(job_id: str, task: Any, work: Callable[[JobProgress], Any], plan: Callable[[], StagePlan],
             kind: str) -> tuple[Any, JobProgress] | None:
    """Run `work` with the job's progress (over the stages `plan` lists, at this machine's pace for
    `kind`); a failure becomes the job's status (None is returned), a cancel becomes huey's
    CancelExecution. A job that ends well records its pace (`core.pace`) for the next estimates.

    Keys typed in the page for this job are unsealed and held while it runs, and removed from its
    folder once it has ended in any way (only a worker's death, which runs no `finally`, leaves
    them for the retry)."""
    Heartbeat.current_job = job_id
    job_dir = settings.jobs_dir() / job_id
    write_status(job_id, state="running", stage="starting", fraction=0.0, message="", started=time.time(),
                 worker=worker_identity())
    try:
        keys = unseal_from(job_dir)
        with holding(keys):
            planned = plan()
            progress = JobProgress(job_id, task, planned.scaled(pace.factor(kind)), keys)
            result = work(progress)
        pace.record(kind, planned.total_seconds, time.time() - progress.started)
        return result, progress
    except Cancelled:
        write_status(job_id, state="cancelled", message="Cancelled; nothing was saved.")
        raise CancelExecution(retry=False) from None
    except DistilleryError as exc:
        write_status(job_id, state="failed", error=str(exc))
    except Exception as exc:  # anything else: keep the trace in the job folder, show one line
        _save_trace(job_dir)
        write_status(job_id, state="failed", error=f"{type(exc).__name__}: {exc} (details in {job_dir}/error.txt)")
        log.exception("job %s failed", job_id)
    finally:
        Heartbeat.current_job = None
        forget(job_dir)
    return None


def _save_trace(job_dir: Path) -> None:
    """The trace beside the job, when the disk takes it (a full disk must not hide the job's failure)."""
    try:
        job_dir.mkdir(parents=True, exist_ok=True)
        (job_dir / "error.txt").write_text(traceback.format_exc())
    except OSError:
        log.warning("could not save the trace in %s", job_dir)

