"""Bytes on disk: writes that are whole or absent, and content digests.

Every file Distillery writes that another process may read while it is written (a model folder, a
corpus, teacher targets, caches, an index) goes through `write_atomically`: the content goes to a
hidden temporary name in the same folder and is renamed into place, which POSIX makes atomic, so a
reader (or a worker killed mid-write) sees the old file, the new file, or none, never half of one.
Content digests live here too, so a cache key means the same thing wherever it is computed.

A write that the disk refuses (full, over quota, read-only, not permitted, past the process's file-size
limit) becomes a `DiskError` here, the one place that knows: its message names the folder, and for a
full disk the space the write needed and the space free, so a job fails with a sentence a person can
act on instead of `OSError: [Errno 28]`.
"""

from __future__ import annotations

import errno
import functools
import hashlib
import json
import os
import re
import resource
import secrets
import shutil
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import numpy as np

from core.errors import DistilleryError

# The errors that say "the disk will not take this", whatever the code that wrote.
DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG})


class DiskError(DistilleryError):
    """A write refused by the disk, explained: which folder, why, and (when full) how much is needed."""

    def __init__(self, folder: Path, code: int, needed: int | None = None, written: int | None = None) -> None:
        self.folder, self.code, self.needed, self.written = Path(folder), code, needed, written
        super().__init__(_disk_message(self.folder, code, needed, written))


def _mb(size: float) -> str:
    return f"{size / 1e9:,.1f} GB" if size >= 1e9 else f"{size / 1e6:,.1f} MB"


def free_bytes(folder: Path) -> int | None:
    """Free space on the filesystem holding `folder` (or its nearest existing parent); None if unknown."""
    folder = Path(folder).absolute()
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            try:
                return shutil.disk_usage(candidate).free
            except OSError:
                return None
    return None


def _disk_message(folder: Path, code: int, needed: int | None, written: int | None) -> str:
    size = (f"about {_mb(needed)}" if needed else f"at least {_mb(written)}" if written else None)
    if code in (errno.ENOSPC, errno.EDQUOT):
        free = free_bytes(folder)
        why = "the disk is full" if code == errno.ENOSPC else "the disk quota is used up"
        return (f"Could not write to {folder}: {why}" + (f"; the write needed {size}" if size else "")
                + (f" and {_mb(free)} is free" if free is not None else "")
                + ". Free some space (or choose another data folder, DISTILLERY_DATA_DIR) and submit again; "
                  "nothing already saved was changed.")
    if code == errno.EFBIG:
        limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
        cap = "" if limit == resource.RLIM_INFINITY else f" ({_mb(limit)})"
        return (f"Could not write to {folder}: a file grew past the largest file this process may write{cap}"
                + (f"; the write needed {size}" if size else "")
                + ". Raise the limit (ulimit -f) or use a smaller recipe; nothing already saved was changed.")
    why = "its filesystem is read-only" if code == errno.EROFS else "permission denied"
    return (f"Could not write to {folder}: {why}. Distillery needs to write below its data folder "
            f"(DISTILLERY_DATA_DIR); make it writable and submit again. Nothing already saved was changed.")


@contextmanager
def disk_errors(folder: Path, needed: int | None = None, written: Callable[[], int | None] | None = None,
                ) -> Iterator[None]:
    """Turn an OSError the disk raised inside the block into a `DiskError` about `folder`.

    `needed` is the size being written when known; otherwise `written()` (bytes written before the
    failure) gives a lower bound. A `DiskError` from a nested write is re-raised about `folder` (the
    visible folder, not a hidden temporary one), with the larger of the sizes.
    """
    try:
        yield
    except DiskError as exc:
        raise DiskError(folder, exc.code, exc.needed if needed is None else max(needed, exc.needed or 0),
                        _written(written) or exc.written) from exc.__cause__
    except Exception as exc:
        code = disk_errno(exc)
        if code is None:
            raise
        raise DiskError(folder, code, needed, _written(written)) from exc


_RUST_IO_ERROR = re.compile(r"\(os error (\d+)\)")


