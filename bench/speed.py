"""Teacher vs student speed, side by side, on the same texts and thread counts.

    .venv/bin/python bench/speed.py [STUDENT_FOLDER] [--queries 500] [--passages 2000] [--search-size 100000]

For 1 thread and all cores (torch, BLAS and the Rust tokenizer alike: `core.serving.timing.thread_limit`),
after a warm-up: throughput on short queries (conversational corpus texts, cut to 12 words) and on
passages (corpus texts of 100+ words) in batches of 64, single-query latency p50/p95/p99, for
- the teacher (`core.encoders.teacher.TeacherEncoder`: `SentenceTransformer.encode`, normalised),
- the student through Distillery's encoder (`core.encoders.student.StudentEncoder`, what the app uses),
- the student through `model2vec.StaticModel.encode(use_multiprocessing=False)` (the baseline),
measured by `core.serving.timing.race` (the Compare tab's code). Then Distillery's encoder against
model2vec as its users call it (`versus_model2vec`): `StaticModel.encode` with its defaults
(multiprocessing on above 10,000 texts) and with `use_multiprocessing=False`, on 20,000 short queries
and 20,000 full-length corpus texts in one call each, on one core and on all of them (the process
pinned to the cores, so every library's threads share them), best of `--rounds` alternated runs;
then one text per call, p50/p95, on short and full-length texts; and the largest difference between
the vectors. Then `core.methods.featurize` against the teacher's bare `encode` on the same corpus
texts; one search (encode + exact top-10) over `--search-size` passages; each model's load time,
size on disk and the peak memory; the 1M-passage index figures of `core.serving.index`'s
configuration from bench/results/ann.json (bench/ann.py). Prints tables and ratios; writes
bench/results/speed.json (or --out) and the raw latencies beside it (speed_latencies.json, for
bench/speed_chart.py). `--encoder-only` runs the comparison with model2vec alone (and writes only
with --out).
"""

from __future__ import annotations

