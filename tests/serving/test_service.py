"""The embeddings service over real HTTP: a uvicorn server in a thread (and `python -m serve` as a
subprocess), called by the real `openai` client and by httpx, with real students and the real teacher."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import helpers
import httpx
import numpy as np
import pytest
from helpers import running, wait_healthy

from core.artifact.folder import ModelFolder
from core.encoders.student import StudentEncoder
from core.serving.service import Limits, ModelRegistry, create_service

pytestmark = pytest.mark.slow  # starts servers
REPO = Path(__file__).resolve().parents[2]
LIMITS = Limits(max_inputs=8, max_chars=200, max_body_bytes=2**20)


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory) -> Path:
    """Two instant students: tiny-a (8-d, named "alpha") and tiny-b (16-d)."""
    root = tmp_path_factory.mktemp("served") / "models"
    for model_id, dim, name, created in (("tiny-a", 8, "alpha", "2025-01-02T00:00:00+00:00"),
                                          ("tiny-b", 16, "beta", "2025-01-01T00:00:00+00:00")):
        ModelFolder.create(helpers.tiny_static_model(dim, seed=dim), helpers.tiny_record(model_id, created, dim, name=name),
                           ["a text"], root / model_id)
    return root


@pytest.fixture(scope="module")
def url(models_dir: Path) -> Iterator[str]:
    app = create_service(ModelRegistry(models_dir=models_dir), limits=LIMITS, preload=["tiny-a"])
    with running(app) as base:
        wait_healthy(base)
        yield base


def student_vectors(models_dir: Path, model_id: str, texts: list[str]) -> np.ndarray:
    return StudentEncoder.open(models_dir / model_id).encode_queries(texts)


def test_ollama_embed_one_and_many(url: str, models_dir: Path) -> None:
    one = httpx.post(f"{url}/api/embed", json={"model": "tiny-a", "input": "the cat sat"}).json()
    assert one["model"] == "tiny-a" and len(one["embeddings"]) == 1
    assert one["embedding"] == one["embeddings"][0]
    np.testing.assert_allclose(one["embedding"], student_vectors(models_dir, "tiny-a", ["the cat sat"])[0], rtol=1e-6)
    assert isinstance(one["total_duration"], int) and one["total_duration"] > 0
    assert one["load_duration"] == 0  # preloaded
    assert one["prompt_eval_count"] == 3

    texts = ["first text", "a second, longer text"]
    many = httpx.post(f"{url}/api/embed", json={"model": "beta", "input": texts}).json()  # by name
    assert "embedding" not in many and np.shape(many["embeddings"]) == (2, 16)
    np.testing.assert_allclose(many["embeddings"], student_vectors(models_dir, "tiny-b", texts), rtol=1e-6)

    legacy = httpx.post(f"{url}/api/embeddings", json={"model": "tiny-a:latest", "prompt": "the cat sat"}).json()
    assert legacy["embedding"] == one["embedding"]


def test_dimensions_truncate_and_renormalise(url: str, models_dir: Path) -> None:
    body = httpx.post(f"{url}/api/embed", json={"model": "tiny-b", "input": ["hello world"], "dimensions": 4}).json()
    full = student_vectors(models_dir, "tiny-b", ["hello world"])[0]
    got = np.array(body["embeddings"][0])
    assert got.shape == (4,) and abs(np.linalg.norm(got) - 1) < 1e-5
    np.testing.assert_allclose(got, full[:4] / np.linalg.norm(full[:4]), rtol=1e-5)


def test_tags_models_and_health(url: str, models_dir: Path) -> None:
    tags = httpx.get(f"{url}/api/tags").json()["models"]
    assert [t["name"] for t in tags] == ["tiny-a", "tiny-b", "tiny-a:routed", "tiny-b:routed", "teacher"]
    first = tags[0]
    assert first["size"] == ModelFolder.open("tiny-a", models_dir).size_bytes()
    assert len(first["digest"]) == 64 and first["modified_at"].startswith("2025-01-02")
    assert first["details"]["format"] == "model2vec" and first["details"]["dimension"] == 8
    assert tags[2]["details"]["dimension"] == 384  # a routed model answers in the teacher's space
    assert tags[4]["details"]["teacher"] == "sentence-transformers/all-MiniLM-L6-v2" and tags[4]["size"] > 10**7

    listed = httpx.get(f"{url}/v1/models").json()
    assert listed["object"] == "list" and [m["id"] for m in listed["data"]] == ["tiny-a", "tiny-b", "tiny-a:routed",
                                                                         "tiny-b:routed", "teacher"]

    health = httpx.get(f"{url}/health").json()
    assert health["status"] == "healthy" and "tiny-a" in health["models_loaded"]
    memory = health["memory"]  # each held model with its estimated MB (an 8-d table and a tokenizer)
    assert memory["budget_mb"] == 2048 and "warning" not in memory
    assert {m["name"] for m in memory["models"]} == set(health["models_loaded"])
    assert all(0 < m["mb"] < 200 for m in memory["models"])


def test_health_is_503_until_a_model_is_loaded(models_dir: Path) -> None:
    app = create_service(ModelRegistry(models_dir=models_dir), limits=LIMITS)
    with running(app) as base:
        first = httpx.get(f"{base}/health")
        assert first.status_code == 503 and "no model is loaded" in first.json()["message"]
        assert httpx.post(f"{base}/api/embed", json={"model": "tiny-b", "input": "x y"}).json()["load_duration"] > 0
        assert httpx.get(f"{base}/health").json()["models_loaded"] == ["tiny-b"]


def test_openai_client_float_and_base64(small_model) -> None:
    import openai

    texts = ["how do I reset my password", "the weather is nice today", "x"]
    expected = StudentEncoder.open(small_model.path).encode_queries(texts)
    app = create_service(ModelRegistry([ModelFolder.at(small_model.path)], teacher=None))
    with running(app) as base:
        client = openai.OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0)
        model_id = small_model.record.id
        as_float = client.embeddings.create(model=model_id, input=texts, encoding_format="float")
        assert as_float.model == model_id and [d.index for d in as_float.data] == [0, 1, 2]
        assert as_float.usage.prompt_tokens > 0 and as_float.usage.total_tokens == as_float.usage.prompt_tokens
        np.testing.assert_array_equal(np.array([d.embedding for d in as_float.data], dtype=np.float32), expected)
        # The client's default asks for base64 and decodes it (little-endian float32) itself.
        default = client.embeddings.create(model=model_id, input=texts)
        np.testing.assert_array_equal(np.array([d.embedding for d in default.data], dtype=np.float32), expected)
        raw = client.embeddings.create(model=model_id, input=texts[0], encoding_format="base64")
        decoded = np.frombuffer(base64.b64decode(raw.data[0].embedding), dtype="<f4")
        np.testing.assert_array_equal(decoded, expected[0])
        short = client.embeddings.create(model=model_id, input=texts, dimensions=16, encoding_format="float")
        assert all(len(d.embedding) == 16 for d in short.data)
        with pytest.raises(openai.BadRequestError, match="Available models"):
            client.embeddings.create(model="nope", input="x")


def test_teacher_in_thread_pool(url: str) -> None:
    from core.encoders.teacher import TeacherEncoder, resolve_teacher

    texts = ["a query about cats", "another one"]
    expected = TeacherEncoder(resolve_teacher(None)).encode_queries(texts)
    body = httpx.post(f"{url}/v1/embeddings", json={"model": "sentence-transformers/all-MiniLM-L6-v2",
                                                    "input": texts}, timeout=120).json()
    np.testing.assert_allclose([d["embedding"] for d in body["data"]], expected, atol=1e-6)
    assert body["usage"]["prompt_tokens"] == 6 + 2 * 2  # six words, and [CLS] and [SEP] around each text
    by_alias = httpx.post(f"{url}/api/embed", json={"model": "teacher", "input": texts[0]}, timeout=120).json()
    np.testing.assert_allclose(by_alias["embedding"], expected[0], atol=1e-6)


def test_input_type_picks_the_teachers_query_or_document_prompt(models_dir: Path) -> None:
    """A teacher with prompts (as EmbeddingGemma has) embeds a query and a document differently; the
    request's `input_type` says which it is, and leaving it out means a query."""
    import dataclasses

    from core.encoders.teacher import TeacherEncoder, resolve_teacher

    info = dataclasses.replace(resolve_teacher(None), prompts={"query": "query: ", "document": "passage: "})
    registry = ModelRegistry(models_dir=models_dir)
    registry._teacher = info  # the registry resolves its teacher once; this one has prompts
    encoder = TeacherEncoder(info)
    text = ["how do static embeddings work"]
    query, document = encoder.encode_queries(text)[0], encoder.encode(text)[0]
    assert not np.allclose(query, document, atol=1e-3)  # the prompts matter
    with running(create_service(registry)) as base:
        def embed(**extra) -> np.ndarray:
            answer = httpx.post(f"{base}/v1/embeddings", json={"model": "teacher", "input": text, **extra}, timeout=120)
            assert answer.status_code == 200, answer.text
            return np.array(answer.json()["data"][0]["embedding"])

        np.testing.assert_allclose(embed(), query, atol=1e-5)
        np.testing.assert_allclose(embed(input_type="query"), query, atol=1e-5)
        np.testing.assert_allclose(embed(input_type="document"), document, atol=1e-5)
        np.testing.assert_allclose(embed(input_type="passage"), document, atol=1e-5)


