"""Ablation of the corpus method's quality levers: each alone and together, with its cost.

    .venv/bin/python bench/levers.py --corpus-dir DIR --work-dir DIR [--variants today,neighbours,...]
        [--out bench/results/levers.json]

One corpus (a folder `core` built: corpus.jsonl + manifest.json), one teacher pass: the teacher's
targets are stored in --work-dir and every variant resumes them (a work folder whose targets also hold
tokenlearn's, from bench/quality.py, is resumed as it is). Each variant is `core.methods.corpus.distill`
with the parameters below over today's defaults (pca_dims 256, as bench/quality.py), saved as a bare
model2vec folder and scored on the development suite through the app's evaluation path. Per variant:
the scores, the mean of task-type means with and without pair classification and without the sets
that flatter students, retention (overall, without pairs, retrieval), the stage seconds beyond the
stored teacher pass, and the peak memory of its stages. Results are rewritten after each variant; a
rerun skips variants already in --out unless --again names them.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench._common import RESULTS, write_results  # noqa: E402

# Parameters over the corpus method's defaults (pca_dims 256, as bench/quality.py builds "corpus").
VARIANTS: dict[str, dict] = {
    "today": {},
    "neighbours": {"neighbours": 16, "neighbour_group": 4},
    "listwise": {"listwise_weight": 1.0},
    "neighbours+listwise": {"neighbours": 16, "neighbour_group": 4, "listwise_weight": 1.0},
    "pairs": {"pair_sources": ["all"], "pair_weight": 0.2},
    "vocabulary-50k": {"max_vocabulary_size": 50_000, "min_frequency": 2},
    "vocabulary-100k": {"max_vocabulary_size": 100_000, "min_frequency": 1},
    "dims-full": {"pca_dims": None},
    "pairs-light": {"pair_sources": ["all"], "pair_weight": 0.05},
    # The scale curve: seeded subsets of the corpus, and the corpus with every passage's sentences
    # added as texts of their own (sentence-level splitting: more targets from the same sources).
    "corpus-30k": {"corpus_texts": 30_000},
    "corpus-60k": {"corpus_texts": 60_000},
    "sentences": {"add_sentences": True},
    # The development suite's two retrieval sets whose queries sit in the shared corpus folder (the
    # product's plan draws neither file): the corpus with those queries added, to show what they flatter.
    "with-eval-queries": {"add_eval_queries": True},
    # The plan's "optimal" pair data (STS, NLI, paraphrases) as this machine holds it: the positive pairs of
    # the development suite's STS-B, SICK and MRPC *train* splits (never their test splits), beside the
    # five local pair sources, through the pair stage as a user's uploaded pair file.
    "dev-train-pairs": {"pair_sources": ["all"], "pair_weight": 0.05, "add_dev_train_pairs": True},
}
# The train splits of ../shared/data/eval read by "dev-train-pairs": file, the two sides, and which rows
# are positives (STS-B scores 0-5 and SICK relatedness 1-5 at 4 or more, SICK's entailments, MRPC's
# paraphrases).
DEV_TRAIN_PAIRS = (
    ("sts/stsbenchmark/train.jsonl.gz", "sentence1", "sentence2", lambda row: row["score"] >= 4),
    ("sts/sick/train.jsonl.gz", "sentence_A", "sentence_B",
     lambda row: row["relatedness_score"] >= 4 or row["entailment_judgment"] == "ENTAILMENT"),
    ("pair/mrpc/train.jsonl.gz", "sentence1", "sentence2", lambda row: row["label"] == 1),
)
DEV_TRAIN_PAIR_FILE = "uploads/pairs/dev-train-pairs.jsonl"
# Files of ../shared/data/corpus holding the queries of MedQuAD and of Python doc->code, and their field.
EVAL_QUERY_FILES = (("medical/medquad_questions.jsonl.gz", "question"),
                    ("code/python311_stdlib_docstrings.jsonl.gz", "docstring"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus-dir", type=Path, required=True)
    parser.add_argument("--work-dir", type=Path, required=True, help="holds the teacher's targets (resumed)")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="names from VARIANTS, comma-separated")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=JSON",
                        help="define or replace a variant: NAME={json of parameters}, e.g. "
                        "'mix={\"neighbours\": 16, \"pca_dims\": null}'")
    parser.add_argument("--again", default="", help="variants to rebuild even if --out holds them")
    parser.add_argument("--targets-from", action="append", default=[], type=Path, metavar="WORK_DIR",
                        help="an earlier work folder of this script or bench/quality.py (its corpus is read from "
                        "the path in its targets' corpus file, or --corpus-dir of that run: WORK_DIR/corpus): the "
                        "teacher's targets of texts it holds are taken from it; only the rest are embedded")
    parser.add_argument("--shares", default="", help="also score each variant with these shares of the fitted "
                        "start in the shipped table (the weight-space ensemble; no retraining), e.g. 0.3,0.7")
    parser.add_argument("--merge", action="append", default=[], type=Path, metavar="FILE",
                        help="variants measured by another run of this script on the same corpus (run at the "
                        "same time, into another file): copied into --out as they are")
    parser.add_argument("--out", type=Path, default=RESULTS / "levers.json")
    parser.add_argument("--markdown", action="store_true", help="print --out's table as markdown and stop")
    args = parser.parse_args()
    if args.markdown:
        print(markdown_table(json.loads(args.out.read_text())))
        return
    variants = dict(VARIANTS)
    for item in args.set:
        name, _, text = item.partition("=")
        variants[name] = json.loads(text)
    wanted = [v for v in args.variants.split(",") if v]
    unknown = [v for v in wanted if v not in variants]
    if unknown:
        raise SystemExit(f"unknown variant(s) {unknown}; known: {sorted(variants)}")
    os.environ.setdefault("DISTILLERY_DATA_DIR", str(args.work_dir / "data"))

    from bench.quality import CORPUS_SHA, bar_figures, save, without_flattering
    from core.corpus.build import Corpus
    from core.encoders.teacher import DEFAULT_TEACHER, resolve_teacher
    from core.evaluation.scoring import evaluate_student, teacher_scores
    from core.evaluation.tasks import suite_tasks
    from core.methods import corpus as corpus_method
    from core.progress import TqdmProgress

    corpus = Corpus.load(args.corpus_dir)
    texts = corpus.texts()
    CORPUS_SHA["value"] = corpus.manifest["content_sha256"]
    teacher = resolve_teacher(DEFAULT_TEACHER)
    tasks = suite_tasks("en")
    progress = TqdmProgress()
    results = json.loads(args.out.read_text()) if args.out.exists() else {}
    if results.get("corpus_sha256") not in (None, CORPUS_SHA["value"]):
        raise SystemExit(f"{args.out} holds another corpus's variants; choose another --out")
    results.update({"corpus_sha256": CORPUS_SHA["value"], "corpus_size": len(texts), "teacher": teacher.name})
    results.setdefault("variants", {})
    for other in args.merge:
        merged = json.loads(other.read_text())
        if merged.get("corpus_sha256") != CORPUS_SHA["value"]:
            raise SystemExit(f"--merge {other}: another corpus's variants")
        for name, variant in merged["variants"].items():
            results["variants"][name] = {**variant, "measured": f"{merged.get('date')} ({merged.get('command')})"}
    results["models"] = {"teacher": teacher_scores(teacher, tasks, progress)}
    teacher_summary = results["models"]["teacher"]
    teacher_summary.update(bar_figures(teacher_summary, teacher_summary))
    again = set(args.again.split(","))
    for name in wanted:
        if name in results["variants"] and name not in again:
            print(f"{name}: kept from {args.out}", flush=True)
            continue
        overrides = {"pca_dims": 256, **variants[name]}
        size = overrides.pop("corpus_texts", None)  # a seeded subset of the corpus: the scale curve
        sentences = overrides.pop("add_sentences", False)
        eval_queries = overrides.pop("add_eval_queries", False)
        if overrides.pop("add_dev_train_pairs", False):
            overrides["pair_files"] = [write_dev_train_pairs(args.work_dir)]
        chosen = texts if not size else [texts[i] for i in np.sort(np.random.default_rng(0).permutation(
            len(texts))[:size])]
        if sentences:
            chosen = with_sentences(chosen)
        if eval_queries:
            chosen = with_eval_queries(chosen)
        work = args.work_dir / ("corpus-method" if not size else f"corpus-method-{size}")
        work = work.with_name(work.name + "-sentences") if sentences else work
        work = work.with_name(work.name + "-eval-queries") if eval_queries else work
        extra = stored_extra(work, teacher)
        if not extra:
            assemble_targets(teacher, chosen, work / "targets", [args.work_dir, *args.targets_from], progress)
        params = corpus_method.CorpusParams.from_dict(overrides)
        started = time.perf_counter()
        distilled = corpus_method.distill(teacher, params, chosen, work, progress=progress, extra=extra)
        seconds = time.perf_counter() - started
        training = distilled.training or {}
        folder = save(distilled.model, f"lever-{name}", {k: v["seconds"] for k, v in distilled.stages.items()})
        scores = evaluate_student(folder, tasks, progress)
        scores.update(bar_figures(scores, teacher_summary))
        results["variants"][name] = {
            "parameters": {**overrides, **({"corpus_texts": size} if size else {}),
                           **({"add_sentences": True} if sentences else {}),
                           **({"add_eval_queries": True} if eval_queries else {})},
            "texts": len(chosen), "scores": scores,
            "without_flattering_sets": without_flattering(scores),
            "stages": distilled.stages, "seconds_after_teacher_pass": round(seconds - distilled.stages["featurize"]
                                                                            ["seconds"], 1),
            "peak_rss_mb": max(v["peak_rss_mb"] for v in distilled.stages.values()),
            "best_epoch": training["best_epoch"], "history": training.get("history"),
            **{k: v for k, v in training.items() if k in ("neighbour_seconds", "pairs")},
            "vocabulary_added": distilled.vocabulary_added,
            "table_rows": int(distilled.model.embedding.shape[0]),
        }
        for share in (float(x) for x in args.shares.split(",") if x):
            mixed = reshared(distilled, share)
            folder = save(mixed, f"lever-{name}-share-{share}")
            scores = evaluate_student(folder, tasks, progress)
            scores.update(bar_figures(scores, teacher_summary))
            results["variants"][f"{name}@start_share={share}"] = {
                **results["variants"][name], "parameters": {**results["variants"][name]["parameters"],
                                                            "start_share": share},
                "scores": scores, "without_flattering_sets": without_flattering(scores)}
        write_results(args.out, results, "cpu")
        print_table(results)
    progress.close()
    results["teacher_without_flattering_sets"] = without_flattering(teacher_summary)
    write_results(args.out, results, "cpu")
    print_table(results)


def assemble_targets(teacher, texts: list[str], folder: Path, earlier: list[Path], progress) -> None:
    """The corpus method's stored targets for `texts`, before it runs: rows that an earlier run's store
    holds (same teacher) are copied, the rest are embedded by the teacher through `featurize` (in their
    own resumable store), and the whole is laid out as `featurize` would (`store_from_rows`), so the
    method resumes it and its cost figures exclude this teacher pass (they are the levers' cost)."""
    from core.corpus.build import Corpus
    from core.encoders.teacher import load_teacher
    from core.methods.featurize import MANIFEST, TargetStore, featurize, featurize_key, store_from_rows

    prompt = teacher.prompts.get("document")
    key = featurize_key(teacher.fingerprint, texts, prompt, [])
    manifest = folder / MANIFEST
    if manifest.exists():
        stored = json.loads(manifest.read_text())
        if stored["key"] == key and TargetStore(folder, len(texts), stored["dim"], stored["shard_rows"]).complete():
            return
    where: dict[str, tuple[int, int]] = {}
    readers = []
    for work in earlier:
        stored = work / "corpus-method" / "targets" / MANIFEST
        corpus_dir = work / "corpus"
        if not stored.exists() or not (corpus_dir / "corpus.jsonl").exists():
            continue
        info = json.loads(stored.read_text())
        earlier_texts = Corpus.load(corpus_dir).texts()
        if info["rows"] != len(earlier_texts) or info["prompt"] != prompt:
            continue
        store = TargetStore(stored.parent, info["rows"], info["dim"], info["shard_rows"], tuple(info["names"]))
        if not store.complete():
            continue
        readers.append(store.open())
        for row, text in enumerate(earlier_texts):
            where.setdefault(text, (len(readers) - 1, row))
    missing = [t for t in dict.fromkeys(texts) if t not in where]
    print(f"targets: {len(texts) - len(missing):,} texts from earlier stores, {len(missing):,} to embed", flush=True)
    if missing:
        fresh = featurize(load_teacher(teacher), missing, folder.parent / "new-targets",
                          featurize_key(teacher.fingerprint, missing, prompt, []), prompt=prompt,
                          progress=progress)
        readers.append(fresh.open())
        for row, text in enumerate(missing):
            where[text] = (len(readers) - 1, row)
    source = np.array([where[t][0] for t in texts])
    row_in = np.array([where[t][1] for t in texts])

    def rows_of(indices: np.ndarray) -> np.ndarray:
        out = np.empty((len(indices), readers[0].dim), dtype=np.float32)
        for s in np.unique(source[indices]):
            mask = source[indices] == s
            out[mask] = readers[s].take(row_in[indices][mask])
        return out

    store_from_rows(texts, folder, key, prompt, readers[0].dim, rows_of)


def reshared(distilled, share: float):
    """The same student with another share of the fitted start in its table (`CorpusParams.start_share`)."""
    from model2vec import StaticModel
    from model2vec.quantization import DType, quantize_embeddings

    details = distilled.details
    table = share * details.start_table + (1 - share) * details.trained_table
    model = distilled.model
    return StaticModel(vectors=quantize_embeddings(table.astype(np.float32), DType("float16")),
                       tokenizer=model.tokenizer, config=dict(model.config), normalize=True,
                       base_model_name=model.base_model_name, language=model.language)


def with_eval_queries(texts: list[str]) -> list[str]:
    """The corpus and, after it, the queries of MedQuAD and Python doc->code (EVAL_QUERY_FILES),
    normalised as the corpus builder normalises, each once, cut to the corpus's 128 words."""
    import gzip

    from core import settings
    from core.corpus.cleaning import normalise_text

    folder = settings.local_corpus_dir()
    if folder is None:
        raise SystemExit("with-eval-queries needs the local corpus folder (../shared/data/corpus)")
    extra = []
    for name, field in EVAL_QUERY_FILES:
        with gzip.open(folder / name, "rt") as handle:
            extra += [" ".join(normalise_text(json.loads(line)[field]).split()[:128]) for line in handle]
    return list(dict.fromkeys([*texts, *(t for t in extra if len(t.split()) >= 3)]))


def write_dev_train_pairs(job_dir: Path) -> str:
    """DEV_TRAIN_PAIRS' positives as a pair upload in `job_dir` (where the corpus method reads a recipe's
    pair files), each pair's sides in the file's order; returns the file's name inside the job."""
    import gzip

    from core import settings

    rows = []
    for name, left, right, positive in DEV_TRAIN_PAIRS:
        with gzip.open(settings.eval_dir() / name, "rt") as handle:
            rows += [{"anchor": r[left], "positive": r[right]} for r in map(json.loads, handle) if positive(r)]
    path = job_dir / DEV_TRAIN_PAIR_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    print(f"dev-train-pairs: {len(rows):,} positive pairs written to {path}", flush=True)
    return DEV_TRAIN_PAIR_FILE


def with_sentences(texts: list[str], min_words: int = 3) -> list[str]:
    """The corpus and, after it, every sentence of a passage of several sentences (core's own splitter),
    each once: the short texts that STS pairs, questions and queries are."""
    from core.corpus.cleaning import split_sentences

    extra = (s for t in texts for s in (split_sentences(t) if len(t.split()) > 2 * min_words else [])
             if len(s.split()) >= min_words)
    return list(dict.fromkeys([*texts, *extra]))


def stored_extra(folder: Path, teacher) -> list:
    """The extra targets the stored teacher pass computed (tokenlearn's, when bench/quality.py made it),
    so the featurize key matches and the targets resume instead of being recomputed."""
    from bench.quality import resolve_dim, tokenlearn_target

    manifest = folder / "targets" / "targets.json"
    names = json.loads(manifest.read_text())["names"] if manifest.exists() else []
    return [("tokenlearn", resolve_dim(teacher), tokenlearn_target)] if "tokenlearn" in names else []


def markdown_table(results: dict) -> str:
    """The ablation table of docs/benchmarks.md: per variant the bar's figures, the change against
    today's defaults, and the cost."""
    teacher = results["models"]["teacher"]
    base = results["variants"]["today"]["scores"]
    flat = results.get("teacher_without_flattering_sets", {}).get("mean_of_types")
    lines = ["| variant | texts | mean of types | Δ | without pairs | Δ | without flattering sets | retrieval "
             "(% of teacher) | STS | Class. | seconds after the teacher pass | peak MB | rows |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    lines.append(f"| teacher | | {teacher['mean_of_types']:.2f} | | {teacher['type_means_without_pair']:.2f} | | "
                 f"{flat if flat is not None else ''} | 100 | {teacher['type_means']['STS']:.2f} | "
                 f"{teacher['type_means']['Classification']:.2f} | | | |")
    for name, v in results["variants"].items():
        s = v["scores"]
        lines.append(
            f"| {name} | {v.get('texts', results['corpus_size']):,} | {s['mean_of_types']:.2f} | "
            f"{s['mean_of_types'] - base['mean_of_types']:+.2f} | {s['type_means_without_pair']:.2f} | "
            f"{s['type_means_without_pair'] - base['type_means_without_pair']:+.2f} | "
            f"{v['without_flattering_sets']['mean_of_types']:.2f} | {100 * s['retrieval_retention']:.1f} | "
            f"{s['type_means']['STS']:.2f} | {s['type_means']['Classification']:.2f} | "
            f"{v['seconds_after_teacher_pass']:.0f} | {v['peak_rss_mb']:.0f} | {v['table_rows']:,} |")
    return "\n".join(lines)


def print_table(results: dict) -> None:
    teacher = results["models"]["teacher"]
    rows = [("teacher", teacher, None)] + [(n, v["scores"], v) for n, v in results["variants"].items()]
    tasks = list(teacher["tasks"])
    header = ["variant"] + [t[:10] for t in tasks] + ["types", "no pair", "ret %", "s", "MB"]
    print("\n" + "".join(h.rjust(11) if i else h.ljust(22) for i, h in enumerate(header)))
    for name, scores, v in rows:
        cells = [f"{scores['tasks'].get(t, float('nan')):.2f}" for t in tasks]
        cells += [f"{scores['mean_of_types']:.2f}", f"{scores.get('type_means_without_pair', float('nan')):.2f}",
                  f"{100 * scores.get('retrieval_retention', 1):.1f}",
                  f"{v['seconds_after_teacher_pass']:.0f}" if v else "", f"{v['peak_rss_mb']:.0f}" if v else ""]
        print(name[:22].ljust(22) + "".join(c.rjust(11) for c in cells))


if __name__ == "__main__":
    main()
