"""Approximate nearest-neighbour libraries against exact search, on the student's vectors, at 1M passages.

    .venv/bin/python bench/ann.py [STUDENT_FOLDER] [--size 1000000] [--queries 1000] [--work-dir DIR]
        [--candidates faiss-hnsw32,...] [--out bench/results/ann.json]

The collection: every real text of the local corpus (../shared/data/corpus, all domains, through
`core.corpus.sources` and the catalogue, as bench/speed.py reads it; exact duplicates dropped), and, to reach
`--size`, composite passages that each join two distinct random real texts (seeded). Queries: short
conversational corpus texts cut to 12 words (as bench/speed.py makes them); the texts they come from are
held out of the collection (neither real rows nor parts of composites).

The collection is embedded with the student (`core.encoders.student.StudentEncoder`, what the app uses,
through `core.serving.collection.embed_collection`) and cached as .npy in --work-dir (keyed by the
student's weights and the collection's texts), so reruns skip it. Ground
truth: exact top-10 by matrix product, in chunks. Each candidate index is built once (all cores) and
searched with a grid of query-time parameters on the same build; for every row: build seconds, size on
disk (MB), recall@10 against exact, and single-query latency p50/p95/p99 (one query per call, after a
warm-up) for the search alone and for encode + search. Exact search (`core.serving.index.VectorIndex`,
exact) is timed the same way for comparison. The winner, by rule: among rows with recall@10 >= 0.95, the lowest encode+search
p95 (ties: build time); "winner_with_wheels": the same rule over the libraries that install from a wheel
(hnswlib 0.8.0 is an sdist that needs a compiler, which the Dockerfile's image lacks); "product": the row
of core/serving/index.py's configuration, whose figures become ann_1m_recall_at_10 and ann_1m_p95_ms.
Prints a table; writes bench/results/ann.json (or --out), rewritten after every candidate so an
interrupted run keeps what it measured ("partial": true).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

from bench._common import RESULTS, peak_rss_mb, write_results  # noqa: E402

K = 10
TARGET_RECALL = 0.95
DOMAINS = ("conversational", "web", "academic", "code", "domain-specific")

HNSW_EF = (32, 64, 96, 128, 160, 192, 256)
# name -> (library, index kind, build parameters, name of the query-time parameter, its grid)
CANDIDATES: dict[str, tuple[str, str, dict, str, tuple[int, ...]]] = {
    "faiss-hnsw16": ("faiss", "IndexHNSWFlat (IP)", {"M": 16, "ef_construction": 100}, "ef_search", HNSW_EF),
    "faiss-hnsw32": ("faiss", "IndexHNSWFlat (IP)", {"M": 32, "ef_construction": 100}, "ef_search", HNSW_EF),
    "faiss-ivf1024": ("faiss", "IndexIVFFlat (IP)", {"nlist": 1024}, "nprobe", (16, 32, 64, 96, 128)),
    "faiss-ivf4096": ("faiss", "IndexIVFFlat (IP)", {"nlist": 4096}, "nprobe", (32, 64, 128, 192, 256)),
    "hnswlib-hnsw16": ("hnswlib", "HNSW (ip)", {"M": 16, "ef_construction": 100}, "ef_search", HNSW_EF),
    "hnswlib-hnsw32": ("hnswlib", "HNSW (ip)", {"M": 32, "ef_construction": 100}, "ef_search", HNSW_EF),
    "usearch-f32": ("usearch", "HNSW (ip, f32)", {"connectivity": 16, "expansion_add": 100, "dtype": "f32"},
                    "expansion_search", HNSW_EF),
    "usearch-f16": ("usearch", "HNSW (ip, f16)", {"connectivity": 16, "expansion_add": 100, "dtype": "f16"},
                    "expansion_search", HNSW_EF),
    "usearch-i8": ("usearch", "HNSW (ip, i8)", {"connectivity": 16, "expansion_add": 100, "dtype": "i8"},
                   "expansion_search", (64, 128, 256)),
}

# How each library installs (checked 2026-11 with `pip download <pin> --no-deps --only-binary :all:`).
# The product's Dockerfile runs `pip install -r requirements.txt` on python:3.11-slim, which has no
# C++ compiler, so a library without wheels cannot be the product's index.
INSTALL = {
    "faiss": {"pin": "faiss-cpu==1.15.1", "wheels": True,
              "note": "abi3 wheels (x86_64, aarch64); needs numpy and packaging"},
    "usearch": {"pin": "usearch==2.26.6", "wheels": True, "note": "cp311 wheels; needs numpy, tqdm and numkong"},
    "hnswlib": {"pin": "hnswlib==0.8.0", "wheels": False,
                "note": "sdist only on PyPI (last release 2023-12): installing needs a C++ compiler and "
                        "pybind11, and its setup.py compiles with -march=native unless HNSWLIB_NO_NATIVE is set"},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("student", type=Path, nargs="?", default=None,
                        help="a student folder; default: bench/speed.py's vocabulary-only student, built once")
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--exact-queries", type=int, default=200, help="queries for exact search's latency")
    parser.add_argument("--candidates", default=",".join(CANDIDATES), help="comma-separated, from: " + ", ".join(CANDIDATES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work-dir", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "distillery-ann")
    parser.add_argument("--out", type=Path, default=RESULTS / "ann.json")
    args = parser.parse_args()
    wanted = [c for c in args.candidates.split(",") if c]
    unknown = [c for c in wanted if c not in CANDIDATES]
    if unknown:
        raise SystemExit(f"unknown candidates {unknown}; choose from {list(CANDIDATES)}")
    args.work_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    from core.encoders.student import StudentEncoder
    from core.serving import index as product
    from core.serving.collection import embed_collection
    from core.serving.index import VectorIndex

    queries, collection, description = build_collection(args.size, args.queries, args.seed)
    print(f"collection: {description}", flush=True)
    if args.student is None:
        from bench.speed import default_student
        from core.encoders.teacher import DEFAULT_TEACHER, resolve_teacher

        args.student = default_student(resolve_teacher(DEFAULT_TEACHER))
    student = StudentEncoder.open(args.student)
    cached_before = set(args.work_dir.glob("*.npy"))
    start = time.perf_counter()
    matrix = embed_collection(student, collection, cache_dir=args.work_dir, batch=8192, progress=_printer())
    embed_seconds = time.perf_counter() - start
    print(f"collection matrix {matrix.shape} {matrix.dtype} in {embed_seconds:.1f} s "
          f"(from the cache in {args.work_dir} if fast)", flush=True)
    del collection
    gc.collect()
    query_vectors = student.encode_queries(queries)

    start = time.perf_counter()
    truth, truth_scores = exact_top_k(query_vectors, matrix, K)
    truth_seconds = time.perf_counter() - start
    print(f"exact ground truth for {len(queries)} queries in {truth_seconds:.1f} s", flush=True)

    exact = {"method": "core.serving.index.VectorIndex, exact (numpy matrix product + argpartition)",
             "threads": _blas_threads()}
    few = list(range(min(args.exact_queries, len(queries))))
    exact_index = VectorIndex.build(matrix, approximate=False)  # float32 unit rows already: shares `matrix`
    exact.update(latencies(lambda v: [i for i, _ in exact_index.search(v, K)], student.encode_queries,
                           [queries[i] for i in few], query_vectors[few]))
    exact.pop("found")
    exact["queries"] = len(few)
    print(f"exact: {exact}", flush=True)

    result = {
        "student": str(args.student), "size": len(matrix), "dim": int(matrix.shape[1]), "k": K, "queries": len(queries),
        "collection": description, "embed_seconds": round(embed_seconds, 1),
        "embed_from_cache": not (set(args.work_dir.glob("*.npy")) - cached_before),
        "ground_truth": f"exact top-{K} by float32 matrix product over the whole collection, in chunks",
        "recall_definition": f"|approximate top-{K} ∩ exact top-{K}| / {K} by row id, mean over the queries",
        "latency_definition": "one query per call after 20 warm-up calls; 'search' = the index's search on an "
                              "already encoded query; 'encode+search' = student encode of the query text + search",
        "threads": {"build": os.cpu_count(), "search": "one query per call, on one thread: faiss parallelises "
                    "over queries only, hnswlib and usearch are passed num_threads=1 / threads=1; search_cpu_ratio "
                    "(CPU seconds / wall seconds of the search loop) shows it"},
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "exact": exact, "rows": [], "winner": None, "partial": True,
    }
    versions = library_versions()
    result["versions"] = versions
    for name in wanted:
        library, kind, build_params, knob, grid = CANDIDATES[name]
        if versions.get(library) is None:
            result.setdefault("not_measured", {})[name] = f"{library} is not installed"
            print(f"{name}: skipped, {library} is not installed", flush=True)
            continue
        print(f"\n{name}: building {kind} {build_params} on {len(matrix):,} rows ...", flush=True)
        adapter = ADAPTERS[library](matrix.shape[1], build_params)
        start = time.perf_counter()
        adapter.build(matrix)
        build_seconds = time.perf_counter() - start
        size_mb = adapter.size_on_disk(args.work_dir / f"index-{name}.bin") / 2**20
        print(f"{name}: built in {build_seconds:.1f} s, {size_mb:.0f} MB on disk", flush=True)
        for value in grid:
            adapter.set_search(value)
            row = {"candidate": name, "library": library, "version": versions[library], "index": kind,
                   "params": {**build_params, knob: value}, "build_s": round(build_seconds, 1),
                   "size_mb": round(size_mb, 1), "build_threads": os.cpu_count(), "search_threads": 1}
            timing = latencies(adapter.search, student.encode_queries, queries, query_vectors)
            found = timing.pop("found")
            row["recall_at_10"] = round(recall(found, truth), 4)
            row["recall_at_10_ties"] = round(tie_recall(found, truth_scores, query_vectors, matrix), 4)
            row.update(timing)
            result["rows"].append(row)
            print(f"  {knob}={value}: recall@10 {row['recall_at_10']:.4f}  search p50/p95 "
                  f"{row['search_p50_ms']:.3f}/{row['search_p95_ms']:.3f} ms  encode+search p50/p95 "
                  f"{row['p50_ms']:.3f}/{row['p95_ms']:.3f} ms", flush=True)
        del adapter
        gc.collect()
        write_results(args.out, result)

    winner = pick_winner(result["rows"])
    chosen = next((r for r in result["rows"] if r["library"] == "faiss" and r["params"].get("M") == product.HNSW_M
                   and r["params"].get("ef_construction") == product.EF_CONSTRUCTION
                   and r["params"].get("ef_search") == product.EF_SEARCH), None)
    label = _size_label(len(matrix))
    result.update({
        "partial": False, "winner": winner,
        "winner_rule": f"among rows with recall@10 >= {TARGET_RECALL}, the lowest encode+search p95 "
                       "(ties: build time)",
        "winner_with_wheels": pick_winner([r for r in result["rows"] if INSTALL[r["library"]]["wheels"]]),
        "winner_with_wheels_rule": "the same rule over the libraries that install from a wheel (see install)",
        "product": chosen,
        "product_rule": f"core/serving/index.py's configuration (faiss IndexHNSWFlat M={product.HNSW_M}, "
                        f"ef_construction={product.EF_CONSTRUCTION}, ef_search={product.EF_SEARCH}); the ann_* "
                        "figures are this row's",
        "install": INSTALL,
        f"ann_{label}_recall_at_10": chosen["recall_at_10"] if chosen else None,
        f"ann_{label}_p95_ms": chosen["p95_ms"] if chosen else None,
        f"exact_{label}_p95_ms": exact["p95_ms"],
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "total_seconds": round(time.perf_counter() - started, 1),
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
    })
    print_table(result)
    write_results(args.out, result)


def build_collection(size: int, n_queries: int, seed: int) -> tuple[list[str], list[str], dict]:
    """Queries (conversational texts cut to 12 words, their sources held out) and a seeded collection of
    `size` passages: every other real text, then composites of two distinct real texts."""
    from core import settings
    from core.corpus.sources import iter_documents, load_catalogue

    if settings.local_corpus_dir() is None:
        raise SystemExit("the local corpus folder (../shared/data/corpus) is missing")
    catalogue = load_catalogue()
    by_domain: dict[str, list[str]] = {}
    for domain in DOMAINS:
        texts: list[str] = []
        for spec in (catalogue.get(k) for k in catalogue.default_keys(domain)):
            texts.extend(iter_documents(spec))
        by_domain[domain] = texts
    read = sum(len(t) for t in by_domain.values())
    rng = random.Random(seed)
    conversational = list(dict.fromkeys(t for t in by_domain["conversational"] if len(t.split()) >= 4))
    rng.shuffle(conversational)
    held_out = set(conversational[:n_queries])
    queries = [" ".join(t.split()[:12]) for t in conversational[:n_queries]]
    real = [t for t in dict.fromkeys(t for d in DOMAINS for t in by_domain[d]) if t not in held_out]
    if size <= len(real):
        collection = rng.sample(real, size)
        composites = 0
    else:
        composites = size - len(real)
        pairs: set[tuple[int, int]] = set()
        while len(pairs) < composites:  # unordered pairs: mean pooling makes "a b" and "b a" the same vector
            a, b = rng.randrange(len(real)), rng.randrange(len(real))
            if a != b:
                pairs.add((min(a, b), max(a, b)))
        ordered = sorted(pairs)
        rng.shuffle(ordered)
        collection = real + [f"{real[a]} {real[b]}" for a, b in ordered]
    description = {
        "passages": len(collection), "real": len(collection) - composites, "composite": composites,
        "real_texts_available": len(real), "texts_read": read,
        "per_domain_read": {d: len(t) for d, t in by_domain.items()},
        "composite_rule": "two distinct random real texts joined with a space (seeded, no pair twice)",
        "real_rule": "every real corpus text of the catalogue's local sources, exact duplicates dropped"
                     + ("" if composites else f", a seeded sample of {size:,}"),
        "queries": f"{len(queries)} conversational corpus texts (>= 4 words) cut to 12 words; the texts "
                   "they come from are held out of the collection",
        "seed": seed,
    }
    return queries, collection, description


def exact_top_k(queries: np.ndarray, matrix: np.ndarray, k: int, chunk: int = 131_072) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k row ids and scores for every query, best first, scanning the matrix in chunks."""
    best_ids = np.zeros((len(queries), 0), dtype=np.int64)
    best_scores = np.zeros((len(queries), 0), dtype=np.float32)
    for start in range(0, len(matrix), chunk):
        scores = queries @ matrix[start:start + chunk].T
        part = np.argpartition(-scores, min(k, scores.shape[1]) - 1, axis=1)[:, :k]
        best_ids = np.concatenate([best_ids, part + start], axis=1)
        best_scores = np.concatenate([best_scores, np.take_along_axis(scores, part, axis=1)], axis=1)
        keep = np.argsort(-best_scores, axis=1, kind="stable")[:, :k]
        best_ids = np.take_along_axis(best_ids, keep, axis=1)
        best_scores = np.take_along_axis(best_scores, keep, axis=1)
    return best_ids, best_scores


