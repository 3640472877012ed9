"""Smart routing: the signal, the shared space, the routed encoder with a real student and the real
teacher, and `NAME:routed` through the embeddings service."""

from __future__ import annotations

import helpers
import numpy as np
import pytest

from core.errors import DistilleryError
from core.serving.routing import (
    ALWAYS,
    NEVER,
    THRESHOLD_ENV,
    SharedSpace,
    threshold_from_env,
    unknown_word_share,
)

EASY = "the weather is nice today"
HARD = "zyxqwv plorbtaxe glimmerquatz snarfblatium"  # no whole word in any English vocabulary
LONG = " ".join(["a long passage about the weather, the sea and the wind over the hills"] * 2)  # 30 words


def test_unknown_word_share_counts_words_the_vocabulary_lacks() -> None:
    tokenizer = helpers.tiny_static_model().tokenizer
    shares = unknown_word_share(tokenizer, [EASY, HARD, "the plorbtaxe", "!!! ???"])
    assert shares.tolist() == [0.0, 1.0, 0.5, 0.0]  # punctuation is not a word; no words gives 0


def test_short_text_signal() -> None:
    from core.serving.routing import DEFAULT_THRESHOLD, word_count_signal

    assert (word_count_signal(None, [LONG, EASY]) > DEFAULT_THRESHOLD).tolist() == [False, True]


def test_shared_space_recovers_an_affine_map() -> None:
    rng = np.random.default_rng(0)
    source = rng.normal(size=(500, 8)).astype(np.float32)
    matrix = rng.normal(size=(8, 12)).astype(np.float32)
    offset = 5 * rng.normal(size=12).astype(np.float32)  # a shared direction longer than the rest
    target = source @ matrix + offset
    space = SharedSpace.fit(source, target, ridge=1e-6)
    expected = target / np.linalg.norm(target, axis=1, keepdims=True)
    assert np.allclose(space.apply(source), expected, atol=1e-3)
    # Through the origin, the same map cannot give back the shared direction.
    origin = SharedSpace.fit(source, target, ridge=1e-6, affine=False)
    assert not origin.offset.any()
    assert np.mean(np.sum(origin.apply(source) * expected, axis=1)) < 0.9
    assert space.digest != origin.digest
    with pytest.raises(DistilleryError, match="same texts"):
        SharedSpace.fit(source, expected[:10])


def test_threshold_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(THRESHOLD_ENV, raising=False)
    assert threshold_from_env(0.3) == 0.3
    for value, expected in (("0.15", 0.15), ("never", NEVER), ("ALWAYS", ALWAYS)):
        monkeypatch.setenv(THRESHOLD_ENV, value)
        assert threshold_from_env() == expected
    monkeypatch.setenv(THRESHOLD_ENV, "often")
    with pytest.raises(DistilleryError, match="not a number"):
        threshold_from_env()


@pytest.fixture(scope="module")
def teacher():
    from core.encoders.teacher import TeacherEncoder, resolve_teacher

    return TeacherEncoder(resolve_teacher(None), device="cpu")


@pytest.mark.slow
def test_routed_encoder_sends_hard_inputs_to_the_teacher(small_model, teacher) -> None:
    from core.encoders.student import StudentEncoder
    from core.serving.routing import open_routed

    routed = open_routed(small_model.path, teacher)  # the default: texts under 16 words go to the teacher
    texts = [LONG, HARD, LONG + " again"]
    answer = routed.route(texts)
    assert answer.routed.tolist() == [False, True, False] and answer.header == "1/3"
    assert answer.vectors.shape == (3, teacher.info.dimension)
    assert np.allclose(np.linalg.norm(answer.vectors, axis=1), 1, atol=1e-5)
    assert np.allclose(answer.vectors[1], teacher.encode_queries([HARD])[0], atol=1e-5)
    assert (routed.inputs_total, routed.routed_total) == (3, 1)

    # The extremes: never is the student (mapped into the shared space), always is the teacher.
    student = StudentEncoder.open(small_model.path)
    never = open_routed(small_model.path, teacher, threshold=NEVER).route(texts)
    assert not never.routed.any()
    assert np.allclose(never.vectors, routed.space.apply(student.encode_queries(texts)), atol=1e-5)
    always = open_routed(small_model.path, teacher, threshold=ALWAYS).route(texts)
    assert always.routed.all()
    assert np.allclose(always.vectors, teacher.encode_queries(texts), atol=1e-5)


@pytest.mark.slow
def test_service_serves_name_routed(small_model, monkeypatch: pytest.MonkeyPatch) -> None:
    from fastapi.testclient import TestClient

    from core.artifact.folder import ModelFolder
    from core.serving.service import ROUTED_HEADER, ModelRegistry, create_service

    monkeypatch.delenv(THRESHOLD_ENV, raising=False)
    folder = ModelFolder.at(small_model.path)
    client = TestClient(create_service(ModelRegistry([folder])))
    routed_name = f"{folder.id}:routed"
    assert routed_name in [m["name"] for m in client.get("/api/tags").json()["models"]]
    assert routed_name in [m["id"] for m in client.get("/v1/models").json()["data"]]

    reply = client.post("/api/embed", json={"model": routed_name, "input": [LONG, HARD, LONG + " again"]})
    assert reply.status_code == 200, reply.text
    assert reply.headers[ROUTED_HEADER] == "1/3"
    assert set(reply.json()) == {"model", "embeddings", "total_duration", "load_duration", "prompt_eval_count"}
    assert len(reply.json()["embeddings"]) == 3 and len(reply.json()["embeddings"][0]) == 384
    openai = client.post("/v1/embeddings", json={"model": f"{folder.record.name}:routed", "input": HARD})
    assert openai.status_code == 200 and openai.headers[ROUTED_HEADER] == "1/1"
    student = client.post("/api/embed", json={"model": folder.id, "input": HARD})
    assert ROUTED_HEADER not in student.headers  # plain models say nothing different

    monkeypatch.setenv(THRESHOLD_ENV, "always")  # read when the routed model loads: a fresh registry
    fresh = TestClient(create_service(ModelRegistry([folder])))
    assert fresh.post("/api/embed", json={"model": routed_name, "input": [LONG, LONG]}).headers[ROUTED_HEADER] == "2/2"
