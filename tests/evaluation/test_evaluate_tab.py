"""The Evaluate tab's own logic without a browser: evaluation job ids, the reports it picks from a model's
history, the chart's layout, and one tick of following queued jobs (real huey storage, statuses
written as the worker writes them). The page itself, with a real worker, is in tests/ui/test_ui.py."""

from __future__ import annotations

import json
import re
import shutil

import gradio as gr
import helpers
import pytest

from core import settings
from core.artifact.folder import ModelFolder
from jobs.folders import NAME_SLUG, evaluation_job_id, new_job_dir, new_job_id
from jobs.status import write_status
from ui.evaluate_tab import PICK, chosen_reports, follow, history_choices, scores_chart, show, start

STAMP = r"-\d{8}-\d{6}-[0-9a-f]{4}"


def test_evaluation_job_ids_keep_the_whole_model_id_and_are_safe_folder_names():
    model_id = new_job_id("a recipe name that is much longer than forty characters")  # as a model id is made
    assert len(model_id) > NAME_SLUG + 9  # "evaluate-" plus the id would have been cut at 40
    job_id = evaluation_job_id(model_id)
    assert re.fullmatch(f"evaluate-{model_id}{STAMP}", job_id), job_id
    assert re.fullmatch(r"[a-z0-9-]+", evaluation_job_id("My Model_v2.1 (copy)")).group().startswith(
        "evaluate-my-model-v2-1-copy-")
    long_id = evaluation_job_id("x" * 300)  # a folder name a user chose: cut to what a file system takes
    assert len(long_id.encode()) <= 255 and long_id.startswith("evaluate-xxx")
    assert re.fullmatch(f"[a-z0-9-]{{1,{NAME_SLUG}}}{STAMP}", new_job_id("x" * 100))  # recipe names stay short
    made, folder = new_job_dir(model_id, job_id)
    try:
        assert made == job_id and folder == settings.jobs_dir() / job_id and folder.is_dir()
    finally:
        folder.rmdir()


@pytest.fixture()
def evaluated() -> tuple[str, str, str]:
    """A model in the data folder with two evaluations; yields its id and both keys (older, newer)."""
    model_id = f"tab-model-{new_job_id('t')[-4:]}"
    folder = ModelFolder.create(helpers.tiny_static_model(), helpers.tiny_record(model_id), ["a text"],
                                settings.models_dir() / model_id)
    older = folder.write_evaluation(helpers.evaluation_report(model_id, limit=40))
    newer = folder.write_evaluation(helpers.evaluation_report(model_id, limit=None,
                                                              student={"STSBenchmark": 50.0, "MRPC": 60.0}))
    yield model_id, older, newer
    shutil.rmtree(folder.path)


def test_history_defaults_to_the_newest_and_earlier_runs_can_be_shown_beside_it(evaluated):
    model_id, older, newer = evaluated
    box = history_choices([model_id, "no-such-model"])
    assert [value for _, value in box.choices] == [f"{model_id}{PICK}{newer}", f"{model_id}{PICK}{older}"]
    assert box.value == [f"{model_id}{PICK}{newer}"] and "all rows" in box.choices[0][0]
    reports, missing = chosen_reports([model_id], None)
    assert list(reports) == [model_id] and reports[model_id]["limit"] is None and missing == []
    reports, _ = chosen_reports([model_id], [f"{model_id}{PICK}{older}"])
    assert reports[model_id]["limit"] == 40
    reports, _ = chosen_reports([model_id], [f"{model_id}{PICK}{newer}", f"{model_id}{PICK}{older}"])
    assert len(reports) == 2 and all(label.startswith(f"{model_id} (") for label in reports)  # one column each
    verdict, scores, _, kept = show([model_id], [f"{model_id}{PICK}{newer}", f"{model_id}{PICK}{older}"])
    assert list(scores.columns[:3]) == ["task", "type", "teacher: all-MiniLM-L6-v2"]
    assert len(scores.columns) == 5 and len(kept) == 2 and verdict.count(model_id) == 2  # two runs, two columns
    verdict, *_ = show([model_id, "no-such-model"], [f"{model_id}{PICK}../../etc"])
    assert "does not name an evaluation" in verdict and "no finished model 'no-such-model'" in verdict


