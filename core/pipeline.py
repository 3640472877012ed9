"""A recipe end to end: corpus → distillation (the recipe's method) → search collection → saved model.

This is the whole product without the UI or the queue: `jobs` calls it in a worker, and a script
can call it directly (see `python -m core`). Each stage reports progress and is timed by one
`StageClock` (the method times its own stages with its own).
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path

from core import settings
from core.artifact.folder import ModelFolder
from core.artifact.record import ModelRecord
from core.corpus.build import MANIFEST_FILE, Corpus, build_corpus
from core.corpus.sources import SourceCatalogue, load_catalogue
from core.encoders.endpoint import CostEstimate, EndpointSpec, estimate_cost
from core.encoders.teacher import teacher_encoder
from core.errors import DistilleryError
from core.methods.registry import method
from core.methods.student_tokenizer import StudentTokenizer
from core.progress import Progress, StageClock, StagePlan, expected_seconds, peak_rss_mb, silent
from core.recipe import Recipe, validate_recipe
from core.serving.collection import embed_collection


def run_recipe(
    recipe: Recipe, job_dir: Path, model_dir: Path, progress: Progress = silent,
    catalogue: SourceCatalogue | None = None,
) -> ModelRecord:
    """Build, distill and save; returns the record also written into the model folder."""
    clock = StageClock()
    catalogue = catalogue or load_catalogue()
    progress("validate", 0.0, "checking the recipe")
    teacher = validate_recipe(recipe, catalogue)
    job_dir.mkdir(parents=True, exist_ok=True)

    with clock.stage("corpus"):
        corpus = reuse_or_build_corpus(recipe, catalogue, job_dir / "corpus", progress)
        texts = corpus.texts()

    distilled = method(recipe.method).distill(teacher, recipe.params, texts, job_dir / f"{recipe.method}-method",
                                              recipe.seed, progress)
    clock.stages.update(distilled.stages)

    with clock.stage("index"):
        collection = sample_collection(texts, recipe.collection_size, recipe.seed)
        # The teacher's side of the Compare tab, computed now (in the worker) and cached by content.
        embed_collection(teacher_encoder(teacher), collection, settings.cache_dir(), progress=progress)

    record = ModelRecord(
        id=model_dir.name, name=recipe.name or model_dir.name,
        created=datetime.now(UTC).isoformat(timespec="seconds"), recipe=recipe.to_dict(),
        teacher=teacher, corpus=corpus.manifest, vocabulary_added=distilled.vocabulary_added,
        vocabulary_size=len(distilled.model.tokens), dimension=int(distilled.model.dim), stages=clock.stages,
        peak_rss_mb=round(peak_rss_mb(), 1), training=distilled.training, job_dir=str(job_dir),
    )
    with clock.stage("save"):
        progress("save", 0.0, "writing the model folder")
        ModelFolder.create(distilled.model, record, collection, model_dir)
        progress("save", 1.0, str(model_dir))
    return record


def reuse_or_build_corpus(recipe: Recipe, catalogue: SourceCatalogue, folder: Path, progress: Progress) -> Corpus:
    """The job's corpus: reused when a resumed job already built it (a job folder's corpus comes only
    from its own recipe, and its manifest is written after the texts, so a manifest means complete)."""
    if (folder / MANIFEST_FILE).is_file():
        progress("corpus", 1.0, "reusing the corpus this job built before it was interrupted")
        return Corpus.load(folder)
    return build_corpus(recipe.corpus_plan(catalogue), folder, progress)


# The index stage loads the teacher and embeds the search collection: measured with the default
# recipe on a quiet 2-core VM (2026-12-01, `python -m core`), 51.9 s for 2,000 texts, about 5 s of it
# the teacher's load; the pipeline bench's 9.1 s was for 500 texts.
INDEX_FIXED_SECONDS, INDEX_SECONDS_PER_TEXT = 5.0, 0.0235


def stage_plan(recipe: Recipe) -> StagePlan:
    """The stages `run_recipe` runs for `recipe`, each with its expected seconds (`core.progress`)."""
    size = recipe.corpus_size
    index = INDEX_FIXED_SECONDS + INDEX_SECONDS_PER_TEXT * recipe.collection_size
    return StagePlan.of([("corpus", expected_seconds("corpus", size)),
                         *method(recipe.method).stages(recipe.params, size, recipe.teacher),
                         ("index", index), ("save", expected_seconds("save", size))])


def estimate_recipe(recipe: Recipe, job_dir: Path, progress: Progress = silent,
                    catalogue: SourceCatalogue | None = None) -> CostEstimate:
    """What featurizing the recipe's corpus through its endpoint teacher will send (texts, tokens by
    the student's tokenizer, requests), before any of it is sent: the recipe is checked (one probe
    request) and the corpus built into `job_dir`, nothing else."""
    if not isinstance(recipe.teacher, EndpointSpec):
        raise DistilleryError("A cost estimate is for an endpoint teacher; a local teacher costs no requests.")
    catalogue = catalogue or load_catalogue()
    validate_recipe(recipe, catalogue)
    corpus = build_corpus(recipe.corpus_plan(catalogue), job_dir / "corpus", progress)
    tokenizer = StudentTokenizer.named(getattr(recipe.params, "student_tokenizer", None)).load()
    return estimate_cost(recipe.teacher, corpus.texts(), tokenizer)


def sample_collection(texts: list[str], size: int, seed: int) -> list[str]:
    """A seeded sample of corpus passages for the Compare tab's default search collection."""
    rng = random.Random(seed)
    return rng.sample(texts, min(size, len(texts)))
