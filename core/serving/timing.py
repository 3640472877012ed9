"""Latency and throughput, measured the same way for teacher and student.

Both are timed on the same texts, after a warm-up, under the same thread limit, so a ratio between
them means something. One code path for the Compare tab (live, on the user's queries), the
evaluation's speed-up (`teacher_vs_student`) and `bench/speed.py` (the published figures).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from core.encoders.threads import all_cores, thread_limit

Encode = Callable[[Sequence[str]], np.ndarray]


@dataclass
class SpeedReport:
    label: str
    threads: int
    query_p50_ms: float
    query_p95_ms: float
    query_p99_ms: float
    throughput_per_s: float  # on `texts`
    queries: int
    batch_texts: int
    short_per_s: float | None = None  # on the queries themselves, batched, when asked for
    latencies_ms: list[float] = field(default_factory=list, repr=False)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Contender:
    """One model in a race, with the texts it is timed on (a slow teacher may get fewer)."""

    label: str
    encode: Encode
    queries: Sequence[str]
    texts: Sequence[str]


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
            min_seconds: float = 0.0, short_throughput: bool = False) -> SpeedReport:
    latencies = query_latencies_ms(encode, queries)
    p50, p95, p99 = (float(np.percentile(latencies, q)) for q in (50, 95, 99))
    return SpeedReport(
        label=label, threads=threads, query_p50_ms=p50, query_p95_ms=p95, query_p99_ms=p99,
        throughput_per_s=throughput(encode, texts, min_seconds=min_seconds), queries=len(queries),
        batch_texts=len(texts),
        short_per_s=throughput(encode, queries, min_seconds=min_seconds) if short_throughput else None,
        latencies_ms=[round(float(t), 4) for t in latencies],
    )


def race(contenders: Sequence[Contender], thread_counts: Sequence[int], min_seconds: float = 0.0,
         short_throughput: bool = False, on_report: Callable[[SpeedReport], None] | None = None) -> list[SpeedReport]:
    """Every contender at every thread count, one after the other (never two at once)."""
    reports = []
    for threads in thread_counts:
        with thread_limit(threads):
            for c in contenders:
                reports.append(measure(c.label, c.encode, threads, c.queries, c.texts, min_seconds, short_throughput))
                if on_report is not None:
                    on_report(reports[-1])
    return reports


def teacher_vs_student(teacher_encode: Encode, student_encode: Encode, queries: Sequence[str], texts: Sequence[str],
                       threads: int | Sequence[int] | None = None,
                       on_report: Callable[[SpeedReport], None] | None = None) -> list[SpeedReport]:
    """Teacher then student at each thread count (default: all cores), the reports in that order."""
    counts = [threads] if isinstance(threads, int) else list(threads or [all_cores()])
    return race([Contender("teacher", teacher_encode, queries, texts),
                 Contender("student", student_encode, queries, texts)], counts, min_seconds=0.2, on_report=on_report)
