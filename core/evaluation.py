"""MTEB-style scores on the local development sets, with a fixed protocol, for `bench/quality.py`.

The product evaluates through mteb itself (`core.evaluate`). This module keeps the protocol that the
quality bench's published figures were measured with (classification: one logistic regression fitted
on the whole train split), so they stay comparable from run to run.

Each task reads its files from the evaluation folder (`DISTILLERY_EVAL_DIR`, default
`../shared/data/eval`) and is scored as MTEB scores its task type: Spearman of cosine (STS), accuracy
of a logistic regression on the embeddings (classification), average precision of cosine (pair
classification), nDCG@10 (retrieval). Scores are in points (0–100). Embeddings go through
`embed_collection`, so a teacher's are computed once per machine and cached.
"""

from __future__ import annotations

import csv
import gzip
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from core import settings
from core.embedders import Embedder
from core.errors import DistilleryError
from core.mteb_tasks import DEV_SUITE as DEV_TASKS
from core.mteb_tasks import LocalTask as EvalTask
from core.progress import Progress, silent
from core.search import embed_collection


@dataclass
class EvalModel:
    """What a task needs of a model: a query side and a document side (the same for a static model)."""

    label: str
    queries: Embedder
    documents: Embedder


def evaluate(model: EvalModel, tasks: tuple[EvalTask, ...] = DEV_TASKS, progress: Progress = silent,
             eval_dir: Path | None = None) -> dict[str, Any]:
    """Scores per task, the mean per task type, and the mean over tasks."""
    eval_dir = Path(eval_dir or settings.eval_dir())
    scores: dict[str, float] = {}
    for i, task in enumerate(tasks):
        progress("evaluate", i / len(tasks), f"{model.label}: {task.name}")
        folder = eval_dir / task.folder
        missing = [f for f in task.files if not (folder / f).is_file()]
        if missing:
            raise DistilleryError(f"Evaluation data for {task.name} is missing: {', '.join(missing)} in {folder}.")
        scores[task.name] = round(100 * _SCORERS[task.type](model, folder, task), 2)
    progress("evaluate", 1.0, f"{model.label}: done")
    return summarise(scores, tasks)


def summarise(scores: dict[str, float], tasks: tuple[EvalTask, ...] = DEV_TASKS) -> dict[str, Any]:
    types: dict[str, list[float]] = {}
    for task in tasks:
        if task.name in scores:
            types.setdefault(task.type, []).append(scores[task.name])
    return {
        "tasks": scores,
        "type_means": {t: round(float(np.mean(v)), 2) for t, v in types.items()},
        "avg": round(float(np.mean(list(scores.values()))), 2),
    }


def _embed(embedder: Embedder, texts: list[str]) -> np.ndarray:
    return embed_collection(embedder, texts, settings.cache_dir(), batch=2048, stage="evaluate")


def _sts(model: EvalModel, folder: Path, task: EvalTask) -> float:
    from scipy.stats import spearmanr

    rows = list(_jsonl(folder / task.files[0]))
    a_key, b_key, score_key = ("sentence1", "sentence2", "score") if "sentence1" in rows[0] else (
        "sentence_A", "sentence_B", "relatedness_score")
    a = _embed(model.queries, [r[a_key] for r in rows])
    b = _embed(model.queries, [r[b_key] for r in rows])
    return float(spearmanr((a * b).sum(1), [float(r[score_key]) for r in rows]).statistic)


def _classification(model: EvalModel, folder: Path, task: EvalTask) -> float:
    from sklearn.linear_model import LogisticRegression

    train, test = (list(_jsonl(folder / f)) for f in task.files)
    x_train = _embed(model.queries, [r["text"] for r in train])
    x_test = _embed(model.queries, [r["text"] for r in test])
    classifier = LogisticRegression(max_iter=1000, random_state=0)
    classifier.fit(x_train, [str(r["label"]) for r in train])
    return float(np.mean(classifier.predict(x_test) == np.array([str(r["label"]) for r in test])))


def _pair(model: EvalModel, folder: Path, task: EvalTask) -> float:
    from sklearn.metrics import average_precision_score

    rows = list(_jsonl(folder / task.files[0]))
    a = _embed(model.queries, [r["sentence1"] for r in rows])
    b = _embed(model.queries, [r["sentence2"] for r in rows])
    return float(average_precision_score([int(r["label"]) for r in rows], (a * b).sum(1)))


def _retrieval(model: EvalModel, folder: Path, task: EvalTask) -> float:
    corpus = list(_jsonl(folder / task.files[0]))
    queries = list(_jsonl(folder / task.files[1]))
    qrels = _qrels(folder / task.files[2])
    queries = [q for q in queries if q["_id"] in qrels]
    docs = _embed(model.documents, [f"{d.get('title') or ''} {d['text']}".strip() for d in corpus])
    query_vectors = _embed(model.queries, [q["text"] for q in queries])
    doc_ids = [d["_id"] for d in corpus]
    total = 0.0
    for start in range(0, len(queries), 512):
        sims = query_vectors[start:start + 512] @ docs.T
        top = np.argsort(-sims, axis=1)[:, :10]
        for q, ranked in zip(queries[start:start + 512], top):
            total += _ndcg_at_10([qrels[q["_id"]].get(doc_ids[j], 0) for j in ranked], qrels[q["_id"]])
    return total / len(queries)


def _ndcg_at_10(gains: list[int], relevant: dict[str, int]) -> float:
    dcg = sum(g / math.log2(i + 2) for i, g in enumerate(gains))
    ideal = sorted(relevant.values(), reverse=True)[:10]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def _qrels(path: Path) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    with path.open() as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            if int(row["score"]) > 0:
                qrels.setdefault(row["query-id"], {})[row["corpus-id"]] = int(row["score"])
    return qrels


def _jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)


_SCORERS: dict[str, Callable[[EvalModel, Path, EvalTask], float]] = {
    "STS": _sts, "Classification": _classification, "PairClassification": _pair, "Retrieval": _retrieval,
}
