"""The corpus plan: domain proportions turned into exact per-domain text counts, and what to draw them from.

Shares are normalised (the sliders need not add up to 100) and rounded with the largest-remainder
method, so the counts always sum to the requested corpus size — unlike
`interleave_datasets(stopping_strategy="first_exhausted")`, which stops when the first domain runs out.

Language: a plan is English ("en", the default), French ("fr") or both ("both": a cross-lingual
student learns from both corpora). The language chooses the catalogue's default sources
(`SourceCatalogue.default_keys`). With "both", each domain's count is split evenly between its
English and its French sources (`split_count`: half and half, the odd text to English; a domain's
uploads, whose language is not known, take a third, equal part), and whatever one part cannot fill
is topped up from the other(s), so a domain falls short only when all its sources together do. A
domain that the sources file gives no source in the plan's language (French academic text) is
`unserved`: it is reported as a shortfall when the corpus is built, not refused.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from core.corpus.cleaning import CleaningOptions
from core.errors import DistilleryError
from core.languages import LANGUAGES, check_language

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


def split_count(count: int, parts: int) -> list[int]:
    """`count` split into `parts` near-equal whole parts, the earlier parts taking the remainder."""
    base, extra = divmod(count, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


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
    language: str = "en"
    unserved: tuple[str, ...] = ()  # domains with no source in the plan's language: shortfalls, not errors

    def validate(self) -> dict[str, int]:
        """Check the plan and return the per-domain counts it asks for."""
        check_language(self.language)
        counts = domain_counts(self.shares, self.size)
        self.cleaning.validate()
        served = [d for d in DOMAINS if counts[d] > 0 and (self.sources.get(d) or d not in self.unserved)]
        if not served:
            raise DistilleryError(
                f"No {LANGUAGES[self.language]} source serves any domain with a share above 0 "
                f"({', '.join(d for d in DOMAINS if counts[d] > 0)}): give another domain a share, or upload a file."
            )
        empty = [d for d in DOMAINS if counts[d] > 0 and not self.sources.get(d) and d not in self.unserved]
        if empty:
            raise DistilleryError(
                "These domains have a share above 0 but no source: "
                + ", ".join(empty)
                + ". Choose a source or upload a file for each, or set their share to 0."
            )
        return counts
