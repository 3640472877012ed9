"""The environment: where Distillery keeps its files (read at every call) and whether the Hub answers.

Everything a user can name (uploads, corpora, models) lives below the data folder, so one
environment variable moves a whole installation (e.g. to `/data` on a Hugging Face Space).
"""

from __future__ import annotations

import os
import time
import urllib.error
import urllib.request
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


def exports_dir() -> Path:
    """Zips made for download (`core.artifact.export`): one per model, rebuilt when the model changes.

    The studio serves files from this folder only, never the rest of the data folder.
    """
    return _sub("exports")


def teacher_dirs() -> list[Path]:
    """The folders a studio user may name a local teacher from: `<data>/teachers`, and those listed
    in `DISTILLERY_TEACHER_DIRS` (separated by the system's path separator, `:` on Linux)."""
    named = [Path(p).expanduser() for p in os.environ.get("DISTILLERY_TEACHER_DIRS", "").split(os.pathsep) if p]
    return [_sub("teachers"), *named]


def cache_dir() -> Path:
    """Embeddings that are expensive to recompute (the teacher's, mostly)."""
    return _sub("cache")


def shard_library_dir() -> Path | None:
    """Where teacher-target shards are kept across jobs (`core.methods.featurize.ShardLibrary`):
    `DISTILLERY_SHARD_LIBRARY`, else `<data>/cache/targets`; `off` keeps none (each job embeds its own)."""
    value = os.environ.get("DISTILLERY_SHARD_LIBRARY")
    if value is None:
        return cache_dir() / "targets"
    if value.strip().lower() in ("off", "0", "false", "no", ""):
        return None
    return Path(value).resolve()


SHARD_LIBRARY_GB = 20.0


def shard_library_bytes() -> int:
    """The most the shard library keeps (`DISTILLERY_SHARD_LIBRARY_GB`, default 20 GB: a 1M-text corpus
    of a 768-dimension teacher is 1.5 GB); past it the shards least recently used are dropped."""
    return int(float(os.environ.get("DISTILLERY_SHARD_LIBRARY_GB", SHARD_LIBRARY_GB)) * 1e9)


def local_corpus_dir(language: str = "en") -> Path | None:
    """The local corpus folder of a language, used when the Hub is out of reach.

    English: `DISTILLERY_CORPUS_DIR`, falling back to `../shared/data/corpus` beside the repository,
    where development machines keep it. French: `DISTILLERY_FR_CORPUS_DIR`, falling back to `fr/corpus`
    beside the English folder (`../shared/data/fr/corpus`). None when the folder is not there.
    """
    named = os.environ.get("DISTILLERY_CORPUS_DIR")
    candidate = Path(named) if named else REPO_ROOT.parent / "shared" / "data" / "corpus"
    if language != "en":
        other = os.environ.get(f"DISTILLERY_{language.upper()}_CORPUS_DIR")
        candidate = Path(other) if other else candidate.parent / language / "corpus"
    return candidate.resolve() if candidate.is_dir() else None


def sources_file() -> Path:
    """The file that says which sources serve which domain (`DISTILLERY_SOURCES`)."""
    return Path(os.environ.get("DISTILLERY_SOURCES", REPO_ROOT / "config" / "sources.yaml"))


def shard_rows(default: int) -> int:
    """Teacher targets per featurization shard (`DISTILLERY_SHARD_ROWS`, else `default`): what an
    interruption can lose. Tests set it small so a tiny corpus spans several shards."""
    named = os.environ.get("DISTILLERY_SHARD_ROWS")
    return int(named) if named else default


def auto_retries() -> int:
    """How many times a job whose worker died is queued again automatically (`DISTILLERY_AUTO_RETRIES`,
    default 1); a job refused with a `DistilleryError` is never retried."""
    return int(os.environ.get("DISTILLERY_AUTO_RETRIES", "1"))


def _sub(name: str) -> Path:
    path = data_dir() / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def eval_dir() -> Path:
    """The evaluation sets (`DISTILLERY_EVAL_DIR`, default `../shared/data/eval` beside the repository)."""
    named = os.environ.get("DISTILLERY_EVAL_DIR")
    return (Path(named) if named else REPO_ROOT.parent / "shared" / "data" / "eval").resolve()


def french_eval_dir() -> Path:
    """The French evaluation sets (`DISTILLERY_FR_EVAL_DIR`, default `../shared/data/fr/eval` beside the
    repository): STS, fr↔en bitext mining, classification and retrieval, laid out as `eval_dir()`."""
    named = os.environ.get("DISTILLERY_FR_EVAL_DIR")
    return (Path(named) if named else REPO_ROOT.parent / "shared" / "data" / "fr" / "eval").resolve()


_TRUTHY = {"1", "true", "yes", "on"}
_hub_cache: tuple[float, bool] | None = None


def hub_offline_forced() -> bool:
    """`HF_HUB_OFFLINE` is set: the local sources serve, and Hub teachers are refused."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUTHY


def hub_reachable(timeout: float = 3.0, max_age: float = 300.0) -> bool:
    """True when the Hugging Face Hub answers within `timeout` seconds; cached for `max_age` seconds.

    It decides between Hub and local corpus sources, whether a Hub teacher can be resolved and
    whether mteb's Hub tasks can run, so it is asked in one place.
    """
    global _hub_cache
    if hub_offline_forced():
        return False
    now = time.monotonic()
    if _hub_cache is not None and now - _hub_cache[0] < max_age:
        return _hub_cache[1]
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
    try:
        with urllib.request.urlopen(f"{endpoint}/api/whoami-v2", timeout=timeout):
            ok = True
    except urllib.error.HTTPError:  # 401 without a token still means the Hub answered
        ok = True
    except OSError:
        ok = False
    _hub_cache = (now, ok)
    return ok


def public_mode() -> bool:
    """Strangers share this studio (`DISTILLERY_PUBLIC`; default on when `SPACE_ID` says it runs as a
    Hugging Face Space): teachers come from an allow-list only, each visitor sees and cancels only
    their own jobs, and per-visitor limits apply. `DISTILLERY_PUBLIC=0` turns it off on a private Space."""
    named = os.environ.get("DISTILLERY_PUBLIC", "").strip().lower()
    if named:
        return named in _TRUTHY
    return bool(os.environ.get("SPACE_ID"))
