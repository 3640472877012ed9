"""The French evaluation sets (../shared/data/fr/eval) as local mteb tasks: each scores a real student
through the real `mteb.evaluate`, bitext mining is the mean of fr→en and en→fr, the one-file
classification set is split seeded and stratified, the teacher's French scores are cached like the
English ones, suites are chosen by name, and a missing French folder is a skipped task with its reason."""

from __future__ import annotations

import shutil
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from core import settings
from core.artifact.folder import evaluation_label
from core.encoders.teacher import resolve_teacher
from core.errors import DistilleryError
from core.evaluation.run import evaluation_plan
from core.evaluation.scoring import check_task_names, evaluate_student, task_refs, teacher_scores
from core.evaluation.tasks import (
    DEV_SUITE,
    FRENCH_SUITE,
    SUITES,
    _jsonl,
    data_digest,
    mteb_task,
    split_classification,
    suite_name,
    suite_tasks,
    task_root,
)
from core.evaluation.verdict import retention, summarise, verdict

LIMIT = 40
FR = {t.name: t for t in FRENCH_SUITE}
EN = {t.name: t for t in DEV_SUITE}
INTENTS = settings.french_eval_dir() / "classification" / "cdtn_intents" / "all.jsonl.gz"


@pytest.fixture(scope="module")
def student(small_model) -> Path:
    return small_model.path


def _nearest_accuracy(queries: np.ndarray, candidates: np.ndarray) -> float:
    """Share of rows whose nearest candidate by cosine is their own pair (row i ↔ row i)."""
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True).clip(1e-12)
    c = candidates / np.linalg.norm(candidates, axis=1, keepdims=True).clip(1e-12)
    return float(np.mean((q @ c.T).argmax(1) == np.arange(len(q))))


@pytest.mark.slow  # a distilled model and mteb
def test_each_french_task_scores_a_real_student_through_mteb(student):
    from model2vec import StaticModel
    from scipy.stats import spearmanr

    result = evaluate_student(student, FRENCH_SUITE, limit=LIMIT)
    assert result["skipped"] == {} and list(result["tasks"]) == list(FR)
    assert result["task_types"] == {"STSBenchmark-fr": "STS", "PythonDocs-fr-en": "BitextMining",
                                    "CDTN-intents": "Classification", "CDTN-glossary": "Retrieval"}
    assert all(0 < s <= 100 for s in result["tasks"].values()), result["tasks"]
    # Four types, one task each: the mean of the type means is the mean of the four scores.
    assert result["mean_of_types"] == pytest.approx(sum(result["tasks"].values()) / 4, abs=0.02)
    # STS by the README's definition (Spearman of cosine), outside mteb, on the same rows.
    loaded = mteb_task(FR["STSBenchmark-fr"], None, LIMIT)
    loaded.load_data()
    rows = loaded.dataset["test"]
    model = StaticModel.from_pretrained(str(student))
    a = model.encode(list(rows["sentence1"]), use_multiprocessing=False)
    b = model.encode(list(rows["sentence2"]), use_multiprocessing=False)
    sims = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert result["tasks"]["STSBenchmark-fr"] == pytest.approx(100 * spearmanr(sims, rows["score"]).statistic,
                                                               abs=0.3)


@pytest.mark.slow  # a distilled model and mteb
def test_bitext_score_is_the_mean_of_both_directions(student):
    from model2vec import StaticModel

    from core.encoders.student import StudentEncoder
    from core.evaluation.tasks import import_mteb

    task = mteb_task(FR["PythonDocs-fr-en"], None, LIMIT)
    st = StudentEncoder.open(student).sentence_transformer()
    run = import_mteb().evaluate(st, [task], cache=None, overwrite_strategy="always", co2_tracker=False,
                                 show_progress_bar=False, raise_error=True,
                                 encode_kwargs={"batch_size": 64, "show_progress_bar": False})
    scores = {s["hf_subset"]: s["accuracy"] for s in run.task_results[0].scores["test"]}
    assert set(scores) == {"fra-eng", "eng-fra"}
    # Each direction by hand: the nearest English row of each French row, and the other way round.
    same = mteb_task(FR["PythonDocs-fr-en"], None, LIMIT)  # mteb unloads the data of the task it ran
    same.load_data()
    rows = same.dataset["test"]
    assert len(rows) == LIMIT and "fra" in rows.column_names and "eng" in rows.column_names
    model = StaticModel.from_pretrained(str(student))
    fra = model.encode(list(rows["fra"]), use_multiprocessing=False)
    eng = model.encode(list(rows["eng"]), use_multiprocessing=False)
    assert scores["fra-eng"] == pytest.approx(_nearest_accuracy(fra, eng), abs=1e-6)
    assert scores["eng-fra"] == pytest.approx(_nearest_accuracy(eng, fra), abs=1e-6)
    mean = (scores["fra-eng"] + scores["eng-fra"]) / 2
    assert run.task_results[0].get_score() == pytest.approx(mean)
    # The app's score for the task is that mean, in points.
    result = evaluate_student(student, (FR["PythonDocs-fr-en"],), limit=LIMIT)
    assert result["tasks"]["PythonDocs-fr-en"] == pytest.approx(100 * mean, abs=0.01)


