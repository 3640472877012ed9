"""core.encoders.endpoint against real servers on loopback: the project's own embeddings service
serving the bundled MiniLM (through its OpenAI route and its Ollama route), the same service made
unreliable (10% of requests answer 429 or 500, some slowly), and small servers that answer wrongly
on purpose (a dimension that varies, NaN, the wrong count, not JSON)."""

from __future__ import annotations

import json
import secrets
import time
from collections import Counter
from dataclasses import replace

import helpers
import numpy as np
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from core.encoders.endpoint import EndpointClient, EndpointEncoder, EndpointSpec, endpoint_teacher, estimate_cost
from core.encoders.teacher import TeacherEncoder, resolve_teacher, teacher_encoder
from core.errors import DistilleryError
from core.keyring import holding

KEY_ENV, KEY = helpers.ENDPOINT_KEY_ENV, helpers.ENDPOINT_KEY
TEXTS = [f"Sentence {i}: the {w} service answers {i % 7} questions about {w}." for i in range(30)
         for w in ("billing", "weather")]


def spec(url: str, kind: str = "openai", **fields) -> EndpointSpec:
    return EndpointSpec(kind=kind, url=url, model="teacher", api_key_env=KEY_ENV, **fields)


@pytest.mark.slow  # starts the service with the teacher
@pytest.mark.parametrize("kind", ["openai", "ollama"])
def test_both_routes_give_the_local_teachers_vectors(endpoint_service: str, kind: str) -> None:
    info = endpoint_teacher(spec(endpoint_service, kind, batch_size=16, concurrency=3))
    assert info.dimension == 384 and info.name == f"{kind}:teacher" and not info.has_weights
    assert info.endpoint is not None and KEY not in json.dumps(info.to_dict())
    encoder = teacher_encoder(info)
    assert isinstance(encoder, EndpointEncoder)
    got = encoder.encode(TEXTS)
    expected = TeacherEncoder(resolve_teacher(None)).encode(TEXTS)
    np.testing.assert_allclose(got, expected, atol=1e-5)  # batches differ, so padding differs by ~1e-7
    assert encoder.client.stats.requests == 4 and encoder.client.stats.retries == 0  # 60 texts in batches of 16
    # The Encoder contract: an empty text is a zero row, and no request is made for it.
    rows = encoder.encode_queries(["", TEXTS[0]])
    assert not rows[0].any() and abs(np.linalg.norm(rows[1]) - 1) < 1e-5
    # Caches are keyed by endpoint and model: another route is another teacher.
    other = endpoint_teacher(spec(endpoint_service, "ollama" if kind == "openai" else "openai"))
    assert other.fingerprint != info.fingerprint


@pytest.mark.slow
def test_prefixes_are_prepended_as_prompts_are(endpoint_service: str) -> None:
    info = endpoint_teacher(spec(endpoint_service, query_prefix="query: ", document_prefix="passage: "))
    assert info.prompts == {"query": "query: ", "document": "passage: "}
    encoder = EndpointEncoder(info)
    local = TeacherEncoder(resolve_teacher(None))
    np.testing.assert_allclose(encoder.encode_queries(TEXTS[:4]), local.encode([f"query: {t}" for t in TEXTS[:4]]),
                               atol=1e-5)
    np.testing.assert_allclose(encoder.encode(TEXTS[:4]), local.encode([f"passage: {t}" for t in TEXTS[:4]]),
                               atol=1e-5)


@pytest.mark.slow
def test_unreliable_server_gives_the_same_vectors(endpoint_service: str, unreliable_endpoint) -> None:
    url, door = unreliable_endpoint
    before = door.seen["429"] + door.seen["500"]
    reliable = EndpointClient(spec(endpoint_service, batch_size=2, concurrency=4)).embed(TEXTS)
    client = EndpointClient(spec(url, batch_size=2, concurrency=4))
    got = client.embed(TEXTS)
    np.testing.assert_array_equal(got, reliable)  # the same batches, so the same bytes
    assert door.seen["429"] + door.seen["500"] - before == client.stats.retries > 0
    assert client.stats.requests == 30 + client.stats.retries


@pytest.mark.slow
def test_wrong_or_missing_key_is_refused_clearly(endpoint_service: str, monkeypatch) -> None:
    wrong = f"sk-wrong-{secrets.token_hex(8)}"
    monkeypatch.setenv(KEY_ENV, wrong)
    with pytest.raises(DistilleryError, match=rf"refused the API key \(HTTP 401\): check the key in {KEY_ENV}") as err:
        endpoint_teacher(spec(endpoint_service))
    assert wrong not in str(err.value)
    keyless = EndpointSpec(kind="openai", url=endpoint_service, model="teacher")
    with pytest.raises(DistilleryError, match="type it in the Recipe tab.s API key field, or name an environment variable"):
        endpoint_teacher(keyless)
    with holding({keyless.fingerprint(): wrong}), pytest.raises(DistilleryError, match="check the key typed in"):
        endpoint_teacher(keyless)
    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(DistilleryError, match=f"{KEY_ENV} .* is not set"):
        endpoint_teacher(spec(endpoint_service))


@pytest.mark.slow
def test_a_key_typed_in_the_page_is_held_for_its_endpoint_only(endpoint_service: str) -> None:
    """A held key opens the endpoint whose fingerprint it was typed for, in the holding context only,
    and the client keeps it for its pool threads (which run outside that context)."""
    keyless = EndpointSpec(kind="openai", url=endpoint_service, model="teacher")
    other = EndpointSpec(kind="ollama", url=endpoint_service, model="teacher")
    with holding({keyless.fingerprint(): KEY}):
        assert keyless.api_key() == KEY and other.api_key() is None
        client = EndpointClient(replace(keyless, batch_size=4, concurrency=3))
    assert keyless.api_key() is None
    try:
        vectors = client.embed(TEXTS[:12])  # three batches in flight on the pool, after the block
    finally:
        client.close()
    assert vectors.shape == (12, 384)


