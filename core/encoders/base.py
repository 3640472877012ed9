"""The one encoder interface, shared by teacher and student.

Contract: `encode(texts)` embeds documents and `encode_queries(texts)` embeds queries (the same for
a model without prompts); both return a float32 array with one unit-length row per text (an empty
text or a text of unknown tokens gives a zero row). `fingerprint` is a content hash of whatever
decides the vectors (weights, prompts), never a path, so a cache keyed on it survives a moved
folder and is invalidated by rebuilt weights. `label` names the encoder in progress messages.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np


class Encoder(Protocol):
    label: str
    fingerprint: str

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray: ...


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """float32 rows scaled to length 1 (zero rows stay zero)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim == 1:
        vectors = vectors[None, :]
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def embed_non_empty(texts: Sequence[str], dimension: int, embed: Callable[[list[str]], np.ndarray]) -> np.ndarray:
    """Unit rows of `texts` by `embed`, called once on the texts that are not blank only: a blank text
    is a zero row (the contract above) without a call, since an API refuses an empty input and a
    package's function returns something arbitrary for one."""
    keep = [i for i, text in enumerate(texts) if text and text.strip()]
    out = np.zeros((len(texts), dimension), dtype=np.float32)
    if keep:
        out[keep] = embed([texts[i] for i in keep])
    return unit_rows(out)
