"""The student's encoder: `StaticModel.encode`'s vectors, bit for bit, in about 60% of its time.

Where `StaticModel.encode` (model2vec 0.10, `use_multiprocessing=False`) spends its time, profiled
on the quality bench's student (docs/benchmarks.md, "Student encode"):
- the Rust tokenizer, on both cores: ~40% of the time on short queries, ~50% on passages;
- the rest in Python on one core: a per-token list comprehension that drops `[UNK]`, then a numpy
  gather and mean per bucket of equal-length texts.

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
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

# Texts per tokenizer call. 256 measured best on 2 cores for calls of 1,024 texts (model2vec's default
# batch): 1.92x short / 1.57x passages against 1.51x / 1.58x at 512, whose two batches barely overlap.
BATCH_SIZE = 256


def parallel_allowed() -> bool:
    """The tokenizer's own switch (TOKENIZERS_PARALLELISM, read at every call) decides for the
    tokenizer thread too, so "one thread" (`core.timing.thread_limit(1)`) means one core."""
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
        flat = np.array(ids, dtype=np.intp)
        if self.model.unk_token_id is not None:
            flat = flat[flat != self.model.unk_token_id]
        if not len(flat):
            return np.zeros((1, self._table.shape[1]), dtype=self._sum_dtype), np.zeros(1, dtype=np.int64)
        return self._table[flat].sum(axis=0, keepdims=True), np.array([len(flat)])

    def _sum_many(self, ids: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
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
