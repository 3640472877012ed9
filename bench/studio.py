"""End-to-end figures of the studio: the default recipe at 20,000 texts, timed per stage, then
teacher vs student latency and throughput on the same texts and thread count.

    .venv/bin/python bench/studio.py [--corpus-size 20000] [--max-vocabulary 20000] [--texts 256]

The recipe runs through `core.pipeline.run_recipe` in a fresh data folder; the speed comparison is the
Compare tab's (`core.serving.timing.teacher_vs_student`, query side of both encoders). Prints a table and
writes bench/results/studio.json (or --out).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench._common import RESULTS, write_results  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus-size", type=int, default=20_000)
    parser.add_argument("--max-vocabulary", type=int, default=20_000)
    parser.add_argument("--texts", type=int, default=256, help="texts for the throughput measurement")
    parser.add_argument("--out", type=Path, default=RESULTS / "studio.json")
    args = parser.parse_args()
    os.environ["DISTILLERY_DATA_DIR"] = tempfile.mkdtemp(prefix="distillery-bench-")

    from core import settings
    from core.corpus.build import Corpus
    from core.encoders.student import StudentEncoder
    from core.encoders.teacher import TeacherEncoder, resolve_teacher
    from core.methods.vocabulary import VocabularyParams
    from core.pipeline import run_recipe
    from core.progress import TqdmProgress
    from core.recipe import Recipe
    from core.serving.timing import teacher_vs_student

    recipe = Recipe(name="bench", corpus_size=args.corpus_size,
                    distill=VocabularyParams(max_vocabulary_size=args.max_vocabulary))
    start = time.perf_counter()
    progress = TqdmProgress()
    record = run_recipe(recipe, settings.jobs_dir() / "bench", settings.models_dir() / "bench", progress)
    progress.close()
    total = time.perf_counter() - start

    corpus = list(Corpus.load(settings.jobs_dir() / "bench" / "corpus").rows())
    queries = [r["text"] for r in corpus if r["domain"] == "conversational"][:200]
    passages = sorted((r["text"] for r in corpus), key=lambda t: -len(t.split()))[: args.texts]
    teacher = TeacherEncoder(resolve_teacher(recipe.teacher)).encode_queries
    student = StudentEncoder.open(settings.models_dir() / "bench").encode_queries
    speed = {}
    for threads in sorted({1, os.cpu_count() or 1}):
        short_t, short_s = teacher_vs_student(teacher, student, queries[:50], queries, threads)
        long_t, long_s = teacher_vs_student(teacher, student, queries[:50], passages, threads)
        speed[threads] = {
            "query_p50_ms": {"teacher": short_t.query_p50_ms, "student": short_s.query_p50_ms},
            "query_p95_ms": {"teacher": short_t.query_p95_ms, "student": short_s.query_p95_ms},
            "short_per_s": {"teacher": short_t.throughput_per_s, "student": short_s.throughput_per_s},
            "passages_per_s": {"teacher": long_t.throughput_per_s, "student": long_s.throughput_per_s},
        }
    result = {
        "corpus_size": record.corpus["size"], "vocabulary_added": record.vocabulary_added,
        "stages": record.stages, "total_seconds": round(total, 1), "peak_rss_mb": record.peak_rss_mb,
        "mean_passage_words": sum(len(p.split()) for p in passages) / len(passages), "speed": speed,
    }
    print(f"\n{'stage':<12}{'seconds':>10}{'peak RSS MB':>14}")
    for name, stage in record.stages.items():
        print(f"{name:<12}{stage['seconds']:>10.1f}{stage['peak_rss_mb']:>14.0f}")
    print(f"{'total':<12}{total:>10.1f}{record.peak_rss_mb:>14.0f}\n")
    print(f"{'threads':<8}{'metric':<18}{'teacher':>12}{'student':>12}{'ratio':>10}")
    for threads, figures in speed.items():
        for metric, pair in figures.items():
            lower_is_better = metric.endswith("_ms")
            ratio = pair["teacher"] / pair["student"] if lower_is_better else pair["student"] / pair["teacher"]
            print(f"{threads:<8}{metric:<18}{pair['teacher']:>12.2f}{pair['student']:>12.2f}{ratio:>9.0f}×")
    write_results(args.out, result)


if __name__ == "__main__":
    main()
