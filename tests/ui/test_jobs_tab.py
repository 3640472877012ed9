"""The Jobs tab keeps the user's choice, job rows keep their order, and the tabs' row-limit defaults
are accepted (issue 13's first two findings). No worker or server: statuses are written directly."""

from __future__ import annotations

import json
import shutil
import time

import pytest

from core.errors import DistilleryError
from core.evaluation.tasks import check_rows_per_task
from jobs import client
from jobs.folders import RECIPE_FILE, new_job_dir
from jobs.status import write_status
from ui import jobs_tab
from ui.forms import rows_limit


@pytest.fixture
def two_active_jobs():
    """Two queued jobs (folders and statuses, nothing on the queue), removed afterwards."""
    made = []
    for n, name in enumerate(("first-job", "second-job")):
        job_id, folder = new_job_dir(name)
        (folder / RECIPE_FILE).write_text(json.dumps({"name": name}))
        write_status(job_id, state="queued", task_id=f"none-{n}", name=name, stage="queued", fraction=0.0,
                     submitted=time.time() + n)  # the second is the newer
        made.append((job_id, folder))
    yield [job_id for job_id, _ in made]
    for job_id, folder in made:
        write_status(job_id, state="cancelled")
        shutil.rmtree(folder, ignore_errors=True)


def test_a_refresh_keeps_the_job_the_user_chose(two_active_jobs):
    first, second = two_active_jobs
    newest = jobs_tab.refresh(None)[3]
    assert newest.value == second  # nothing chosen: the newest active job
    assert jobs_tab.refresh(first)[3].value == first  # before the fix, every refresh reset it to the newest
    write_status(first, state="done")
    assert jobs_tab.refresh(first)[3].value == second  # an ended job is no longer offered


def test_job_rows_keep_their_order_while_jobs_write(two_active_jobs):
    first, second = two_active_jobs
    before = [j["job_id"] for j in client.list_jobs()]
    (client.job_folder(first) / "progress.txt").write_text("a job writing files")  # moves the folder's mtime
    after = [j["job_id"] for j in client.list_jobs()]
    assert before == after and after.index(second) < after.index(first)


def test_the_row_limit_defaults_mean_every_row():
    """The tabs' rows-per-task fields open on values the check accepts: the recipe's follow-up on every
    row (empty), the Evaluate tab on a quick look (200 rows)."""
    from ui.app import build_app

    app = build_app()
    defaults = {c.label: c.value for c in app.blocks.values() if "rows per task" in str(getattr(c, "label", "")).lower()}
    assert sorted(defaults.values()) == ["", "200"], defaults
    for value in defaults.values():
        check_rows_per_task(rows_limit(value))  # no refusal
    assert rows_limit(None) is None and rows_limit("") is None and rows_limit(200) == 200
    with pytest.raises(DistilleryError, match="at least 10"):
        check_rows_per_task(rows_limit(5))


def test_the_job_bar_shows_the_whole_job_its_step_and_the_stage_list():
    status = {"job_id": "j-1", "name": "my model", "state": "running", "stage": "featurize", "fraction": 0.5,
              "overall": 0.42, "eta": 120.0, "elapsed": 90.0, "updated": time.time(), "message": "5,000/10,000 texts",
              "steps": [["corpus", "done", 1.0], ["featurize", "running", 0.5], ["train", "waiting", 0.0]]}
    bar = jobs_tab._bar(status)
    assert "<b>42%</b> of the job" in bar and ("about 2m00s left" in bar or "about 1m59s left" in bar), bar
    assert "step: featurize (2/3) 50%" in bar and "✓ corpus" in bar and "▶ featurize" in bar and "○ train" in bar
    row = dict(zip(jobs_tab.JOB_COLUMNS, jobs_tab._job_row({**status, "message": "x" * 300})))
    assert row["progress"] == "42%" and row["stage"] == "featurize (2/3)" and len(row["message"]) == jobs_tab.MESSAGE_CHARS
    stale = {**status, "updated": time.time() - 60}  # a step that has not reported for a minute
    assert jobs_tab._time_left(stale) == pytest.approx(60, abs=2) and jobs_tab._elapsed(stale) == pytest.approx(150, abs=2)


