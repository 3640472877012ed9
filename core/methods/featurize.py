"""Teacher targets: the teacher's real sentence embeddings of every corpus text, on disk.

The corpus method regresses onto exactly what `SentenceTransformer.encode` returns (pooling, Dense
layers, normalisation, document prompt), so this module calls `encode` itself rather than
re-implementing the teacher. Targets are written as float16 `.npy` shards, each renamed into place
when complete, and read back memory-mapped: RAM stays flat whatever the corpus size, and a run that
was interrupted resumes at the first missing shard instead of starting over.

Texts are encoded in runs of `ORDER_BLOCK` taken longest first over the whole corpus (what `encode`
does within one call), so batches hold texts of similar length and padding costs as little as in one
bare `encode` call; the runs are dealt out over the shards (`encode_order`), so every shard holds
long and short texts alike and costs about the same, and no shard holding only the longest texts
bounds a fanned-out pass.

A teacher without weights (an `EmbeddingFunction`: an endpoint's `EndpointClient`, a package
teacher's `PackageEncoder`) goes through the same shards: it batches its own calls (an endpoint's
client also retries and rate-limits its requests), and the prompt is prepended to each text as
`encode(prompt=...)` does. An endpoint's shards are smaller (`ENDPOINT_SHARD_ROWS`), since an
interruption loses the paid requests of the shard in progress.

Fanned out (`fanning_out`): the caller that runs `featurize` (a queue's job, `jobs.shards`) may hand the
missing shards of a teacher with weights or a package teacher (not an endpoint's: its client paces and
pays for the requests) to other processes, each of which calls `encode_stored_shard`
on the same folder (a shared mount). A shard is keyed by the teacher's fingerprint, the prompt and the
hash of its own texts (`shard_key`), checked before it is encoded, and written atomically: computed
twice it is written twice with the same content, and one already on disk is never encoded again.

Across jobs (`ShardLibrary`): each shard a teacher with weights (or a package teacher) encodes is also
linked into `<data>/cache/targets` under its `shard_key`, and a later job whose shard has the same key
(the same teacher, prompt and texts in the same order: the same corpus, distilled again with other
parameters) links it instead of encoding it. Shard boundaries depend on the whole corpus's length
order, so a different corpus rarely shares shards; the same corpus shares all of them. The library is
a bounded cache (`DISTILLERY_SHARD_LIBRARY_GB`; the least recently used shards go first) and
best-effort: when it cannot be written the job goes on without it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from core import settings
from core.encoders.base import unit_rows
from core.errors import DistilleryError
from core.files import link_atomically, save_array, texts_digest, write_json
from core.progress import Progress, silent

MANIFEST = "targets.json"
ORDER_FILE = "order.npy"
SHARD_ROWS = 8192
# Texts per `encode` call inside a shard: small enough for live progress and prompt cancel.
CHUNK_ROWS = 1024
# Teacher batch sizes, chosen by measurement (bench/featurize_speed.py; the figures are in
# docs/benchmarks.md): on a GPU large batches in half precision pay; on a CPU the batch size barely
# matters. A batch that overflows GPU memory is halved.
GPU_BATCH_SIZE = 512
CPU_BATCH_SIZE = 64
ENDPOINT_SHARD_ROWS = 2048
# Texts per run of the length order dealt to one shard: the GPU batch size (a multiple of the CPU's),
# so every batch holds one run and pads no more than in a whole-corpus sort; smaller shards take
# shorter runs (`ORDER_RUNS` of them at least) so that they too span the whole range of lengths.
ORDER_BLOCK = GPU_BATCH_SIZE
ORDER_RUNS = 8

log = logging.getLogger("distillery.featurize")


def default_batch_size(device: object) -> int:
    return GPU_BATCH_SIZE if str(device).startswith("cuda") else CPU_BATCH_SIZE

# An extra per-text target computed from the same forward pass (used by benchmarks for baselines
# that regress onto something else): name, dimension, and a function of `encode(output_value=None)`'s
# per-text output dict.
ExtraTarget = tuple[str, int, Callable[[dict[str, Any]], np.ndarray]]


@runtime_checkable
class EmbeddingFunction(Protocol):
    """A teacher without weights as `featurize` sees it: sentence embeddings of texts and their
    dimension, nothing else (no forward pass to share with extra targets, no batch size to tune, no
    GPU memory to fit). `EndpointClient` and `PackageEncoder` are ones; a `SentenceTransformer` is not."""

    @property
    def dimension(self) -> int | None: ...

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


@dataclass
class TargetStore:
    """Float16 targets for `rows` texts, split in shards of `shard_rows` in encode order."""

    folder: Path
    rows: int
    dim: int
    shard_rows: int
    names: tuple[str, ...] = ("targets",)
    # What the run that returned this store did: shards found complete on disk (a resumed run reuses
    # them) and texts the teacher embedded (only those of the missing shards).
    reused_shards: int = 0
    texts_embedded: int = 0
    prompt: str | None = None

    @classmethod
    def prepared(cls, folder: Path) -> TargetStore:
        """The store `featurize` prepared in `folder`, as its manifest describes it (another process's view)."""
        manifest = json.loads((Path(folder) / MANIFEST).read_text())
        return cls(Path(folder), manifest["rows"], manifest["dim"], manifest["shard_rows"], tuple(manifest["names"]),
                   prompt=manifest.get("prompt"))

    def shard_path(self, shard: int, name: str = "targets") -> Path:
        return self.folder / f"{name}_{shard:05d}.npy"

    def shard_size(self, shard: int) -> int:
        """The texts in shard `shard` (the last one holds what is left)."""
        return min(self.shard_rows, self.rows - shard * self.shard_rows)

    @property
    def shards(self) -> int:
        return -(-self.rows // self.shard_rows)

    def complete(self) -> bool:
        return all(self.shard_path(s, n).exists() for s in range(self.shards) for n in self.names)

    def open(self, name: str = "targets") -> TargetReader:
        order = np.load(self.folder / ORDER_FILE)
        position = np.empty_like(order)
        position[order] = np.arange(len(order))
        arrays = [np.load(self.shard_path(s, name), mmap_mode="r") for s in range(self.shards)]
        return TargetReader(arrays, position, self.shard_rows)


class TargetReader:
    """Random access to targets by corpus row, reading only the rows asked for from the shards.

    `offset`, when set, is subtracted from every row read (`centred`): the stored shards stay the
    teacher's own embeddings, which other jobs share."""

    def __init__(self, shards: list[np.ndarray], position: np.ndarray, shard_rows: int,
                 offset: np.ndarray | None = None) -> None:
        self.shards = shards
        self.position = position
        self.shard_rows = shard_rows
        self.offset = offset

    def __len__(self) -> int:
        return len(self.position)

    @property
    def dim(self) -> int:
        return int(self.shards[0].shape[1])

    def take(self, rows: np.ndarray) -> np.ndarray:
        """float32 targets of corpus rows `rows`, in that order."""
        pos = self.position[np.asarray(rows)]
        shard, offset = np.divmod(pos, self.shard_rows)
        out = np.empty((len(pos), self.dim), dtype=np.float32)
        for s in np.unique(shard):
            mask = shard == s
            out[mask] = self.shards[s][offset[mask]]
        if self.offset is not None:
            out -= self.offset
        return out

    def means(self, sample: int = 100_000, seed: int = 0) -> tuple[np.ndarray, float]:
        """The mean target, and the mean cosine between two targets (the squared length of the mean
        unit target, self-pairs aside), over a seeded sample of up to `sample` rows."""
        rows = np.sort(np.random.default_rng(seed).permutation(len(self))[:sample])
        total = np.zeros(self.dim, dtype=np.float64)
        unit_total = np.zeros(self.dim, dtype=np.float64)
        for start in range(0, len(rows), 8192):
            block = self.take(rows[start:start + 8192])
            total += block.sum(axis=0, dtype=np.float64)
            unit_total += unit_rows(block).sum(axis=0, dtype=np.float64)
        n = max(len(rows), 1)
        cosine = (float(unit_total @ unit_total) - n) / max(n * (n - 1), 1)
        return (total / n).astype(np.float32), cosine

    def centred(self, mean: np.ndarray) -> TargetReader:
        """The same targets less `mean` (`means`).

        Why: some teachers (E5 among them) put every text in a narrow cone, a shared direction holding
        most of each vector, so cosines between any two texts sit high and close together. Fitted to
        such targets, the cosine loss is spent on that shared direction; less the mean, it is spent on
        what tells texts apart."""
        return TargetReader(self.shards, self.position, self.shard_rows,
                            mean if self.offset is None else self.offset + mean)


def featurize(
    model: Any,  # sentence_transformers.SentenceTransformer, or an EmbeddingFunction
    texts: Sequence[str],
    folder: Path,
    key: str,
    prompt: str | None = None,
    batch_size: int | None = None,
    progress: Progress = silent,
    extra: Sequence[ExtraTarget] = (),
    shard_rows: int | None = None,
    teacher: Any = None,  # core.encoders.teacher.TeacherInfo: to share shards across jobs and fan them out
) -> TargetStore:
    """Encode `texts` with the teacher into `folder`, resuming a previous run with the same `key`.

    `key` identifies the work (teacher fingerprint, corpus digest, prompt): a folder holding another
    key's shards is cleared first, so stale targets are never mixed with new ones. `shard_rows`
    defaults to `SHARD_ROWS` (or `DISTILLERY_SHARD_ROWS`). The store returned counts the shards reused
    (this folder's, or the `ShardLibrary`'s) and the texts embedded by this call. With the `teacher`
    named and no extra targets, shards go through the `ShardLibrary`, and inside `fanning_out` (a teacher
    with weights loaded as `model`, or a package teacher) the missing ones are handed to the fan-out.
    """
    shard_rows = shard_rows or settings.shard_rows(SHARD_ROWS)
    if not texts:
        raise DistilleryError("The corpus is empty: there is nothing to featurize.")
    folder = Path(folder)
    if isinstance(model, EmbeddingFunction):
        if extra:
            raise DistilleryError("Extra targets need the teacher's forward pass; a teacher without weights returns "
                                  "only embeddings.")
        if model.dimension is None:
            raise DistilleryError("The teacher's dimension is not known yet: resolve the teacher first.")
        batch_size, dim = 0, model.dimension  # it batches its own calls
    else:
        batch_size = batch_size or default_batch_size(model.device)
        dim = int(model.get_embedding_dimension())
    store = TargetStore(folder, len(texts), dim, shard_rows, ("targets", *(e[0] for e in extra)))
    order = _prepare(folder, store, key, texts, prompt)
    done = sum(store.shard_path(s).exists() for s in range(store.shards))
    # Shards named by their `shard_key` (a named teacher, plain targets only): taken from the shards an
    # earlier job encoded (`ShardLibrary`), and shared out when `fanning_out`. Shared out: a teacher with
    # weights, or a package teacher (any consumer runs the same package); not an endpoint, whose requests
    # the job's own client paces and pays for.
    keyed = teacher is not None and not extra
    library = ShardLibrary.here() if keyed else None
    fanout = _fanout.get() if keyed else None
    if isinstance(model, EmbeddingFunction) and getattr(teacher, "package", None) is None:
        fanout = None
    keys: dict[int, str] = {}
    if library is not None or fanout is not None:
        keys = {s: shard_key(teacher.fingerprint, prompt, [texts[i] for i in _rows(order, s, shard_rows)])
                for s in range(store.shards) if not store.shard_path(s).exists()}
    linked = sum(library.take(store, s, keys[s]) for s in keys) if library is not None else 0
    if linked:
        progress("featurize", (done + linked) / store.shards, f"{linked} of {store.shards} shards embedded by "
                 f"earlier jobs with this teacher" + (f", {done} by this job's earlier run" if done else ""))
    elif done:
        progress("featurize", done / store.shards, f"resuming at shard {done + 1} of {store.shards}"
                 if done < store.shards else f"all {store.shards} shards already stored")
    missing = [s for s in range(store.shards) if not all(store.shard_path(s, n).exists() for n in store.names)]
    store.reused_shards = store.shards - len(missing)
    store.texts_embedded = sum(store.shard_size(s) for s in missing)
    if fanout is not None:
        def encode_here(shard: int) -> bool:
            return encode_stored_shard(model, texts, folder, shard, keys[shard], teacher.fingerprint, prompt,
                                       batch_size)

        if missing:
            fanout.run(store, missing, {s: keys[s] for s in missing}, encode_here, teacher, prompt)
        if not store.complete():
            raise DistilleryError("The teacher's shards were not all written (a fan-out ended early).")
    else:
        for shard in missing:
            arrays, batch_size = _encode_shard(model, texts, _rows(order, shard, shard_rows), prompt, batch_size,
                                               extra, progress, shard, store)
            for name, array in arrays.items():
                save_array(store.shard_path(shard, name), array)
            if library is not None:
                library.keep(store, shard, keys[shard])
    if library is not None and missing:
        library.prune()
    progress("featurize", 1.0, f"{len(texts):,} teacher embeddings")
    return store


def store_from_rows(
    texts: Sequence[str], folder: Path, key: str, prompt: str | None, dim: int,
    rows_of: Callable[[np.ndarray], np.ndarray], shard_rows: int | None = None,
) -> TargetStore:
    """A store for `texts` under `key` whose targets are already known (`rows_of(indices)` returns the
    targets of those texts), laid out exactly as `featurize` lays it out, so `featurize` with the same
    key resumes it whole. For a benchmark that trains on a subset or a union of corpora whose texts the
    teacher embedded before: the teacher's output of a text does not depend on the corpus around it."""
    shard_rows = shard_rows or settings.shard_rows(SHARD_ROWS)
    store = TargetStore(Path(folder), len(texts), dim, shard_rows)
    order = _prepare(Path(folder), store, key, texts, prompt)
    for shard in range(store.shards):
        if not store.shard_path(shard).exists():
            save_array(store.shard_path(shard), np.asarray(rows_of(_rows(order, shard, shard_rows)), dtype=np.float16))
    return store


class ShardLibrary:
    """Shards kept across jobs, by `shard_key`, in `settings.shard_library_dir()` (`<data>/cache/targets`
    unless `DISTILLERY_SHARD_LIBRARY` says otherwise; a cache: deleting it costs only recomputation).
    Contract: `take(store, shard, key)` links a kept shard of the right shape into the store and says
    whether it did; `keep(store, shard, key)` links a stored shard into the library; `prune()` drops the
    shards least recently taken or kept until the library holds at most `DISTILLERY_SHARD_LIBRARY_GB`.
    Links are atomic renames of hard links (copies across file systems), so a store and the library
    share the bytes and any number of processes may call them at once. The library is best-effort: a
    shard it cannot take or keep (a full disk, a read-only mount) is encoded or left out, with a
    warning, and never fails the job. `ShardLibrary.here()` is None where it is turned off."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    @classmethod
    def here(cls) -> ShardLibrary | None:
        folder = settings.shard_library_dir()
        return cls(folder) if folder is not None else None

    def path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.npy"

    def take(self, store: TargetStore, shard: int, key: str) -> bool:
        kept = self.path(key)
        try:
            shape = np.load(kept, mmap_mode="r").shape
        except (OSError, ValueError):  # not kept, or unreadable: encoded again
            return False
        if shape != (store.shard_size(shard), store.dim):
            return False
        try:
            link_atomically(kept, store.shard_path(shard))
        except (OSError, DistilleryError) as exc:
            log.warning("Shard %d could not be linked from the shard library (%s); the teacher encodes it.",
                        shard, exc)
            return False
        with suppress(OSError):  # recently used: the last to be pruned (linked either way)
            os.utime(kept)
        return True

    def keep(self, store: TargetStore, shard: int, key: str) -> None:
        if self.path(key).exists():
            return
        try:
            link_atomically(store.shard_path(shard), self.path(key))
        except (OSError, DistilleryError) as exc:
            log.warning("Shard %d was not kept in the shard library %s (%s); the job goes on without it.",
                        shard, self.folder, exc)

    def prune(self) -> int:
        """Drop the least recently used shards until at most `settings.shard_library_bytes()` are kept;
        returns how many. A dropped shard that a job's store still links keeps its bytes there."""
        limit = settings.shard_library_bytes()
        entries = []
        for path in self.folder.glob("??/*.npy"):
            try:
                stat = path.stat()
            except OSError:  # dropped by another process meanwhile
                continue
            entries.append((stat.st_mtime, stat.st_size, path))
        total = sum(size for _, size, _ in entries)
        dropped = 0
        for _, size, path in sorted(entries, key=lambda e: e[0]):
            if total <= limit:
                break
            path.unlink(missing_ok=True)
            total -= size
            dropped += 1
        return dropped


class ShardFanout(Protocol):
    """What runs the missing shards of a store elsewhere (`jobs.shards` on a queue's consumers)."""

    def run(self, store: TargetStore, missing: list[int], keys: dict[int, str], encode_here: Callable[[int], bool],
            teacher: Any, prompt: str | None) -> None:
        """Return once every shard in `missing` is on disk. `encode_here(shard)` encodes one in this
        process (False if it was already there); `keys[shard]` is its `shard_key`; elsewhere a shard
        is `encode_stored_shard(model, texts, store.folder, shard, keys[shard], teacher.fingerprint,
        prompt)` with `model` that process's `load_teacher(teacher)` (a package teacher's `PackageEncoder`)."""


_fanout: ContextVar[ShardFanout | None] = ContextVar("distillery_shard_fanout", default=None)


@contextmanager
def fanning_out(fanout: ShardFanout | None) -> Iterator[None]:
    """Within the block, `featurize` hands the missing shards of a teacher with weights to `fanout`."""
    token = _fanout.set(fanout)
    try:
        yield
    finally:
        _fanout.reset(token)


def shard_key(teacher_fingerprint: str, prompt: str | None, texts: Sequence[str]) -> str:
    """One shard's identity: the teacher, the prompt and the shard's own texts in encode order."""
    return hashlib.sha256("\0".join((teacher_fingerprint, prompt or "", texts_digest(texts))).encode()).hexdigest()


def encode_stored_shard(
    model: Any, texts: Sequence[str], folder: Path, shard: int, key: str, teacher_fingerprint: str,
    prompt: str | None, batch_size: int | None = None, progress: Progress = silent,
) -> bool:
    """Encode shard `shard` of the store `featurize` prepared in `folder`, unless it is on disk already.

    Idempotent and atomic (the arrays are renamed into place whole), so any process may run it, and
    two may run it at once. `key` must be the shard's `shard_key`: a store reset for other work (or
    another corpus) refuses it rather than receive targets of other texts. True when it encoded.
    """
    store = TargetStore.prepared(folder)
    if all(store.shard_path(shard, n).exists() for n in store.names):
        return False
    if store.names != ("targets",) or len(texts) != store.rows or store.prompt != prompt:
        raise DistilleryError(f"The target store in {folder} is not for these texts and prompt.")
    rows = _rows(np.load(folder / ORDER_FILE), shard, store.shard_rows)
    if shard_key(teacher_fingerprint, prompt, [texts[i] for i in rows]) != key:
        raise DistilleryError(f"Shard {shard} of {folder} holds other texts than the shard asked for.")
    if isinstance(model, EmbeddingFunction):  # a package teacher batches its own calls
        batch_size = 0
    elif not batch_size:
        batch_size = default_batch_size(model.device)
    arrays, _ = _encode_shard(model, texts, rows, prompt, batch_size, (), progress, shard, store)
    save_array(store.shard_path(shard), arrays["targets"])
    if (library := ShardLibrary.here()) is not None:
        library.keep(store, shard, key)
    return True


def _rows(order: np.ndarray, shard: int, shard_rows: int) -> np.ndarray:
    return order[shard * shard_rows:(shard + 1) * shard_rows]


def featurize_key(teacher_fingerprint: str, texts: Sequence[str], prompt: str | None, extra: Sequence[str] = ()) -> str:
    parts = (teacher_fingerprint, prompt or "", *extra, texts_digest(texts))
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def _prepare(folder: Path, store: TargetStore, key: str, texts: Sequence[str], prompt: str | None) -> np.ndarray:
    """Reuse the folder if it holds the same work, else start it afresh; returns the encode order."""
    manifest = {"key": key, "rows": store.rows, "dim": store.dim, "shard_rows": store.shard_rows,
                "names": list(store.names), "dtype": "float16", "prompt": prompt}
    path = folder / MANIFEST
    if path.exists() and json.loads(path.read_text()) == manifest and (folder / ORDER_FILE).exists():
        return np.load(folder / ORDER_FILE)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    order = encode_order(np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts)),
                          store.shard_rows)
    save_array(folder / ORDER_FILE, order)
    write_json(path, manifest)
    return order