def test_api_key(models_dir: Path) -> None:
    import openai

    app = create_service(ModelRegistry(models_dir=models_dir, teacher=None), api_key="s3cret", preload=["tiny-a"])
    body = {"model": "tiny-a", "input": "hello"}
    with running(app) as base:
        assert wait_healthy(base)["status"] == "healthy"  # health needs no key (probes)
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"X-API-Key": "wrong"}, {"Authorization": "s3cret"}):
            refused = httpx.post(f"{base}/api/embed", json=body, headers=headers)
            assert refused.status_code == 401 and "API key" in refused.json()["error"], headers
        assert httpx.get(f"{base}/api/tags").status_code == 401
        assert httpx.post(f"{base}/api/embed", json=body, headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert httpx.post(f"{base}/api/embed", json=body, headers={"X-API-Key": "s3cret"}).status_code == 200
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=f"{base}/v1", api_key="wrong", max_retries=0).embeddings.create(**body)
        ok = openai.OpenAI(base_url=f"{base}/v1", api_key="s3cret", max_retries=0).embeddings.create(**body)
        assert len(ok.data[0].embedding) == 8


def test_no_key_and_cors_off_by_default(url: str, models_dir: Path) -> None:
    answer = httpx.post(f"{url}/api/embed", json={"model": "tiny-a", "input": "hi"},
                        headers={"Origin": "https://example.org", "Authorization": "Bearer anything"})
    assert answer.status_code == 200 and "access-control-allow-origin" not in answer.headers
    app = create_service(ModelRegistry(models_dir=models_dir, teacher=None), cors_origins=["https://example.org"])
    with running(app) as base:
        allowed = httpx.get(f"{base}/api/tags", headers={"Origin": "https://example.org"})
        assert allowed.headers["access-control-allow-origin"] == "https://example.org"


