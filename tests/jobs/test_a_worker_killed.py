"""A worker killed mid-job: the job reads as "interrupted" once its heartbeat goes stale.

This module starts and kills its OWN consumer, so it must not share the queue with the session
`consumer` fixture (two consumers would race for the task). It never requests that fixture, and it
runs before any module that starts it: conftest.py's `pytest_collection_modifyitems` moves this
module's tests to the front of every run (its name, `test_a_…`, also sorts first in tests/jobs/).
"""

from __future__ import annotations

import os
import signal
import time

import helpers
import pytest

from core import settings
from core.corpus.sources import load_catalogue
from core.methods.vocabulary import VocabularyParams
from jobs.client import submit
from jobs.queue import huey
from jobs.status import STALE_AFTER, _key, job_alive, read_status, worker_alive
from jobs.worker import start_consumer, stop_consumer, wait_for_worker

pytestmark = pytest.mark.slow  # a consumer, a distillation, a kill and a stale heartbeat


@pytest.fixture(scope="module")
def own_consumer(data_dir):
    if worker_alive():
        pytest.fail("Another consumer already serves this test queue (the session `consumer` fixture?); "
                    "run this module before the job tests, or alone.")
    process = start_consumer(data_dir / "killed-consumer.log")
    try:
        assert wait_for_worker(60), (data_dir / "killed-consumer.log").read_text()
        yield process
    finally:
        stop_consumer(process)  # a no-op once the test has killed it
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


def test_killed_worker_leaves_an_interrupted_job_and_no_model(own_consumer):
    recipe = helpers.small_recipe("killed", corpus_size=3000,
                                  distill=VocabularyParams(pca_dims=64, max_vocabulary_size=3000, min_frequency=2))
    job_id = submit(recipe, load_catalogue())["job_id"]

    deadline = time.time() + 120
    status = read_status(job_id)
    while time.time() < deadline:
        status = read_status(job_id)
        if status.get("stage") == "distill" or status["state"] not in ("queued", "running"):
            break
        time.sleep(0.1)
    assert status["state"] == "running" and status["stage"] == "distill", status
    assert job_alive(job_id)

    os.killpg(own_consumer.pid, signal.SIGKILL)  # the consumer and its worker process, no clean-up
    own_consumer.wait(10)
    killed_at = time.time()
    last_beat = huey.get(f"{_key(job_id)}:alive", peek=True)
    assert last_beat is not None and last_beat <= killed_at
    if killed_at - last_beat < STALE_AFTER - 2:  # a fresh heartbeat: not declared dead at once
        assert read_status(job_id)["state"] == "running"

    deadline = killed_at + STALE_AFTER + 10
    while time.time() < deadline:
        status = read_status(job_id)
        if status["state"] != "running":
            break
        time.sleep(0.5)
    assert status["state"] == "interrupted", status
    assert huey.get(f"{_key(job_id)}:alive", peek=True) == last_beat  # nobody beats for it any more
    assert time.time() - last_beat >= STALE_AFTER  # not declared dead while its heartbeat was fresh
    assert "worker" in status["error"] and "Resume it" in status["error"]
    assert read_status(job_id)["state"] == "interrupted"  # reading does not consume

    models = settings.models_dir()
    assert not (models / job_id).exists()
    assert [p.name for p in models.iterdir() if p.name.startswith(".")] == []
    assert huey.pending_count() == 0  # the killed task is not waiting to run again


def test_submit_without_a_worker_warns_and_the_job_can_be_cancelled(own_consumer):
    # runs after the kill above: no consumer serves the queue now, and its heartbeat has gone stale
    from jobs.client import cancel

    assert not worker_alive()
    status = submit(helpers.small_recipe("no-worker"), load_catalogue())
    assert status["state"] == "queued"
    assert "No worker is running" in status["warning"]
    assert cancel(status["job_id"])["state"] == "cancelled"
    assert huey.is_revoked(status["task_id"])  # a worker started later will skip it
