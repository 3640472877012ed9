"""core.methods.target_start: the starting table of a teacher without weights, fitted to its targets."""

from __future__ import annotations

import numpy as np

from core.methods.featurize import TargetReader
from core.methods.student_tokenizer import StudentTokenizer
from core.methods.target_start import bag_matrix, fit_start
from core.methods.training import TokenizedCorpus


def synthetic(texts: int = 400, vocabulary: int = 60, dim: int = 8, seed: int = 0):
    """Texts of random token bags whose targets are exactly the pooled rows of a hidden table."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(3, 12, size=texts)
    ids = rng.integers(0, vocabulary - 10, size=int(lengths.sum())).astype(np.int32)  # the last 10 never used
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    corpus = TokenizedCorpus(ids, offsets)
    weights = rng.uniform(0.5, 1.0, size=vocabulary).astype(np.float32)
    hidden = rng.normal(size=(vocabulary, dim)).astype(np.float32)
    pooled = np.asarray(bag_matrix(corpus, weights) @ hidden)
    targets = pooled / np.linalg.norm(pooled, axis=1, keepdims=True)
    reader = TargetReader([targets.astype(np.float16)], np.arange(texts), texts)
    return corpus, weights, hidden, reader


def test_bags_pool_as_the_student_does() -> None:
    corpus = TokenizedCorpus(np.array([1, 1, 2, 0], dtype=np.int32), np.array([0, 3, 3, 4]))
    bags = bag_matrix(corpus, np.array([1.0, 1.0, 2.0], dtype=np.float32)).toarray()
    np.testing.assert_allclose(bags, [[0, 0.5, 0.5], [0, 0, 0], [1, 0, 0]])  # weighted, rows sum to 1; empty: 0


def test_fit_reproduces_the_targets_and_shrinks_towards_the_prior() -> None:
    corpus, weights, hidden, targets = synthetic()
    identity = np.eye(8, dtype=np.float32)
    table = fit_start(corpus, weights, targets, identity, ridge=1e-4, iterations=200)
    pooled = np.asarray(bag_matrix(corpus, weights) @ table)
    wanted = targets.take(np.arange(len(corpus)))
    cosine = (pooled * wanted).sum(1) / np.linalg.norm(pooled, axis=1) / np.linalg.norm(wanted, axis=1)
    assert cosine.mean() > 0.97
    assert not table[-10:].any()  # tokens never used keep zero rows without a prior
    # With a prior (here the hidden table in another basis), unused tokens get its mapped vectors.
    basis = np.random.default_rng(1).normal(size=(8, 8)).astype(np.float32)
    with_prior = fit_start(corpus, weights, targets, identity, ridge=10.0, prior=hidden @ basis)
    unused = with_prior[-10:]
    agreement = (unused * hidden[-10:]).sum(1) / np.linalg.norm(unused, axis=1) / np.linalg.norm(hidden[-10:], axis=1)
    assert agreement.mean() > 0.9 and agreement.min() > 0.7  # targets are unit rows, the pooled prior is not


def test_held_back_rows_are_not_fitted() -> None:
    corpus, weights, _, targets = synthetic()
    all_rows = fit_start(corpus, weights, targets, np.eye(8, dtype=np.float32))
    some = fit_start(corpus, weights, targets, np.eye(8, dtype=np.float32), rows=np.arange(0, 400, 2))
    assert not np.allclose(all_rows, some)


def test_default_student_tokenizer_is_the_bundled_teachers() -> None:
    tokenizer = StudentTokenizer.named(None).load()
    assert tokenizer.is_fast and "[CLS]" in tokenizer.get_vocab()
    assert tokenizer.backend_tokenizer.padding is None  # words and texts are never padded
