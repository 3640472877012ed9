"""Latency and throughput, measured the same way for teacher and student.

Both are timed on the same texts, after a warm-up, with the thread count recorded, so a ratio
between them means something. Used live by the Compare tab and by the benchmarks.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

Encode = Callable[[Sequence[str]], np.ndarray]


@dataclass
class SpeedReport:
    label: str
    threads: int
    query_p50_ms: float
    query_p95_ms: float
    throughput_per_s: float
    queries: int
    batch_texts: int

    def to_dict(self) -> dict:
        return asdict(self)


def query_latencies_ms(encode: Encode, queries: Sequence[str], warmup: int = 3) -> np.ndarray:
    """One call per query, as a search box does it; returns milliseconds per query."""
    for query in list(queries)[:warmup]:
        encode([query])
    times = []
    for query in queries:
        start = time.perf_counter()
        encode([query])
        times.append((time.perf_counter() - start) * 1000)
    return np.asarray(times)


def throughput(encode: Encode, texts: Sequence[str], batch_size: int = 64, min_seconds: float = 0.0) -> float:
    """Texts per second when encoding `texts` in batches (repeated until `min_seconds` have passed)."""
    encode(list(texts[:batch_size]))  # warm-up
    done, start = 0, time.perf_counter()
    while True:
        for i in range(0, len(texts), batch_size):
            encode(list(texts[i : i + batch_size]))
        done += len(texts)
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return done / elapsed


def measure(label: str, encode: Encode, threads: int, queries: Sequence[str], texts: Sequence[str],
            min_seconds: float = 0.0) -> SpeedReport:
    latencies = query_latencies_ms(encode, queries)
    return SpeedReport(
        label=label, threads=threads,
        query_p50_ms=float(np.percentile(latencies, 50)), query_p95_ms=float(np.percentile(latencies, 95)),
        throughput_per_s=throughput(encode, texts, min_seconds=min_seconds), queries=len(queries),
        batch_texts=len(texts),
    )
