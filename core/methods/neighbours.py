"""Teacher-mined neighbours: for each training text, the texts the teacher itself puts closest to it.

Contract: `mine_neighbours(targets, target_map, rows, k)` returns an (len(rows), k) array of positions
into `rows` (never the text itself), nearest first by the cosine of the teacher's embeddings in the
shipped space (`targets @ target_map`). No labels are needed. Training builds its batches from these
neighbourhoods (`neighbour_batches`), so the in-batch losses see the hard negatives retrieval is
judged on, not only random pairs that any model tells apart. The search is `core.serving.index`'s
`VectorIndex` (exact in chunks up to its cut-over, HNSW beyond), so memory stays linear in the corpus
and no n x n matrix is ever held.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from core.methods.featurize import TargetReader
from core.progress import Progress, silent
from core.serving.index import VectorIndex


def mine_neighbours(
    targets: TargetReader, target_map: np.ndarray, rows: np.ndarray, k: int, progress: Progress = silent,
    chunk: int = 8192,
) -> np.ndarray:
    """Positions (into `rows`) of each row's `k` nearest rows by the teacher, nearest first."""
    k = min(k, len(rows) - 1)
    vectors = np.empty((len(rows), target_map.shape[1]), dtype=np.float32)
    for start in range(0, len(rows), chunk):
        part = targets.take(rows[start:start + chunk]).astype(np.float32) @ target_map
        vectors[start:start + chunk] = part / np.maximum(np.linalg.norm(part, axis=1, keepdims=True), 1e-8)
    progress("train", 0.0, f"mining {k} teacher neighbours of {len(rows):,} texts")
    index = VectorIndex.build(vectors)
    found = np.empty((len(rows), k + 1), dtype=np.int64)
    for start in range(0, len(rows), chunk):
        found[start:start + chunk] = index.search_many(vectors[start:start + chunk], k + 1)
        progress("train", 0.0, f"teacher neighbours: {min(start + chunk, len(rows)):,}/{len(rows):,} texts")
    return _without_self(found, k)


def _without_self(found: np.ndarray, k: int) -> np.ndarray:
    """Each row's hits minus itself (usually first; absent when a graph walk missed it or a duplicate
    tied): k columns. A missing hit (-1) becomes the row's nearest hit, or the row itself when the walk
    found nothing (a batch drops repeats)."""
    own = np.arange(len(found))[:, None]
    keep = found != own
    # Drop the text itself, else the last hit, so every row keeps exactly k.
    keep[keep.all(axis=1), -1] = False
    result = found[keep].reshape(len(found), k)
    result = np.where(result < 0, result[:, :1], result)
    result = np.where(result < 0, own, result)
    return result.astype(np.int32)


def neighbour_batches(
    count: int, neighbours: np.ndarray, batch_size: int, group: int, rng: np.random.Generator,
) -> Iterator[np.ndarray]:
    """One epoch of batches (positions < `count`), each made of anchors and `group - 1` of each anchor's
    neighbours drawn at random; about `count` texts are seen per epoch, as with random batches."""
    group = max(1, min(group, neighbours.shape[1] + 1))
    per_batch = max(1, batch_size // group)
    anchors = rng.permutation(count)[:max(1, count // group)]
    for start in range(0, len(anchors), per_batch):
        chunk = anchors[start:start + per_batch]
        if group == 1:
            yield np.sort(chunk)
            continue
        columns = np.argsort(rng.random((len(chunk), neighbours.shape[1])), axis=1)[:, :group - 1]
        picked = np.take_along_axis(neighbours[chunk], columns, 1)
        yield np.unique(np.concatenate([chunk, picked.ravel()]))
