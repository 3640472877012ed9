"""Local evaluation sets as `mteb` tasks, so local and Hub tasks go through one evaluator (`mteb.evaluate`).

Each local task subclasses mteb's own STS / classification / pair-classification / retrieval /
bitext-mining task and overrides only `load_data`, which reads a folder in the layout of
`../shared/data/eval` (its README gives the fields) into memory with `datasets.Dataset.from_list`:
nothing is fetched, nothing is written to the Hugging Face cache, and mteb's scoring is used unchanged
(Spearman of cosine, logistic-regression accuracy with mteb's own protocol, average precision of
cosine, nDCG@10, nearest-neighbour accuracy).

Two suites, each read from its own root (`LocalTask.language`): the English development suite
(`DEV_SUITE`, `settings.eval_dir()`) and the French one (`FRENCH_SUITE`, `settings.french_eval_dir()`,
the sets of `../shared/data/fr/eval`). `SUITES` names them ("en", "fr", "both") for every caller that
lets a user choose (`scoring.task_refs`, the Evaluate tab, the benchmarks).

A folder that is missing files, lacks a field, has one label only or an empty qrels file raises a
`DistilleryError` naming the task and the problem; the evaluator reports that task as skipped.
"""

from __future__ import annotations

import csv
import functools
import gzip
import json
import logging
import os
import random
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core import settings
from core.errors import DistilleryError
from core.files import files_sha256
from core.languages import LANGUAGES

MTEB_VERSION = "2.26.24"  # scores are comparable only within one mteb version (part of the cache key)


@dataclass(frozen=True)
class LocalTask:
    """One local evaluation set: its name, mteb task type, folder (relative to its language's eval
    folder, `task_root`) and files."""

    name: str
    type: str  # STS | Classification | PairClassification | Retrieval | BitextMining
    folder: str
    files: tuple[str, ...]
    seconds: float = 5.0  # a student's time on every row (2-core dev machine): the task's share of the progress bar
    language: str = "en"  # which root it reads: "en" settings.eval_dir(), "fr" settings.french_eval_dir()


RETRIEVAL_FILES = ("corpus.jsonl.gz", "queries.jsonl.gz", "qrels/test.tsv")
DEV_SUITE: tuple[LocalTask, ...] = (
    LocalTask("STSBenchmark", "STS", "sts/stsbenchmark", ("test.jsonl.gz",), 4.0),
    LocalTask("SICK-R", "STS", "sts/sick", ("test.jsonl.gz",), 2.5),
    LocalTask("Banking77", "Classification", "classification/banking77", ("train.jsonl.gz", "test.jsonl.gz"), 40.0),
    LocalTask("TREC", "Classification", "classification/trec", ("train.jsonl.gz", "test.jsonl.gz"), 4.5),
    LocalTask("MRPC", "PairClassification", "pair/mrpc", ("test.jsonl.gz",), 1.0),
    LocalTask("MedQuAD", "Retrieval", "retrieval/medquad", RETRIEVAL_FILES, 10.0),
    LocalTask("XQuAD-en", "Retrieval", "retrieval/xquad_en", RETRIEVAL_FILES, 1.0),
    LocalTask("PythonStdlibDoc2Code", "Retrieval", "retrieval/python_stdlib_doc2code", RETRIEVAL_FILES, 3.0),
)
# The French sets (../shared/data/fr/eval, its README): the bitext task is scored in both directions,
# fr→en and en→fr, and mteb's score is the mean of the two; the classification set is one file, split here.
# Seconds measured with a small-recipe student on every row (2 cores, 2026-12): the 273-intent classifier
# is most of the suite's time, as Banking77 is of the English one.
FRENCH_SUITE: tuple[LocalTask, ...] = (
    LocalTask("STSBenchmark-fr", "STS", "sts/stsb_fr", ("test.jsonl.gz",), 1.0, "fr"),
    LocalTask("PythonDocs-fr-en", "BitextMining", "bitext/python_docs_en_fr", ("test.jsonl.gz",), 0.5, "fr"),
    LocalTask("CDTN-intents", "Classification", "classification/cdtn_intents", ("all.jsonl.gz",), 12.0, "fr"),
    LocalTask("CDTN-glossary", "Retrieval", "retrieval/cdtn_glossary", RETRIEVAL_FILES, 0.3, "fr"),
)
DEFAULT_SUITE = "en"
SUITES: dict[str, tuple[LocalTask, ...]] = {"en": DEV_SUITE, "fr": FRENCH_SUITE, "both": DEV_SUITE + FRENCH_SUITE}
SUITE_LABELS = LANGUAGES  # a suite per language: a recipe's language is the suite its student is judged on
EVAL_LANGS = {"en": ["eng-Latn"], "fr": ["fra-Latn"]}
# Bitext mining: one subset per direction, each a pair of columns of the same rows (mteb's parallel layout).
BITEXT_DIRECTIONS = {"fra-eng": ["fra-Latn", "eng-Latn"], "eng-fra": ["eng-Latn", "fra-Latn"]}
MAIN_SCORES = {"STS": "cosine_spearman", "Classification": "accuracy", "PairClassification": "cosine_ap",
               "Retrieval": "ndcg_at_10", "BitextMining": "accuracy"}
