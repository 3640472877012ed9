"""Visitor tokens: a random visitor id signed by the server, kept by the visitor's browser.

A public studio (`settings.public_mode`) keys jobs and models by visitor. A browser keeps its id in
localStorage (`ui.visitors`), so a page reload is the same visitor; but whatever the browser keeps,
a visitor can edit. So the browser keeps a *token*, `<id>.<signature>`, where the signature is an
HMAC of the id under a secret only the server has: a token the server did not mint (an id typed in
by hand, another visitor's id with a guessed signature) is refused, and the visitor gets a new id.

The secret is `DISTILLERY_VISITOR_SECRET`, or else one made at random once and kept in the data
folder (`visitor-secret`, readable by the server's user only), so tokens survive a restart
wherever the data folder does. Nothing here knows Gradio.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time

from core import settings

SECRET_FILE = "visitor-secret"
ID_BYTES = 16


def _secret() -> bytes:
    named = os.environ.get("DISTILLERY_VISITOR_SECRET", "").strip()
    if named:
        return named.encode()
    path = settings.data_dir() / SECRET_FILE
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        for _ in range(50):  # another server made it a moment ago and may still be writing it
            secret = path.read_bytes()
            if secret:
                return secret
            time.sleep(0.02)
        raise
    with os.fdopen(fd, "wb") as handle:  # the first server to start writes it; the others read it
        handle.write(secrets.token_hex(32).encode())
    return path.read_bytes()


def _signature(visitor_id: str) -> str:
    return hmac.new(_secret(), visitor_id.encode(), hashlib.sha256).hexdigest()


def mint_token() -> str:
    """A new visitor: a random id and its signature."""
    visitor_id = secrets.token_hex(ID_BYTES)
    return f"{visitor_id}.{_signature(visitor_id)}"


def visitor_id(token: object) -> str | None:
    """The id in `token` when this server signed it; None for anything else (missing, edited, forged)."""
    if not isinstance(token, str) or token.count(".") != 1:
        return None
    visitor, signature = token.split(".")
    if len(visitor) != 2 * ID_BYTES or not hmac.compare_digest(signature, _signature(visitor)):
        return None
    return visitor
