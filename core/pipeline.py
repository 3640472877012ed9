"""A recipe end to end: corpus → distillation (vocabulary or corpus method) → search index → saved model.

This is the whole product without the UI or the queue: `jobs` calls it in a worker, and a script
can call it directly (see `python -m core`). Each stage reports progress and is timed.
"""

from __future__ import annotations

import json
import random
import resource
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from core import settings
from core.corpus import build_corpus
from core.corpus_method import distill_corpus
from core.distill import distill_vocabulary, save_atomically
from core.embedders import teacher_embedder
from core.model_card import render_card
from core.progress import Progress, silent
from core.recipe import Recipe, validate_recipe
from core.search import embed_collection
from core.sources import SourceCatalogue, load_catalogue
from core.teacher import TeacherInfo, load_teacher
from core.vocabulary import corpus_vocabulary

RECORD_FILE = "distillery.json"
COLLECTION_FILE = "collection.json"


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class StageClock:
    """Wall time and memory after each stage, for the record and the closing report."""

    def __init__(self) -> None:
        self.stages: dict[str, dict[str, float]] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        yield
        self.stages[name] = {"seconds": round(time.perf_counter() - start, 3), "peak_rss_mb": round(peak_rss_mb(), 1)}


def run_recipe(
    recipe: Recipe, job_dir: Path, model_dir: Path, progress: Progress = silent,
    catalogue: SourceCatalogue | None = None,
) -> dict[str, Any]:
    """Build, distill and save; returns the record also written as `distillery.json` in the model folder."""
    clock = StageClock()
    catalogue = catalogue or load_catalogue()
    progress("validate", 0.0, "checking the recipe")
    teacher = validate_recipe(recipe, catalogue)
    job_dir.mkdir(parents=True, exist_ok=True)

    with clock.stage("corpus"):
        corpus = build_corpus(recipe.corpus_plan(catalogue), job_dir / "corpus", progress)
        texts = corpus.texts()

    training: dict[str, Any] | None = None
    if recipe.method == "corpus":
        result = distill_corpus(teacher, recipe.distill, texts, job_dir / "corpus-method", recipe.seed, progress)
        model, vocabulary_added = result.model, result.vocabulary_added
        for name, seconds in result.stages.items():
            clock.stages[name] = {"seconds": seconds, "peak_rss_mb": round(peak_rss_mb(), 1)}
        training = {"best_epoch": result.best_epoch, "history": result.history,
                    "start_share": recipe.distill.start_share}
    else:
        model, vocabulary_added = _distill_by_vocabulary(recipe, teacher, texts, clock, progress)

    with clock.stage("index"):
        collection = sample_collection(texts, recipe.collection_size, recipe.seed)
        (job_dir / COLLECTION_FILE).write_text(json.dumps(collection, ensure_ascii=False))
        embed_collection(teacher_embedder(teacher), collection, settings.cache_dir(), progress=progress)

    record = {
        "id": model_dir.name,
        "name": recipe.name or model_dir.name,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "job_dir": str(job_dir),
        "recipe": recipe.to_dict(),
        "teacher": teacher.to_dict(),
        "corpus": corpus.manifest,
        "vocabulary_added": vocabulary_added,
        "vocabulary_size": len(model.tokens),
        "dimension": int(model.dim),
        "stages": clock.stages,
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }
    if training is not None:
        record["training"] = training
    with clock.stage("save"):
        progress("save", 0.0, "writing the model folder")
        save_atomically(model, model_dir, extra_json={RECORD_FILE: record}, card=render_card(record))
        progress("save", 1.0, str(model_dir))
    record["stages"] = clock.stages
    return record


def _distill_by_vocabulary(recipe: Recipe, teacher: TeacherInfo, texts: list[str], clock: StageClock,
                           progress: Progress) -> tuple[Any, int]:
    """The vocabulary method: model2vec's distill, with frequent corpus words added to the tokenizer."""
    with clock.stage("vocabulary"):
        vocabulary = None
        if recipe.distill.use_corpus_vocabulary:
            params = recipe.distill
            vocabulary = corpus_vocabulary(texts, load_teacher(teacher).tokenizer, params.max_vocabulary_size,
                                           params.min_frequency, progress)
    with clock.stage("distill"):
        model = distill_vocabulary(teacher, recipe.distill, vocabulary, progress)
    return model, len(vocabulary or [])


def sample_collection(texts: list[str], size: int, seed: int) -> list[str]:
    """A seeded sample of corpus passages for the Compare tab's default search collection."""
    rng = random.Random(seed)
    return rng.sample(texts, min(size, len(texts)))


def load_record(model_dir: Path) -> dict[str, Any]:
    return json.loads((model_dir / RECORD_FILE).read_text())
