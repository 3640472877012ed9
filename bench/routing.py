"""Smart routing's trade-off: share of inputs sent to the teacher against quality recovered and latency.

    .venv/bin/python bench/routing.py STUDENT_FOLDER [STUDENT_FOLDER ...] [--limit 300] [--fit-texts 2000]

For each student, on the development suite's STS, pair-classification and retrieval tasks (rows
limited by `--limit`, the evaluation's own seeded sample through `core.evaluation.tasks.mteb_task`):
every distinct text is embedded once by the student and once by the teacher, each signal of
`core.serving.routing.SIGNALS` is computed, and then, for each threshold from "never route" to
"always route", the routed vectors are assembled (the teacher's where the signal is above the
threshold) and scored. Classification is left out: per-input routing would need the classifier
retrained at every threshold, and the issue asks for pairs and retrieval.

Two ways to make the vectors comparable are measured (`--spaces`):
  teacher: the student's vectors mapped into the teacher's space (what the service ships);
  student: the teacher's vectors mapped into the student's space.
Both maps are ridge least squares (`core.serving.routing.SharedSpace`) fitted on `--fit-texts` texts
drawn from the student's search collection, or from `--fit-corpus` (a corpus.jsonl) for a folder
without one. A random routing at the same shares is the baseline a signal must beat.

Scores are the tasks' mteb main scores (Spearman of cosine, cosine average precision, nDCG@10),
computed here on the stored vectors so that a dozen thresholds cost one encode; the endpoints are
checked against `core.evaluation.scoring` (mteb) with `--check-mteb`. Quality recovered is
(routed − student) / (teacher − student) on the mean of task-type means, with and without the sets
that flatter students (MRPC, MedQuAD, Python doc->code). Latency per input is modelled from this
run's measured costs: the student's encode and the signal for every input, plus the teacher's
batched encode time of the routed inputs (its time per text, measured per task, weighted by tokens).

The default threshold is the knee of the shipped curve (teacher space, short-text signal) without the
flattering sets: the threshold whose quality recovered exceeds its share routed by the most. Prints tables; writes bench/results/routing.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

from bench._common import RESULTS, write_results  # noqa: E402

FLATTERING = ("MRPC", "MedQuAD", "PythonStdlibDoc2Code")
TYPES = ("STS", "PairClassification", "Retrieval")
# Thresholds per signal, from never route to always route (an input is routed when its signal is above).
GRIDS: dict[str, list[float]] = {
    "unknown_words": [1.0, 0.5, 0.4, 0.3, 0.25, 0.2, 0.15, 0.1, 0.05, 0.0, -1.0],
    "short_text": [1.0, 1 / 2, 1 / 4, 1 / 6, 1 / 8, 1 / 10, 1 / 12, 1 / 16, 1 / 24, 1 / 48, -1.0],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("students", nargs="+", type=Path)
    parser.add_argument("--limit", type=int, default=300, help="rows (pairs or queries) per task")
    parser.add_argument("--fit-texts", type=int, default=2000)
    parser.add_argument("--fit-corpus", type=Path, default=None, help="corpus.jsonl for folders without a collection")
    parser.add_argument("--spaces", default="student,teacher")
    parser.add_argument("--check-mteb", action="store_true", help="score the endpoints through mteb as well")
    parser.add_argument("--out", type=Path, default=RESULTS / "routing.json")
    args = parser.parse_args()

    from core import settings
    from core.encoders.student import StudentEncoder
    from core.encoders.teacher import TeacherEncoder, resolve_teacher
    from core.evaluation.tasks import DEV_SUITE
    from core.serving.collection import embed_collection
    from core.serving.routing import DEFAULT_THRESHOLD

    teacher = TeacherEncoder(resolve_teacher(None), device="cpu")
    tasks = [t for t in DEV_SUITE if t.type in TYPES]
    data = {t.name: load_task(t, settings.eval_dir(), args.limit) for t in tasks}
    start = time.perf_counter()
    teacher_cache: dict[str, tuple[np.ndarray, float]] = {}
    cache = settings.cache_dir()
    for name, task in data.items():
        teacher_cache[name] = timed(lambda task=task: embed_task(teacher, task, cache))
        print(f"teacher: {name} {len(task['texts'])} texts in {teacher_cache[name][1]:.1f} s", flush=True)
    results: dict[str, Any] = {"limit": args.limit, "tasks": {n: {"type": d["type"], "texts": len(d["texts"])}
                                                            for n, d in data.items()},
                               "teacher_seconds": round(time.perf_counter() - start, 1), "students": {}}
    for folder in args.students:
        student = StudentEncoder.open(folder)
        fit = fit_texts(folder, args.fit_corpus, args.fit_texts)
        fit_teacher, fit_student = embed_collection(teacher, fit, cache), student.encode(fit)
        results["students"][folder.name] = run_student(student, teacher_cache, data, fit_teacher, fit_student,
                                                       args.spaces.split(","))
        results["students"][folder.name]["fit_texts"] = len(fit)
        if args.check_mteb:
            results["students"][folder.name]["mteb_check"] = check_mteb(student, teacher, data, tasks, args.limit)
    first = results["students"][args.students[0].name]
    results["default"] = {"student": args.students[0].name, "signal": "short_text", "space": "teacher",
                          "knee": first["knee"], "shipped_threshold": DEFAULT_THRESHOLD}
    print_tables(results)
    write_results(args.out, results)


def timed(fn: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def load_task(task: Any, eval_dir: Path, limit: int) -> dict[str, Any]:
    """The evaluation's own sample of a task, as distinct texts and indices into them."""
    from core.evaluation.tasks import mteb_task

    loaded = mteb_task(task, eval_dir, limit)
    loaded.load_data()
    texts: dict[str, int] = {}

    def index(text: str) -> int:
        return texts.setdefault(text, len(texts))

    if task.type == "Retrieval":
        split = loaded.dataset["default"]["test"]
        queries = {q["id"]: index(q["text"]) for q in split["queries"]}
        docs = {d["id"]: index(f"{d['title']} {d['text']}".strip()) for d in split["corpus"]}
        n_queries = len(texts)
        return {"type": task.type, "texts": list(texts), "queries": queries, "docs": docs,
                "qrels": split["relevant_docs"], "query_rows": n_queries}
    rows = loaded.dataset["test"]
    label = "score" if task.type == "STS" else "label"
    pairs = [(index(r["sentence1"]), index(r["sentence2"]), float(r[label])) for r in rows]
    return {"type": task.type, "texts": list(texts), "pairs": pairs, "query_rows": len(texts)}


