"""The teacher pass in shards other processes encode (`core.methods.featurize`: `fanning_out`,
`encode_stored_shard`, `shard_key`), without a queue: what `jobs.shards` builds on."""

from __future__ import annotations

import numpy as np
import pytest

from core.encoders.teacher import load_teacher, resolve_teacher
from core.errors import DistilleryError
from core.methods.featurize import encode_stored_shard, fanning_out, featurize, featurize_key, shard_key

TEXTS = [f"Ticket {i} says the {w} service was slow on {d}." for i in range(40)
         for w, d in (("mail", "Monday"), ("search", "Friday"))]
ROWS = 16  # 80 texts: 5 shards


class Elsewhere:
    """A fan-out that encodes odd shards "elsewhere" (`encode_stored_shard`, as a consumer does), one of
    them twice, and leaves the even ones to the caller's process."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, bool]] = []

    def run(self, store, missing, keys, encode_here, teacher, prompt):
        model = load_teacher(teacher)
        for shard in missing:
            if shard % 2:
                for _ in range(2):  # a shard computed twice: the second finds it on disk
                    self.calls.append((shard, encode_stored_shard(model, TEXTS, store.folder, shard, keys[shard],
                                                                  teacher.fingerprint, prompt)))
            else:
                self.calls.append((shard, encode_here(shard)))


@pytest.mark.slow  # the teacher embeds 80 texts twice
def test_fanned_out_shards_equal_one_process_and_are_never_redone(tmp_path):
    teacher = resolve_teacher(None)
    model = load_teacher(teacher)
    key = featurize_key(teacher.fingerprint, TEXTS, None)
    alone = featurize(model, TEXTS, tmp_path / "alone", key, shard_rows=ROWS, teacher=teacher)

    fanout = Elsewhere()
    with fanning_out(fanout):
        store = featurize(model, TEXTS, tmp_path / "fanned", key, shard_rows=ROWS, teacher=teacher)
    assert fanout.calls == [(0, True), (1, True), (1, False), (2, True), (3, True), (3, False), (4, True)]
    assert (store.shards, store.reused_shards, store.texts_embedded) == (5, 0, len(TEXTS))
    for shard in range(store.shards):
        assert np.array_equal(np.load(store.shard_path(shard)), np.load(alone.shard_path(shard)))

    # Resumed: only the missing shard goes out, and the ones on disk are not touched.
    store.shard_path(2).unlink()
    before = store.shard_path(1).stat().st_mtime_ns
    fanout = Elsewhere()
    with fanning_out(fanout):
        again = featurize(model, TEXTS, tmp_path / "fanned", key, shard_rows=ROWS, teacher=teacher)
    assert fanout.calls == [(2, True)] and (again.reused_shards, again.texts_embedded) == (4, ROWS)
    assert store.shard_path(1).stat().st_mtime_ns == before

    # A shard key that is not the stored shard's texts (a stale task, another corpus) is refused.
    store.shard_path(3).unlink()
    wrong = shard_key(teacher.fingerprint, None, TEXTS[:ROWS])
    with pytest.raises(DistilleryError, match="other texts"):
        encode_stored_shard(model, TEXTS, store.folder, 3, wrong, teacher.fingerprint, None)
    assert not store.shard_path(3).exists()


def test_a_store_built_from_known_rows_is_resumed_whole_by_featurize(tmp_path):
    """`store_from_rows` lays targets out as `featurize` does: featurize with the same key embeds nothing
    and reads back each text's own vector, whatever the length order of the shards."""
    from core.methods.featurize import featurize, featurize_key, store_from_rows

    texts = [f"text {'word ' * (i % 7)}{i}" for i in range(50)]
    known = np.random.default_rng(0).normal(size=(50, 6)).astype(np.float16)

    class NeverCalled:
        dimension = 6

        def embed(self, texts):
            raise AssertionError("the teacher was asked to embed a stored text")

    key = featurize_key("fingerprint", texts, None)
    store_from_rows(texts, tmp_path / "targets", key, None, 6, lambda rows: known[rows], shard_rows=16)
    store = featurize(NeverCalled(), texts, tmp_path / "targets", key, shard_rows=16)
    assert store.reused_shards == 4 and store.texts_embedded == 0
    np.testing.assert_array_equal(store.open().take(np.arange(50)), known.astype(np.float32))
