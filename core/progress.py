"""Progress reporting and stage timing, shared by the library, the worker and the command line.

Core functions take a `Progress` callable and call it with a stage, a fraction in [0, 1] and a
message. The worker turns calls into huey key/value writes (and checks for cancellation there);
the command line turns them into tqdm bars. Core code never knows which.

`StageClock` is the one stage timer: the pipeline and each distillation method time their stages
with it, and each stage records its own wall time and its own peak memory. `StagePlan` is the one
owner of a job's overall progress: the stages it will run, each weighted by its expected time, so
one bar moves steadily across the whole job instead of restarting at every stage.
"""

from __future__ import annotations

import resource
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from tqdm import tqdm

from core.errors import Cancelled

_CLEAR_REFS = Path("/proc/self/clear_refs")
_STATUS = Path("/proc/self/status")


class Progress(Protocol):
    def __call__(self, stage: str, fraction: float, message: str = "") -> None: ...


def silent(stage: str, fraction: float, message: str = "") -> None:
    """A `Progress` that ignores everything."""


_peak_before_reset_mb = 0.0  # the process's peak when `_reset_peak` last restarted the kernel's counter


def peak_rss_mb() -> float:
    """Peak resident memory of this process since it started (Linux reports KiB).

    Restarting the kernel's counter for a stage (`_reset_peak`) restarts `ru_maxrss` too, so the peak
    reached before the last restart is kept here.
    """
    return max(_peak_before_reset_mb, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def _reset_peak() -> bool:
    """Restart the kernel's peak-RSS counter (VmHWM), so the next reading is one stage's own peak.

    Linux resets it when "5" is written to /proc/self/clear_refs; elsewhere (or where /proc is
    read-only) a stage reports the process's peak so far, which is still an upper bound.
    """
    global _peak_before_reset_mb
    _peak_before_reset_mb = peak_rss_mb()
    try:
        _CLEAR_REFS.write_text("5")
        return True
    except OSError:
        return False


def _peak_since_reset_mb() -> float:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return peak_rss_mb()


class StageClock:
    """Wall time and peak memory of each stage, for the record, the card and the benches."""

    def __init__(self) -> None:
        self.stages: dict[str, dict[str, float]] = {}

    @contextmanager
    def stage(self, name: str, alongside: str | None = None) -> Iterator[None]:
        """Time one stage. `alongside` names the stage it runs concurrently with (in another thread,
        `Alongside`): it is recorded with that name and does not restart the peak-memory counter, which
        is the process's (its peak is then the process's so far, an upper bound)."""
        resettable = alongside is None and _reset_peak()
        start = time.perf_counter()
        yield
        peak = _peak_since_reset_mb() if resettable else peak_rss_mb()
        record: dict[str, Any] = {"seconds": round(time.perf_counter() - start, 3), "peak_rss_mb": round(peak, 1)}
        if alongside:
            record["alongside"] = alongside
        self.stages[name] = record


def stage_times(stages: dict[str, dict[str, Any]]) -> str:
    """One line of a record's stage times (`StageClock.stages`), for the job's message and the card."""
    return " · ".join(f"{name} {v['seconds']:.1f} s" + (f" (alongside {v['alongside']})" if v.get("alongside") else "")
                      for name, v in stages.items())


def wall_seconds(stages: dict[str, dict[str, Any]]) -> float:
    """The wall time of a run's stages: a stage that ran alongside another costs nothing of its own."""
    return sum(v["seconds"] for v in stages.values() if not v.get("alongside"))


class Alongside:
    """Work run in a thread alongside the caller's own stage (the teacher pass), so that stages that do
    not need that stage's output use the cores (or the GPU's idle CPU) it leaves free.

    Contract: `work(report)` calls `report(stage, fraction, message)` as a `Progress`; once `stop()` was
    called, `report` raises `Cancelled`. The caller calls `check()` from its own progress (it raises the
    work's error at once, so a failure is not found only after a long teacher pass), then `result(progress)`,
    which waits for the work while relaying its reports to `progress` in the caller's thread: a
    job's progress callback (its cancel check, its status writes) only ever runs in the caller's thread.
    Why a thread and not a process: the work needs the caller's objects and returns large arrays, and
    tokenizers, torch and numpy release the GIL in their heavy loops.
    """

    def __init__(self, work: Callable[[Progress], Any], name: str = "distillery-alongside",
                 concurrent: bool = True) -> None:
        """`concurrent=False` runs the work to its end before returning: the sequential schedule, for a
        benchmark's baseline and the tests that compare the two."""
        self._stop = threading.Event()
        self._latest: dict[str, tuple[float, str]] = {}  # each stage's last report, in the order they began
        self._error: BaseException | None = None
        self._value: Any = None
        self._thread = threading.Thread(target=self._run, args=(work,), name=name, daemon=True)
        self._thread.start()
        if not concurrent:
            self._thread.join()

    def _report(self, stage: str, fraction: float, message: str = "") -> None:
        if self._stop.is_set():
            raise Cancelled("stopped: the stage it ran alongside ended without it")
        self._latest[stage] = (fraction, message)

    def _run(self, work: Callable[[Progress], Any]) -> None:
        try:
            self._value = work(self._report)
        except BaseException as exc:  # handed to the caller's thread by `check` and `result`
            self._error = exc

    def check(self) -> None:
        """Raise the work's error now, if it has failed."""
        if self._error is not None and not isinstance(self._error, Cancelled):
            raise self._error

    def result(self, progress: Progress = silent, poll: float = 0.25) -> Any:
        """The work's value, waited for with each stage's latest report relayed to `progress` (in the
        order the stages began, so a stage that ended before the wait still shows as done)."""
        relayed: dict[str, tuple[float, str]] = {}

        def relay() -> None:
            for stage, report in list(self._latest.items()):
                if relayed.get(stage) != report:
                    relayed[stage] = report
                    progress(stage, *report)

        try:
            while self._thread.is_alive():
                relay()  # the caller's progress may raise (a cancelled job): the work stops with it
                self._thread.join(poll)
        except BaseException:
            self.stop()
            raise
        if self._error is not None:
            raise self._error
        relay()
        return self._value

    def stop(self) -> None:
        """End the work at its next report and wait for it (the caller's own stage failed)."""
        self._stop.set()
        self._thread.join()


# Expected seconds per stage on the 2-core development machine: (fixed seconds, seconds per 1,000
# texts), the linear fits of `bench/pipeline.py` (bench/results/pipeline.json, "fits"; a test keeps
# them equal). Only their ratios matter for the bar; the ETA rescales them by the measured pace.
STAGE_COSTS: dict[str, tuple[float, float]] = {
    "corpus": (0.75, 0.038), "featurize": (92.08, 8.826), "vocabulary": (0.09, 0.007),
    "distill": (13.28, 0.053), "weights": (0.36, 0.03), "pca": (0.11, 0.015), "train": (-0.94, 0.965),
    "save": (0.24, -0.003), "evaluate": (26.5, -0.033),
}  # "index" depends on the collection, not the corpus: `pipeline.stage_plan` costs it per text


def expected_seconds(stage: str, texts: int) -> float:
    """A stage's expected wall time for `texts` corpus texts (at least 0.1 s; fits can dip below 0)."""
    fixed, per_thousand = STAGE_COSTS[stage]
    return max(0.1, fixed + per_thousand * texts / 1000)


@dataclass(frozen=True)
class StagePlan:
    """The stages a job runs, in order, each with its expected seconds.

    The overall fraction is the expected time of the finished stages plus the running stage's share
    of its own, over the total: a stage that usually takes 90% of a job moves the bar across 90% of
    it. A stage not in the plan (the worker's "starting", a check) keeps the bar where it is.
    """

    stages: tuple[tuple[str, float], ...]

    @classmethod
    def of(cls, stages: Iterable[tuple[str, float]]) -> StagePlan:
        return cls(tuple((name, max(float(seconds), 0.0)) for name, seconds in stages))

    def scaled(self, factor: float) -> StagePlan:
        """The same stages at another pace (`core.pace`: this machine's measured ratio to the plan)."""
        return StagePlan(tuple((name, seconds * factor) for name, seconds in self.stages))

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.stages]

    @property
    def total_seconds(self) -> float:
        return sum(seconds for _, seconds in self.stages)

    def overall(self, stage: str, fraction: float) -> float | None:
        """The job's overall fraction while `stage` is at `fraction`; None for a stage outside the plan."""
        if stage not in self.names:
            return None
        index = self.names.index(stage)
        done = sum(seconds for _, seconds in self.stages[:index])
        total = self.total_seconds or 1.0
        current = self.stages[index][1] if self.total_seconds else 1.0 / len(self.stages)
        return min(1.0, (done + current * min(max(fraction, 0.0), 1.0)) / total)

    def board(self, stage: str, fraction: float, reached: str | None = None) -> list[list[Any]]:
        """[name, "done" | "running" | "waiting", fraction] per stage, for the Jobs tab's list.

        `reached` is the last planned stage seen, which stays "running" while a stage outside the
        plan reports (so the list never jumps back to all "waiting").
        """
        current = stage if stage in self.names else reached
        position = self.names.index(current) if current in self.names else -1
        rows: list[list[Any]] = []
        for i, name in enumerate(self.names):
            if i < position:
                rows.append([name, "done", 1.0])
            elif i == position:
                rows.append([name, "running", round(fraction, 4) if stage == current else 0.0])
            else:
                rows.append([name, "waiting", 0.0])
        return rows