class _Queries:
    """An encoder's query side as an `Encoder` (for the content-keyed collection cache)."""

    def __init__(self, encoder: Any) -> None:
        self.encoder, self.label = encoder, encoder.label
        self.fingerprint = f"{encoder.fingerprint}|queries"

    def encode(self, texts: Any) -> np.ndarray:
        return self.encoder.encode_queries(texts)


def embed_task(encoder: Any, task: dict[str, Any], cache: Path | None = None) -> np.ndarray:
    """Queries through `encode_queries`, documents through `encode` (retrieval); pairs as queries.
    With `cache`, the vectors are kept on disk by content (the teacher's, so a rerun is quick)."""
    from core.serving.collection import embed_collection

    texts, cut = task["texts"], task["query_rows"]
    parts = [embed_collection(_Queries(encoder), texts[:cut], cache, batch=256)]
    if cut < len(texts):
        parts.append(embed_collection(encoder, texts[cut:], cache, batch=256))
    return np.concatenate(parts).astype(np.float32)


def fit_texts(folder: Path, corpus: Path | None, count: int) -> list[str]:
    from core.artifact.folder import COLLECTION_FILE

    if (folder / COLLECTION_FILE).is_file():
        texts = json.loads((folder / COLLECTION_FILE).read_text())
    elif corpus is not None:
        with corpus.open() as handle:
            texts = [json.loads(line)["text"] for line in handle if line.strip()]
    else:
        raise SystemExit(f"{folder} has no {COLLECTION_FILE}: name a corpus.jsonl with --fit-corpus.")
    return random.Random(7).sample(texts, min(count, len(texts)))


