"""Keys a person types into the page (an endpoint's API key, a Hub token): held in memory, never written.

A job runs in the worker, another process (possibly another machine), so a key typed in the studio
has to reach it through the queue. It travels *sealed*: encrypted (Fernet: AES-128 and an HMAC)
with the sealing key, which lives only in the environment of the studio and of its workers
(`DISTILLERY_SECRET_KEY`). The launchers (`app.py`, `scripts/run.sh`) make a random one per run when
none is set, so what a job folder holds (`keys.sealed`) is unreadable once that run ends; a
deployment that must resume keyed jobs across restarts (or runs consumers on other machines) sets
`DISTILLERY_SECRET_KEY` itself. The clear key is never in a recipe, a status, a record, a card, a
log or an error message (tests search every file for it).

While a job (or a studio event) runs, its keys are *held*: `holding(keys)` makes them visible to
`held_key(key_id)` in this context, and nowhere else. A key's id says what it opens: an endpoint's
`fingerprint()` (its kind, route, model and prefixes), or `HUB_TOKEN` for the Hugging Face Hub.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from pathlib import Path
from types import MappingProxyType
from typing import IO

from core.errors import DistilleryError
from core.files import write_atomically

SEALING_KEY_ENV = "DISTILLERY_SECRET_KEY"
HUB_TOKEN = "hub-token"
SEALED_FILE = "keys.sealed"
_NONE: Mapping[str, str] = MappingProxyType({})
_held: ContextVar[Mapping[str, str]] = ContextVar("distillery_held_keys", default=_NONE)


def ensure_sealing_key() -> None:
    """Give this process (and the workers it starts, which inherit its environment) a random sealing
    key when none is set; a launcher calls it before it starts anything."""
    if not os.environ.get(SEALING_KEY_ENV):
        os.environ[SEALING_KEY_ENV] = secrets.token_urlsafe(32)


def _fernet():
    from cryptography.fernet import Fernet

    named = os.environ.get(SEALING_KEY_ENV, "")
    if not named:
        raise DistilleryError(f"A key typed in the page can only reach the worker sealed, and no sealing key is "
                              f"set ({SEALING_KEY_ENV}): start the studio with `make run` or `python app.py`, "
                              f"or give the key through an environment variable instead.")
    # Any text the deployer chose: its SHA-256 is the 32 bytes Fernet wants.
    return Fernet(base64.urlsafe_b64encode(hashlib.sha256(named.encode()).digest()))


def seal(keys: Mapping[str, str]) -> bytes:
    """`keys` (id -> clear key) encrypted with the sealing key."""
    return _fernet().encrypt(json.dumps(dict(keys)).encode())


def unseal(blob: bytes) -> dict[str, str]:
    """The keys `seal` was given, or a `DistilleryError` when this process's sealing key is another."""
    from cryptography.fernet import InvalidToken

    try:
        return json.loads(_fernet().decrypt(blob))
    except InvalidToken:
        raise DistilleryError("The key typed in the page for this job was held by a studio run that has ended "
                              "(keys are never written in clear): type it again and submit the recipe again, "
                              f"or name an environment variable that holds it. A deployment that resumes such "
                              f"jobs across restarts sets {SEALING_KEY_ENV}.") from None


def seal_into(folder: Path, keys: Mapping[str, str]) -> None:
    """Write `keys` sealed into a job folder (nothing when there are none), readable by the owner only."""
    keys = {key_id: key for key_id, key in keys.items() if key}
    if keys:
        blob = seal(keys)

        def write(handle: IO[bytes]) -> None:
            os.fchmod(handle.fileno(), 0o600)
            handle.write(blob)

        write_atomically(folder / SEALED_FILE, write, len(blob))


def unseal_from(folder: Path) -> dict[str, str]:
    """The keys sealed into a job folder ({} when none were)."""
    path = folder / SEALED_FILE
    return unseal(path.read_bytes()) if path.is_file() else {}


def forget(folder: Path) -> None:
    """Remove a job's sealed keys: it has ended and will not run again. A folder that refuses the
    removal (read-only) keeps a blob no later run can open, which must not hide the job's outcome."""
    with suppress(OSError):
        (folder / SEALED_FILE).unlink(missing_ok=True)


@contextmanager
def holding(keys: Mapping[str, str]) -> Iterator[None]:
    """Make `keys` visible to `held_key` in this context (and those it starts) until the block ends."""
    token = _held.set({**_held.get(), **{k: v for k, v in keys.items() if v}})
    try:
        yield
    finally:
        _held.reset(token)


def held_key(key_id: str) -> str | None:
    """The key held for `key_id` in this context, or None."""
    return _held.get().get(key_id)
