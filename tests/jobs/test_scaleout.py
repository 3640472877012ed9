"""Scale-out: a corpus-method job's teacher pass fanned out over two consumers on Redis (`jobs.shards`),
one of them SIGKILLed in the middle of a shard.

Everything that talks to the queue runs in subprocesses bound to Redis (`jobs.queue` binds its huey
instance at import, and this test process is bound to the SQLite queue of the other tests): two
consumers, and a watcher that submits the job, finds a shard held by the consumer that is not running
the job, once that consumer has written a shard already, reports it (the test kills that consumer),
then waits for the job to end. Its own data
folder and queue: it never meets the session consumer.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import helpers
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
TESTS = ROOT / "tests"
SHARD_ROWS = 128  # a multiple of the CPU teacher batch (64): shard boundaries never change a batch
CORPUS = 1500  # 12 shards
LEASE = 4.0

WATCH = """
import json, sys, time
import numpy as np
from helpers import small_recipe
from core import settings
from core.corpus.build import Corpus
from core.corpus.sources import load_catalogue
from core.encoders.teacher import resolve_teacher
from core.methods.corpus import CorpusParams
from core.methods.featurize import shard_key
from core.methods.training import TrainParams
from jobs.client import submit
from jobs.shards import lease_holder
from jobs.status import read_status, live_consumers

def say(**fields):
    print(json.dumps(fields), flush=True)

recipe = small_recipe("scaleout", corpus_size=%(corpus)d, method="corpus",
                      distill=CorpusParams(pca_dims=32, max_vocabulary_size=100, min_frequency=2,
                                           training=TrainParams(epochs=2)))
job = submit(recipe, load_catalogue())["job_id"]
say(job_id=job, consumers=live_consumers())
folder = settings.jobs_dir() / job / "corpus-method" / "targets"
deadline = time.time() + 300
while not (folder / "order.npy").exists() or not (read_status(job) or {}).get("worker"):
    assert time.time() < deadline and read_status(job)["state"] in ("queued", "running"), read_status(job)
    time.sleep(0.05)