def score(task: dict[str, Any], vectors: np.ndarray) -> float:
    """The task's mteb main score, from unit vectors (cosine = dot product)."""
    if task["type"] == "Retrieval":
        return ndcg_at_10(task, vectors)
    a = np.array([p[0] for p in task["pairs"]])
    b = np.array([p[1] for p in task["pairs"]])
    gold = np.array([p[2] for p in task["pairs"]])
    cosine = np.einsum("ij,ij->i", vectors[a], vectors[b])
    if task["type"] == "STS":
        from scipy.stats import spearmanr

        return float(spearmanr(cosine, gold).statistic) * 100
    from sklearn.metrics import average_precision_score

    return float(average_precision_score(gold, cosine)) * 100


def ndcg_at_10(task: dict[str, Any], vectors: np.ndarray) -> float:
    """trec_eval's ndcg_cut_10 (gain = relevance grade, log2 discount), averaged over queries."""
    doc_ids = list(task["docs"])
    doc_matrix = vectors[[task["docs"][d] for d in doc_ids]]
    scores = []
    for query, row in task["queries"].items():
        relevant = task["qrels"].get(query, {})
        sims = doc_matrix @ vectors[row]
        top = np.argsort(-sims, kind="stable")[:10]
        dcg = sum(relevant.get(doc_ids[j], 0) / np.log2(rank + 2) for rank, j in enumerate(top))
        ideal = sorted(relevant.values(), reverse=True)[:10]
        idcg = sum(g / np.log2(rank + 2) for rank, g in enumerate(ideal))
        scores.append(dcg / idcg if idcg else 0.0)
    return float(np.mean(scores)) * 100


def mean_of_types(scores: dict[str, float], data: dict[str, Any], skip: tuple[str, ...] = ()) -> float:
    by_type: dict[str, list[float]] = {}
    for name, value in scores.items():
        if name not in skip:
            by_type.setdefault(data[name]["type"], []).append(value)
    return float(np.mean([np.mean(v) for v in by_type.values()]))


def token_counts(student: Any, texts: list[str]) -> np.ndarray:
    return np.array([len(e.ids) for e in student.model.tokenizer.encode_batch_fast(texts, add_special_tokens=False)],
                    dtype=np.float64)


