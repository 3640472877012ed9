"""Who is asking: the visitor behind a Gradio event in a public studio (`settings.public_mode`).

Every handler that lists, starts or acts on jobs and models asks `visitor(request)`. The key comes
from the request, never from an input a visitor fills in:

1. `user:<name>`: a logged-in user — Gradio's own `auth` (`request.username`), or a Hugging Face
   OAuth login when the Space enables it (`gr.OAuthProfile`, read when the page loads).
2. `browser:<id>`: an anonymous browser. Its id is a token the server signed (`core.visitors`),
   kept in localStorage by a `gr.BrowserState`, so a page reload or a second tab is the same
   visitor. The token is sent once per page, to a private page-load event (`bind`), which checks
   the signature and binds the page's Gradio session to the visitor; every later event finds the
   visitor by its session hash. An edited or forged token is refused and replaced by a new visitor.
3. `session:<hash>`: anything else, e.g. a `gradio_client.Client`, which has no browser storage and
   runs no page-load event: its session hash (one per Client) is its identity, so a script owns
   the jobs it submitted for as long as it keeps its Client.

Why the token is not an input of every event: then every API endpoint would take it, and a script
could send any value; Gradio's own BrowserState encryption protects nothing here (its key is in the
page's config). A session hash, like Gradio's per-session state, is a random value that no other
visitor ever sees.

In a private studio `visitor` is None: there is one owner, who sees everything (`jobs.ownership`),
and no limit applies. The rate of expensive events (`expensive`) is counted here, in the app's
process; the job and upload limits where jobs are queued (`jobs.client`).
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import gradio as gr

from core import settings
from core.limits import Limits, RateLimiter
from core.visitors import mint_token, visitor_id

STORAGE_KEY = "distillery-visitor"
NOBODY = "nobody"  # public mode without a request (a handler called directly): owns nothing
MAX_SESSIONS = 50_000  # page sessions remembered; the oldest are forgotten (they fall back to their hash)

_sessions: OrderedDict[str, str] = OrderedDict()
_sessions_lock = threading.Lock()
RATE = RateLimiter()


def visitor(request: gr.Request | None) -> str | None:
    """The key of the visitor behind `request` (module docstring); None in a private studio."""
    if not settings.public_mode():
        return None
    if request is None:
        return NOBODY
    if request.username:
        return f"user:{request.username}"
    session = request.session_hash
    if not session:
        return NOBODY
    with _sessions_lock:
        bound = _sessions.get(session)
    return bound or f"session:{session}"


def sign_in() -> None:
    """A Hugging Face login button, in a public studio on a Space that enables OAuth (`hf_oauth: true`
    in its README sets `OAUTH_CLIENT_ID`): a logged-in visitor keeps their jobs and models on any
    browser. Gradio adds the login routes only when the page has this button."""
    if settings.public_mode() and os.environ.get("OAUTH_CLIENT_ID"):
        gr.LoginButton()


def page_load(demo: gr.Blocks) -> Callable[..., Any]:
    """What the tabs attach their page-load events to: `demo.load` in a private studio; in a public
    one, `.then` of the event that binds the page to its visitor, so that every list a page opens
    on is already that visitor's."""
    if not settings.public_mode():
        return demo.load
    token = gr.BrowserState(None, storage_key=STORAGE_KEY)
    return demo.load(bind, token, token, api_visibility="private", show_progress="hidden").then


def bind(token: str | None, request: gr.Request, profile: gr.OAuthProfile | None) -> str:
    """Bind this page's session to its visitor: the OAuth user when logged in, else the browser's
    token when this server signed it, else a new token (returned, so the browser keeps it)."""
    if visitor_id(token) is None:
        token = mint_token()
    key = f"user:{profile.username}" if profile is not None else f"browser:{visitor_id(token)}"
    if request.session_hash:
        with _sessions_lock:
            _sessions[request.session_hash] = key
            _sessions.move_to_end(request.session_hash)
            while len(_sessions) > MAX_SESSIONS:
                _sessions.popitem(last=False)
    return str(token)


@contextmanager
def expensive(request: gr.Request | None, what: str) -> Iterator[None]:
    """Around an expensive event (a distillation, an evaluation, a speed measurement): refused with a
    `LimitError` when the visitor's rate is used up; counted once the body has run without raising."""
    who = visitor(request)
    if who is None:
        yield
        return
    limits = Limits.from_env()
    RATE.check(who, what, limits)
    yield
    RATE.record(who, limits)


def limits_note(line: Callable[[Limits], str]) -> None:
    """In a public studio, a short line saying the limits that apply in this tab (`Limits.*_line`)."""
    if settings.public_mode():
        gr.Markdown(line(Limits.from_env()))