class OverallClock:
    """A job's overall fraction and ETA from its `StagePlan` and the pace measured so far.

    The ETA is the plan's expected remaining time scaled by the measured pace (elapsed over the
    expected time of the work done), so a machine twice as fast as the bench's gets half the ETA
    once the job is under way; before 2% of the job is done it is the plan's own estimate.
    """

    def __init__(self, plan: StagePlan, started: float | None = None) -> None:
        self.plan = plan
        self.started = time.time() if started is None else started
        self.fraction = 0.0
        self.reached: str | None = None

    def update(self, stage: str, fraction: float) -> float:
        overall = self.plan.overall(stage, fraction)
        if overall is not None:
            names = self.plan.names
            if self.reached is None or names.index(stage) >= names.index(self.reached):
                self.reached = stage  # the furthest stage seen: a late report of an earlier one is ignored
            self.fraction = max(self.fraction, overall)  # never moves back
        return self.fraction

    def eta(self, now: float | None = None) -> float:
        elapsed = (time.time() if now is None else now) - self.started
        remaining = (1.0 - self.fraction) * self.plan.total_seconds
        if self.fraction < 0.02:
            return remaining
        return elapsed * (1.0 - self.fraction) / self.fraction


class TqdmProgress:
    """A `Progress` for scripts: one tqdm bar per stage, in percent, and the job's overall share in
    each bar's label when a `StagePlan` is given."""

    def __init__(self, plan: StagePlan | None = None) -> None:
        self._bar: tqdm | None = None
        self._stage = ""
        self._overall = OverallClock(plan) if plan is not None else None

    def __call__(self, stage: str, fraction: float, message: str = "") -> None:
        if stage != self._stage:
            self.close()
            self._stage = stage
            self._bar = tqdm(total=100, desc=self._label(stage), bar_format="{desc}: {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}] {postfix}")
        assert self._bar is not None
        if self._overall is not None:
            self._overall.update(stage, fraction)
            self._bar.set_description_str(self._label(stage), refresh=False)
        self._bar.n = round(100 * min(max(fraction, 0.0), 1.0), 1)
        if message:
            self._bar.set_postfix_str(message[:60], refresh=False)
        self._bar.refresh()

    def _label(self, stage: str) -> str:
        if self._overall is None or stage not in self._overall.plan.names:
            return stage
        names = self._overall.plan.names
        return f"[{names.index(stage) + 1}/{len(names)} · job {self._overall.fraction:.0%}] {stage}"

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
