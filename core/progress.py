"""Progress reporting shared by the library, the worker and the command line.

Core functions take a `Progress` callable and call it with a stage, a fraction in [0, 1] and a
message. The worker turns calls into huey key/value writes (and checks for cancellation there);
the command line turns them into tqdm bars. Core code never knows which.
"""

from __future__ import annotations

from typing import Protocol

from tqdm import tqdm


class Progress(Protocol):
    def __call__(self, stage: str, fraction: float, message: str = "") -> None: ...


def stage_times(stages: dict[str, dict[str, float]]) -> str:
    """One line of a record's stage times (`StageClock.stages`), for the job's message and the card."""
    return " · ".join(f"{name} {v['seconds']:.1f} s" for name, v in stages.items())


def silent(stage: str, fraction: float, message: str = "") -> None:
    """A `Progress` that ignores everything."""


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

