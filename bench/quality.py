"""Quality of the corpus method against vocabulary-only distillation, tokenlearn 0.2.1 and the teacher.

    .venv/bin/python bench/quality.py [--corpus-size 100000] [--models vocabulary,tokenlearn,corpus]

In one run, on one corpus drawn at the default plan (30/30/20/10/10) from ../shared/data/corpus:
  (a) vocabulary: the product's vocabulary method (model2vec.distill + corpus words), pca_dims=256;
  (b) tokenlearn: tokenlearn 0.2.1's vocabulary, distill and train_model on the same corpus and teacher,
      its featurize targets (mean of the last-layer token states) computed in the corpus method's
      teacher pass, as the issue allows (installed by
      `pip install --no-deps tokenlearn==0.2.1 more-itertools`, never by the app);
  (c) corpus: Distillery's corpus method (core.corpus_method), pca_dims=256;
and the teacher itself, all scored on the development sets in ../shared/data/eval (core.evaluation).

Cost: the teacher's bare `encode` over the whole corpus is timed (`--bare-sample N` times N texts and
scales up, for slow CPUs), and the corpus method's stage times are compared with it.
Prints one table and writes bench/results/quality.json (or --out).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

MODELS = ("vocabulary", "tokenlearn", "corpus")


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
    parser.add_argument("--tasks", default="", help="comma-separated task names (default: all development tasks)")
    parser.add_argument("--reuse", default="", help="comma-separated baselines (vocabulary, tokenlearn) whose "
                        "student a previous run in the same --work-dir built: scored again, not rebuilt; the "
                        "results say so and keep the build's date and stage times")
    parser.add_argument("--cost-from", type=Path, default=None,
                        help="a quality.json whose run measured the cost on this corpus and machine: its cost "
                        "and stage times are carried over (labelled), and the bare encode is not timed again; "
                        "for a run that resumes the stored teacher targets in --work-dir")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "quality.json")
    args = parser.parse_args()
    wanted = [m for m in args.models.split(",") if m]
    requested = list(wanted)  # before --reuse removes any: a reused tokenlearn keeps the same teacher pass (and key)
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="distillery-quality-"))
    work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("DISTILLERY_DATA_DIR", str(work / "data"))

    from core.corpus import Corpus, build_corpus
    from core.distill import DistillParams
    from core.progress import TqdmProgress
    from core.recipe import Recipe
    from core.sources import load_catalogue
    from core.teacher import DEFAULT_TEACHER, load_teacher, resolve_teacher

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
    params = DistillParams(pca_dims=args.pca_dims)
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
        students["vocabulary"], results["stages"]["vocabulary"] = build_vocabulary(teacher, params, texts, progress)
    if "corpus" in wanted or "tokenlearn" in wanted:  # one teacher pass also gives tokenlearn's targets
        model_dir, results["stages"]["corpus"], results["training"], store = build_corpus_model(
            teacher, params, texts, work, progress, with_tokenlearn="tokenlearn" in requested)
        if "corpus" in wanted:
            students["corpus"] = model_dir
        total = sum(results["stages"]["corpus"].values())
        results["cost"].update({"corpus_method_seconds": round(total, 2), "ratio_to_bare_encode": round(total / bare, 3),
                                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)})
    if "tokenlearn" in wanted:
        students["tokenlearn"], results["stages"]["tokenlearn"] = build_tokenlearn(teacher, texts, store, device,
                                                                                    args.pca_dims)
    progress.close()
    if earlier:
        results["cost"] = {**earlier["cost"], "measured_by": f"the run of {earlier['date']} ({earlier['command']}); "
                           "this run resumed its stored teacher targets"}
        results["stages_this_run"], results["stages"] = results["stages"], earlier["stages"]

    from core.evaluation import DEV_TASKS

    tasks = tuple(t for t in DEV_TASKS if not args.tasks or t.name in args.tasks.split(","))
    results["models"]["teacher"] = score_teacher(teacher, tasks)
    for name, model_dir in students.items():
        results["models"][name] = score_student(name, model_dir, tasks)
    results.update({
        "corpus_size": len(texts), "date": date.today().isoformat(),
        "machine": args.machine or describe_machine(device), "teacher": teacher.name, "pca_dims": args.pca_dims,
        "corpus_manifest": {k: corpus.manifest.get(k) for k in ("requested", "realised", "shortfalls", "content_sha256")},
        "command": "python bench/quality.py " + " ".join(sys.argv[1:]),
    })
    print_table(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out}")


def bare_encode_seconds(st, texts: list[str], sample: int) -> float:
    """The baseline the cost target is measured against: one plain `encode` call over the corpus."""
    import random

    chosen = random.Random(0).sample(texts, sample) if 0 < sample < len(texts) else texts
    from core.featurize import default_batch_size

    batch = default_batch_size(st.device)  # the batch size featurize uses, so the two are comparable
    st.encode(chosen[:batch], batch_size=batch)  # warm-up
    start = time.perf_counter()
    st.encode(chosen, batch_size=batch, show_progress_bar=True)
    return (time.perf_counter() - start) * len(texts) / len(chosen)


def build_vocabulary(teacher, params, texts, progress):
    from core.distill import distill_vocabulary
    from core.teacher import load_teacher
    from core.vocabulary import corpus_vocabulary

    start = time.perf_counter()
    words = corpus_vocabulary(texts, load_teacher(teacher).tokenizer, params.max_vocabulary_size, params.min_frequency)
    model = distill_vocabulary(teacher, params, words, progress)
    stages = {"distill": round(time.perf_counter() - start, 2)}
    return save(model, "vocabulary", stages), stages


def build_corpus_model(teacher, params, texts, work: Path, progress, with_tokenlearn: bool = True):
    """Our corpus method; its teacher pass also computes tokenlearn's targets (see `tokenlearn_target`)
    when tokenlearn is built too (which makes that pass slower than the product's own)."""
    from dataclasses import replace

    from core.corpus_method import distill_corpus
    from core.distill import CORPUS_SIF_COEFFICIENT

    dim = resolve_dim(teacher)
    params = replace(params, sif_coefficient=CORPUS_SIF_COEFFICIENT)
    result = distill_corpus(teacher, params, texts, work / "corpus-method", progress=progress,
                            extra=[("tokenlearn", dim, tokenlearn_target)] if with_tokenlearn else ())
    print(f"corpus method stages: {result.stages}; best epoch {result.best_epoch}", flush=True)
    training = {"history": result.history, "best_epoch": result.best_epoch, "vocabulary_added": result.vocabulary_added,
                "start_share": params.start_share}
    return save(result.model, "corpus", result.stages), result.stages, training, result.targets


def resolve_dim(teacher) -> int:
    from core.teacher import load_teacher

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

    from core.teacher import load_teacher

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
    from core import settings

    folder = settings.data_dir() / "students" / name
    shutil.rmtree(folder, ignore_errors=True)
    model.save_pretrained(str(folder))
    (folder / BUILD_FILE).write_text(json.dumps({"date": date.today().isoformat(), "stages": stages or {},
                                                 "corpus_sha256": CORPUS_SHA["value"]}))
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


def score_teacher(teacher, tasks) -> dict:
    from core.embedders import Embedder, load_teacher
    from core.evaluation import EvalModel, evaluate
    from core.progress import TqdmProgress

    st = load_teacher(teacher)
    batch = 256 if str(st.device).startswith("cuda") else 64

    def side(prompt_name: str) -> Embedder:
        prompt = teacher.prompts.get(prompt_name)
        return Embedder(f"teacher/{prompt_name}", f"{teacher.fingerprint}|{prompt}",
                        lambda t: st.encode(list(t), prompt=prompt, batch_size=batch, normalize_embeddings=True,
                                            convert_to_numpy=True), 0)

    return evaluate(EvalModel("teacher", side("query"), side("document")), tasks, progress=TqdmProgress())


def score_student(name: str, model_dir: Path, tasks) -> dict:
    from core.embedders import student_embedder
    from core.evaluation import EvalModel, evaluate
    from core.progress import TqdmProgress

    embedder = student_embedder(model_dir)
    embedder.fingerprint = f"{embedder.fingerprint}|{time.time()}"  # never reuse a cache across rebuilt models
    return evaluate(EvalModel(name, embedder, embedder), tasks, progress=TqdmProgress())


def describe_machine(device: str) -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    text = f"{os.cpu_count()} cores ({cpu})"
    if device.startswith("cuda"):
        import torch

        text += f", GPU {torch.cuda.get_device_name(0)}"
    return text


def print_table(results: dict) -> None:
    models = list(results["models"])
    tasks = list(results["models"]["teacher"]["tasks"])
    width = max(len(t) for t in tasks) + 2
    print("\n" + "task".ljust(width) + "".join(m.rjust(12) for m in models))
    for task in tasks:
        print(task.ljust(width) + "".join(f"{results['models'][m]['tasks'].get(task, float('nan')):12.2f}" for m in models))
    for kind in results["models"]["teacher"]["type_means"]:
        print(f"[{kind}]".ljust(width) + "".join(f"{results['models'][m]['type_means'].get(kind, float('nan')):12.2f}"
                                              for m in models))
    print("average".ljust(width) + "".join(f"{results['models'][m]['avg']:12.2f}" for m in models))
    teacher = results["models"]["teacher"]["avg"]
    print("% of teacher".ljust(width) + "".join(f"{100 * results['models'][m]['avg'] / teacher:11.1f}%" for m in models))
    print(f"\ncost: {results['cost']}")
    print(f"stages (s): {results['stages']}")


if __name__ == "__main__":
    main()
