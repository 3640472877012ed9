"""A search index over a collection's vectors: exact up to `EXACT_UP_TO` rows, HNSW above.

Measured by bench/ann.py on 1,000,000 passages of the student's vectors (bench/results/ann.json, 2 cores,
1000 queries): exact search (`core.search.top_k`) takes encode + search p95 33 ms there (57 ms in an
earlier run on a busier machine), against 2.4-4.3 ms at 100k (bench/results/speed.json), so the cut-over
sits at 100k rows. Above it, faiss's `IndexHNSWFlat` (inner product on unit vectors = cosine) with
M=32, efConstruction=100 and efSearch=128: recall@10 0.966 against exact search, encode + search
p95 0.53 ms, build 138 s, 1.2 GB. By the bench's rule (recall >= 0.95, lowest p95) hnswlib M=32/ef 96
wins (0.956, 0.37 ms) and, among wheel-installed libraries, this graph at ef 96 (0.955, 0.41 ms); ef 128
keeps a margin above the bar for +0.12 ms. hnswlib ships as a source package that needs a C++ compiler
on every install (the Docker image, a Space); usearch was slower at equal recall (f16 ef 128: 0.74 ms),
its i8 never reached 0.95, and IVF needs 2.5 ms or more. faiss-cpu is a wheel, maintained by its authors.
`IndexHNSWFlat` keeps float32 vectors, so its scores are the exact cosines of the rows it returns.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from core.errors import DistilleryError
from core.search import top_k

EXACT_UP_TO = 100_000  # exact search measured at p95 2.4-4.3 ms on 100k rows
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
        """`approximate` None: exact up to EXACT_UP_TO rows, HNSW beyond (all cores, faiss's
        OpenMP threads; ~3 min for 1M x 256 on 2 cores)."""
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
        """Indices and cosine scores of the `k` nearest rows, best first (as `core.search.top_k`)."""
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
            return top_k(query, self.matrix, k)
        # Per-call parameters, not `graph.hnsw.efSearch = ...`: concurrent searches share the graph.
        params = _faiss().SearchParametersHNSW(efSearch=max(EF_SEARCH, k))
        scores, ids = self._graph.search(query.reshape(1, -1), k, params=params)
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
