"""Text cleaning: unicode and whitespace normalisation, sentence-aware passage splitting, filters.

Passages are bounded in words so every passage fits the teacher's context window; splitting packs
whole sentences and only cuts inside a sentence when that sentence alone is too long.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import asdict, dataclass
from typing import Any

from core.errors import DistilleryError

# Zero-width joiners (U+200C, U+200D) are kept: emoji sequences (👨‍👩‍👧) and Persian or Indic words need them.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b\u200e\u200f\u2028\u2029\ufeff]")
_SPACE = re.compile(r"\s+")
# A sentence ends at . ! ? (optionally followed by quotes/brackets) before whitespace and a capital,
# digit or opening quote — good enough for passage packing, where a missed split only costs length.
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")


@dataclass(frozen=True)
class CleaningOptions:
    """What the corpus builder does to each text. Defaults suit a MiniLM-sized context."""

    normalise: bool = True
    dedupe: bool = True
    min_words: int = 3
    max_words: int = 128

    def validate(self) -> None:
        if self.min_words < 1:
            raise DistilleryError("The minimum passage length must be at least 1 word.")
        if self.max_words < self.min_words:
            raise DistilleryError(
                f"The maximum passage length ({self.max_words} words) is below the minimum ({self.min_words})."
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def normalise_text(text: str) -> str:
    """NFKC, control characters removed, all whitespace runs collapsed to one space."""
    text = unicodedata.normalize("NFKC", text)
    text = _CONTROL.sub(" ", text)
    return _SPACE.sub(" ", text).strip()


def split_sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


def split_passages(text: str, max_words: int) -> list[str]:
    """Pack consecutive sentences into passages of at most `max_words` words."""
    passages: list[str] = []
    current: list[str] = []
    current_len = 0
    for sentence in split_sentences(text):
        words = sentence.split()
        if len(words) > max_words:  # one over-long sentence: flush, then cut it into windows
            if current:
                passages.append(" ".join(current))
                current, current_len = [], 0
            passages.extend(" ".join(words[i : i + max_words]) for i in range(0, len(words), max_words))
            continue
        if current_len + len(words) > max_words:
            passages.append(" ".join(current))
            current, current_len = [], 0
        current.append(sentence)
        current_len += len(words)
    if current:
        passages.append(" ".join(current))
    return passages


def clean_document(text: str, options: CleaningOptions) -> list[str]:
    """One raw document in, zero or more passages out (normalised, split, length-filtered)."""
    text = normalise_text(text) if options.normalise else text.strip()
    if not text:
        return []
    return [p for p in split_passages(text, options.max_words) if len(p.split()) >= options.min_words]
