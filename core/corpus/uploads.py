"""User uploads: checked, then copied into the job's own folder before anything reads them.

The uploaded file's name is reduced to a safe basename, so nothing a user sends can write or read
outside `<job>/uploads/<domain>/`. Empty files, binary files posing as text, unsupported types, files
over `MAX_UPLOAD_MB` and gzip files that inflate past `MAX_INFLATED_MB` (a gzip bomb) are refused with
a message that names the file.

Text is read as UTF-8 downstream, so text in another encoding is decoded here and stored as UTF-8:
a byte-order mark (UTF-8, UTF-16) says which; UTF-16 without one shows as a zero byte in every other
position; text that is not UTF-8 is read as Windows-1252 (latin-1 with curly quotes and the euro
sign), what spreadsheet and editor exports on Windows write.
"""

from __future__ import annotations

import codecs
import gzip
import io
import re
import shutil
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from core.corpus.plan import DOMAINS
from core.corpus.sources import SourceSpec, file_format, iter_documents
from core.errors import DistilleryError
from core.files import write_atomically

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")
_SNIFF = 64 * 1024
MAX_UPLOAD_MB = 100  # per file as sent (the studio's upload limit too)
MAX_INFLATED_MB = 256  # per gzip file once inflated
UTF8 = "utf-8"
_CONTROL = re.compile(rb"[\x00-\x08\x0b\x0e-\x1f\x7f]")


@dataclass(frozen=True)
class Upload:
    """A file a user sent (where the web server put it) and the field(s) that hold its text."""

    path: Path
    fields: tuple[str, ...] = ("text",)


def accept_upload(upload: Upload, job_dir: Path, domain: str) -> SourceSpec:
    """Validate an uploaded file, copy it below `job_dir/uploads/<domain>/` (as UTF-8 text when it was
    in another encoding) and return its source."""
    src, fields = Path(upload.path), upload.fields
    if domain not in DOMAINS:
        raise DistilleryError(f"Unknown domain '{domain}'.")
    name = safe_name(src.name)
    builder = check_upload(src, Path(name))
    encoding = text_encoding(src)
    if encoding not in (None, UTF8) and name.lower().endswith(".gz"):
        name = name[:-3]  # stored inflated, as UTF-8
    dest = inside_job(job_dir, Path("uploads") / domain / name, src.name)

    def copy(handle: IO[bytes]) -> None:
        if encoding in (None, UTF8):
            with src.open("rb") as raw:
                shutil.copyfileobj(raw, handle)
            return
        out = io.TextIOWrapper(handle, encoding=UTF8, newline="")
        with open_text(src, encoding) as text:
            shutil.copyfileobj(text, out)
        out.flush()
        out.detach()  # the handle stays open for write_atomically to close

    write_atomically(dest, copy, src.stat().st_size)  # whole or absent; a full disk is named (`DiskError`)
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


def safe_name(name: str) -> str:
    """An uploaded file's name reduced to a safe basename (letters, digits, `.`, `_`, `-`)."""
    return _SAFE.sub("_", Path(name).name).lstrip("._") or "upload.txt"


def inside_job(job_dir: Path, path: str | Path, shown: str | None = None) -> Path:
    """`path` (relative to `job_dir`, or absolute) resolved, and refused unless it lies inside `job_dir`.

    The one check that confines a user's file to their job's folder: where an upload is copied to,
    and where a recipe's uploaded files are read from (a recipe may come from a user as JSON, and
    must not read or write anything else). `shown` is the name the message gives (default `path`).
    """
    folder = Path(job_dir).resolve()
    resolved = (folder / path).resolve()
    if resolved == folder or not resolved.is_relative_to(folder):
        raise DistilleryError(f"Refused the file '{shown or path}': an uploaded file must lie inside the job's "
                              f"folder.")
    return resolved


def upload_lines(path: Path) -> list[str]:
    """The non-empty lines of an uploaded .txt file (one text per line), checked and decoded as
    `accept_upload` does."""
    if check_upload(path) != "text":
        raise DistilleryError("Upload a .txt file with one text per line.")
    with open_text(path, text_encoding(path) or UTF8) as text:
        return [line.strip() for line in text if line.strip()]


