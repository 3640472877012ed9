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
    """Gradio number boxes cannot be empty, so the tabs default to 0, which must mean "every row"."""
    from ui.app import build_app

    app = build_app()
    defaults = {c.label: c.value for c in app.blocks.values() if "rows per task" in str(getattr(c, "label", "")).lower()}
    assert len(defaults) == 2 and set(defaults.values()) == {0}, defaults
    for value in defaults.values():
        check_rows_per_task(rows_limit(value))  # no refusal
    assert rows_limit(None) is None and rows_limit("") is None and rows_limit(200) == 200
    with pytest.raises(DistilleryError, match="at least 10"):
        check_rows_per_task(rows_limit(5))