BIG = "x" * (10 * 2**20)
BAD = [  # (route, body: JSON value or raw bytes, status, words the message must hold)
    ("/api/embed", {"model": "tiny-a", "input": []}, 422, "empty list"),
    ("/v1/embeddings", {"model": "tiny-a", "input": []}, 422, "empty list"),
    ("/api/embed", {"model": "tiny-a", "input": ""}, 422, "is empty"),
    ("/v1/embeddings", {"model": "tiny-a", "input": ["ok", "  "]}, 422, "input[1] is empty"),
    ("/api/embed", {"model": "tiny-a", "input": ["ok", 3]}, 422, "input[1] is int, not a string"),
    ("/v1/embeddings", {"model": "tiny-a", "input": [[101, 102]]}, 422, "token arrays are not supported"),
    ("/api/embed", {"model": "tiny-a", "input": {"a": 1}}, 422, "a string or a list of strings"),
    ("/api/embed", {"model": "tiny-a"}, 422, "'input' is required"),
    ("/api/embed", {"input": "hello"}, 422, "'model' is required"),
    ("/api/embed", {"model": "nope", "input": "hello"}, 400, "Available models: 'tiny-a', 'alpha', 'tiny-b'"),
    ("/v1/embeddings", {"model": "nope", "input": "hello"}, 400, "There is no model 'nope'"),
    ("/api/embed", {"model": "tiny-a", "input": "hi", "dimensions": 0}, 422, "at least 1"),
    ("/v1/embeddings", {"model": "tiny-a", "input": "hi", "dimensions": 9}, 422, "has only 8"),
    ("/api/embed", {"model": "tiny-a", "input": "hi", "dimensions": "4"}, 422, "whole number"),
    ("/v1/embeddings", {"model": "tiny-a", "input": "hi", "encoding_format": "int8"}, 422, "encoding_format"),
    ("/api/embed", {"model": "tiny-a", "input": ["a"] * 9}, 413, "at most 8"),
    ("/v1/embeddings", {"model": "tiny-a", "input": "word " * 50}, 413, "at most 200 are accepted per text"),
    ("/api/embed", {"model": "tiny-a", "input": "hi", "truncate": "yes"}, 422, "true or false"),
    ("/v1/embeddings", {"model": "tiny-a", "input": "hi", "input_type": "tweet"}, 422, "'input_type' must be one of"),
    ("/api/embed", b'{"model": "tiny-a", "input": ', 400, "not valid JSON"),
    ("/v1/embeddings", b"[1, 2]", 400, "must be a JSON object"),
    ("/api/embed", {"model": "tiny-a", "input": BIG}, 413, "at most 1,048,576"),
    ("/api/nothing", {}, 404, "Routes: POST /api/embed"),
]


