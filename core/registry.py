"""The finished models: every complete folder below `<data>/models/` with a Distillery record.

Temporary folders (hidden, `.tmp`) are never listed, so a half-written model is never visible.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from core import settings
from core.errors import DistilleryError
from core.pipeline import RECORD_FILE


def list_models(models_dir: Path | None = None) -> list[dict[str, Any]]:
    """Records of all finished models, newest first, each with its size on disk."""
    root = models_dir or settings.models_dir()
    records = []
    for folder in root.iterdir() if root.is_dir() else []:
        if folder.name.startswith(".") or not (folder / RECORD_FILE).is_file():
            continue
        try:
            record = json.loads((folder / RECORD_FILE).read_text())
        except (OSError, json.JSONDecodeError):
            continue
        record["path"] = str(folder)
        record["size_mb"] = round(folder_size(folder) / 2**20, 2)
        records.append(record)
    return sorted(records, key=lambda r: r.get("created", ""), reverse=True)


def model_dir(model_id: str, models_dir: Path | None = None) -> Path:
    """The folder of a finished model; the id may not climb out of the models folder."""
    root = (models_dir or settings.models_dir()).resolve()
    folder = (root / model_id).resolve()
    if folder.parent != root or model_id.startswith(".") or not (folder / RECORD_FILE).is_file():
        raise DistilleryError(f"There is no finished model '{model_id}'.")
    return folder


def folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
