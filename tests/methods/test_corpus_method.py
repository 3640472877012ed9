"""core.methods.corpus and its building blocks (core.methods.featurize, core.methods.training) on real
teacher output: resumable float16 targets, training that lowers the held-back loss, and a saved model
that loads in StaticModel."""

from __future__ import annotations

import numpy as np
import pytest

from core.encoders.teacher import load_teacher, resolve_teacher
from core.errors import DistilleryError
from core.methods.corpus import CONE_COSINE, MIN_TEXTS, CorpusParams, distill
from core.methods.featurize import GPU_BATCH_SIZE, featurize, featurize_key
from core.methods.training import TrainParams, sif_weights

TEXTS = [f"The {w} report number {i} describes how the system handles {w} requests." for i in range(100)
         for w in ("network", "billing")]


@pytest.mark.slow  # the teacher embeds 200 texts (and 40 more)
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


class _SmallGpu:
    """The real teacher behind a GPU whose memory holds at most 16 texts per batch (the only part that
    stands in for hardware: a real out-of-memory error needs a real, full GPU)."""

    def __init__(self, model, limit: int = 16):
        self.model, self.limit, self.device, self.batches = model, limit, "cuda:0", []

    def get_embedding_dimension(self) -> int:
        return self.model.get_embedding_dimension()

    def encode(self, texts, batch_size, **kwargs):
        import torch

        self.batches.append(batch_size)
        if batch_size > self.limit:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return self.model.encode(texts, batch_size=batch_size, **kwargs)


@pytest.mark.slow  # the teacher embeds 200 texts
def test_gpu_out_of_memory_halves_the_batch_and_keeps_it(tmp_path):
    teacher = resolve_teacher(None)
    model = load_teacher(teacher)
    gpu = _SmallGpu(model)
    messages = []
    store = featurize(gpu, TEXTS, tmp_path / "t", "k", shard_rows=64,
                      progress=lambda stage, fraction, message: messages.append(message))
    assert gpu.batches[0] == GPU_BATCH_SIZE  # the GPU default, chosen by measurement
    assert gpu.batches[-1] == 16 and gpu.batches.count(GPU_BATCH_SIZE) == 1  # later shards keep the batch that fitted
    assert any("batch size lowered to 16" in m for m in messages)
    expected = model.encode(TEXTS[:5], convert_to_numpy=True)
    assert np.abs(store.open().take(np.arange(5)) - expected).max() < 2e-3


def test_empty_corpus_refused(tmp_path):
    with pytest.raises(DistilleryError, match="empty"):
        featurize(load_teacher(resolve_teacher(None)), [], tmp_path, "k")


def test_sif_from_counts_downweights_frequent_tokens():
    w = sif_weights(np.array([1000, 10, 0]), 1e-2)
    assert w[0] < w[1] < w[2] == 1.0


@pytest.mark.slow  # a whole (small) distillation: featurize, distill, train
def test_distill_corpus_trains_and_loads(tmp_path, monkeypatch):
    from model2vec import StaticModel

    from core.files import folder_atomically
    from core.methods.base import Distilled
    from core.methods.corpus import CorpusDistillation

    params = CorpusParams(pca_dims=32, max_vocabulary_size=50, min_frequency=2, training=TrainParams(epochs=3),
                          quantize_to="float32")
    assert params.sif_coefficient == 1e-2  # the method's own default: token weights from real corpus counts
    monkeypatch.setenv("DISTILLERY_SHARD_LIBRARY", str(tmp_path / "library"))  # the teacher embeds them all here
    seen = []
    result = distill(resolve_teacher(None), params, TEXTS, tmp_path / "work",
                     progress=lambda stage, fraction, message="": seen.append(stage))
    assert isinstance(result, Distilled) and isinstance(result.details, CorpusDistillation)
    details = result.details
    assert {"featurize", "vocabulary", "distill", "pca", "train"} <= set(seen)
    assert set(result.stages) >= {"featurize", "vocabulary", "distill", "weights", "pca", "train"}
    assert all(stage["seconds"] >= 0 and stage["peak_rss_mb"] > 0 for stage in result.stages.values())
    assert 0 <= result.vocabulary_added <= 50  # these templated words are all in MiniLM's vocabulary already
    assert details.history[0]["epoch"] == 0 and len(details.history) >= 2
    # Early stopping keeps the epoch with the lowest held-back loss (epoch 0 = the fitted start).
    assert details.history[details.best_epoch]["validation_loss"] == min(h["validation_loss"] for h in details.history)
    # What the record keeps of it.
    assert result.training == {"best_epoch": details.best_epoch, "history": details.history, "start_share": 0.5,
                               "featurize": {"shards": 1, "reused_shards": 0, "texts_embedded": len(TEXTS)},
                               "targets": result.training["targets"]}
    # These templated texts are variations of two sentences: their targets lean one way (a mean cosine of
    # about 0.69; real single-domain corpora give MiniLM about 0.2), so the student was fitted to them centred.
    assert result.training["targets"]["mean_cosine"] > CONE_COSINE and result.training["targets"]["centred"] is True
    assert details.targets is not None and details.targets.complete()
    # The shipped table averages the fitted start and the trained table (start_share 0.5 by default).
    # (On these 200 templated texts the least-squares start is already the best epoch; that training
    # does not overwrite the start is shown on its own in test_training_leaves_its_inputs_untouched.)
    assert params.start_share == 0.5
    np.testing.assert_allclose(np.asarray(result.model.embedding), (details.start_table + details.trained_table) / 2,
                               atol=1e-5)
    with pytest.raises(DistilleryError, match="share of the fitted start"):
        CorpusParams(start_share=1.5).validate()
    with folder_atomically(tmp_path / "model") as folder:
        result.model.save_pretrained(str(folder))
    loaded = StaticModel.from_pretrained(str(tmp_path / "model"))
    vectors = loaded.encode(["network report", "billing requests"], use_multiprocessing=False)
    assert vectors.shape == (2, 32) and np.isfinite(vectors).all()


