"""Smart routing: the student answers, and only the inputs it is likely to get wrong go to the teacher.

Why: a static student is fast but loses most where a text's words are not in its vocabulary (a
WordPiece split of a rare word is a sum of fragments that mean little alone), while the teacher reads
every text well at ~100× the cost. Routing pays the teacher's price only for the inputs that need it.

- **The signal** (`short_text`: 1 / the number of words): short texts go to the teacher. A bag of
  words carries less meaning the fewer words there are, and a short text is most often a query,
  whose vector is compared with documents the teacher indexed. It costs a split. The other candidate,
  the share of words the student's vocabulary lacks (`unknown_word_share`), did no better than random
  routing on the development sets (`bench/routing.py`; figures in docs/benchmarks.md), and `SIGNALS`
  keeps both so the bench can show it.
- **One space** (`SharedSpace`): student and teacher vectors live in different spaces (a 256-d PCA
  table against 384-d sentence vectors), so a routed answer is in the teacher's space: the teacher's
  vectors untouched, the student's mapped by an affine ridge least-squares map fitted on the model's own
  search collection (its texts ship in the model folder; the teacher's embeddings of them are cached
  by the pipeline). "Always route" is the teacher bit for bit, and the intended use is queries
  against documents indexed once by the teacher (the same space), where each query's ranking is
  consistent whichever model embedded it. Comparing two routed vectors of different origins is the
  weak case: docs/design.md ("Routing") has the measurement behind the direction and the limits.
- **`RoutedEncoder`**: an `Encoder` over a student, a teacher and a map; `route` says which inputs
  went to the teacher (the service reports it as a response header), `encode`/`encode_queries` are the
  plain interface. The threshold is a signal value: an input is routed when its signal is above it
  (`NEVER` routes nothing, `ALWAYS` everything); `DISTILLERY_ROUTE_THRESHOLD` overrides the default.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.encoders.base import Encoder, unit_rows
from core.errors import DistilleryError

ROUTED_SUFFIX = ":routed"
THRESHOLD_ENV = "DISTILLERY_ROUTE_THRESHOLD"
NEVER = 1.0  # a signal is at most 1: nothing is above it
ALWAYS = -1.0  # every signal is at least 0
DEFAULT_THRESHOLD = 1 / 16  # texts under 16 words; the knee on the development sets (bench/routing.py)
RIDGE = 1e-2  # relative to the mean eigenvalue of the student's Gram matrix; keeps a 40-text fit sane


def unknown_word_share(tokenizer: Any, texts: Sequence[str]) -> np.ndarray:
    """Per text, the share of its words (pre-tokenised pieces with a letter or digit) that are not
    whole entries of `tokenizer`'s vocabulary; 0 for a text without words. A `tokenizers.Tokenizer`."""
    vocabulary = _vocabulary(tokenizer)
    normalizer, pre_tokenizer = tokenizer.normalizer, tokenizer.pre_tokenizer
    shares = np.zeros(len(texts), dtype=np.float32)
    for i, text in enumerate(texts):
        normal = normalizer.normalize_str(text) if normalizer is not None else text
        pieces = pre_tokenizer.pre_tokenize_str(normal) if pre_tokenizer is not None else \
            [(w, None) for w in normal.split()]
        words = [w for w, _ in pieces if any(c.isalnum() for c in w)]
        if words:
            shares[i] = sum(w not in vocabulary for w in words) / len(words)
    return shares


# By tokenizer object, the few most recent (each a few MB): a student reloaded after the students'
# cache dropped it brings a new tokenizer, and an unbounded map grew with every reload. The entry
# keeps its tokenizer, so an id reused by a later object is never mistaken for it.
MAX_VOCABULARIES = 8
_vocabularies: OrderedDict[int, tuple[Any, frozenset[str]]] = OrderedDict()
_vocabulary_lock = threading.Lock()


