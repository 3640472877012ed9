"""A collection's embeddings: encoded in batches with progress, cached on disk by content.

The key is the encoder's fingerprint (a content hash of weights and prompts) and the texts' digest,
so a moved model keeps its cache and a rebuilt one never reads a stale one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from core.encoders.base import Encoder
from core.files import save_array, texts_digest
from core.progress import Progress, silent


def embed_collection(
    encoder: Encoder, texts: Sequence[str], cache_dir: Path | None = None, batch: int = 64,
    progress: Progress = silent, stage: str = "index",
) -> np.ndarray:
    """The document-side embeddings of `texts` (unit float32 rows), from the cache when present."""
    cache_file = None
    if cache_dir is not None:
        key = hashlib.sha256(f"{encoder.fingerprint}|{texts_digest(texts)}".encode()).hexdigest()[:32]
        cache_file = Path(cache_dir) / f"{key}.npy"
        if cache_file.is_file():
            return np.load(cache_file)
    parts = []
    for start in range(0, len(texts), batch):
        parts.append(encoder.encode(texts[start : start + batch]))
        progress(stage, min(start + batch, len(texts)) / max(len(texts), 1),
                 f"{encoder.label}: {min(start + batch, len(texts)):,}/{len(texts):,} texts")
    matrix = np.concatenate(parts) if parts else np.zeros((0, 1), dtype=np.float32)
    if cache_file is not None:
        save_array(cache_file, matrix)
    return matrix
