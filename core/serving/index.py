"""Search over a collection's vectors: `VectorIndex` owns top-k, exact up to `EXACT_UP_TO` rows,
an HNSW graph above.

Exact search is a matrix product and a partial sort; above the cut-over its latency grows with the
collection while a graph's barely does. faiss's `IndexHNSWFlat` (inner product on unit vectors =
cosine, float32 vectors, so its scores are the exact cosines of the rows it returns) was chosen by
`bench/ann.py` among faiss HNSW and IVF, hnswlib and usearch, as the fastest at recall@10 >= 0.95
among wheel-installed libraries (hnswlib needs a C++ compiler on every install); efSearch 128 keeps
a margin above that bar. The figures behind the cut-over and the parameters are in
docs/benchmarks.md ("Search index").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import DistilleryError
from core.files import write_atomically

EXACT_UP_TO = 100_000  # rows searched exactly (inclusive); the measurement is in docs/benchmarks.md
HNSW_M = 32
EF_CONSTRUCTION = 100
EF_SEARCH = 128


class VectorIndex:
    """Top-k by cosine over unit-length float32 rows, exact or through an HNSW graph."""

    def __init__(self, matrix: np.ndarray, approximate: bool, graph=None) -> None:
        self.matrix = matrix
        self.approximate = approximate
        self._graph: Any = graph  # faiss.IndexHNSWFlat when approximate

    @classmethod
    def build(cls, matrix: np.ndarray, approximate: bool | None = None) -> VectorIndex:
        """`approximate` None: exact up to EXACT_UP_TO rows, HNSW beyond (built on all cores, with
        faiss's OpenMP threads)."""
        matrix = np.asarray(matrix)
        if matrix.ndim != 2 or not len(matrix) or not matrix.shape[1]:
            raise DistilleryError("There is nothing to index: the collection has no vectors.")
        matrix = np.ascontiguousarray(matrix, dtype=np.float32)
        approximate = len(matrix) > EXACT_UP_TO if approximate is None else approximate
        if not approximate:
            return cls(matrix, False)
        faiss = _faiss()
        graph = faiss.IndexHNSWFlat(matrix.shape[1], HNSW_M, faiss.METRIC_INNER_PRODUCT)
        graph.hnsw.efConstruction = EF_CONSTRUCTION
        graph.add(matrix)
        graph.hnsw.efSearch = EF_SEARCH
        return cls(matrix, True, graph)

    def __len__(self) -> int:
        return len(self.matrix)

    def search(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        """Indices and cosine scores of the `k` nearest rows, best first."""
        query = np.ascontiguousarray(query, dtype=np.float32).reshape(-1)
        if not query.size:
            raise DistilleryError("There is nothing to search for: the query has no vector.")
        if query.size != self.matrix.shape[1]:
            raise DistilleryError(f"The query has {query.size} dimensions but the index has "
                                  f"{self.matrix.shape[1]}: it was encoded by another model.")
        k = min(k, len(self.matrix))
        if k <= 0:
            return []
        if not self.approximate or k == len(self.matrix):  # a graph walk may miss rows when asked for all
            ids, scores = _exact_top_k(query.reshape(1, -1), self.matrix, k)
            return [(int(i), float(s)) for i, s in zip(ids[0], scores[0])]
        # Per-call parameters, not `graph.hnsw.efSearch = ...`: concurrent searches share the graph.
        params = _faiss().SearchParametersHNSW(efSearch=max(EF_SEARCH, k))
        scores, ids = self._graph.search(query.reshape(1, -1), k, params=params)
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]

    def search_many(self, queries: np.ndarray, k: int, chunk: int = 128) -> np.ndarray:
        """Indices of the `k` nearest rows of each query row, best first, as an (n, k) int64 array (-1
        where a graph walk found fewer). Exact search goes `chunk` queries at a time, so its memory is
        `chunk` x rows scores, never n x rows."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if queries.ndim != 2 or queries.shape[1] != self.matrix.shape[1]:
            raise DistilleryError("The queries do not have the index's dimensions: they were encoded by another model.")
        k = min(k, len(self.matrix))
        if not self.approximate or k == len(self.matrix):
            found = np.empty((len(queries), k), dtype=np.int64)
            for start in range(0, len(queries), chunk):
                found[start:start + chunk] = _exact_top_k(queries[start:start + chunk], self.matrix, k)[0]
            return found
        params = _faiss().SearchParametersHNSW(efSearch=max(EF_SEARCH, k))
        _, ids = self._graph.search(queries, k, params=params)
        return ids.astype(np.int64)

    def save(self, path: Path) -> None:
        """The graph (approximate) or the matrix (exact), written whole or not at all."""
        if self.approximate:
            graph = self._graph
            write_atomically(Path(path), lambda handle: handle.write(_faiss().serialize_index(graph).tobytes()))
        else:
            write_atomically(Path(path), lambda handle: np.save(handle, self.matrix))

    @classmethod
    def load(cls, path: Path, approximate: bool | None = None) -> VectorIndex:
        """What `save` wrote; `approximate` None: told by the file (a .npy file starts with b"\\x93NUMPY")."""
        path = Path(path)
        if not path.is_file():
            raise DistilleryError(f"There is no search index at {path}.")
        if approximate is None:
            with open(path, "rb") as handle:
                approximate = handle.read(6) != b"\x93NUMPY"
        if not approximate:
            return cls(np.load(path), False)
        faiss = _faiss()
        graph = faiss.read_index(str(path))
        if not isinstance(graph, faiss.IndexHNSWFlat) or graph.metric_type != faiss.METRIC_INNER_PRODUCT:
            raise DistilleryError(f"{path} is not a search index saved by Distillery.")
        return cls(graph.reconstruct_n(0, graph.ntotal), True, graph)


def _faiss():
    import faiss  # deferred: only collections above EXACT_UP_TO rows need it

    return faiss


def _exact_top_k(queries: np.ndarray, matrix: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and cosine scores of the `k` (1 ≤ k ≤ rows) rows of `matrix` closest to each query row
    (all unit length), best first: two (queries, k) arrays. The one exact search, for one query or many."""
    scores = queries @ matrix.T
    best = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    best_scores = np.take_along_axis(scores, best, 1)
    order = np.argsort(-best_scores, axis=1, kind="stable")
    return np.take_along_axis(best, order, 1), np.take_along_axis(best_scores, order, 1)


@dataclass
class Hit:
    rank: int
    index: int
    score: float
    text: str


def search(query_vector: np.ndarray, index: VectorIndex, texts: Sequence[str], k: int = 5) -> list[Hit]:
    """The top-k hits of a query vector in an index over `texts`' vectors."""
    return [Hit(r + 1, i, s, texts[i]) for r, (i, s) in enumerate(index.search(query_vector, k))]


def overlap(a: Sequence[Hit], b: Sequence[Hit]) -> int:
    """How many documents two result lists share."""
    return len({h.index for h in a} & {h.index for h in b})
