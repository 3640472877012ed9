"""The student's fast encoder gives `StaticModel.encode`'s vectors exactly, for every table dtype the
product ships, on real corpus texts and on the edge cases (empty, all-[UNK], past max_length), on one
thread and on a pool; its tokenizer gives model2vec's ids on every shared corpus and on random strings."""

from __future__ import annotations

import gzip
import itertools
import json
import random
import threading
from pathlib import Path

import helpers
import numpy as np
import pytest
from model2vec import StaticModel
from tokenizers import Tokenizer

from core.encoders.student import CHUNK_TEXTS, StaticEncoder, StudentEncoder
from core.encoders.teacher import DEFAULT_TEACHER, resolve_teacher
from core.encoders.threads import thread_limit
from core.encoders.tokenization import StaticTokenizer, plain_ascii_twin
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
    assert encoder.fast and len(texts) > 2 * CHUNK_TEXTS
    expected = model.encode(texts, use_multiprocessing=False)
    got = encoder.encode(texts)
    with thread_limit(1):
        assert np.array_equal(encoder.encode(texts), got)  # one thread, the same vectors
    assert got.dtype == expected.dtype and got.shape == expected.shape
    assert np.array_equal(got, expected)
    one_by_one = texts[695:720]  # a search box's single queries take their own path; edge cases included
    assert np.array_equal(np.stack([encoder.encode([t])[0] for t in one_by_one]), expected[695:720])
    empty = texts.index("")
    assert not got[empty].any() and not got[empty + 2].any()  # nothing, and only [UNK]
    assert got[empty + 3].any()  # [UNK] dropped, the words kept


def test_large_inputs_run_on_a_pool_of_threads_and_survive_model2vecs_switch(tokenizer, texts, monkeypatch):
    """model2vec's multiprocessing turns TOKENIZERS_PARALLELISM off for the whole process and leaves
    it off; the encoder's own pool does not depend on it."""
    model = StaticModel(table(tokenizer, "float16"), tokenizer, normalize=True)
    encoder = StaticEncoder(model)
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")
    seen: set[str] = set()
    chunk = encoder._encode_chunk
    monkeypatch.setattr(encoder, "_encode_chunk", lambda batch: (seen.add(threading.current_thread().name),
                                                                  chunk(batch))[1])
    with thread_limit(2):
        got = encoder.encode(texts)
    assert np.array_equal(got, model.encode(texts, use_multiprocessing=False))
    assert len(seen) == 2 and all(name.startswith("static-encode") for name in seen)
    seen.clear()
    encoder.encode(texts[:CHUNK_TEXTS])  # one chunk: no hand-off to the pool
    assert seen == {threading.current_thread().name}


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


# --- the tokenizer: model2vec's ids, plain-ASCII texts through a lowercasing twin ------------------


def model2vec_ids(model: StaticModel, texts: list[str]) -> list[list[int]]:
    """`StaticModel.encode`'s tokenization ([UNK] kept), on the model's own tokenizer."""
    cut = [t[: model.max_length * model.median_token_length] for t in texts]
    model._set_max_length_in_tokenizer(model.max_length)
    return [e.ids for e in model.tokenizer.encode_batch_fast(cut, add_special_tokens=False)]


def random_strings(n: int, seed: int = 0) -> list[str]:
    """Strings that probe every rule the twin leans on: ASCII letters of both cases, digits, every
    punctuation mark, tabs, line breaks, control characters, accents, CJK, emoji, long words."""
    rng = random.Random(seed)
    alphabet = ([chr(c) for c in range(0x20, 0x7F)] * 3 + list("\t\n\r\x0b\x0c\x00\x01\x1f\x7f")
                + list("éÉñÜßçøÅ\u0301\u00a0\u2003\u200b\ufffd中文字😀\u3000"))
    words = ["hello", "World", "HTTP", "naïve", "co-operate", "x" * 120, "don't", "[UNK]", "[PAD]", "[CLS]x", "[unk]", "e.g."]
    out = []
    for i in range(n):
        if i % 2:
            out.append("".join(rng.choice(alphabet) for _ in range(rng.randint(0, 80))))
        else:
            out.append(" ".join(rng.choice(words + ["".join(rng.choices(alphabet, k=rng.randint(1, 12)))])
                                for _ in range(rng.randint(0, 30))))
    return out


def test_the_tokenizer_gives_model2vecs_ids_on_every_shared_corpus(tokenizer, corpus_dir):
    from core.corpus.sources import iter_documents, load_catalogue

    model = StaticModel(table(tokenizer, "float16"), tokenizer, normalize=True)
    static = StaticTokenizer(model)
    assert static.plain is not None and static.copies == 2  # MiniLM's tokenizer gets the twin
    specs = [spec for specs in load_catalogue().by_domain.values() for spec in specs if spec.kind == "local"]
    assert len(specs) >= 10
    plain = checked = 0
    for spec in specs:
        texts = list(itertools.islice(iter_documents(spec), 1500))
        assert static.ids(texts) == model2vec_ids(model, texts), spec.key
        checked += len(texts)
        plain += sum(t.isascii() for t in texts)
    french = corpus_dir.parent / "fr" / "corpus" / "fr_corpus.jsonl.gz"
    with gzip.open(french, "rt") as handle:  # accents everywhere: the other path
        texts = [json.loads(line)["text"] for line in itertools.islice(handle, 1500)]
    assert static.ids(texts) == model2vec_ids(model, texts)
    assert 0 < plain < checked + len(texts)  # both paths taken
    odd = random_strings(3000)
    assert static.ids(odd) == model2vec_ids(model, odd)
    assert [static.one(t) for t in odd[:300]] == model2vec_ids(model, odd[:300])


def test_the_twin_only_for_the_tokenizers_it_is_exact_for(tokenizer):
    assert plain_ascii_twin(tokenizer) is not None
    from tokenizers import models, normalizers, pre_tokenizers

    other = Tokenizer(models.WordLevel({"[UNK]": 0, "a": 1}, unk_token="[UNK]"))
    other.pre_tokenizer = pre_tokenizers.Whitespace()
    assert plain_ascii_twin(other) is None  # no BertNormalizer
    changed = Tokenizer.from_str(tokenizer.to_str())
    changed.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    assert plain_ascii_twin(changed) is None
    spaced = Tokenizer.from_str(tokenizer.to_str())
    spaced.add_tokens(["new york"])
    assert plain_ascii_twin(spaced) is None  # an added token with a space: the twin could differ
    model = StaticModel(np.zeros((other.get_vocab_size(), 4), dtype=np.float32), other, normalize=False)
    assert StaticTokenizer(model).copies == 1 and StaticTokenizer(model).ids(["a b", "a"]) == [[1, 0], [1]]


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
    with pytest.raises(DistilleryError, match="is damaged"):  # the weights' header is checked first
        StudentEncoder.open(broken)
    helpers.tiny_static_model(dim=16).save_pretrained(str(broken))  # sound weights, a garbage tokenizer
    (broken / "tokenizer.json").write_bytes(b"\x00garbage")
    with pytest.raises(DistilleryError, match="could not be loaded"):
        StudentEncoder.open(broken)
