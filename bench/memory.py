"""Peak memory of the corpus method's post-featurize stages as the corpus grows.

    .venv/bin/python bench/memory.py [--rows 100000,1000000] [--epochs 1]

The issue's bar: under 4 GB whatever the corpus size. Featurization holds one chunk of 1,024 texts
at a time, so what grows with the corpus is the rest: the targets (float16 shards, read
memory-mapped), the tokenized corpus (flat int32 ids), the PCA directions, the least-squares initial
map and training. For each size, in a fresh process, this writes synthetic targets in exactly the
layout `core.methods.featurize` writes (shards of 8,192 rows, `order.npy`) and a tokenized corpus with
realistic lengths (log-normal, median ~70 tokens, Zipf-distributed ids over a 50k-token table), then
runs the real `top_directions`, `initial_map` and `train_table`, and reports the peak RSS after each.
The texts themselves are not held here; the job holds them as a Python list, which the table in
docs/benchmarks.md adds.

Prints a table and writes bench/results/memory.json (or --out).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench._common import RESULTS, peak_rss_mb, write_results

VOCABULARY, TEACHER_DIM, DIMS = 50_000, 384, 256


def peak_mb() -> float:
    return round(peak_rss_mb(), 1)


def write_targets(folder: Path, rows: int, rng):  # -> core.methods.featurize.TargetStore
    """Random unit vectors in float16 shards, as `core.methods.featurize` lays them out."""
    import numpy as np

    from core.files import save_array
    from core.methods.featurize import ORDER_FILE, SHARD_ROWS, TargetStore

    store = TargetStore(folder, rows, TEACHER_DIM, SHARD_ROWS)
    folder.mkdir(parents=True)
    save_array(folder / ORDER_FILE, np.arange(rows, dtype=np.int64))
    for shard, start in enumerate(range(0, rows, SHARD_ROWS)):
        block = rng.standard_normal((min(SHARD_ROWS, rows - start), TEACHER_DIM)).astype(np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        save_array(store.shard_path(shard), block.astype(np.float16))
    return store


def synthetic_corpus(rows: int, rng):
    import numpy as np

    from core.methods.training import TokenizedCorpus

    lengths = np.clip(rng.lognormal(np.log(70), 0.6, rows), 3, 256).astype(np.int64)
    offsets = np.zeros(rows + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    ids = (rng.zipf(1.2, int(offsets[-1])) % VOCABULARY).astype(np.int32)
    return TokenizedCorpus(ids, offsets)


def measure(rows: int, epochs: int) -> dict:
    """One corpus size, in this process."""
    import numpy as np

    from core.methods.corpus import initial_map
    from core.methods.training import TrainParams, top_directions, train_table

    rng = np.random.default_rng(0)
    report: dict = {"rows": rows, "start_mb": peak_mb()}
    with tempfile.TemporaryDirectory(prefix="distillery-memory-") as tmp:
        clock = time.perf_counter()
        targets = write_targets(Path(tmp) / "targets", rows, rng).open()
        corpus = synthetic_corpus(rows, rng)
        report.update(tokens=int(corpus.offsets[-1]), prepared_mb=peak_mb(),
                      prepare_s=round(time.perf_counter() - clock, 1))
        table = rng.standard_normal((VOCABULARY, TEACHER_DIM)).astype(np.float32) / 20
        clock = time.perf_counter()
        target_map = top_directions(targets, DIMS)
        linear = initial_map(table, corpus, targets, target_map, seed=0)
        report.update(pca_mb=peak_mb(), pca_s=round(time.perf_counter() - clock, 1))
        clock = time.perf_counter()
        train_table(table, np.ones(VOCABULARY, np.float32), linear, target_map, corpus, targets,
                    TrainParams(epochs=epochs, patience=epochs))
        report.update(train_mb=peak_mb(), train_s=round(time.perf_counter() - clock, 1))
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default="100000,1000000")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=RESULTS / "memory.json")
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.epochs)))
        return
    results = []
    for rows in (int(r) for r in args.rows.split(",")):
        done = subprocess.run([sys.executable, __file__, "--one", str(rows), "--epochs", str(args.epochs)],
                              check=True, capture_output=True, text=True, env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(results[-1], flush=True)
    print(f"\n{'rows':>10} {'tokens':>12} {'prepared MB':>12} {'pca MB':>8} {'train MB':>9} {'train s':>8}")
    for r in results:
        print(f"{r['rows']:>10,} {r['tokens']:>12,} {r['prepared_mb']:>12} {r['pca_mb']:>8} {r['train_mb']:>9} "
              f"{r['train_s']:>8}")
    write_results(args.out, {"epochs": args.epochs, "results": results})


if __name__ == "__main__":
    main()
