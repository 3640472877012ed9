"""`ModelFolder`: a finished model's folder, its one owner (in the spirit of model2vec's
`save_pretrained` / `from_pretrained`).

Contract: `ModelFolder.create` writes model2vec's files, the record, the card and the search
collection into a hidden temporary folder and renames it into place, so a half-written model is
never visible and a finished one is never overwritten. `open` finds a finished model by id (an id
may not climb out of the models folder), `at` opens any folder (a moved or downloaded one keeps its
collection, which lives inside it), `finished` lists every finished model, newest first.

Evaluations: `write_evaluation` keeps every report in `evaluations/` (one file per run, named by
when it was written, so names sort by age and one run never replaces another), and the newest also
as `evaluation.json`, in the record and in the card, so readers that know only one report (the
card, older code) keep working. Each file is written atomically. `evaluations` lists the history
newest first with a short label; a folder evaluated before the history existed lists its single
`evaluation.json`.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core import settings
from core.artifact.card import render_card
from core.artifact.record import ModelRecord
from core.errors import DistilleryError
from core.files import folder_atomically, folder_bytes, write_json, write_text

RECORD_FILE = "distillery.json"
COLLECTION_FILE = "collection.json"
EVALUATION_FILE = "evaluation.json"
EVALUATIONS_DIR = "evaluations"
LEGACY_KEY = "evaluation"  # the key of a lone evaluation.json written before the history existed
_KEY = re.compile(r"[0-9]{8}-[0-9]{6}-[0-9]{9}")  # a history file's stem: when it was written
CARD_FILE = "README.md"
WEIGHTS_FILE = "model.safetensors"
MODEL2VEC_FILES = ("config.json", WEIGHTS_FILE, "tokenizer.json")
EMBEDDINGS, MAPPINGS = "embeddings", "mapping"  # model2vec's tensor names (a token mapping: vocabulary quantization)


def model2vec_weights(folder: Path) -> Path:
    """The weights file of a complete model2vec folder, or a message that says what is missing or
    damaged (a weights file cut short is refused here, before a loader fails on it)."""
    folder = Path(folder)
    missing = [name for name in MODEL2VEC_FILES if not (folder / name).is_file()]
    if not folder.is_dir() or missing:
        raise DistilleryError(f"{folder} is not a complete model2vec folder "
                              f"(missing: {', '.join(missing) if folder.is_dir() else 'the folder itself'}).")
    weights_shapes(folder / WEIGHTS_FILE)
    return folder / WEIGHTS_FILE


MAX_HEADER = 100 * 2**20  # safetensors' own limit on a header's size


def weights_shapes(path: Path) -> dict[str, list[int]]:
    """Each tensor's shape, from a safetensors file's header (a few bytes read, no tensor loaded).

    The header says where every tensor ends, so a file cut short (or padded, or not safetensors at
    all) is told from a whole one by its size alone.
    """
    damaged = DistilleryError(f"{path} is damaged (cut short, or not a safetensors file): restore the model "
                              f"folder from a copy, or distil the model again.")
    size = path.stat().st_size
    with path.open("rb") as handle:
        length = int.from_bytes(handle.read(8), "little")
        if size < 8 or not 2 <= length <= min(MAX_HEADER, size - 8):
            raise damaged
        try:
            header = json.loads(handle.read(length))
            tensors = {name: t for name, t in header.items() if name != "__metadata__"}
            end = max((int(t["data_offsets"][1]) for t in tensors.values()), default=0)
            shapes = {name: [int(n) for n in t["shape"]] for name, t in tensors.items()}
        except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
            raise damaged from exc
    if 8 + length + end != size:
        raise damaged
    return shapes


@dataclass(frozen=True)
class EvaluationEntry:
    """One saved evaluation of a model: `key` names it for `ModelFolder.evaluation(key)`, `label`
    tells it apart from the others in a list (when, rows per task, tasks, verdict)."""

    key: str
    label: str
    path: Path


def evaluation_label(report: dict[str, Any], key: str) -> str:
    """`2025-06-02 14:03 · 40 rows/task · 8 tasks (English) · viable`: enough to pick one run among several."""
    when = report.get("date", "?")
    if _KEY.fullmatch(key):  # the history file's name carries the time of day too
        when = f"{key[:4]}-{key[4:6]}-{key[6:8]} {key[9:11]}:{key[11:13]} UTC"
    limit = report.get("limit")
    rows = "all rows" if limit is None else f"{limit} rows/task"
    tasks = list(report.get("tasks") or [])
    named = ", ".join(tasks) if 0 < len(tasks) <= 2 else f"{len(tasks)} tasks"
    if report.get("suite"):  # `8 tasks (English)`, `4 tasks (French)`
        from core.evaluation.tasks import SUITE_LABELS

        named += f" ({SUITE_LABELS.get(report['suite'], report['suite'])})"
    verdict = (report.get("verdict") or {}).get("verdict", "?")
    return f"{when} · {rows} · {named} · {verdict}"


def _stamp(ns: int) -> str:
    """A history key from a time in nanoseconds: UTC, so keys sort by age across clock changes."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime(ns // 10**9)) + f"-{ns % 10**9:09d}"