def recall(found: Sequence[Sequence[int]], truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t.tolist())) / truth.shape[1] for f, t in zip(found, truth)]))


def tie_recall(found: Sequence[Sequence[int]], truth_scores: np.ndarray, queries: np.ndarray, matrix: np.ndarray) -> float:
    """Like recall, but a returned row whose exact score ties the k-th best (within 1e-6) also counts:
    rows with the same vector (same tokens) are interchangeable."""
    hits = []
    for ids, kth, query in zip(found, truth_scores[:, -1], queries):
        ids = [i for i in ids if i >= 0]
        scores = matrix[ids] @ query if ids else np.zeros(0)
        hits.append(min(int(np.sum(scores >= kth - 1e-6)), truth_scores.shape[1]) / truth_scores.shape[1])
    return float(np.mean(hits))


def latencies(search: Callable[[np.ndarray], list[int]], encode: Callable[[Sequence[str]], np.ndarray],
              texts: Sequence[str], vectors: np.ndarray, warmup: int = 20) -> dict:
    """Single-query latency of `search` alone (on encoded queries) and of encode + search (on texts)."""
    from core.serving.timing import query_latencies_ms

    for vector in vectors[:warmup]:
        search(vector)
    found, times = [], []
    cpu = time.process_time()
    wall = time.perf_counter()
    for vector in vectors:
        start = time.perf_counter()
        found.append(search(vector))
        times.append((time.perf_counter() - start) * 1000)
    cpu_ratio = (time.process_time() - cpu) / max(time.perf_counter() - wall, 1e-9)
    both = query_latencies_ms(lambda batch: search(encode(batch)[0]), texts, warmup)
    pct = lambda values, q: round(float(np.percentile(values, q)), 3)  # noqa: E731
    return {"search_p50_ms": pct(times, 50), "search_p95_ms": pct(times, 95), "search_p99_ms": pct(times, 99),
            "p50_ms": pct(both, 50), "p95_ms": pct(both, 95), "p99_ms": pct(both, 99),
            "search_cpu_ratio": round(cpu_ratio, 2), "found": found}


