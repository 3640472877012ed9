"""The corpus method: a static model trained to reproduce the teacher's sentence embeddings of a corpus.

Stages (each reports progress): featurize (the teacher's real `encode` output, resumable shards) →
vocabulary (frequent corpus words added through model2vec's tokenizer mechanism) → distill (initial
vectors from `model2vec.distill`, unreduced) → weights (SIF from real corpus counts) → pca (the
teacher's top directions) → train (table, token weights, linear map) → a standard StaticModel.

Why not model2vec or tokenlearn alone: `distill` sees each token alone and skips the teacher's Dense
layers and prompts; tokenlearn regresses on mean token states, holds every target in RAM and finds
the pad token by name. Here the loss is on the real sentence embedding, targets are memory-mapped,
and no pad token exists (bags of ids with offsets).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from core.distill import DistillParams, distill_vocabulary
from core.errors import DistilleryError
from core.featurize import ExtraTarget, TargetReader, TargetStore, featurize, featurize_key
from core.progress import Progress, silent
from core.teacher import TeacherInfo, load_teacher
from core.static_encoder import sum_rows
from core.training import TokenizedCorpus, TrainParams, sif_weights, tokenize_corpus, top_directions, train_table
from core.vocabulary import corpus_vocabulary

# Training holds back 5% of the texts to stop early; below this there is too little to learn from or
# to validate on.
MIN_TEXTS = 200


@dataclass
class CorpusDistillation:
    """The trained model and what a record or a benchmark wants to know about how it was made."""

    model: Any  # model2vec.StaticModel
    vocabulary_added: int
    stages: dict[str, float] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    targets: TargetStore | None = None
    # The two tables the shipped one averages (float32, before quantization), kept for inspection.
    start_table: np.ndarray | None = None
    trained_table: np.ndarray | None = None


def distill_corpus(
    teacher: TeacherInfo, params: DistillParams, texts: Sequence[str], work_dir: Path, seed: int = 0,
    progress: Progress = silent, teacher_batch_size: int | None = None, extra: Sequence[ExtraTarget] = (),
) -> CorpusDistillation:
    """Run every stage on `texts`; targets live under `work_dir/targets` and survive an interruption.

    `extra` adds targets computed from the same teacher forward pass (a benchmark's baseline reads
    them from `result.targets`), so a comparison never runs the teacher twice.
    """
    params.validate(teacher)
    if len(texts) < MIN_TEXTS:
        raise DistilleryError(f"The corpus method needs at least {MIN_TEXTS} texts to train on; the corpus has "
                              f"{len(texts)} after cleaning. Add sources, relax the cleaning, or use the "
                              f"vocabulary method.")
    stages: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        stages[name] = round(now - clock, 3)
        clock = now

    model = load_teacher(teacher)
    prompt = teacher.prompts.get("document")
    key = featurize_key(teacher.fingerprint, texts, prompt, [e[0] for e in extra])
    store = featurize(model, texts, Path(work_dir) / "targets", key, prompt=prompt, batch_size=teacher_batch_size,
                      progress=progress, extra=extra)
    targets = store.open()
    lap("featurize")

    vocabulary: list[str] = []
    if params.use_corpus_vocabulary:
        vocabulary = corpus_vocabulary(texts, model.tokenizer, params.max_vocabulary_size, params.min_frequency,
                                       progress)
    lap("vocabulary")

    raw = replace(params, pca_dims=None, sif_coefficient=None, quantize_to="float32")
    base = distill_vocabulary(teacher, raw, vocabulary, progress)
    lap("distill")

    progress("weights", 0.0, "tokenizing the corpus")
    corpus = tokenize_corpus(base.tokenize, texts)
    vectors = np.asarray(base.embedding, dtype=np.float32)
    norms = np.maximum(np.linalg.norm(vectors, axis=1), 1e-8)
    weights = norms * sif_weights(corpus.token_counts(len(vectors)), params.sif_coefficient)
    unit = vectors / norms[:, None]
    lap("weights")

    k = params.pca_dims or targets.dim
    progress("pca", 0.0, f"the teacher's top {k} directions")
    target_map = top_directions(targets, k, seed=seed)
    linear_init = initial_map(unit * weights[:, None], corpus, targets, target_map, seed)
    progress("pca", 1.0, f"{k} dimensions")
    lap("pca")

    train = TrainParams(epochs=params.epochs, patience=params.patience, batch_size=params.batch_size,
                        learning_rate=params.learning_rate, seed=seed)
    result = train_table(unit, weights, linear_init, target_map, corpus, targets, train, progress)
    fitted_start = (unit * weights[:, None]) @ linear_init
    table = params.start_share * fitted_start + (1 - params.start_share) * result.table
    lap("train")

    student = _static_model(base, table, params, k)
    return CorpusDistillation(student, len(vocabulary), stages, result.history, result.best_epoch, store,
                              fitted_start, result.table)


def initial_map(
    table: np.ndarray, corpus: TokenizedCorpus, targets: TargetReader, target_map: np.ndarray, seed: int,
    sample: int = 20_000, ridge: float = 1e-2,
) -> np.ndarray:
    """Least-squares map from the untrained student's pooled vectors to the teacher's (projected) ones.

    This absorbs whatever lies between the token vectors model2vec produces and the sentence
    embedding (Dense layers, a prompt, normalisation), so training starts from a fitted student.
    """
    rows = np.sort(np.random.default_rng(seed).permutation(len(corpus))[:sample])
    lengths = corpus.lengths()[rows]
    rows, lengths = rows[lengths > 0], lengths[lengths > 0]
    indptr = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(lengths, out=indptr[1:])
    token_positions = np.repeat(corpus.offsets[rows] - indptr[:-1], lengths) + np.arange(indptr[-1])
    pooled = sum_rows(np.ascontiguousarray(table, dtype=np.float32), corpus.ids[token_positions], indptr)
    pooled /= np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-8)
    wanted = targets.take(rows) @ target_map
    wanted /= np.maximum(np.linalg.norm(wanted, axis=1, keepdims=True), 1e-8)
    gram = pooled.T.astype(np.float64) @ pooled + ridge * np.eye(pooled.shape[1])
    return np.linalg.solve(gram, pooled.T.astype(np.float64) @ wanted).astype(np.float32)


def _static_model(base, table: np.ndarray, params: DistillParams, k: int):
    from model2vec import StaticModel
    from model2vec.quantization import DType, quantize_embeddings

    config = dict(base.config)
    config.update({"apply_pca": k, "sif_coefficient": params.sif_coefficient, "hidden_dim": k,
                   "distillery_method": "corpus"})
    return StaticModel(
        vectors=quantize_embeddings(table.astype(np.float32), DType(params.quantize_to)),
        tokenizer=base.tokenizer, config=config, normalize=True,
        base_model_name=base.base_model_name, language=base.language,
    )
