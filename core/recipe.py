"""A recipe: everything needed to reproduce one distillation, as plain data (JSON in, JSON out)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from core.cleaning import CleaningOptions
from core.corpus import CorpusPlan
from core.corpus_method import MIN_TEXTS as MIN_CORPUS_METHOD_TEXTS
from core.distill import CORPUS_SIF_COEFFICIENT, DistillParams
from core.errors import DistilleryError
from core.plan import DEFAULT_SHARES, DOMAINS
from core.sources import SourceCatalogue, SourceSpec
from core.teacher import DEFAULT_TEACHER, TeacherInfo, resolve_teacher

METHODS = ("vocabulary", "corpus")
MAX_COLLECTION = 5_000


def default_params(method: str) -> DistillParams:
    """The distillation defaults of a method: the corpus method weighs tokens by real corpus counts,
    where model2vec's SIF coefficient (1e-4, meant for rank-estimated counts) is far too strong."""
    if method == "corpus":
        return DistillParams(sif_coefficient=CORPUS_SIF_COEFFICIENT)
    return DistillParams()


@dataclass
class Recipe:
    """`sources` holds catalogue keys per domain (None: the catalogue's defaults); `uploads` holds
    sources already accepted into the job's folder."""

    name: str = ""
    teacher: str = DEFAULT_TEACHER
    trust_remote_code: bool = False
    method: str = "vocabulary"
    shares: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_SHARES))
    corpus_size: int = 20_000
    sources: dict[str, list[str]] | None = None
    uploads: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    cleaning: CleaningOptions = field(default_factory=CleaningOptions)
    distill: DistillParams = field(default_factory=DistillParams)
    collection_size: int = 500
    seed: int = 0
    evaluate_after: bool = False  # queue an evaluation job (core.evaluate) when the model is saved
    evaluation_rows: int | None = None  # rows per task for that evaluation (None: every row)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Recipe:
        data = dict(data)
        data["cleaning"] = CleaningOptions(**(data.get("cleaning") or {}))
        distill = dict(data.get("distill") or {})
        defaults = default_params(str(data.get("method", "vocabulary"))).to_dict()
        data["distill"] = DistillParams(**{**defaults, **distill})
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise DistilleryError(f"Unknown recipe field(s): {', '.join(sorted(unknown))}.")
        return cls(**data)

    def source_specs(self, catalogue: SourceCatalogue) -> dict[str, list[SourceSpec]]:
        specs: dict[str, list[SourceSpec]] = {}
        for domain in DOMAINS:
            keys = catalogue.default_keys(domain) if self.sources is None else self.sources.get(domain, [])
            specs[domain] = [catalogue.get(k) for k in keys]
            specs[domain] += [SourceSpec.from_dict(u) for u in self.uploads.get(domain, [])]
        return specs

    def corpus_plan(self, catalogue: SourceCatalogue) -> CorpusPlan:
        return CorpusPlan(dict(self.shares), self.corpus_size, self.source_specs(catalogue), self.cleaning, self.seed)


def validate_recipe(recipe: Recipe, catalogue: SourceCatalogue) -> TeacherInfo:
    """Every check that can run before the job starts; returns the resolved teacher."""
    if recipe.method not in METHODS:
        raise DistilleryError(f"Unknown method '{recipe.method}'; available: {', '.join(METHODS)}.")
    if not isinstance(recipe.seed, int):
        raise DistilleryError("The seed must be a whole number.")
    if recipe.evaluation_rows is not None and recipe.evaluation_rows < 10:
        raise DistilleryError("Rows per task for the evaluation must be at least 10 (or empty for every row).")
    if isinstance(recipe.corpus_size, float) and (math.isnan(recipe.corpus_size) or recipe.corpus_size % 1):
        raise DistilleryError(f"The corpus size must be a whole number, not {recipe.corpus_size}.")
    if isinstance(recipe.corpus_size, float):
        recipe.corpus_size = int(recipe.corpus_size)
    if recipe.method == "corpus" and recipe.corpus_size < MIN_CORPUS_METHOD_TEXTS:
        raise DistilleryError(f"The corpus method needs at least {MIN_CORPUS_METHOD_TEXTS} texts to train on "
                              f"(the corpus size is {recipe.corpus_size}); raise it or use the vocabulary method.")
    if not 10 <= recipe.collection_size <= MAX_COLLECTION:
        raise DistilleryError(f"The search collection must hold between 10 and {MAX_COLLECTION:,} texts.")
    recipe.corpus_plan(catalogue).validate()
    teacher = resolve_teacher(recipe.teacher, recipe.trust_remote_code)
    recipe.distill.validate(teacher)
    return teacher
