"""A search index over a collection's vectors: exact below `APPROXIMATE_FROM` rows, HNSW above.

Measured by bench/ann.py on 1,000,000 passages of the student's vectors (bench/results/ann.json, 2 cores):
exact search (`core.search.top_k`) takes p95 57 ms there, against 2.9 ms at 100k, so the cut-over
sits at 100k rows. Above it, faiss's `IndexHNSWFlat` (inner product on unit vectors = cosine) with
M=32 and efSearch=128: recall@10 0.966 against exact search, encode + search p95 0.54 ms, build 193 s.
hnswlib came out 0.07 ms faster at M=16/ef 128 but with recall 0.953, only just above the 0.95 bar,
and it ships as a source package that needs a C++ compiler on every install (the Docker image, a
Space); faiss-cpu is a wheel, maintained by its authors, and its M=32 graph keeps a margin.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from core.errors import DistilleryError
from core.search import top_k

APPROXIMATE_FROM = 100_000
HNSW_M = 32
EF_CONSTRUCTION = 100
EF_SEARCH = 128


class VectorIndex:
    """Top-k by cosine over unit-length float32 rows, exact or through an HNSW graph."""

    def __init__(self, matrix: np.ndarray, approximate: bool, graph=None) -> None:
        self.matrix = matrix
        self.approximate = approximate
        self._graph = graph  # faiss.IndexHNSWFlat when approximate

    @classmethod
    def build(cls, matrix: np.ndarray, approximate: bool | None = None) -> VectorIndex:
        """`approximate` None: exact below APPROXIMATE_FROM rows, HNSW from there on."""
        matrix = np.ascontiguousarray(matrix, dtype=np.float32)
        if matrix.ndim != 2 or not len(matrix):
            raise DistilleryError("There is nothing to index: the collection has no vectors.")
        approximate = len(matrix) >= APPROXIMATE_FROM if approximate is None else approximate
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
        """Indices and cosine scores of the `k` nearest rows, best first (as `core.search.top_k`)."""
        if not self.approximate:
            return top_k(query, self.matrix, k)
        k = min(k, len(self.matrix))
        if k <= 0:
            return []
        self._graph.hnsw.efSearch = max(EF_SEARCH, k)
        scores, ids = self._graph.search(np.ascontiguousarray(query, dtype=np.float32).reshape(1, -1), k)
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]

    def save(self, path: Path) -> None:
        """The graph (approximate) or the matrix (exact), written whole or not at all."""
        path = Path(path)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            if self.approximate:
                _faiss().write_index(self._graph, str(tmp))
            else:
                with open(tmp, "wb") as handle:
                    np.save(handle, self.matrix)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    @classmethod
    def load(cls, path: Path, approximate: bool) -> VectorIndex:
        if not approximate:
            return cls(np.load(path), False)
        faiss = _faiss()
        graph = faiss.read_index(str(path))
        return cls(graph.reconstruct_n(0, graph.ntotal), True, graph)


def _faiss():
    import faiss

    return faiss
