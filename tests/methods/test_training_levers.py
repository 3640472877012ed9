"""The corpus method's quality levers: teacher-mined neighbours, the listwise term, the pair term."""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import DistilleryError
from core.methods.featurize import ORDER_FILE, TargetStore
from core.methods.neighbours import mine_neighbours, neighbour_batches
from core.methods.training import TokenizedCorpus, TokenizedPairs, TrainParams, train_table
from core.serving.index import VectorIndex


def _targets(tmp_path, vectors: np.ndarray):
    folder = tmp_path / "targets"
    folder.mkdir()
    np.save(folder / ORDER_FILE, np.arange(len(vectors)))
    np.save(folder / "targets_00000.npy", vectors.astype(np.float16))
    return TargetStore(folder, len(vectors), vectors.shape[1], max(len(vectors), 1)).open()


def _corpus(rng, texts: int, vocabulary: int) -> TokenizedCorpus:
    lengths = rng.integers(1, 8, size=texts)
    return TokenizedCorpus(rng.integers(0, vocabulary, size=int(lengths.sum())).astype(np.int32),
                           np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64))


def test_centred_targets_are_the_stored_ones_less_their_mean(tmp_path):
    """A teacher whose vectors share one direction (a cone, as E5's): `means` measures the cone as the
    mean cosine between two texts, and the centred reader takes the mean out of every row it reads,
    leaving the stored shards as they were."""
    rng = np.random.default_rng(0)
    shared = np.full(16, 0.9, dtype=np.float32)
    vectors = (shared + 0.1 * rng.standard_normal((300, 16))).astype(np.float32)
    targets = _targets(tmp_path, vectors)
    stored = targets.take(np.arange(300))
    unit = stored / np.linalg.norm(stored, axis=1, keepdims=True)
    pairwise = unit @ unit.T
    mean, cosine = targets.means()
    assert cosine == pytest.approx(pairwise[~np.eye(300, dtype=bool)].mean(), abs=1e-4) and cosine > 0.9
    np.testing.assert_allclose(mean, stored.mean(axis=0), atol=1e-4)
    centred = targets.centred(mean)
    rows = np.array([5, 0, 299])
    np.testing.assert_allclose(centred.take(rows), stored[rows] - stored.mean(axis=0), atol=1e-4)
    np.testing.assert_array_equal(targets.take(rows), stored[rows])  # the plain reader is untouched
    _, spread = centred.means()
    assert abs(spread) < 0.05


@pytest.mark.parametrize("value", ["false", 1, "yes"])
def test_centre_targets_takes_only_true_false_or_nothing(value):
    from core.methods.corpus import CorpusParams

    with pytest.raises(DistilleryError, match="centre_targets must be true, false"):
        CorpusParams.from_dict({"centre_targets": value}).validate()


def test_mined_neighbours_are_the_exact_nearest_and_never_the_text_itself(tmp_path):
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(300, 16)).astype(np.float32)
    targets = _targets(tmp_path, vectors)
    rows = np.arange(0, 300, 2)  # a subset, as training rows are: positions refer to it
    to_k = np.eye(16, dtype=np.float32)
    found = mine_neighbours(targets, to_k, rows, 5)
    assert found.shape == (150, 5) and found.dtype == np.int32
    assert not (found == np.arange(150)[:, None]).any()
    unit = targets.take(rows).astype(np.float32)
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    scores = unit @ unit.T
    np.fill_diagonal(scores, -np.inf)
    expected = np.argsort(-scores, axis=1)[:, :5]
    np.testing.assert_array_equal(found, expected)


def test_graph_search_many_agrees_with_exact_search():
    rng = np.random.default_rng(1)
    matrix = rng.normal(size=(2000, 24)).astype(np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    exact = VectorIndex.build(matrix, approximate=False).search_many(matrix[:200], 10, chunk=64)
    graph = VectorIndex.build(matrix, approximate=True).search_many(matrix[:200], 10)
    assert exact.shape == graph.shape == (200, 10)
    assert (exact[:, 0] == np.arange(200)).all()
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(exact, graph)])
    assert recall >= 0.95
    one = VectorIndex.build(matrix, approximate=False).search(matrix[7], 10)
    assert [i for i, _ in one] == list(exact[7])


