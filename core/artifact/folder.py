"""`ModelFolder`: a finished model's folder, its one owner (in the spirit of model2vec's
`save_pretrained` / `from_pretrained`).

Contract: `ModelFolder.create` writes model2vec's files, the record, the card and the search
collection into a hidden temporary folder and renames it into place, so a half-written model is
never visible and a finished one is never overwritten. `open` finds a finished model by id (an id
may not climb out of the models folder), `at` opens any folder (a moved or downloaded one keeps its
collection, which lives inside it), `finished` lists every finished model, newest first. The
evaluation report is written through `write_evaluation`, which replaces the report, the record
and the card, each atomically.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
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
CARD_FILE = "README.md"
WEIGHTS_FILE = "model.safetensors"
MODEL2VEC_FILES = ("config.json", WEIGHTS_FILE, "tokenizer.json")


def model2vec_weights(folder: Path) -> Path:
    """The weights file of a complete model2vec folder, or a message that says what is missing."""
    folder = Path(folder)
    missing = [name for name in MODEL2VEC_FILES if not (folder / name).is_file()]
    if not folder.is_dir() or missing:
        raise DistilleryError(f"{folder} is not a complete model2vec folder "
                              f"(missing: {', '.join(missing) if folder.is_dir() else 'the folder itself'}).")
    return folder / WEIGHTS_FILE


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
            with folder_atomically(destination) as tmp:
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
        folder = (root / str(model_id)).resolve()
        if not model_id or folder.parent != root or str(model_id).startswith(".") or not (folder / RECORD_FILE).is_file():
            raise DistilleryError(f"There is no finished model '{model_id}'.")
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

    def size_bytes(self) -> int:
        return folder_bytes(self.path)

    def size_mb(self) -> float:
        return round(self.size_bytes() / 2**20, 2)

    def collection(self) -> list[str]:
        """The corpus sample the Compare tab searches by default (saved with the model)."""
        path = self.path / COLLECTION_FILE
        if not path.is_file() and self.record.job_dir:  # models saved before the collection moved inside
            path = Path(self.record.job_dir) / COLLECTION_FILE
        if not path.is_file():
            raise DistilleryError(f"The corpus sample of '{self.id}' is missing ({self.path / COLLECTION_FILE}); "
                                  f"paste texts instead.")
        return list(json.loads(path.read_text()))

    def evaluation(self) -> dict[str, Any] | None:
        path = self.path / EVALUATION_FILE
        return json.loads(path.read_text()) if path.is_file() else None

    def write_evaluation(self, report: dict[str, Any]) -> None:
        """Save an evaluation report beside the model and into its record and card."""
        write_json(self.path / EVALUATION_FILE, report)
        self.record.evaluation = report
        write_json(self.path / RECORD_FILE, self.record.to_dict())
        write_text(self.path / CARD_FILE, render_card(self.record))