def test_the_worker_line_lists_live_consumers_with_device_and_throughput():
    """Heartbeats of two workers on two machines (`jobs.status.Heartbeat`), one stale: the live ones
    are listed with their device and teacher throughput; the stale one is not."""
    from jobs.queue import huey
    from jobs.status import CONSUMERS_KEY, STALE_AFTER, _consumer_key, live_consumers

    now = time.time()
    beats = {"gpu-box:11": {"device": "GPU", "texts": 4096, "texts_per_s": 2048.0, "time": now},
             "cpu-box:22": {"device": "CPU", "texts": 0, "texts_per_s": None, "time": now},
             "gone-box:33": {"device": "CPU", "texts": 10, "texts_per_s": 5.0, "time": now - STALE_AFTER - 1}}
    known = huey.get(CONSUMERS_KEY, peek=True)
    try:
        for worker, beat in beats.items():
            huey.put(_consumer_key(worker), {**beat, "worker": worker})
        huey.put(CONSUMERS_KEY, list(beats))
        assert [c["worker"] for c in live_consumers()] == ["cpu-box:22", "gpu-box:11"]
        line = jobs_tab._worker_line()
        assert line.startswith("🟢 2 workers are running")
        assert "`gpu-box:11` (GPU, 2,048 texts/s over 4,096 teacher texts)" in line
        assert "`cpu-box:22` (CPU, no shard yet)" in line and "gone-box" not in line
    finally:
        for worker in beats:
            huey.get(_consumer_key(worker))
        if known is None:
            huey.get(CONSUMERS_KEY)
        else:
            huey.put(CONSUMERS_KEY, known)


def test_a_queued_job_shows_its_place_in_the_queue():
    """`position` comes from the queue (`jobs.status.placed`); the bar and the table say it in words."""
    status = {"job_id": "j-2", "name": "waiting", "state": "queued", "stage": "queued", "message": "waiting for a worker"}
    for position, words in ((1, "1st"), (2, "2nd"), (3, "3rd"), (4, "4th"), (11, "11th"), (22, "22nd")):
        placed = {**status, "position": position}
        assert f"queued · {words} in line · waiting for a worker" in jobs_tab._bar(placed)
        assert dict(zip(jobs_tab.JOB_COLUMNS, jobs_tab._job_row(placed)))["stage"] == f"{words} in line"
    assert "queued · waiting for a worker" in jobs_tab._bar({**status, "position": None})  # just taken by a worker
    assert jobs_tab._job_row({**status, "position": None})[3] == "queued"


def test_the_cancel_line_follows_the_cancelled_job_to_its_end(two_active_jobs):
    first, _ = two_active_jobs
    line, cancelled = jobs_tab.cancel(first)
    assert cancelled == first and f"`{first}`" in line
    write_status(first, state="cancelled", message="Cancelled before it started.")
    assert "**cancelled**" in jobs_tab.refresh(None, cancelled)[5] and "Cancelling" not in jobs_tab.refresh(None, cancelled)[5]


def _interrupted_job(recipe: dict) -> str:
    """A job folder whose status says running, last written a minute ago, with no heartbeat: what a
    job whose worker was killed looks like to the app."""
    from jobs.queue import huey
    from jobs.status import _key

    job_id, folder = new_job_dir("ui-resume")
    (folder / RECIPE_FILE).write_text(json.dumps(recipe))
    huey.put(_key(job_id), {"job_id": job_id, "state": "running", "task_id": "gone", "name": "ui-resume",
                            "stage": "featurize", "updated": time.time() - 60})
    return job_id


@pytest.mark.slow
def test_the_resume_button_queues_an_interrupted_job_and_refuses_a_done_one(server):
    """Through the real server: Resume queues an interrupted job again (the session consumer runs it:
    this recipe is refused at once, so it ends quickly), and refuses a done job with the reason."""
    import helpers
    from gradio_client import Client

    from jobs.status import read_status

    zero = {domain: 0 for domain in helpers.small_recipe().shares}
    job_id = _interrupted_job(helpers.small_recipe("ui-resume", shares=zero).to_dict())
    assert read_status(job_id)["state"] == "interrupted"
    assert (job_id, job_id) in jobs_tab.refresh()[6].choices  # offered in the resume choice

    app = Client(server, verbose=False)
    assert "Choose an interrupted job first" in app.predict("", api_name="/resume_job")
    answer = app.predict(job_id, api_name="/resume_job")
    assert f"`{job_id}` is queued again" in answer and "resumed" in answer, answer
    deadline = time.time() + 60
    while read_status(job_id)["state"] in ("queued", "running") and time.time() < deadline:
        time.sleep(0.2)
    status = read_status(job_id)
    assert status["state"] == "failed" and "zero" in status["error"], status  # it ran again, in the worker
    assert "❌" in app.predict(job_id, api_name="/resume_job")  # a refusal is not resumable

    done = _interrupted_job({"name": "done"})
    write_status(done, state="done", model_id="some-model")
    refused = app.predict(done, api_name="/resume_job")
    assert refused.startswith("❌") and "is done: its model is saved as 'some-model'" in refused, refused
    assert "There is no job" in app.predict("../../etc", api_name="/resume_job")
