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
"""

from __future__ import annotations

import os
from typing import Any

import gradio as gr

from core.artifact.export import TOKEN_ENV, push_to_hub, zip_model
from core.artifact.folder import ModelFolder
from core.errors import DistilleryError
from core.serving.service import API_KEY_ENV
from core.serving.snippets import client_snippets
from ui.compare_tab import kept_or_newest, model_choices

NO_MODEL = "No finished model yet: distil one in the Recipe tab, then press ↻ models."


def build() -> dict[str, Any]:
    gr.Markdown("Use a finished model outside the studio: call it on this server (Ollama's and OpenAI's "
                "embedding routes answer on the studio's own port), download its folder, or push it to the "
                "Hugging Face Hub.")
    with gr.Row():
        model = gr.Dropdown(label="Model (newest first)", choices=model_choices(), scale=4)
        refresh_btn = gr.Button("↻ models", size="sm", scale=1)
    summary = gr.Markdown()
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


def on_page_load(demo: gr.Blocks, parts: dict[str, Any]) -> None:
    """Open on the newest model, its calls already written (a value set on load fires no event)."""
    demo.load(refresh, parts["model"], [parts["model"], *parts["shown"]], api_visibility="private")


def refresh(current: str | None, request: gr.Request | None = None) -> tuple[Any, ...]:
    """The list again; the current choice is kept while it exists, else the newest is chosen."""
    choices, chosen = kept_or_newest(current)
    return (gr.Dropdown(choices=choices, value=chosen), *show(chosen, request))


def show(model_id: str | None, request: gr.Request | None = None) -> tuple[str, str, str, str, gr.File]:
    """The model's summary, the three calls that embed with it here, and no zip (another model's
    zip must not stay on offer)."""
    no_zip = gr.File(value=None, visible=False)
    if not model_id:
        return NO_MODEL, "", "", "", no_zip
    try:
        folder = ModelFolder.open(model_id)
    except DistilleryError as exc:
        return str(exc), "", "", "", no_zip
    calls = client_snippets(page_origin(request), folder.id)
    return summary_text(folder), calls.ollama_curl, calls.openai_curl, calls.openai_python, no_zip


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


def make_zip(model_id: str | None) -> gr.File:
    """The zip, shown as a file to download (the box stays hidden until there is one: empty, it is a
    large drop area that invites an upload)."""
    if not model_id:
        raise gr.Error("Choose a model first.")
    try:
        return gr.File(value=str(zip_model(ModelFolder.open(model_id))), visible=True)
    except DistilleryError as exc:
        raise gr.Error(str(exc)) from exc


def push(model_id: str | None, repo_id: str, private: bool, token: str | None) -> str:
    """Push, then say where the model is (the field is emptied by the event that follows success)."""
    if not model_id:
        raise gr.Error("Choose a model first.")
    try:
        url = push_to_hub(ModelFolder.open(model_id), repo_id, token, private=bool(private))
    except DistilleryError as exc:
        raise gr.Error(str(exc)) from None  # the message never holds the token; the chain might
    return f"Pushed `{model_id}` to [{url}]({url})."
