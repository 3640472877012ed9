"""Train a static table so that its pooled embedding of each text reproduces the teacher's.

The student of a text is `normalize(sum_i w[t_i] * E[t_i] @ M)`: a table `E`, a weight per token
`w` and a linear map `M` shared by all tokens. Because pooling is linear, `M` and `w` fold exactly
into the table afterwards (`diag(w) E M`), so everything trained is kept in the shipped model.
`M` is what lets rare tokens move with the common ones; `w` is the fastest lever on token
importance.

Loss = pointwise cosine distance to the teacher's embedding + a relational term on the in-batch
similarity matrices (the structure STS and retrieval are scored on). Optional levers, each measured
in docs/benchmarks.md before it is a default: batches built from teacher-mined neighbourhoods
(`core.methods.neighbours`), a listwise term (the teacher's softmax over each row of the in-batch
similarities as the target distribution, which weighs the nearest texts most, as ranking does), and a
contrastive term on labelled text pairs (sentence-transformers' MultipleNegativesRankingLoss: each
anchor must pick its positive among the batch's). Texts are bags of ids with offsets
(`EmbeddingBag`), so no pad token exists and none has to be guessed by name.
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
    # Teacher neighbours mined per text (0: random batches); a batch holds anchors and
    # `neighbour_group - 1` of each anchor's neighbours.
    neighbours: int = 0
    neighbour_group: int = 4
    # Weight of the listwise term and the temperature of its softmaxes (0: no listwise term).
    listwise_weight: float = 0.0
    temperature: float = 0.05
    # Weight of the contrastive term on text pairs, used when pairs are given (0: pairs unused).
    pair_weight: float = 0.0

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
        if not 0 <= self.neighbours <= 256:
            raise DistilleryError("Mined neighbours must be between 0 (off) and 256 per text, e.g. 16.")
        if not 1 <= self.neighbour_group <= 64 or (self.neighbours and self.neighbour_group > self.batch_size // 2):
            raise DistilleryError("A neighbourhood in a batch must hold 1 to 64 texts and at most half the batch.")
        if not 0 <= self.listwise_weight <= 100 or not 0 <= self.pair_weight <= 100:
            raise DistilleryError("The listwise and pair loss weights must be between 0 and 100.")
        if not 0.001 <= self.temperature <= 10:
            raise DistilleryError("The listwise temperature must be between 0.001 and 10, e.g. 0.05.")


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
class TokenizedPairs:
    """Labelled text pairs for the contrastive term: row i of `left` and of `right` belong together."""

    left: TokenizedCorpus
    right: TokenizedCorpus

    def __len__(self) -> int:
        return len(self.left)


# sentence-transformers' MultipleNegativesRankingLoss scale (1 / temperature of its cosine logits).
PAIR_SCALE = 20.0


@dataclass
class TrainResult:
    table: np.ndarray  # float32, folded: diag(w) E M
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    seconds: float = 0.0
    neighbour_seconds: float = 0.0


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
    pairs: TokenizedPairs | None = None,
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
    if pairs is not None and (len(pairs) < 2 or not params.pair_weight):
        pairs = None
    pair_ids = (tensor(pairs.left.ids, np.int32), tensor(pairs.right.ids, np.int32)) if pairs else None

    def embed(texts: TokenizedCorpus, flat_ids: torch.Tensor, rows: np.ndarray) -> torch.Tensor:
        starts, stops = texts.offsets[rows], texts.offsets[rows + 1]
        index = np.concatenate([np.arange(a, b) for a, b in zip(starts, stops)])
        ids = flat_ids[tensor(index, np.int64)]
        offsets = tensor(np.concatenate([[0], np.cumsum(stops - starts)[:-1]]), np.int32)
        pooled = F.embedding_bag(ids, table, offsets, mode="sum", per_sample_weights=token_w[ids])
        return F.normalize(pooled @ linear, dim=1)

    def student(rows: np.ndarray) -> torch.Tensor:
        return embed(corpus, ids_all, rows)

    def teacher(rows: np.ndarray) -> torch.Tensor:
        return F.normalize(tensor(targets.take(rows)) @ to_k, dim=1)

    def loss_of(s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        sim_s, sim_t = s @ s.T, t @ t.T
        loss = (1 - (s * t).sum(1)).mean() + params.relational_weight * ((sim_s - sim_t) ** 2).mean()
        if params.listwise_weight and len(s) > 2:
            # A large negative, not -inf, on the diagonal: the KL of a zero target stays 0, not nan.
            eye = torch.eye(len(s), dtype=torch.bool, device=s.device)
            log_p = F.log_softmax((sim_s / params.temperature).masked_fill(eye, -1e4), dim=1)
            target = F.softmax((sim_t / params.temperature).masked_fill(eye, -1e4), dim=1)
            loss = loss + params.listwise_weight * F.kl_div(log_p, target, reduction="batchmean")
        return loss

    def pair_loss(rows: np.ndarray) -> torch.Tensor:
        assert pairs is not None and pair_ids is not None
        left, right = embed(pairs.left, pair_ids[0], rows), embed(pairs.right, pair_ids[1], rows)
        labels = torch.arange(len(rows), device=left.device)
        return F.cross_entropy(PAIR_SCALE * left @ right.T, labels)

    pair_rows = np.flatnonzero((pairs.left.lengths() > 0) & (pairs.right.lengths() > 0)) if pairs \
        else np.zeros(0, dtype=np.int64)
    pair_order: list[np.ndarray] = []

    def next_pair_batch() -> np.ndarray:
        if not pair_order:  # a new pass over the pairs, in a new order
            pair_order.extend(_contrastive_batches(rng.permutation(pair_rows), params.batch_size))
        return pair_order.pop()

    neighbours, neighbour_seconds = None, 0.0
    if params.neighbours:
        from core.methods.neighbours import mine_neighbours

        mined_at = time.perf_counter()
        neighbours = mine_neighbours(targets, target_map, train_rows, params.neighbours, progress)
        neighbour_seconds = time.perf_counter() - mined_at

    def epoch_batches():
        if neighbours is None:
            yield from _batches(rng.permutation(train_rows), params.batch_size)
            return
        from core.methods.neighbours import neighbour_batches

        for positions in neighbour_batches(len(train_rows), neighbours, params.batch_size, params.neighbour_group,
                                           rng):
            yield train_rows[positions]

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
        for step, batch in enumerate(epoch_batches()):
            optimizer.zero_grad(set_to_none=True)
            loss = loss_of(student(batch), teacher(batch))
            if len(pair_rows) >= 2:
                loss = loss + params.pair_weight * pair_loss(next_pair_batch())
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
    return TrainResult(folded.cpu().numpy(), history, best_epoch, time.perf_counter() - started, neighbour_seconds)


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


def _contrastive_batches(rows: np.ndarray, size: int) -> list[np.ndarray]:
    """`_batches` for the pair loss, whose negatives are the batch's other pairs: a last batch of one
    pair (no negatives, a loss of 0) joins the batch before it."""
    batches = list(_batches(rows, size))
    if len(batches) > 1 and len(batches[-1]) < 2:
        batches[-2:] = [np.concatenate(batches[-2:])]
    return batches


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

