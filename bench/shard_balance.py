"""What each featurize shard costs the teacher, in the shard layout `featurize` writes (runs of the
length order dealt to every shard, `core.methods.featurize.encode_order`) and in the one it replaced
(shard 0 the longest texts, the last the shortest), and what that does to a fanned-out pass.

    python bench/shard_balance.py [--texts 10000] [--shard-rows 1024] [--corpus-dir DIR] [--teacher NAME]

On one seeded sample of a corpus built by `core`, each layout's shards are encoded one after the other
exactly as `featurize` encodes a shard (chunks of `CHUNK_ROWS`, the method's batch size), each timed.
Prints per layout the total, the costliest shard against the mean and the pass's wall time with 1, 2, 4
and 8 consumers taking the shards in order (each next shard to the first consumer free, as the queue
hands them out), computed from the measured shard times; writes `bench/results/shard_balance.json`.
"""

from __future__ import annotations

import argparse
import heapq
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import RESULTS, write_results  # noqa: E402

CONSUMERS = (1, 2, 4, 8)


def pass_seconds(shard_seconds: list[float], consumers: int) -> float:
    """The wall time of shards handed out in order, each to the first of `consumers` free."""
    free = [0.0] * consumers
    for seconds in shard_seconds:
        heapq.heappush(free, heapq.heappop(free) + seconds)
    return max(free)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--texts", type=int, default=10_000)
    parser.add_argument("--shard-rows", type=int, default=1024)
    parser.add_argument("--corpus-dir", type=Path, help="a corpus built by core; default: build one")
    parser.add_argument("--teacher", default=None, help="default: the bundled teacher")
    parser.add_argument("--out", type=Path, default=RESULTS / "shard_balance.json")
    args = parser.parse_args()

    import numpy as np
    from tqdm import tqdm

    from core.corpus.build import Corpus, build_corpus
    from core.corpus.sources import load_catalogue
    from core.encoders.teacher import load_teacher, resolve_teacher
    from core.methods.featurize import CHUNK_ROWS, default_batch_size, encode_order
    from core.recipe import Recipe

    corpus_dir = args.corpus_dir or build_corpus(
        Recipe(corpus_size=args.texts).corpus_plan(load_catalogue()),
        Path(tempfile.mkdtemp(prefix="distillery-shards-")) / "corpus").folder
    texts = Corpus.load(corpus_dir).texts()
    texts = random.Random(0).sample(texts, min(args.texts, len(texts)))
    teacher = resolve_teacher(args.teacher)
    model = load_teacher(teacher)
    batch_size = default_batch_size(model.device)
    prompt = teacher.prompts.get("document")
    lengths = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
    layouts = {"longest shard first (before)": np.argsort(-lengths, kind="stable"),
               "dealt runs (featurize)": encode_order(lengths, args.shard_rows)}
    runs: dict[str, dict] = {}
    for name, order in layouts.items():
        seconds = []
        for first in tqdm(range(0, len(order), args.shard_rows), desc=name, unit="shard"):
            rows = order[first:first + args.shard_rows]
            started = time.perf_counter()
            for chunk in range(0, len(rows), CHUNK_ROWS):
                model.encode([texts[i] for i in rows[chunk:chunk + CHUNK_ROWS]], batch_size=batch_size,
                             prompt=prompt, convert_to_numpy=True, show_progress_bar=False)
            seconds.append(time.perf_counter() - started)
        full = seconds[:-1] if len(order) % args.shard_rows else seconds  # a partial last shard is smaller
        total = sum(seconds)
        runs[name] = {"total_seconds": round(total, 2), "shard_seconds": [round(s, 2) for s in seconds],
                      "costliest_over_mean": round(max(seconds) / float(np.mean(full)), 3),
                      "pass_seconds": {str(k): round(pass_seconds(seconds, k), 2) for k in CONSUMERS},
                      "speedup": {str(k): round(total / pass_seconds(seconds, k), 3) for k in CONSUMERS}}
    header = " | ".join(f"{k} consumer{'s' if k > 1 else ''}" for k in CONSUMERS)
    print(f"\n| layout | total s | costliest shard / mean | {header} |\n|---|---:|---:|" + "---:|" * len(CONSUMERS))
    for name, run in runs.items():
        cells = " | ".join(f"{run['pass_seconds'][str(k)]:.0f} s ({run['speedup'][str(k)]:.2f}×)" for k in CONSUMERS)
        print(f"| {name} | {run['total_seconds']:.1f} | {run['costliest_over_mean']:.2f} | {cells} |")
    write_results(args.out, {"teacher": teacher.name, "texts": len(texts), "shard_rows": args.shard_rows,
                             "device": str(model.device), "batch_size": batch_size, "layouts": runs},
                  str(model.device))


if __name__ == "__main__":
    main()
