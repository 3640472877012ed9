"""core.evaluation (scoring, tasks, verdict, run): the local development sets through the real
`mteb.evaluate`, the teacher-score cache, retention and the verdict, and bad task folders or models."""

from __future__ import annotations

import gzip
import json
import os
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from core import settings
from core.encoders.teacher import resolve_teacher
from core.errors import DistilleryError
from core.evaluation.scoring import check_task_names, evaluate_student, task_refs, teacher_scores
from core.evaluation.tasks import DEV_SUITE, LocalTask, check_rows_per_task, mteb_task
from core.evaluation.verdict import Thresholds, retention, verdict

LIMIT = 40
BY_NAME = {t.name: t for t in DEV_SUITE}


@pytest.fixture(scope="module")
def student(small_model) -> Path:
    """A model made by the product's own pipeline (folder, record, card), shared by the session."""
    return small_model.path


@pytest.mark.slow  # mteb on the whole development suite
def test_local_suite_scores_through_mteb_as_defined(student):
    from model2vec import StaticModel
    from scipy.stats import spearmanr
    from sklearn.metrics import average_precision_score

    result = evaluate_student(student, limit=LIMIT)
    assert result["skipped"] == {} and set(result["tasks"]) == set(BY_NAME)
    assert Path(os.environ["MTEB_CACHE"]).is_relative_to(settings.data_dir())  # not the home folder
    assert set(result["type_means"]) == {"STS", "Classification", "PairClassification", "Retrieval"}
    assert all(0 < s <= 100 for s in result["tasks"].values())
    # The same rows scored by the eval README's definitions, outside mteb.
    model = StaticModel.from_pretrained(str(student))

    def cosine(task: LocalTask) -> tuple[np.ndarray, list]:
        loaded = mteb_task(task, settings.eval_dir(), LIMIT)
        loaded.load_data()
        rows = loaded.dataset["test"]
        a = model.encode(list(rows["sentence1"]), use_multiprocessing=False)
        b = model.encode(list(rows["sentence2"]), use_multiprocessing=False)
        sims = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
        return sims, rows

    sims, rows = cosine(BY_NAME["STSBenchmark"])
    assert result["tasks"]["STSBenchmark"] == pytest.approx(100 * spearmanr(sims, rows["score"]).statistic, abs=0.3)
    sims, rows = cosine(BY_NAME["MRPC"])
    assert result["tasks"]["MRPC"] == pytest.approx(100 * average_precision_score(rows["label"], sims), abs=0.3)


@pytest.mark.slow  # mteb runs the teacher
def test_teacher_scores_are_cached_per_teacher_and_task():
    teacher = resolve_teacher(None)
    tasks = (BY_NAME["STSBenchmark"], BY_NAME["MRPC"])
    limit = LIMIT + 3  # a slice no other test scores, so the session's cache holds nothing for it yet
    first = teacher_scores(teacher, tasks, limit=limit)
    assert first["cached"] == 0 and set(first["tasks"]) == {"STSBenchmark", "MRPC"}
    # Same fingerprint, weights nowhere: only the cache can answer, and it answers with the same scores.
    again = teacher_scores(replace(teacher, source="/nonexistent"), tasks, limit=limit)
    assert again["cached"] == 2 and again["tasks"] == first["tasks"]
    with pytest.raises(DistilleryError):  # another slice of the data is another cache entry
        teacher_scores(replace(teacher, source="/nonexistent"), tasks, limit=limit + 1)


def test_retention_and_verdict():
    student = {"tasks": {"a": 72.0, "b": 60.0, "c": 80.0},
               "task_types": {"a": "STS", "b": "STS", "c": "Retrieval"}}
    teacher = {"tasks": {"a": 80.0, "b": 70.0, "c": 85.0},
               "task_types": {"a": "STS", "b": "STS", "c": "Retrieval"}}
    kept = retention(student, teacher)
    assert kept["tasks"]["a"] == 0.9
    assert kept["overall"] == pytest.approx(((72 + 60) / 2 + 80) / 2 / (((80 + 70) / 2 + 85) / 2), abs=1e-4)
    assert verdict(kept, 150)["verdict"] == "optimal"  # 0.9125 ≥ 0.89 and 150× ≥ 100×
    assert verdict(kept, 70)["verdict"] == "viable"
    slow = verdict(kept, 20)
    assert slow["verdict"] == "not viable" and "speed-up" in slow["reasons"][0]
    assert slow["weakest_type"] == "STS"
    strict = verdict(kept, 150, Thresholds(viable_retention=0.95, optimal_retention=0.97))
    assert strict["verdict"] == "not viable" and "retention" in strict["reasons"][0]
    with pytest.raises(DistilleryError):
        verdict(kept, 150, Thresholds(viable_retention=0.9, optimal_retention=0.8))


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.writelines(json.dumps(r) + "\n" for r in rows)


