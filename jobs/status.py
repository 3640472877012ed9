"""Job state in huey's key/value store: written by the worker, read (never consumed) by the app.

huey's reads pop by default; every read here uses `peek=True`, so any number of pollers can watch.
A worker also writes a heartbeat, both for itself and for the job it runs, so the app can tell a
job that is slow from one whose worker has died.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from typing import Any

from jobs.queue import huey

HEARTBEAT_SECONDS = 2.0
STALE_AFTER = 15.0
WORKER_KEY = "distillery:worker-heartbeat"
CONSUMERS_KEY = "distillery:consumers"  # the identities of every consumer's worker that has beaten
TERMINAL = ("done", "failed", "cancelled", "interrupted")


def _key(job_id: str) -> str:
    return f"distillery:job:{job_id}"


def write_status(job_id: str, **fields: Any) -> dict[str, Any]:
    status = huey.get(_key(job_id), peek=True) or {"job_id": job_id}
    status.update(fields, updated=time.time())
    huey.put(_key(job_id), status)
    return status


def read_status(job_id: str) -> dict[str, Any] | None:
    status = huey.get(_key(job_id), peek=True)
    if status is None:
        return None
    recently_updated = time.time() - status.get("updated", 0) < STALE_AFTER
    if status.get("state") == "running" and not recently_updated and not job_alive(job_id):
        status = {**status, "state": "interrupted",
                  "error": "The worker running this job stopped (killed or crashed); no model was saved. Resume it "
                           "(Jobs tab or `jobs.client.resume`): finished stages are kept."}
    return status


def queue_positions() -> dict[str, int]:
    """Each waiting task's place in line, by task id: 1 is the next a worker takes.

    Read from huey's queue itself, in the order its workers dequeue (both storages list it so), not
    from submission times: the queue is what survives a restart of the app and the worker, a job
    queued again (resumed, or retried after its worker died) waits behind those queued before it,
    and a cancelled job's task, left in the queue until a worker skips it, holds no place.
    """
    positions: dict[str, int] = {}
    for task in huey.pending():
        if not huey.is_revoked(task):
            positions[task.id] = len(positions) + 1
    return positions


def placed(statuses: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The statuses, each queued one with its `position` in the queue (`queue_positions`, read once).
    None for a queued job whose task is not in the queue: a worker has just taken it."""
    if not any(s.get("state") == "queued" for s in statuses):
        return statuses
    positions = queue_positions()
    return [{**s, "position": positions.get(s.get("task_id", ""))} if s.get("state") == "queued" else s
            for s in statuses]


def worker_identity() -> str:
    """`host:pid` of this process: a running job records the worker process that runs it."""
    return f"{socket.gethostname()}:{os.getpid()}"


def worker_gone(status: dict[str, Any]) -> bool:
    """The job's worker process ran on this machine and no longer exists (killed): known at once,
    without waiting for its heartbeat to go stale. False when it cannot tell (another machine, an
    older status without `worker`, or a process with that pid exists)."""
    host, _, pid = str(status.get("worker") or "").rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    if int(pid) == os.getpid():  # this very process (a restarted container reuses pids): is it running it?
        return Heartbeat.current_job != status.get("job_id")
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # it exists, under another user
        return False
    return False


def job_alive(job_id: str) -> bool:
    beat = huey.get(f"{_key(job_id)}:alive", peek=True)
    return beat is not None and time.time() - beat < STALE_AFTER


def worker_alive() -> bool:
    beat = huey.get(WORKER_KEY, peek=True)
    return beat is not None and time.time() - beat["time"] < STALE_AFTER


def _consumer_key(identity: str) -> str:
    return f"distillery:consumer:{identity}"


def live_consumers() -> list[dict[str, Any]]:
    """The workers beating now, on any machine: `worker` (host:pid), `device` ("CPU" or "GPU"),
    `texts` embedded by it for the teacher pass and its `texts_per_s` while doing so."""
    now = time.time()
    beats = (huey.get(_consumer_key(identity), peek=True) for identity in huey.get(CONSUMERS_KEY, peek=True) or [])
    return sorted((b for b in beats if b is not None and now - b["time"] < STALE_AFTER), key=lambda b: b["worker"])


def _device() -> str:
    try:
        import torch

        return "GPU" if torch.cuda.is_available() else "CPU"
    except ImportError:
        return "CPU"


class Heartbeat:
    """A daemon thread in each worker process: beats for the worker and for its current job."""

    current_job: str | None = None
    texts = 0  # teacher texts this process has embedded, and the seconds it took (shards: `jobs.shards`)
    seconds = 0.0

    def __init__(self) -> None:
        self.identity = worker_identity()
        self.device = _device()
        self._thread = threading.Thread(target=self._run, name="distillery-heartbeat", daemon=True)

    @classmethod
    def record_work(cls, texts: int, seconds: float) -> None:
        cls.texts += texts
        cls.seconds += seconds

    def start(self) -> None:
        self._beat()
        self._thread.start()

    def _run(self) -> None:
        while True:
            time.sleep(HEARTBEAT_SECONDS)
            try:
                self._beat()
            except Exception:  # a busy database must not kill the thread; the next beat retries
                pass

    def _beat(self) -> None:
        now = time.time()
        huey.put(WORKER_KEY, {"time": now, "worker": self.identity})
        rate = Heartbeat.texts / Heartbeat.seconds if Heartbeat.seconds else None
        huey.put(_consumer_key(self.identity), {"time": now, "worker": self.identity, "device": self.device,
                                                "texts": Heartbeat.texts, "texts_per_s": rate})
        known = huey.get(CONSUMERS_KEY, peek=True) or []
        if self.identity not in known:  # read-modify-write: a lost race is repaired by the next beat
            live = {b["worker"] for b in live_consumers()}
            huey.put(CONSUMERS_KEY, [i for i in known if i in live] + [self.identity])
        job = Heartbeat.current_job
        if job is not None:
            huey.put(f"{_key(job)}:alive", now)
