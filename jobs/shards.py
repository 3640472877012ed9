"""The teacher pass fanned out over the queue's consumers (with `DISTILLERY_REDIS_URL`: any machine).

A corpus-method job's `featurize` (`core.methods.featurize`, inside `fanning_out`) hands its missing
shards to `QueueFanout.run`, which enqueues one `featurize_shard_task` per shard (a huey group) and
then waits for their results with huey's blocking `Result.get`. While it waits it is not idle: it
takes, in its own process, any shard nobody holds, so a job never starves for want of a free worker
(a consumer with one worker runs its whole job alone, as before) and the waiting task only sleeps
once every shard is held by someone.

Who holds a shard is a lease in the queue's Redis (`distillery:shard-lease:<shard key>`), taken with
one atomic `SET NX PX` (of two takers in the same instant one wins) and renewed every few seconds
while the shard is encoded. A consumer killed mid-shard stops renewing it; Redis expires it after
`lease_seconds()` and the shard is free again: the job task takes it, or a shard task that found it
held (it retries with a delay, huey's `RetryTask`) does. Shards are written atomically and keyed by
teacher fingerprint and their texts' hash (`shard_key`), so a shard computed twice (a lease that
expired under a stalled holder) is harmless and one on disk is never redone.

Progress shows shards done out of total and which consumer did each (the job status's `shards`).
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from huey.exceptions import ResultTimeout, RetryTask, TaskException

from core import settings
from core.corpus.build import Corpus
from core.encoders.package import PackageEncoder
from core.encoders.teacher import TeacherInfo, load_teacher, resolve_recorded
from core.errors import DistilleryError
from core.methods.featurize import TargetStore, encode_stored_shard
from jobs.queue import huey
from jobs.status import TERMINAL, Heartbeat, read_status, worker_identity, write_status

log = logging.getLogger("distillery.jobs")
WAIT_SECONDS = 1.0  # one blocking wait on a shard's result, between looks for a free shard
SETTLE_SECONDS = 10.0  # at most this long for the results that name who encoded the last shards


def lease_seconds() -> float:
    """How long a shard stays held after its holder's last renewal (`DISTILLERY_SHARD_LEASE`, 30 s)."""
    return float(os.environ.get("DISTILLERY_SHARD_LEASE", "30"))


def fanned_out() -> bool:
    """Jobs fan their teacher pass out only on Redis: SQLite's queue serves one machine's consumer."""
    return bool(os.environ.get("DISTILLERY_REDIS_URL"))


def _lease_key(key: str) -> str:
    return f"distillery:shard-lease:{key}"


def _lease_ms() -> int:
    return max(1, int(lease_seconds() * 1000))


# Renew or release only a lease this worker still holds (compare and act, atomically in Redis).
_RENEW = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end return 0"
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


def _redis() -> Any:
    """The Redis client of huey's own storage: leases live beside the queue they serve."""
    return huey.storage.conn


def lease_holder(key: str) -> str | None:
    """The worker holding the shard's lease, or None when nobody does (never taken, released, expired)."""
    holder = _redis().get(_lease_key(key))
    return holder.decode() if isinstance(holder, bytes) else holder


def take_lease(key: str) -> bool:
    """Hold the shard unless someone else does: one atomic `SET NX PX`, so of two takers in the same
    instant exactly one wins, and Redis expires the lease itself (no clocks compared between machines)."""
    me = worker_identity()
    if _redis().set(_lease_key(key), me, nx=True, px=_lease_ms()):
        return True
    return lease_holder(key) == me


