"""model2vec's tokenization of a static model, the same ids in less time.

`StaticModel.encode` cuts each text to `max_length × median_token_length` characters, then runs the
Rust tokenizer (no special tokens, truncated at `max_length` tokens). For the BERT-style tokenizers
most teachers use (MiniLM, bge, e5, ...), about half of that tokenizer's time goes to its normaliser
(`BertNormalizer`), which decomposes every character to strip accents even when the text is plain
ASCII (docs/benchmarks.md, "Student encode").

On printable ASCII (plus tab and line breaks), `BertNormalizer` can only lowercase: there are no
accents to strip, no Chinese characters to space out, no control characters to drop, and the
whitespace it maps to spaces is split on by `BertPreTokenizer` anyway. So `StaticTokenizer` keeps a
twin of the tokenizer with no normaliser, lowercases such texts with Python's `str.lower` (exact on
ASCII, and cheaper than any normaliser), and sends them to the twin; every other text goes to (a
copy of) the original. Added tokens matched on the raw text (`[CLS]`, `[UNK]`, ...) are matched
before normalisation, so a text holding the first character of one (`[`) keeps the original path
too. The twin is made only when the tokenizer has exactly that shape (tests compare both paths on
the shared corpora and on random strings); any other tokenizer keeps its single path.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tokenizers import Tokenizer


class StaticTokenizer:
    """Token ids exactly as `StaticModel.tokenize` after `StaticModel.encode`'s cut (ids of
    `[UNK]` kept: the pooling drops them). Thread-safe: both tokenizers are this object's own
    copies, never reconfigured after construction, so a concurrent `StaticModel.encode` (which sets
    its tokenizer's truncation on every call) cannot disturb them."""

    def __init__(self, model: Any) -> None:  # model: model2vec.StaticModel
        self.max_chars: int | None = None
        if model.max_length is not None:
            self.max_chars = model.max_length * model.median_token_length
        self.full = _copy(model.tokenizer, model.max_length)
        twin = plain_ascii_twin(self.full)
        self.plain: Tokenizer | None = twin.tokenizer if twin else None
        self._lowercase = twin.lowercase if twin else False
        self._raw_starts = twin.raw_starts if twin else ""

    @property
    def copies(self) -> int:
        """How many tokenizers this object holds (for memory estimates)."""
        return 1 if self.plain is None else 2

    def ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Each text's token ids, in order."""
        if self.max_chars is not None:
            texts = [text[: self.max_chars] for text in texts]
        if self.plain is None:  # not a BERT-shaped tokenizer
            return [e.ids for e in self.full.encode_batch_fast(texts, add_special_tokens=False)]
        plain: list[int] = []
        other: list[int] = []
        is_plain = self._is_plain
        for i, text in enumerate(texts):
            (plain if is_plain(text) else other).append(i)
        if not other:
            return [e.ids for e in self.plain.encode_batch_fast(self._lowered(texts), add_special_tokens=False)]
        ids: list[list[int]] = [[] for _ in texts]
        for rows, tokenizer, chosen in ((plain, self.plain, self._lowered([texts[i] for i in plain])),
                                        (other, self.full, [texts[i] for i in other])):
            if rows:
                for i, encoding in zip(rows, tokenizer.encode_batch_fast(chosen, add_special_tokens=False)):
                    ids[i] = encoding.ids
        return ids

    def one(self, text: str) -> list[int]:
        """One text's ids: the search box's query, with nothing but the call itself."""
        if self.max_chars is not None:
            text = text[: self.max_chars]
        if self.plain is not None and self._is_plain(text):
            return self.plain.encode_batch_fast([text.lower() if self._lowercase else text],
                                                add_special_tokens=False)[0].ids
        return self.full.encode_batch_fast([text], add_special_tokens=False)[0].ids

    def _is_plain(self, text: str) -> bool:
        """Printable ASCII, tabs and line breaks, and none of the raw-matched tokens' first characters
        (`str.isascii` reads a flag, `str.isprintable` and `in` are C loops: a regex costs ten times more)."""
        if not text.isascii() or not (text.isprintable() or _NOT_PLAIN_ASCII.search(text) is None):
            return False
        return not any(char in text for char in self._raw_starts)

    def _lowered(self, texts: Sequence[str]) -> Sequence[str]:
        return [text.lower() for text in texts] if self._lowercase else texts


@dataclass(frozen=True)
class PlainTwin:
    """A tokenizer with no normaliser, the same ids as its original on printable ASCII texts (tabs and
    line breaks allowed) that hold none of `raw_starts`, once lowercased when `lowercase`."""

    tokenizer: Tokenizer
    lowercase: bool
    raw_starts: str  # the first characters of the added tokens matched on the raw text


def plain_ascii_twin(tokenizer: Tokenizer) -> PlainTwin | None:
    """The twin of a `BertNormalizer` + `BertPreTokenizer` tokenizer, or None for any other tokenizer
    and when an added token holds whitespace (the one place where `BertNormalizer`'s mapping of tabs
    and line breaks to spaces could show)."""
    serialized = tokenizer.to_str()
    config = json.loads(serialized)
    normalizer, pre_tokenizer = config.get("normalizer") or {}, config.get("pre_tokenizer") or {}
    if normalizer.get("type") != "BertNormalizer" or pre_tokenizer.get("type") != "BertPreTokenizer":
        return None
    added = config.get("added_tokens") or []
    if any(re.search(r"\s", token["content"]) for token in added):
        return None
    twin = Tokenizer.from_str(serialized)
    twin.normalizer = None
    # Added tokens matched on the raw text, whose case the lowering would change: a text holding the
    # first character of one takes the original path.
    raw_starts = "".join(sorted({t["content"][0] for t in added if t["content"] and not t.get("normalized")}))
    return PlainTwin(twin, bool(normalizer.get("lowercase", True)), raw_starts)


# Within ASCII: the control characters other than tab, line feed and carriage return.
_NOT_PLAIN_ASCII = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _copy(tokenizer: Tokenizer, max_length: int | None) -> Tokenizer:
    copy = Tokenizer.from_str(tokenizer.to_str())
    copy.no_padding()
    if max_length is None:
        copy.no_truncation()
    else:
        copy.enable_truncation(max_length)
    return copy
