"""This machine's pace against the stage plans: how long jobs really took over what their plan expected.

A `StagePlan`'s seconds come from the pipeline bench on a 2-core machine; a laptop with eight cores,
or a server under load, runs at another pace. Each finished job records its ratio (actual over
planned seconds) per kind of job, and the median of the recent ones scales the next plans: the
Recipe tab's estimate and a job's ETA before it has measured its own pace. With no job finished yet
the factor is 1 (the bench's machine).
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from core import settings
from core.files import write_json

KEEP = 20  # ratios kept per kind: recent jobs say most about the machine as it is now
PACE_FILE = "pace.json"


def _path() -> Path:
    return settings.data_dir() / PACE_FILE


def _read() -> dict[str, list[float]]:
    try:
        data = json.loads(_path().read_text())
    except (OSError, ValueError):
        return {}
    return {kind: [float(r) for r in ratios if isinstance(r, int | float) and r > 0]
            for kind, ratios in data.items() if isinstance(ratios, list)} if isinstance(data, dict) else {}


def record(kind: str, planned_seconds: float, actual_seconds: float) -> None:
    """Remember one finished job's ratio (ignored when either figure is not positive)."""
    if planned_seconds <= 0 or actual_seconds <= 0:
        return
    data = _read()
    data[kind] = [*data.get(kind, []), round(actual_seconds / planned_seconds, 4)][-KEEP:]
    write_json(_path(), data)


def factor(kind: str) -> float:
    """The median ratio of this kind's recent jobs, or 1.0 when none has finished here."""
    ratios = _read().get(kind)
    return statistics.median(ratios) if ratios else 1.0


def measured(kind: str) -> int:
    """How many finished jobs of this kind the factor rests on."""
    return len(_read().get(kind, []))