@contextmanager
def holding(key: str) -> Iterator[None]:
    """The lease renewed while the block runs (a thread), released at its end."""
    stop = threading.Event()
    me, lease = worker_identity(), _lease_key(key)
    renew_lease, release_lease = _redis().register_script(_RENEW), _redis().register_script(_RELEASE)

    def renew() -> None:
        while not stop.wait(lease_seconds() / 4):
            try:
                renew_lease(keys=[lease], args=[me, _lease_ms()])
            except Exception:  # a busy store: the next renewal retries
                pass

    thread = threading.Thread(target=renew, name="distillery-lease", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        release_lease(keys=[lease], args=[me])  # free at once (on disk, or failed and may be retried)


def _timed(encode: Callable[[], bool], rows: int) -> float | None:
    """Run a shard's encode, counting its texts and seconds into this consumer's throughput (heartbeats);
    its seconds, or None when the shard was on disk already (nothing was encoded)."""
    started = time.time()
    if not encode():
        return None
    seconds = time.time() - started
    Heartbeat.record_work(rows, seconds)
    return seconds


@functools.lru_cache(maxsize=1)
def _texts(job_id: str) -> list[str]:
    return Corpus.load(settings.jobs_dir() / job_id / "corpus").texts()


_checked: dict[str, TeacherInfo] = {}  # fingerprint → the teacher as this machine resolved it


def _teacher(teacher: dict[str, Any]) -> Any:
    """The job's teacher loaded here (once per process: `load_teacher`, or a package teacher's
    `PackageEncoder`), after checking that this machine's weights are the job's (the same fingerprint)."""
    info = TeacherInfo(**teacher)
    if info.fingerprint not in _checked:
        here = resolve_recorded(info)
        if here.fingerprint != info.fingerprint:
            raise DistilleryError(f"The teacher '{info.name}' on {worker_identity()} is not the job's (other "
                                  f"weights): give every consumer the same teacher folder, Hub revision or "
                                  f"package version.")
        _checked[info.fingerprint] = here
    if info.package is not None:
        return PackageEncoder(_checked[info.fingerprint])
    return load_teacher(_checked[info.fingerprint])


@huey.task(context=True)
def featurize_shard_task(job_id: str, targets: str, shard: int, key: str, teacher: dict[str, Any],
                         prompt: str | None, task=None) -> dict[str, Any]:
    """Encode one shard of a job's target store (`targets`, relative to the job folder), on whichever
    consumer takes it. Held by another live worker: retried after a lease's length (the holder may die)."""
    folder = settings.jobs_dir() / job_id / targets
    if (read_status(job_id) or {}).get("state") in TERMINAL:
        return {"shard": shard, "worker": None, "state": "job ended"}
    store = TargetStore.prepared(folder)
    if store.shard_path(shard).exists():
        return {"shard": shard, "worker": None, "state": "on disk"}
    if not take_lease(key):
        raise RetryTask(f"shard {shard} is held by {lease_holder(key)}", delay=lease_seconds())
    with holding(key):
        rows = store.shard_size(shard)
        seconds = _timed(functools.partial(encode_stored_shard, _teacher(teacher), _texts(job_id), folder, shard,
                                           key, teacher["fingerprint"], prompt), rows)
    if seconds is not None:
        return {"shard": shard, "worker": worker_identity(), "state": "encoded", "seconds": round(seconds, 3),
                "rows": rows}
    return {"shard": shard, "worker": None, "state": "on disk"}


class QueueFanout:
    """`core.methods.featurize.ShardFanout` over huey: the job's shards as tasks any consumer takes."""

    def __init__(self, job_id: str, progress: Callable[[str, float, str], None]) -> None:
        self.job_id, self.progress = job_id, progress
        self.by: dict[int, str] = {}  # shard → the consumer that encoded it

    def run(self, store: TargetStore, missing: list[int], keys: dict[int, str], encode_here: Callable[[int], bool],
            teacher: Any, prompt: str | None) -> None:
        job_dir = settings.jobs_dir() / self.job_id
        targets = str(store.folder.relative_to(job_dir))
        results = {s: featurize_shard_task(self.job_id, targets, s, keys[s], teacher.to_dict(), prompt)
                   for s in missing}
        me = worker_identity()
        self._report(store)
        while remaining := [s for s in missing if not store.shard_path(s).exists()]:
            free = next((s for s in remaining if take_lease(keys[s])), None)
            if free is not None:
                with holding(keys[free]):
                    if _timed(functools.partial(encode_here, free), store.shard_size(free)) is not None:
                        self.by[free] = me
                self._report(store)
                continue
            self._collect(results, remaining)
            self._report(store)
        # The consumers' last results may trail their shards' files by a moment: wait briefly for the
        # ones that say who encoded a shard, so progress names every shard's consumer.
        deadline = time.time() + SETTLE_SECONDS
        while (unnamed := [s for s in missing if s not in self.by and s in results]) and time.time() < deadline:
            self._collect(results, unnamed)
        self._report(store, final=True)

    def _collect(self, results: dict[int, Any], remaining: list[int]) -> None:
        """The results that have come (huey's blocking get on the first shard of `remaining`, briefly)."""
        waited = False
        for shard, result in list(results.items()):
            try:
                blocking = not waited and shard in remaining
                value = result.get(blocking=blocking, timeout=WAIT_SECONDS if blocking else None)
                waited = waited or blocking
            except ResultTimeout:
                continue
            except TaskException as exc:  # a consumer's failure: the shard is free again, taken here next
                log.warning("job %s: shard %d failed on a consumer: %s", self.job_id, shard, exc)
                del results[shard]
                continue
            if value is not None:
                del results[shard]
                if value.get("worker"):
                    self.by[shard] = value["worker"]
        if not waited:
            time.sleep(WAIT_SECONDS)

    def _report(self, store: TargetStore, final: bool = False) -> None:
        done = sum(store.shard_path(s).exists() for s in range(store.shards))
        counts = Counter(self.by.values())
        by = ", ".join(f"{worker} {n}" for worker, n in sorted(counts.items()))
        write_status(self.job_id, shards={"done": done, "total": store.shards,
                                          "by": {str(s): w for s, w in sorted(self.by.items())}})
        self.progress("featurize", done / store.shards,
                      f"{done}/{store.shards} shards embedded by the teacher" + (f" (by {by})" if by else ""))
