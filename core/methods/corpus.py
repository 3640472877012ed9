"""The corpus method: a static model trained to reproduce the teacher's sentence embeddings of a corpus.

Stages (each reports progress and is timed by one `StageClock`): featurize (the teacher's real
`encode` output, resumable shards) → vocabulary (frequent corpus words added through model2vec's
tokenizer mechanism) → distill (initial vectors from `model2vec.distill`, unreduced) → weights (SIF
from real corpus counts) → pca (the teacher's top directions) → train (table, token weights, linear
map, then the weight-space ensemble) → a standard StaticModel. For a teacher with weights the stages
that need no targets (vocabulary, distill, the corpus's and the pairs' tokenization) run in a thread
alongside featurize (`target_free_stages`, `core.progress.Alongside`): on a GPU the teacher pass
leaves the CPU idle, and those stages were a fixed ~10 s after it (docs/benchmarks.md).

Why not model2vec or tokenlearn alone: `distill` sees each token alone and skips the teacher's Dense
layers and prompts; tokenlearn regresses on mean token states, holds every target in RAM and finds
the pad token by name. Here the loss is on the real sentence embedding, targets are memory-mapped,
and no pad token exists (bags of ids with offsets).

A teacher without weights (an endpoint, `core.encoders.endpoint`, or an installed package's embedding
function, `core.encoders.package`) changes two stages: featurize sends the texts over HTTP or through
the package's function (same shards), and distill fits the starting table to the targets
(`core.methods.target_start`) over a student tokenizer chosen separately; the rest is the same.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar, cast

import numpy as np

from core.encoders.endpoint import EndpointClient, EndpointSpec, estimate_cost
from core.encoders.package import PackageEncoder
from core.encoders.student import sum_rows
from core.encoders.teacher import TeacherInfo, has_weights, load_teacher, resolve_teacher
from core.errors import DistilleryError
from core.methods.base import Distilled
from core.methods.corpus_words import corpus_vocabulary
from core.methods.featurize import (
    ENDPOINT_SHARD_ROWS,
    ExtraTarget,
    TargetReader,
    TargetStore,
    featurize,
    featurize_key,
)
from core.methods.student_tokenizer import StudentTokenizer, token_prior
from core.methods.target_start import default_ridge, empty_student, fit_start
from core.methods.training import (
    TokenizedCorpus,
    TokenizedPairs,
    TrainParams,
    sif_weights,
    split_rows,
    tokenize_corpus,
    top_directions,
    train_table,
)
from core.methods.vocabulary import VocabularyParams, distill_vocabulary
from core.progress import Alongside, Progress, StageClock, expected_seconds, silent

# Training holds back 5% of the texts to stop early; below this there is too little to learn from or
# to validate on.
MIN_TEXTS = 200


@dataclass(frozen=True)
class CorpusParams(VocabularyParams):
    """model2vec's knobs with this method's defaults, the training, and the ensemble share."""

    method: ClassVar[str] = "corpus"

    # Token weights a/(a + p) use each token's real corpus frequency p. model2vec's 1e-4 assumes p from
    # the token id's rank, which is far milder; on real counts it silences question words
    # (docs/benchmarks.md has the sweep that chose 1e-2).
    sif_coefficient: float | None = 1e-2
    training: TrainParams = field(default_factory=TrainParams)
    # Share of the fitted start (corpus SIF weights + least-squares map) in the shipped table; the rest
    # is the trained table. A weight-space ensemble (WiSE-FT, Wortsman et al. 2022, whose default is
    # 0.5): training follows the teacher closely, the start keeps more lexical overlap, and their
    # average scored above both on the development sets (docs/benchmarks.md).
    start_share: float = 0.5
    # The student's tokenizer when the teacher has no weights (an endpoint or a package teacher): a local
    # tokenizer folder, a Hub id, "package:<name>" or None, the teacher's default
    # (`core.methods.student_tokenizer`). A teacher with weights lends its own.
    student_tokenizer: str | None = None
    # The ridge of the starting table's fit when the teacher has no weights (`target_start.fit_start`);
    # None: `target_start.default_ridge` (which depends on whether a prior is used).
    start_ridge: float | None = None
    # Without teacher weights, the prior the start is fitted around, which gives every token (also those
    # the corpus never uses) a vector: with the bundled tokenizer its model2vec vectors, mapped into the
    # teacher's space; with a package teacher's own tokenizer each token embedded alone by the teacher
    # (`student_tokenizer.token_prior`). False: fitted from the targets alone.
    start_prior: bool = True
    # Labelled text pairs for the training's pair term (`TrainParams.pair_weight`): names of
    # config/pairs.yaml's sources, or "all" (`core.corpus.pairs.choose_pair_sources`). Empty: none.
    pair_sources: tuple[str, ...] = ()
    # Pair files the user uploaded (`core.corpus.pairs.read_pair_upload`), accepted into the job's folder
    # on submit: paths relative to that folder (`uploads/pairs/<name>`); one outside it is refused.
    pair_files: tuple[str, ...] = ()
    # Fit the student to the teacher's embeddings less their mean (`TargetReader.centred`): True, False, or
    # None to decide from the targets (`CONE_COSINE`); docs/benchmarks.md has the measurement per teacher.
    centre_targets: bool | None = None

    def validate(self, teacher: TeacherInfo | None = None) -> None:
        super().validate(teacher)
        self.training.validate()
        if self.student_tokenizer and teacher is not None and teacher.has_weights:
            raise DistilleryError("A teacher with weights lends the student its own tokenizer; choose a student "
                                  "tokenizer only for a teacher without weights (an endpoint or a package).")
        if self.start_ridge is not None and not 0 < self.start_ridge <= 1000:
            raise DistilleryError("The ridge of the starting fit must be above 0 and at most 1000, e.g. 10 (or "
                                  "empty for the default).")
        if (self.pair_sources or self.pair_files) and not self.training.pair_weight:
            raise DistilleryError("Text pairs are chosen but the pair loss weight is 0; give it a weight, e.g. "
                                  "0.05, or choose no pair source or file.")
        if self.centre_targets is not None and not isinstance(self.centre_targets, bool):
            raise DistilleryError("centre_targets must be true, false, or left out to decide from the teacher's "
                                  f"embeddings; got {self.centre_targets!r}.")
        if not 0 <= self.start_share <= 1:
            raise DistilleryError("The share of the fitted start must be between 0 (trained table only) and 1 "
                                  "(no training effect), e.g. 0.5.")

    def to_dict(self) -> dict[str, Any]:
        """As JSON keeps it: the pair sources and files as lists (`from_dict` makes them tuples again)."""
        data = super().to_dict()
        data.update(pair_sources=list(self.pair_sources), pair_files=list(self.pair_files))
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> CorpusParams:
        """As `VocabularyParams.from_dict`; training fields may also stand at the top level (as the
        command line and the form give them)."""
        data = dict(data or {})
        training = dict(data.pop("training", None) or {})
        for name in TrainParams.__dataclass_fields__:
            if name in data:
                training[name] = data.pop(name)
        unknown = sorted(set(training) - set(TrainParams.__dataclass_fields__))
        if unknown:
            raise DistilleryError(f"The corpus method's training has no parameter(s) {', '.join(unknown)}.")
        params = cast(CorpusParams, super().from_dict(data))
        return replace(params, training=TrainParams(**training), pair_sources=tuple(params.pair_sources or ()),
                       pair_files=tuple(params.pair_files or ()))


@dataclass
class CorpusDistillation:
    """What the corpus method made besides the model, for the record, benchmarks and tests."""

    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    targets: TargetStore | None = None
    # The two tables the shipped one averages (float32, before quantization), kept for inspection.
    start_table: np.ndarray | None = None
    trained_table: np.ndarray | None = None


def stages(params: CorpusParams, texts: int, teacher: TeacherInfo | EndpointSpec | str) -> list[tuple[str, float]]:
    """The stages `distill` runs, with their expected seconds for `texts` corpus texts (`StagePlan`);
    training time grows with the epochs asked for (the bench ran the defaults).

    With a teacher with weights, vocabulary and distill run alongside the teacher pass and are done
    when it ends: their seconds are counted in featurize's (on a CPU they share its cores; on a GPU
    the job's measured pace shortens the estimate), so the bar does not wait at the end of featurize
    for stages that already ran."""
    epochs = params.training.epochs / TrainParams().epochs
    vocabulary = expected_seconds("vocabulary", texts) if params.use_corpus_vocabulary else 0.0
    start = expected_seconds("distill", texts)
    featurize = expected_seconds("featurize", texts)
    if has_weights(teacher):
        featurize, vocabulary, start = featurize + vocabulary + start, 0.0, 0.0
    return [("featurize", featurize), ("vocabulary", vocabulary), ("distill", start),
            ("weights", expected_seconds("weights", texts)), ("pca", expected_seconds("pca", texts)),
            ("train", expected_seconds("train", texts) * epochs)]


def distill(
    teacher: TeacherInfo, params: CorpusParams, texts: Sequence[str], work_dir: Path, seed: int = 0,
    progress: Progress = silent, teacher_batch_size: int | None = None, extra: Sequence[ExtraTarget] = (),
    alongside_teacher: bool = True,
) -> Distilled:
    """Run every stage on `texts`; targets live under `work_dir/targets` and survive an interruption.
    `work_dir` is `<job>/corpus-method` (`core.pipeline.run_recipe`): the recipe's uploaded pair files
    are read from its parent, the job's folder, and nowhere else.

    `extra` adds targets computed from the same teacher forward pass (a benchmark's baseline reads
    them from `result.details.targets`), so a comparison never runs the teacher twice.
    `alongside_teacher=False` runs the stages that need no targets before the teacher pass instead of
    during it (`target_free_stages`): the same model, the sequential schedule a benchmark compares with.
    """
    params.validate(teacher)
    if params.pair_files:  # refused before the teacher runs: a recipe must not name files outside its job
        from core.corpus.pairs import job_pair_files

        job_pair_files(Path(work_dir).parent, params.pair_files)
    if len(texts) < MIN_TEXTS:
        raise DistilleryError(f"The corpus method needs at least {MIN_TEXTS} texts to train on; the corpus has "
                              f"{len(texts)} after cleaning. Add sources, relax the cleaning, or use the "
                              f"vocabulary method.")
    clock = StageClock()
    prompt = teacher.prompts.get("document")
    key = featurize_key(teacher.fingerprint, texts, prompt, [e[0] for e in extra])
    corpus: TokenizedCorpus | None = None
    target_map: np.ndarray | None = None
    prepared: TargetFree | None = None
    if teacher.has_weights:
        model = load_teacher(teacher)
        # The stages that need no targets run alongside the teacher pass, on their own tokenizer (a fast
        # tokenizer is not safe to share between threads).
        own_tokenizer = copy.deepcopy(model.tokenizer)
        alongside = Alongside(lambda report: target_free_stages(teacher, params, texts, own_tokenizer, seed,
                                                                Path(work_dir).parent, report, clock),
                              concurrent=alongside_teacher)

        def featurize_progress(stage: str, fraction: float, message: str = "") -> None:
            alongside.check()
            progress(stage, fraction, message)

        try:
            with clock.stage("featurize"):
                store = featurize(model, texts, Path(work_dir) / "targets", key, prompt=prompt,
                                  batch_size=teacher_batch_size, progress=featurize_progress, extra=extra,
                                  teacher=teacher)
        except BaseException:
            alongside.stop()
            raise
        with clock.stage("overlap_wait"):  # what of the stages alongside was left when the teacher pass ended
            prepared = alongside.result(_in_plan_order(progress))
        clock.stages = {"featurize": clock.stages.pop("featurize"), **clock.stages}  # the record reads in run order
        vocabulary, base, corpus = prepared.vocabulary, prepared.base, prepared.corpus
        targets, fitted_to = _fitted_targets(store, params, seed)
        k = params.pca_dims or targets.dim
    else:
        with clock.stage("featurize"):
            chosen = StudentTokenizer.named(params.student_tokenizer, teacher)
            tokenizer = chosen.load()
            store = featurize_without_weights(teacher, texts, Path(work_dir) / "targets", key, tokenizer, progress,
                                              extra)
            targets, fitted_to = _fitted_targets(store, params, seed)
            k = params.pca_dims or targets.dim
        with clock.stage("vocabulary"):
            vocabulary = _vocabulary(params, texts, tokenizer, progress)
        with clock.stage("distill"):  # no weights: the start is fitted to the targets (core.methods.target_start)
            prior = None
            if params.start_prior and chosen.bundled:
                base = distill_vocabulary(resolve_teacher(None), raw_params(params), vocabulary, progress)
                prior = np.asarray(base.embedding, dtype=np.float32)
            else:
                base = empty_student(tokenizer, vocabulary, k, params.pooling)
                if params.start_prior and teacher.package is not None:
                    prior = token_prior(teacher, list(base.tokens), set(tokenizer.get_vocab()), work_dir, progress)
            progress("distill", 0.0, "tokenizing the corpus with the student's tokenizer")
            corpus = tokenize_corpus(base.tokenize, texts)
            target_map = top_directions(targets, k, seed=seed)
            token_weights = sif_weights(corpus.token_counts(len(base.tokens)), params.sif_coefficient)
            # Fitted through the student's own pooling (SIF weights), so the weights stage that follows
            # (table norms × SIF weights) pools exactly what was fitted.
            _, fitted_rows, _ = split_rows(corpus, params.training.validation_share, seed)
            ridge = params.start_ridge or default_ridge(prior is not None)
            table = fit_start(corpus, token_weights, targets, target_map, fitted_rows, ridge, progress=progress,
                              prior=prior)
            base.embedding = table

    with clock.stage("weights"):
        if corpus is None:
            progress("weights", 0.0, "tokenizing the corpus")
            corpus = tokenize_corpus(base.tokenize, texts)
        vectors = np.asarray(base.embedding, dtype=np.float32)
        norms = np.maximum(np.linalg.norm(vectors, axis=1), 1e-8)
        weights = norms * sif_weights(corpus.token_counts(len(vectors)), params.sif_coefficient)
        unit = vectors / norms[:, None]

    with clock.stage("pca"):
        progress("pca", 0.0, f"the teacher's top {k} directions")
        if target_map is None:
            target_map = top_directions(targets, k, seed=seed)
        linear_init = initial_map(unit * weights[:, None], corpus, targets, target_map, seed)
        progress("pca", 1.0, f"{k} dimensions")

    with clock.stage("train"):
        if prepared is not None:
            pairs, pair_counts = prepared.pairs, prepared.pair_counts
        else:
            pairs, pair_counts = tokenized_pairs(params, base.tokenize, seed, progress, Path(work_dir).parent)
        result = train_table(unit, weights, linear_init, target_map, corpus, targets, params.training, seed, progress,
                             pairs)
        fitted_start = (unit * weights[:, None]) @ linear_init
        table = params.start_share * fitted_start + (1 - params.start_share) * result.table

    student = _static_model(base, table, params, k)
    details = CorpusDistillation(result.history, result.best_epoch, store, fitted_start, result.table)
    training = {"best_epoch": result.best_epoch, "history": result.history, "start_share": params.start_share,
                # a resumed job embeds only the shards an interruption left missing
                "featurize": {"shards": store.shards, "reused_shards": store.reused_shards,
                              "texts_embedded": store.texts_embedded},
                "targets": fitted_to}
    if params.training.neighbours:
        training["neighbour_seconds"] = round(result.neighbour_seconds, 2)
    if pair_counts:
        training["pairs"] = pair_counts
        training["pair_weight"] = params.training.pair_weight
    if not teacher.has_weights:
        training["student_tokenizer"] = chosen.name
    return Distilled(student, len(vocabulary), clock.stages, training, details)


# Above this mean cosine between two texts' targets, a teacher's embeddings sit in a cone and the student
# is fitted to them less their mean. Measured on corpus targets: multilingual-e5-small 0.81 (centred:
# +7.4 points on the French suite), all-MiniLM-L6-v2 0.03, USE multilingual 0.04.
CONE_COSINE = 0.5


def _fitted_targets(store: TargetStore, params: CorpusParams, seed: int) -> tuple[TargetReader, dict[str, Any]]:
    """The targets the student is fitted to, the teacher's or less their mean (`centre_targets`), and
    what was decided, for the training record."""
    targets = store.open()
    mean, cosine = targets.means(seed=seed)
    centre = cosine > CONE_COSINE if params.centre_targets is None else params.centre_targets
    return (targets.centred(mean) if centre else targets), {"mean_cosine": round(cosine, 4), "centred": centre}


@dataclass
class TargetFree:
    """What the stages that need no targets make (`target_free_stages`)."""

    vocabulary: list[str]
    base: Any  # model2vec.StaticModel: the distilled start, unreduced
    corpus: TokenizedCorpus  # the corpus in the start's tokens
    pairs: TokenizedPairs | None
    pair_counts: dict[str, int]


def target_free_stages(
    teacher: TeacherInfo, params: CorpusParams, texts: Sequence[str], tokenizer: Any, seed: int, job_dir: Path,
    progress: Progress = silent, clock: StageClock | None = None,
) -> TargetFree:
    """The stages of a teacher with weights that need no targets: the corpus vocabulary, model2vec's
    distill of the start, the corpus and the pairs in its tokens. `distill` runs them alongside the
    teacher pass (`Alongside`), so on a GPU they cost the CPU's idle time instead of time after it;
    `clock` records them as run alongside "featurize"."""
    clock = clock or StageClock()
    with clock.stage("vocabulary", alongside="featurize"):
        vocabulary = _vocabulary(params, texts, tokenizer, progress)
    with clock.stage("distill", alongside="featurize"):
        base = distill_vocabulary(teacher, raw_params(params), vocabulary, progress)
    with clock.stage("tokenize", alongside="featurize"):
        progress("weights", 0.0, "tokenizing the corpus")
        corpus = tokenize_corpus(base.tokenize, texts)
        pairs, pair_counts = tokenized_pairs(params, base.tokenize, seed, progress, job_dir)
    return TargetFree(vocabulary, base, corpus, pairs, pair_counts)


def _vocabulary(params: CorpusParams, texts: Sequence[str], tokenizer: Any, progress: Progress) -> list[str]:
    if not params.use_corpus_vocabulary:
        return []
    return corpus_vocabulary(texts, tokenizer, params.max_vocabulary_size, params.min_frequency, progress)


def _in_plan_order(progress: Progress) -> Progress:
    """The stages alongside as the job's bar shows them once the teacher pass is done: their reports
    fall in the plan's vocabulary and distill stages (the pairs' reading too), never ahead of them."""
    def relay(stage: str, fraction: float, message: str = "") -> None:
        if stage in ("vocabulary", "distill"):
            progress(stage, fraction, message)
        else:
            progress("distill", 1.0, message)
    return relay


def tokenized_pairs(params: CorpusParams, tokenize: Any, seed: int, progress: Progress = silent,
                    job_dir: Path | None = None) -> tuple[TokenizedPairs | None, dict[str, int]]:
    """The recipe's text pairs (named sources, then uploaded files) in the student's tokens, and the
    pairs kept per source or file name (none when the recipe names neither).

    `job_dir` is the job's folder (the parent of the method's `work_dir`, `core.pipeline.run_recipe`):
    the uploaded pair files are read from there, and a path outside it is refused.
    """
    if not (params.pair_sources or params.pair_files) or not params.training.pair_weight:
        return None, {}
    from core.corpus.pairs import choose_pair_sources, job_pair_files, load_pairs

    if params.pair_files and job_dir is None:
        raise DistilleryError("Uploaded pair files are read from the job's folder, and none was given.")
    files = job_pair_files(job_dir, params.pair_files) if job_dir is not None else []
    sources = choose_pair_sources(params.pair_sources) if params.pair_sources else []
    chosen = load_pairs(sources, seed=seed, progress=progress, uploads=files)
    if len(chosen) < 2:
        raise DistilleryError("The chosen pair sources and files hold fewer than 2 usable pairs.")
    progress("train", 0.0, f"tokenizing {len(chosen):,} text pairs")
    return TokenizedPairs(tokenize_corpus(tokenize, chosen.left), tokenize_corpus(tokenize, chosen.right)), chosen.counts


def raw_params(params: CorpusParams) -> VocabularyParams:
    """model2vec's distillation as the start needs it: unreduced, unweighted float32 vectors."""
    return VocabularyParams(pca_dims=None, sif_coefficient=None, pooling=params.pooling, quantize_to="float32",
                            use_corpus_vocabulary=False)


def featurize_without_weights(
    teacher: TeacherInfo, texts: Sequence[str], folder: Path, key: str, tokenizer: Any, progress: Progress = silent,
    extra: Sequence[ExtraTarget] = (),
) -> TargetStore:
    """The targets of a teacher without weights, in the same resumable shards: a package teacher's
    through its function; an endpoint's in smaller shards (an interruption loses the paid requests of
    one shard), its cost announced first."""
    if teacher.package is not None:
        return featurize(PackageEncoder(teacher), texts, folder, key, prompt=teacher.prompts.get("document"),
                         progress=progress, extra=extra, teacher=teacher)
    spec = EndpointSpec.from_dict(teacher.endpoint or {})
    cost = estimate_cost(spec, texts, tokenizer)
    progress("featurize", 0.0, cost.sentence(spec.title))
    client = EndpointClient(spec, teacher.dimension)
    try:
        return featurize(client, texts, folder, key, prompt=teacher.prompts.get("document"), progress=progress,
                         extra=extra, shard_rows=ENDPOINT_SHARD_ROWS)
    finally:
        client.close()


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


def _static_model(base: Any, table: np.ndarray, params: CorpusParams, k: int) -> Any:
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
