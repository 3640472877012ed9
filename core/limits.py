"""Per-visitor limits of a public studio (`settings.public_mode`): their values and their checks.

Strangers share one worker on a public Space, so one visitor must not fill its queue, its disk or
its cores. Each limit is read from the environment at every call (like `core.settings`), so an
operator changes one by restarting with another value. A refusal is a `LimitError` that says the
limit and what to do instead, raised before anything is queued or stored.

The limits are checked where the action happens (`jobs.client` for jobs and uploads, `ui.visitors`
for the rate of expensive events); this module owns the numbers, the messages and the rate window.
Nothing here knows Gradio or huey.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from core.errors import DistilleryError

MB = 2**20


class LimitError(DistilleryError):
    """A visitor's action refused by a per-visitor limit: nothing was queued or stored."""


def _env_int(name: str, default: int) -> int:
    named = os.environ.get(name, "").strip()
    return int(named) if named else default


@dataclass(frozen=True)
class Limits:
    """What one visitor may ask of a public studio. Environment variables (and defaults):

    - `DISTILLERY_MAX_ACTIVE_JOBS` (2): jobs queued or running at once, per visitor.
    - `DISTILLERY_MAX_CORPUS_ROWS` (100000): texts in one job's corpus (the "Best quality" preset's size).
    - `DISTILLERY_MAX_UPLOADS` (5): files uploaded with one job.
    - `DISTILLERY_MAX_UPLOAD_MB` (200): their total size in MB (each file is also capped by the server).
    - `DISTILLERY_RATE_EVENTS` (10) per `DISTILLERY_RATE_WINDOW_S` (600) seconds: expensive events
      (submitting a distillation, queueing an evaluation, measuring speed) per visitor.
    """

    active_jobs: int = 2
    corpus_rows: int = 100_000
    uploads: int = 5
    upload_mb: int = 200
    rate_events: int = 10
    rate_window_s: int = 600

    @classmethod
    def from_env(cls) -> Limits:
        default = cls()
        return cls(active_jobs=_env_int("DISTILLERY_MAX_ACTIVE_JOBS", default.active_jobs),
                   corpus_rows=_env_int("DISTILLERY_MAX_CORPUS_ROWS", default.corpus_rows),
                   uploads=_env_int("DISTILLERY_MAX_UPLOADS", default.uploads),
                   upload_mb=_env_int("DISTILLERY_MAX_UPLOAD_MB", default.upload_mb),
                   rate_events=_env_int("DISTILLERY_RATE_EVENTS", default.rate_events),
                   rate_window_s=_env_int("DISTILLERY_RATE_WINDOW_S", default.rate_window_s))

    def window(self) -> str:
        """The rate window for people: "10 minutes", "45 seconds"."""
        return plural(self.rate_window_s // 60, "minute") if self.rate_window_s % 60 == 0 else \
            plural(self.rate_window_s, "second")

    def jobs_line(self) -> str:
        """The line the Jobs and Evaluate tabs show in public mode."""
        return (f"ℹ️ Shared studio: you see and cancel only your own jobs; at most **{self.active_jobs}** of yours "
                f"queued or running at a time.")

    def recipe_line(self) -> str:
        """The line the Recipe tab shows in public mode: every limit a submission meets."""
        return (f"ℹ️ Shared studio limits per visitor: **{self.active_jobs}** jobs queued or running, "
                f"**{self.corpus_rows:,}** corpus texts and **{self.uploads}** uploads (**{self.upload_mb} MB** in "
                f"all) per job, and **{self.rate_events}** distillations, evaluations or speed measurements per "
                f"{self.window()}.")

    def rate_line(self) -> str:
        """The line the Compare and Evaluate tabs show in public mode."""
        return (f"ℹ️ Shared studio: **{self.rate_events}** distillations, evaluations or speed measurements per "
                f"visitor per {self.window()}.")


def plural(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def check_active_jobs(active: int, limits: Limits) -> None:
    """Refuse a new job when the visitor already has `active` jobs queued or running at the limit."""
    if active >= limits.active_jobs:
        raise LimitError(f"You already have {plural(active, 'job')} queued or running, and each visitor of this "
                         f"shared studio may have {limits.active_jobs} at a time: wait for one to finish, or "
                         f"cancel one in the Jobs tab, then submit again. Nothing was queued.")


def check_corpus_rows(rows: int, limits: Limits) -> None:
    if rows > limits.corpus_rows:
        raise LimitError(f"The corpus size {rows:,} is over this shared studio's limit of {limits.corpus_rows:,} "
                         f"texts per job: choose {limits.corpus_rows:,} or fewer. Nothing was queued.")


def check_uploads(sizes: Sequence[int], limits: Limits) -> None:
    """Refuse a job's uploads past the count or the total size per job (`sizes` in bytes, one per file)."""
    if len(sizes) > limits.uploads:
        raise LimitError(f"{plural(len(sizes), 'file')} uploaded, and this shared studio takes at most "
                         f"{limits.uploads} per job: merge them, or upload fewer. Nothing was queued.")
    total = sum(sizes)
    if total > limits.upload_mb * MB:
        raise LimitError(f"The uploads add up to {total / MB:,.1f} MB, and this shared studio takes at most "
                         f"{limits.upload_mb} MB per job: upload less, or compress them as .gz. Nothing was queued.")


class RateLimiter:
    """At most `Limits.rate_events` expensive events per visitor in any `Limits.rate_window_s` seconds
    (a sliding window: an event counts until it is that old). An event is `check`ed before it starts
    and `record`ed once it was accepted, so a refused submission (a bad recipe, the job limit) does
    not use up the visitor's allowance. Kept in the app's memory: a restart forgets it, which is
    harmless for a window of minutes. Thread-safe (Gradio runs events in threads).
    """

    MAX_VISITORS = 10_000  # past this many, visitors whose window has passed are forgotten

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._events: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def check(self, visitor: str, what: str, limits: Limits) -> None:
        """Raise `LimitError` when `visitor`'s window is full, saying when `what` may be tried again."""
        now = self._clock()
        with self._lock:
            events = self._events.get(visitor, deque())
            while events and now - events[0] >= limits.rate_window_s:
                events.popleft()
            if len(events) < limits.rate_events:
                return
            wait = max(1, math.ceil(limits.rate_window_s - (now - events[0])))
        raise LimitError(f"Too many expensive actions: each visitor of this shared studio may start "
                         f"{limits.rate_events} distillations, evaluations or speed measurements per "
                         f"{limits.window()}. Try {what} again in {plural(wait, 'second')}. Nothing was started.")

    def record(self, visitor: str, limits: Limits) -> None:
        now = self._clock()
        with self._lock:
            self._events.setdefault(visitor, deque()).append(now)
            if len(self._events) > self.MAX_VISITORS:
                self._events = {v: e for v, e in self._events.items() if e and now - e[-1] < limits.rate_window_s}
