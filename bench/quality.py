"""Quality of the corpus method against vocabulary-only distillation, tokenlearn 0.2.1 and the teacher.

    .venv/bin/python bench/quality.py [--corpus-size 100000] [--models vocabulary,tokenlearn,corpus]
        [--suite en|fr|both]

In one run, on one corpus drawn at the default plan (30/30/20/10/10) from ../shared/data/corpus:
  (a) vocabulary: the product's vocabulary method (model2vec.distill + corpus words), pca_dims=256;
  (b) tokenlearn: tokenlearn 0.2.1's vocabulary, distill and train_model on the same corpus and teacher,
      its featurize targets (mean of the last-layer token states) computed in the corpus method's
      teacher pass, as the issue allows (installed by
      `pip install --no-deps tokenlearn==0.2.1 more-itertools`, never by the app);
  (c) corpus: Distillery's corpus method (core.corpus_method), pca_dims=256;
  (d) corpus_endpoint: the same method with the teacher reached over HTTP: the project's own embeddings
      service (core.serving.service) serves the teacher on loopback and the corpus method calls its
      OpenAI-compatible route (core.encoders.endpoint); its featurize stage is compared with the local
      corpus method's (the target: within 1.3x) and its score with "corpus" (within 0.5 points). With
      the default student tokenizer its start is fitted around the bundled teacher's model2vec vectors
      (core.methods.target_start), which here is the served teacher itself: read it as the cost of the
      HTTP path, not as what a different API's teacher would reach;
and the teacher itself, all scored on the development sets in ../shared/data/eval (`--suite fr`: the French
sets in ../shared/data/fr/eval; `both`: the two) through the app's own
evaluation path (`core.evaluation.scoring`: mteb, one task at a time, the teacher's scores cached). The
average is the mean of the task-type means, as the app's retention uses it; the table also gives it
without the sets that flatter students (MRPC, where every student beats the teacher, and MedQuAD and
Python doc->code, whose queries sit in the shared corpus).

Cost: the teacher's bare `encode` over the whole corpus is timed (`--bare-sample N` times N texts and
scales up, for slow CPUs), and the corpus method's stage times are compared with it.
Prints one table and writes bench/results/quality.json (or --out).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from datetime import date
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench._common import RESULTS, peak_rss_mb, write_results  # noqa: E402

MODELS = ("vocabulary", "tokenlearn", "corpus", "corpus_endpoint")
# Sets on which the development suite flatters students (see the module docstring).
FLATTERING = ("MRPC", "MedQuAD", "PythonStdlibDoc2Code")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus-size", type=int, default=100_000)
    parser.add_argument("--corpus-dir", type=Path, help="a corpus already built by core (corpus.jsonl + manifest.json)")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--teacher", default=None, help="teacher id or folder (default: the embedded MiniLM)")
    parser.add_argument("--pca-dims", type=int, default=256)
    parser.add_argument("--bare-sample", type=int, default=0, help="time bare encode on this many texts (0: all)")
    parser.add_argument("--work-dir", type=Path, default=None, help="keeps targets between runs (resumable)")
    parser.add_argument("--machine", default=None, help="how to describe this machine in the results")
    parser.add_argument("--suite", default="en", choices=("en", "fr", "both"),
                        help="local suite scored: English development sets, French sets, or both (default: en)")
    parser.add_argument("--tasks", default="", help="comma-separated task names of that suite (default: all)")
    parser.add_argument("--reuse", default="", help="comma-separated baselines (vocabulary, tokenlearn) whose "
                        "student a previous run in the same --work-dir built: scored again, not rebuilt; the "
                        "results say so and keep the build's date and stage times")
    parser.add_argument("--cost-from", type=Path, default=None,
                        help="a quality.json whose run measured the cost on this corpus and machine: its cost "
                        "and stage times are carried over (labelled), and the bare encode is not timed again; "
                        "for a run that resumes the stored teacher targets in --work-dir")
    parser.add_argument("--endpoint-port", type=int, default=47321,
                        help="loopback port of the served teacher for corpus_endpoint (fixed, so that its "
                        "targets in --work-dir resume: the endpoint's URL is part of their key)")
    parser.add_argument("--out", type=Path, default=RESULTS / "quality.json")
    args = parser.parse_args()
    wanted = [m for m in args.models.split(",") if m]
    requested = list(wanted)  # before --reuse removes any: a reused tokenlearn keeps the same teacher pass (and key)
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="distillery-quality-"))
    work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("DISTILLERY_DATA_DIR", str(work / "data"))

    from core.corpus.build import Corpus, build_corpus
    from core.corpus.sources import load_catalogue
    from core.encoders.teacher import DEFAULT_TEACHER, load_teacher, resolve_teacher
    from core.progress import TqdmProgress
    from core.recipe import Recipe

    teacher = resolve_teacher(args.teacher or DEFAULT_TEACHER)
    progress = TqdmProgress()
    if args.corpus_dir:
        corpus = Corpus.load(args.corpus_dir)
    else:
        recipe = Recipe(corpus_size=args.corpus_size)
        corpus = build_corpus(recipe.corpus_plan(load_catalogue()), work / "corpus", progress)
    texts = corpus.texts()
    CORPUS_SHA["value"] = corpus.manifest["content_sha256"]
    print(f"corpus: {len(texts):,} texts, shortfalls: {corpus.manifest.get('shortfalls')}", flush=True)

    st = load_teacher(teacher)
    device = str(st.device)
    results: dict = {"models": {}, "cost": {}, "stages": {}}
    earlier = json.loads(args.cost_from.read_text()) if args.cost_from else None
    if earlier and earlier.get("corpus_manifest", {}).get("content_sha256") != CORPUS_SHA["value"]:
        raise SystemExit("--cost-from: that run measured another corpus")
    bare = earlier["cost"]["bare_encode_seconds"] if earlier else bare_encode_seconds(st, texts, args.bare_sample)
    results["cost"]["bare_encode_seconds"] = round(bare, 2)
    print(f"teacher bare encode over {len(texts):,} texts: {bare:.1f} s on {device}", flush=True)

    students: dict = {}
    store = None
    for name in (n for n in args.reuse.split(",") if n):
        students[name], built = reuse_student(name)
        results["stages"][name] = built["stages"]
        results.setdefault("reused", {})[name] = f"built {built['date']} by an earlier run on the same corpus"
        wanted.remove(name)
    if "vocabulary" in wanted:
        students["vocabulary"], results["stages"]["vocabulary"] = build_vocabulary(teacher, args.pca_dims, texts,
                                                                                    progress)
    if "corpus" in wanted or "tokenlearn" in wanted:  # one teacher pass also gives tokenlearn's targets
        model_dir, results["stages"]["corpus"], results["training"], store = build_corpus_model(
            teacher, args.pca_dims, texts, work, progress, with_tokenlearn="tokenlearn" in requested)
        if "corpus" in wanted:
            students["corpus"] = model_dir
        total = sum(results["stages"]["corpus"].values())
        results["cost"].update({"corpus_method_seconds": round(total, 2), "ratio_to_bare_encode": round(total / bare, 3),
                                "peak_rss_mb": round(peak_rss_mb(), 1)})
    if "corpus_endpoint" in wanted:
        students["corpus_endpoint"], results["stages"]["corpus_endpoint"] = build_endpoint_model(
            args.teacher, args.pca_dims, texts, work, progress, args.endpoint_port)
        featurize = results["stages"]["corpus_endpoint"]["featurize"]
        local = results["stages"].get("corpus", {}).get("featurize")
        results["cost"].update({"corpus_endpoint_featurize_seconds": round(featurize, 2),
                                "endpoint_featurize_ratio_to_bare_encode": round(featurize / bare, 3),
                                **({"endpoint_featurize_ratio_to_local_featurize": round(featurize / local, 3)}
                                   if local else {})})
    if "tokenlearn" in wanted:
        students["tokenlearn"], results["stages"]["tokenlearn"] = build_tokenlearn(teacher, texts, store, device,
                                                                                    args.pca_dims)
    progress.close()
    if earlier:
        # The run that measured the cost: the earlier file's own source when it too carried it over.
        source = earlier["cost"].get("measured_by") or f"the run of {earlier['date']} ({earlier['command']})"
        results["cost"] = {**earlier["cost"], "measured_by": source.split(";")[0] +
                           f"; carried over by --cost-from {args.cost_from.name} (this run resumed stored teacher "
                           "targets of the same corpus)"}
        results["stages_this_run"], results["stages"] = results["stages"], earlier["stages"]

    from core.evaluation.scoring import evaluate_student, teacher_scores
    from core.evaluation.tasks import suite_tasks

    tasks = tuple(t for t in suite_tasks(args.suite) if not args.tasks or t.name in args.tasks.split(","))
    progress = TqdmProgress()
    results["models"]["teacher"] = teacher_scores(teacher, tasks, progress)
    for name, model_dir in students.items():
        results["models"][name] = evaluate_student(model_dir, tasks, progress)
    progress.close()
    results["without_flattering_sets"] = {name: without_flattering(scores) for name, scores in results["models"].items()}
    for scores in results["models"].values():
        scores.update(bar_figures(scores, results["models"]["teacher"]))
    results.update({
        "corpus_size": len(texts), "teacher": teacher.name, "pca_dims": args.pca_dims, "suite": args.suite,
        "average": "mean of the task-type means (core.evaluation.verdict.summarise)",
        "corpus_manifest": {k: corpus.manifest.get(k) for k in ("requested", "realised", "shortfalls", "content_sha256")},
        **({"machine": args.machine} if args.machine else {}),
    })
    print_table(results)
    write_results(args.out, results, device)


def bare_encode_seconds(st, texts: list[str], sample: int) -> float:
    """The baseline the cost target is measured against: one plain `encode` call over the corpus."""
    import random

    chosen = random.Random(0).sample(texts, sample) if 0 < sample < len(texts) else texts
    from core.methods.featurize import default_batch_size

    batch = default_batch_size(st.device)  # the batch size featurize uses, so the two are comparable
    st.encode(chosen[:batch], batch_size=batch)  # warm-up
    start = time.perf_counter()
    st.encode(chosen, batch_size=batch, show_progress_bar=True)
    return (time.perf_counter() - start) * len(texts) / len(chosen)


def build_vocabulary(teacher, pca_dims: int, texts, progress):
    """The product's vocabulary method, as a recipe runs it (corpus words, then model2vec's distill)."""
    from core.methods import vocabulary

    distilled = vocabulary.distill(teacher, vocabulary.VocabularyParams(pca_dims=pca_dims), texts, Path("."),
                                   progress=progress)
    stages = {name: v["seconds"] for name, v in distilled.stages.items()}
    return save(distilled.model, "vocabulary", stages), stages


def build_corpus_model(teacher, pca_dims: int, texts, work: Path, progress, with_tokenlearn: bool = True):
    """Our corpus method with its own defaults; its teacher pass also computes tokenlearn's targets (see
    `tokenlearn_target`) when tokenlearn is built too (which makes that pass slower than the product's own)."""
    from core.methods import corpus

    params = corpus.CorpusParams(pca_dims=pca_dims)
    distilled = corpus.distill(teacher, params, texts, work / "corpus-method", progress=progress,
                               extra=[("tokenlearn", resolve_dim(teacher), tokenlearn_target)] if with_tokenlearn else ())
    stages = {name: v["seconds"] for name, v in distilled.stages.items()}
    print(f"corpus method stages: {stages}; best epoch {distilled.details.best_epoch}", flush=True)
    training = {**(distilled.training or {}), "vocabulary_added": distilled.vocabulary_added}
    return save(distilled.model, "corpus", stages), stages, training, distilled.details.targets


def build_endpoint_model(teacher_name: str | None, pca_dims: int, texts, work: Path, progress, port: int):
    """The corpus method with the teacher served over HTTP on loopback by the project's own service
    (its OpenAI-compatible route, the kind's default batching), with the method's own defaults."""
    import threading

    import uvicorn

    from core.encoders.endpoint import EndpointSpec, endpoint_teacher
    from core.encoders.teacher import DEFAULT_TEACHER
    from core.methods import corpus
    from core.serving.service import ModelRegistry, create_service

    app = create_service(ModelRegistry(folders=[], teacher=teacher_name or DEFAULT_TEACHER), preload=["teacher"])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise SystemExit("the loopback embeddings service did not start")
        time.sleep(0.05)
    try:
        teacher = endpoint_teacher(EndpointSpec(kind="openai", url=f"http://127.0.0.1:{port}", model="teacher"))
        distilled = corpus.distill(teacher, corpus.CorpusParams(pca_dims=pca_dims), texts,
                                   work / "corpus-endpoint-method", progress=progress)
    finally:
        server.should_exit = True
        thread.join(10)
    stages = {name: v["seconds"] for name, v in distilled.stages.items()}
    print(f"corpus method over HTTP, stages: {stages}; best epoch {distilled.details.best_epoch}", flush=True)
    return save(distilled.model, "corpus_endpoint", stages), stages


def resolve_dim(teacher) -> int:
    from core.encoders.teacher import load_teacher

    st = load_teacher(teacher)
    return int(st[0].auto_model.config.hidden_size)


def tokenlearn_target(output: dict):
    """tokenlearn 0.2.1's `featurize` target, from one text's `encode(output_value=None)` output:
    `encode(output_value="token_embeddings")` keeps the rows up to the last attended token, and
    tokenlearn averages them without the first and last ([CLS], [SEP])."""
    mask = output["attention_mask"]
    kept = int(mask.nonzero().max()) + 1 if mask.any() else 1
    return output["token_embeddings"][:kept][1:-1].float().mean(dim=0).cpu().numpy()


def build_tokenlearn(teacher, texts, store, device: str, pca_dims: int):
    """tokenlearn 0.2.1 as its two commands run it (truncated texts, 56k-word vocabulary, model2vec
    distill, train_model), on our corpus and teacher, with its featurize targets taken from the
    corpus method's teacher pass instead of a second one."""
    import numpy as np
    from model2vec.distill import distill
    from tokenlearn.featurize import _truncate_text
    from tokenlearn.train import train_model
    from tokenlearn.utils import create_vocab

    from core.encoders.teacher import load_teacher

    start = time.perf_counter()
    tokenizer = load_teacher(teacher).tokenizer
    vectors = store.open("tokenlearn").take(np.arange(len(texts)))
    keep = ~np.isnan(vectors).any(axis=1)  # what collect_means_and_texts drops
    train_txt = [_truncate_text(tokenizer, t) for t, k in zip(texts, keep) if k]
    train_vec = vectors[keep]
    prepared = time.perf_counter()
    vocab = create_vocab(texts=train_txt, vocab_size=56_000)
    base = distill(model_name=teacher.source, quantize_to="float32", vocabulary=vocab, pca_dims=pca_dims)
    distilled = time.perf_counter()
    model = train_model(base, train_txt, train_vec, device=device, pca_dims=pca_dims)
    trained = time.perf_counter()
    stages = {k: round(v, 2) for k, v in
              {"prepare": prepared - start, "distill": distilled - prepared, "train": trained - distilled}.items()}
    return save(model, "tokenlearn", stages), stages


BUILD_FILE = "bench_build.json"
CORPUS_SHA = {"value": ""}  # the corpus every student of this run is built on (set in main)


def save(model, name: str, stages: dict | None = None) -> Path:
    """A bench student: a bare model2vec folder (no Distillery record), replaced whole."""
    from core import settings
    from core.files import folder_atomically, write_json

    folder = settings.data_dir() / "students" / name
    shutil.rmtree(folder, ignore_errors=True)
    with folder_atomically(folder) as tmp:
        model.save_pretrained(str(tmp))
        write_json(tmp / BUILD_FILE, {"date": date.today().isoformat(), "stages": stages or {},
                                      "corpus_sha256": CORPUS_SHA["value"]})
    return folder


def reuse_student(name: str) -> tuple[Path, dict]:
    """A baseline student built by an earlier run in this work folder (same corpus: the folder's corpus
    is reused too), with the date and stage times of its build."""
    from core import settings

    folder = settings.data_dir() / "students" / name
    if not (folder / BUILD_FILE).exists():
        raise SystemExit(f"--reuse {name}: no student built by an earlier run in {folder}")
    built = json.loads((folder / BUILD_FILE).read_text())
    if built.get("corpus_sha256") != CORPUS_SHA["value"]:
        raise SystemExit(f"--reuse {name}: that student was built on another corpus; rebuild it")
    return folder, built


def bar_figures(scores: dict, teacher: dict) -> dict:
    """Issue 17's figures for one model: the mean of task-type means without pair classification (on
    which every student beats the teacher), and retention overall, without pairs, and on retrieval."""
    from core.evaluation.verdict import summarise

    def without_pairs(source: dict) -> dict:
        kept = {t: v for t, v in source["tasks"].items() if source["task_types"][t] != "PairClassification"}
        return summarise(kept, {t: source["task_types"][t] for t in kept})

    mine, theirs = without_pairs(scores), without_pairs(teacher)
    figures = {"type_means_without_pair": mine["mean_of_types"],
               "retention": round(scores["mean_of_types"] / teacher["mean_of_types"], 4),
               "retention_without_pair": round(mine["mean_of_types"] / theirs["mean_of_types"], 4)}
    if "Retrieval" in scores["type_means"] and teacher["type_means"].get("Retrieval"):
        figures["retrieval_retention"] = round(scores["type_means"]["Retrieval"] / teacher["type_means"]["Retrieval"], 4)
    return figures


def without_flattering(scores: dict) -> dict:
    """The same summary without the sets that flatter students (FLATTERING)."""
    from core.evaluation.verdict import summarise

    kept = {t: v for t, v in scores["tasks"].items() if t not in FLATTERING}
    return summarise(kept, {t: scores["task_types"][t] for t in kept})


def print_table(results: dict) -> None:
    models = list(results["models"])
    tasks = list(results["models"]["teacher"]["tasks"])
    width = max(len(t) for t in tasks + ["mean of types (no flattering)"]) + 2
    print("\n" + "task".ljust(width) + "".join(m.rjust(12) for m in models))
    for task in tasks:
        print(task.ljust(width) + "".join(f"{results['models'][m]['tasks'].get(task, float('nan')):12.2f}" for m in models))
    for kind in results["models"]["teacher"]["type_means"]:
        print(f"[{kind}]".ljust(width) + "".join(f"{results['models'][m]['type_means'].get(kind, float('nan')):12.2f}"
                                              for m in models))
    for label, source in (("mean of types", results["models"]),
                          ("mean of types (no flattering)", results["without_flattering_sets"])):
        teacher = source["teacher"]["mean_of_types"]
        print(label.ljust(width) + "".join(f"{source[m]['mean_of_types']:12.2f}" for m in models))
        print("  % of teacher".ljust(width) + "".join(f"{100 * source[m]['mean_of_types'] / teacher:11.1f}%"
                                                       for m in models))
    print(f"\ncost: {results['cost']}")
    print(f"stages (s): {results['stages']}")


if __name__ == "__main__":
    main()