CLASSIFICATION_TEST_SHARE = 0.3  # of each label's texts, for a set that comes as one file (all.jsonl.gz)
# STS field names: (first text, second text, score), as each set spells them.
STS_FIELDS = (("sentence1", "sentence2", "score"), ("sentence_A", "sentence_B", "relatedness_score"))


MIN_ROWS_PER_TASK = 10


def check_rows_per_task(limit: int | None) -> None:
    """The one rule for a row limit (a recipe's follow-up evaluation, the Evaluate tab, the API)."""
    if limit is not None and limit < MIN_ROWS_PER_TASK:
        raise DistilleryError(f"Rows per task for the evaluation must be at least {MIN_ROWS_PER_TASK} "
                              f"(or 0 or empty for every row).")


def suite_tasks(name: str | None) -> tuple[LocalTask, ...]:
    """A named suite's tasks ("en", "fr" or "both"; none: the English development suite)."""
    key = (name or DEFAULT_SUITE).strip().lower()
    if key not in SUITES:
        raise DistilleryError(f"There is no evaluation suite '{str(name)[:40]}': choose one of {', '.join(SUITES)}.")
    return SUITES[key]


def suite_name(tasks: Any) -> str | None:
    """The name of the suite whose tasks are exactly `tasks`, if any (a report says which suite it ran)."""
    chosen = tuple(tasks)
    return next((name for name, suite in SUITES.items() if suite == chosen), None)


def task_root(task: LocalTask, eval_dir: Path | None = None) -> Path:
    """The folder `task.folder` is relative to: `eval_dir` when a caller names one (for every task it
    scores), else its language's evaluation folder (`settings.eval_dir()`, `settings.french_eval_dir()`)."""
    if eval_dir is not None:
        return Path(eval_dir)
    return settings.french_eval_dir() if task.language == "fr" else settings.eval_dir()


def data_digest(task: LocalTask, eval_dir: Path | None = None) -> str:
    """sha256 over the task's files (names and bytes): the teacher-score cache key changes with the data."""
    root = task_root(task, eval_dir)
    return files_sha256([root / task.folder / name for name in task.files], names=True)


def mteb_task(task: LocalTask, eval_dir: Path | None = None, limit: int | None = None, seed: int = 42):
    """An mteb task object for `task`, reading `task.folder` below `task_root(task, eval_dir)`.

    `limit` keeps a seeded random sample of that many test rows, for quick checks. For retrieval it
    keeps that many queries, and a corpus of their relevant documents plus up to 10×`limit` others.
    """
    root = task_root(task, eval_dir)
    if not root.is_dir():
        language = LANGUAGES.get(task.language, task.language)
        variable = "DISTILLERY_FR_EVAL_DIR" if task.language == "fr" else "DISTILLERY_EVAL_DIR"
        raise DistilleryError(f"{task.name}: the {language} evaluation folder {root} does not exist "
                              f"(set {variable} to where its sets are).")
    folder = root / task.folder
    missing = [f for f in task.files if not (folder / f).is_file()]
    if missing:
        raise DistilleryError(f"{task.name}: missing {', '.join(missing)} in {folder}.")
    base = _task_classes()[task.type]
    metadata = _metadata(task, folder)
    cls = type(f"Local{_identifier(task.name)}", (base,), {"metadata": metadata, "folder": folder, "limit": limit,
                                                            "files": task.files})
    return cls(seed=seed)


def import_mteb():
    """mteb, with its result cache inside the data folder: importing mteb creates that folder, in the
    home directory unless `MTEB_CACHE` says otherwise (scores are cached by core.evaluation.scoring, not by mteb)."""
    os.environ.setdefault("MTEB_CACHE", str(settings.cache_dir() / "mteb"))
    import mteb

    # mteb warns that a local static model has no known parameter count; nothing to act on.
    logging.getLogger("mteb").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"mteb\.")
    # Bitext mining's weighted precision and recall (not its accuracy, the score) warn for every unmatched row.
    warnings.filterwarnings("ignore", message=r"(Precision|Recall|F-score) is ill-defined")
    return mteb