@pytest.mark.parametrize(("route", "body", "status", "words"), BAD,
                         ids=[f"{r}-{s}-{w[:24]}" for r, _, s, w in BAD])
def test_bad_input_is_refused_clearly_and_service_keeps_serving(url: str, route: str, body, status: int,
                                                                 words: str) -> None:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    answer = httpx.post(f"{url}{route}", content=content, headers={"Content-Type": "application/json"}, timeout=30)
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    message = error["message"] if route.startswith("/v1/") else error
    assert words in message
    if route.startswith("/v1/"):
        assert error["code"] == status and error["type"]
    ok = httpx.post(f"{url}/api/embed", json={"model": "tiny-a", "input": "still here"})
    assert ok.status_code == 200 and len(ok.json()["embedding"]) == 8


def test_ollama_truncates_long_inputs_unless_told_not_to(url: str, models_dir: Path) -> None:
    long = "word " * 100  # 500 characters, over the 200 allowed
    cut = httpx.post(f"{url}/api/embed", json={"model": "tiny-a", "input": long}).json()
    np.testing.assert_allclose(cut["embedding"], student_vectors(models_dir, "tiny-a", [long[:200]])[0], rtol=1e-6)
    refused = httpx.post(f"{url}/api/embed", json={"model": "tiny-a", "input": long, "truncate": False})
    assert refused.status_code == 413


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


@contextlib.contextmanager
def serve_process(host: str, *args: str) -> Iterator[tuple[str, subprocess.Popen]]:
    port = helpers.free_port()
    env = {**os.environ, "HOST": host, "PORT": str(port), "PYTHONPATH": str(REPO), "LOG_LEVEL": "warning"}
    process = subprocess.Popen([sys.executable, "-m", "serve", *args], cwd=REPO, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        yield (f"http://[::1]:{port}" if ":" in host else f"http://{host}:{port}"), process
    finally:
        process.terminate()
        process.wait(20)


def test_python_m_serve_answers_health(models_dir: Path) -> None:
    with serve_process("127.0.0.1", "--model", str(models_dir / "tiny-b"), "--no-teacher") as (base, process):
        health = wait_healthy(base, process=process)
        assert health["status"] == "healthy" and health["models_loaded"] == ["tiny-b"]
        assert [m["name"] for m in health["memory"]["models"]] == ["tiny-b"]
        names = [m["name"] for m in httpx.get(f"{base}/api/tags").json()["models"]]
        assert names == ["tiny-b"]


@pytest.mark.skipif(not ipv6_loopback(), reason="this machine has no IPv6 loopback (::1)")
def test_python_m_serve_on_ipv6(models_dir: Path) -> None:
    with serve_process("::", "--models-dir", str(models_dir), "--no-teacher") as (base, process):
        health = wait_healthy(base, process=process)
        assert health["models_loaded"] == ["tiny-a"]  # the newest is preloaded by default
        answer = httpx.post(f"{base}/api/embed", json={"model": "tiny-b", "input": "over IPv6"})
        assert answer.status_code == 200 and len(answer.json()["embedding"]) == 16


def test_python_m_serve_refuses_an_unknown_model(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "serve", "--model", "missing", "--models-dir", str(tmp_path)],
                          cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2 and "no finished model 'missing'" in done.stderr


def test_who_may_see_a_model_is_asked_again_only_after_the_visibility_window(models_dir: Path, monkeypatch) -> None:
    """A public studio's check reads a file per model: not at every request, but within seconds of a change."""
    import core.serving.service as service

    monkeypatch.setattr(service, "VISIBILITY_SECONDS", 0.5)
    shared = {"tiny-a": True, "tiny-b": False}
    asked: list[str] = []

    def visible(folder: ModelFolder) -> bool:
        asked.append(folder.id)
        return shared[folder.id]

    registry = ModelRegistry(models_dir=models_dir, teacher=None, visible=visible)
    assert [m.key for m in registry.served()] == ["tiny-a"]
    assert [m.key for m in registry.served()] == ["tiny-a"] and sorted(asked) == ["tiny-a", "tiny-b"]  # once each
    shared["tiny-b"] = True  # its owner shares it
    time.sleep(0.6)
    assert [m.key for m in registry.served()] == ["tiny-a", "tiny-b"] and len(asked) == 4
