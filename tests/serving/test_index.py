"""core.serving.index: HNSW recall against exact search, its scores, save/load, and the exact cut-over."""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import DistilleryError
from core.serving.index import EXACT_UP_TO, VectorIndex


def unit_rows(n: int, dim: int = 64, seed: int = 0) -> np.ndarray:
    """Unit vectors of low intrinsic dimension (a 12-dim latent, projected), as text embeddings are."""
    projection = np.random.default_rng(42).normal(size=(12, dim))
    rng = np.random.default_rng(seed)
    rows = rng.normal(size=(n, 12)) @ projection + 0.3 * rng.normal(size=(n, dim))
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def exact_top_k(query: np.ndarray, matrix: np.ndarray, k: int) -> list[tuple[int, float]]:
    """Exact search: the one owner of top-k is `VectorIndex` (`approximate=False` forces it)."""
    return VectorIndex.build(matrix, approximate=False).search(query, k)


@pytest.fixture(scope="module")
def collection() -> tuple[np.ndarray, np.ndarray, VectorIndex]:
    matrix, queries = unit_rows(20_000), unit_rows(200, seed=1)
    return matrix, queries, VectorIndex.build(matrix, approximate=True)


def test_hnsw_recall_against_exact_search(collection):
    matrix, queries, index = collection
    assert index.approximate and len(index) == len(matrix)
    found = [{i for i, _ in index.search(q, 10)} for q in queries]
    exact = [{i for i, _ in exact_top_k(q, matrix, 10)} for q in queries]
    recall = np.mean([len(f & e) / 10 for f, e in zip(found, exact)])
    assert recall >= 0.95, recall


def test_scores_are_the_cosines_of_the_rows_returned_best_first(collection):
    matrix, queries, index = collection
    hits = index.search(queries[0], 10)
    scores = [s for _, s in hits]
    assert scores == sorted(scores, reverse=True)
    assert np.allclose(scores, [float(matrix[i] @ queries[0]) for i, _ in hits], atol=1e-5)


def test_save_and_load_give_the_same_results(collection, tmp_path):
    _, queries, index = collection
    index.save(tmp_path / "index.faiss")
    again = VectorIndex.load(tmp_path / "index.faiss", approximate=True)
    assert [again.search(q, 5) for q in queries[:20]] == [index.search(q, 5) for q in queries[:20]]
    assert [p.name for p in tmp_path.iterdir()] == ["index.faiss"]  # no temporary file left behind


def test_exact_below_the_cut_over_and_k_beyond_the_collection():
    matrix = unit_rows(300)
    index = VectorIndex.build(matrix)
    assert not index.approximate and 300 <= EXACT_UP_TO
    assert index.search(matrix[7], 3) == exact_top_k(matrix[7], matrix, 3)
    assert len(VectorIndex.build(matrix[:4], approximate=True).search(matrix[0], 10)) == 4


def test_an_empty_collection_is_refused():
    for empty in (np.zeros((0, 8), dtype=np.float32), np.zeros((5, 0), dtype=np.float32), np.zeros(8)):
        with pytest.raises(DistilleryError, match="nothing to index"):
            VectorIndex.build(empty)


@pytest.mark.parametrize("approximate", [False, True])
def test_an_empty_or_foreign_query_is_refused(collection, approximate):
    matrix, _, graph = collection
    index = graph if approximate else VectorIndex.build(matrix, approximate=False)
    with pytest.raises(DistilleryError, match="nothing to search for"):
        index.search(np.zeros(0, dtype=np.float32), 10)
    with pytest.raises(DistilleryError, match="another model"):
        index.search(np.ones(32, dtype=np.float32), 10)
    assert index.search(matrix[0], 0) == []


def test_asking_the_graph_for_every_row_returns_every_row_exactly():
    matrix = unit_rows(500)
    index = VectorIndex.build(matrix, approximate=True)
    assert index.search(matrix[3], 10_000) == exact_top_k(matrix[3], matrix, 500)


def test_build_index_picks_exact_below_the_cut_over_and_load_tells_the_kind(tmp_path):
    small = VectorIndex.build(unit_rows(1000))
    assert not small.approximate and not VectorIndex.build(unit_rows(1000), approximate=False).approximate
    small.save(tmp_path / "exact.idx")
    again = VectorIndex.load(tmp_path / "exact.idx")
    assert not again.approximate and np.array_equal(again.matrix, small.matrix)
    graph = VectorIndex.build(unit_rows(1000), approximate=True)
    graph.save(tmp_path / "graph.idx")
    assert VectorIndex.load(tmp_path / "graph.idx").approximate
    with pytest.raises(DistilleryError, match="no search index"):
        VectorIndex.load(tmp_path / "missing.idx")


def test_concurrent_searches_give_the_serial_results(collection):
    from concurrent.futures import ThreadPoolExecutor

    _, queries, index = collection
    serial = [index.search(q, k) for q, k in zip(queries, [5, 50] * 100)]
    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(index.search, queries, [5, 50] * 100)) == serial
