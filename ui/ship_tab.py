"""Ship tab: use a finished model outside the studio. Layout and wiring only.

For the chosen model (newest first): the calls that embed with it on this very server (the studio
serves the embeddings service on its own port, `ui.server`), a zip of its folder to download, and a
push to the Hugging Face Hub. The calls are written by `core.serving.snippets`, the zip and the push
done by `core.artifact.export`.

The server's address is the one the browser used (the request's Host, or the proxy's
X-Forwarded-Host and -Proto, as on a Space), so a copied command works from the same network.

The token: a password field, sent only with the push, which is a private event (not in the API
page and not in Gradio's run history, which records the inputs of public events). The push keeps
it in memory for its duration; the field is emptied once the push has succeeded.

In a public studio a model is private to the visitor who made it until they share it here
(`jobs.ownership`); the others may then use it (compare, evaluate, download, push a copy), never
change who sees it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr

from core import settings
from core.artifact.export import TOKEN_ENV, push_to_hub, zip_model
from core.artifact.folder import ModelFolder
from core.errors import DistilleryError
from core.serving.service import API_KEY_ENV
from core.serving.snippets import client_snippets
from jobs.ownership import model_access, open_model, set_shared
from ui.compare_tab import kept_or_newest, model_choices
from ui.visitors import visitor

NO_MODEL = "No finished model yet: distil one in the Recipe tab, then press ↻ models."


def build() -> dict[str, Any]:
    gr.Markdown("Use a finished model outside the studio: call it on this server (Ollama's and OpenAI's "
                "embedding routes answer on the studio's own port), download its folder, or push it to the "
                "Hugging Face Hub.")
    with gr.Row():
        # Public mode: the page is built with the shared models only, each visitor's own arrive per session,
        # and a script names its model without loading the page; every handler checks the id (`open_model`).
        model = gr.Dropdown(label="Model (newest first)", choices=model_choices(), scale=4,
                            allow_custom_value=settings.public_mode())
        refresh_btn = gr.Button("↻ models", size="sm", scale=1)
    summary = gr.Markdown()
    if settings.public_mode():
        with gr.Row(equal_height=True):
            shared = gr.Checkbox(label="Share this model with every visitor (they can use it, not change this)",
                                 value=False, scale=3)
            share_btn = gr.Button("Save who sees it", scale=1)
        share_md = gr.Markdown()
        share_btn.click(share, [model, shared], share_md, api_name="share_model")
    gr.Markdown("### Call it on this server")
    ollama_curl = gr.Code(label="curl, Ollama's shape (POST /api/embed)", language="shell", interactive=False,
                          lines=4, wrap_lines=True, buttons=["copy"])
    openai_curl = gr.Code(label="curl, OpenAI's shape (POST /v1/embeddings)", language="shell", interactive=False,
                          lines=4, wrap_lines=True, buttons=["copy"])
    openai_python = gr.Code(label="Python, the openai client (pip install openai)", language="python",
                            interactive=False, lines=6, wrap_lines=True, buttons=["copy"])
    gr.Markdown("### Download")
    zip_btn = gr.Button("Download as zip")
    zip_file = gr.File(label="The model folder as a zip: unzipped, it loads in model2vec, sentence-transformers "
                             "and python -m serve --model", interactive=False, visible=False)
    gr.Markdown("### Push to the Hugging Face Hub")
    with gr.Row():
        repo = gr.Textbox(label="Repository id", placeholder="your-name/model-name", max_lines=1, scale=3)
        private = gr.Checkbox(label="Private repository (when it is created)", value=True, scale=1)
    token = gr.Textbox(label="Hub token with write access: used for this push only, never saved",
                       placeholder=f"empty: {TOKEN_ENV} from the server's environment", type="password", max_lines=1)
    push_btn = gr.Button("Push to the Hub", variant="primary")
    push_md = gr.Markdown()

    shown = [summary, ollama_curl, openai_curl, openai_python, zip_file]
    refresh_btn.click(refresh, model, [model, *shown], api_visibility="private")
    model.input(show, model, shown, api_visibility="private")
    zip_btn.click(make_zip, model, zip_file, api_visibility="private")
    pushed = push_btn.click(push, [model, repo, private, token], push_md, api_visibility="private")
    pushed.success(lambda: "", None, token, api_visibility="private", show_progress="hidden")  # not on failure
    return {"model": model, "shown": shown}


def on_page_load(load: Callable[..., Any], parts: dict[str, Any]) -> None:
    """Open on the newest model, its calls already written (a value set on load fires no event).
    `load` is `ui.visitors.page_load`."""
    load(refresh, parts["model"], [parts["model"], *parts["shown"]], api_visibility="private")


def refresh(current: str | None, request: gr.Request | None = None) -> tuple[Any, ...]:
    """The list again; the current choice is kept while it exists, else the newest is chosen."""
    choices, chosen = kept_or_newest(current, request)
    return (gr.Dropdown(choices=choices, value=chosen), *show(chosen, request))


def show(model_id: str | None, request: gr.Request | None = None) -> tuple[str, str, str, str, gr.File]:
    """The model's summary, the three calls that embed with it here, and no zip (another model's
    zip must not stay on offer)."""
    no_zip = gr.File(value=None, visible=False)
    if not model_id:
        return NO_MODEL, "", "", "", no_zip
    try:
        folder = open_model(model_id, visitor(request))
    except DistilleryError as exc:
        return str(exc), "", "", "", no_zip
    calls = client_snippets(page_origin(request), folder.id)
    return summary_text(folder) + access_line(folder, visitor(request)), calls.ollama_curl, calls.openai_curl, calls.openai_python, no_zip


def summary_text(folder: ModelFolder) -> str:
    record = folder.record
    verdict = (record.evaluation or {}).get("verdict", {}).get("verdict")
    lines = [f"**{record.title}**: `{folder.id}` · {record.dimension} dimensions · "
             f"{record.vocabulary_size:,} tokens · {folder.size_mb()} MB · teacher `{record.teacher.name}` · "
             f"{f'verdict: {verdict}' if verdict else 'not evaluated yet'}",
             "Name it as `model` in a request; `GET /api/tags` and `GET /v1/models` list every model served here."]
    if os.environ.get(API_KEY_ENV):
        lines.append(f"The service asks for a key: the calls read it from `${API_KEY_ENV}`.")
    return "\n\n".join(lines)


def access_line(folder: ModelFolder, viewer: str | None) -> str:
    """Who sees the model, in a public studio (nothing in a private one)."""
    if viewer is None:
        return ""
    access = model_access(folder)
    if access.owner is None:
        return "\n\nEvery visitor sees this model: it came with this studio."
    if access.owner != viewer:
        return "\n\nAnother visitor made this model and shares it: you can use it, not change who sees it."
    return ("\n\nYou made this model: **every visitor can use it** (you shared it)." if access.shared else
            "\n\nYou made this model: **only you see it** until you share it below.")


def share(model_id: str | None, shared: bool, request: gr.Request | None = None) -> str:
    """Share the chosen model with every visitor, or make it private again (its owner only)."""
    if not model_id:
        return "Choose a model first."
    try:
        set_shared(model_id, visitor(request), bool(shared))
    except DistilleryError as exc:
        return f"❌ {exc}"
    return f"`{model_id}` is now {'shared with every visitor' if shared else 'private to you'}."


def page_origin(request: gr.Request | None) -> str:
    """`scheme://host[:port]` as the browser reached this server (through a proxy when it says so)."""
    fallback = f"http://127.0.0.1:{os.environ.get('GRADIO_SERVER_PORT', '7860')}"
    if request is None:
        return fallback
    headers = request.headers

    def first(name: str) -> str:
        return str(headers.get(name) or "").split(",")[0].strip()

    host = first("x-forwarded-host") or first("host")
    if not host:
        return fallback
    url = getattr(request, "url", None)
    scheme = first("x-forwarded-proto") or (str(url).split(":", 1)[0] if url else "") or "http"
    return f"{scheme}://{host}"


def make_zip(model_id: str | None, request: gr.Request | None = None) -> gr.File:
    """The zip, shown as a file to download (the box stays hidden until there is one: empty, it is a
    large drop area that invites an upload)."""
    if not model_id:
        raise gr.Error("Choose a model first.")
    try:
        path = zip_model(open_model(model_id, visitor(request)))
    except DistilleryError as exc:
        raise gr.Error(str(exc)) from exc
    return gr.File(value=str(_handed_out(path) if settings.public_mode() else path), visible=True)


def _handed_out(path: Path) -> Path:
    """A copy of a zip in a fresh temporary folder, which Gradio copies into its cache under a name
    derived from the content. A public studio does not serve the exports folder (`ui.server`): a
    model's zip there has a name anyone who learns its id could type, private models' included."""
    folder = Path(tempfile.mkdtemp(prefix="distillery-download-"))
    copy = Path(shutil.copy2(path, folder / path.name))
    for old in Path(tempfile.gettempdir()).glob("distillery-download-*"):  # the copies of earlier downloads
        if old != folder and time.time() - old.stat().st_mtime > 3600:
            shutil.rmtree(old, ignore_errors=True)
    return copy


def push(model_id: str | None, repo_id: str, private: bool, token: str | None,
         request: gr.Request | None = None) -> str:
    """Push, then say where the model is (the field is emptied by the event that follows success)."""
    if not model_id:
        raise gr.Error("Choose a model first.")
    try:
        url = push_to_hub(open_model(model_id, visitor(request)), repo_id, token, private=bool(private))
    except DistilleryError as exc:
        raise gr.Error(str(exc)) from None  # the message never holds the token; the chain might
    return f"Pushed `{model_id}` to [{url}]({url})."
