"""core.serving: exact top-k and hits (`index`), cached collection embeddings (`collection`), `timing`,
and the Compare tab's model list (`compare.model_overview`)."""

from __future__ import annotations

import helpers
import numpy as np
import pytest

from core.errors import DistilleryError
from core.files import texts_digest
from core.serving.collection import embed_collection
from core.serving.index import Hit, VectorIndex, overlap, search
from core.serving.timing import SpeedReport, measure, query_latencies_ms, throughput


def _normalised(rng: np.random.Generator, rows: int, dim: int) -> np.ndarray:
    matrix = rng.standard_normal((rows, dim)).astype(np.float32)
    return matrix / np.linalg.norm(matrix, axis=1, keepdims=True)


@pytest.mark.parametrize("seed, rows, k", [(0, 500, 10), (1, 37, 5), (2, 1000, 1), (3, 64, 64)])
def test_exact_top_k_matches_a_full_argsort(seed, rows, k):
    rng = np.random.default_rng(seed)
    matrix = _normalised(rng, rows, 32)
    query = _normalised(rng, 1, 32)[0]
    scores = matrix @ query
    expected = np.argsort(-scores, kind="stable")[:k]
    index = VectorIndex.build(matrix, approximate=False)
    assert not index.approximate
    got = index.search(query, k)
    assert [i for i, _ in got] == expected.tolist()
    assert [s for _, s in got] == pytest.approx(scores[expected].tolist())
    assert all(a >= b for (_, a), (_, b) in zip(got, got[1:]))
    many = index.search_many(np.stack([query, matrix[0]]), k, chunk=1)  # the same routine, by rows
    assert many[0].tolist() == expected.tolist() and many[1][0] == 0


def test_exact_top_k_with_k_larger_than_the_collection_or_zero():
    rng = np.random.default_rng(5)
    matrix = _normalised(rng, 4, 8)
    query = matrix[2]
    index = VectorIndex.build(matrix, approximate=False)
    got = index.search(query, 10)
    assert len(got) == 4 and got[0][0] == 2 and got[0][1] == pytest.approx(1.0)
    assert index.search(query, 0) == []


@pytest.mark.parametrize("approximate", [False, True])
def test_search_ranks_from_one_and_returns_texts(approximate):
    index = VectorIndex.build(np.eye(3, dtype=np.float32), approximate=approximate)
    hits = search(np.array([0.1, 0.9, 0.0], dtype=np.float32), index, ["a", "b", "c"], k=2)
    assert [(h.rank, h.index, h.text) for h in hits] == [(1, 1, "b"), (2, 0, "a")]
    assert hits[0].score == pytest.approx(0.9)


def test_overlap_counts_shared_documents():
    a = [Hit(1, 4, 0.9, "x"), Hit(2, 7, 0.8, "y"), Hit(3, 1, 0.7, "z")]
    b = [Hit(1, 7, 0.9, "y"), Hit(2, 2, 0.8, "w"), Hit(3, 4, 0.1, "x")]
    assert overlap(a, b) == 2
    assert overlap(a, []) == 0
    assert overlap(a, a) == 3


def test_texts_digest_depends_on_order_and_boundaries():
    assert texts_digest(["ab", "c"]) != texts_digest(["a", "bc"])
    assert texts_digest(["a", "b"]) != texts_digest(["b", "a"])
    assert texts_digest(["a", "b"]) == texts_digest(["a", "b"])


class _HashingEncoder:
    """A test double of `core.encoders.base.Encoder`: label, fingerprint, encode, encode_queries."""

    label = "hash"

    def __init__(self, fingerprint: str = "test:hash", calls: list | None = None) -> None:
        self.fingerprint, self.calls = fingerprint, calls

    def encode(self, texts):
        if self.calls is not None:
            self.calls.append(len(texts))
        rows = np.array([[len(t), sum(map(ord, t)) % 97, 1.0] for t in texts], dtype=np.float32)
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)

    def encode_queries(self, texts):
        raise AssertionError("a collection is embedded as documents, never as queries")


class _FailingEncoder(_HashingEncoder):
    def encode(self, texts):
        raise AssertionError("encode must not be called: the matrix is cached")


def _hashing_embedder(fingerprint: str = "test:hash", calls: list | None = None) -> _HashingEncoder:
    return _HashingEncoder(fingerprint, calls)


def _failing_embedder(fingerprint: str = "test:hash") -> _FailingEncoder:
    return _FailingEncoder(fingerprint)


def test_embed_collection_batches_and_reports_progress():
    texts = [f"document {i}" for i in range(10)]
    calls: list[int] = []
    reports: list[tuple[str, float]] = []
    matrix = embed_collection(_hashing_embedder(calls=calls), texts, batch=4,
                              progress=lambda stage, f, m="": reports.append((stage, f)))
    assert matrix.shape == (10, 3)
    assert calls == [4, 4, 2]
    assert reports[-1] == ("index", 1.0)
    assert np.array_equal(matrix, _hashing_embedder().encode(texts))
    assert [f for _, f in reports] == sorted(f for _, f in reports)


def test_embed_collection_caches_on_disk(tmp_path):
    texts = [f"passage number {i}" for i in range(20)]
    first = embed_collection(_hashing_embedder(), texts, cache_dir=tmp_path)
    cached = list(tmp_path.glob("*.npy"))
    assert len(cached) == 1
    assert np.array_equal(np.load(cached[0]), first)
    assert not list(tmp_path.glob("*.tmp*"))
    again = embed_collection(_failing_embedder(), texts, cache_dir=tmp_path)
    assert np.array_equal(again, first)