def check_upload(path: Path, named: Path | None = None) -> str:
    """Refuse an unsupported type, an empty, oversized or binary file; return the `datasets` builder.

    `named` is the name the type is judged by (the sanitised upload name), default the file's own.
    """
    builder = file_format(named or path)
    if not path.is_file() or path.stat().st_size == 0:
        raise DistilleryError(f"The upload '{path.name}' is empty.")
    size = path.stat().st_size
    if size > MAX_UPLOAD_MB * 2**20:
        raise DistilleryError(f"The upload '{path.name}' is {size / 2**20:,.0f} MB; uploads are limited to "
                              f"{MAX_UPLOAD_MB} MB each: split it, or compress it as .gz.")
    if path.suffix.lower() in (".bz2", ".xz", ".zst"):
        raise DistilleryError(f"The upload '{path.name}' is compressed as {path.suffix}; compress it as .gz "
                              f"instead (or upload it uncompressed).")
    if builder == "parquet":
        if not _read_head(path).startswith(b"PAR1"):
            raise DistilleryError(f"The upload '{path.name}' is not a Parquet file.")
        return builder
    if path.suffix.lower() == ".gz":
        _check_inflated_size(path)
    text_encoding(path, named)
    return builder


def text_encoding(path: Path, named: Path | None = None) -> str | None:
    """The encoding of a text upload (None for Parquet), or a message when it is not text.

    The first 64 KB decide: a byte-order mark, then UTF-16 without one (every other byte zero), then
    UTF-8, then Windows-1252; other zero or control bytes mean a binary file. `named` is the name the
    type is judged by, as for `check_upload`.
    """
    if file_format(named or path) == "parquet":
        return None
    head = _read_head(path)
    if head.startswith(codecs.BOM_UTF8):
        encoding = "utf-8-sig"
    elif head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding = "utf-16"
    else:
        encoding = _utf16_without_bom(head) or _eight_bit(head, path)
    try:
        text = codecs.getincrementaldecoder(encoding)().decode(head, final=False)
    except UnicodeDecodeError as exc:
        raise DistilleryError(f"The upload '{path.name}' is a binary file, not text.") from exc
    if not text.strip():
        raise DistilleryError(f"The upload '{path.name}' holds only whitespace.")
    if len(_CONTROL.findall(text.encode(UTF8))) > len(text) / 100:  # a stray escape is text; many are not
        raise DistilleryError(f"The upload '{path.name}' is a binary file, not text.")
    return encoding


def _utf16_without_bom(head: bytes) -> str | None:
    """UTF-16 without a byte-order mark: ASCII-range text has a zero in every other byte."""
    even, odd = head[0::2], head[1::2]
    if len(head) < 4:
        return None
    if odd.count(0) > len(odd) * 0.3 and even.count(0) == 0:
        return "utf-16-le"
    if even.count(0) > len(even) * 0.3 and odd.count(0) == 0:
        return "utf-16-be"
    return None


def _eight_bit(head: bytes, path: Path) -> str:
    """UTF-8 when the bytes are UTF-8 (a character cut at the sniff boundary allowed), else Windows-1252."""
    if b"\x00" in head:
        raise DistilleryError(f"The upload '{path.name}' is a binary file, not text.")
    try:
        head.decode(UTF8)
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:
            return "cp1252"
    return UTF8


def _check_inflated_size(path: Path) -> None:
    """Inflate a gzip upload without keeping it, refusing it past `MAX_INFLATED_MB` or when it is corrupt."""
    limit, total = MAX_INFLATED_MB * 2**20, 0
    try:
        with gzip.open(path, "rb") as handle:
            while block := handle.read(1 << 20):
                total += len(block)
                if total > limit:
                    raise DistilleryError(f"The upload '{path.name}' inflates to more than {MAX_INFLATED_MB} MB; "
                                          f"uploads are limited to {MAX_INFLATED_MB} MB of text each: split it.")
    except (OSError, EOFError, zlib.error) as exc:
        raise DistilleryError(f"The upload '{path.name}' is not a valid gzip file.") from exc


def open_text(path: Path, encoding: str):
    """A text handle on an upload (inflated when gzip) that yields its lines decoded; a byte that is
    not of the encoding, past the part `text_encoding` checked, becomes U+FFFD."""
    if path.suffix.lower() == ".gz":
        return gzip.open(path, "rt", encoding=encoding, errors="replace", newline="")
    return path.open(encoding=encoding, errors="replace", newline="")


def _read_head(path: Path) -> bytes:
    if path.suffix.lower() == ".gz":
        try:
            with gzip.open(path, "rb") as handle:
                return handle.read(_SNIFF)
        except (OSError, EOFError, zlib.error) as exc:
            raise DistilleryError(f"The upload '{path.name}' is not a valid gzip file.") from exc
    with path.open("rb") as handle:
        return handle.read(_SNIFF)