class FaissHNSW:
    def __init__(self, dim: int, params: dict) -> None:
        import faiss

        self.index = faiss.IndexHNSWFlat(dim, params["M"], faiss.METRIC_INNER_PRODUCT)
        self.index.hnsw.efConstruction = params["ef_construction"]

    def build(self, matrix: np.ndarray) -> None:
        self.index.add(matrix)

    def set_search(self, value: int) -> None:
        self.index.hnsw.efSearch = value

    def search(self, vector: np.ndarray) -> list[int]:
        return self.index.search(vector.reshape(1, -1), K)[1][0].tolist()

    def size_on_disk(self, path: Path) -> int:
        import faiss

        faiss.write_index(self.index, str(path))
        return _size_and_remove(path)


class FaissIVF(FaissHNSW):
    def __init__(self, dim: int, params: dict) -> None:
        import faiss

        self.quantizer = faiss.IndexFlatIP(dim)
        self.index = faiss.IndexIVFFlat(self.quantizer, dim, params["nlist"], faiss.METRIC_INNER_PRODUCT)
        self.index.cp.seed = 0

    def build(self, matrix: np.ndarray) -> None:
        # 40 points per centroid is what faiss asks for; more only slows k-means down.
        sample = np.random.default_rng(0).choice(len(matrix), min(len(matrix), 40 * self.index.nlist), replace=False)
        self.index.train(matrix[np.sort(sample)])
        self.index.add(matrix)

    def set_search(self, value: int) -> None:
        self.index.nprobe = value