def run_student(student: Any, teacher_cache: dict[str, tuple[np.ndarray, float]], data: dict[str, Any],
                fit_teacher: np.ndarray, fit_student: np.ndarray, spaces: list[str]) -> dict[str, Any]:
    from core.serving.routing import SIGNALS, SharedSpace

    to_student = SharedSpace.fit(fit_teacher, fit_student)
    to_teacher = SharedSpace.fit(fit_student, fit_teacher)
    raw_student, raw_teacher, per_task = {}, {}, {}
    for name, task in data.items():
        vectors, seconds = timed(lambda task=task: embed_task(student, task))
        signals = {s: timed(lambda fn=fn, task=task: fn(student.model.tokenizer, task["texts"]))
                   for s, fn in SIGNALS.items()}
        tokens = token_counts(student, task["texts"])
        teacher_vectors, teacher_seconds = teacher_cache[name]
        per_task[name] = {"student": vectors, "teacher": teacher_vectors, "student_s": seconds,
                          "teacher_s": teacher_seconds, "tokens": tokens, "signals": signals}
        raw_student[name], raw_teacher[name] = score(task, vectors), score(task, teacher_vectors)
    reference = {"student": raw_student, "teacher": raw_teacher}
    groups = {"all": (), "without_flattering": FLATTERING}
    ends = {g: (mean_of_types(raw_student, data, skip), mean_of_types(raw_teacher, data, skip))
            for g, skip in groups.items()}

    def point(space: str, routed_of: Any, threshold: float | None, signal: str | None) -> dict[str, Any]:
        """Pairs: both texts routed. Retrieval: queries routed, documents embedded once by the design's
        document model (the teacher in the teacher space, the student in the student space)."""
        scores, routed_n, total_n, latency_s = {}, 0, 0, 0.0
        for name, task in data.items():
            t = per_task[name]
            routed = routed_of(name, t)
            cut = task["query_rows"]
            routed[cut:] = space == "teacher"  # documents: the teacher's in its space, the student's in its own
            s_vec = t["student"] if space == "student" else to_teacher.apply(t["student"])
            t_vec = to_student.apply(t["teacher"]) if space == "student" else t["teacher"]
            scores[name] = score(task, np.where(routed[:, None], t_vec, s_vec))
            routed_n, total_n = routed_n + int(routed[:cut].sum()), total_n + cut
            signal_s = t["signals"][signal or "unknown_words"][1] * cut / len(routed)
            teacher_share = t["tokens"][:cut][routed[:cut]].sum() / max(t["tokens"].sum(), 1)
            latency_s += (t["student_s"] + signal_s) * cut / len(routed) + teacher_share * t["teacher_s"]
        out: dict[str, Any] = {"threshold": threshold, "share_routed": routed_n / total_n,
                               "latency_ms_per_input": latency_s / total_n * 1000,
                               "tasks": {n: round(v, 2) for n, v in scores.items()}}
        for group, skip in groups.items():
            low, high = ends[group]
            value = mean_of_types(scores, data, skip)
            out[group] = {"mean_of_types": round(value, 2), "recovered": (value - low) / (high - low)}
        return out

    curves: dict[str, Any] = {}
    for space in spaces:
        for signal, grid in GRIDS.items():
            curves[f"{space}/{signal}"] = [
                point(space, lambda n, t, th=th, s=signal: t["signals"][s][0] > th, th, signal) for th in grid]
        shares = [p["share_routed"] for p in curves[f"{space}/unknown_words"]]
        rng = np.random.default_rng(0)
        draws = {n: rng.random(len(t["texts"])) for n, t in data.items()}
        curves[f"{space}/random"] = [point(space, lambda n, t, p=p, d=draws: d[n] < p, p, None) for p in shares]
    main = curves["teacher/short_text"] if "teacher" in spaces else curves[f"{spaces[0]}/short_text"]
    knee = max(main, key=lambda p: p["without_flattering"]["recovered"] - p["share_routed"])
    return {"dimension": int(fit_student.shape[1]), "reference": reference, "ends": ends, "curves": curves,
            "knee": {"threshold": knee["threshold"], "share_routed": knee["share_routed"],
                     "recovered_without_flattering": knee["without_flattering"]["recovered"],
                     "recovered_all": knee["all"]["recovered"], "latency_ms_per_input": knee["latency_ms_per_input"]},
            "timing_s": {n: {"student": round(t["student_s"], 3), "teacher": round(t["teacher_s"], 2),
                             "signals": {s: round(v[1], 3) for s, v in t["signals"].items()}}
                         for n, t in per_task.items()}}


def check_mteb(student: Any, teacher: Any, data: dict[str, Any], tasks: list[Any], limit: int) -> dict[str, Any]:
    """The pure student's and teacher's scores through the app's evaluation path (mteb)."""
    from core.evaluation.scoring import evaluate_model

    out = {}
    for label, model in (("student", student.sentence_transformer()), ("teacher", teacher.model)):
        report = evaluate_model(model, label, tasks, limit=limit)
        out[label] = {n: round(v, 2) for n, v in report["tasks"].items()}
    return out


def print_tables(results: dict[str, Any]) -> None:
    for name, student in results["students"].items():
        ends = student["ends"]
        print(f"\n{name} ({student['dimension']}-d): student {ends['all'][0]:.2f} / teacher {ends['all'][1]:.2f} "
              f"(without flattering sets {ends['without_flattering'][0]:.2f} / {ends['without_flattering'][1]:.2f})")
        for curve, points in student["curves"].items():
            print(f"  {curve}")
            print("    threshold  routed  recovered(all)  recovered(w/o †)  ms/input")
            for p in points:
                th = "—" if p["threshold"] is None else f"{p['threshold']:.3g}"
                print(f"    {th:>9}  {p['share_routed']:6.1%}  {p['all']['recovered']:14.1%}  "
                      f"{p['without_flattering']['recovered']:16.1%}  {p['latency_ms_per_input']:8.3f}")
        print(f"  knee: {student['knee']}")
        if "mteb_check" in student:
            print(f"  mteb check: {student['mteb_check']}  here: {student['reference']}")


if __name__ == "__main__":
    main()
