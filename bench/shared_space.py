"""Routing's map from a student's space to its teacher's: through the origin against affine.

    python bench/shared_space.py --name NAME --student FOLDER --corpus DIR --targets DIR [--fit 2000] [--test 2000]
                                 [--out bench/results/shared_space.json]

The routed service answers in the teacher's space: the teacher's vectors as they are, the student's
mapped there by `core.serving.routing.SharedSpace`. This bench fits that map on `--fit` texts of a
corpus whose teacher targets the corpus method stored (`--corpus`, the corpus folder; `--targets`,
its target folder), once through the origin (`affine=False`, the map before its offset) and once
affine (the default), and measures on `--test` other texts of it:
  - `same_text_cosine`: the mean cosine between a text's mapped student vector and its teacher vector;
  - `mean_along_teacher_mean`: the mean projection of mapped vectors on the teacher's mean direction
    (the teacher's own in `teacher_along_mean`);
  - `teacher_query_vs_teacher_docs` / `..._vs_mapped_docs`: the mean cosine of 500 teacher queries
    against 500 teacher-embedded and 500 student-embedded (mapped) documents, i.e. how a mixed index
    scores the two kinds of documents before any relevance;
  - `own_text_top1`: the share of mapped vectors whose nearest teacher vector among the test texts is
    their own text's.
Each `--name` adds or replaces one entry of the results file.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench._common import RESULTS, write_results  # noqa: E402


def measures(mapped: np.ndarray, teacher: np.ndarray, mean_direction: np.ndarray) -> dict[str, float]:
    """The figures of one map on the test texts (rows of `mapped` and `teacher` are the same texts)."""
    queries, teacher_docs, mapped_docs = teacher[:500], teacher[500:1000], mapped[1000:1500]
    sims = mapped @ teacher.T
    own_first = (sims > np.diag(sims)[:, None]).sum(axis=1) == 0
    return {"same_text_cosine": round(float(np.sum(mapped * teacher, axis=1).mean()), 4),
            "mean_along_teacher_mean": round(float((mapped @ mean_direction).mean()), 4),
            "teacher_query_vs_teacher_docs": round(float((queries @ teacher_docs.T).mean()), 4),
            "teacher_query_vs_mapped_docs": round(float((queries @ mapped_docs.T).mean()), 4),
            "own_text_top1": round(float(own_first.mean()), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name", required=True)
    parser.add_argument("--student", type=Path, required=True)
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--targets", type=Path, required=True)
    parser.add_argument("--fit", type=int, default=2000)
    parser.add_argument("--test", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=RESULTS / "shared_space.json")
    args = parser.parse_args()

    from core.corpus.build import Corpus
    from core.encoders.base import unit_rows
    from core.encoders.student import StudentEncoder
    from core.methods.featurize import TargetStore
    from core.serving.routing import SharedSpace

    texts = Corpus.load(args.corpus).texts()
    reader = TargetStore.prepared(args.targets).open()
    if len(reader) != len(texts) or args.fit + max(args.test, 1500) > len(texts):
        raise SystemExit(f"{args.targets} holds {len(reader)} targets for {len(texts)} texts; the bench needs "
                         f"the same corpus and at least --fit + max(--test, 1500) texts.")
    rows = np.random.default_rng(0).permutation(len(texts))
    fit_rows, test_rows = rows[:args.fit], rows[args.fit:args.fit + max(args.test, 1500)]
    student = StudentEncoder.open(args.student)
    fit_student = student.encode([texts[i] for i in fit_rows])
    test_student = student.encode([texts[i] for i in test_rows])
    fit_teacher, test_teacher = unit_rows(reader.take(fit_rows)), unit_rows(reader.take(test_rows))
    mean, cone = reader.means()  # the corpus method's own measure of the cone, and its direction
    mean_direction = unit_rows(mean)[0]
    entry: dict[str, Any] = {"student": str(args.student), "corpus": str(args.corpus), "fit_texts": len(fit_rows),
                             "test_texts": len(test_rows), "teacher_mean_cosine": round(cone, 4),
                             "teacher_along_mean": round(float((test_teacher @ mean_direction).mean()), 4)}
    for label, affine in (("origin", False), ("affine", True)):
        space = SharedSpace.fit(fit_student, fit_teacher, affine=affine)
        entry[label] = measures(space.apply(test_student), test_teacher, mean_direction)
    print(json.dumps({args.name: entry}, indent=1))
    results = json.loads(args.out.read_text()).get("students", {}) if args.out.exists() else {}
    results[args.name] = entry
    write_results(args.out, {"students": results})


if __name__ == "__main__":
    main()
