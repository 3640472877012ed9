"""Teacher vs student speed, side by side, on the same texts and thread counts.

    .venv/bin/python bench/speed.py STUDENT_FOLDER [--queries 500] [--passages 2000] [--search-size 100000]

For 1 thread and all cores, after a warm-up: throughput on short queries (conversational corpus texts,
cut to 12 words) and on passages (corpus texts of 100+ words), single-query latency p50/p95/p99, for
- the teacher (`SentenceTransformer.encode`),
- the student through Distillery's encoder (`core.embedders.student_embedder`, what the app uses),
- the student through `model2vec.StaticModel.encode(use_multiprocessing=False)` (the baseline),
plus each model's load time, size on disk and the process's peak memory, and one search (encode +
exact top-10, `core.search.top_k`) over `--search-size` passages with the student. Prints tables and
ratios; writes bench/results/speed.json (or --out). Figures that need parts not built yet are null,
with the reason under "not_measured".
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import resource
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("student", type=Path)
    parser.add_argument("--teacher", default=None)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--passages", type=int, default=2000)
    parser.add_argument("--teacher-passages", type=int, default=200, help="the teacher is slow: fewer passages")
    parser.add_argument("--search-size", type=int, default=100_000)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "speed.json")
    args = parser.parse_args()

    import numpy as np
    import torch
    from model2vec import StaticModel
    from threadpoolctl import threadpool_limits

    from bench.quality import describe_machine
    from core.embedders import student_embedder
    from core.registry import folder_size
    from core.teacher import DEFAULT_TEACHER, load_teacher, resolve_teacher
    from core.timing import query_latencies_ms, throughput

    queries, passages, collection = corpus_texts(args.queries, args.passages, args.search_size)
    teacher_info = resolve_teacher(args.teacher or DEFAULT_TEACHER)
    loads = {}
    start = time.perf_counter()
    teacher = load_teacher(teacher_info, device="cpu")
    loads["teacher"] = time.perf_counter() - start
    start = time.perf_counter()
    baseline = StaticModel.from_pretrained(str(args.student))
    loads["student"] = time.perf_counter() - start
    encoders = {
        "teacher": lambda t: teacher.encode(list(t), normalize_embeddings=True, show_progress_bar=False),
        "student": student_embedder(args.student).encode,
        "model2vec": lambda t: baseline.encode(list(t), use_multiprocessing=False),
    }
    rows: dict = {}
    for threads in sorted({1, os.cpu_count() or 1}):
        torch.set_num_threads(threads)
        with threadpool_limits(threads):
            for name, encode in encoders.items():
                texts = passages[: args.teacher_passages] if name == "teacher" else passages
                latencies = query_latencies_ms(encode, queries[:100] if name == "teacher" else queries)
                rows[f"{name}@{threads}"] = {
                    "model": name, "threads": threads,
                    "short_per_s": round(throughput(encode, queries, min_seconds=0.5), 1),
                    "passages_per_s": round(throughput(encode, texts, min_seconds=0.5), 1),
                    "p50_ms": round(float(np.percentile(latencies, 50)), 3),
                    "p95_ms": round(float(np.percentile(latencies, 95)), 3),
                    "p99_ms": round(float(np.percentile(latencies, 99)), 3),
                }
                print(f"{name:10} {threads} thread(s): {rows[f'{name}@{threads}']}", flush=True)
    torch.set_num_threads(os.cpu_count() or 1)
    ours, theirs = encoders["student"](passages), np.asarray(encoders["model2vec"](passages), dtype=np.float32)
    theirs /= np.maximum(np.linalg.norm(theirs, axis=1, keepdims=True), 1e-12)
    search = search_latency(encoders["student"], queries, collection)
    allc = os.cpu_count() or 1
    ratio = lambda a, b, key: round(rows[f"{a}@{allc}"][key] / rows[f"{b}@{allc}"][key], 2)  # noqa: E731
    result = {
        "date": date.today().isoformat(), "machine": describe_machine("cpu"), "teacher": teacher_info.name,
        "student": str(args.student), "rows": rows,
        "load_seconds": {k: round(v, 3) for k, v in loads.items()},
        "size_mb": {"student": round(folder_size(args.student) / 2**20, 2),
                    "teacher": round(folder_size(Path(teacher_info.source)) / 2**20, 2)
                    if Path(teacher_info.source).is_dir() else None},
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "student_vs_teacher_short": ratio("student", "teacher", "short_per_s"),
        "student_vs_teacher_passages": ratio("student", "teacher", "passages_per_s"),
        "encode_vs_model2vec": ratio("student", "model2vec", "passages_per_s"),
        "max_abs_diff_vs_model2vec": float(np.abs(ours - theirs).max()),
        f"search_{len(collection) // 1000}k_p95_ms": search["p95_ms"], "search": search,
        "ann_1m_recall_at_10": None, "featurize_vs_bare_encode": None,
        "not_measured": {
            "ann_1m_recall_at_10": "no approximate index is built yet (issue 5)",
            "featurize_vs_bare_encode": "measured by bench/featurize_speed.py and bench/quality.py",
        },
        "command": "python bench/speed.py " + " ".join(sys.argv[1:]),
    }
    print_table(rows, result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


def corpus_texts(n_queries: int, n_passages: int, n_collection: int) -> tuple[list[str], list[str], list[str]]:
    """Short queries from the conversational domain (12 words), passages of 100+ words, and a search
    collection, all from the local corpus folder, seeded."""
    from core import settings
    from core.sources import iter_documents, load_catalogue

    catalogue = load_catalogue()
    if settings.local_corpus_dir() is None:
        raise SystemExit("the local corpus folder (../shared/data/corpus) is missing")
    by_domain = {d: [] for d in ("conversational", "web", "academic", "code", "domain-specific")}
    for domain, texts in by_domain.items():
        for spec in (catalogue.get(k) for k in catalogue.default_keys(domain)):
            texts.extend(itertools.islice(iter_documents(spec), 60_000))
    rng = random.Random(0)
    short = [" ".join(t.split()[:12]) for t in by_domain["conversational"] if len(t.split()) >= 4]
    pool = [t for texts in by_domain.values() for t in texts]
    long = [t for t in pool if len(t.split()) >= 100]
    rng.shuffle(short), rng.shuffle(long), rng.shuffle(pool)
    return short[:n_queries], long[:n_passages], pool[:n_collection]


def search_latency(encode, queries: list[str], collection: list[str], k: int = 10) -> dict:
    """One query = encode + exact top-k over the collection, as the Compare tab's search does it."""
    import numpy as np

    from core.search import top_k

    start = time.perf_counter()
    matrix = np.concatenate([encode(collection[i:i + 4096]) for i in range(0, len(collection), 4096)])
    build = time.perf_counter() - start
    for query in queries[:5]:
        top_k(encode([query])[0], matrix, k)
    times = []
    for query in queries[:200]:
        start = time.perf_counter()
        top_k(encode([query])[0], matrix, k)
        times.append((time.perf_counter() - start) * 1000)
    return {"collection": len(collection), "embed_seconds": round(build, 2),
            "p50_ms": round(float(np.percentile(times, 50)), 3), "p95_ms": round(float(np.percentile(times, 95)), 3)}


def print_table(rows: dict, result: dict) -> None:
    print(f"\n{'model':12}{'threads':>8}{'short/s':>12}{'passages/s':>12}{'p50 ms':>10}{'p95 ms':>10}{'p99 ms':>10}")
    for row in rows.values():
        print(f"{row['model']:12}{row['threads']:8d}{row['short_per_s']:12,.0f}{row['passages_per_s']:12,.0f}"
              f"{row['p50_ms']:10.3f}{row['p95_ms']:10.3f}{row['p99_ms']:10.3f}")
    for key in ("student_vs_teacher_short", "student_vs_teacher_passages", "encode_vs_model2vec",
                "max_abs_diff_vs_model2vec", "load_seconds", "size_mb", "peak_rss_mb", "search"):
        print(f"{key}: {result[key]}")


if __name__ == "__main__":
    main()