def test_neighbour_batches_hold_anchors_with_their_neighbours():
    rng = np.random.default_rng(2)
    count, k = 1000, 8
    neighbours = rng.integers(0, count, size=(count, k)).astype(np.int32)
    batches = list(neighbour_batches(count, neighbours, 64, 4, np.random.default_rng(3)))
    seen = np.concatenate(batches)
    assert all(len(b) <= 64 and len(b) == len(np.unique(b)) for b in batches)
    assert 0.6 * count <= len(seen) <= count  # about one pass of texts per epoch (repeats dropped)
    first = batches[0]
    anchors_in_first = [a for a in first if np.isin(neighbours[a], first).sum() >= 3]
    assert len(anchors_in_first) >= 16  # every anchor brought 3 of its neighbours


def _train(tmp_path, params: TrainParams, pairs: TokenizedPairs | None = None):
    tmp_path.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    corpus = _corpus(rng, 400, 40)
    targets = _targets(tmp_path, rng.normal(size=(400, 12)).astype(np.float32))
    vectors, weights = rng.normal(size=(40, 8)).astype(np.float32), np.ones(40, dtype=np.float32)
    linear, to_k = rng.normal(size=(8, 6)).astype(np.float32), rng.normal(size=(12, 6)).astype(np.float32)
    return train_table(vectors, weights, linear, to_k, corpus, targets, params, pairs=pairs)


def test_neighbours_and_listwise_train_a_finite_table(tmp_path):
    result = _train(tmp_path, TrainParams(epochs=3, patience=3, batch_size=32, neighbours=6, listwise_weight=1.0))
    assert np.isfinite(result.table).all() and result.best_epoch > 0
    assert result.neighbour_seconds > 0
    assert all(np.isfinite(h["validation_loss"]) for h in result.history)


def test_pair_term_pulls_pairs_together(tmp_path):
    """Pairs of texts with no shared token: the pair term alone must raise their student cosine."""
    left = TokenizedCorpus(np.arange(0, 20, dtype=np.int32), np.arange(21, dtype=np.int64))
    right = TokenizedCorpus(np.arange(20, 40, dtype=np.int32), np.arange(21, dtype=np.int64))
    pairs = TokenizedPairs(left, right)

    def pair_cosine(table: np.ndarray) -> float:
        a, b = table[left.ids], table[right.ids]
        a /= np.linalg.norm(a, axis=1, keepdims=True)
        b /= np.linalg.norm(b, axis=1, keepdims=True)
        return float((a * b).sum(1).mean())

    without = _train(tmp_path / "a", TrainParams(epochs=3, patience=3, batch_size=32, learning_rate=0.02))
    with_pairs = _train(tmp_path / "b", TrainParams(epochs=3, patience=3, batch_size=32, learning_rate=0.02, pair_weight=5.0), pairs)
    assert pair_cosine(with_pairs.table) > pair_cosine(without.table) + 0.2


def test_a_pass_over_the_pairs_never_ends_on_a_lone_pair():
    """A lone pair has no in-batch negatives (its contrastive loss is 0): it joins the batch before."""
    from core.methods.training import _contrastive_batches

    for rows, size in ((65, 32), (64, 32), (33, 32), (1, 32), (97, 48)):
        batches = _contrastive_batches(np.arange(rows), size)
        assert np.array_equal(np.concatenate(batches), np.arange(rows))
        assert all(len(b) >= 2 for b in batches) or rows == 1
    assert [len(b) for b in _contrastive_batches(np.arange(65), 32)] == [32, 33]


@pytest.mark.parametrize("fields", [{"neighbours": -1}, {"neighbours": 8, "neighbour_group": 200},
                                    {"listwise_weight": -1}, {"temperature": 0}, {"pair_weight": 1000}])
def test_impossible_lever_settings_are_refused(fields):
    with pytest.raises(DistilleryError):
        TrainParams(**fields).validate()


