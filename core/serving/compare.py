"""Teacher and student on the same collection: side-by-side search and a speed comparison.

A `CompareSession` holds both encoders and both indexes of one collection, so a query costs one
encode per model and one search each. `CompareSessions` is the bounded cache of open sessions the
Compare tab uses: each session holds two embedding matrices (and two teacher-sized models are
shared through their own caches), so an unbounded cache would grow with every model and every
upload compared. Opening one costs seconds (almost all of it loading the teacher; the collection's
teacher embeddings were cached by the job), so the tab opens it in the background
(`CompareSessions.open_in_background`) as soon as a model is chosen, and the first search is as
fast as the later ones.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core import settings
from core.artifact.folder import ModelFolder, model2vec_weights
from core.encoders.base import Encoder
from core.encoders.student import StudentEncoder
from core.encoders.teacher import TeacherInfo, resolve_recorded, teacher_encoder
from core.errors import DistilleryError
from core.files import texts_digest
from core.progress import Progress, silent
from core.serving.collection import embed_collection
from core.serving.index import Hit, VectorIndex, overlap, search
from core.serving.timing import SpeedReport, teacher_vs_student

MAX_USER_TEXTS = 5_000
MAX_SESSIONS = 4
# Below this teacher cosine, the collection probably holds nothing that answers the query. Measured
# with the default teacher (all-MiniLM-L6-v2) on 300 pairs each: a question and the passage that
# answers it score >= 0.35 for over 95 % of MedQuAD and about 92 % of XQuAD pairs (p5 0.47 and 0.31), while the best match of the same questions in a 500-text corpus sample
# (which holds no answer) has a median of 0.36 and 0.34. Higher would flag true answers; lower would
# flag almost nothing.
OFF_COLLECTION_BELOW = 0.35
# Sample queries the Compare tab offers, by language code (`core.languages`): a French model's collection
# (the French corpus: the Python documentation in French, labour law, the Code civil) answers the French ones.
SAMPLE_QUERIES: dict[str, tuple[str, ...]] = {
    "en": (
        "How do I read a file line by line in python?",
        "What are the symptoms of type 2 diabetes?",
        "Can my landlord keep the deposit after I move out?",
        "Why did stock markets fall after the rate decision?",
    ),
    "fr": (
        "Combien de jours de congés payés par an pour un salarié à temps plein ?",
        "Mon employeur peut-il refuser une rupture conventionnelle ?",
        "Quel préavis en cas de démission pendant la période d'essai ?",
        "Comment lire un fichier ligne par ligne en Python ?",
        "Différence entre une liste et un tuple en Python",
        "Qui hérite en l'absence de testament ?",
    ),
}


@dataclass
class Comparison:
    query: str
    teacher: list[Hit]
    student: list[Hit]
    overlap: int
    teacher_ms: float
    student_ms: float
    teacher_read: int | None = None  # the tokens the teacher read when it cut the query there, else None
    student_blind: bool = False  # the student knows none of the query's tokens: its vector is empty

    def rank_in_other(self, side: str) -> list[int | None]:
        """For each hit of `side` ("teacher" or "student"), its rank in the other model's list, or None.

        What the tables mark as shared: agreeing on *which* texts come first is what a student should
        keep from its teacher, more than the score values (which are on different scales).
        """
        mine, other = (self.teacher, self.student) if side == "teacher" else (self.student, self.teacher)
        ranks = {h.index: h.rank for h in other}
        return [ranks.get(h.index) for h in mine]

    @property
    def off_collection(self) -> bool:
        """True when even the teacher finds nothing close: its best cosine is below `OFF_COLLECTION_BELOW`.

        Then the student's hits look like failures when nothing in the collection answers the query;
        the tab says so instead. The threshold is the default teacher's; other teachers' cosines sit
        on other scales, so for them it is a hint, not a measurement.
        """
        return not self.teacher or self.teacher[0].score < OFF_COLLECTION_BELOW


@dataclass
class CompareSession:
    folder: ModelFolder
    teacher: TeacherInfo
    texts: list[str]
    teacher_encoder: Encoder
    student: StudentEncoder
    teacher_index: VectorIndex
    student_index: VectorIndex
    student_load_seconds: float
    size_mb: float

    @classmethod
    def open(cls, folder: ModelFolder, texts: Sequence[str] | None = None, progress: Progress = silent) -> CompareSession:
        """Load both models and index the collection (the model's corpus sample unless `texts` given)."""
        folder.check()  # a damaged folder is refused with its reason, before anything loads
        teacher = resolve_recorded(folder.record.teacher)
        collection = clean_user_texts(texts) if texts is not None else folder.collection()
        progress("student", 0.0, "loading the student")
        student = StudentEncoder.open(folder.path)
        progress("teacher", 0.0, f"loading the teacher ({teacher.name})")
        teacher_side = teacher_encoder(teacher)
        progress("teacher", 0.0, f"embedding the {len(collection):,} texts of the collection with the teacher")
        teacher_matrix = embed_collection(teacher_side, collection, settings.cache_dir(), progress=progress,
                                          stage="teacher")
        progress("student", 0.0, "embedding the collection with the student")
        student_matrix = embed_collection(student, collection, batch=1024)
        session = cls(folder, teacher, collection, teacher_side, student, VectorIndex.build(teacher_matrix),
                      VectorIndex.build(student_matrix), load_seconds(folder.path), folder.size_mb())
        progress("ready", 1.0, "ready")
        return session

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
        return Comparison(query, teacher_hits, student_hits, overlap(teacher_hits, student_hits), teacher_ms, student_ms,
                          self._teacher_cut(query), not np.any(student_vector))

    def _teacher_cut(self, query: str) -> int | None:
        """The teacher's token limit when `query` reaches it (it reads only that many; a long query's
        rest counts for the student alone), else None."""
        model = getattr(self.teacher_encoder, "model", None)  # an endpoint teacher has none: its limit is unknown
        limit = getattr(model, "max_seq_length", None)
        count_tokens = getattr(self.teacher_encoder, "count_tokens", None)
        if not limit or count_tokens is None or len(query) + 2 < limit:  # a token covers a character or more
            return None
        return limit if count_tokens([query]) >= limit else None

    def speed(self, queries: Sequence[str], threads: int | Sequence[int] | None = None, max_texts: int = 256,
              on_report: Callable[[SpeedReport], None] | None = None) -> list[SpeedReport]:
        """Both models timed on the same queries and texts, under the same thread limit."""
        return teacher_vs_student(self.teacher_encoder.encode_queries, self.student.encode_queries, queries,
                                  self.texts[:max_texts], threads, on_report)


SessionKey = tuple[str, int, str]


class Opening:
    """A session being opened on a thread of its own: its latest progress message, then the session
    or the error. The tab polls it to show a status that moves while the models load."""

    def __init__(self) -> None:
        self.message = "starting"
        self.session: CompareSession | None = None
        self.error: BaseException | None = None
        self._done = threading.Event()

    def report(self, stage: str, fraction: float, message: str = "") -> None:
        """A `Progress`: keeps the latest message."""
        if message:
            self.message = message

    def wait(self, timeout: float | None = None) -> bool:
        """True once the session is open or has failed."""
        return self._done.wait(timeout)

    @property
    def done(self) -> bool:
        return self._done.is_set()


class CompareSessions:
    """Open sessions by (model, collection), least recently used dropped beyond `max_sessions`.

    The key holds the model's weights version and path, so a rebuilt or moved model opens afresh.
    """

    def __init__(self, max_sessions: int = MAX_SESSIONS) -> None:
        self.max_sessions = max_sessions
        self._sessions: OrderedDict[SessionKey, CompareSession] = OrderedDict()
        self._openings: dict[SessionKey, Opening] = {}
        self._lock = threading.Lock()  # held while a session is built
        self._sessions_lock = threading.Lock()  # held only to read or change `_sessions` (never while building)
        self._openings_lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._sessions)

    @staticmethod
    def key(folder: ModelFolder, texts: Sequence[str] | None = None) -> SessionKey:
        return (str(folder.path.resolve()), model2vec_weights(folder.path).stat().st_mtime_ns,
                texts_digest(texts) if texts is not None else "corpus sample")

    def is_open(self, folder: ModelFolder, texts: Sequence[str] | None = None) -> bool:
        """Whether a search on this model and collection would start at once."""
        return self.key(folder, texts) in self._sessions

    def get(self, folder: ModelFolder, texts: Sequence[str] | None = None, progress: Progress = silent) -> CompareSession:
        """The open session, at once (a search never waits for another collection's build), else built."""
        key = self.key(folder, texts)
        session = self._open(key)
        if session is None:
            with self._lock:  # one session is built at a time: building one loads models and embeds
                session = self._open(key)  # built meanwhile by another caller, perhaps
                if session is None:
                    session = CompareSession.open(folder, texts, progress)
                    with self._sessions_lock:
                        self._sessions[key] = session
                        while len(self._sessions) > self.max_sessions:
                            self._sessions.popitem(last=False)
                    return session
        progress("ready", 1.0, "ready")
        return session

    def _open(self, key: SessionKey) -> CompareSession | None:
        with self._sessions_lock:
            session = self._sessions.get(key)
            if session is not None:
                self._sessions.move_to_end(key)
            return session

    def open_in_background(self, folder: ModelFolder, texts: Sequence[str] | None = None) -> Opening:
        """Start opening the session on a daemon thread (or join the opening already under way).

        A search that comes meanwhile waits in `get` for the same build instead of starting another.
        """
        key = self.key(folder, texts)
        with self._openings_lock:
            if key in self._openings:
                return self._openings[key]
            opening = self._openings[key] = Opening()

        def build() -> None:
            try:
                opening.session = self.get(folder, texts, opening.report)
            except BaseException as exc:  # handed to whoever polls the opening
                opening.error = exc
            finally:
                with self._openings_lock:
                    self._openings.pop(key, None)
                opening._done.set()

        threading.Thread(target=build, name=f"open-compare-{folder.id}", daemon=True).start()
        return opening


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
