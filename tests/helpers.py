"""Shared test recipes (imported by test modules as `helpers`)."""

from __future__ import annotations

from core.cleaning import CleaningOptions
from core.distill import DistillParams
from core.recipe import Recipe


def small_recipe(name: str = "small", **overrides) -> Recipe:
    """A recipe that runs in about 20 s on 2 cores: 400 texts, a 300-word corpus vocabulary."""
    fields = dict(name=name, corpus_size=400, collection_size=40,
                  cleaning=CleaningOptions(min_words=3, max_words=64),
                  distill=DistillParams(pca_dims=64, max_vocabulary_size=300, min_frequency=2))
    fields.update(overrides)
    return Recipe(**fields)
