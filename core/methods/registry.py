"""The distillation methods by name: `run_recipe`, the recipe and the UI look a method up here.

Adding a method is a module with a parameter class, a `distill` function and its `stages` (`core.methods.base`)
and one line below.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from core.errors import DistilleryError
from core.methods import corpus, vocabulary
from core.methods.base import Distilled

Params = vocabulary.VocabularyParams  # every method's parameters derive from model2vec's knobs


@dataclass(frozen=True)
class Method:
    name: str
    params: type[Params]
    distill: Callable[..., Distilled]
    # (params, corpus texts, the teacher as the recipe names it) → expected seconds per stage
    stages: Callable[[Any, int, Any], list[tuple[str, float]]]
    min_texts: int = 1  # the corpus size below which the method cannot work
    needs_weights: bool = False  # embeds tokens with the teacher's weights: refused for an endpoint teacher


METHODS: dict[str, Method] = {
    "vocabulary": Method("vocabulary", vocabulary.VocabularyParams, vocabulary.distill, vocabulary.stages,
                         needs_weights=True),
    "corpus": Method("corpus", corpus.CorpusParams, corpus.distill, corpus.stages, corpus.MIN_TEXTS),
}


def method(name: str) -> Method:
    if name not in METHODS:
        raise DistilleryError(f"Unknown method '{name}'; available: {', '.join(METHODS)}.")
    return METHODS[name]


def params_for(name: str, data: dict[str, Any] | Params | None = None) -> Params:
    """The method's parameters: its defaults, overridden by `data` (a dict from JSON, or parameters)."""
    cls = method(name).params
    if isinstance(data, Params):
        if type(data) is not cls:
            raise DistilleryError(f"The parameters given are the {data.method} method's, but the recipe's method is "
                                  f"'{name}'; give {cls.__name__} (or a dict) so that {name}'s defaults apply.")
        return data
    return cls.from_dict(data)