class Hnswlib:
    def __init__(self, dim: int, params: dict) -> None:
        import hnswlib

        self.params = params
        self.index = hnswlib.Index(space="ip", dim=dim)

    def build(self, matrix: np.ndarray) -> None:
        self.index.init_index(max_elements=len(matrix), ef_construction=self.params["ef_construction"],
                              M=self.params["M"], random_seed=0)
        self.index.add_items(matrix, np.arange(len(matrix)), num_threads=os.cpu_count() or 1)

    def set_search(self, value: int) -> None:
        self.index.set_ef(max(value, K))

    def search(self, vector: np.ndarray) -> list[int]:
        return self.index.knn_query(vector.reshape(1, -1), k=K, num_threads=1)[0][0].astype(np.int64).tolist()

    def size_on_disk(self, path: Path) -> int:
        self.index.save_index(str(path))
        return _size_and_remove(path)


class Usearch:
    def __init__(self, dim: int, params: dict) -> None:
        from usearch.index import Index

        self.index = Index(ndim=dim, metric="ip", dtype=params["dtype"], connectivity=params["connectivity"],
                           expansion_add=params["expansion_add"])

    def build(self, matrix: np.ndarray) -> None:
        self.index.add(np.arange(len(matrix), dtype=np.uint64), matrix, threads=os.cpu_count() or 1)

    def set_search(self, value: int) -> None:
        self.index.expansion_search = value

    def search(self, vector: np.ndarray) -> list[int]:
        return self.index.search(vector, K, threads=1).keys.astype(np.int64).tolist()

    def size_on_disk(self, path: Path) -> int:
        self.index.save(str(path))
        return _size_and_remove(path)


