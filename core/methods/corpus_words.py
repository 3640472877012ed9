"""Corpus words: the corpus's most frequent words the teacher's tokenizer lacks, to add to it (both methods).

Words the tokenizer already holds as one token are skipped (model2vec would drop them anyway), so
`max_vocabulary_size` counts only words that really add rows to the static model.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

from core.errors import DistilleryError
from core.progress import Progress, silent

_WORD = re.compile(r"[^\W\d_][\w'-]*[^\W_]|[^\W\d_]", re.UNICODE)


def count_words(texts: Iterable[str], lowercase: bool) -> Counter[str]:
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(_WORD.findall(text.lower() if lowercase else text))
    return counts


def corpus_vocabulary(
    texts: Iterable[str], tokenizer, max_size: int, min_frequency: int,  # tokenizer: transformers tokenizer
    progress: Progress = silent,
) -> list[str]:
    """The `max_size` most frequent corpus words (count ≥ `min_frequency`) the tokenizer lacks."""
    if max_size < 0:
        raise DistilleryError("The vocabulary size cannot be negative.")
    if min_frequency < 1:
        raise DistilleryError("The minimum word frequency must be at least 1.")
    if max_size == 0:
        return []
    progress("vocabulary", 0.0, "counting words")
    lowercase = tokenizer_lowercases(tokenizer)
    known = set(tokenizer.get_vocab())
    single = _single_pretoken(tokenizer)
    words: list[str] = []
    for word, count in count_words(texts, lowercase).most_common():
        if count < min_frequency or len(words) >= max_size:
            break
        if word not in known and single(word):
            words.append(word)
    progress("vocabulary", 1.0, f"{len(words):,} corpus words added to the tokenizer vocabulary")
    return words


def _single_pretoken(tokenizer):
    """A word the tokenizer's pre-tokenizer splits (BERT splits "o'neill" at the apostrophe) can never be
    matched as one token at encode time; model2vec would still embed it and add a row no text ever uses."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    pre = getattr(backend, "pre_tokenizer", None)
    if pre is None:
        return lambda word: True
    return lambda word: len(pre.pre_tokenize_str(word)) == 1


def tokenizer_lowercases(tokenizer) -> bool:
    """Does the tokenizer lower-case its input (uncased BERT-style models)?"""
    sample = "Distillery ABC"
    return tokenizer.tokenize(sample) == tokenizer.tokenize(sample.lower())
