"""Evaluate with an endpoint teacher: mteb scores the teacher through HTTP (the project's own service
on loopback), the scores match the local teacher's, and they are cached by endpoint and model."""

from __future__ import annotations

import helpers
import pytest

from core.encoders.endpoint import EndpointSpec, endpoint_teacher
from core.encoders.teacher import resolve_teacher
from core.evaluation.scoring import teacher_scores
from core.evaluation.tasks import DEV_SUITE

LIMIT = 40
TASKS = tuple(t for t in DEV_SUITE if t.name in ("STSBenchmark", "MRPC"))


@pytest.mark.slow  # mteb runs the teacher twice, once over HTTP
def test_endpoint_teacher_scores_match_and_are_cached(endpoint_service: str) -> None:
    teacher = endpoint_teacher(EndpointSpec(kind="openai", url=endpoint_service, model="teacher",
                                            api_key_env=helpers.ENDPOINT_KEY_ENV))
    over_http = teacher_scores(teacher, TASKS, limit=LIMIT)
    assert over_http["cached"] == 0 and set(over_http["tasks"]) == {"STSBenchmark", "MRPC"}
    local = teacher_scores(resolve_teacher(None), TASKS, limit=LIMIT)
    for task, score in local["tasks"].items():
        assert over_http["tasks"][task] == pytest.approx(score, abs=0.05)
    assert teacher_scores(teacher, TASKS, limit=LIMIT)["cached"] == 2  # the endpoint is asked once