def test_one_file_classification_split_is_seeded_and_stratified():
    rows = _jsonl(INTENTS)
    counts = Counter(str(r["label"]) for r in rows)
    assert min(counts.values()) == 1 and len(counts) > 200  # the real set: some labels have one text
    train, test = split_classification(rows, 42)
    again_train, again_test = split_classification(rows, 42)
    assert (train, test) == (again_train, again_test)  # same seed, same split
    assert split_classification(rows, 7)[1] != test  # another seed, another split
    assert len(train) + len(test) == len(rows)
    assert {id(r) for r in train}.isdisjoint(id(r) for r in test)
    train_labels, test_labels = Counter(str(r["label"]) for r in train), Counter(str(r["label"]) for r in test)
    for label, n in counts.items():
        if n >= 2:  # stratified: in both parts, about 30 % in test, never all of them
            assert train_labels[label] >= 1 and test_labels[label] >= 1, label
            assert test_labels[label] == min(n - 1, max(1, round(0.3 * n))), label
        else:  # a single text can only teach: it goes to train
            assert train_labels[label] == 1 and test_labels[label] == 0, label
    # The task reads the same split (its seed is the task's), and a row limit samples only the test part.
    task = mteb_task(FR["CDTN-intents"], None, limit=None, seed=42)
    task.load_data()
    assert task.dataset["train"].num_rows == len(train) and task.dataset["test"].num_rows == len(test)
    assert list(task.dataset["test"]["text"]) == [str(r["text"]) for r in test]
    limited = mteb_task(FR["CDTN-intents"], None, limit=LIMIT, seed=42)
    limited.load_data()
    assert limited.dataset["train"].num_rows == len(train) and limited.dataset["test"].num_rows == LIMIT


