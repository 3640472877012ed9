"""User uploads: checked, then copied into the job's own folder before anything reads them.

The uploaded file's name is reduced to a safe basename, so nothing a user sends can write or read
outside `<job>/uploads/<domain>/`. Empty files, binary files posing as text and unsupported types
are refused with a message that names the file.
"""

from __future__ import annotations

import gzip
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from core.corpus.plan import DOMAINS
from core.corpus.sources import SourceSpec, file_format, iter_documents
from core.errors import DistilleryError

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")
_SNIFF = 64 * 1024


@dataclass(frozen=True)
class Upload:
    """A file a user sent (where the web server put it) and the field(s) that hold its text."""

    path: Path
    fields: tuple[str, ...] = ("text",)


def accept_upload(upload: Upload, job_dir: Path, domain: str) -> SourceSpec:
    """Validate an uploaded file, copy it below `job_dir/uploads/<domain>/` and return its source."""
    src, fields = Path(upload.path), upload.fields
    if domain not in DOMAINS:
        raise DistilleryError(f"Unknown domain '{domain}'.")
    name = _SAFE.sub("_", src.name).lstrip("._") or "upload.txt"
    builder = check_upload(src, Path(name))
    dest_dir = (job_dir / "uploads" / domain).resolve()
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / name
    if dest.parent != dest_dir:  # defence in depth: the basename above cannot contain a separator
        raise DistilleryError(f"Refused upload name '{src.name}'.")
    shutil.copyfile(src, dest)
    if builder == "text":
        fields = ("text",)
    spec = SourceSpec(name=f"upload-{name}", domain=domain, kind="upload", location=str(dest), fields=fields)
    try:
        if next(iter_documents(spec), None) is None:
            raise DistilleryError(f"The upload '{src.name}' holds no text in field(s) {', '.join(fields)}.")
    except DistilleryError:  # a refused upload (no text, missing field, unreadable) is not kept
        dest.unlink(missing_ok=True)
        raise
    return spec


def check_upload(path: Path, named: Path | None = None) -> str:
    """Refuse an unsupported type, an empty file or binary content; return the `datasets` builder.

    `named` is the name the type is judged by (the sanitised upload name), default the file's own.
    """
    builder = file_format(named or path)
    if not path.is_file() or path.stat().st_size == 0:
        raise DistilleryError(f"The upload '{path.name}' is empty.")
    _check_content(path, builder)
    return builder


def _check_content(path: Path, builder: str) -> None:
    head = _read_head(path)
    if builder == "parquet":
        if not head.startswith(b"PAR1"):
            raise DistilleryError(f"The upload '{path.name}' is not a Parquet file.")
        return
    if b"\x00" in head:
        raise DistilleryError(f"The upload '{path.name}' is a binary file, not text.")
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # a multi-byte character cut at the sniff boundary is fine
            raise DistilleryError(f"The upload '{path.name}' is not UTF-8 text.") from exc
    if not head.strip():
        raise DistilleryError(f"The upload '{path.name}' holds only whitespace.")


def _read_head(path: Path) -> bytes:
    if path.suffix.lower() == ".gz":
        try:
            with gzip.open(path, "rb") as handle:
                return handle.read(_SNIFF)
        except (OSError, EOFError) as exc:
            raise DistilleryError(f"The upload '{path.name}' is not a valid gzip file.") from exc
    with path.open("rb") as handle:
        return handle.read(_SNIFF)