def test_training_leaves_its_inputs_untouched(tmp_path):
    """The shipped table averages the fitted start with the trained one, so training must not
    rewrite the start in place (on a CPU, torch.from_numpy shares memory with the arrays)."""
    from core.methods.featurize import ORDER_FILE, TargetStore
    from core.methods.training import TokenizedCorpus, train_table

    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 8, size=200)
    corpus = TokenizedCorpus(rng.integers(0, 30, size=int(lengths.sum())).astype(np.int32),
                             np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64))
    folder = tmp_path / "targets"
    folder.mkdir()
    np.save(folder / ORDER_FILE, np.arange(200))
    np.save(folder / "targets_00000.npy", rng.normal(size=(200, 12)).astype(np.float16))
    targets = TargetStore(folder, 200, 12, 256).open()
    vectors, weights = rng.normal(size=(30, 8)).astype(np.float32), np.ones(30, dtype=np.float32)
    linear, to_k = rng.normal(size=(8, 6)).astype(np.float32), rng.normal(size=(12, 6)).astype(np.float32)
    before = [a.copy() for a in (vectors, weights, linear)]
    result = train_table(vectors, weights, linear, to_k, corpus, targets, TrainParams(epochs=3, patience=3))
    assert result.best_epoch > 0
    for array, copy in zip((vectors, weights, linear), before):
        np.testing.assert_array_equal(array, copy)


def test_corpus_too_small_is_refused(tmp_path):
    with pytest.raises(DistilleryError, match=f"at least {MIN_TEXTS} texts"):
        distill(resolve_teacher(None), CorpusParams(), TEXTS[:MIN_TEXTS - 1], tmp_path)
    assert not any(tmp_path.iterdir())  # refused before the teacher ran


@pytest.mark.slow  # the teacher embeds 60 texts twice
def test_teacher_without_a_pad_token(tmp_path):
    """A tokenizer with no pad token (as some Gemma/Qwen exports) cannot batch; the teacher loader gives
    it a stand-in chosen by id, whatever its name, and the targets are the same as with a real pad."""
    from sentence_transformers import SentenceTransformer

    from core.encoders.teacher import _ensure_pad_token

    teacher = resolve_teacher(None)
    model = SentenceTransformer(teacher.source, device="cpu")
    model.tokenizer.pad_token = None
    assert model.tokenizer.pad_token is None
    texts = TEXTS[:30] + [t + " and more words in a longer text" for t in TEXTS[:30]]  # uneven lengths
    with pytest.raises(ValueError, match="padding token"):  # the case under test: batched encode needs padding
        model.encode(texts[:40], batch_size=40)
    _ensure_pad_token(model.tokenizer)
    assert model.tokenizer.pad_token is not None and model.tokenizer.pad_token != "[PAD]"
    store = featurize(model, texts, tmp_path / "t", featurize_key(teacher.fingerprint, texts, None), batch_size=40)
    reference = load_teacher(teacher).encode(texts, convert_to_numpy=True)
    assert np.abs(store.open().take(np.arange(len(texts))) - reference).max() < 2e-3


@pytest.mark.slow  # two small distillations
def test_the_stages_alongside_the_teacher_pass_give_the_model_of_running_them_before_it(tmp_path, monkeypatch):
    """The vocabulary, model2vec's distill and the corpus tokenization run in a thread while the teacher
    embeds the corpus (`core.progress.Alongside`); run instead to completion before the teacher pass
    starts, the model is the same to the bit, and the record says which stages ran alongside."""
    from core.progress import wall_seconds

    monkeypatch.setenv("DISTILLERY_SHARD_LIBRARY", "off")  # both runs embed the corpus
    params = CorpusParams(pca_dims=16, max_vocabulary_size=50, min_frequency=2, training=TrainParams(epochs=2))
    teacher = resolve_teacher(None)
    overlapped = distill(teacher, params, TEXTS, tmp_path / "a")
    sequential = distill(teacher, params, TEXTS, tmp_path / "b", alongside_teacher=False)
    np.testing.assert_array_equal(np.asarray(overlapped.model.embedding), np.asarray(sequential.model.embedding))
    assert overlapped.model.tokens == sequential.model.tokens
    stages = overlapped.stages
    assert {name for name, v in stages.items() if v.get("alongside") == "featurize"} == {"vocabulary", "distill",
                                                                                         "tokenize"}
    assert next(iter(stages)) == "featurize" and "overlap_wait" in stages
    assert wall_seconds(stages) == pytest.approx(sum(v["seconds"] for n, v in stages.items()
                                                     if n not in ("vocabulary", "distill", "tokenize")))