def _identifier(name: str) -> str:
    return "".join(part.capitalize() for part in "".join(c if c.isalnum() else " " for c in name).split())


def _metadata(task: LocalTask, folder: Path):
    import_mteb()
    from mteb.abstasks.task_metadata import TaskMetadata

    return TaskMetadata(
        name=task.name, description=f"Local evaluation set {task.folder}.",
        dataset={"path": str(folder), "revision": "local"}, type=task.type, category="t2t",  # type: ignore[arg-type]
        modalities=["text"], eval_splits=["test"], main_score=MAIN_SCORES[task.type],
        eval_langs=BITEXT_DIRECTIONS if task.type == "BitextMining" else EVAL_LANGS.get(task.language, ["eng-Latn"]),
    )


def _jsonl(path: Path) -> list[dict[str, Any]]:
    try:
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            return [json.loads(line) for line in handle if line.strip()]
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DistilleryError(f"{path} is not readable gzipped JSON lines: {exc}") from exc


def _sample(rows: list, limit: int | None, seed: int) -> list:
    """A seeded random sample (the files are sorted by label or genre, so the first rows would be biased)."""
    if limit is None or limit >= len(rows):
        return rows
    keep = sorted(random.Random(seed).sample(range(len(rows)), limit))
    return [rows[i] for i in keep]


def _require(rows: list[dict[str, Any]], fields: tuple[str, ...], where: str) -> None:
    if not rows:
        raise DistilleryError(f"{where} holds no rows.")
    absent = [f for f in fields if f not in rows[0]]
    if absent:
        raise DistilleryError(f"{where} lacks the field(s) {', '.join(absent)} (it has {', '.join(rows[0])}).")


def _load_sts(self) -> None:
    from datasets import Dataset, DatasetDict

    path = self.folder / "test.jsonl.gz"
    rows = _jsonl(path)
    _require(rows, (), str(path))
    fields = next((f for f in STS_FIELDS if all(k in rows[0] for k in f)), None)
    if fields is None:
        raise DistilleryError(f"{path} has neither sentence1/sentence2/score nor sentence_A/sentence_B/"
                              f"relatedness_score (it has {', '.join(rows[0])}).")
    a, b, score = fields
    rows = _sample(rows, self.limit, self.seed)
    self.dataset = DatasetDict({"test": Dataset.from_list(
        [{"sentence1": r[a], "sentence2": r[b], "score": float(r[score])} for r in rows])})
    self.data_loaded = True


def _load_classification(self) -> None:
    from datasets import Dataset, DatasetDict

    if "all.jsonl.gz" in self.files:  # one file: split here, seeded and stratified
        path = self.folder / "all.jsonl.gz"
        rows = _jsonl(path)
        _require(rows, ("text", "label"), str(path))
        train, test = split_classification(rows, self.seed)
        named = {"train": (train, f"{path} (train part)"), "test": (test, f"{path} (test part)")}
    else:
        named = {}
        for split in ("train", "test"):
            path = self.folder / f"{split}.jsonl.gz"
            rows = _jsonl(path)
            _require(rows, ("text", "label"), str(path))
            named[split] = (rows, str(path))
    splits = {}
    for split, (rows, where) in named.items():
        if len({str(r["label"]) for r in rows}) < 2:
            raise DistilleryError(f"{where} has a single label; a classifier needs at least two.")
        if split == "test":
            rows = _sample(rows, self.limit, self.seed)
        splits[split] = Dataset.from_list([{"text": str(r["text"]), "label": str(r["label"])} for r in rows])
    self.dataset = DatasetDict(splits)
    self.data_loaded = True


