"""End-to-end figures of the studio: the default recipe at 20,000 texts, timed per stage, then
teacher vs student latency and throughput on the same texts and thread count.

    .venv/bin/python bench/studio.py [--corpus-size 20000] [--max-vocabulary 20000]

Prints a table and writes bench/results/studio.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus-size", type=int, default=20_000)
    parser.add_argument("--max-vocabulary", type=int, default=20_000)
    parser.add_argument("--texts", type=int, default=256, help="texts for the throughput measurement")
    args = parser.parse_args()
    os.environ["DISTILLERY_DATA_DIR"] = tempfile.mkdtemp(prefix="distillery-bench-")

    from core import settings
    from core.compare import compare_speed
    from core.distill import DistillParams
    from core.embedders import query_encoder, student_embedder
    from core.pipeline import run_recipe
    from core.progress import TqdmProgress
    from core.recipe import Recipe
    from core.teacher import resolve_teacher

    recipe = Recipe(name="bench", corpus_size=args.corpus_size,
                    distill=DistillParams(max_vocabulary_size=args.max_vocabulary))
    start = time.perf_counter()
    progress = TqdmProgress()
    record = run_recipe(recipe, settings.jobs_dir() / "bench", settings.models_dir() / "bench", progress)
    progress.close()
    total = time.perf_counter() - start

    corpus = [json.loads(line) for line in (settings.jobs_dir() / "bench/corpus/corpus.jsonl").open()]
    queries = [r["text"] for r in corpus if r["domain"] == "conversational"][:200]
    passages = sorted((r["text"] for r in corpus), key=lambda t: -len(t.split()))[: args.texts]
    teacher = query_encoder(resolve_teacher(recipe.teacher))
    student = student_embedder(settings.models_dir() / "bench").encode
    speed = {}
    for threads in sorted({1, os.cpu_count() or 1}):
        short_t, short_s = compare_speed(teacher, student, queries[:50], queries, threads)
        long_t, long_s = compare_speed(teacher, student, queries[:50], passages, threads)
        speed[threads] = {
            "query_p50_ms": {"teacher": short_t.query_p50_ms, "student": short_s.query_p50_ms},
            "query_p95_ms": {"teacher": short_t.query_p95_ms, "student": short_s.query_p95_ms},
            "short_per_s": {"teacher": short_t.throughput_per_s, "student": short_s.throughput_per_s},
            "passages_per_s": {"teacher": long_t.throughput_per_s, "student": long_s.throughput_per_s},
        }
    result = {
        "date": date.today().isoformat(), "machine": machine(),
        "corpus_size": record["corpus"]["size"], "vocabulary_added": record["vocabulary_added"],
        "stages": record["stages"], "total_seconds": round(total, 1), "peak_rss_mb": record["peak_rss_mb"],
        "mean_passage_words": sum(len(p.split()) for p in passages) / len(passages), "speed": speed,
    }
    out = ROOT / "bench/results/studio.json"
    out.write_text(json.dumps(result, indent=2))
    print(f"\n{'stage':<12}{'seconds':>10}{'peak RSS MB':>14}")
    for name, stage in record["stages"].items():
        print(f"{name:<12}{stage['seconds']:>10.1f}{stage['peak_rss_mb']:>14.0f}")
    print(f"{'total':<12}{total:>10.1f}{record['peak_rss_mb']:>14.0f}\n")
    print(f"{'threads':<8}{'metric':<18}{'teacher':>12}{'student':>12}{'ratio':>10}")
    for threads, figures in speed.items():
        for metric, pair in figures.items():
            lower_is_better = metric.endswith("_ms")
            ratio = pair["teacher"] / pair["student"] if lower_is_better else pair["student"] / pair["teacher"]
            print(f"{threads:<8}{metric:<18}{pair['teacher']:>12.2f}{pair['student']:>12.2f}{ratio:>9.0f}×")
    print(f"\nwritten: {out.relative_to(ROOT)}")


def machine() -> str:
    """CPU model and core count, e.g. "AMD EPYC, 2 cores, x86_64"."""
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{model}, {os.cpu_count()} cores, {platform.machine()}"


if __name__ == "__main__":
    main()
