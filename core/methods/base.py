"""The method interface: what `run_recipe` calls, whatever the method.

Contract: a method is a module-level `distill(teacher, params, texts, work_dir, seed, progress)`
that returns a `Distilled` (the model and its stage times, each stage timed by a `StageClock`), a
`stages(params, texts, teacher)` that lists those stages with their expected seconds (a job's overall
bar; `teacher` as the recipe names it, never loaded), and a frozen parameter dataclass with `method`
(its name), `validate(teacher)`, `to_dict` and `from_dict`, whose defaults are that method's own.
`work_dir` is the job's scratch folder for anything worth resuming after an interruption; nothing is
written to the model folder here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Distilled:
    """A distilled model and what the record (and a benchmark) wants to know about how it was made."""

    model: Any  # model2vec.StaticModel
    vocabulary_added: int
    stages: dict[str, dict[str, float]] = field(default_factory=dict)  # `StageClock.stages`
    training: dict[str, Any] | None = None  # the record's training section (corpus method)
    details: Any = None  # the method's own result (e.g. `CorpusDistillation`), for benchmarks and tests