def encode_order(lengths: np.ndarray, shard_rows: int, block: int | None = None) -> np.ndarray:
    """The corpus rows in encode order: shard `s` is `order[s * shard_rows:(s + 1) * shard_rows]`.

    The length order (longest first) is cut in runs of `block` rows (default: `ORDER_BLOCK`, shorter
    for shards of fewer than `ORDER_RUNS` of those), and the runs are dealt to the shards evenly, back
    and forth: each shard's `j`-th of `k` runs comes from near `(j + 0.5) / k` of the length order, so
    each shard spans the whole range of lengths, longest first, and the shards cost about the same
    (docs/benchmarks.md has the costliest shard against the mean, before and after).
    """
    by_length = np.argsort(-lengths, kind="stable")
    rows = len(lengths)
    if rows <= shard_rows:
        return by_length
    block = block or min(ORDER_BLOCK, max(1, shard_rows // ORDER_RUNS))
    starts, sizes, ranks, turns = [], [], [], []
    for shard, first in enumerate(range(0, rows, shard_rows)):
        capacity = min(shard_rows, rows - first)
        runs = np.arange(-(-capacity // block))
        starts.append(first + runs * block)
        sizes.append(np.minimum(block, capacity - runs * block))
        ranks.append((runs + 0.5) / len(runs))
        turns.append(np.where(runs % 2, -shard, shard))  # ties dealt back and forth, not shard 0 first each time
    dealt = np.lexsort((np.concatenate(turns), np.concatenate(ranks)))
    start, size = np.concatenate(starts)[dealt], np.concatenate(sizes)[dealt]
    taken = np.cumsum(size) - size  # where each run begins in the length order
    order = np.empty(rows, dtype=np.int64)
    order[np.repeat(start - taken, size) + np.arange(rows)] = by_length
    return order


def _encode_shard(
    model, texts: Sequence[str], rows: np.ndarray, prompt: str | None, batch_size: int,
    extra: Sequence[ExtraTarget], progress: Progress, shard: int, store: TargetStore,
) -> tuple[dict[str, np.ndarray], int]:
    """The shard's arrays, and the batch size that fitted (kept for the following shards)."""
    out = {"targets": np.empty((len(rows), store.dim), dtype=np.float16)}
    for name, dim, _ in extra:
        out[name] = np.empty((len(rows), dim), dtype=np.float16)
    for start in range(0, len(rows), CHUNK_ROWS):
        chunk = [texts[i] for i in rows[start:start + CHUNK_ROWS]]
        stop = start + len(chunk)
        if isinstance(model, EmbeddingFunction):  # batching (an endpoint's concurrency and retries) is its own
            out["targets"][start:stop] = model.embed([prompt + text for text in chunk] if prompt else chunk)
        else:
            batch_size = _encode_fitting(model, chunk, prompt, batch_size, extra, out, start, stop,
                                         progress, (shard * store.shard_rows + start) / store.rows)
        done = shard * store.shard_rows + stop
        progress("featurize", done / store.rows, f"{done:,}/{store.rows:,} texts embedded by the teacher")
    if not np.isfinite(out["targets"]).all():
        raise DistilleryError("The teacher produced NaN or infinite embeddings (float16 overflow or a broken model).")
    return out, batch_size


def _encode_fitting(model, chunk: list[str], prompt: str | None, batch_size: int, extra: Sequence[ExtraTarget],
                    out: dict[str, np.ndarray], start: int, stop: int, progress: Progress, fraction: float) -> int:
    """`_encode_chunk`, halving the batch size while the GPU runs out of memory; returns the size that fitted."""
    while True:
        try:
            _encode_chunk(model, chunk, prompt, batch_size, extra, out, start, stop)
            return batch_size
        except Exception as exc:  # noqa: BLE001 - only GPU out-of-memory is retried
            if not _is_out_of_memory(exc) or batch_size <= 1:
                raise
            batch_size //= 2
            _free_gpu_memory()
            progress("featurize", fraction, f"GPU memory full: teacher batch size lowered to {batch_size}")


def _encode_chunk(model, chunk: list[str], prompt: str | None, batch_size: int, extra: Sequence[ExtraTarget],
                  out: dict[str, np.ndarray], start: int, stop: int) -> None:
    if extra:
        outputs = model.encode(chunk, batch_size=batch_size, prompt=prompt, output_value=None,
                               show_progress_bar=False)
        out["targets"][start:stop] = np.stack([o["sentence_embedding"].float().cpu().numpy() for o in outputs])
        for name, _, fn in extra:
            out[name][start:stop] = np.stack([fn(o) for o in outputs])
    else:
        out["targets"][start:stop] = model.encode(chunk, batch_size=batch_size, prompt=prompt,
                                                  convert_to_numpy=True, show_progress_bar=False)


def _is_out_of_memory(exc: BaseException) -> bool:
    import torch

    return isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower()


def _free_gpu_memory() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
