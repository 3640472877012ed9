"""A local suite through mteb (core.evaluation) for the teacher and one or more students.

    .venv/bin/python bench/evaluation.py STUDENT_FOLDER [STUDENT_FOLDER ...] [--limit N] [--fresh-teacher]
        [--suite en|fr|both]

`--suite` picks the English development suite (the default), the French sets or both (core.evaluation.tasks.SUITES).

Prints one table (per task, per task type, mean of task-type means, retention) and how long each model's
evaluation took on this machine; writes bench/results/evaluation.json (or --out). The teacher's scores
come from core.evaluation's cache when present; `--fresh-teacher` uses an empty cache so that the time
includes scoring the teacher.
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
    parser.add_argument("students", nargs="+", type=Path)
    parser.add_argument("--teacher", default=None)
    parser.add_argument("--limit", type=int, default=None, help="rows per task (default: all)")
    parser.add_argument("--fresh-teacher", action="store_true")
    parser.add_argument("--suite", default="en", choices=("en", "fr", "both"),
                        help="local suite: English development sets, French sets, or both (default: en)")
    parser.add_argument("--out", type=Path, default=RESULTS / "evaluation.json")
    args = parser.parse_args()
    if args.fresh_teacher:
        os.environ["DISTILLERY_DATA_DIR"] = tempfile.mkdtemp(prefix="distillery-eval-")

    from core.encoders.teacher import DEFAULT_TEACHER, resolve_teacher
    from core.evaluation.scoring import evaluate_student, task_refs, teacher_scores
    from core.evaluation.verdict import retention
    from core.progress import TqdmProgress

    teacher = resolve_teacher(args.teacher or DEFAULT_TEACHER)
    progress = TqdmProgress()
    tasks = task_refs(None, args.suite)
    start = time.perf_counter()
    results = {"teacher": teacher_scores(teacher, tasks, progress=progress, limit=args.limit)}
    results["teacher"]["seconds"] = round(time.perf_counter() - start, 1)
    kept = {}
    for folder in args.students:
        results[folder.name] = evaluate_student(folder, tasks, progress=progress, limit=args.limit)
        kept[folder.name] = retention(results[folder.name], results["teacher"])
    progress.close()
    print_table(results, kept)
    write_results(args.out, {"teacher": teacher.name, "suite": args.suite, "limit": args.limit, "models": results,
                             "retention": kept})


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
