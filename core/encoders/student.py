"""The student: one cached load of a model folder, and an encoder that returns `StaticModel.encode`'s
vectors bit for bit in less of its time (docs/benchmarks.md, "Student encode", has the profile and
the figures).

`StaticModel.encode` (model2vec 0.10, `use_multiprocessing=False`) spends its time in the Rust
tokenizer and, on one core, in a per-token Python list comprehension that drops `[UNK]`, then a
numpy gather and mean per bucket of equal-length texts.

Here the ids of a whole batch become one CSR matrix (a row per text, a 1.0 per token) whose product
with the table is every text's sum at once; `[UNK]` is dropped with a mask over the flat ids. The
next batch is tokenized on a second thread (the tokenizer releases the GIL) while this one is pooled.
scipy's `csr_matvecs` adds a row's tokens in order into a zeroed accumulator, the same order in
which numpy's `mean(axis=1)` adds them, and the accumulator has numpy's dtype (float32 for float16
and float32 tables, float64 for int8), so the vectors equal model2vec's exactly (a test holds this).
Models with per-token weights or a token mapping (vocabulary quantization) go to model2vec itself.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from core.encoders.base import unit_rows
from core.errors import DistilleryError
from core.files import file_sha256

# Texts per tokenizer call: small enough that two batches of a 1,024-text call (model2vec's default
# batch) overlap, tokenizing one while pooling the other (chosen by bench/speed.py; docs/benchmarks.md).
BATCH_SIZE = 256


def parallel_allowed() -> bool:
    """The tokenizer's own switch (TOKENIZERS_PARALLELISM, read at every call) decides for the
    tokenizer thread too, so "one thread" (`core.serving.timing.thread_limit(1)`) means one core."""
    value = os.environ.get("TOKENIZERS_PARALLELISM")
    return value is None or value.lower() not in ("", "off", "false", "f", "no", "n", "0")  # the Rust side's list


class StaticEncoder:
    """Encodes texts like `model.encode(texts, use_multiprocessing=False)` (the model's max_length
    and normalize settings), returning the same array in the same dtype."""

    def __init__(self, model) -> None:  # model: model2vec.StaticModel
        self.model = model
        self.fast = model.weights is None and model.token_mapping is None
        dtype = model.embedding.dtype
        # numpy's mean accumulates float16 and float32 in float32 and integers in float64.
        self._sum_dtype = np.dtype(np.float32) if dtype in (np.float16, np.float32) else np.dtype(np.float64)
        self._out_dtype = np.dtype(np.float32) if dtype == np.int8 else dtype
        self._table = np.ascontiguousarray(model.embedding, dtype=self._sum_dtype) if self.fast else None
        self._tokenizer_thread: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def encode(self, texts: Sequence[str], batch_size: int = BATCH_SIZE) -> np.ndarray:
        if isinstance(texts, str):
            return self.encode([texts], batch_size)[0]
        if not self.fast:
            return self.model.encode(list(texts), use_multiprocessing=False)
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.model.dim), dtype=self._out_dtype)
        batches = [texts[i:i + batch_size] for i in range(0, len(texts), batch_size)]
        if len(batches) == 1 or not parallel_allowed():
            return np.concatenate([self._pool(self._token_ids(batch)) for batch in batches])
        parts = []
        pending = self._submit(batches[0])
        for following in itertools.chain(batches[1:], [None]):
            ids = pending.result()
            if following is not None:
                pending = self._submit(following)
            parts.append(self._pool(ids))
        return np.concatenate(parts)

    def _submit(self, batch: list[str]) -> Future:
        with self._lock:
            if self._tokenizer_thread is None:
                self._tokenizer_thread = ThreadPoolExecutor(1, thread_name_prefix="static-tokenizer")
            return self._tokenizer_thread.submit(self._token_ids, batch)

    def _token_ids(self, batch: list[str]) -> list[list[int]]:
        """model2vec's tokenization: the text cut to max_length × the median token length in
        characters, then the tokenizer (truncating at max_length) without special tokens."""
        max_length = self.model.max_length
        if max_length is not None:
            chars = max_length * self.model.median_token_length
            batch = [text[:chars] for text in batch]
        return [e.ids for e in self.model.tokenizer.encode_batch_fast(batch, add_special_tokens=False)]

    def _pool(self, ids: list[list[int]]) -> np.ndarray:
        """Mean of each text's token vectors, then model2vec's normalisation, in its dtypes."""
        sums, lengths = self._sum_one(ids[0]) if len(ids) == 1 else self._sum_many(ids)
        sums /= np.maximum(lengths, 1)[:, None].astype(self._sum_dtype)
        out = sums.astype(self._out_dtype)
        if not self.model.normalize:
            return out
        out32 = out.astype(np.float32)
        norm = np.linalg.norm(out32, axis=1, keepdims=True) + 1e-32
        return (out32 / norm).astype(out.dtype)

    def _sum_one(self, ids: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """One text (a search box's query): a gather and a sum over rows, which numpy adds in order;
        a sparse matrix for one row would cost more to build than the sum itself."""
        assert self._table is not None  # the fast path only
        flat = np.array(ids, dtype=np.intp)
        if self.model.unk_token_id is not None:
            flat = flat[flat != self.model.unk_token_id]
        if not len(flat):
            return np.zeros((1, self._table.shape[1]), dtype=self._sum_dtype), np.zeros(1, dtype=np.int64)
        return self._table[flat].sum(axis=0, keepdims=True), np.array([len(flat)])

    def _sum_many(self, ids: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
        assert self._table is not None  # the fast path only
        flat, lengths = flatten_ids(ids)
        unk = self.model.unk_token_id
        if unk is not None:
            keep = flat != unk
            if not keep.all():
                rows = np.repeat(np.arange(len(ids)), lengths)
                flat, lengths = flat[keep], np.bincount(rows[keep], minlength=len(ids))
        indptr = np.zeros(len(ids) + 1, dtype=np.int64)
        np.cumsum(lengths, out=indptr[1:])
        return sum_rows(self._table, flat, indptr), lengths


def flatten_ids(ids: Sequence[Sequence[int]], dtype: type = np.int64) -> tuple[np.ndarray, np.ndarray]:
    """Token id lists as one flat array and their lengths, without a Python loop per token."""
    lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
    return np.fromiter(itertools.chain.from_iterable(ids), dtype=dtype, count=int(lengths.sum())), lengths


def sum_rows(table: np.ndarray, flat_ids: np.ndarray, indptr: np.ndarray) -> np.ndarray:
    """Row i: the sum of `table[flat_ids[indptr[i]:indptr[i + 1]]]`, added in order, in one sparse product."""
    import scipy.sparse

    counts = scipy.sparse.csr_matrix((np.ones(len(flat_ids), dtype=table.dtype), flat_ids, indptr),
                                     shape=(len(indptr) - 1, len(table)))
    return counts @ table


class StudentEncoder:
    """A student folder as an `Encoder` (queries and documents alike: a static model has no prompts).

    Open it with `StudentEncoder.open(folder)`, which loads each version of a folder's weights once
    per process; the evaluation's `SentenceTransformer` view (`sentence_transformer`) is built once
    per encoder.
    """

    label = "student"

    def __init__(self, folder: Path, model: Any, fingerprint: str) -> None:
        self.folder = Path(folder)
        self.model = model  # model2vec.StaticModel
        self.fingerprint = fingerprint
        self.fast = StaticEncoder(model)
        self._sentence_transformer: Any = None
        self._lock = threading.Lock()

    @classmethod
    def open(cls, folder: Path) -> StudentEncoder:
        """The folder's student, from the cache when its weights have not changed since it was loaded."""
        from core.artifact.folder import model2vec_weights  # the folder layout has one owner

        weights = model2vec_weights(folder)
        stat = weights.stat()
        key = (str(Path(folder).resolve()), stat.st_mtime_ns, stat.st_size)
        with _cache_lock:
            if key in _students:
                _students.move_to_end(key)
                return _students[key]
        from model2vec import StaticModel

        try:
            model = StaticModel.from_pretrained(str(folder))
        except Exception as exc:  # noqa: BLE001 - a corrupt file can fail in many ways
            raise DistilleryError(f"{folder} could not be loaded as a model2vec model: {exc}") from exc
        encoder = cls(Path(folder), model, f"sha256:{file_sha256(weights)}")
        with _cache_lock:
            _students[key] = encoder
            while len(_students) > MAX_CACHED_STUDENTS:
                _students.popitem(last=False)
        return encoder

    @property
    def nbytes(self) -> int:
        """The memory this encoder holds, estimated: the table as saved, the float32 copy the fast
        path sums in (a float16 table is widened once at load), per-token weights, and the tokenizer
        (`TOKENIZER_BYTES_PER_TOKEN` a vocabulary entry). A registry with a memory budget weighs
        models by it."""
        table = np.asarray(self.model.embedding)
        total = table.nbytes
        copy = self.fast._table
        if copy is not None and not np.shares_memory(copy, table):
            total += copy.nbytes
        if self.model.weights is not None:
            total += np.asarray(self.model.weights).nbytes
        return total + self.model.tokenizer.get_vocab_size() * TOKENIZER_BYTES_PER_TOKEN

    def release(self) -> None:
        """Drop this encoder from the per-process cache of `open`, so that its memory is freed once
        its last user lets go (a registry evicting it); the encoder itself keeps working."""
        with _cache_lock:
            for key in [k for k, v in _students.items() if v is self]:
                del _students[key]

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return unit_rows(self.fast.encode(list(texts)))

    def count_tokens(self, texts: Sequence[str]) -> int:
        """The tokens the model reads of `texts` (no special tokens, cut at its max_length)."""
        model = self.model
        return sum(min(len(e.ids), model.max_length or len(e.ids))
                   for e in model.tokenizer.encode_batch_fast(list(texts), add_special_tokens=False))

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self.encode(texts)

    def sentence_transformer(self) -> Any:  # -> sentence_transformers.SentenceTransformer
        """The folder as sentence-transformers loads it (a `StaticEmbedding`), which `mteb` evaluates."""
        with self._lock:
            if self._sentence_transformer is None:
                from sentence_transformers import SentenceTransformer

                try:
                    model = SentenceTransformer(str(self.folder), device="cpu")
                except Exception as exc:  # noqa: BLE001 - a corrupt file can fail in many ways
                    raise DistilleryError(f"{self.folder} could not be loaded by sentence-transformers: {exc}") from exc
                model.model_card_data.model_name = f"local/{self.folder.name}"
                self._sentence_transformer = model
            return self._sentence_transformer


MAX_CACHED_STUDENTS = 8
# A loaded Rust tokenizer holds about 230 bytes per vocabulary entry (MiniLM's 30,522 entries: 6.6 MB
# of resident memory measured over ten loads); a round figure above it keeps estimates on the safe side.
TOKENIZER_BYTES_PER_TOKEN = 256
_students: OrderedDict[tuple[str, int, int], StudentEncoder] = OrderedDict()
_cache_lock = threading.Lock()
