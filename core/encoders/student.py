"""The student: one cached load of a model folder, and an encoder that returns `StaticModel.encode`'s
vectors bit for bit in less of its time, on one core and on all of them (docs/benchmarks.md,
"Student encode", has the profile and the figures).

`StaticModel.encode` (model2vec 0.10) spends its time in the Rust tokenizer, then in a per-token
Python list comprehension that drops `[UNK]`, then a numpy gather and mean per bucket of
equal-length texts; above 10,000 texts it runs its batches on a joblib thread per core.

Here the tokenizer is `core.encoders.tokenization.StaticTokenizer` (plain-ASCII texts skip the
accent-stripping normaliser), and the ids of a chunk of texts become one CSR matrix (a row per
text, a 1.0 per token) whose product with the table is every text's sum at once; `[UNK]` is
dropped with a mask over the flat ids. Inputs of more than one chunk are spread over a pool of
threads, one per core (`core.encoders.threads.encode_threads`): the tokenizer, scipy's product
and numpy release the GIL, so the chunks run side by side. One text takes a path of its own with
no thread, no sparse matrix and no list per batch: the embeddings service and the Compare tab
call it that way.

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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from core.encoders.base import unit_rows
from core.encoders.threads import encode_threads
from core.encoders.tokenization import StaticTokenizer
from core.errors import DistilleryError
from core.files import file_sha256

# Texts per chunk: one tokenizer call and one sparse product each. Large enough that a thread's
# hand-off costs little against its work, small enough that 20k texts make a few chunks per core
# (chosen by bench/speed.py; docs/benchmarks.md).
CHUNK_TEXTS = 512


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
        self.tokenizer = StaticTokenizer(model)
        self._unk = model.unk_token_id

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if isinstance(texts, str):
            return self.encode([texts])[0]
        if not self.fast:
            return self.model.encode(list(texts), use_multiprocessing=False)
        texts = list(texts)
        if len(texts) == 1:
            return self._encode_one(texts[0])
        if not texts:
            return np.zeros((0, self.model.dim), dtype=self._out_dtype)
        chunks = [texts[i:i + CHUNK_TEXTS] for i in range(0, len(texts), CHUNK_TEXTS)]
        threads = min(len(chunks), encode_threads())
        if threads == 1:
            return np.concatenate([self._encode_chunk(chunk) for chunk in chunks])
        return np.concatenate(list(_pool(threads).map(self._encode_chunk, chunks)))

    def _encode_chunk(self, texts: list[str]) -> np.ndarray:
        assert self._table is not None  # the fast path only
        ids = self.tokenizer.ids(texts)
        flat, lengths = flatten_ids(ids)
        if self._unk is not None:
            keep = flat != self._unk
            if not keep.all():
                rows = np.repeat(np.arange(len(ids)), lengths)
                flat, lengths = flat[keep], np.bincount(rows[keep], minlength=len(ids))
        indptr = np.zeros(len(ids) + 1, dtype=np.int64)
        np.cumsum(lengths, out=indptr[1:])
        return self._finish(sum_rows(self._table, flat, indptr), lengths)

    def _encode_one(self, text: str) -> np.ndarray:
        """One text: a gather and a sum over rows, which numpy adds in order; a sparse matrix for one
        row would cost more to build than the sum itself."""
        assert self._table is not None  # the fast path only
        ids = self.tokenizer.one(text)
        if self._unk is not None and self._unk in ids:  # rare: a test on the list beats a numpy mask
            ids = [i for i in ids if i != self._unk]
        if not ids:
            return np.zeros((1, self._table.shape[1]), dtype=self._out_dtype)
        sums = np.add.reduce(self._table[np.array(ids, dtype=np.intp)], axis=0, keepdims=True)
        sums /= self._sum_dtype.type(len(ids))
        return self._normalized(sums)

    def _finish(self, sums: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """Sums to means (numpy's mean divides by the count in the sum's dtype), then normalised."""
        sums /= np.maximum(lengths, 1)[:, None].astype(self._sum_dtype)
        return self._normalized(sums)

    def _normalized(self, means: np.ndarray) -> np.ndarray:
        """model2vec's output: the means in the table's dtype (float32 for int8), divided by their
        float32 norm plus 1e-32 when the model normalises. The norm is `np.linalg.norm(x, axis=1)`'s
        own arithmetic (a sum of squares along the row) without its Python wrapper."""
        out = means.astype(self._out_dtype, copy=False)
        if not self.model.normalize:
            return out
        out32 = out.astype(np.float32, copy=False)
        norm = np.sqrt(np.add.reduce(out32 * out32, axis=1, keepdims=True))
        norm += 1e-32
        out32 /= norm
        return out32.astype(out.dtype, copy=False)


def _pool(threads: int) -> ThreadPoolExecutor:
    """One pool per thread count per process, shared by every encoder (a registry may hold many
    models; a pool each would be idle threads each). A forked child makes its own: the parent's
    threads do not exist there."""
    key = (os.getpid(), threads)
    with _pools_lock:
        if key not in _pools:
            _pools[key] = ThreadPoolExecutor(threads, thread_name_prefix="static-encode")
        return _pools[key]


_pools: dict[tuple[int, int], ThreadPoolExecutor] = {}
_pools_lock = threading.Lock()


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
        path sums in (a float16 table is widened once at load), per-token weights, and the tokenizers:
        the model's own and the encoder's copies (`TOKENIZER_BYTES_PER_TOKEN` a vocabulary entry
        each). A registry with a memory budget weighs models by it."""
        table = np.asarray(self.model.embedding)
        total = table.nbytes
        copy = self.fast._table
        if copy is not None and not np.shares_memory(copy, table):
            total += copy.nbytes
        if self.model.weights is not None:
            total += np.asarray(self.model.weights).nbytes
        tokenizers = 1 + self.fast.tokenizer.copies
        return total + tokenizers * self.model.tokenizer.get_vocab_size() * TOKENIZER_BYTES_PER_TOKEN

    def release(self) -> None:
        """Drop this encoder from the per-process cache of `open`, so that its memory is freed once
        its last user lets go (a registry evicting it); the encoder itself keeps working."""
        with _cache_lock:
            for key in [k for k, v in _students.items() if v is self]:
                del _students[key]

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        vectors = self.fast.encode(list(texts))
        if self.model.normalize and vectors.dtype == np.float32:
            return vectors  # unit rows already (zero rows stay zero), and model2vec's very numbers
        return unit_rows(vectors)

    def count_tokens(self, texts: Sequence[str]) -> int:
        """The tokens the model reads of `texts` (no special tokens, cut at its max_length)."""
        return sum(map(len, self.fast.tokenizer.ids(list(texts))))

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
