"""Jobs whose worker died: queued again once automatically, by the workers themselves.

huey cannot do this: `retries=` re-runs a task that *raised*, but a worker killed with SIGKILL (or a
machine restart) raises nothing, and the task it held is simply gone from the queue. So each worker
looks for such jobs when it starts and then every `SCAN_SECONDS` (in its heartbeat thread): a job
whose status says running while its worker is dead (its heartbeat stale, or its process on this
machine gone) is queued again through `jobs.client.requeue` — the same job id and folder, so its
finished stages are reused (`core.pipeline`: the corpus; `core.methods.featurize`: the shards).

At most `settings.auto_retries()` times per job (1 by default): each automatic retry first creates
`auto-retry-<n>` in the job folder with O_EXCL, which is both the count and the claim (two workers
scanning at once cannot both queue it). A job refused with a `DistilleryError` ends as "failed", never
"running", so it is never retried; after the automatic retry a job can still be resumed by hand.
"""

from __future__ import annotations

import logging
import os

from core import settings
from jobs.folders import EVALUATION_REQUEST, RECIPE_FILE
from jobs.queue import huey
from jobs.status import _key, read_status, worker_gone

log = logging.getLogger("distillery.jobs")
SCAN_SECONDS = 5.0
RETRY_MARK = "auto-retry-"


def automatic_retries(job_id: str) -> int:
    """How many times the job was queued again automatically after a worker death."""
    folder = settings.jobs_dir() / job_id
    return sum(1 for p in folder.glob(f"{RETRY_MARK}*")) if folder.is_dir() else 0


def dead_jobs() -> list[str]:
    """Jobs recorded as running whose worker is dead."""
    dead = []
    for folder in settings.jobs_dir().iterdir():
        if not ((folder / RECIPE_FILE).is_file() or (folder / EVALUATION_REQUEST).is_file()):
            continue
        raw = huey.get(_key(folder.name), peek=True)
        if not raw or raw.get("state") != "running":
            continue
        if worker_gone(raw) or (read_status(folder.name) or {}).get("state") == "interrupted":
            dead.append(folder.name)
    return dead


def retry_dead_jobs() -> list[str]:
    """Queue again (once) each job whose worker died; returns the ids queued."""
    from jobs.client import requeue  # the one enqueue path (it imports the tasks, which import this)

    queued = []
    for job_id in dead_jobs():
        attempt = automatic_retries(job_id) + 1
        if attempt > settings.auto_retries():
            continue  # it stays "interrupted": resumable by hand
        try:
            fd = os.open(settings.jobs_dir() / job_id / f"{RETRY_MARK}{attempt}", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:  # another worker claimed this attempt
            continue
        os.close(fd)
        log.warning("job %s: its worker died; queued again automatically (retry %d)", job_id, attempt)
        requeue(job_id, f"its worker died; queued again automatically (retry {attempt} of "
                        f"{settings.auto_retries()})", auto_retries=attempt)
        queued.append(job_id)
    return queued
