"""Where Distillery keeps its files, read from the environment once per call.

Everything a user can name (uploads, corpora, models) lives below the data folder, so one
environment variable moves a whole installation (e.g. to `/data` on a Hugging Face Space).
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def data_dir() -> Path:
    """The data folder (`DISTILLERY_DATA_DIR`, default `var/` in the repository)."""
    path = Path(os.environ.get("DISTILLERY_DATA_DIR", REPO_ROOT / "var")).resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def models_dir() -> Path:
    """Finished models: `<data>/models/<id>/`, each a complete model2vec folder."""
    return _sub("models")


def jobs_dir() -> Path:
    """One folder per job: its recipe, its uploads and its corpus."""
    return _sub("jobs")


def cache_dir() -> Path:
    """Embeddings that are expensive to recompute (the teacher's, mostly)."""
    return _sub("cache")


def local_corpus_dir() -> Path | None:
    """The local corpus folder used when the Hub is out of reach (`DISTILLERY_CORPUS_DIR`).

    Falls back to `../shared/data/corpus` beside the repository, where development machines keep it.
    """
    named = os.environ.get("DISTILLERY_CORPUS_DIR")
    candidate = Path(named) if named else REPO_ROOT.parent / "shared" / "data" / "corpus"
    return candidate.resolve() if candidate.is_dir() else None


def sources_file() -> Path:
    """The file that says which sources serve which domain (`DISTILLERY_SOURCES`)."""
    return Path(os.environ.get("DISTILLERY_SOURCES", REPO_ROOT / "config" / "sources.yaml"))


def _sub(name: str) -> Path:
    path = data_dir() / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def eval_dir() -> Path:
    """The evaluation sets (`DISTILLERY_EVAL_DIR`, default `../shared/data/eval` beside the repository)."""
    named = os.environ.get("DISTILLERY_EVAL_DIR")
    return (Path(named) if named else REPO_ROOT.parent / "shared" / "data" / "eval").resolve()
