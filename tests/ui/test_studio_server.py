"""The studio and the embeddings service on one port (`ui.server`), and the Ship tab's calls.

The first tests mount a one-line Gradio page over a service with a key (in process, through
Starlette's TestClient): the key guards the service's routes and never the studio. The slow ones use
the real studio (the `server` fixture, started as `app.py` starts it): embeddings from a finished
model on the studio's port, the page still served, and the Ship tab's curl and openai calls run
as a person would paste them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import gradio as gr
import helpers
import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from core import settings
from core.artifact.folder import ModelFolder
from core.encoders.student import StudentEncoder
from core.serving.service import ModelRegistry, create_service
from core.serving.snippets import client_snippets
from ui.server import service_paths, studio_asgi

MODEL = "ship-served"


@pytest.fixture(scope="module")
def finished(data_dir) -> Iterator[ModelFolder]:
    """A tiny finished model in the data folder's models folder (where the studio's service looks)."""
    folder = ModelFolder.create(helpers.tiny_static_model(dim=12, seed=3), helpers.tiny_record(MODEL, dim=12),
                                ["a text"], settings.models_dir() / MODEL)
    yield folder
    shutil.rmtree(folder.path, ignore_errors=True)


def test_the_key_guards_the_service_routes_and_never_the_studio(finished):
    with gr.Blocks() as demo:
        gr.Markdown("the studio page")
    service = create_service(ModelRegistry([finished], teacher=None), api_key="secret-key")
    assert {"/api/embed", "/api/embeddings", "/api/tags", "/health", "/v1/embeddings", "/v1/models"} \
        <= set(service_paths(service))
    with TestClient(studio_asgi(demo.queue(), service)) as client:
        page = client.get("/")
        assert page.status_code == 200 and "<html" in page.text.lower()
        assert client.get("/config").json()["css"]  # the page's stylesheet went in at mount
        refused = client.post("/v1/embeddings", json={"model": MODEL, "input": "hello"})
        assert refused.status_code == 401 and refused.json()["error"]["type"] == "authentication_error"
        embedded = client.post("/api/embed", json={"model": MODEL, "input": "hello"},
                               headers={"Authorization": "Bearer secret-key"})
        assert embedded.status_code == 200 and len(embedded.json()["embeddings"][0]) == 12
        assert client.get("/health").status_code == 200  # probes need no key; a model is loaded now


@pytest.mark.slow  # the real studio server
def test_the_studio_allocates_arrow_tables_through_the_system(server):
    """What keeps its memory level under load (`core.memory.return_arrow_memory`)."""
    import pyarrow as pa

    assert pa.default_memory_pool().backend_name == "system"


@pytest.mark.slow  # the real studio server
def test_the_studio_port_serves_embeddings_and_the_page(server, finished):
    base = server.rstrip("/")
    texts = ["the cat sat on the mat", "a second text"]
    expected = StudentEncoder.open(finished.path).encode_queries(texts)

    openai = httpx.post(f"{base}/v1/embeddings", json={"model": MODEL, "input": texts}, timeout=60)
    assert openai.status_code == 200, openai.text
    np.testing.assert_allclose([d["embedding"] for d in openai.json()["data"]], expected, rtol=1e-6)
    ollama = httpx.post(f"{base}/api/embed", json={"model": MODEL, "input": texts}, timeout=60)
    assert ollama.status_code == 200, ollama.text
    np.testing.assert_allclose(ollama.json()["embeddings"], expected, rtol=1e-6)

    assert MODEL in [m["id"] for m in httpx.get(f"{base}/v1/models", timeout=60).json()["data"]]
    assert httpx.get(f"{base}/health", timeout=10).json()["status"] == "healthy"
    page = httpx.get(server, timeout=30)
    assert page.status_code == 200 and "Distillery" in page.text
    from gradio_client import Client

    assert "/job_status" in Client(server, verbose=False).view_api(print_info=False, return_format="dict")[
        "named_endpoints"]  # the studio's own API still answers beside the service


@pytest.mark.slow  # runs curl and a Python subprocess against the real studio
def test_the_ship_tab_calls_work_as_pasted(server, finished):
    calls = client_snippets(server, MODEL, key_required=False)
    for command in (calls.ollama_curl, calls.openai_curl):
        done = subprocess.run(["bash", "-c", command + " --fail --silent --show-error"], capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert MODEL in done.stdout and "[" in done.stdout
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    done = subprocess.run([sys.executable, "-c", calls.openai_python], capture_output=True, text=True, timeout=120,
                          env=env, cwd=Path(__file__).parent)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "2 vectors of 12 dimensions"


def test_the_ship_tab_writes_calls_for_the_address_the_browser_used(finished):
    from ui import ship_tab

    class Seen:
        def __init__(self, headers: dict[str, str], url: str) -> None:
            self.headers, self.url = headers, url

    assert ship_tab.page_origin(Seen({"host": "studio.example:7860"}, "http://studio.example:7860/x")) \
        == "http://studio.example:7860"
    proxied = Seen({"host": "10.0.0.2:7860", "x-forwarded-host": "me-distillery.hf.space",
                    "x-forwarded-proto": "https"}, "http://10.0.0.2:7860/")
    assert ship_tab.page_origin(proxied) == "https://me-distillery.hf.space"  # type: ignore[arg-type]
    summary, ollama, openai, python, _ = ship_tab.show(MODEL, proxied)  # type: ignore[arg-type]
    assert f"`{MODEL}`" in summary and "12 dimensions" in summary
    assert "https://me-distillery.hf.space/api/embed" in ollama and "https://me-distillery.hf.space/v1/embeddings" \
        in openai and 'base_url="https://me-distillery.hf.space/v1"' in python
    assert ship_tab.show(None)[0] == ship_tab.NO_MODEL
    ship_tab.make_zip(MODEL)
    assert (settings.exports_dir() / f"{MODEL}.zip").is_file()
