"""The student's fast encoder gives `StaticModel.encode`'s vectors exactly, for every table dtype the
product ships, on real corpus texts and on the edge cases (empty, all-[UNK], past max_length)."""

from __future__ import annotations

import gzip
import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from model2vec import StaticModel
from tokenizers import Tokenizer

from core.static_encoder import BATCH_SIZE, StaticEncoder
from core.teacher import DEFAULT_TEACHER, resolve_teacher

EDGE_CASES = ["", "   ", "☃☃ ☃", "hello ☃ world", "word " * 900, "Ünïcödé accents, CAPITALS and 12345!"]


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    return Tokenizer.from_file(str(Path(resolve_teacher(DEFAULT_TEACHER).source) / "tokenizer.json"))


@pytest.fixture(scope="module")
def texts(corpus_dir: Path) -> list[str]:
    """Real passages and questions, plus the edge cases, more than two tokenizer batches in all."""
    rows = []
    for name in ("web/wikitext_paragraphs.jsonl.gz", "conversational/sgd_utterances.jsonl.gz"):
        with gzip.open(corpus_dir / name, "rt") as handle:
            rows.extend(json.loads(line)["text"] for line in itertools.islice(handle, 700))
    return rows[:700] + EDGE_CASES + rows[700:]


def table(tokenizer: Tokenizer, dtype: str, seed: int = 0) -> np.ndarray:
    vectors = np.random.default_rng(seed).normal(size=(tokenizer.get_vocab_size(), 48))
    if dtype == "int8":
        return np.clip(np.round(vectors * 40), -127, 127).astype(np.int8)
    return vectors.astype(dtype)


@pytest.mark.parametrize("dtype", ["float16", "float32", "int8"])
@pytest.mark.parametrize("normalize", [True, False])
def test_same_vectors_as_model2vec(tokenizer, texts, dtype, normalize):
    model = StaticModel(table(tokenizer, dtype), tokenizer, normalize=normalize)
    encoder = StaticEncoder(model)
    assert encoder.fast and len(texts) > 2 * BATCH_SIZE
    expected = model.encode(texts, use_multiprocessing=False)
    got = encoder.encode(texts)
    assert got.dtype == expected.dtype and got.shape == expected.shape
    assert np.array_equal(got, expected)
    one_by_one = texts[695:720]  # a search box's single queries take their own path; edge cases included
    assert np.array_equal(np.stack([encoder.encode([t])[0] for t in one_by_one]), expected[695:720])
    empty = texts.index("")
    assert not got[empty].any() and not got[empty + 2].any()  # nothing, and only [UNK]
    assert got[empty + 3].any()  # [UNK] dropped, the words kept


def test_single_text_and_empty_list(tokenizer):
    model = StaticModel(table(tokenizer, "float16"), tokenizer, normalize=True)
    encoder = StaticEncoder(model)
    assert np.array_equal(encoder.encode("one query"), model.encode("one query"))
    assert encoder.encode([]).shape == (0, 48)


def test_short_max_length_truncates_like_model2vec(tokenizer, texts):
    model = StaticModel(table(tokenizer, "float32"), tokenizer, normalize=True, max_length=8)
    assert np.array_equal(StaticEncoder(model).encode(texts[:50]), model.encode(texts[:50], use_multiprocessing=False))


def test_weighted_models_go_to_model2vec(tokenizer, texts):
    weights = np.random.default_rng(1).uniform(0.5, 2.0, size=tokenizer.get_vocab_size())
    model = StaticModel(table(tokenizer, "float32"), tokenizer, normalize=True, weights=weights)
    encoder = StaticEncoder(model)
    assert not encoder.fast
    assert np.array_equal(encoder.encode(texts[:20]), model.encode(texts[:20], use_multiprocessing=False))
