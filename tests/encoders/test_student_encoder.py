"""The student's fast encoder gives `StaticModel.encode`'s vectors exactly, for every table dtype the
product ships, on real corpus texts and on the edge cases (empty, all-[UNK], past max_length)."""

from __future__ import annotations

import gzip
import itertools
import json
from pathlib import Path

import helpers
import numpy as np
import pytest
from model2vec import StaticModel
from tokenizers import Tokenizer

from core.encoders.student import BATCH_SIZE, StaticEncoder, StudentEncoder
from core.encoders.teacher import DEFAULT_TEACHER, resolve_teacher
from core.errors import DistilleryError
from core.files import file_sha256

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


# --- StudentEncoder: a model folder as an encoder --------------------------------------------------


def test_student_encoder_opens_a_folder_once_per_version_of_its_weights(tmp_path, texts):
    folder = tmp_path / "student"
    model = helpers.tiny_static_model(dim=16)
    model.save_pretrained(str(folder))
    student = StudentEncoder.open(folder)
    assert StudentEncoder.open(folder) is student  # cached: the same weights are loaded once
    assert student.fingerprint == f"sha256:{file_sha256(folder / 'model.safetensors')}"
    expected = model.encode(texts[:40], use_multiprocessing=False)
    expected = expected / np.maximum(np.linalg.norm(expected, axis=1, keepdims=True), 1e-12)
    vectors = student.encode(texts[:40])
    assert vectors.dtype == np.float32 and vectors.shape == (40, 16)
    np.testing.assert_allclose(vectors, expected, atol=1e-6)
    np.testing.assert_array_equal(student.encode_queries(texts[:40]), vectors)  # no prompts in a static model
    assert not student.encode([""]).any()  # an empty text is a zero row, not NaN
    # Rebuilt weights in the same folder: a new encoder with a new fingerprint.
    (folder / "model.safetensors").unlink()
    helpers.tiny_static_model(dim=16, seed=1).save_pretrained(str(folder))
    rebuilt = StudentEncoder.open(folder)
    assert rebuilt is not student and rebuilt.fingerprint != student.fingerprint
    assert not np.allclose(rebuilt.encode(texts[:5]), vectors[:5])


def test_student_encoder_as_sentence_transformer(tmp_path):
    folder = tmp_path / "student"
    helpers.tiny_static_model(dim=16).save_pretrained(str(folder))
    student = StudentEncoder.open(folder)
    model = student.sentence_transformer()
    assert student.sentence_transformer() is model  # built once per encoder
    vectors = model.encode(["hello world", "static embeddings"], normalize_embeddings=True)
    np.testing.assert_allclose(vectors, student.encode(["hello world", "static embeddings"]), atol=1e-5)


def test_student_encoder_refuses_missing_or_corrupt_folders(tmp_path):
    with pytest.raises(DistilleryError, match="not a complete model2vec folder"):
        StudentEncoder.open(tmp_path / "nothing")
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        (broken / name).write_bytes(b"\x00garbage")
    with pytest.raises(DistilleryError, match="could not be loaded"):
        StudentEncoder.open(broken)