@pytest.mark.slow  # mteb runs the teacher
def test_teacher_scores_of_french_tasks_are_cached_and_keyed_by_the_french_data(tmp_path, monkeypatch):
    teacher = resolve_teacher(None)
    tasks = (FR["STSBenchmark-fr"], FR["CDTN-glossary"])
    limit = LIMIT + 5  # a slice no other test scores
    first = teacher_scores(teacher, tasks, limit=limit)
    assert first["cached"] == 0 and set(first["tasks"]) == {"STSBenchmark-fr", "CDTN-glossary"}
    # Same fingerprint, weights nowhere: only the cache can answer, with the same scores.
    gone = replace(teacher, source="/nonexistent")
    again = teacher_scores(gone, tasks, limit=limit)
    assert again["cached"] == 2 and again["tasks"] == first["tasks"]
    # The key holds the digest of the French folder's files: other French data is another entry.
    copy = tmp_path / "fr-eval"
    shutil.copytree(settings.french_eval_dir() / "sts", copy / "sts")
    shutil.copytree(settings.french_eval_dir() / "retrieval", copy / "retrieval")
    assert data_digest(FR["STSBenchmark-fr"]) == data_digest(FR["STSBenchmark-fr"], copy)  # same bytes
    (copy / "retrieval" / "cdtn_glossary" / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq0\tg0\t1\n")
    monkeypatch.setenv("DISTILLERY_FR_EVAL_DIR", str(copy))
    assert task_root(FR["CDTN-glossary"]) == copy.resolve()
    with pytest.raises(DistilleryError):  # the changed glossary is not in the cache: the missing teacher is needed
        teacher_scores(gone, tasks, limit=limit)
    assert teacher_scores(gone, tasks[:1], limit=limit)["cached"] == 1  # the unchanged STS file still hits


@pytest.mark.slow  # a distilled model and mteb
def test_a_missing_french_folder_skips_its_tasks_with_the_reason(student, tmp_path, monkeypatch):
    monkeypatch.setenv("DISTILLERY_FR_EVAL_DIR", str(tmp_path / "no-french-here"))
    result = evaluate_student(student, (EN["MRPC"], FR["STSBenchmark-fr"], FR["PythonDocs-fr-en"]), limit=LIMIT)
    assert list(result["tasks"]) == ["MRPC"]  # the English task still runs
    for name in ("STSBenchmark-fr", "PythonDocs-fr-en"):
        reason = result["skipped"][name]
        assert "French evaluation folder" in reason and "does not exist" in reason, reason
        assert "DISTILLERY_FR_EVAL_DIR" in reason and str(tmp_path / "no-french-here") in reason


def test_suites_are_chosen_by_name_and_english_stays_the_default():
    assert task_refs(None) == task_refs([], "en") == suite_tasks(None) == DEV_SUITE
    assert task_refs(None, "fr") == FRENCH_SUITE and task_refs([], "both") == DEV_SUITE + FRENCH_SUITE
    assert task_refs(["CDTN-intents", "MRPC"], "en") == (FR["CDTN-intents"], EN["MRPC"])  # names win over the suite
    assert {t.language for t in FRENCH_SUITE} == {"fr"} and {t.language for t in DEV_SUITE} == {"en"}
    assert {suite_name(tasks) for tasks in SUITES.values()} == set(SUITES) and suite_name(DEV_SUITE[:2]) is None
    check_task_names(None, "fr")
    check_task_names(["PythonDocs-fr-en"], "both")
    with pytest.raises(DistilleryError, match="no evaluation suite 'de'"):
        check_task_names(None, "de")
    assert task_root(FR["CDTN-intents"]) == settings.french_eval_dir()
    assert task_root(EN["MRPC"]) == settings.eval_dir() and task_root(EN["MRPC"], Path("/x")) == Path("/x")
    meta = mteb_task(FR["PythonDocs-fr-en"]).metadata
    assert meta.main_score == "accuracy" and meta.hf_subsets_to_langscripts == {
        "fra-eng": ["fra-Latn", "eng-Latn"], "eng-fra": ["eng-Latn", "fra-Latn"]}
    assert mteb_task(FR["CDTN-glossary"]).metadata.eval_langs == ["fra-Latn"]
    # The job's plan is sized by the suite's measured seconds: French alone is smaller than English.
    teacher = resolve_teacher(None)
    student_seconds = {name: dict(evaluation_plan(teacher, SUITES[name]).stages)["student scores"]
                       for name in SUITES}
    assert student_seconds["fr"] < student_seconds["en"] < student_seconds["both"]
    assert student_seconds["both"] == pytest.approx(student_seconds["en"] + student_seconds["fr"])
    report = {"date": "2026-12-02", "limit": 30, "tasks": list(FR), "suite": "fr", "verdict": {"verdict": "viable"}}
    assert "30 rows/task · 4 tasks (French) · viable" in evaluation_label(report, "")


def test_bitext_counts_as_one_task_type_in_retention_and_the_verdict():
    types = {"STSBenchmark-fr": "STS", "PythonDocs-fr-en": "BitextMining", "CDTN-intents": "Classification",
             "CDTN-glossary": "Retrieval", "STSBenchmark": "STS"}
    teacher = summarise({"STSBenchmark-fr": 80.0, "PythonDocs-fr-en": 90.0, "CDTN-intents": 60.0,
                         "CDTN-glossary": 70.0, "STSBenchmark": 84.0}, types)
    student = summarise({"STSBenchmark-fr": 72.0, "PythonDocs-fr-en": 45.0, "CDTN-intents": 54.0,
                         "CDTN-glossary": 63.0, "STSBenchmark": 78.0}, types)
    assert set(teacher["type_means"]) == {"STS", "BitextMining", "Classification", "Retrieval"}
    assert teacher["mean_of_types"] == pytest.approx((82 + 90 + 60 + 70) / 4, abs=0.01)  # the two STS sets: one type
    kept = retention(student, teacher)
    assert kept["type_means"]["BitextMining"] == 0.5
    assert kept["overall"] == pytest.approx(((75 + 45 + 54 + 63) / 4) / ((82 + 90 + 60 + 70) / 4), abs=1e-4)
    decision = verdict(kept, 150)
    assert decision["weakest_type"] == "BitextMining" and decision["verdict"] == "not viable"
