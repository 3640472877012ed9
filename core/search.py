"""Similarity search over a document collection, teacher and student side by side."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from core.embedders import Embedder
from core.progress import Progress, silent

if TYPE_CHECKING:
    from core.ann import VectorIndex


@dataclass
class Hit:
    rank: int
    index: int
    score: float
    text: str


def top_k(query: np.ndarray, matrix: np.ndarray, k: int) -> list[tuple[int, float]]:
    """Indices and cosine scores of the `k` rows of `matrix` closest to `query` (both normalised)."""
    scores = matrix @ query.reshape(-1)
    k = min(k, len(scores))
    if k <= 0:
        return []
    best = np.argpartition(-scores, k - 1)[:k]
    best = best[np.argsort(-scores[best], kind="stable")]
    return [(int(i), float(scores[i])) for i in best]


def search(query_vector: np.ndarray, matrix: np.ndarray | VectorIndex, texts: Sequence[str], k: int = 5) -> list[Hit]:
    """Top-k hits from a matrix (exact) or a `core.ann.VectorIndex` (exact or HNSW by size)."""
    found = top_k(query_vector, matrix, k) if isinstance(matrix, np.ndarray) else matrix.search(query_vector, k)
    return [Hit(r + 1, i, s, texts[i]) for r, (i, s) in enumerate(found)]


def overlap(a: Sequence[Hit], b: Sequence[Hit]) -> int:
    """How many documents two result lists share."""
    return len({h.index for h in a} & {h.index for h in b})


def texts_digest(texts: Sequence[str]) -> str:
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode("utf-8") + b"\x00")
    return digest.hexdigest()


def embed_collection(
    embedder: Embedder, texts: Sequence[str], cache_dir: Path | None = None, batch: int = 64,
    progress: Progress = silent, stage: str = "index",
) -> np.ndarray:
    """Embed a collection in batches with progress; cached on disk by (model fingerprint, texts)."""
    cache_file = None
    if cache_dir is not None:
        key = hashlib.sha256(f"{embedder.fingerprint}|{texts_digest(texts)}".encode()).hexdigest()[:32]
        cache_file = Path(cache_dir) / f"{key}.npy"
        if cache_file.is_file():
            return np.load(cache_file)
    parts = []
    for start in range(0, len(texts), batch):
        parts.append(embedder.encode(texts[start : start + batch]))
        progress(stage, min(start + batch, len(texts)) / max(len(texts), 1),
                 f"{embedder.label}: {min(start + batch, len(texts)):,}/{len(texts):,} texts")
    matrix = np.concatenate(parts) if parts else np.zeros((0, 1), dtype=np.float32)
    if cache_file is not None:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_suffix(f".{os.getpid()}.tmp.npy")
        np.save(tmp, matrix)
        os.replace(tmp, cache_file)
    return matrix