teacher = resolve_teacher(None)
texts = Corpus.load(settings.jobs_dir() / job / "corpus").texts()
order = np.load(folder / "order.npy")
shards = -(-len(texts) // %(rows)d)
keys = [shard_key(teacher.fingerprint, teacher.prompts.get("document"),
                  [texts[i] for i in order[s * %(rows)d:(s + 1) * %(rows)d]]) for s in range(shards)]
job_worker = read_status(job)["worker"]
def on_disk(s):
    return (folder / f"targets_{s:05d}.npy").exists()

victim, held = None, {}  # shards seen held by the other consumer: it is killed in its second one
while victim is None:
    assert time.time() < deadline and read_status(job)["state"] == "running", read_status(job)
    for s in range(shards):
        holder = lease_holder(keys[s])
        if holder and holder != job_worker and not on_disk(s):
            if any(h == holder and t != s and on_disk(t) for t, h in held.items()):
                victim = (holder, s)
                break
            held[s] = holder
    time.sleep(0.02)
say(kill=victim[0], shard=victim[1], job_worker=job_worker, texts=len(texts))
while read_status(job)["state"] in ("queued", "running"):
    assert time.time() < deadline, read_status(job)
    time.sleep(0.5)
say(status=read_status(job))
"""


LEASES = """
import json, threading, time
import jobs.shards as shards

me = threading.local()
shards.worker_identity = lambda: me.name  # two workers in one process: one thread each
won = []
for n in range(300):  # two takers released in the same instant, on a fresh shard each time
    start = threading.Barrier(2)
    def race(name):
        me.name = name
        start.wait()
        if shards.take_lease(f"race-{n}"):
            won.append((n, name))
    threads = [threading.Thread(target=race, args=(name,)) for name in ("a", "b")]
    [t.start() for t in threads]
    [t.join() for t in threads]
me.name = "a"
holder = {n: shards.lease_holder(f"race-{n}") for n in range(3)}
held = shards.take_lease("k")
me.name = "b"
refused, seen = shards.take_lease("k"), shards.lease_holder("k")
time.sleep(1.6)  # past the lease, never renewed: Redis expired it
taken_after_expiry = shards.take_lease("k")
assert shards.take_lease("renewed")
with shards.holding("renewed"):
    time.sleep(2.5)  # longer than the lease: renewals keep it
    renewed = shards.lease_holder("renewed")
released = shards.lease_holder("renewed")
print(json.dumps({"won": won, "holder": holder, "held": held, "refused": refused, "seen": seen,
                  "taken_after_expiry": taken_after_expiry, "renewed": renewed, "released": released}))
"""


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed (.ci/run installs it)")
def test_a_shard_lease_goes_to_exactly_one_of_two_takers_and_expires_in_redis(tmp_path):
    """The lease is one atomic `SET NX PX`: of two workers asking in the same instant exactly one holds
    the shard (a get-then-put lets both encode it, in lock step, for the rest of the job)."""
    with helpers.redis_server(tmp_path) as url:
        env = {**os.environ, "DISTILLERY_REDIS_URL": url, "DISTILLERY_DATA_DIR": str(tmp_path / "data"),
               "DISTILLERY_SHARD_LEASE": "1.0", "PYTHONPATH": f"{ROOT}:{TESTS}"}
        done = subprocess.run([sys.executable, "-c", LEASES], cwd=TESTS, env=env, capture_output=True, text=True,
                              timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    winners: dict[int, list[str]] = {}
    for n, name in found["won"]:
        winners.setdefault(n, []).append(name)
    assert sorted(winners) == list(range(300)) and all(len(w) == 1 for w in winners.values())
    assert {w[0] for w in winners.values()} == {"a", "b"}  # both do win races: it is not one fixed order
    assert all(found["holder"][str(n)] == winners[n][0] for n in range(3))
    assert found["held"] and not found["refused"] and found["seen"] == "a"
    assert found["taken_after_expiry"]
    assert found["renewed"] == "b" and found["released"] is None


@pytest.mark.slow  # a Redis server, two consumers, a kill and two distillations
@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed (.ci/run installs it)")
def test_a_consumer_killed_mid_shard_leaves_the_job_to_finish_with_the_single_consumer_model(tmp_path, monkeypatch):
    from model2vec import StaticModel

    from core.artifact.folder import RECORD_FILE
    from core.pipeline import run_recipe
    from core.recipe import Recipe
    from jobs.folders import RECIPE_FILE
    from jobs.worker import start_consumer, stop_consumer

    data = tmp_path / "data"
    data.mkdir()
    with helpers.redis_server(tmp_path) as url:
        env = {"DISTILLERY_REDIS_URL": url, "DISTILLERY_DATA_DIR": str(data), "DISTILLERY_SHARD_ROWS": str(SHARD_ROWS),
               "DISTILLERY_SHARD_LEASE": str(LEASE), "DISTILLERY_AUTO_RETRIES": "0"}
        consumers = [start_consumer(tmp_path / f"consumer-{n}.log", env=env) for n in (1, 2)]
        watcher = subprocess.Popen([sys.executable, "-c", WATCH % {"corpus": CORPUS, "rows": SHARD_ROWS}], cwd=TESTS,
                                   env={**os.environ, **env, "PYTHONPATH": f"{ROOT}:{TESTS}"},
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            lines = []
            for line in watcher.stdout:
                lines.append(json.loads(line))
                if "kill" in lines[-1]:
                    pid = int(lines[-1]["kill"].rpartition(":")[2])
                    victim = next(c for c in consumers if os.getpgid(pid) == c.pid)
                    os.killpg(victim.pid, signal.SIGKILL)  # the consumer and its worker, mid-shard
                    victim.wait(10)
                    killed_at = time.time()
            assert watcher.wait(30) == 0, watcher.stderr.read()[-3000:]
        finally:
            if watcher.poll() is None:
                watcher.kill()
            for consumer in consumers:
                stop_consumer(consumer)

    job_id, kill, status = lines[0]["job_id"], lines[1], lines[-1]["status"]
    assert status["state"] == "done", status
    survivor = kill["job_worker"]
    assert kill["kill"] != survivor and victim.returncode == -signal.SIGKILL
    shards = status["shards"]
    assert shards["done"] == shards["total"] == -(-kill["texts"] // SHARD_ROWS) > 2
    assert str(kill["shard"]) in shards["by"] and shards["by"][str(kill["shard"])] == survivor  # taken over
    assert {kill["kill"], survivor} <= set(shards["by"].values())  # both consumers embedded shards
    assert status["updated"] > killed_at + LEASE  # the job waited out the killed consumer's lease

    folder = data / "models" / job_id
    record = json.loads((folder / RECORD_FILE).read_text())
    assert record["training"]["featurize"] == {"shards": shards["total"], "reused_shards": 0,
                                               "texts_embedded": kill["texts"]}

    # The same recipe and seed in one process, without a queue: the same table, bit for bit.
    monkeypatch.setenv("DISTILLERY_SHARD_ROWS", str(SHARD_ROWS))
    monkeypatch.setenv("DISTILLERY_SHARD_LIBRARY", "off")  # its teacher embeds every shard itself
    recipe = Recipe.from_dict(json.loads((data / "jobs" / job_id / RECIPE_FILE).read_text()))
    run_recipe(recipe, tmp_path / "job", tmp_path / "model")
    fanned = np.asarray(StaticModel.from_pretrained(folder).embedding)
    single = np.asarray(StaticModel.from_pretrained(tmp_path / "model").embedding)
    assert fanned.shape == single.shape and np.array_equal(fanned, single)
