"""core.methods.corpus_words: the frequent corpus words both methods add to the tokenizer."""

from __future__ import annotations

import pytest

from core.encoders.teacher import resolve_teacher
from core.errors import DistilleryError
from core.methods.corpus_words import corpus_vocabulary, tokenizer_lowercases


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve_teacher(None).source)


def test_minilm_tokenizer_lowercases(tokenizer):
    assert tokenizer_lowercases(tokenizer)


def test_corpus_vocabulary_skips_known_words_and_lowercases(tokenizer):
    texts = ["Zorblax ZORBLAX zorblax the the the house house house", "Quuxify quuxify the house"]
    words = corpus_vocabulary(texts, tokenizer, max_size=10, min_frequency=2)
    assert words == ["zorblax", "quuxify"]  # most frequent first; "the"/"house" are single tokens already
    known = set(tokenizer.get_vocab())
    assert "the" in known and "house" in known


def test_corpus_vocabulary_respects_min_frequency_and_max_size(tokenizer):
    texts = ["flurbington " * 5 + "glorpatron " * 4 + "snizzlewick " * 3 + "wumblequist " * 1]
    assert corpus_vocabulary(texts, tokenizer, max_size=10, min_frequency=3) == [
        "flurbington", "glorpatron", "snizzlewick"]
    assert corpus_vocabulary(texts, tokenizer, max_size=2, min_frequency=1) == ["flurbington", "glorpatron"]
    assert corpus_vocabulary(texts, tokenizer, max_size=0, min_frequency=1) == []
    with pytest.raises(DistilleryError):
        corpus_vocabulary(texts, tokenizer, max_size=-1, min_frequency=1)
    with pytest.raises(DistilleryError):
        corpus_vocabulary(texts, tokenizer, max_size=5, min_frequency=0)


def test_corpus_vocabulary_ignores_numbers_and_punctuation(tokenizer):
    words = corpus_vocabulary(["12345 12345 ---- ---- ____ ____ x9y x9y"], tokenizer, 10, 1)
    assert "12345" not in words and "----" not in words and "____" not in words
