"""Train a static table so that its pooled embedding of each text reproduces the teacher's.

The student of a text is `normalize(sum_i w[t_i] * E[t_i] @ M)`: a table `E`, a weight per token
`w` and a linear map `M` shared by all tokens. Because pooling is linear, `M` and `w` fold exactly
into the table afterwards (`diag(w) E M`), so everything trained is kept in the shipped model.
`M` is what lets rare tokens move with the common ones; `w` is the fastest lever on token
importance.

Loss = pointwise cosine distance to the teacher's embedding + a relational term on the in-batch
similarity matrices (the structure STS and retrieval are scored on). Texts are bags of ids with
offsets (`EmbeddingBag`), so no pad token exists and none has to be guessed by name.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from core.encoders.student import flatten_ids
from core.errors import DistilleryError
from core.methods.featurize import TargetReader
from core.progress import Progress, silent


@dataclass(frozen=True)
class TrainParams:
    """The training knobs (part of the corpus method's parameters, under `training`)."""

    epochs: int = 10
    patience: int = 2
    batch_size: int = 256
    learning_rate: float = 1e-3
    relational_weight: float = 1.0
    validation_share: float = 0.05

    def validate(self) -> None:
        if not 1 <= self.epochs <= 1000:
            raise DistilleryError("Epochs must be between 1 and 1000.")
        if not 1 <= self.patience <= 1000:
            raise DistilleryError("Patience must be at least 1 epoch.")
        if not 8 <= self.batch_size <= 65_536:
            raise DistilleryError("The training batch size must be between 8 and 65,536.")
        if not 0 < self.learning_rate <= 1:
            raise DistilleryError("The learning rate must be above 0 and at most 1, e.g. 1e-3.")
        if not 0 <= self.relational_weight <= 100:
            raise DistilleryError("The relational loss weight must be between 0 and 100.")
        if not 0 < self.validation_share < 0.5:
            raise DistilleryError("The held-back share must be above 0 and below 0.5, e.g. 0.05.")


@dataclass
class TokenizedCorpus:
    """Token ids of every text, flat, with `offsets[i]:offsets[i + 1]` the ids of text i."""

    ids: np.ndarray  # int32
    offsets: np.ndarray  # int64, len = texts + 1

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def token_counts(self, vocabulary_size: int) -> np.ndarray:
        return np.bincount(self.ids, minlength=vocabulary_size)


@dataclass
class TrainResult:
    table: np.ndarray  # float32, folded: diag(w) E M
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    seconds: float = 0.0


def tokenize_corpus(tokenize, texts: Sequence[str], chunk: int = 4096) -> TokenizedCorpus:
    """Tokenize in chunks into flat int32 arrays (a list of lists would cost ~10× the memory)."""
    parts: list[np.ndarray] = []
    lengths = np.zeros(len(texts), dtype=np.int64)
    for start in range(0, len(texts), chunk):
        flat, chunk_lengths = flatten_ids(tokenize(list(texts[start:start + chunk])), np.int32)
        lengths[start:start + len(chunk_lengths)] = chunk_lengths
        parts.append(flat)
    offsets = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    flat = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int32)
    return TokenizedCorpus(flat, offsets)


def sif_weights(counts: np.ndarray, coefficient: float | None) -> np.ndarray:
    """SIF weights a/(a + p(t)) from real corpus frequencies (unseen tokens get 1)."""
    if coefficient is None:
        return np.ones(len(counts), dtype=np.float32)
    p = counts / max(int(counts.sum()), 1)
    return (coefficient / (coefficient + p)).astype(np.float32)


def top_directions(targets: TargetReader, k: int, sample: int = 100_000, seed: int = 0) -> np.ndarray:
    """The k directions holding most of the teacher's embedding energy (uncentred PCA), as a (dim, k) map.

    Uncentred, because cosine similarity is computed on the raw vectors: dropping the directions of
    least energy changes dot products least.
    """
    rows = np.random.default_rng(seed).permutation(len(targets))[:sample]
    x = targets.take(np.sort(rows)).astype(np.float64)
    _, _, vt = np.linalg.svd(x.T @ x)
    return vt[:k].T.astype(np.float32)