def split_classification(rows: list[dict[str, Any]], seed: int, test_share: float = CLASSIFICATION_TEST_SHARE,
                         ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A seeded train/test split of one labelled file, stratified: each label with at least two texts
    gives `test_share` of them (at least one, never all) to the test part; a label with one text goes
    to train. Rows keep their file order within each part; the same seed gives the same split."""
    by_label: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        by_label.setdefault(str(row["label"]), []).append(i)
    rng = random.Random(seed)
    test: set[int] = set()
    for label in sorted(by_label):
        indices = by_label[label]
        if len(indices) < 2:
            continue
        count = min(len(indices) - 1, max(1, round(test_share * len(indices))))
        test.update(rng.sample(indices, count))
    return ([r for i, r in enumerate(rows) if i not in test], [r for i, r in enumerate(rows) if i in test])


def _load_bitext(self) -> None:
    """fr↔en pairs as mteb's parallel layout: a `fra` and an `eng` column, one subset per direction."""
    from datasets import Dataset, DatasetDict

    path = self.folder / "test.jsonl.gz"
    rows = _jsonl(path)
    _require(rows, ("sentence1", "sentence2"), str(path))
    rows = _sample(rows, self.limit, self.seed)
    self.dataset = DatasetDict({"test": Dataset.from_list(
        [{"fra": str(r["sentence1"]), "eng": str(r["sentence2"])} for r in rows])})
    self.data_loaded = True


def _load_pairs(self) -> None:
    from datasets import Dataset, DatasetDict

    path = self.folder / "test.jsonl.gz"
    rows = _jsonl(path)
    _require(rows, ("sentence1", "sentence2", "label"), str(path))
    rows = _sample(rows, self.limit, self.seed)
    self.dataset = DatasetDict({"test": Dataset.from_list(
        [{"sentence1": r["sentence1"], "sentence2": r["sentence2"], "label": int(r["label"])} for r in rows])})
    self.data_loaded = True


def _load_retrieval(self) -> None:
    from datasets import Dataset

    qrels = _read_qrels(self.folder / "qrels" / "test.tsv")
    queries = _jsonl(self.folder / "queries.jsonl.gz")
    _require(queries, ("_id", "text"), str(self.folder / "queries.jsonl.gz"))
    corpus = _jsonl(self.folder / "corpus.jsonl.gz")
    _require(corpus, ("_id", "text"), str(self.folder / "corpus.jsonl.gz"))
    queries = _sample([q for q in queries if q["_id"] in qrels], self.limit, self.seed)
    if not queries:
        raise DistilleryError(f"{self.metadata.name}: no query in queries.jsonl.gz has a relevant document.")
    if self.limit is not None:
        relevant = {d for q in queries for d in qrels[q["_id"]]}
        others = _sample([d for d in corpus if d["_id"] not in relevant], 10 * self.limit, self.seed + 1)
        corpus = [d for d in corpus if d["_id"] in relevant] + others
    self.dataset = {"default": {"test": {
        "corpus": Dataset.from_list([{"id": d["_id"], "title": d.get("title") or "", "text": d["text"]}
                                     for d in corpus]),
        "queries": Dataset.from_list([{"id": q["_id"], "text": q["text"]} for q in queries]),
        "relevant_docs": {q["_id"]: qrels[q["_id"]] for q in queries},
        "top_ranked": None,
    }}}
    self.data_loaded = True


def _read_qrels(path: Path) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle, delimiter="\t")
        if not {"query-id", "corpus-id", "score"} <= set(reader.fieldnames or ()):
            raise DistilleryError(f"{path} needs the columns query-id, corpus-id and score.")
        for row in reader:
            if int(row["score"]) > 0:
                qrels.setdefault(row["query-id"], {})[row["corpus-id"]] = int(row["score"])
    if not qrels:
        raise DistilleryError(f"{path} holds no relevant (query, document) pair.")
    return qrels


@functools.lru_cache(maxsize=1)
def _task_classes() -> dict[str, type]:
    """mteb's task classes with `load_data` replaced (imported late: mteb is heavy)."""
    import_mteb()
    from mteb.abstasks.classification import AbsTaskClassification
    from mteb.abstasks.pair_classification import AbsTaskPairClassification
    from mteb.abstasks.retrieval import AbsTaskRetrieval
    from mteb.abstasks.sts import AbsTaskSTS
    from mteb.abstasks.text.bitext_mining import AbsTaskBitextMining
    from sklearn.linear_model import LogisticRegression

    def loader(fn):
        def load_data(self, num_proc: int | None = None, **kwargs: Any) -> None:
            if not self.data_loaded:
                fn(self)
        return load_data

    class LocalSTS(AbsTaskSTS):
        min_score, max_score = 0, 5
        load_data = loader(_load_sts)

    class LocalClassification(AbsTaskClassification):
        load_data = loader(_load_classification)

        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            # mteb sets the seed on its class-level classifier; an instance of our own keeps tasks apart.
            self.evaluator_model = LogisticRegression(max_iter=100)

    class LocalPairClassification(AbsTaskPairClassification):
        label_column_name = "label"
        load_data = loader(_load_pairs)

    class LocalRetrieval(AbsTaskRetrieval):
        k_values = (1, 3, 5, 10, 20, 100)
        load_data = loader(_load_retrieval)

    class LocalBitextMining(AbsTaskBitextMining):
        # Both directions from one table: subsets "fra-eng" and "eng-fra" name its columns, and mteb's
        # task score is the mean of the subsets' accuracies.
        parallel_subsets = True
        load_data = loader(_load_bitext)

    return {"STS": LocalSTS, "Classification": LocalClassification,
            "PairClassification": LocalPairClassification, "Retrieval": LocalRetrieval,
            "BitextMining": LocalBitextMining}
