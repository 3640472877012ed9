"""Vocabulary-only distillation through `model2vec.distill`, written to disk atomically.

model2vec embeds each token alone with the bare transformer; this module adds the parameters and
checks a user needs, progress from model2vec's token loop, and a save that is never half-visible.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from core.errors import Cancelled, DistilleryError
from core.progress import Progress, silent
from core.teacher import TeacherInfo

POOLING = ("mean", "first", "last", "pooler")
# The corpus method weighs tokens by their real corpus frequency p: a/(a + p). model2vec's 1e-4 assumes
# p from the token id's rank, which is far milder; on real counts 1e-4 silences question words, and
# 1e-2 scored best on the development sets (docs/benchmarks.md).
CORPUS_SIF_COEFFICIENT = 1e-2
QUANTIZE = ("float32", "float16", "int8")


@dataclass(frozen=True)
class DistillParams:
    """The knobs users of model2vec know, with its defaults."""

    pca_dims: int | None = 256
    sif_coefficient: float | None = 1e-4
    pooling: str = "mean"
    quantize_to: str = "float16"
    use_corpus_vocabulary: bool = True
    max_vocabulary_size: int = 20_000
    min_frequency: int = 5
    # Corpus method only: training of the table against the teacher's embeddings.
    epochs: int = 10
    patience: int = 2
    batch_size: int = 256
    learning_rate: float = 1e-3
    # Share of the fitted start (corpus SIF weights + least-squares map) in the shipped table; the rest
    # is the trained table. A weight-space ensemble (WiSE-FT, Wortsman et al. 2022, whose default is
    # 0.5): training follows the teacher closely, the start keeps more lexical overlap, and their
    # average scored above both on the development sets (docs/benchmarks.md).
    start_share: float = 0.5

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
        if not 1 <= self.epochs <= 1000:
            raise DistilleryError("Epochs must be between 1 and 1000.")
        if not 1 <= self.patience <= 1000:
            raise DistilleryError("Patience must be at least 1 epoch.")
        if not 8 <= self.batch_size <= 65_536:
            raise DistilleryError("The training batch size must be between 8 and 65,536.")
        if not 0 < self.learning_rate <= 1:
            raise DistilleryError("The learning rate must be above 0 and at most 1, e.g. 1e-3.")
        if not 0 <= self.start_share <= 1:
            raise DistilleryError("The share of the fitted start must be between 0 (trained table only) and 1 "
                                  "(no training effect), e.g. 0.5.")
        if self.use_corpus_vocabulary:
            if self.max_vocabulary_size < 1:
                raise DistilleryError("The vocabulary size must be at least 1 when the corpus vocabulary is used.")
            if self.min_frequency < 1:
                raise DistilleryError("The minimum word frequency must be at least 1.")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def distill_vocabulary(
    teacher: TeacherInfo, params: DistillParams, vocabulary: Sequence[str] | None, progress: Progress = silent
):  # -> model2vec.StaticModel
    """Run model2vec's distillation (`distill_from_model`, with padding off) with progress per batch of tokens."""
    params.validate(teacher)
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
                tokenizer=tokenizer,
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

    class Reporting(tqdm):  # type: ignore[misc]
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


def save_atomically(
    model, destination: Path, extra_json: dict[str, dict[str, Any]] | None = None, card: str | None = None
) -> Path:
    """Save a StaticModel to a hidden temporary folder beside `destination`, then rename it into place.

    A crash or cancel at any point leaves either nothing or the complete folder, never a partial one.
    """
    destination = Path(destination)
    if destination.exists():
        raise DistilleryError(f"A model already exists at {destination}.")
    destination.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{destination.name}.", suffix=".tmp", dir=destination.parent))
    try:
        model.save_pretrained(str(tmp))
        for name, data in (extra_json or {}).items():
            (tmp / name).write_text(json.dumps(data, indent=2))
        if card is not None:
            (tmp / "README.md").write_text(card)
        os.replace(tmp, destination)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return destination
