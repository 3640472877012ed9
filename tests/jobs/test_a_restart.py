"""The app and the worker restarted while one job runs and two wait: nothing a user had is lost.

Real processes on a data folder of this test's own (`DISTILLERY_DATA_DIR`, so the session queue and
its consumer are never touched, and this module need not be in conftest's RUNS_FIRST): the studio is
`app.py --no-worker` as a subprocess, driven through gradio_client and its embeddings routes, and
the consumer is started and stopped with `jobs.worker`. Both are stopped (SIGTERM, as a container
stop or Ctrl-C does) while the second of four small jobs runs; the studio comes back first, so the
queue can be read before a worker takes from it, then the worker.

The jobs distil a tiny random teacher (one 32-wide layer, the default teacher's tokenizer) from the
data folder's `teachers/`: model2vec embeds every token of the vocabulary, which takes the real
teacher 15 s on an idle 2-core machine and minutes on a busy one, and five runs of it would be most
of this test's time.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import helpers
import httpx
import pytest
from gradio_client import Client

from core.settings import REPO_ROOT
from jobs.recovery import RETRY_MARK
from jobs.status import STALE_AFTER
from jobs.worker import start_consumer, stop_consumer
from ui import jobs_tab

pytestmark = pytest.mark.slow  # a studio and a consumer, each started twice, and five small distillations

JOB_TIMEOUT = 300  # one small job takes under 10 s on an idle 2-core machine; others' tests share it
TEACHER = "tiny"
DIMS = 16
ENDED = ("done", "failed", "cancelled")


def tiny_teacher(teachers: Path) -> None:
    """A random one-layer BERT with the default teacher's tokenizer, as `teachers/tiny` (studio users
    name a local teacher by its folder there)."""
    import shutil

    from transformers import BertConfig, BertModel

    from core.encoders.teacher import resolve_teacher

    source = Path(resolve_teacher(None).source)
    shutil.copytree(source, teachers / TEACHER, ignore=shutil.ignore_patterns("model.safetensors", "*.md", ".git*"))
    config = BertConfig.from_pretrained(source, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                        intermediate_size=64)
    BertModel(config).save_pretrained(teachers / TEACHER)


class Site:
    """The studio and the consumer of one data folder, started and stopped as a restart does."""

    def __init__(self, data: Path) -> None:
        self.data = data
        self.env = {"DISTILLERY_DATA_DIR": str(data), "DISTILLERY_AUTO_RETRIES": "1"}  # the product's default
        self.studio: subprocess.Popen | None = None
        self.consumer: subprocess.Popen | None = None
        self.url = ""

    def start_consumer(self) -> None:
        self.consumer = start_consumer(self.data / "consumer.log", env=self.env)

    def start_studio(self) -> Client:
        """`app.py --no-worker` on a free port; returns a client once the studio answers."""
        port = helpers.free_port()
        env = {**os.environ, **self.env}
        env.pop("DISTILLERY_API_KEY", None)  # the embeddings routes answer without a key
        with open(self.data / "studio.log", "ab") as log:
            self.studio = subprocess.Popen([sys.executable, "app.py", "--no-worker", "--port", str(port)],
                                           cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                           start_new_session=True)
        self.url = f"http://127.0.0.1:{port}/"
        deadline = time.time() + 180
        while time.time() < deadline:
            assert self.studio.poll() is None, (self.data / "studio.log").read_text()
            try:
                if httpx.get(self.url, timeout=5).status_code == 200:
                    return Client(self.url, verbose=False)
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise AssertionError(f"the studio did not answer: {(self.data / 'studio.log').read_text()}")

    def stop_consumer(self) -> None:
        """SIGTERM to its process group (`jobs.worker.stop_consumer`): the running task is interrupted."""
        if self.consumer is not None:
            stop_consumer(self.consumer)

    def stop(self) -> None:
        """Stop both, the consumer first (app.py turns SIGTERM into Ctrl-C)."""
        self.stop_consumer()
        if self.studio is not None and self.studio.poll() is None:
            self.studio.send_signal(signal.SIGTERM)
            try:
                self.studio.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.studio.pid, signal.SIGKILL)
                self.studio.wait(10)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    data = tmp_path / "data"
    tiny_teacher(data / "teachers")
    running = Site(data)
    try:
        yield running
    finally:
        running.stop()


def submit(app: Client, site: Site, name: str) -> str:
    # By its folder's name in the data folder's teachers/, as a studio user names it: the studio
    # records the folder it found, so the worker does not look for "tiny" on the Hub.
    form = helpers.recipe_form(name=name, teacher=TEACHER, corpus_size=200, pca_dims=DIMS)
    message = app.predict(*form, api_name="/submit_recipe")
    match = re.search(r"Submitted job `([^`]+)`", message)
    assert match, message
    return match.group(1)


def wait_for(app: Client, job_id: str, until: Callable[[dict[str, Any]], bool], what: str,
             timeout: float = JOB_TIMEOUT) -> dict[str, Any]:
    """Poll `/job_status` (what scripts poll) until `until(status)`; returns that status. A job that
    ends first fails at once (an interrupted one has not ended: it is queued again)."""
    deadline, status = time.time() + timeout, {}
    while time.time() < deadline:
        status = app.predict(job_id, api_name="/job_status")
        if until(status):
            return status
        assert status["state"] not in ENDED, f"{job_id} ended before {what}: {status}"
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; last status: {status}")


def history(app: Client) -> list[tuple[str, str, int | None]]:
    """The Jobs tab's list through `/jobs`: (job id, state, place in the queue), newest first."""
    return [(j["job_id"], j["state"], j.get("position")) for j in app.predict(api_name="/jobs")]


