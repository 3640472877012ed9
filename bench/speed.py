"""Teacher vs student speed, side by side, on the same texts and thread counts.

    .venv/bin/python bench/speed.py [STUDENT_FOLDER] [--queries 500] [--passages 2000] [--search-size 100000]

For 1 thread and all cores (torch, BLAS and the Rust tokenizer alike: `core.serving.timing.thread_limit`),
after a warm-up: throughput on short queries (conversational corpus texts, cut to 12 words) and on
passages (corpus texts of 100+ words) in batches of 64, single-query latency p50/p95/p99, for
- the teacher (`core.encoders.teacher.TeacherEncoder`: `SentenceTransformer.encode`, normalised),
- the student through Distillery's encoder (`core.encoders.student.StudentEncoder`, what the app uses),
- the student through `model2vec.StaticModel.encode(use_multiprocessing=False)` (the baseline),
measured by `core.serving.timing.race` (the Compare tab's code). Then: Distillery's encoder against
`StaticModel.encode` at batches of 64 and 1024 (model2vec's default) with the largest difference
between their vectors; `core.methods.featurize` against the teacher's bare `encode` on the same corpus
texts; one search (encode + exact top-10) over `--search-size` passages; each model's load time, size
on disk and the peak memory; the 1M-passage index figures of `core.serving.index`'s configuration from
bench/results/ann.json (bench/ann.py). Prints tables and ratios; writes bench/results/speed.json
(or --out) and the raw latencies beside it (speed_latencies.json, for bench/speed_chart.py).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench._common import RESULTS, ROOT, peak_rss_mb, write_results  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("student", type=Path, nargs="?", default=None,
                        help="a student folder; default: a vocabulary-only student of the teacher, built once")
    parser.add_argument("--teacher", default=None)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--passages", type=int, default=2000)
    parser.add_argument("--teacher-passages", type=int, default=200, help="the teacher is slow: fewer passages")
    parser.add_argument("--search-size", type=int, default=100_000)
    parser.add_argument("--featurize-texts", type=int, default=2000, help="corpus texts for featurize vs bare encode")
    parser.add_argument("--min-seconds", type=float, default=1.0, help="each throughput figure runs at least this long")
    parser.add_argument("--out", type=Path, default=RESULTS / "speed.json")
    args = parser.parse_args()

    import numpy as np
    from model2vec import StaticModel

    from core.encoders.student import StudentEncoder
    from core.encoders.teacher import DEFAULT_TEACHER, TeacherEncoder, resolve_teacher
    from core.files import folder_bytes, write_text
    from core.serving.timing import Contender, all_cores, race

    many_queries, passages, collection = corpus_texts(max(args.queries, 5000), args.passages, args.search_size)
    queries = many_queries[: args.queries]
    teacher_info = resolve_teacher(args.teacher or DEFAULT_TEACHER)
    args.student = args.student or default_student(teacher_info)
    loads = {}
    start = time.perf_counter()
    teacher = TeacherEncoder(teacher_info, device="cpu")
    loads["teacher"] = time.perf_counter() - start
    start = time.perf_counter()
    baseline = StaticModel.from_pretrained(str(args.student))
    loads["student"] = time.perf_counter() - start
    student = StudentEncoder.open(args.student)
    encoders = {
        "teacher": teacher.encode,
        "student": student.encode,
        "model2vec": lambda t: baseline.encode(list(t), use_multiprocessing=False),
    }
    contenders = [Contender("teacher", encoders["teacher"], queries[:100], passages[: args.teacher_passages]),
                  Contender("student", encoders["student"], queries, passages),
                  Contender("model2vec", encoders["model2vec"], queries, passages)]
    reports = race(contenders, sorted({1, all_cores()}), min_seconds=args.min_seconds, short_throughput=True,
                   on_report=lambda r: print(f"{r.label:10} {r.threads} thread(s): {r.short_per_s:,.0f} short/s, "
                                             f"{r.throughput_per_s:,.0f} passages/s, p50 {r.query_p50_ms:.3f} ms",
                                             flush=True))
    rows = {f"{r.label}@{r.threads}": {
        "model": r.label, "threads": r.threads, "short_per_s": round(r.short_per_s, 1),
        "passages_per_s": round(r.throughput_per_s, 1), "p50_ms": round(r.query_p50_ms, 3),
        "p95_ms": round(r.query_p95_ms, 3), "p99_ms": round(r.query_p99_ms, 3)} for r in reports}
    latencies = {f"{r.label}@{r.threads}": r.latencies_ms for r in reports}
    max_diff = max(float(np.abs(np.asarray(student.fast.encode(t), dtype=np.float32)
                                - np.asarray(encoders["model2vec"](t), dtype=np.float32)).max())
                   for t in (queries, passages))
    featurize = featurize_ratio(teacher.model,
                                random.Random(1).sample(collection, min(args.featurize_texts, len(collection))))
    search = search_latency(student, queries, collection)
    allc = all_cores()
    ratio = lambda a, b, key: round(rows[f"{a}@{allc}"][key] / rows[f"{b}@{allc}"][key], 2)  # noqa: E731
    by_batch = encode_by_batch(encoders["student"], encoders["model2vec"], many_queries, passages,
                               args.min_seconds)
    bulk = by_batch[str(BULK_BATCH)]
    result = {
        "teacher": teacher_info.name, "student": str(args.student), "rows": rows,
        "load_seconds": {k: round(v, 3) for k, v in loads.items()},
        "size_mb": {"student": round(folder_bytes(args.student) / 2**20, 2),
                    "teacher": round(folder_bytes(Path(teacher_info.source)) / 2**20, 2) if Path(teacher_info.source).is_dir() else None},
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "student_vs_teacher_short": ratio("student", "teacher", "short_per_s"),
        "student_vs_teacher_passages": ratio("student", "teacher", "passages_per_s"),
        "encode_vs_model2vec": min(bulk["short_ratio"], bulk["passages_ratio"]),
        "encode_vs_model2vec_batch": BULK_BATCH, "encode_vs_model2vec_by_batch": by_batch,
        "max_abs_diff_vs_model2vec": max_diff,
        f"search_{len(collection) // 1000}k_p95_ms": search["p95_ms"], "search": search,
        **ann_figures(args.out.with_name("ann.json")), "featurize_vs_bare_encode": featurize["ratio"],
        "featurize": featurize,
    }
    print_table(rows, result)
    write_results(args.out, result, "cpu")
    latency_file = args.out.with_name(args.out.stem + "_latencies.json")
    write_text(latency_file, json.dumps({"unit": "ms", "queries": len(queries), "rows": latencies}))
    print(f"wrote {latency_file}")


def corpus_texts(n_queries: int, n_passages: int, n_collection: int) -> tuple[list[str], list[str], list[str]]:
    """Short queries from the conversational domain (12 words), passages of 100+ words, and a search
    collection, all from the local corpus folder, seeded."""
    from core import settings
    from core.corpus.sources import iter_documents, load_catalogue

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


BULK_BATCH = 1024  # StaticModel.encode's own default batch size


def encode_by_batch(ours, theirs, queries: list[str], passages: list[str], min_seconds: float,
                    batches: tuple[int, ...] = (64, BULK_BATCH)) -> dict:
    """Distillery's student encoder against `StaticModel.encode`, texts per second at all cores, per
    batch size: 64 (the rows' protocol, shared with the teacher) and model2vec's default 1024. At 64
    the tokenizer's per-call cost dominates both; in bulk the pooling and the overlap show."""
    from core.serving.timing import throughput

    out = {}
    for batch in batches:
        row = {}
        for kind, texts in (("short", queries), ("passages", passages)):
            row[f"{kind}_per_s"] = {name: round(throughput(encode, texts, batch, min_seconds), 1)
                                    for name, encode in (("student", ours), ("model2vec", theirs))}
            row[f"{kind}_ratio"] = round(row[f"{kind}_per_s"]["student"] / row[f"{kind}_per_s"]["model2vec"], 2)
        out[str(batch)] = row
        print(f"student vs model2vec, batch {batch}: {row}", flush=True)
    return out


def ann_figures(path: Path) -> dict:
    """The 1M-passage figures of the product's index configuration (core.serving.index), from
    bench/ann.py's results: building several HNSW graphs over 1M vectors is a bench of its own."""
    from core.serving.index import EF_SEARCH, HNSW_M

    if not path.is_file():
        return {"ann_1m_recall_at_10": None, "not_measured": {"ann_1m_recall_at_10": f"{path} missing: make bench-ann"}}
    results = json.loads(path.read_text())
    row = next((r for r in results["rows"] if r["library"] == "faiss" and r["params"].get("M") == HNSW_M
                and r["params"].get("ef_search") == EF_SEARCH), None)
    if row is None:
        return {"ann_1m_recall_at_10": None, "not_measured": {"ann_1m_recall_at_10": f"no faiss HNSW M={HNSW_M} "
                                                                                     f"ef {EF_SEARCH} row in {path}"}}
    return {"ann_1m_recall_at_10": row["recall_at_10"],
            "ann": {"source": f"{path.name} of {results['date']} ({results['command']})", "size": results["size"],
                    "index": f"{row['index']} {row['params']}", "recall_at_10": row["recall_at_10"],
                    "encode_search_p95_ms": row["p95_ms"], "build_s": row["build_s"],
                    "exact_p95_ms": results["exact_1m_p95_ms"]}}


def default_student(teacher) -> Path:
    """A vocabulary-only student (pca_dims 256, float16: the product's defaults) under var/bench/, so
    the bench runs from a fresh clone; encode speed depends on the tokenizer and the table's shape,
    not on how the table was fitted."""
    from core.files import folder_atomically
    from core.methods.vocabulary import VocabularyParams, distill_vocabulary

    folder = ROOT / "var" / "bench" / f"speed-student-{teacher.fingerprint.split(':')[-1][:12]}"
    if not folder.is_dir():
        print(f"building a vocabulary-only student of {teacher.name} at {folder} ...", flush=True)
        model = distill_vocabulary(teacher, VocabularyParams(pca_dims=256), None)
        with folder_atomically(folder) as tmp:
            model.save_pretrained(str(tmp))
    return folder


def featurize_ratio(teacher, texts: list[str]) -> dict:
    """`core.methods.featurize` against the teacher's bare `encode` (`teacher`: the SentenceTransformer)
    on the same corpus texts and batch size (bench/featurize_speed.py's measurement: alternated runs
    after a warm-up, the best of two each)."""
    import tempfile

    from bench.featurize_speed import measure
    from core.methods.featurize import default_batch_size

    batch = default_batch_size(teacher.device)
    with tempfile.TemporaryDirectory(prefix="speed-featurize-") as folder:
        figures = measure(teacher, texts, batch, Path(folder))
    return {"texts": len(texts), "batch_size": batch, "device": str(teacher.device), **figures}


def search_latency(encoder, queries: list[str], collection: list[str], k: int = 10) -> dict:
    """One query = the student's encode + exact top-k over the collection (`VectorIndex` searched
    exactly, as `core.serving.index` serves up to EXACT_UP_TO rows), timed one query per call by
    `core.serving.timing.query_latencies_ms`."""
    import numpy as np

    from core.serving.collection import embed_collection
    from core.serving.index import VectorIndex
    from core.serving.timing import query_latencies_ms

    start = time.perf_counter()
    index = VectorIndex.build(embed_collection(encoder, collection, batch=4096), approximate=False)
    build = time.perf_counter() - start
    times = query_latencies_ms(lambda batch: index.search(encoder.encode_queries(batch)[0], k), queries[:200],
                               warmup=5)
    return {"collection": len(collection), "embed_seconds": round(build, 2),
            "p50_ms": round(float(np.percentile(times, 50)), 3), "p95_ms": round(float(np.percentile(times, 95)), 3)}


def print_table(rows: dict, result: dict) -> None:
    print(f"\n{'model':12}{'threads':>8}{'short/s':>12}{'passages/s':>12}{'p50 ms':>10}{'p95 ms':>10}{'p99 ms':>10}")
    for row in rows.values():
        print(f"{row['model']:12}{row['threads']:8d}{row['short_per_s']:12,.0f}{row['passages_per_s']:12,.0f}"
              f"{row['p50_ms']:10.3f}{row['p95_ms']:10.3f}{row['p99_ms']:10.3f}")
    for key in ("student_vs_teacher_short", "student_vs_teacher_passages", "encode_vs_model2vec",
                "encode_vs_model2vec_by_batch", "featurize_vs_bare_encode", "ann_1m_recall_at_10",
                "max_abs_diff_vs_model2vec", "load_seconds", "size_mb", "peak_rss_mb", "search"):
        print(f"{key}: {result[key]}")


if __name__ == "__main__":
    main()