@pytest.mark.slow  # a distilled model and mteb
def test_bad_task_folders_are_skipped_with_reasons_and_the_rest_runs(student, tmp_path):
    shutil.copytree(settings.eval_dir() / "pair" / "mrpc", tmp_path / "pair" / "mrpc")
    _write_jsonl(tmp_path / "sts" / "odd" / "test.jsonl.gz", [{"left": "a", "right": "b", "sim": 1}])
    rows = [{"text": f"text {i}", "label": "only"} for i in range(20)]
    _write_jsonl(tmp_path / "classification" / "one" / "train.jsonl.gz", rows)
    _write_jsonl(tmp_path / "classification" / "one" / "test.jsonl.gz", rows)
    folder = tmp_path / "retrieval" / "empty"
    _write_jsonl(folder / "corpus.jsonl.gz", [{"_id": "d1", "title": "", "text": "a document"}])
    _write_jsonl(folder / "queries.jsonl.gz", [{"_id": "q1", "text": "a query"}])
    (folder / "qrels").mkdir()
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n")
    tasks = (
        BY_NAME["MRPC"],
        LocalTask("Odd", "STS", "sts/odd", ("test.jsonl.gz",)),
        LocalTask("OneLabel", "Classification", "classification/one", ("train.jsonl.gz", "test.jsonl.gz")),
        LocalTask("EmptyQrels", "Retrieval", "retrieval/empty", ("corpus.jsonl.gz", "queries.jsonl.gz",
                                                                   "qrels/test.tsv")),
        LocalTask("Gone", "STS", "sts/gone", ("test.jsonl.gz",)),
        "STSBenchmark",  # a Hub task by name: the Hub is out of reach in tests
    )
    result = evaluate_student(student, tasks, limit=LIMIT, eval_dir=tmp_path)
    assert list(result["tasks"]) == ["MRPC"]
    reasons = result["skipped"]
    assert "sentence1/sentence2/score" in reasons["Odd"]
    assert "single label" in reasons["OneLabel"]
    assert "no relevant" in reasons["EmptyQrels"]
    assert "missing test.jsonl.gz" in reasons["Gone"]
    assert "not reachable" in reasons["STSBenchmark"]


def test_missing_or_corrupt_model_folder(tmp_path):
    with pytest.raises(DistilleryError, match="not a complete model2vec folder"):
        evaluate_student(tmp_path / "nothing")
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        (broken / name).write_bytes(b"\x00garbage")
    with pytest.raises(DistilleryError, match="is damaged"):  # refused by its header, before model2vec reads it
        evaluate_student(broken)


@pytest.mark.slow  # a distilled model, mteb and the speed race
def test_saved_model_evaluation_report_record_and_card(student):
    import yaml

    from core.artifact.folder import EVALUATION_FILE, ModelFolder
    from core.evaluation.run import evaluate_saved_model, evaluation_plan

    stages = []
    tasks = (BY_NAME["STSBenchmark"], BY_NAME["MRPC"], BY_NAME["XQuAD-en"])
    report = evaluate_saved_model(student, tasks, limit=LIMIT, progress=lambda s, f, m="": stages.append(s))
    assert set(evaluation_plan(resolve_teacher(None), tasks, LIMIT).names) == set(stages)  # the plan is what runs
    assert json.loads((student / EVALUATION_FILE).read_text())["verdict"] == report["verdict"]
    assert report["speed"]["speedup"] > 1  # a static model beats its transformer teacher on the same texts
    assert report["verdict"]["verdict"] in ("optimal", "viable", "not viable")
    assert report["verdict"]["weakest_type"] in ("STS", "PairClassification", "Retrieval")
    assert ModelFolder.at(student).record.evaluation["retention"] == report["retention"]
    assert ModelFolder.at(student).evaluation() == report
    card = (student / "README.md").read_text()
    front = yaml.safe_load(card.split("---")[1])
    assert front["license"] == "apache-2.0" and front["library_name"] == "model2vec"
    results = front["model-index"][0]["results"]
    assert {r["dataset"]["name"] for r in results} == {"STSBenchmark", "MRPC", "XQuAD-en"}
    assert "## Evaluation" in card and f"{report['retention']['overall']:.1%}" in card


def test_task_names_and_row_limits_are_checked_before_anything_is_queued():
    assert task_refs(None) == task_refs([]) == DEV_SUITE
    assert task_refs(["MRPC", "SciFact"]) == (BY_NAME["MRPC"], "SciFact")  # local by name, else an mteb task
    check_task_names(["MRPC", "SciFact"])  # mteb's metadata is local: no Hub needed to check a name
    with pytest.raises(DistilleryError, match="no task named 'NoSuchTask'"):
        check_task_names(["MRPC", "NoSuchTask"])
    check_rows_per_task(None)
    check_rows_per_task(10)
    with pytest.raises(DistilleryError, match="at least 10"):
        check_rows_per_task(3)