def _weights_bytes(model: Any) -> int | None:
    """The bytes of a `StaticModel`'s arrays, the bulk of its folder (what a full disk must hold)."""
    total = 0
    for name in ("embedding", "weights", "token_mapping"):
        total += int(getattr(getattr(model, name, None), "nbytes", 0))
    return total or None


class ModelFolder:
    def __init__(self, path: Path, record: ModelRecord) -> None:
        self.path = Path(path)
        self.record = record

    @property
    def id(self) -> str:
        return self.record.id

    @classmethod
    def create(cls, model: Any, record: ModelRecord, collection: Sequence[str], destination: Path) -> ModelFolder:
        """Save a `StaticModel` with its record, card and search collection, atomically."""
        destination = Path(destination)
        try:
            with folder_atomically(destination, _weights_bytes(model)) as tmp:
                model.save_pretrained(str(tmp))
                write_json(tmp / RECORD_FILE, record.to_dict())
                write_text(tmp / CARD_FILE, render_card(record))
                write_json(tmp / COLLECTION_FILE, list(collection))
        except FileExistsError as exc:
            raise DistilleryError(f"A model already exists at {destination}.") from exc
        return cls(destination, record)

    @classmethod
    def at(cls, path: Path) -> ModelFolder:
        """The finished model in `path`, wherever it is."""
        path = Path(path)
        record_file = path / RECORD_FILE
        if not record_file.is_file():
            raise DistilleryError(f"{path} is not a model folder made by Distillery (no {RECORD_FILE}).")
        try:
            record = ModelRecord.from_dict(json.loads(record_file.read_text()))
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise DistilleryError(f"The record of {path} cannot be read: {exc}") from exc
        return cls(path, record)

    @classmethod
    def open(cls, model_id: str, models_dir: Path | None = None) -> ModelFolder:
        """A finished model by id; the id may not name a path or a hidden (temporary) folder."""
        root = (models_dir or settings.models_dir()).resolve()
        name = str(model_id or "")
        missing = DistilleryError(f"There is no finished model '{name[:200]}'.")
        if not name or name.startswith(".") or not name.isprintable() or len(name) > 255:  # not a folder name
            raise missing
        folder = (root / name).resolve()
        if folder.parent != root or not (folder / RECORD_FILE).is_file():
            raise missing
        return cls.at(folder)

    @classmethod
    def finished(cls, models_dir: Path | None = None) -> list[ModelFolder]:
        """Every finished model, newest first. Temporary folders (hidden) are never listed, and a
        folder whose record cannot be read is passed over."""
        root = models_dir or settings.models_dir()
        found = []
        for path in root.iterdir() if root.is_dir() else []:
            if path.name.startswith(".") or not (path / RECORD_FILE).is_file():
                continue
            try:
                found.append(cls.at(path))
            except DistilleryError:
                continue
        return sorted(found, key=lambda f: f.record.created, reverse=True)

    def check(self) -> None:
        """Refuse a folder that cannot be the model its record describes: a file missing or cut short,
        or weights whose shape disagrees with the record (edited or replaced after it was saved)."""
        shapes = weights_shapes(model2vec_weights(self.path))
        table = shapes.get(EMBEDDINGS)
        if table is None or len(table) != 2:
            raise DistilleryError(f"The model '{self.id}' is damaged: {WEIGHTS_FILE} holds no 2-D '{EMBEDDINGS}' "
                                  f"table; restore the folder or distil the model again.")
        rows, dimension = table
        if dimension != self.record.dimension:
            raise DistilleryError(f"The model '{self.id}' is damaged: its weights have {dimension} dimensions but "
                                  f"its record says {self.record.dimension}; restore the folder or distil the model "
                                  f"again.")
        if MAPPINGS not in shapes and rows != self.record.vocabulary_size:
            raise DistilleryError(f"The model '{self.id}' is damaged: its weights hold {rows:,} vectors but its "
                                  f"tokenizer has {self.record.vocabulary_size:,} tokens (the number of tokens does "
                                  f"not match number of vectors); restore the folder or distil the model again.")

    def size_bytes(self) -> int:
        return folder_bytes(self.path)

    def size_mb(self) -> float:
        return round(self.size_bytes() / 2**20, 2)

    def _collection_file(self) -> Path:
        path = self.path / COLLECTION_FILE
        if not path.is_file() and self.record.job_dir:  # models saved before the collection moved inside
            path = Path(self.record.job_dir) / COLLECTION_FILE
        return path

    @property
    def has_collection(self) -> bool:
        """False for a model pulled from the Hub (the push leaves its corpus sample here)."""
        return self._collection_file().is_file()

    def collection(self) -> list[str]:
        """The corpus sample the Compare tab searches by default (saved with the model)."""
        path = self._collection_file()
        if not path.is_file():
            raise DistilleryError(f"The corpus sample of '{self.id}' is missing ({self.path / COLLECTION_FILE}); "
                                  f"paste texts instead.")
        return list(json.loads(path.read_text()))

    def evaluations(self) -> list[EvaluationEntry]:
        """Every saved evaluation, newest first; an old folder's lone `evaluation.json` is one entry.

        A history file that cannot be read is passed over (its label needs the report), as
        `finished` passes over an unreadable model.
        """
        history = self.path / EVALUATIONS_DIR
        files = sorted((p for p in history.glob("*.json") if _KEY.fullmatch(p.stem)), reverse=True) \
            if history.is_dir() else []
        if not files and (self.path / EVALUATION_FILE).is_file():
            files = [self.path / EVALUATION_FILE]
        entries = []
        for path in files:
            key = LEGACY_KEY if path.name == EVALUATION_FILE else path.stem
            try:
                entries.append(EvaluationEntry(key, evaluation_label(json.loads(path.read_text()), key), path))
            except (OSError, ValueError, AttributeError):
                continue
        return entries

    def evaluation(self, key: str | None = None) -> dict[str, Any] | None:
        """The newest report (None before any evaluation), or the one `key` names (from `evaluations`)."""
        if key is None or key == LEGACY_KEY:
            path = self.path / EVALUATION_FILE
            return json.loads(path.read_text()) if path.is_file() else None
        if not _KEY.fullmatch(key):  # a key is a name from `evaluations`, never a path
            raise DistilleryError(f"'{key}' does not name an evaluation of '{self.id}'.")
        path = self.path / EVALUATIONS_DIR / f"{key}.json"
        if not path.is_file():
            raise DistilleryError(f"'{self.id}' has no evaluation '{key}'.")
        return dict(json.loads(path.read_text()))

    def write_evaluation(self, report: dict[str, Any]) -> str:
        """Keep the report in the history, make it the current one (report file, record, card), and
        return its key. An old folder's lone report joins the history first, so it stays listed."""
        legacy = self.path / EVALUATION_FILE
        history = self.path / EVALUATIONS_DIR
        if legacy.is_file() and not any(history.glob("*.json")):
            written = legacy.stat().st_mtime_ns
            old_key = _stamp(written)
            write_text(history / f"{old_key}.json", legacy.read_text())
        key = _stamp(time.time_ns())
        write_json(history / f"{key}.json", report)
        write_json(legacy, report)
        self.record.evaluation = report
        write_json(self.path / RECORD_FILE, self.record.to_dict())
        write_text(self.path / CARD_FILE, render_card(self.record))
        return key
