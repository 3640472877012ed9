"""core.serving.compare on a real distilled model: a moved folder still compares over its own collection,
the Compare tab's session cache stays bounded (least recently used dropped), and a session opened in
the background is the one a search meanwhile gets."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from core import settings
from core.artifact.folder import ModelFolder
from core.errors import DistilleryError
from core.serving.collection import embed_collection
from core.serving.compare import CompareSession, CompareSessions

pytestmark = pytest.mark.slow  # the session's small distilled model, and the teacher


class _CacheOnly:
    """An encoder that may only be answered from the embedding cache."""

    label = "cache only"

    def __init__(self, fingerprint: str) -> None:
        self.fingerprint = fingerprint

    def encode(self, texts):
        raise AssertionError("the collection's embeddings should have come from the cache")

    encode_queries = encode


def test_a_moved_model_opens_in_compare_with_its_collection(small_model, tmp_path):
    original = ModelFolder.at(small_model.path)
    texts = original.collection()
    assert len(texts) == 40
    moved = tmp_path / "somewhere" / "else" / "renamed-model"
    shutil.copytree(small_model.path, moved)
    graveyard = tmp_path / "deleted-job"
    shutil.move(small_model.job_dir, graveyard)  # the job folder that made the model is gone
    try:
        folder = ModelFolder.at(moved)
        assert folder.id == original.id and folder.path == moved
        assert not Path(folder.record.job_dir).exists()
        assert folder.collection() == texts  # the collection travelled inside the folder

        session = CompareSession.open(folder)
        assert session.texts == texts
        assert session.student.folder == moved  # the moved copy's weights, not the original's
        assert len(session.teacher_index) == len(session.student_index) == len(texts)
        for query in (texts[3], texts[17]):
            result = session.search(query, k=5)
            assert result.teacher[0].text == result.student[0].text == query  # a text finds itself first
            assert result.teacher[0].score == pytest.approx(1.0, abs=1e-3)
            assert {h.text for h in result.teacher + result.student} <= set(texts)
            assert 1 <= result.overlap <= 5
        # The teacher's side was computed by the worker when the model was made, and is found by content.
        cached = embed_collection(_CacheOnly(session.teacher_encoder.fingerprint), texts, settings.cache_dir())
        assert np.array_equal(cached, session.teacher_index.matrix)
    finally:
        shutil.move(graveyard, small_model.job_dir)


def test_the_session_cache_stays_bounded_and_drops_the_least_recently_used(small_model):
    folder = ModelFolder.at(small_model.path)
    collections = [[f"collection {name}: text {i} about {topic}" for i, topic in
                    enumerate(("python files", "court appeals", "tomato soup", "flight delays"))]
                   for name in ("a", "b", "c")]
    cache = CompareSessions(max_sessions=2)
    a = cache.get(folder, collections[0])
    b = cache.get(folder, collections[1])
    assert len(cache) == 2 and a is not b
    assert (a.texts, b.texts) == (collections[0], collections[1])
    assert cache.get(folder, collections[0]) is a  # a repeated get: the same session; `a` is now the most recent

    c = cache.get(folder, collections[2])
    assert len(cache) == 2 and c.texts == collections[2]
    assert cache.get(folder, collections[0]) is a  # kept: used more recently than `b`
    assert cache.get(folder, collections[2]) is c
    again = cache.get(folder, collections[1])  # `b` was dropped: a new session is built
    assert again is not b and again.texts == b.texts
    assert len(cache) == 2
    assert cache.get(folder, collections[0]) is not a  # `a` was the least recently used when `b` came back
    assert len(cache) == 2


def test_a_session_opens_in_the_background_and_a_search_meanwhile_joins_it(small_model):
    folder = ModelFolder.at(small_model.path)
    cache = CompareSessions()
    assert not cache.is_open(folder)
    opening = cache.open_in_background(folder)
    session = cache.get(folder)  # a search while it opens waits for that build instead of starting another
    assert opening.wait(120) and opening.error is None
    assert opening.session is session and cache.is_open(folder) and len(cache) == 1
    assert opening.message == "ready"
    again = cache.open_in_background(folder)  # choosing the model again: the open session, at once
    assert again.wait(30) and again.session is session and len(cache) == 1


def test_the_opening_reports_each_step(small_model):
    seen: list[str] = []
    CompareSession.open(ModelFolder.at(small_model.path), progress=lambda stage, fraction, message="": seen.append(message))
    assert seen[0] == "loading the student" and seen[-1] == "ready"
    assert any(m.startswith("loading the teacher") for m in seen)
    assert "embedding the 40 texts of the collection with the teacher" in seen


def test_a_session_that_cannot_open_hands_its_error_to_the_poller(small_model, tmp_path):
    broken = tmp_path / "no-collection"
    shutil.copytree(small_model.path, broken)
    (broken / "collection.json").unlink()
    folder = ModelFolder.at(broken)
    folder.record.job_dir = None  # nowhere else to find the corpus sample
    cache = CompareSessions()
    opening = cache.open_in_background(folder)
    assert opening.wait(60) and opening.session is None
    assert isinstance(opening.error, DistilleryError) and "paste texts instead" in str(opening.error)
    assert not cache.is_open(folder)
