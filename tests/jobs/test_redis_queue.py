"""Scale-out path: the same task through `RedisHuey` (DISTILLERY_REDIS_URL) with a real Redis server.

The submitting side runs in a subprocess because `jobs.queue` binds its huey instance at import,
and this test process is bound to the SQLite queue of the other tests.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import redis_server

ROOT = Path(__file__).resolve().parents[2]
TESTS = ROOT / "tests"
REDIS = shutil.which("redis-server")

SUBMIT_AND_WAIT = """
import json, time
from helpers import small_recipe
from core.corpus.sources import load_catalogue
from jobs.client import submit
from jobs.status import read_status
status = submit(small_recipe("redis"), load_catalogue())
deadline = time.time() + 240
while time.time() < deadline:
    status = read_status(status["job_id"])
    if status["state"] in ("done", "failed", "cancelled", "interrupted"):
        break
    time.sleep(1)
print(json.dumps(status))
"""


@pytest.fixture
def redis_url(tmp_path):
    with redis_server(tmp_path) as url:  # bound to loopback, waited for until it answers
        yield url


@pytest.mark.slow  # a Redis server, a consumer and a distillation
@pytest.mark.skipif(REDIS is None, reason="redis-server is not installed (.ci/run installs it)")
def test_job_runs_through_redis(redis_url, tmp_path):
    from jobs.worker import start_consumer, stop_consumer

    env = {**os.environ, "DISTILLERY_REDIS_URL": redis_url, "DISTILLERY_DATA_DIR": str(tmp_path)}
    consumer = start_consumer(tmp_path / "consumer.log", env=env)
    try:
        done = subprocess.run([sys.executable, "-c", SUBMIT_AND_WAIT], cwd=TESTS, env={
            **env, "PYTHONPATH": f"{ROOT}:{TESTS}"}, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        status = json.loads(done.stdout.strip().splitlines()[-1])
        assert status["state"] == "done", status
        assert (tmp_path / "models" / status["model_id"] / "model.safetensors").is_file()
        assert not (tmp_path / "queue.db").exists()  # nothing went through SQLite
    finally:
        stop_consumer(consumer)
