"""model2vec's tokenization of a static model, the same ids in less time.

`StaticModel.encode` cuts each text to `max_length × median_token_length` characters, then runs the
Rust tokenizer (no special tokens, truncated at `max_length` tokens). For the BERT-style tokenizers
most teachers use (MiniLM, bge, e5, ...), about half of that tokenizer's time goes to its normaliser
(`BertNormalizer`), which decomposes every character to strip accents even when the text is plain
ASCII (docs/benchmarks.md, "Student encode").

On printable ASCII (plus tab and line breaks), `BertNormalizer` can only lowercase: there are no
accents to strip, no Chinese characters to space out, no control characters to drop, and the
whitespace it maps to spaces is split on by `BertPreTokenizer` anyway. So `StaticTokenizer` keeps a
twin of the tokenizer whose normaliser only lowercases, and sends each plain-ASCII text to it and
every other text to (a copy of) the original. The twin is made only when the tokenizer has exactly
that shape (tests compare both paths on the shared corpora and on random strings); any other
tokenizer keeps its single path.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from tokenizers import Tokenizer, normalizers

# Anything but printable ASCII, tab, line feed and carriage return.
_NOT_PLAIN = re.compile(r"[^\t\n\r -~]")


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
        self.plain = plain_ascii_twin(self.full)

    @property
    def copies(self) -> int:
        """How many tokenizers this object holds (for memory estimates)."""
        return 1 if self.plain is None else 2

    def ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Each text's token ids, in order."""
        if self.max_chars is not None:
            texts = [text[: self.max_chars] for text in texts]
        if self.plain is None:
            return [e.ids for e in self.full.encode_batch_fast(texts, add_special_tokens=False)]
        plain: list[int] = []
        other: list[int] = []
        for i, text in enumerate(texts):
            (plain if _NOT_PLAIN.search(text) is None else other).append(i)
        if not other:
            return [e.ids for e in self.plain.encode_batch_fast(texts, add_special_tokens=False)]
        ids: list[list[int]] = [[] for _ in texts]
        for rows, tokenizer in ((plain, self.plain), (other, self.full)):
            if rows:
                encodings = tokenizer.encode_batch_fast([texts[i] for i in rows], add_special_tokens=False)
                for i, encoding in zip(rows, encodings):
                    ids[i] = encoding.ids
        return ids

    def one(self, text: str) -> list[int]:
        """One text's ids: the search box's query, with nothing but the call itself."""
        if self.max_chars is not None:
            text = text[: self.max_chars]
        tokenizer = self.plain if self.plain is not None and _NOT_PLAIN.search(text) is None else self.full
        return tokenizer.encode_batch_fast([text], add_special_tokens=False)[0].ids


def plain_ascii_twin(tokenizer: Tokenizer) -> Tokenizer | None:
    """A copy of a `BertNormalizer` + `BertPreTokenizer` tokenizer whose normaliser only lowercases
    (or does nothing, when the original keeps case): the same ids on printable ASCII. None for any
    other tokenizer, and when an added token holds whitespace (the one place where `BertNormalizer`'s
    mapping of tabs and line breaks to spaces could show)."""
    config = json.loads(tokenizer.to_str())
    normalizer, pre_tokenizer = config.get("normalizer") or {}, config.get("pre_tokenizer") or {}
    if normalizer.get("type") != "BertNormalizer" or pre_tokenizer.get("type") != "BertPreTokenizer":
        return None
    if any(re.search(r"\s", token["content"]) for token in config.get("added_tokens") or []):
        return None
    twin = Tokenizer.from_str(tokenizer.to_str())
    twin.normalizer = normalizers.Lowercase() if normalizer.get("lowercase", True) else None
    return twin


def _copy(tokenizer: Tokenizer, max_length: int | None) -> Tokenizer:
    copy = Tokenizer.from_str(tokenizer.to_str())
    copy.no_padding()
    if max_length is None:
        copy.no_truncation()
    else:
        copy.enable_truncation(max_length)
    return copy