def _faiss_adapter(dim: int, params: dict) -> FaissHNSW:
    return FaissIVF(dim, params) if "nlist" in params else FaissHNSW(dim, params)


ADAPTERS = {"faiss": _faiss_adapter, "hnswlib": Hnswlib, "usearch": Usearch}


def pick_winner(rows: list[dict]) -> dict | None:
    eligible = [r for r in rows if r["recall_at_10"] >= TARGET_RECALL]
    return min(eligible, key=lambda r: (r["p95_ms"], r["build_s"])) if eligible else None


def library_versions() -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    found: dict[str, str | None] = {}
    for library, distribution in (("faiss", "faiss-cpu"), ("hnswlib", "hnswlib"), ("usearch", "usearch")):
        try:
            __import__(library)
            found[library] = version(distribution)
        except (ImportError, PackageNotFoundError):
            found[library] = None
    return found


def print_table(result: dict) -> None:
    print(f"\n{'candidate':16}{'params':64}{'build s':>9}{'MB':>8}{'recall':>8}{'srch p50':>10}{'srch p95':>10}"
          f"{'e+s p50':>9}{'e+s p95':>9}")
    for row in result["rows"]:
        params = " ".join(f"{k}={v}" for k, v in row["params"].items())
        mark = "".join(f" {m}" for key, m in (("winner", "*"), ("winner_with_wheels", "W"), ("product", "P"))
                       if row == result[key])
        print(f"{row['candidate']:16}{params:64}{row['build_s']:9.1f}{row['size_mb']:8.0f}{row['recall_at_10']:8.4f}"
              f"{row['search_p50_ms']:10.3f}{row['search_p95_ms']:10.3f}{row['p50_ms']:9.3f}{row['p95_ms']:9.3f}{mark}")
    exact = result["exact"]
    print(f"{'exact top_k':16}{'':64}{'':>9}{'':>8}{1:8.4f}{exact['search_p50_ms']:10.3f}{exact['search_p95_ms']:10.3f}"
          f"{exact['p50_ms']:9.3f}{exact['p95_ms']:9.3f}")
    for key, mark in (("winner", "*"), ("winner_with_wheels", "W"), ("product", "P")):
        row = result[key]
        print(f"{key} ({mark}): {row['candidate'] + ' ' + json.dumps(row['params']) if row else 'none reaches the target'}")
    print(f"collection: {result['collection']['real']:,} real + {result['collection']['composite']:,} composite; "
          f"total {result['total_seconds']:.0f} s; peak RSS {result['peak_rss_mb']:.0f} MB; load average "
          f"{result['load_average_at_start']} at start, {result['load_average_at_end']} at end")


def _printer() -> Callable[[str, float, str], None]:
    last = [-1.0]

    def progress(stage: str, fraction: float, message: str = "") -> None:
        if fraction - last[0] >= 0.1 or fraction >= 1.0:
            last[0] = fraction
            print(f"  embedding {fraction:4.0%} {message}", flush=True)

    return progress


def _blas_threads() -> int | None:
    from threadpoolctl import threadpool_info

    counts = [i["num_threads"] for i in threadpool_info() if i.get("user_api") == "blas"]
    return max(counts) if counts else None


def _size_and_remove(path: Path) -> int:
    size = path.stat().st_size
    path.unlink()
    return size


def _size_label(size: int) -> str:
    return f"{size // 1_000_000}m" if size % 1_000_000 == 0 else f"{size // 1000}k"



if __name__ == "__main__":
    main()