def disk_errno(exc: BaseException) -> int | None:
    """The disk's refusal in `exc`, if that is what it is: an OSError's errno, or the errno of a Rust
    io::Error inside a library's exception (safetensors writes model weights from Rust and raises
    `SafetensorError: ... File too large (os error 27)`)."""
    if isinstance(exc, OSError):
        return exc.errno if exc.errno in DISK_ERRNOS else None
    match = _RUST_IO_ERROR.search(str(exc))
    return int(match.group(1)) if match and int(match.group(1)) in DISK_ERRNOS else None


def _written(written: Callable[[], int | None] | None) -> int | None:
    try:
        return written() if written is not None else None
    except OSError:
        return None


def write_atomically(path: Path, write: Callable[[IO[bytes]], Any], size: int | None = None) -> Path:
    """Call `write(handle)` on a temporary file beside `path`, then rename it over `path`.

    `size`, the bytes about to be written when the caller knows them, goes into the message of the
    `DiskError` raised when the disk refuses the write.
    """
    path = Path(path)
    tmp = _hidden_name(path)
    done: int | None = None  # bytes that reached the temporary file before a failure removed it

    def written() -> int | None:
        return done if done is not None else tmp.stat().st_size if tmp.exists() else None

    with disk_errors(path.parent, size, written):
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with open(tmp, "xb") as handle:  # created with the umask's permissions, as a plain open would
                write(handle)
            os.replace(tmp, path)
        except BaseException:
            done = written()
            tmp.unlink(missing_ok=True)
            raise
    return path


def link_atomically(source: Path, path: Path) -> Path:
    """`path` made the same file as `source` (a hard link; a copy where the two folders are on different
    file systems), appearing whole or not at all. Neither file is ever written afterwards, so the two
    names sharing one inode is safe."""
    path = Path(path)
    tmp = _hidden_name(path)
    with disk_errors(path.parent, Path(source).stat().st_size):
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            try:
                os.link(source, tmp)
            except OSError:  # another file system, or one without hard links
                shutil.copyfile(source, tmp)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    return path


def _hidden_name(path: Path) -> Path:
    """A hidden, unused name beside `path` (hidden names are never listed as models or read as data)."""
    return path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")


def write_text(path: Path, text: str) -> Path:
    data = text.encode("utf-8")
    return write_atomically(path, lambda handle: handle.write(data), len(data))


def write_json(path: Path, value: Any) -> Path:
    return write_text(path, json.dumps(value, indent=2, ensure_ascii=False))


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> Path:
    def write(handle: IO[bytes]) -> None:
        for row in rows:
            handle.write((json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8"))

    return write_atomically(path, write)


NPY_HEADER = 128  # np.save's header for an array of up to a few dimensions


class _PlainWriter:
    """A handle's `write` alone. Given a real file, `np.save` writes through C's `fwrite`, whose short
    write loses the errno ("N requested and M written"); through this it writes in Python, so a full
    disk raises OSError(ENOSPC) like every other write."""

    def __init__(self, handle: IO[bytes]) -> None:
        self.write = handle.write


def save_array(path: Path, array: np.ndarray) -> Path:
    """An `.npy` file, written whole or not at all."""
    return write_atomically(path, lambda handle: np.save(_PlainWriter(handle), array),
                            array.nbytes + NPY_HEADER)


@contextmanager
def folder_atomically(destination: Path, size: int | None = None) -> Iterator[Path]:
    """Yield a hidden temporary folder beside `destination`; on success it is renamed into place.

    A crash or cancel at any point leaves either nothing or the complete folder, never a partial one;
    an existing destination is never overwritten.

    A write the disk refuses inside the block (a library's own writer included) is raised as a
    `DiskError` about the destination's folder, with the folder's expected `size` when the caller
    knows it, else at least the bytes written before it failed.
    """
    destination = Path(destination)
    tmp = _hidden_name(destination)
    done = 0

    def written() -> int:
        return done or (folder_bytes(tmp) if tmp.exists() else 0)

    with disk_errors(destination.parent, size, written):
        if destination.exists():
            raise FileExistsError(destination)
        destination.parent.mkdir(parents=True, exist_ok=True)
        tmp.mkdir()  # the umask's permissions: the finished folder is shared (a Space, several consumers)
        try:
            yield tmp
            os.replace(tmp, destination)
        except BaseException:
            done = written()
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
