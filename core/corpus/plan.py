"""The corpus plan: domain proportions turned into exact per-domain text counts, and what to draw them from.

Shares are normalised (the sliders need not add up to 100) and rounded with the largest-remainder
method, so the counts always sum to the requested corpus size — unlike
`interleave_datasets(stopping_strategy="first_exhausted")`, which stops when the first domain runs out.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from core.corpus.cleaning import CleaningOptions
from core.errors import DistilleryError

if TYPE_CHECKING:
    from core.corpus.sources import SourceSpec

DOMAINS: tuple[str, ...] = ("academic", "web", "conversational", "code", "domain-specific")
DEFAULT_SHARES: dict[str, float] = {
    "academic": 30.0,
    "web": 30.0,
    "conversational": 20.0,
    "code": 10.0,
    "domain-specific": 10.0,
}
MAX_CORPUS_SIZE = 2_000_000


def normalise_shares(shares: Mapping[str, float]) -> dict[str, float]:
    """Return shares that sum to 1, or raise a `DistilleryError` that says what is wrong."""
    unknown = sorted(set(shares) - set(DOMAINS))
    if unknown:
        raise DistilleryError(f"Unknown domain(s): {', '.join(unknown)}. Known: {', '.join(DOMAINS)}.")
    values = {d: shares.get(d, 0.0) for d in DOMAINS}
    for domain, value in values.items():
        if value is None or not isinstance(value, (int, float)) or math.isnan(value) or math.isinf(value):
            raise DistilleryError(f"The share of '{domain}' is not a number ({value!r}).")
        if value < 0:
            raise DistilleryError(f"The share of '{domain}' is negative ({value}); shares must be 0 or more.")
    total = sum(values.values())
    if total <= 0:
        raise DistilleryError("All domain proportions are zero: give at least one domain a share above 0.")
    return {d: v / total for d, v in values.items()}


def domain_counts(shares: Mapping[str, float], corpus_size: int) -> dict[str, int]:
    """Exact per-domain counts that sum to `corpus_size` (largest remainder)."""
    validate_corpus_size(corpus_size)
    fractions = normalise_shares(shares)
    raw = {d: fractions[d] * corpus_size for d in DOMAINS}
    counts = {d: math.floor(v) for d, v in raw.items()}
    missing = corpus_size - sum(counts.values())
    by_remainder = sorted(DOMAINS, key=lambda d: (raw[d] - counts[d], fractions[d]), reverse=True)
    for domain in by_remainder[:missing]:
        counts[domain] += 1
    return counts


def validate_corpus_size(corpus_size: int) -> None:
    if not isinstance(corpus_size, int) or isinstance(corpus_size, bool):
        raise DistilleryError(f"The corpus size must be a whole number, not {corpus_size!r}.")
    if corpus_size <= 0:
        raise DistilleryError("The corpus size must be at least 1 text.")
    if corpus_size > MAX_CORPUS_SIZE:
        raise DistilleryError(f"The corpus size is capped at {MAX_CORPUS_SIZE:,} texts.")


@dataclass
class CorpusPlan:
    """What to build: shares per domain, total size, the sources chosen per domain, cleaning."""

    shares: dict[str, float]
    size: int
    sources: dict[str, list[SourceSpec]]
    cleaning: CleaningOptions = field(default_factory=CleaningOptions)
    seed: int = 0

    def validate(self) -> dict[str, int]:
        """Check the plan and return the per-domain counts it asks for."""
        counts = domain_counts(self.shares, self.size)
        self.cleaning.validate()
        empty = [d for d in DOMAINS if counts[d] > 0 and not self.sources.get(d)]
        if empty:
            raise DistilleryError(
                "These domains have a share above 0 but no source: "
                + ", ".join(empty)
                + ". Choose a source or upload a file for each, or set their share to 0."
            )
        return counts
