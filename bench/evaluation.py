"""The development suite through mteb (core.evaluate) for the teacher and one or more students.

    .venv/bin/python bench/evaluation.py STUDENT_FOLDER [STUDENT_FOLDER ...] [--limit N] [--fresh-teacher]

Prints one table (per task, per task type, mean of task-type means, retention) and how long each model's
evaluation took on this machine; writes bench/results/evaluation.json (or --out). The teacher's scores
come from core.evaluate's cache when present; `--fresh-teacher` uses an empty cache so that the time
includes scoring the teacher.
"""

from __future__ import annotations

import argparse
import json
import os
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
    parser.add_argument("students", nargs="+", type=Path)
    parser.add_argument("--teacher", default=None)
    parser.add_argument("--limit", type=int, default=None, help="rows per task (default: all)")
    parser.add_argument("--fresh-teacher", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "evaluation.json")
    args = parser.parse_args()
    if args.fresh_teacher:
        os.environ["DISTILLERY_DATA_DIR"] = tempfile.mkdtemp(prefix="distillery-eval-")

    from bench.quality import describe_machine
    from core.evaluate import evaluate_student, retention, teacher_scores
    from core.progress import TqdmProgress
    from core.teacher import DEFAULT_TEACHER, resolve_teacher

    teacher = resolve_teacher(args.teacher or DEFAULT_TEACHER)
    progress = TqdmProgress()
    start = time.perf_counter()
    results = {"teacher": teacher_scores(teacher, progress=progress, limit=args.limit)}
    results["teacher"]["seconds"] = round(time.perf_counter() - start, 1)
    kept = {}
    for folder in args.students:
        results[folder.name] = evaluate_student(folder, progress=progress, limit=args.limit)
        kept[folder.name] = retention(results[folder.name], results["teacher"])
    progress.close()
    print_table(results, kept)
    report = {"date": date.today().isoformat(), "machine": describe_machine("cpu"), "teacher": teacher.name,
              "limit": args.limit, "models": results, "retention": kept,
              "command": "python bench/evaluation.py " + " ".join(sys.argv[1:])}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")


def print_table(results: dict, kept: dict) -> None:
    names = list(results)
    tasks = list(results["teacher"]["tasks"])
    width = max(len(t) for t in tasks + ["mean of types"]) + 2
    print("\n" + "task".ljust(width) + "".join(n[:22].rjust(24) for n in names))
    for task in tasks:
        print(task.ljust(width) + "".join(f"{results[n]['tasks'].get(task, float('nan')):24.2f}" for n in names))
    for kind in results["teacher"]["type_means"]:
        print(f"[{kind}]".ljust(width) + "".join(f"{results[n]['type_means'].get(kind, float('nan')):24.2f}"
                                              for n in names))
    print("mean of types".ljust(width) + "".join(f"{results[n]['mean_of_types']:24.2f}" for n in names))
    print("retention".ljust(width) + "".rjust(24) + "".join(f"{kept[n]['overall']:23.1%} " for n in names[1:]))
    print("seconds".ljust(width) + "".join(f"{results[n].get('seconds', 0):24.1f}" for n in names))
    for name in names:
        if results[name].get("skipped"):
            print(f"skipped for {name}: {results[name]['skipped']}")


if __name__ == "__main__":
    main()