import argparse
import contextlib
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
    parser.add_argument("--bulk-texts", type=int, default=20_000, help="texts per call against model2vec")
    parser.add_argument("--rounds", type=int, default=5, help="alternated runs against model2vec (best kept)")
    parser.add_argument("--encoder-only", action="store_true", help="only the comparison with model2vec")
    parser.add_argument("--out", type=Path, default=None, help="default: bench/results/speed.json")
    args = parser.parse_args()

    import numpy as np
    from model2vec import StaticModel

    from core.encoders.student import StudentEncoder
    from core.encoders.teacher import DEFAULT_TEACHER, TeacherEncoder, resolve_teacher
    from core.encoders.threads import all_cores
    from core.files import folder_bytes, write_text
    from core.serving.timing import Contender, race

    many_queries, passages, collection = corpus_texts(max(args.queries, args.bulk_texts), args.passages,
                                                      max(args.search_size, args.bulk_texts))
    queries = many_queries[: args.queries]
    teacher_info = resolve_teacher(args.teacher or DEFAULT_TEACHER)
    args.student = args.student or default_student(teacher_info)
    if args.encoder_only:
        versus = versus_model2vec(args.student, many_queries[: args.bulk_texts], collection[: args.bulk_texts],
                                  args.rounds)
        if args.out is not None:
            write_results(args.out, {"student": str(args.student), **versus})
        return
    args.out = args.out or RESULTS / "speed.json"
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
    versus = versus_model2vec(args.student, many_queries[: args.bulk_texts], collection[: args.bulk_texts],
                              args.rounds)
    result = {
        "teacher": teacher_info.name, "student": str(args.student), "rows": rows,
        "load_seconds": {k: round(v, 3) for k, v in loads.items()},
        "size_mb": {"student": round(folder_bytes(args.student) / 2**20, 2),
                    "teacher": round(folder_bytes(Path(teacher_info.source)) / 2**20, 2) if Path(teacher_info.source).is_dir() else None},
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "student_vs_teacher_short": ratio("student", "teacher", "short_per_s"),
        "student_vs_teacher_passages": ratio("student", "teacher", "passages_per_s"),
        **versus, "max_abs_diff_vs_model2vec": max(max_diff, versus["max_abs_diff_vs_model2vec"]),
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


def versus_model2vec(folder: Path, short: list[str], full: list[str], rounds: int) -> dict:
    """Distillery's encoder (`StaticEncoder`, what `StudentEncoder` wraps) against `StaticModel.encode`
    as its users call it: with its defaults (above 10,000 texts: a joblib thread per core, the
    tokenizer's own parallelism off) and with `use_multiprocessing=False`, each given all the texts
    in one call, on one core and on all of them. Distillery's encoder runs as the studio and the
    service run it (TOKENIZERS_PARALLELISM=false: `core.encoders.threads.serving_process_threads`)
    and, as a plain script would, with the variable unset. Then one text per call (the service's and
    the search box's way), alternating the two per text."""
    import numpy as np
    from model2vec import StaticModel

    from core.encoders.student import StaticEncoder
    from core.encoders.threads import all_cores

    model = StaticModel.from_pretrained(str(folder))
    ours = StaticEncoder(StaticModel.from_pretrained(str(folder)))  # its own copy: nothing shared with the baseline
    contenders = {  # name: (TOKENIZERS_PARALLELISM during the call, encode)
        "distillery": ("false", ours.encode),
        "distillery_env_unset": (None, ours.encode),
        "model2vec_default": (None, model.encode),  # it turns the variable off itself, and leaves it off
        "model2vec_single_process": (None, lambda texts: model.encode(texts, use_multiprocessing=False)),
    }
    expected = model.encode(full, use_multiprocessing=False)
    max_diff = float(np.abs(ours.encode(full).astype(np.float32) - expected.astype(np.float32)).max())
    bulk, single = {}, {}
    for cores in sorted({1, all_cores()}):
        with on_cores(cores):
            for kind, texts in (("short", short), ("full", full)):
                rates = best_rates(contenders, texts, rounds)
                row = {f"{name}_per_s": round(rate, 1) for name, rate in rates.items()}
                for name in ("distillery", "distillery_env_unset"):
                    prefix = "" if name == "distillery" else "env_unset_"
                    row[f"{prefix}vs_default"] = round(rates[name] / rates["model2vec_default"], 2)
                    row[f"{prefix}vs_single_process"] = round(rates[name] / rates["model2vec_single_process"], 2)
                bulk[f"{kind}@{cores}"] = row
                print(f"{len(texts):,} {kind} texts on {cores} core(s): {row}", flush=True)
            for kind, texts in (("short", short[:1000]), ("full", full[:1000])):
                times = alternated_latencies_ms({"distillery": ours.encode, "model2vec": contenders["model2vec_single_process"][1]},
                                                texts)
                row = {f"{name}_{q}_us": round(float(np.percentile(t, p)) * 1000, 1)
                       for name, t in times.items() for q, p in (("p50", 50), ("p95", 95))}
                row["p50_ratio"] = round(row["model2vec_p50_us"] / row["distillery_p50_us"], 2)
                row["p95_ratio"] = round(row["model2vec_p95_us"] / row["distillery_p95_us"], 2)
                single[f"{kind}@{cores}"] = row
                print(f"one {kind} text per call on {cores} core(s): {row}", flush=True)
    allc = all_cores()
    return {
        "encode_vs_model2vec_default": bulk[f"full@{allc}"]["vs_default"],
        "encode_vs_model2vec_single_process": bulk[f"full@{allc}"]["vs_single_process"],
        "single_text_p50_vs_model2vec": min(single[f"short@{allc}"]["p50_ratio"], single[f"full@{allc}"]["p50_ratio"]),
        "versus_model2vec": {"texts": {"short": len(short), "full": len(full),
                                       "full_words_p50": int(np.median([len(t.split()) for t in full]))},
                             "rounds": rounds, "bulk": bulk, "single_text": single},
        "max_abs_diff_vs_model2vec": max_diff,
    }


@contextlib.contextmanager
def on_cores(cores: int):
    """The process pinned to `cores` of its CPUs and every thread pool limited to them, so that a
    library sizing its pool from the machine (joblib's n_jobs=-1) gets those cores. Every thread
    already running is pinned too (Linux pins one thread per call, and threads inherit their
    creator's CPUs): the Rust tokenizer's pool, started earlier, would otherwise keep every core."""
    from core.encoders.threads import thread_limit

    before = os.sched_getaffinity(0)
    pin_threads(sorted(before)[:cores])
    try:
        with thread_limit(cores):
            yield
    finally:
        pin_threads(before)


def pin_threads(cpus) -> None:
    for tid in os.listdir("/proc/self/task"):
        with contextlib.suppress(ProcessLookupError):  # a thread that ended meanwhile
            os.sched_setaffinity(int(tid), cpus)


def best_rates(contenders: dict, texts: list[str], rounds: int) -> dict[str, float]:
    """Texts per second, each contender (`name: (TOKENIZERS_PARALLELISM, encode)`) given all `texts`
    in one call, the best of `rounds` runs taken in turn (a warm-up first), so a busy moment of the
    machine costs every contender alike."""
    from core.encoders.threads import tokenizer_parallelism

    for env, encode in contenders.values():
        with tokenizer_parallelism(env):
            encode(texts[:2000])
    best = dict.fromkeys(contenders, float("inf"))
    for _ in range(rounds):
        for name, (env, encode) in contenders.items():
            with tokenizer_parallelism(env):
                start = time.perf_counter()
                encode(texts)
                best[name] = min(best[name], time.perf_counter() - start)
    return {name: len(texts) / seconds for name, seconds in best.items()}


def alternated_latencies_ms(contenders: dict, texts: list[str], repeats: int = 3) -> dict[str, list[float]]:
    """One text per call, the contenders in turn on each text, `repeats` passes."""
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for encode in contenders.values():
        for text in texts[:20]:
            encode([text])
    for _ in range(repeats):
        for text in texts:
            for name, encode in contenders.items():
                start = time.perf_counter()
                encode([text])
                times[name].append((time.perf_counter() - start) * 1000)
    return times


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
    for key in ("student_vs_teacher_short", "student_vs_teacher_passages", "encode_vs_model2vec_default",
                "encode_vs_model2vec_single_process", "single_text_p50_vs_model2vec", "featurize_vs_bare_encode", "ann_1m_recall_at_10",
                "max_abs_diff_vs_model2vec", "load_seconds", "size_mb", "peak_rss_mb", "search"):
        print(f"{key}: {result[key]}")


if __name__ == "__main__":
    main()