def test_chart_is_readable_legend_above_labels_fit_axis_fits_the_scores(evaluated):
    model_id, older, newer = evaluated
    reports, _ = chosen_reports([model_id], [f"{model_id}{PICK}{newer}", f"{model_id}{PICK}{older}"])
    figure = scores_chart(reports)
    layout, traces = figure.layout, figure.data
    assert traces[0].name.startswith("teacher: ") and len(traces) == 3
    assert traces[0].marker.color.startswith("#") and traces[1].marker.color is None  # teacher grey, students coloured
    assert layout.legend.orientation == "h" and layout.legend.y > 1  # above the plot, off the task names
    assert layout.xaxis.automargin and layout.xaxis.tickangle == -30
    low, high = layout.yaxis.range
    scores = [float(y) for t in traces for y in t.y]
    assert low == 0 and max(scores) <= high < 100  # best score 84: no empty band up to a fixed 100
    assert layout.margin.t >= 40 + 22 * 2  # room for the legend's two rows
    assert json.loads(figure.to_json())["layout"]["barmode"] == "group"  # what the page receives


def test_following_explains_each_job_and_shows_results_when_one_ends(evaluated):
    model_id, _, newer = evaluated
    running, failed = new_job_id("follow-running"), new_job_id("follow-failed")
    write_status(running, state="running", stage="student scores", fraction=0.9, overall=0.45, eta=30.0,
                 message="MRPC (student)")
    write_status(failed, state="failed", error="No task could be scored (MRPC: not reachable).")
    jobs = [{"job_id": running, "model_id": model_id, "state": "queued"},
            {"job_id": failed, "model_id": "other-model", "state": "queued"}]
    lines, jobs, timer, history, *results = follow(jobs)
    assert "🔄" in lines and "45%, about 30 s left · student scores: MRPC (student)" in lines  # the job's share
    assert "❌ `other-model`" in lines and "failed: No task could be scored" in lines
    assert timer.active is True and history == gr.skip() and results == [gr.skip()] * 4  # nothing new to show
    write_status(running, state="done", model_id=model_id, message=f"{model_id}: not viable")
    lines, jobs, timer, history, verdict, scores, chart, kept = follow(jobs)
    assert f"✅ `{model_id}`: {model_id}: not viable" in lines and timer.active is False
    assert history.value == [f"{model_id}{PICK}{newer}"] and f"**{model_id}: not viable**" in verdict
    assert list(scores["task"]) == ["STSBenchmark", "MRPC"] and chart is not None
    lines, jobs, timer, history, *results = follow(jobs)  # a later tick (the timer stops) renders nothing again
    assert results == [gr.skip()] * 4 and [j["state"] for j in jobs] == ["done", "failed"]
    _, jobs, timer, *_ = follow([])
    assert jobs == [] and timer.active is False


def test_the_suite_chosen_in_the_tab_reaches_the_queued_job(evaluated):
    from core.evaluation.scoring import task_refs
    from core.evaluation.tasks import DEV_SUITE, FRENCH_SUITE
    from jobs import client
    from jobs.folders import EVALUATION_REQUEST

    model_id, _, _ = evaluated
    requests = {}
    for suite in ("fr", "both", None):  # None: what an older caller sends, the English suite
        lines, queued, timer = start([model_id], 30, 0.83, 50, 0.89, 100, "", suite)
        assert len(queued) == 1 and timer.active, lines
        job_id = queued[0]["job_id"]
        try:
            requests[suite] = json.loads((settings.jobs_dir() / job_id / EVALUATION_REQUEST).read_text())
        finally:
            client.cancel(job_id)  # never run by a later test's worker
    assert [requests[s]["suite"] for s in ("fr", "both", None)] == ["fr", "both", "en"]
    assert requests["fr"]["tasks"] is None and requests["fr"]["limit"] == 30
    # What the job runs (jobs.tasks.evaluate_model_task resolves its request so).
    assert task_refs(requests["fr"]["tasks"], requests["fr"]["suite"]) == FRENCH_SUITE
    assert task_refs(requests["both"]["tasks"], requests["both"]["suite"]) == DEV_SUITE + FRENCH_SUITE
    assert task_refs(requests[None]["tasks"], requests[None]["suite"]) == DEV_SUITE
    lines, queued, _ = start([model_id], 30, 0.83, 50, 0.89, 100, "", "de")
    assert queued == [] and "no evaluation suite 'de'" in lines