def test_a_restart_keeps_history_queue_models_and_progress(site: Site):
    site.start_consumer()
    app = site.start_studio()
    done, running, first, second = (submit(app, site, f"restart-{n}") for n in ("done", "running", "first", "second"))
    wait_for(app, done, lambda s: s["state"] == "done", "the first job to finish")
    wait_for(app, running, lambda s: s["state"] == "running" and s.get("stage") == "distill",
             "the second job to distil")
    site.stop_consumer()  # while `running` distils and `first`, `second` wait
    before = history(app)
    assert before == [(second, "queued", 2), (first, "queued", 1), (running, "running", None), (done, "done", None)]
    site.stop()
    assert not (site.data / "models" / running).exists()
    # Only the running task was cut: its worker took no queued job on its way out (`jobs.tasks.stop_taking_tasks`).
    assert (site.data / "consumer.log").read_text().count("did not finish") == 1

    # The studio alone: the queue is read before any worker takes from it.
    app = site.start_studio()
    assert history(app)[:2] == before[:2] and [j for j, _, _ in history(app)] == [j for j, _, _ in before]
    for job_id, line in ((first, "queued · 1st in line"), (second, "queued · 2nd in line")):
        status = app.predict(job_id, api_name="/job_status")
        assert line in jobs_tab._bar(status), status  # what the Jobs tab shows above its table
        assert dict(zip(jobs_tab.JOB_COLUMNS, jobs_tab._job_row(status)))["stage"] == line.split(" · ")[1]
    interrupted = wait_for(app, running, lambda s: s["state"] == "interrupted", "the cut job to read as interrupted",
                           timeout=STALE_AFTER + 30)
    assert "Resume it" in interrupted["error"]
    assert app.predict(done, api_name="/job_status")["state"] == "done"
    assert done in {m["name"] for m in httpx.get(f"{site.url}api/tags", timeout=30).json()["models"]}
    answer = httpx.post(f"{site.url}api/embed", json={"model": done, "input": "a restart"}, timeout=120)
    assert answer.status_code == 200 and len(answer.json()["embedding"]) == DIMS, answer.text  # it loads

    # The worker: the cut job is queued again once, automatically, and shows its progress again.
    site.start_consumer()
    retried = wait_for(app, running, lambda s: s["state"] == "running" and s.get("overall", 0) > 0
                       and s.get("steps"), "the cut job to run again", 3 * JOB_TIMEOUT)  # after the other two
    assert retried["auto_retries"] == 1 and retried["resumes"] == 1
    assert (site.data / "jobs" / running / f"{RETRY_MARK}1").exists()
    assert "of the job" in jobs_tab._bar(retried) and "▶" in jobs_tab._bar(retried)
    ended = {job_id: wait_for(app, job_id, lambda s: s["state"] == "done", f"{job_id} to finish")
             for job_id in (first, second, running)}
    assert ended[first]["started"] < ended[second]["started"]  # taken from the queue in the order submitted
    assert [(j, s) for j, s, _ in history(app)] == [(j, "done") for j, _, _ in before]
    served = {m["name"] for m in httpx.get(f"{site.url}api/tags", timeout=30).json()["models"]}
    assert {done, running, first, second} <= served


def test_an_interrupted_task_ends_its_worker():
    """The exit signal that cut a task leaves huey's worker loop instead of being swallowed there; in the
    restart above this depends on which process the signal reaches first, here it does not."""
    from jobs.queue import huey

    @huey.task()
    def cut_by_the_exit_signal() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        huey.execute(cut_by_the_exit_signal.s())  # huey catches it, signals SIGNAL_INTERRUPTED; that raises it again
