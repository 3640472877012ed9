"""Retention and the ship verdict: pure functions of scores, no model and no I/O.

Retention is student / teacher per task, per task type and on the mean of the task-type means (each
type counts once, so three retrieval sets do not outweigh one pair-classification set; the French
suite's bitext mining is one more type). The verdict compares retention and the CPU speed-up with
the user's thresholds and names the weakest task type.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from core.errors import DistilleryError


@dataclass(frozen=True)
class Thresholds:
    """Ship thresholds as ratios to the teacher: retention of its average, and CPU speed-up."""

    viable_retention: float = 0.83
    viable_speedup: float = 50.0
    optimal_retention: float = 0.89
    optimal_speedup: float = 100.0

    def validate(self) -> None:
        if not 0 < self.viable_retention <= self.optimal_retention <= 2:
            raise DistilleryError("Retention thresholds must satisfy 0 < viable ≤ optimal (e.g. 0.83 and 0.89).")
        if not 0 < self.viable_speedup <= self.optimal_speedup:
            raise DistilleryError("Speed-up thresholds must satisfy 0 < viable ≤ optimal (e.g. 50 and 100).")


def summarise(scores: dict[str, float], types: dict[str, str]) -> dict[str, Any]:
    """Per-task scores, per-type means, and the mean of the type means (each type counts once)."""
    by_type: dict[str, list[float]] = {}
    for name, score in scores.items():
        by_type.setdefault(types[name], []).append(score)
    type_means = {t: round(sum(v) / len(v), 2) for t, v in by_type.items()}
    mean = round(sum(type_means.values()) / len(type_means), 2) if type_means else None
    return {"tasks": scores, "task_types": types, "type_means": type_means, "mean_of_types": mean}


def retention(student: dict[str, Any], teacher: dict[str, Any]) -> dict[str, Any]:
    """student / teacher per task, per task type, and on the mean of task-type means, over the tasks
    both were scored on."""
    shared = [n for n in student["tasks"] if n in teacher["tasks"] and teacher["tasks"][n] > 0]
    if not shared:
        raise DistilleryError("The student and the teacher share no scored task; nothing to compare.")
    s = summarise({n: student["tasks"][n] for n in shared}, {n: student["task_types"][n] for n in shared})
    t = summarise({n: teacher["tasks"][n] for n in shared}, {n: teacher["task_types"][n] for n in shared})
    return {
        "tasks": {n: round(student["tasks"][n] / teacher["tasks"][n], 4) for n in shared},
        "type_means": {k: round(s["type_means"][k] / t["type_means"][k], 4) for k in s["type_means"]},
        "overall": round(s["mean_of_types"] / t["mean_of_types"], 4),
    }


def verdict(kept: dict[str, Any], speedup: float | None, thresholds: Thresholds = Thresholds()) -> dict[str, Any]:
    """optimal / viable / not viable, from retention and CPU speed-up, naming the weakest task type."""
    thresholds.validate()
    weakest = min(kept["type_means"], key=kept["type_means"].get)
    overall = kept["overall"]
    if speedup is not None and overall >= thresholds.optimal_retention and speedup >= thresholds.optimal_speedup:
        decision = "optimal"
    elif speedup is not None and overall >= thresholds.viable_retention and speedup >= thresholds.viable_speedup:
        decision = "viable"
    else:
        decision = "not viable"
    reasons = []
    if overall < thresholds.viable_retention:
        reasons.append(f"retention {overall:.1%} is below {thresholds.viable_retention:.0%}")
    if speedup is None:
        reasons.append("the speed-up has not been measured")
    elif speedup < thresholds.viable_speedup:
        reasons.append(f"the speed-up {speedup:.0f}× is below {thresholds.viable_speedup:.0f}×")
    return {"verdict": decision, "retention": overall, "speedup": speedup,
            "weakest_type": weakest, "weakest_retention": kept["type_means"][weakest],
            "reasons": reasons, "thresholds": asdict(thresholds)}
