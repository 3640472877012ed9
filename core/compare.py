"""Teacher and student on the same collection: side-by-side search and a speed comparison.

A `CompareSession` holds both models and both embedding matrices of one collection, so a query
costs one encode per model and one matrix product each. The speed comparison times both models
on the same texts with the same thread limit (torch and BLAS alike), after a warm-up.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core import settings
from core.ann import VectorIndex
from core.embedders import Embedder, query_encoder, student_embedder, teacher_embedder
from core.errors import DistilleryError
from core.pipeline import COLLECTION_FILE, load_record
from core.progress import Progress, silent
from core.registry import folder_size
from core.search import Hit, embed_collection, overlap, search
from core.teacher import TeacherInfo, resolve_teacher
from core.timing import Contender, Encode, SpeedReport, all_cores, race

MAX_USER_TEXTS = 5_000


@dataclass
class Comparison:
    query: str
    teacher: list[Hit]
    student: list[Hit]
    overlap: int
    teacher_ms: float
    student_ms: float


@dataclass
class CompareSession:
    model_dir: Path
    teacher: TeacherInfo
    texts: list[str]
    teacher_matrix: np.ndarray
    student_matrix: np.ndarray
    student: Embedder
    student_load_seconds: float
    size_mb: float
    _teacher_query: object = field(default=None, repr=False)
    _indexes: dict = field(default_factory=dict, repr=False)

    @classmethod
    def open(cls, model_dir: Path, texts: Sequence[str] | None = None, progress: Progress = silent) -> CompareSession:
        """Load both models and embed the collection (the model's corpus sample unless `texts` given)."""
        record = load_record(model_dir)
        teacher = resolve_teacher(record["teacher"]["name"], record["teacher"].get("trust_remote_code", False))
        collection = clean_user_texts(texts) if texts is not None else default_collection(record)
        student = student_embedder(model_dir)
        teacher_side = teacher_embedder(teacher)
        teacher_matrix = embed_collection(teacher_side, collection, settings.cache_dir(), progress=progress,
                                          stage="teacher")
        student_matrix = embed_collection(student, collection, batch=1024)
        return cls(model_dir, teacher, collection, teacher_matrix, student_matrix, student, load_seconds(model_dir),
                   round(folder_size(model_dir) / 2**20, 2), query_encoder(teacher))

    def search(self, query: str, k: int = 5) -> Comparison:
        if not query or not query.strip():
            raise DistilleryError("Type a query first.")
        start = time.perf_counter()
        teacher_vector = self._teacher_query([query])[0]
        teacher_ms = (time.perf_counter() - start) * 1000
        start = time.perf_counter()
        student_vector = self.student.encode([query])[0]
        student_ms = (time.perf_counter() - start) * 1000
        teacher_hits = search(teacher_vector, self._index("teacher"), self.texts, k)
        student_hits = search(student_vector, self._index("student"), self.texts, k)
        return Comparison(query, teacher_hits, student_hits, overlap(teacher_hits, student_hits), teacher_ms, student_ms)

    def _index(self, side: str) -> VectorIndex:
        """Each side's index, built on first use: exact search up to 100k texts, HNSW beyond (core.ann)."""
        if side not in self._indexes:
            self._indexes[side] = VectorIndex.build(self.teacher_matrix if side == "teacher" else self.student_matrix)
        return self._indexes[side]

    def speed(self, queries: Sequence[str], threads: int | Sequence[int] | None = None, max_texts: int = 256,
              on_report: Callable[[SpeedReport], None] | None = None) -> list[SpeedReport]:
        """Both models timed on the same queries and texts, under the same thread limit."""
        return compare_speed(self._teacher_query, self.student.encode, queries, self.texts[:max_texts], threads,
                             on_report)


def compare_speed(teacher_encode: Encode, student_encode: Encode, queries: Sequence[str], texts: Sequence[str],
                  threads: int | Sequence[int] | None = None,
                  on_report: Callable[[SpeedReport], None] | None = None) -> list[SpeedReport]:
    """Teacher then student at each thread count (default: all cores), the reports in that order."""
    counts = [threads] if isinstance(threads, int) else list(threads or [all_cores()])
    return race([Contender("teacher", teacher_encode, queries, texts),
                 Contender("student", student_encode, queries, texts)], counts, min_seconds=0.2, on_report=on_report)


def model_overview(records: Sequence[dict]) -> list[dict]:
    """A row per finished model for the model list: what it is, its size on disk and its load time."""
    return [{"model": r.get("name") or r["id"], "id": r["id"], "method": r.get("recipe", {}).get("method", "vocabulary"),
             "dims": r.get("dimension"), "tokens": r.get("vocabulary_size"), "size_mb": r.get("size_mb"),
             "load_ms": round(load_seconds(Path(r["path"])) * 1000, 1)} for r in records]


_load_times: dict[tuple[str, int], float] = {}


def load_seconds(folder: Path) -> float:
    """Seconds `StaticModel.from_pretrained` takes on this folder, measured once per version of its weights."""
    from model2vec import StaticModel

    weights = Path(folder) / "model.safetensors"
    key = (str(folder), weights.stat().st_mtime_ns if weights.exists() else 0)
    if key not in _load_times:
        start = time.perf_counter()
        StaticModel.from_pretrained(str(folder))
        _load_times[key] = time.perf_counter() - start
    return _load_times[key]


def default_collection(record: dict) -> list[str]:
    path = Path(record["job_dir"]) / COLLECTION_FILE
    if not path.is_file():
        raise DistilleryError(f"The corpus sample of '{record['id']}' is missing ({path}); paste texts instead.")
    return json.loads(path.read_text())


def clean_user_texts(texts: Sequence[str]) -> list[str]:
    cleaned = [t.strip() for t in texts if t and t.strip()]
    if not cleaned:
        raise DistilleryError("The collection is empty: paste or upload at least one text (one per line).")
    if len(cleaned) > MAX_USER_TEXTS:
        raise DistilleryError(f"At most {MAX_USER_TEXTS:,} texts can be searched live; this has {len(cleaned):,}.")
    return cleaned
