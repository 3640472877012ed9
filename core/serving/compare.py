"""Teacher and student on the same collection: side-by-side search and a speed comparison.

A `CompareSession` holds both encoders and both indexes of one collection, so a query costs one
encode per model and one search each. `CompareSessions` is the bounded cache of open sessions the
Compare tab uses: each session holds two embedding matrices (and two teacher-sized models are
shared through their own caches), so an unbounded cache would grow with every model and every
upload compared.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core import settings
from core.artifact.folder import ModelFolder, model2vec_weights
from core.encoders.student import StudentEncoder
from core.encoders.teacher import TeacherEncoder, TeacherInfo, resolve_teacher
from core.errors import DistilleryError
from core.files import texts_digest
from core.progress import Progress, silent
from core.serving.collection import embed_collection
from core.serving.index import Hit, VectorIndex, overlap, search
from core.serving.timing import SpeedReport, teacher_vs_student

MAX_USER_TEXTS = 5_000
MAX_SESSIONS = 4


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
    folder: ModelFolder
    teacher: TeacherInfo
    texts: list[str]
    teacher_encoder: TeacherEncoder
    student: StudentEncoder
    teacher_index: VectorIndex
    student_index: VectorIndex
    student_load_seconds: float
    size_mb: float

    @classmethod
    def open(cls, folder: ModelFolder, texts: Sequence[str] | None = None, progress: Progress = silent) -> CompareSession:
        """Load both models and index the collection (the model's corpus sample unless `texts` given)."""
        teacher = resolve_teacher(folder.record.teacher.name, folder.record.teacher.trust_remote_code)
        collection = clean_user_texts(texts) if texts is not None else folder.collection()
        student = StudentEncoder.open(folder.path)
        teacher_encoder = TeacherEncoder(teacher)
        teacher_matrix = embed_collection(teacher_encoder, collection, settings.cache_dir(), progress=progress,
                                          stage="teacher")
        student_matrix = embed_collection(student, collection, batch=1024)
        return cls(folder, teacher, collection, teacher_encoder, student, VectorIndex.build(teacher_matrix),
                   VectorIndex.build(student_matrix), load_seconds(folder.path), folder.size_mb())

    def search(self, query: str, k: int = 5) -> Comparison:
        if not query or not query.strip():
            raise DistilleryError("Type a query first.")
        start = time.perf_counter()
        teacher_vector = self.teacher_encoder.encode_queries([query])[0]
        teacher_ms = (time.perf_counter() - start) * 1000
        start = time.perf_counter()
        student_vector = self.student.encode_queries([query])[0]
        student_ms = (time.perf_counter() - start) * 1000
        teacher_hits = search(teacher_vector, self.teacher_index, self.texts, k)
        student_hits = search(student_vector, self.student_index, self.texts, k)
        return Comparison(query, teacher_hits, student_hits, overlap(teacher_hits, student_hits), teacher_ms, student_ms)

    def speed(self, queries: Sequence[str], threads: int | Sequence[int] | None = None, max_texts: int = 256,
              on_report: Callable[[SpeedReport], None] | None = None) -> list[SpeedReport]:
        """Both models timed on the same queries and texts, under the same thread limit."""
        return teacher_vs_student(self.teacher_encoder.encode_queries, self.student.encode_queries, queries,
                                  self.texts[:max_texts], threads, on_report)


class CompareSessions:
    """Open sessions by (model, collection), least recently used dropped beyond `max_sessions`.

    The key holds the model's weights version and path, so a rebuilt or moved model opens afresh.
    """

    def __init__(self, max_sessions: int = MAX_SESSIONS) -> None:
        self.max_sessions = max_sessions
        self._sessions: OrderedDict[tuple[str, int, str], CompareSession] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._sessions)

    def get(self, folder: ModelFolder, texts: Sequence[str] | None = None, progress: Progress = silent) -> CompareSession:
        key = (str(folder.path.resolve()), model2vec_weights(folder.path).stat().st_mtime_ns,
               texts_digest(texts) if texts is not None else "corpus sample")
        with self._lock:  # one session is built at a time: building one loads models and embeds
            if key in self._sessions:
                self._sessions.move_to_end(key)
                return self._sessions[key]
            session = CompareSession.open(folder, texts, progress)
            self._sessions[key] = session
            while len(self._sessions) > self.max_sessions:
                self._sessions.popitem(last=False)
            return session


def model_overview(folders: Sequence[ModelFolder]) -> list[dict[str, Any]]:
    """A row per finished model for the model list: what it is, its size on disk and its load time."""
    return [{"model": f.record.title, "id": f.id, "method": f.record.method, "dims": f.record.dimension,
             "tokens": f.record.vocabulary_size, "size_mb": f.size_mb(),
             "load_ms": round(load_seconds(f.path) * 1000, 1)} for f in folders]


_load_times: dict[tuple[str, int], float] = {}


def load_seconds(folder: Path) -> float:
    """Seconds `StaticModel.from_pretrained` takes on this folder, measured once per version of its weights.

    A measurement, not a load for use: the encoders' cached load (`StudentEncoder.open`) would time 0.
    """
    from model2vec import StaticModel

    weights = model2vec_weights(folder)
    key = (str(folder), weights.stat().st_mtime_ns)
    if key not in _load_times:
        start = time.perf_counter()
        StaticModel.from_pretrained(str(folder))
        _load_times[key] = time.perf_counter() - start
    return _load_times[key]


def clean_user_texts(texts: Sequence[str]) -> list[str]:
    cleaned = [t.strip() for t in texts if t and t.strip()]
    if not cleaned:
        raise DistilleryError("The collection is empty: paste or upload at least one text (one per line).")
    if len(cleaned) > MAX_USER_TEXTS:
        raise DistilleryError(f"At most {MAX_USER_TEXTS:,} texts can be searched live; this has {len(cleaned):,}.")
    return cleaned
