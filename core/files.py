"""Bytes on disk: writes that are whole or absent, and content digests.

Every file Distillery writes that another process may read while it is written (a model folder, a
corpus, teacher targets, caches, an index) goes through `write_atomically`: the content goes to a
hidden temporary name in the same folder and is renamed into place, which POSIX makes atomic, so a
reader (or a worker killed mid-write) sees the old file, the new file, or none, never half of one.
Content digests live here too, so a cache key means the same thing wherever it is computed.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import secrets
import shutil
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import numpy as np


def write_atomically(path: Path, write: Callable[[IO[bytes]], Any]) -> Path:
    """Call `write(handle)` on a temporary file beside `path`, then rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _hidden_name(path)
    try:
        with open(tmp, "xb") as handle:  # created with the umask's permissions, as a plain open would
            write(handle)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _hidden_name(path: Path) -> Path:
    """A hidden, unused name beside `path` (hidden names are never listed as models or read as data)."""
    return path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")


def write_text(path: Path, text: str) -> Path:
    return write_atomically(path, lambda handle: handle.write(text.encode("utf-8")))


def write_json(path: Path, value: Any) -> Path:
    return write_text(path, json.dumps(value, indent=2, ensure_ascii=False))


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> Path:
    def write(handle: IO[bytes]) -> None:
        for row in rows:
            handle.write((json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8"))

    return write_atomically(path, write)


def save_array(path: Path, array: np.ndarray) -> Path:
    """An `.npy` file, written whole or not at all."""
    return write_atomically(path, lambda handle: np.save(handle, array))


@contextmanager
def folder_atomically(destination: Path) -> Iterator[Path]:
    """Yield a hidden temporary folder beside `destination`; on success it is renamed into place.

    A crash or cancel at any point leaves either nothing or the complete folder, never a partial one;
    an existing destination is never overwritten.
    """
    destination = Path(destination)
    if destination.exists():
        raise FileExistsError(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    tmp = _hidden_name(destination)
    tmp.mkdir()  # the umask's permissions: the finished folder is shared (a Space, several consumers)
    try:
        yield tmp
        os.replace(tmp, destination)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def folder_bytes(folder: Path) -> int:
    """Bytes on disk of every file below `folder` (a model's size as a download would have it)."""
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())


def texts_digest(texts: Sequence[str]) -> str:
    """sha256 of a list of texts (order matters): the key of anything computed from them."""
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode("utf-8") + b"\x00")
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    """sha256 of a file, cached per (path, size, mtime) so repeated checks cost nothing."""
    stat = Path(path).stat()
    return _sha256_cached(str(path), stat.st_size, stat.st_mtime_ns)


def files_sha256(paths: Iterable[Path], names: bool = False) -> str:
    """One sha256 over several files' bytes (and their names when `names`), in the order given."""
    digest = hashlib.sha256()
    for path in paths:
        if names:
            digest.update(Path(path).name.encode())
        digest.update(bytes.fromhex(file_sha256(path)))
    return digest.hexdigest()


@functools.lru_cache(maxsize=256)
def _sha256_cached(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
