"""The vocabulary method: model2vec's `distill`, each token embedded alone by the bare transformer.

This module owns the method's parameters (`VocabularyParams`, model2vec's knobs with its defaults),
the call into model2vec with progress from its token loop (the corpus method starts from the same
call), and `distill`, the method's entry point: frequent corpus words are added to the tokenizer
first (`corpus_words`), then every token is embedded. Seconds, not minutes.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, ClassVar

from core.encoders.teacher import TeacherInfo, load_teacher, require_weights
from core.errors import Cancelled, DistilleryError
from core.methods.base import Distilled
from core.methods.corpus_words import corpus_vocabulary
from core.progress import Progress, StageClock, expected_seconds, silent

POOLING = ("mean", "first", "last", "pooler")
QUANTIZE = ("float32", "float16", "int8")


@dataclass(frozen=True)
class VocabularyParams:
    """The knobs users of model2vec know, with its defaults, and the corpus words to add."""

    method: ClassVar[str] = "vocabulary"

    pca_dims: int | None = 256
    sif_coefficient: float | None = 1e-4
    pooling: str = "mean"
    quantize_to: str = "float16"
    use_corpus_vocabulary: bool = True
    max_vocabulary_size: int = 20_000
    min_frequency: int = 5

    def validate(self, teacher: TeacherInfo | None = None) -> None:
        if self.pca_dims is not None:
            if self.pca_dims < 2:
                raise DistilleryError("pca_dims must be at least 2 (or empty for no PCA).")
            if teacher is not None and self.pca_dims > teacher.dimension:
                raise DistilleryError(
                    f"pca_dims ({self.pca_dims}) is larger than the teacher's dimension ({teacher.dimension}); "
                    f"choose {teacher.dimension} or less."
                )
        if self.sif_coefficient is not None and not 0 < self.sif_coefficient < 1:
            raise DistilleryError("The SIF coefficient must be between 0 and 1 (exclusive), e.g. 1e-4.")
        if self.pooling not in POOLING:
            raise DistilleryError(f"Unknown pooling '{self.pooling}'; choose one of {', '.join(POOLING)}.")
        if self.quantize_to not in QUANTIZE:
            raise DistilleryError(f"Unknown quantization '{self.quantize_to}'; choose one of {', '.join(QUANTIZE)}.")
        if self.use_corpus_vocabulary:
            if self.max_vocabulary_size < 1:
                raise DistilleryError("The vocabulary size must be at least 1 when the corpus vocabulary is used.")
            if self.min_frequency < 1:
                raise DistilleryError("The minimum word frequency must be at least 1.")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> VocabularyParams:
        """Parameters from JSON; a field of another method (or a typo) is refused by name."""
        data = dict(data or {})
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        if unknown:
            raise DistilleryError(f"The {cls.method} method has no parameter(s) {', '.join(unknown)}.")
        return cls(**data)


TOKENIZER_LOAD_SECONDS = 6.0  # this method's vocabulary stage loads the teacher first (6.5 s measured, 20k texts)


def stages(params: VocabularyParams, texts: int, teacher: object) -> list[tuple[str, float]]:
    """The stages `distill` runs, with their expected seconds for `texts` corpus texts (`StagePlan`);
    the teacher (a name, as for every method) does not change them.

    The bench's vocabulary figure comes from the corpus method, whose teacher is already loaded; here
    the stage loads it.
    """
    words = TOKENIZER_LOAD_SECONDS + expected_seconds("vocabulary", texts) if params.use_corpus_vocabulary else 0.0
    return [("vocabulary", words), ("distill", expected_seconds("distill", texts))]


def distill(teacher: TeacherInfo, params: VocabularyParams, texts: Sequence[str], work_dir: Path, seed: int = 0,
            progress: Progress = silent) -> Distilled:
    """The method's entry point (see `core.methods.base.Method`); `work_dir` and `seed` are unused."""
    require_weights(teacher, "vocabulary")
    clock = StageClock()
    with clock.stage("vocabulary"):
        words: list[str] = []
        if params.use_corpus_vocabulary:
            words = corpus_vocabulary(texts, load_teacher(teacher).tokenizer, params.max_vocabulary_size,
                                      params.min_frequency, progress)
    with clock.stage("distill"):
        model = distill_vocabulary(teacher, params, words, progress)
    return Distilled(model, len(words), clock.stages)


def distill_vocabulary(
    teacher: TeacherInfo, params: VocabularyParams, vocabulary: Sequence[str] | None, progress: Progress = silent
) -> Any:  # model2vec.StaticModel
    """Run model2vec's distillation (`distill_from_model`, with padding off) with progress per batch of tokens."""
    params.validate(teacher)
    require_weights(teacher, "vocabulary")
    from model2vec.distill import distill_from_model
    from transformers import AutoModel, AutoTokenizer

    try:
        model = AutoModel.from_pretrained(teacher.source, trust_remote_code=teacher.trust_remote_code)
        tokenizer = AutoTokenizer.from_pretrained(teacher.source, trust_remote_code=teacher.trust_remote_code,
                                                  use_fast=True)
    except (OSError, ValueError) as exc:
        raise DistilleryError(f"Could not load '{teacher.name}' for distillation: {exc}") from exc
    # model2vec encodes each added word with the tokenizer as saved; a tokenizer that pads to a fixed
    # length (all-MiniLM-L6-v2 pads to 128) would turn every word into 128 ids, mean-pooled with the
    # pads: slow and wrong. Words need no padding.
    tokenizer.backend_tokenizer.no_padding()
    with _token_progress(progress):
        try:
            return distill_from_model(
                model=model,
                tokenizer=tokenizer,  # type: ignore[arg-type]  # a fast tokenizer (use_fast=True)
                vocabulary=list(vocabulary) if vocabulary else None,
                pca_dims=params.pca_dims,
                sif_coefficient=params.sif_coefficient,
                quantize_to=params.quantize_to,
                pooling=params.pooling,
            )
        except (Cancelled, DistilleryError):
            raise
        except ValueError as exc:
            raise DistilleryError(f"model2vec could not distill '{teacher.name}': {exc}") from exc


@contextlib.contextmanager
def _token_progress(progress: Progress) -> Iterator[None]:
    """Route model2vec's "Encoding tokens" tqdm bar into `progress` (which may raise `Cancelled`).

    model2vec offers no callback; its loop creates `tqdm(...)` from `model2vec.distill.inference`, so
    a subclass swapped in for the duration of one call is the least invasive hook.
    """
    from model2vec.distill import inference
    from tqdm import tqdm

    class Reporting(tqdm):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            # `progress` draws the stage's bar; model2vec's own would be a second one, interleaved with
            # the teacher pass's when this runs alongside it.
            kwargs["file"] = io.StringIO()
            super().__init__(*args, **kwargs)

        def update(self, n: float | None = 1) -> bool | None:
            result = super().update(n)
            if self.total:
                progress("distill", self.n / self.total, f"{self.n:,}/{self.total:,} tokens embedded")
            return result

    original = inference.tqdm
    inference.tqdm = Reporting
    try:
        yield
    finally:
        inference.tqdm = original