@pytest.mark.slow  # the teacher embeds 200 texts
def test_corpus_method_with_every_lever_records_them(tmp_path):
    """A recipe that names pair sources and neighbours runs them in the real method, and says so."""
    from core.encoders.teacher import resolve_teacher
    from core.methods.corpus import CorpusParams, distill

    texts = [f"The {w} report number {i} describes how the system handles {w} requests." for i in range(100)
             for w in ("network", "billing")]
    params = CorpusParams.from_dict({"pca_dims": 32, "quantize_to": "float32", "epochs": 2, "neighbours": 8,
                                     "listwise_weight": 1.0, "pair_weight": 0.2, "pair_sources": ["conala"],
                                     "centre_targets": True})
    assert params.pair_sources == ("conala",) and params.training.neighbours == 8 and params.centre_targets
    result = distill(resolve_teacher(None), params, texts, tmp_path / "work")
    assert result.training["pairs"] == {"conala": 2649}
    assert result.training["targets"]["centred"] is True  # asked for, though MiniLM's targets are no cone
    assert result.training["neighbour_seconds"] >= 0
    assert np.isfinite(np.asarray(result.model.embedding)).all()


@pytest.mark.slow  # the teacher embeds 200 texts
def test_corpus_method_trains_on_a_pair_file_uploaded_into_its_job(tmp_path):
    """A pair file alone (no named source), inside the job's folder, is read and counted by its name."""
    from core.encoders.teacher import resolve_teacher
    from core.methods.corpus import CorpusParams, distill

    job = tmp_path / "job"
    (job / "uploads" / "pairs").mkdir(parents=True)
    rows = [f"how does the {w} service handle request {i}?\tthe {w} service answers request {i} in order"
            for i in range(60) for w in ("network", "billing")]
    (job / "uploads" / "pairs" / "mine.tsv").write_text("anchor\tpositive\n" + "\n".join(rows) + "\n")
    texts = [f"The {w} report number {i} describes how the system handles {w} requests." for i in range(100)
             for w in ("network", "billing")]
    params = CorpusParams.from_dict({"pca_dims": 32, "quantize_to": "float32", "epochs": 2, "pair_weight": 0.05,
                                     "pair_files": ["uploads/pairs/mine.tsv"]})
    assert params.pair_files == ("uploads/pairs/mine.tsv",) and params.pair_sources == ()
    result = distill(resolve_teacher(None), params, texts, job / "corpus-method")
    assert result.training["pairs"] == {"mine.tsv": 120} and result.training["pair_weight"] == 0.05
    assert np.isfinite(np.asarray(result.model.embedding)).all()


@pytest.mark.parametrize("path", ["/etc/passwd", "../outside.tsv", "uploads/../../outside.tsv", "."])
def test_a_pair_file_outside_the_job_folder_is_refused(tmp_path, path):
    """A recipe's JSON comes from a user: its pair files are read from its own job's folder only, and the
    method refuses before the teacher runs."""
    from core.encoders.teacher import resolve_teacher
    from core.methods.corpus import CorpusParams, distill

    (tmp_path / "outside.tsv").write_text("a question\tits answer\nanother question\tanother answer\n")
    (tmp_path / "job").mkdir()
    params = CorpusParams.from_dict({"pair_weight": 0.05, "pair_files": [path]})
    with pytest.raises(DistilleryError, match="must lie inside the job's folder"):
        distill(resolve_teacher(None), params, ["a text"] * 300, tmp_path / "job" / "corpus-method")
    with pytest.raises(DistilleryError, match="pair loss weight is 0"):
        CorpusParams.from_dict({"pair_files": ["uploads/pairs/mine.tsv"]}).validate()


def test_pair_sources_are_checked_by_name():
    from core.corpus.pairs import choose_pair_sources
    from core.methods.corpus import CorpusParams

    with pytest.raises(DistilleryError, match="no-such-pairs.*readable here: .*wikisplit"):
        choose_pair_sources(["no-such-pairs"], hub_available=False)
    assert {s.name for s in choose_pair_sources(["all"], hub_available=False)} >= {"wikisplit", "conala"}
    with pytest.raises(DistilleryError, match="pair loss weight is 0"):
        CorpusParams.from_dict({"pair_sources": ["conala"]}).validate()
