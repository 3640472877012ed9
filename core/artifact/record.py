"""`ModelRecord`: how a model was made, as saved in its folder's `distillery.json`.

One typed object instead of a dict read by key across the code: the pipeline fills it, the card
renders it, the UI lists it, the evaluation adds its report to it. JSON in and out keeps the file
readable without Distillery; unknown keys from a newer version are kept, not dropped.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from core.encoders.teacher import TeacherInfo


@dataclass
class ModelRecord:
    id: str
    name: str
    created: str  # ISO 8601, UTC
    recipe: dict[str, Any]  # `Recipe.to_dict()`
    teacher: TeacherInfo
    corpus: dict[str, Any]  # the corpus manifest (`core.corpus.build`)
    vocabulary_added: int
    vocabulary_size: int
    dimension: int
    stages: dict[str, dict[str, float]] = field(default_factory=dict)  # `StageClock.stages`
    peak_rss_mb: float = 0.0
    training: dict[str, Any] | None = None  # the corpus method's curve and best epoch
    evaluation: dict[str, Any] | None = None  # the last evaluation report (`core.evaluation`)
    job_dir: str | None = None  # where the job that made it ran
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def method(self) -> str:
        return str(self.recipe.get("method", "vocabulary"))

    @property
    def title(self) -> str:
        return self.name or self.id

    @property
    def shortfalls(self) -> list[dict[str, Any]]:
        return list(self.corpus.get("shortfalls", []))

    def total_seconds(self) -> float:
        return round(sum(v["seconds"] for v in self.stages.values()), 1)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        extra = data.pop("extra")
        data["teacher"] = self.teacher.to_dict()
        return {**extra, **data}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelRecord:
        known = {f.name for f in fields(cls)} - {"extra"}
        values = {k: v for k, v in data.items() if k in known}
        values["teacher"] = TeacherInfo(**data["teacher"])
        return cls(**values, extra={k: v for k, v in data.items() if k not in known})
