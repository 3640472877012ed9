"""Teacher and student behind one small interface, so search and timing code treat them alike."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from core.static_encoder import StaticEncoder
from core.teacher import TeacherInfo, load_teacher


@dataclass
class Embedder:
    """`encode` returns L2-normalised float32 rows; `fingerprint` keys caches of its outputs."""

    label: str
    fingerprint: str
    encode: Callable[[Sequence[str]], np.ndarray]
    threads: int


def teacher_embedder(info: TeacherInfo, batch_size: int = 32) -> Embedder:
    import torch

    model = load_teacher(info)
    prompt = info.prompts.get("document")

    def encode(texts: Sequence[str]) -> np.ndarray:
        vectors = model.encode(list(texts), batch_size=batch_size, prompt=prompt, convert_to_numpy=True,
                               normalize_embeddings=True, show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32)

    return Embedder("teacher", info.fingerprint, encode, torch.get_num_threads())


def query_encoder(info: TeacherInfo, device: str | None = None) -> Callable[[Sequence[str]], np.ndarray]:
    """The teacher's query side (its `query` prompt where it defines one); `device` None: CUDA when present."""
    model = load_teacher(info, device=device)
    prompt = info.prompts.get("query")
    return lambda texts: np.asarray(
        model.encode(list(texts), prompt=prompt, normalize_embeddings=True, show_progress_bar=False), dtype=np.float32
    )


def student_embedder(model_dir: Path) -> Embedder:
    encoder = StaticEncoder(load_student(str(model_dir)))

    def encode(texts: Sequence[str]) -> np.ndarray:
        vectors = np.asarray(encoder.encode(list(texts)), dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.maximum(norms, 1e-12)

    return Embedder("student", f"student:{Path(model_dir).resolve()}", encode, 1)


@functools.lru_cache(maxsize=8)
def load_student(model_dir: str):  # -> model2vec.StaticModel
    from model2vec import StaticModel

    return StaticModel.from_pretrained(model_dir)