@pytest.mark.slow
def test_unknown_model_names_the_problem(endpoint_service: str) -> None:
    with pytest.raises(DistilleryError, match="HTTP 400.*no model 'nope'"):
        endpoint_teacher(EndpointSpec(kind="openai", url=endpoint_service, model="nope", api_key_env=KEY_ENV))


def test_unreachable_url_fails_at_once(monkeypatch) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)  # the key is checked before the request
    url = f"http://127.0.0.1:{helpers.free_port()}"
    started = time.monotonic()
    with pytest.raises(DistilleryError, match=f"Could not reach the OpenAI-compatible endpoint.*{url}"):
        endpoint_teacher(spec(url))
    assert time.monotonic() - started < 5


def broken_app(mode: str) -> FastAPI:
    """An OpenAI-shaped server that answers wrongly in one way (`mode`)."""
    app = FastAPI()
    calls = Counter[str]()

    @app.post("/v1/embeddings")
    async def embed(request: Request):
        texts = (await request.json())["input"]
        calls["n"] += 1
        dim = 4 if mode != "dimension-later" or calls["n"] == 1 else 5
        rows = [[0.5] * (dim + (i % 2 if mode == "dimension" else 0)) for i in range(len(texts))]
        if mode == "nan":
            return Response('{"data": [' + ",".join(f'{{"index": {i}, "embedding": [NaN, 1.0, 0.0, 0.0]}}'
                                                     for i in range(len(texts))) + "]}", media_type="application/json")
        if mode == "count":
            rows = rows[:-1]
        if mode == "html":
            return Response("<html>gateway</html>", media_type="text/html")
        if mode == "bad-request":
            return JSONResponse({"error": {"message": "input too long"}}, status_code=400)
        return {"data": [{"index": i, "embedding": row} for i, row in enumerate(rows)]}

    return app


@pytest.mark.parametrize("mode, message", [
    ("dimension", "varying dimension \\(4, 5\\) in one reply"),
    ("dimension-later", "varying dimension: 4 when it was checked, 5 now"),
    ("nan", "NaN or infinite"),
    ("count", "returned 1 vectors for 2 texts"),
    ("html", "not JSON"),
    ("bad-request", "HTTP 400: input too long"),
])
def test_bad_replies_are_refused_with_a_reason(mode: str, message: str) -> None:
    with helpers.running(broken_app(mode)) as url:
        client = EndpointClient(EndpointSpec(kind="openai", url=url + "/v1", model="m", batch_size=2, concurrency=1,
                                             max_retries=0))
        with pytest.raises(DistilleryError, match=message):
            client.embed(["a", "b", "c", "d"])
        assert client.stats.retries == 0  # a wrong reply is not retried: asking again gives the same


def test_rate_limit_spaces_requests() -> None:
    with helpers.running(broken_app("fine")) as url:
        client = EndpointClient(EndpointSpec(kind="openai", url=url, model="m", batch_size=1, concurrency=4,
                                             requests_per_minute=600))
        started = time.monotonic()
        vectors = client.embed(["t"] * 6)
        assert vectors.shape == (6, 4)
        assert time.monotonic() - started >= 0.5  # six starts 0.1 s apart, whatever the concurrency


def test_spec_is_checked_and_never_holds_a_key() -> None:
    base = {"kind": "openai", "url": "https://api.example.com/v1", "model": "m"}
    assert EndpointSpec.from_dict(base).route_url == "https://api.example.com/v1/embeddings"
    assert EndpointSpec.from_dict({**base, "url": "http://h:8080/embed", "kind": "tei"}).route_url == "http://h:8080/embed"
    assert EndpointSpec.from_dict({**base, "url": "http://h:11434", "kind": "ollama"}).route_url == "http://h:11434/api/embed"
    assert EndpointSpec.from_dict(base).batch == 256 and EndpointSpec.from_dict({**base, "kind": "tei"}).batch == 32
    with pytest.raises(DistilleryError, match="never holds an API key"):
        EndpointSpec.from_dict({**base, "api_key": "sk-123"})
    with pytest.raises(DistilleryError, match="never the key itself"):
        EndpointSpec.from_dict({**base, "api_key_env": "sk-abc-123"})
    with pytest.raises(DistilleryError, match="must not carry credentials"):
        EndpointSpec.from_dict({**base, "url": "https://user:secret@api.example.com"})
    with pytest.raises(DistilleryError, match="between 1 and 2048"):
        EndpointSpec.from_dict({**base, "batch_size": 5000})
    with pytest.raises(DistilleryError, match="Unknown endpoint kind"):
        EndpointSpec.from_dict({**base, "kind": "grpc"})
    with pytest.raises(DistilleryError, match="needs the model's name"):
        EndpointSpec.from_dict({**base, "model": ""})


def test_cost_estimate_counts_texts_tokens_and_requests() -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(resolve_teacher(None).source)
    endpoint = EndpointSpec(kind="openai", url="http://h", model="m", batch_size=16, document_prefix="passage: ")
    cost = estimate_cost(endpoint, TEXTS, tokenizer)
    expected = sum(len(tokenizer(f"passage: {t}", add_special_tokens=False)["input_ids"]) for t in TEXTS)
    assert (cost.texts, cost.tokens, cost.requests, cost.concurrency) == (60, expected, 4, 4)
    assert "60 texts" in cost.sentence(endpoint.title) and "4 requests" in cost.sentence(endpoint.title)
