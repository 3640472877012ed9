"""Wall time and peak memory of each stage of the corpus method's pipeline against corpus size.

    .venv/bin/python bench/pipeline.py [--sizes 10000,30000,100000] [--work-dir DIR]

Each size runs in a fresh process (so its peak memory is its own): the product's `run_recipe` at the
default plan with method "corpus" (corpus build, featurize, vocabulary, distill, weights, PCA, train,
search index, save), then `evaluate_saved_model` on the development suite. The teacher's scores are
computed once beforehand (they are cached per teacher, so they do not depend on the corpus) and that
time is reported apart. Fits time = a + b·texts per stage and in total, says whether growth is linear
(R² of the linear fit and the per-1k-texts slope), prints a table and writes bench/results/pipeline.json
(or --out), rewritten after every size.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench._common import RESULTS, peak_rss_mb, write_results  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,30000,100000")
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/distillery-pipeline"))
    parser.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)  # a child run
    parser.add_argument("--out", type=Path, default=RESULTS / "pipeline.json")
    args = parser.parse_args()
    os.environ["DISTILLERY_DATA_DIR"] = str(args.work_dir / "data")
    if args.one:
        print(json.dumps(run_one(args.one, args.work_dir)))
        return
    sizes = [int(s) for s in args.sizes.split(",") if s]
    teacher_seconds = warm_teacher_cache()
    runs = {}
    for size in sizes:
        child = subprocess.run([sys.executable, __file__, "--one", str(size), "--work-dir", str(args.work_dir)],
                               capture_output=True, text=True, check=True)
        runs[size] = json.loads(child.stdout.strip().splitlines()[-1])
        print(f"{size:,} texts: {runs[size]}", flush=True)
        fits = fit_growth(runs)  # written after every size, so a long run that is stopped keeps its figures
        write_results(args.out, {"sizes": sizes, "runs": runs, "fits": fits,
                                 "teacher_scores_seconds_once": teacher_seconds})
    print_table(runs, fits)


def warm_teacher_cache() -> float:
    from core.encoders.teacher import resolve_teacher
    from core.evaluation.scoring import teacher_scores

    start = time.perf_counter()
    teacher_scores(resolve_teacher(None))
    return round(time.perf_counter() - start, 1)


def run_one(size: int, work: Path) -> dict:
    import shutil

    from core.evaluation.run import evaluate_saved_model
    from core.pipeline import run_recipe
    from core.progress import StageClock
    from core.recipe import Recipe

    job, model = work / f"job-{size}", work / "data" / "models" / f"pipeline-{size}"
    shutil.rmtree(job, ignore_errors=True)
    shutil.rmtree(model, ignore_errors=True)
    recipe = Recipe.from_dict({"name": f"pipeline-{size}", "method": "corpus", "corpus_size": size})
    record = run_recipe(recipe, job, model)
    clock = StageClock()
    with clock.stage("evaluate"):
        evaluate_saved_model(model)
    stages = {**record.stages, **clock.stages}
    return {"texts": record.corpus["size"], "stages": stages, "peak_rss_mb": round(peak_rss_mb(), 1),
            "total_seconds": round(sum(s["seconds"] for s in stages.values()), 2)}


def fit_growth(runs: dict) -> dict:
    """Least-squares time = a + b·texts per stage; b per 1k texts and R² say whether growth is linear."""
    import numpy as np

    texts = np.array([r["texts"] for r in runs.values()], dtype=float)
    series = {"total": [r["total_seconds"] for r in runs.values()]}
    for name in next(iter(runs.values()))["stages"]:
        series[name] = [r["stages"][name]["seconds"] for r in runs.values()]
    fits = {}
    for name, seconds in series.items():
        y = np.array(seconds, dtype=float)
        slope, intercept = np.polyfit(texts, y, 1) if len(texts) > 1 else (y[0] / texts[0], 0.0)
        residual = y - (slope * texts + intercept)
        spread = ((y - y.mean()) ** 2).sum()
        r2 = 1 - (residual ** 2).sum() / spread if spread > 0 else 1.0
        fits[name] = {"seconds_per_1k_texts": round(1000 * slope, 3), "intercept_seconds": round(intercept, 2),
                      "r2": round(float(r2), 4), "linear": bool(r2 >= 0.98 or abs(1000 * slope) < 0.05)}
    return fits


def print_table(runs: dict, fits: dict) -> None:
    names = list(fits)
    print("\n" + "stage".ljust(12) + "".join(f"{int(s):>12,}" for s in runs) + f"{'s / 1k':>10}{'R²':>8}  linear")
    for name in names:
        cells = [r["total_seconds"] if name == "total" else r["stages"][name]["seconds"] for r in runs.values()]
        fit = fits[name]
        print(name.ljust(12) + "".join(f"{c:12.1f}" for c in cells) +
              f"{fit['seconds_per_1k_texts']:10.3f}{fit['r2']:8.3f}  {'yes' if fit['linear'] else 'NO'}")
    print("peak MB".ljust(12) + "".join(f"{r['peak_rss_mb']:12.0f}" for r in runs.values()))


if __name__ == "__main__":
    main()
