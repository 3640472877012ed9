"""The corpus method's starting point for a teacher without weights (an endpoint, a package): fitted to
its targets.

With weights, the start is model2vec's `distill` (each token embedded alone by the teacher). An
endpoint or a package's function gives only sentence embeddings, so the start is the table E that
best reproduces them from the texts' bags of tokens: the ridge least-squares fit

    min_E ||B E - T||² + λ||E||²,

where row i of B is text i's bag of token ids, pooled with the student's token weights (sparse), and row i of T is the teacher's
embedding projected to the model's k dimensions and scaled to unit length. It is solved by
conjugate gradients on the normal equations with a Jacobi preconditioner: each step needs only two
sparse products with B, and BᵀT is accumulated shard by shard from the memory-mapped targets, so
memory is the corpus's token ids plus a few tables of vocabulary × k, whatever the corpus size.
Tokens the corpus never uses keep zero rows (nothing is known about them), unless a prior is given,
the centre the ridge shrinks towards, mapped into the teacher's space by least squares, so every
token has a vector and the corpus corrects those it uses: with the bundled student tokenizer, the
bundled teacher's model2vec vectors (a local model's, not the endpoint teacher's); with a package
teacher's own tokenizer, each token embedded alone by that teacher. It is what makes a small corpus
enough (see `PRIOR_RIDGE` for the figures).

The student's tokenizer is chosen separately (`core.methods.student_tokenizer`), and corpus words
are added to it exactly as `model2vec.distill` adds them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import DistilleryError
from core.methods.featurize import TargetReader
from core.methods.training import TokenizedCorpus
from core.progress import Progress, silent

# model2vec's default `token_remove_pattern`: BERT's placeholder tokens are dropped, as with weights.
TOKEN_REMOVE_PATTERN = r"\[unused\d+\]"
ROWS_PER_STEP = 8192
# The ridge (relative to BᵀB's mean diagonal), chosen on STS-B dev with a 6,000-text, four-source corpus
# and MiniLM served over HTTP (pca_dims 64, 3 epochs; the local-teacher corpus model scored 79.37):
# with the prior, 0.1 → 77.23, 1 → 79.01, 3 → 79.34, 10 → 79.52, 30 → 79.46; from the targets alone,
# 0.01 → 67.83, 0.1 → 68.73, 1 → 65.76 (tokens the corpus never uses have nothing to go on).
PRIOR_RIDGE, NO_PRIOR_RIDGE = 10.0, 0.1


def default_ridge(with_prior: bool) -> float:
    return PRIOR_RIDGE if with_prior else NO_PRIOR_RIDGE


def empty_student(tokenizer: Any, vocabulary: Sequence[str], dim: int, pooling: str = "mean") -> Any:
    """A `StaticModel` with the student's tokenizer (corpus words added the way `distill_from_model`
    adds them) and a zero table of `dim` columns, to tokenize the corpus and to be filled."""
    from model2vec import StaticModel
    from model2vec.tokenizer import clean_and_create_vocabulary
    from skeletoken import TokenizerModel

    original = TokenizerModel.from_transformers_tokenizer(tokenizer).prune_added_tokens()
    model = original.deep_copy()
    if model.adds_prefix_space is not None:
        model.adds_prefix_space = True
    model = clean_and_create_vocabulary(model, list(vocabulary), token_remove_regex=re.compile(TOKEN_REMOVE_PATTERN))
    backend = model.to_tokenizer()
    name = Path(str(getattr(tokenizer, "name_or_path", "") or "tokenizer")).name
    config = {"model_type": "model2vec", "architectures": ["StaticModel"], "tokenizer_name": name,
              "apply_pca": None, "sif_coefficient": None, "hidden_dim": dim, "seq_length": 1_000_000,
              "normalize": True, "pooling": pooling}
    size = backend.get_vocab_size()
    return StaticModel(vectors=np.zeros((size, dim), dtype=np.float32), tokenizer=backend, config=config,
                       normalize=True, base_model_name=name)


def bag_matrix(corpus: TokenizedCorpus, token_weights: np.ndarray) -> Any:  # scipy.sparse.csr_matrix
    """Texts × tokens, each row a text's bag of ids pooled as the student pools them: each token by
    its weight, the row summing to 1 (empty texts: zero rows)."""
    from scipy.sparse import csr_matrix

    values = token_weights[corpus.ids].astype(np.float64)
    totals = np.add.reduceat(values, corpus.offsets[:-1]) if len(values) else np.zeros(len(corpus))
    totals[corpus.lengths() == 0] = 1.0
    values /= np.repeat(totals, corpus.lengths())
    bags = csr_matrix((values.astype(np.float32), corpus.ids.astype(np.int64), corpus.offsets),
                      shape=(len(corpus), len(token_weights)))
    bags.sum_duplicates()
    return bags


def fit_start(
    corpus: TokenizedCorpus, token_weights: np.ndarray, targets: TargetReader, target_map: np.ndarray,
    rows: np.ndarray | None = None, ridge: float = 1e-2, iterations: int = 60, tolerance: float = 1e-3,
    progress: Progress = silent, prior: np.ndarray | None = None,
) -> np.ndarray:
    """The ridge fit of the module docstring: a (vocabulary × k) float32 table.

    `token_weights` (one per vocabulary entry) pool the bags as the student will (its SIF weights),
    so the table reproduces the targets through the student's own pooling, not another. `ridge` is
    relative to the mean diagonal of BᵀB over the tokens the corpus uses, so it means the same
    whatever the texts' lengths and the vocabulary size. `rows` (default: all) are the texts fitted
    to: the training rows, so that the held-back ones stay unseen.

    `prior` (vocabulary × any width), when given, is the centre the ridge shrinks towards instead of
    zero: it is first mapped into the k dimensions by least squares (`prior_map`), and the fit is of
    the residual, so a token the corpus never uses keeps its mapped prior vector rather than zero.
    """
    vocabulary_size = len(token_weights)
    rows = np.sort(np.asarray(rows)) if rows is not None else np.arange(len(corpus))
    bags = bag_matrix(corpus, token_weights)[rows]
    k = target_map.shape[1]
    centre = None
    if prior is not None:
        progress("distill", 0.0, "mapping the prior vectors into the teacher's space")
        centre = np.asarray(prior, dtype=np.float32) @ prior_map(bags, prior, targets, target_map, rows)
    rhs = np.zeros((vocabulary_size, k), dtype=np.float32)
    for start in range(0, len(rows), ROWS_PER_STEP):  # BᵀT, one slice of targets at a time
        wanted = _unit_targets(targets, rows[start:start + ROWS_PER_STEP], target_map)
        if centre is not None:
            wanted -= np.asarray(bags[start:start + ROWS_PER_STEP] @ centre, dtype=np.float32)
        rhs += np.asarray(bags[start:start + ROWS_PER_STEP].T @ wanted, dtype=np.float32)
    diagonal = np.asarray(bags.multiply(bags).sum(axis=0), dtype=np.float64).ravel()
    used = diagonal > 0
    if not used.any():
        raise DistilleryError("No corpus text holds a token of the student's tokenizer; nothing to fit.")
    lam = ridge * float(diagonal[used].mean())
    precondition = (1.0 / (diagonal + lam)).astype(np.float32)[:, None]
    bags_t = bags.T.tocsr()

    def apply(x: np.ndarray) -> np.ndarray:
        return np.asarray(bags_t @ (bags @ x), dtype=np.float32) + lam * x

    table = np.zeros_like(rhs)
    residual = rhs.copy()
    z = residual * precondition
    direction = z.copy()
    rz = np.einsum("ij,ij->j", residual, z)
    scale = np.maximum(np.linalg.norm(rhs, axis=0), 1e-12)
    for step in range(iterations):
        moved = apply(direction)
        curvature = np.einsum("ij,ij->j", direction, moved)
        alpha = np.where(curvature > 0, rz / np.where(curvature > 0, curvature, 1), 0).astype(np.float32)
        table += direction * alpha
        residual -= moved * alpha
        left = float((np.linalg.norm(residual, axis=0) / scale).max())
        progress("distill", (step + 1) / iterations, f"fitting the starting table to the teacher's embeddings "
                                                    f"(step {step + 1}, residual {left:.1e})")
        if left < tolerance:
            break
        z = residual * precondition
        rz_next = np.einsum("ij,ij->j", residual, z)
        beta = np.where(rz > 0, rz_next / np.where(rz > 0, rz, 1), 0).astype(np.float32)
        direction = z + direction * beta
        rz = rz_next
    table[~used] = 0.0
    return table if centre is None else centre + table


def _unit_targets(targets: TargetReader, rows: np.ndarray, target_map: np.ndarray) -> np.ndarray:
    wanted = targets.take(rows) @ target_map
    return wanted / np.maximum(np.linalg.norm(wanted, axis=1, keepdims=True), 1e-8)


def prior_map(bags: Any, prior: np.ndarray, targets: TargetReader, target_map: np.ndarray, rows: np.ndarray,
              ridge: float = 1e-2) -> np.ndarray:
    """The least-squares map (prior width × k) from the texts' pooled prior vectors to their unit
    targets; XᵀX and XᵀT are summed slice by slice, so only a slice of pooled vectors is ever held."""
    prior = np.asarray(prior, dtype=np.float32)
    gram = np.zeros((prior.shape[1], prior.shape[1]))
    cross = np.zeros((prior.shape[1], target_map.shape[1]))
    for start in range(0, len(rows), ROWS_PER_STEP):
        pooled = np.asarray(bags[start:start + ROWS_PER_STEP] @ prior, dtype=np.float64)
        gram += pooled.T @ pooled
        cross += pooled.T @ _unit_targets(targets, rows[start:start + ROWS_PER_STEP], target_map)
    scale = np.trace(gram) / max(len(gram), 1) or 1.0
    return np.linalg.solve(gram + ridge * scale * np.eye(len(gram)), cross).astype(np.float32)
