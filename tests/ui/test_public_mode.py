"""A public studio (`DISTILLERY_PUBLIC=1`) through its API: two `gradio_client` clients are two
visitors. Each sees and cancels only its own jobs, a model is its maker's until shared, and the
per-visitor limits refuse with a message and queue nothing. A private studio shows everything.

These studios start no consumer: queued jobs stay queued unless another module's session consumer
is running, so a job here may be queued or running, and every job is cancelled before its test ends.
The environment is changed with a `MonkeyPatch` held by each fixture and undone at its end, so no
other test module sees public mode.
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterator
from typing import Any

import gradio as gr
import httpx
import pytest
from gradio_client import Client
from helpers import recipe_form

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def public_env() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as env:
        env.setenv("DISTILLERY_PUBLIC", "1")
        for name in ("DISTILLERY_MAX_ACTIVE_JOBS", "DISTILLERY_RATE_EVENTS", "DISTILLERY_RATE_WINDOW_S"):
            env.delenv(name, raising=False)  # the defaults, unless a test sets one
        yield env


def studio_url() -> Iterator[str]:
    """A studio built and served under the environment as it is now (public mode is read at build time
    for the page's notes and controls, and at every request for who is asking)."""
    import helpers

    from ui.server import start

    studio = start("127.0.0.1", helpers.free_port(), quiet=True)
    try:
        yield studio.url
    finally:
        studio.close()


@pytest.fixture(scope="module")
def public_url(public_env: pytest.MonkeyPatch) -> Iterator[str]:
    yield from studio_url()


@pytest.fixture(scope="module")
def visitors(public_url: str) -> tuple[Client, Client]:
    return Client(public_url, verbose=False), Client(public_url, verbose=False)


def key_of(client: Client) -> str:
    """The owner key the studio gives a client's requests (a client has no browser storage: its session)."""
    from ui.visitors import visitor

    return str(visitor(gr.Request(session_hash=client.session_hash)))


ACTIVE = ("queued", "running")


def stopping(status: dict[str, Any]) -> bool:
    """Cancelled, or (when a consumer had started it) asked to stop."""
    return status["state"] == "cancelled" or bool(status.get("cancel_requested"))


def submit(client: Client, name: str) -> str:
    """Submit the small recipe; returns the job id, or the refusal when nothing was queued."""
    message = client.predict(*recipe_form(name=name), api_name="/submit_recipe")
    found = re.search(r"Submitted job `([^`]+)`", message)
    return found.group(1) if found else message


@pytest.fixture
def cancel_afterwards() -> Iterator[list[str]]:
    """Job ids a test queued: cancelled at its end, as their owner."""
    from jobs import client
    from jobs.status import read_status

    queued: list[str] = []
    yield queued
    for job_id in queued:
        client.cancel(job_id, (read_status(job_id) or {}).get("owner"))


def test_a_visitor_sees_and_cancels_only_their_own_jobs(visitors, cancel_afterwards):
    from ui import jobs_tab

    a, b = visitors
    job_id = submit(a, "public-a")
    assert not job_id.startswith("❌"), job_id
    cancel_afterwards.append(job_id)
    assert a.predict(job_id, api_name="/job_status")["state"] in ACTIVE
    assert b.predict(job_id, api_name="/job_status") == {"job_id": job_id, "state": "unknown"}
    refused = b.predict(job_id, api_name="/cancel_job")
    assert "not one of yours" in refused and "each visitor sees, cancels and resumes only" in refused
    assert not stopping(a.predict(job_id, api_name="/job_status"))  # B's attempt changed nothing
    assert "not one of yours" in b.predict(job_id, api_name="/resume_job")

    def listed(client: Client) -> list[str]:  # the Jobs tab's table, as that visitor's page refreshes it
        table = jobs_tab.refresh(request=gr.Request(session_hash=client.session_hash))[2]
        return list(table["job"])

    assert job_id in listed(a) and job_id not in listed(b)
    line = a.predict(job_id, api_name="/cancel_job")
    assert "❌" not in line and stopping(a.predict(job_id, api_name="/job_status"))


@pytest.fixture
def model_of_a(visitors, data_dir) -> Iterator[str]:
    """A finished model that visitor A made (its job folder says so, as `jobs.client.submit` writes it)."""
    from helpers import tiny_record, tiny_static_model

    from core.artifact.folder import ModelFolder
    from jobs.ownership import write_access

    model_id = "public-model-of-a"
    path, job = data_dir / "models" / model_id, data_dir / "jobs" / model_id
    job.mkdir(parents=True)
    write_access(job, key_of(visitors[0]))
    ModelFolder.create(tiny_static_model(dim=16), tiny_record(model_id, dim=16), ["a text", "another text"], path)
    yield model_id
    shutil.rmtree(path, ignore_errors=True)
    shutil.rmtree(job, ignore_errors=True)


def choices(client: Client) -> list[str]:
    """The Compare tab's model choices for this visitor (the Evaluate and Ship tabs use the same list)."""
    dropdown, _ = client.predict(None, api_name="/refresh_models")
    return [value for _, value in dropdown["choices"]]


def served(url: str) -> list[str]:
    """The models the studio's embeddings routes offer (their callers are nobody's visitors)."""
    return [m["id"] for m in httpx.get(f"{url.rstrip('/')}/v1/models", timeout=30).json()["data"]]


def test_a_model_is_private_to_its_maker_until_shared(visitors, model_of_a, public_url, data_dir):
    a, b = visitors
    assert model_of_a in choices(a) and model_of_a not in choices(b)
    # Neither the embeddings routes nor the exports folder reach a private model.
    assert model_of_a not in served(public_url)
    embed = httpx.post(f"{public_url.rstrip('/')}/api/embed", json={"model": model_of_a, "input": "x"}, timeout=30)
    assert embed.status_code == 400 and "There is no model" in embed.text, embed.text
    from core.artifact.export import zip_model
    from core.artifact.folder import ModelFolder

    exported = zip_model(ModelFolder.open(model_of_a))  # as the Ship tab's download makes it
    by_path = httpx.get(f"{public_url.rstrip('/')}/gradio_api/file={exported}", timeout=30)
    assert by_path.status_code in (403, 404), by_path.status_code
    assert "private to the visitor who made it" in b.predict(model_of_a, api_name="/model_info")
    assert "private to the visitor who made it" in b.predict(model_of_a, api_name="/evaluate_from_jobs")
    assert "Only the visitor who made" in b.predict(model_of_a, True, api_name="/share_model")
    assert "now shared" in a.predict(model_of_a, True, api_name="/share_model")
    assert model_of_a in choices(b) and "private" not in b.predict(model_of_a, api_name="/model_info")
    assert within_visibility_window(lambda: model_of_a in served(public_url))  # the routes re-check every 2 s
    assert "Only the visitor who made" in b.predict(model_of_a, False, api_name="/share_model")  # read-only to B
    assert "now private" in a.predict(model_of_a, False, api_name="/share_model")
    assert model_of_a not in choices(b)
    assert within_visibility_window(lambda: model_of_a not in served(public_url))


def within_visibility_window(check) -> bool:
    """True once `check` holds, asked until the service's visibility answers have expired."""
    from core.serving.service import VISIBILITY_SECONDS

    deadline = time.monotonic() + VISIBILITY_SECONDS + 1.0
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def test_the_job_limit_refuses_the_third_job(public_url, public_env, cancel_afterwards, data_dir):
    from jobs import client

    a = Client(public_url, verbose=False)  # a visitor of its own: another test's job may still be stopping
    public_env.setenv("DISTILLERY_MAX_ACTIVE_JOBS", "2")
    for n in range(2):
        job_id = submit(a, f"public-limit-{n}")
        assert not job_id.startswith("❌"), job_id
        cancel_afterwards.append(job_id)
    folders = len(list((data_dir / "jobs").iterdir()))
    refused = submit(a, "public-limit-2")
    assert "❌" in refused and "2 jobs queued or running" in refused and "cancel one in the Jobs tab" in refused
    assert len(list((data_dir / "jobs").iterdir())) == folders  # nothing queued, no folder left
    assert len(client.active_jobs(key_of(a))) == 2


def test_the_rate_limit_refuses_when_exceeded(public_url, public_env, cancel_afterwards):
    public_env.setenv("DISTILLERY_MAX_ACTIVE_JOBS", "10")
    public_env.setenv("DISTILLERY_RATE_EVENTS", "2")
    c = Client(public_url, verbose=False)  # a visitor with a fresh allowance
    refused = c.predict(*recipe_form(name="public-rate", corpus_size=10**9), api_name="/submit_recipe")
    assert "limit of 100,000 texts" in refused  # refused submissions use up nothing
    for n in range(2):
        job_id = submit(c, f"public-rate-{n}")
        assert not job_id.startswith("❌"), job_id
        cancel_afterwards.append(job_id)
    refused = submit(c, "public-rate-2")
    assert "Too many expensive actions" in refused and "2 distillations, evaluations or speed measurements per " \
        "10 minutes" in refused and "Try a distillation again in" in refused


def test_the_page_states_the_limits(public_url):
    page = httpx.get(public_url, timeout=30).text
    assert "Shared studio limits per visitor" in page and "you see and cancel only your own jobs" in page


@pytest.fixture
def private_url(public_env: pytest.MonkeyPatch) -> Iterator[str]:
    """A private studio, while this module's public environment is set aside (restored afterwards)."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("DISTILLERY_PUBLIC", "0")
        yield from studio_url()


def test_a_private_studio_shows_everything_as_before(model_of_a, private_url, cancel_afterwards):
    a, b = Client(private_url, verbose=False), Client(private_url, verbose=False)
    job_id = submit(a, "private-a")
    cancel_afterwards.append(job_id)
    status: dict[str, Any] = b.predict(job_id, api_name="/job_status")
    assert status["state"] in ACTIVE and "owner" not in status
    assert model_of_a in choices(a) and model_of_a in choices(b)  # even a model a visitor made in public mode
    line = b.predict(job_id, api_name="/cancel_job")
    assert "❌" not in line and stopping(a.predict(job_id, api_name="/job_status"))


def test_a_browser_keeps_its_visitor_across_pages_and_cannot_forge_one(monkeypatch):
    """What the page-load event does with the token a browser keeps (`ui.visitors.bind`)."""
    from ui.visitors import bind, visitor

    monkeypatch.setenv("DISTILLERY_PUBLIC", "1")
    token = bind(None, gr.Request(session_hash="page-1"), None)  # a first visit: a new token, kept by the browser
    first = visitor(gr.Request(session_hash="page-1"))
    assert first is not None and first.startswith("browser:") and first.removeprefix("browser:") in token
    assert bind(token, gr.Request(session_hash="page-2"), None) == token  # a reload: the same visitor
    assert visitor(gr.Request(session_hash="page-2")) == first
    forged = first.removeprefix("browser:")[::-1] + "." + token.split(".")[1]
    assert bind(forged, gr.Request(session_hash="page-3"), None) != forged  # refused: a new visitor instead
    assert visitor(gr.Request(session_hash="page-3")) not in (first, None)
    assert visitor(gr.Request(session_hash="never-bound")) == "session:never-bound"  # a script's client
    assert visitor(gr.Request(username="ann", session_hash="page-1")) == "user:ann"
    monkeypatch.setenv("DISTILLERY_PUBLIC", "0")
    assert visitor(gr.Request(session_hash="page-1")) is None  # a private studio: one owner, everything visible


def test_a_public_download_is_a_copy_outside_the_exports_folder(model_of_a, public_env, data_dir):
    """The Ship tab's zip (a private event, so called here directly). A public studio does not serve
    the exports folder, so the zip is handed to Gradio as a fresh copy in the temporary folder (which
    Gradio may read wherever the data folder is), and Gradio moves that into its cache."""
    import tempfile
    import zipfile
    from pathlib import Path

    from core.artifact.export import zip_model
    from core.artifact.folder import ModelFolder
    from ui.ship_tab import _handed_out, make_zip

    exported = zip_model(ModelFolder.open(model_of_a))
    copy = _handed_out(exported)
    assert copy.is_relative_to(tempfile.gettempdir()) and not copy.is_relative_to(data_dir)
    assert copy.read_bytes() == exported.read_bytes()
    from jobs.ownership import write_access

    write_access(data_dir / "jobs" / model_of_a, "user:a", shared=True)  # this call comes from no visitor
    handed = make_zip(model_of_a)
    path = Path(handed.value["path"] if isinstance(handed.value, dict) else handed.value)
    assert zipfile.is_zipfile(path) and path.read_bytes() == exported.read_bytes()