def _vocabulary(tokenizer: Any) -> frozenset[str]:
    with _vocabulary_lock:
        key = id(tokenizer)
        entry = _vocabularies.get(key)
        if entry is None or entry[0] is not tokenizer:
            entry = _vocabularies[key] = (tokenizer, frozenset(tokenizer.get_vocab(with_added_tokens=True)))
            while len(_vocabularies) > MAX_VOCABULARIES:
                _vocabularies.popitem(last=False)
        _vocabularies.move_to_end(key)
        return entry[1]


def word_count_signal(tokenizer: Any, texts: Sequence[str]) -> np.ndarray:
    """1 / the number of whitespace-separated words (at least 1): above 1/n means under n words.
    `tokenizer` is unused; every signal takes it, so they are interchangeable."""
    counts = np.array([max(len(text.split()), 1) for text in texts], dtype=np.float32)
    return 1.0 / counts


Signal = Callable[[Any, Sequence[str]], np.ndarray]
SIGNALS: dict[str, Signal] = {"unknown_words": unknown_word_share, "short_text": word_count_signal}


def threshold_from_env(default: float = DEFAULT_THRESHOLD) -> float:
    """`DISTILLERY_ROUTE_THRESHOLD`: a number (route when the signal, 1 / words, is above it: 0.0625
    sends texts under 16 words), "never" or "always"."""
    value = os.environ.get(THRESHOLD_ENV, "").strip().lower()
    if not value:
        return default
    if value in ("never", "always"):
        return NEVER if value == "never" else ALWAYS
    try:
        return float(value)
    except ValueError as exc:
        raise DistilleryError(f"{THRESHOLD_ENV}={value!r} is not a number (1 / the word count above which an "
                              f"input goes to the teacher: 0.0625 sends texts under 16 words), nor 'never' or "
                              f"'always'.") from exc


@dataclass(frozen=True)
class SharedSpace:
    """An affine map from one model's vectors to another's: `target ≈ source @ matrix + offset`, rows
    rescaled to unit length. Fitted by ridge least squares on paired vectors of the same texts, both
    sides less their means (the ridge does not shrink the offset).

    Why the offset: a student fitted to centred targets (a coned teacher such as mE5, see
    `core.methods.corpus.CONE_COSINE`) has lost the teacher's shared direction, which holds most of
    each teacher vector's length; a map through the origin cannot give it back, so its mapped vectors
    would sit far from the teacher's own (docs/benchmarks.md, "Routing a centred student")."""

    matrix: np.ndarray
    offset: np.ndarray

    @classmethod
    def fit(cls, source: np.ndarray, target: np.ndarray, ridge: float = RIDGE, affine: bool = True) -> SharedSpace:
        """`affine=False` fits a map through the origin (offset zero), as before the offset: kept for
        `bench/shared_space.py`, which measures what the offset changes."""
        if len(source) != len(target) or not len(source):
            raise DistilleryError(f"A shared space needs the same texts embedded by both models "
                                  f"({len(source)} and {len(target)} vectors).")
        x, y = np.asarray(source, dtype=np.float64), np.asarray(target, dtype=np.float64)
        x_mean = x.mean(axis=0) if affine else np.zeros(x.shape[1])
        y_mean = y.mean(axis=0) if affine else np.zeros(y.shape[1])
        x, y = x - x_mean, y - y_mean
        gram = x.T @ x
        penalty = ridge * max(np.trace(gram) / gram.shape[0], 1e-12)
        matrix = np.linalg.solve(gram + penalty * np.eye(gram.shape[0]), x.T @ y)
        return cls(matrix.astype(np.float32), (y_mean - x_mean @ matrix).astype(np.float32))

    def apply(self, vectors: np.ndarray) -> np.ndarray:
        return unit_rows(np.asarray(vectors, dtype=np.float32) @ self.matrix + self.offset)

    @property
    def digest(self) -> str:
        return hashlib.sha256(np.ascontiguousarray(self.matrix).tobytes()
                              + np.ascontiguousarray(self.offset).tobytes()).hexdigest()[:16]


