"""The corpus method's cost against a bare teacher encode, with the stages that need no targets run
alongside the teacher pass (the product's default) and before it (the sequential schedule).

    python bench/alongside.py [--texts 20000] [--corpus-dir DIR] [--teacher NAME_OR_FOLDER] [--pca-dims 256]
                              [--schedules sequential,alongside]

In one process, on one sample of a corpus built by `core`: a bare `SentenceTransformer.encode` of the
sample (longest first over the whole sample, the least padding, at the method's batch size), then
`core.methods.corpus.distill` with `alongside_teacher=False` and with `alongside_teacher=True` (or the
`--schedules` named), each embedding the whole sample (no shard library, fresh targets). Prints and
writes `bench/results/alongside.json`: per schedule the wall time of the method, its ratio to the bare
encode, the stage times and the wait after the teacher pass, and `saved_seconds` (sequential minus
alongside, when both ran). The ratio on a GPU is the figure the issue asks (`bench/gpu_figures.sh
alongside` on a lent machine); on a CPU the teacher already uses every core.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import RESULTS, describe_machine, write_results  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--texts", type=int, default=20_000)
    parser.add_argument("--corpus-dir", type=Path, help="a corpus built by core; default: build one")
    parser.add_argument("--teacher", default=None, help="default: the bundled teacher")
    parser.add_argument("--pca-dims", type=int, default=256)
    parser.add_argument("--schedules", default="sequential,alongside",
                        help="comma-separated: sequential, alongside (one of them halves a long run)")
    parser.add_argument("--out", type=Path, default=RESULTS / "alongside.json")
    args = parser.parse_args()
    os.environ["DISTILLERY_SHARD_LIBRARY"] = "off"  # every run embeds the sample itself

    import numpy as np

    from core.corpus.build import Corpus, build_corpus
    from core.corpus.sources import load_catalogue
    from core.encoders.teacher import load_teacher, resolve_teacher
    from core.methods import corpus as method
    from core.methods.featurize import default_batch_size
    from core.progress import TqdmProgress, wall_seconds
    from core.recipe import Recipe

    work = Path(tempfile.mkdtemp(prefix="distillery-alongside-"))
    corpus_dir = args.corpus_dir or build_corpus(
        Recipe(corpus_size=args.texts).corpus_plan(load_catalogue()), work / "corpus").folder
    texts = Corpus.load(corpus_dir).texts()
    texts = random.Random(0).sample(texts, min(args.texts, len(texts)))
    teacher = resolve_teacher(args.teacher)
    model = load_teacher(teacher)
    prompt = teacher.prompts.get("document")
    order = np.argsort(-np.fromiter((len(t) for t in texts), dtype=np.int64), kind="stable")
    started = time.perf_counter()
    model.encode([texts[i] for i in order], batch_size=default_batch_size(model.device), prompt=prompt,
                 convert_to_numpy=True, show_progress_bar=False)
    bare = time.perf_counter() - started
    print(f"bare encode: {bare:.1f} s for {len(texts):,} texts on {model.device}", flush=True)

    params = method.CorpusParams(pca_dims=args.pca_dims)
    runs = {}
    schedules = {"sequential": False, "alongside": True}
    chosen = [name.strip() for name in args.schedules.split(",") if name.strip()]
    if not chosen or any(name not in schedules for name in chosen):
        parser.error(f"--schedules takes {', '.join(schedules)}; got {args.schedules!r}")
    for name in chosen:
        concurrent = schedules[name]
        progress = TqdmProgress()
        started = time.perf_counter()
        distilled = method.distill(teacher, params, texts, work / name, progress=progress,
                                   alongside_teacher=concurrent)
        seconds = time.perf_counter() - started
        progress.close()
        stages = distilled.stages
        runs[name] = {"seconds": round(seconds, 2), "ratio_to_bare_encode": round(seconds / bare, 3),
                      "stage_wall_seconds": round(wall_seconds(stages), 2),
                      "overlap_wait_seconds": stages.get("overlap_wait", {}).get("seconds"),
                      "stages": {n: v["seconds"] for n, v in stages.items()}}
        print(f"{name}: {seconds:.1f} s, {seconds / bare:.3f}x the bare encode; stages {runs[name]['stages']}",
              flush=True)
    device = str(model.device)
    result = {"teacher": teacher.name, "texts": len(texts), "device": device, "machine": describe_machine(device),
              "bare_encode_seconds": round(bare, 2), "runs": runs,
              "saved_seconds": (round(runs["sequential"]["seconds"] - runs["alongside"]["seconds"], 2)
                                if len(runs) == 2 else None)}
    print(f"\n| schedule | method s | × bare encode ({bare:.1f} s) | wait after the teacher pass s |\n|---|---:|---:|---:|")
    for name, run in runs.items():
        print(f"| {name} | {run['seconds']:.1f} | {run['ratio_to_bare_encode']:.3f} | "
              f"{run['overlap_wait_seconds'] if run['overlap_wait_seconds'] is not None else '–'} |")
    write_results(args.out, result, device)


if __name__ == "__main__":
    main()
