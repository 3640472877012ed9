"""The corpus method's building blocks on real teacher output: resumable float16 targets, training
that lowers the held-back loss, and a saved model that loads in StaticModel."""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import DistilleryError
from core.featurize import featurize, featurize_key
from core.teacher import load_teacher, resolve_teacher
from core.training import sif_weights

TEXTS = [f"The {w} report number {i} describes how the system handles {w} requests." for i in range(60)
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