def train_table(
    vectors: np.ndarray,
    weights: np.ndarray,
    linear_init: np.ndarray,
    target_map: np.ndarray,
    corpus: TokenizedCorpus,
    targets: TargetReader,
    params: TrainParams,
    seed: int = 0,
    progress: Progress = silent,
) -> TrainResult:
    """Fit table, token weights and linear map to the teacher; returns the folded table of the best epoch.

    `linear_init` (table dim × k) starts the map; `target_map` (teacher dim × k) projects the teacher's
    embeddings to the k dimensions the model will have, so the loss is measured in the shipped space.
    """
    import torch
    import torch.nn.functional as F

    started = time.perf_counter()
    _check_inputs(vectors, weights, linear_init, target_map, corpus, targets)
    torch.manual_seed(seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    val_rows, train_rows, rng = split_rows(corpus, params.validation_share, seed)

    def tensor(array: np.ndarray, dtype=np.float32) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(array, dtype=dtype)).to(device)

    # Copies: on a CPU `tensor` shares memory with numpy, and the optimizer must not rewrite the caller's
    # arrays (the corpus method averages the untouched start with the trained table).
    table = torch.nn.Parameter(tensor(vectors).clone())
    token_w = torch.nn.Parameter(tensor(weights).clone())
    linear = torch.nn.Parameter(tensor(linear_init).clone())
    to_k = tensor(target_map)
    optimizer = torch.optim.Adam([table, token_w, linear], lr=params.learning_rate)
    # int32 ids, shared with numpy on the CPU: a third of what int64 ids plus a torch copy would hold.
    ids_all = tensor(corpus.ids, np.int32)

    def student(rows: np.ndarray) -> torch.Tensor:
        starts, stops = corpus.offsets[rows], corpus.offsets[rows + 1]
        index = np.concatenate([np.arange(a, b) for a, b in zip(starts, stops)])
        ids = ids_all[tensor(index, np.int64)]
        offsets = tensor(np.concatenate([[0], np.cumsum(stops - starts)[:-1]]), np.int32)
        pooled = F.embedding_bag(ids, table, offsets, mode="sum", per_sample_weights=token_w[ids])
        return F.normalize(pooled @ linear, dim=1)

    def teacher(rows: np.ndarray) -> torch.Tensor:
        return F.normalize(tensor(targets.take(rows)) @ to_k, dim=1)

    def loss_of(s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        pointwise = (1 - (s * t).sum(1)).mean()
        relational = ((s @ s.T - t @ t.T) ** 2).mean()
        return pointwise + params.relational_weight * relational

    def validation_loss() -> float:
        with torch.no_grad():
            losses = [loss_of(student(b), teacher(b)).item() * len(b) for b in _batches(val_rows, params.batch_size)]
        return sum(losses) / len(val_rows)

    best = validation_loss()
    history = [{"epoch": 0, "validation_loss": round(best, 6)}]
    best_state = _snapshot(table, token_w, linear)
    best_epoch, waited = 0, 0
    steps = math.ceil(len(train_rows) / params.batch_size)
    progress("train", 0.0, f"validation loss {best:.4f} before training")
    for epoch in range(1, params.epochs + 1):
        order = rng.permutation(train_rows)
        for step, batch in enumerate(_batches(order, params.batch_size)):
            optimizer.zero_grad(set_to_none=True)
            loss = loss_of(student(batch), teacher(batch))
            loss.backward()
            optimizer.step()
            if step % 20 == 0:
                progress("train", (epoch - 1 + step / steps) / params.epochs,
                         f"epoch {epoch}/{params.epochs} · loss {loss.item():.4f}")
        current = validation_loss()
        history.append({"epoch": epoch, "validation_loss": round(current, 6)})
        progress("train", epoch / params.epochs,
                 f"epoch {epoch}: validation loss {current:.4f} (best {min(best, current):.4f})")
        if current < best - 1e-5:
            best, best_epoch, waited = current, epoch, 0
            best_state = _snapshot(table, token_w, linear)
        else:
            waited += 1
            if waited >= params.patience:
                progress("train", 1.0, f"early stop after epoch {epoch}; best epoch {best_epoch}")
                break
    e, w, m = best_state
    folded = (w[:, None] * e) @ m
    return TrainResult(folded.cpu().numpy(), history, best_epoch, time.perf_counter() - started)


def split_rows(corpus: TokenizedCorpus, validation_share: float, seed: int = 0,
               ) -> tuple[np.ndarray, np.ndarray, np.random.Generator]:
    """The held-back rows (sorted), the training rows, and the generator that drew them (training
    goes on drawing its epochs from it). One owner: a start fitted to the targets must leave out the
    same held-back rows, or early stopping would judge it on texts it was fitted to."""
    rng = np.random.default_rng(seed)
    usable = np.flatnonzero(corpus.lengths() > 0)
    if len(usable) < 20:
        raise DistilleryError("Fewer than 20 corpus texts contain known tokens; the corpus is too small to train on.")
    usable = rng.permutation(usable)
    n_val = max(10, min(10_000, int(len(usable) * validation_share)))
    return np.sort(usable[:n_val]), usable[n_val:], rng


def _snapshot(*tensors) -> tuple:
    return tuple(t.detach().clone() for t in tensors)


def _batches(rows: np.ndarray, size: int):
    for start in range(0, len(rows), size):
        yield rows[start:start + size]


def _check_inputs(vectors, weights, linear_init, target_map, corpus: TokenizedCorpus, targets: TargetReader) -> None:
    if len(corpus) != len(targets):
        raise DistilleryError(f"{len(corpus):,} tokenized texts but {len(targets):,} teacher targets.")
    if vectors.shape[0] != len(weights):
        raise DistilleryError("The table and the token weights have different numbers of rows.")
    if linear_init.shape[0] != vectors.shape[1] or target_map.shape[0] != targets.dim:
        raise DistilleryError("The linear map does not fit the table, or the target map does not fit the teacher.")
    if linear_init.shape[1] != target_map.shape[1]:
        raise DistilleryError("The student map and the target map must lead to the same dimension.")
    if len(corpus.ids) and int(corpus.ids.max()) >= vectors.shape[0]:
        raise DistilleryError("A token id is outside the table; the tokenizer and the table do not match.")