def test_embed_collection_cache_is_keyed_by_model_and_texts(tmp_path):
    texts = ["one text here", "another text"]
    embed_collection(_hashing_embedder("model-a"), texts, cache_dir=tmp_path)
    with pytest.raises(AssertionError, match="must not be called"):
        embed_collection(_failing_embedder("model-b"), texts, cache_dir=tmp_path)
    with pytest.raises(AssertionError, match="must not be called"):
        embed_collection(_failing_embedder("model-a"), texts + ["a third"], cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*.npy"))) == 1


def test_measure_reports_positive_ordered_latencies_and_throughput():
    def encode(texts):
        return np.ones((len(texts), 4), dtype=np.float32)

    queries = [f"query {i}" for i in range(20)]
    texts = [f"text {i}" for i in range(200)]
    report = measure("trivial", encode, threads=1, queries=queries, texts=texts, min_seconds=0.05)
    assert isinstance(report, SpeedReport)
    assert 0 < report.query_p50_ms <= report.query_p95_ms
    assert report.throughput_per_s > 0
    assert report.queries == 20 and report.batch_texts == 200
    assert report.to_dict()["label"] == "trivial"


def test_query_latencies_one_call_per_query_after_warmup():
    calls: list[int] = []

    def encode(texts):
        calls.append(len(texts))
        return np.zeros((len(texts), 2))

    times = query_latencies_ms(encode, ["a", "b", "c", "d", "e"], warmup=2)
    assert len(times) == 5 and np.all(times >= 0)
    assert calls == [1] * 7


def test_throughput_reflects_the_cost_of_encoding():
    import time

    def slow(texts):
        time.sleep(0.001 * len(texts))
        return np.zeros((len(texts), 2))

    rate = throughput(slow, [f"t{i}" for i in range(64)], batch_size=32)
    assert 0 < rate < 1000 * 1.05  # at most ~1,000 texts/s when each costs 1 ms


def test_thread_limit_sets_and_restores_torch_the_tokenizer_switch_and_the_students_pool(monkeypatch):
    import os
    from concurrent.futures import ThreadPoolExecutor

    import torch

    from core.encoders.threads import all_cores, encode_threads, thread_limit

    monkeypatch.delenv("TOKENIZERS_PARALLELISM", raising=False)
    before = torch.get_num_threads()
    assert encode_threads() == all_cores()
    with thread_limit(1):
        assert torch.get_num_threads() == 1 and os.environ["TOKENIZERS_PARALLELISM"] == "false"
        assert encode_threads() == 1
        with ThreadPoolExecutor(1) as other:  # another thread (the service's requests) keeps every core
            assert other.submit(encode_threads).result() == all_cores()
    assert torch.get_num_threads() == before and "TOKENIZERS_PARALLELISM" not in os.environ
    assert encode_threads() == all_cores()


def test_race_times_every_contender_at_every_thread_count_in_order():
    from core.serving.timing import Contender, race

    def encode(texts):
        return np.ones((len(texts), 4), dtype=np.float32)

    seen = []
    reports = race([Contender("a", encode, ["q1", "q2", "q3"], ["t"] * 50),
                    Contender("b", encode, ["q1"], ["t"] * 10)], [1, 2], short_throughput=True, on_report=seen.append)
    assert [(r.label, r.threads) for r in reports] == [("a", 1), ("b", 1), ("a", 2), ("b", 2)]
    assert seen == reports
    assert [len(r.latencies_ms) for r in reports] == [3, 1, 3, 1]
    assert all(r.short_per_s > 0 and r.query_p50_ms <= r.query_p99_ms for r in reports)


def test_teacher_vs_student_races_both_at_each_thread_count_teacher_first():
    from core.serving.timing import teacher_vs_student

    def fast(texts):
        return np.ones((len(texts), 4), dtype=np.float32)

    def slow(texts):
        import time

        time.sleep(0.0005 * len(texts))
        return np.ones((len(texts), 4), dtype=np.float32)

    reports = teacher_vs_student(slow, fast, ["q1", "q2"], ["t"] * 64, threads=[1, 2])
    assert [(r.label, r.threads) for r in reports] == [("teacher", 1), ("student", 1), ("teacher", 2), ("student", 2)]
    assert all(s.throughput_per_s > t.throughput_per_s for t, s in zip(reports[::2], reports[1::2]))
    assert [r.threads for r in teacher_vs_student(slow, fast, ["q"], ["t"] * 8, threads=1)] == [1, 1]


def test_model_overview_measures_load_time_once_per_weights(tmp_path):
    from core.artifact.folder import ModelFolder
    from core.serving import compare

    folder = ModelFolder.create(helpers.tiny_static_model(), helpers.tiny_record("m", name="tiny"), ["a text"],
                                tmp_path / "m")
    [row] = compare.model_overview([folder])
    assert row["model"] == "tiny" and row["id"] == "m" and row["method"] == "vocabulary" and row["dims"] == 8
    assert row["size_mb"] == folder.size_mb() > 0 and 0 < row["load_ms"] < 10_000
    key = next(k for k in compare._load_times if k[0] == str(folder.path))
    compare._load_times[key] = 123.0  # a second listing reads the measurement, not the disk
    assert compare.model_overview([folder])[0]["load_ms"] == 123_000.0


def test_clean_user_texts_drops_blank_lines_and_bounds_the_collection():
    from core.serving.compare import MAX_USER_TEXTS, clean_user_texts

    assert clean_user_texts(["  one ", "", "   ", "two"]) == ["one", "two"]
    with pytest.raises(DistilleryError, match="empty"):
        clean_user_texts(["", "  "])
    with pytest.raises(DistilleryError, match=f"At most {MAX_USER_TEXTS:,}"):
        clean_user_texts(["text"] * (MAX_USER_TEXTS + 1))
