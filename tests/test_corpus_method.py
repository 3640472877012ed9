"""The corpus method's building blocks on real teacher output: resumable float16 targets, training
that lowers the held-back loss, and a saved model that loads in StaticModel."""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import DistilleryError
from core.featurize import featurize, featurize_key
from core.teacher import load_teacher, resolve_teacher
from core.training import sif_weights

TEXTS = [f"The {w} report number {i} describes how the system handles {w} requests." for i in range(100)
         for w in ("network", "billing")]


def test_targets_equal_encode_and_resume(tmp_path):
    teacher = resolve_teacher(None)
    model = load_teacher(teacher)
    key = featurize_key(teacher.fingerprint, TEXTS, None)
    store = featurize(model, TEXTS, tmp_path / "t", key, shard_rows=32)
    expected = model.encode(TEXTS[:10], convert_to_numpy=True)
    got = store.open().take(np.arange(10))
    assert np.abs(got - expected).max() < 2e-3  # float16 storage of the same encode output
    # An interrupted run: drop a shard, featurize again, only it is recomputed.
    store.shard_path(1).unlink()
    before = store.shard_path(0).stat().st_mtime_ns
    featurize(model, TEXTS, tmp_path / "t", key, shard_rows=32)
    assert store.shard_path(1).exists() and store.shard_path(0).stat().st_mtime_ns == before
    # Another corpus under the same folder never mixes with the old shards.
    other = featurize(model, TEXTS[:40], tmp_path / "t", featurize_key(teacher.fingerprint, TEXTS[:40], None),
                      shard_rows=32)
    assert other.rows == 40 and not store.shard_path(3).exists()


def test_empty_corpus_refused(tmp_path):
    with pytest.raises(DistilleryError, match="empty"):
        featurize(load_teacher(resolve_teacher(None)), [], tmp_path, "k")


def test_sif_from_counts_downweights_frequent_tokens():
    w = sif_weights(np.array([1000, 10, 0]), 1e-2)
    assert w[0] < w[1] < w[2] == 1.0


def test_distill_corpus_trains_and_loads(tmp_path):
    from model2vec import StaticModel

    from core.corpus_method import distill_corpus
    from core.distill import CORPUS_SIF_COEFFICIENT, DistillParams, save_atomically

    params = DistillParams(pca_dims=32, max_vocabulary_size=50, min_frequency=2, epochs=3,
                           sif_coefficient=CORPUS_SIF_COEFFICIENT)
    seen = []
    result = distill_corpus(resolve_teacher(None), params, TEXTS, tmp_path / "work",
                            progress=lambda stage, fraction, message="": seen.append(stage))
    assert {"featurize", "vocabulary", "distill", "pca", "train"} <= set(seen)
    assert set(result.stages) >= {"featurize", "vocabulary", "distill", "weights", "pca", "train"}
    assert result.history[0]["epoch"] == 0 and len(result.history) >= 2
    # Early stopping keeps the epoch with the lowest held-back loss (epoch 0 = the fitted start).
    assert result.history[result.best_epoch]["validation_loss"] == min(h["validation_loss"] for h in result.history)
    folder = save_atomically(result.model, tmp_path / "model")
    loaded = StaticModel.from_pretrained(str(folder))
    vectors = loaded.encode(["network report", "billing requests"], use_multiprocessing=False)
    assert vectors.shape == (2, 32) and np.isfinite(vectors).all()


def test_corpus_too_small_is_refused(tmp_path):
    from core.corpus_method import MIN_TEXTS, distill_corpus
    from core.distill import DistillParams

    with pytest.raises(DistilleryError, match=f"at least {MIN_TEXTS} texts"):
        distill_corpus(resolve_teacher(None), DistillParams(), TEXTS[:MIN_TEXTS - 1], tmp_path)


def test_teacher_without_a_pad_token(tmp_path):
    """A tokenizer with no pad token (as some Gemma/Qwen exports) cannot batch; the teacher loader gives
    it a stand-in chosen by id, whatever its name, and the targets are the same as with a real pad."""
    from sentence_transformers import SentenceTransformer

    from core.teacher import _ensure_pad_token

    teacher = resolve_teacher(None)
    model = SentenceTransformer(teacher.source, device="cpu")
    model.tokenizer.pad_token = None
    assert model.tokenizer.pad_token is None
    texts = TEXTS[:30] + [t + " and more words in a longer text" for t in TEXTS[:30]]  # uneven lengths
    with pytest.raises(Exception):  # the case under test: batched encode needs padding
        model.encode(texts[:40], batch_size=40)
    _ensure_pad_token(model.tokenizer)
    assert model.tokenizer.pad_token is not None and model.tokenizer.pad_token != "[PAD]"
    store = featurize(model, texts, tmp_path / "t", featurize_key(teacher.fingerprint, texts, None), batch_size=40)
    reference = load_teacher(teacher).encode(texts, convert_to_numpy=True)
    assert np.abs(store.open().take(np.arange(len(texts))) - reference).max() < 2e-3


def test_recipe_defaults_follow_the_method():
    """The corpus method weighs tokens by real corpus counts, so its SIF default differs; an explicit
    value always wins."""
    from core.distill import CORPUS_SIF_COEFFICIENT, DistillParams
    from core.recipe import Recipe

    assert Recipe.from_dict({"method": "corpus"}).distill.sif_coefficient == CORPUS_SIF_COEFFICIENT
    assert Recipe.from_dict({}).distill.sif_coefficient == DistillParams().sif_coefficient
    explicit = Recipe.from_dict({"method": "corpus", "distill": {"sif_coefficient": 0.2, "epochs": 4}})
    assert explicit.distill.sif_coefficient == 0.2 and explicit.distill.epochs == 4
