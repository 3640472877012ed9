"""Progress reporting and stage timing, shared by the library, the worker and the command line.

Core functions take a `Progress` callable and call it with a stage, a fraction in [0, 1] and a
message. The worker turns calls into huey key/value writes (and checks for cancellation there);
the command line turns them into tqdm bars. Core code never knows which.

`StageClock` is the one stage timer: the pipeline and each distillation method time their stages
with it, and each stage records its own wall time and its own peak memory.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

from tqdm import tqdm

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
    def stage(self, name: str) -> Iterator[None]:
        resettable = _reset_peak()
        start = time.perf_counter()
        yield
        peak = _peak_since_reset_mb() if resettable else peak_rss_mb()
        self.stages[name] = {"seconds": round(time.perf_counter() - start, 3), "peak_rss_mb": round(peak, 1)}


def stage_times(stages: dict[str, dict[str, float]]) -> str:
    """One line of a record's stage times (`StageClock.stages`), for the job's message and the card."""
    return " · ".join(f"{name} {v['seconds']:.1f} s" for name, v in stages.items())


class TqdmProgress:
    """A `Progress` for scripts: one tqdm bar per stage, in percent."""

    def __init__(self) -> None:
        self._bar: tqdm | None = None
        self._stage = ""

    def __call__(self, stage: str, fraction: float, message: str = "") -> None:
        if stage != self._stage:
            self.close()
            self._stage = stage
            self._bar = tqdm(total=100, desc=stage, bar_format="{desc}: {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}] {postfix}")
        assert self._bar is not None
        self._bar.n = round(100 * min(max(fraction, 0.0), 1.0), 1)
        if message:
            self._bar.set_postfix_str(message[:60], refresh=False)
        self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