@dataclass(frozen=True)
class Routed:
    """One routed call: the vectors (teacher space), which inputs the teacher embedded, their signal."""

    vectors: np.ndarray
    routed: np.ndarray  # bool per input
    signal: np.ndarray

    @property
    def header(self) -> str:
        """"routed/inputs", as the service's `X-Distillery-Routed` header says it."""
        return f"{int(self.routed.sum())}/{len(self.routed)}"


@dataclass
class RoutedEncoder:
    """The student, with the teacher for the inputs whose signal is above `threshold`; every vector in
    the teacher's space (`space` maps the student's there). Counts what it routed since it was made."""

    student: Any  # StudentEncoder (its `model.tokenizer` feeds the signal)
    teacher: Encoder
    space: SharedSpace
    threshold: float = DEFAULT_THRESHOLD
    signal: Signal = word_count_signal
    label: str = "routed"
    inputs_total: int = 0
    routed_total: int = 0
    fingerprint: str = field(init=False, default="")
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        text = f"{self.student.fingerprint}|{self.teacher.fingerprint}|{self.space.digest}|{self.threshold}"
        self.fingerprint = "routed:" + hashlib.sha256(text.encode()).hexdigest()

    @property
    def dimension(self) -> int:
        return int(self.space.matrix.shape[1])

    @property
    def nbytes(self) -> int:
        """The student and the map; the teacher is shared with the registry, which weighs it once."""
        return int(self.student.nbytes) + int(self.space.matrix.nbytes) + int(self.space.offset.nbytes)

    def release(self) -> None:
        """Evicted: the student leaves its load cache (the shared teacher stays the registry's)."""
        self.student.release()

    def count_tokens(self, texts: Sequence[str]) -> int:
        """Counted by the student's tokenizer, whichever model embedded each input."""
        return int(self.student.count_tokens(texts))

    def signals(self, texts: Sequence[str]) -> np.ndarray:
        return self.signal(self.student.model.tokenizer, list(texts))

    def route(self, texts: Sequence[str], queries: bool = True) -> Routed:
        """The teacher's vectors for the inputs above the threshold; the student's, mapped, for the rest."""
        texts = list(texts)
        signal = self.signals(texts)
        routed = signal > self.threshold
        vectors = np.zeros((len(texts), self.dimension), dtype=np.float32)
        if not routed.all():
            kept = [t for t, r in zip(texts, routed, strict=True) if not r]
            student = self.student.encode_queries(kept) if queries else self.student.encode(kept)
            vectors[~routed] = self.space.apply(student)
        if routed.any():
            chosen = [t for t, r in zip(texts, routed, strict=True) if r]
            vectors[routed] = self.teacher.encode_queries(chosen) if queries else self.teacher.encode(chosen)
        with self._lock:
            self.inputs_total += len(texts)
            self.routed_total += int(routed.sum())
        return Routed(vectors, routed, signal)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return self.route(texts, queries=False).vectors

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self.route(texts, queries=True).vectors


def fit_space(student: Any, teacher: Encoder, texts: Sequence[str], cache_dir: Path | None = None) -> SharedSpace:
    """The student→teacher map fitted on `texts` (a model's search collection): the teacher's document
    vectors come from the collection cache the pipeline filled, or are computed once and cached."""
    from core.serving.collection import embed_collection

    texts = list(texts)
    if not texts:
        raise DistilleryError("The model has no search collection to fit the routed model's shared space on.")
    teacher_vectors = embed_collection(teacher, texts, cache_dir)
    return SharedSpace.fit(student.encode(texts), teacher_vectors)


def open_routed(folder: Path, teacher: Encoder, threshold: float | None = None) -> RoutedEncoder:
    """A finished model folder's routed encoder: its student, the given teacher, the map fitted on the
    folder's collection (teacher vectors cached in the data folder), the threshold (else the
    environment's, else the default)."""
    from core import settings
    from core.artifact.folder import ModelFolder
    from core.encoders.student import StudentEncoder

    model = ModelFolder.at(Path(folder))
    student = StudentEncoder.open(model.path)
    space = fit_space(student, teacher, model.collection(), settings.cache_dir())
    return RoutedEncoder(student, teacher, space, threshold_from_env() if threshold is None else threshold)
