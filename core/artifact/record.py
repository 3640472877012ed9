"""`ModelRecord`: how a model was made, as saved in its folder's `distillery.json`.

One typed object instead of a dict read by key across the code: the pipeline fills it, the card
renders it, the UI lists it, the evaluation adds its report to it. JSON in and out keeps the file
readable without Distillery; unknown keys from a newer version are kept, not dropped.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any

from core.encoders.endpoint import without_url
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

    def published(self) -> ModelRecord:
        """The record as it may leave this machine (a Hub push): no job folder, and every absolute
        local path (the teacher's weights, a local source's file) cut to `local:<file name>`. The
        recipe stays readable, but a username or a private folder layout is not published; nor is an
        endpoint teacher's URL."""
        data = _without_local_paths(without_url(self.to_dict()))
        data["job_dir"] = None
        return ModelRecord.from_dict(data)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelRecord:
        known = {f.name for f in fields(cls)} - {"extra"}
        values = {k: v for k, v in data.items() if k in known}
        values["teacher"] = TeacherInfo(**data["teacher"])
        return cls(**values, extra={k: v for k, v in data.items() if k not in known})


_ABSOLUTE = re.compile(r"^(/|~|[A-Za-z]:[\\/]|\\\\)")  # POSIX, home, a Windows drive or share


def _without_local_paths(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _without_local_paths(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_without_local_paths(item) for item in value]
    if isinstance(value, str) and _ABSOLUTE.match(value) and "\n" not in value:
        name = (PureWindowsPath(value) if "\\" in value else PurePosixPath(value)).name
        return f"local:{name}"
    return value
