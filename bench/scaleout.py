"""The teacher pass fanned out over huey consumers on Redis (`jobs.shards`): speed-up and overhead.

    python bench/scaleout.py [--texts 30000] [--consumers 1,2] [--shard-rows 8192] [--corpus-dir DIR]

On one corpus of `--texts` texts and the default teacher (MiniLM), each process limited to one thread:
the bare teacher `encode` of the texts (longest first over the whole sample: the least padding; the baseline),
then for each count N in `--consumers` a corpus-method job's featurization through a fresh
`redis-server`: the job's own process (it takes shards while it waits, as a job task does) and N - 1
huey consumers started beside it, the shards in a shared data folder. Writes
bench/results/scaleout.json: per N the seconds, texts per second and shards per worker, and
`speedup_2_vs_1` (featurization with 1 consumer over with 2), `overhead_per_shard_seconds` (seconds a
shard costs beyond the bare encode: the 1-consumer featurization minus the bare encode, over the shards;
leases, result round trips, float16 shards on disk) and `overhead_per_shard` (that as a fraction of a
shard's bare encode time). A consumer's first shard includes its teacher load.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import RESULTS, ROOT, write_results  # noqa: E402

ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--texts", type=int, default=30_000)
    parser.add_argument("--consumers", default="1,2")
    parser.add_argument("--shard-rows", type=int, default=None, help="default: the product's (8192)")
    parser.add_argument("--corpus-dir", type=Path, help="a corpus built by core; default: build one")
    parser.add_argument("--out", type=Path, default=RESULTS / "scaleout.json")
    parser.add_argument("--drive", help=argparse.SUPPRESS)  # internal: one run, in a process bound to Redis
    args = parser.parse_args()
    if args.drive:
        print(json.dumps(drive(json.loads(args.drive))), flush=True)
        return

    from core.corpus.build import build_corpus
    from core.corpus.sources import load_catalogue
    from core.methods.featurize import SHARD_ROWS
    from core.recipe import Recipe

    work = Path(tempfile.mkdtemp(prefix="distillery-scaleout-"))
    corpus_dir = args.corpus_dir or build_corpus(
        Recipe(corpus_size=args.texts).corpus_plan(load_catalogue()), work / "corpus").folder
    shard_rows = args.shard_rows or SHARD_ROWS
    bare = run_driver({"mode": "bare", "corpus": str(corpus_dir), "texts": args.texts}, {})
    print(f"bare encode: {bare['seconds']:.1f} s for {bare['texts']:,} texts")
    runs = {}
    for n in (int(c) for c in args.consumers.split(",")):
        runs[str(n)] = fanned(n, corpus_dir, args.texts, shard_rows, work / f"run-{n}")
        print(f"{n} consumer(s): {runs[str(n)]['seconds']:.1f} s, by worker {runs[str(n)]['shards_by_worker']}")
    result = {"teacher": bare["teacher"], "texts": bare["texts"], "shard_rows": shard_rows,
              "shards": -(-bare["texts"] // shard_rows), "threads_per_process": 1,
              "bare_encode_seconds": bare["seconds"], "runs": runs}
    if "1" in runs:  # seconds a shard costs beyond its bare encode, and that as a fraction of it
        extra = (runs["1"]["seconds"] - bare["seconds"]) / result["shards"]
        result["overhead_per_shard_seconds"] = round(extra, 3)
        result["overhead_per_shard"] = round(extra / (bare["seconds"] / result["shards"]), 4)
    if "1" in runs and "2" in runs:
        result["speedup_2_vs_1"] = round(runs["1"]["seconds"] / runs["2"]["seconds"], 3)
    write_results(args.out, result)


def fanned(n: int, corpus_dir: Path, texts: int, shard_rows: int, folder: Path) -> dict:
    """One featurization through Redis with the job's process and `n - 1` consumers."""
    import shutil
    import socket

    folder.mkdir(parents=True)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    redis = subprocess.Popen([shutil.which("redis-server") or "redis-server", "--port", str(port), "--bind",
                              "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(folder)],
                             stdout=subprocess.DEVNULL)
    try:
        env = {"DISTILLERY_REDIS_URL": f"redis://127.0.0.1:{port}/0", "DISTILLERY_DATA_DIR": str(folder / "data"),
               "DISTILLERY_SHARD_ROWS": str(shard_rows)}
        time.sleep(0.5)
        return run_driver({"mode": "fanned", "corpus": str(corpus_dir), "texts": texts, "consumers": n - 1}, env)
    finally:
        redis.terminate()
        redis.wait(10)


def run_driver(spec: dict, env: dict[str, str]) -> dict:
    done = subprocess.run([sys.executable, __file__, "--drive", json.dumps(spec)], cwd=ROOT, text=True,
                          env={**os.environ, **ONE_THREAD, **env}, stdout=subprocess.PIPE, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def drive(spec: dict) -> dict:
    """In a process of its own (bound to Redis when fanned): the bare encode, or one fanned-out featurize."""
    import numpy as np
    import torch

    torch.set_num_threads(1)
    from core.corpus.build import CORPUS_FILE, MANIFEST_FILE, Corpus
    from core.encoders.teacher import load_teacher, resolve_teacher
    from core.methods.featurize import default_batch_size, fanning_out, featurize, featurize_key

    texts = Corpus.load(Path(spec["corpus"])).texts()
    texts = random.Random(0).sample(texts, min(spec["texts"], len(texts)))
    teacher = resolve_teacher(None)
    model = load_teacher(teacher)
    prompt = teacher.prompts.get("document")
    if spec["mode"] == "bare":
        order = np.argsort(-np.fromiter((len(t) for t in texts), dtype=np.int64), kind="stable")
        started = time.perf_counter()
        model.encode([texts[i] for i in order], batch_size=default_batch_size(model.device), prompt=prompt,
                     convert_to_numpy=True, show_progress_bar=False)
        return {"teacher": teacher.name, "texts": len(texts), "seconds": round(time.perf_counter() - started, 2)}

    from core import settings
    from core.files import write_json
    from jobs.shards import QueueFanout
    from jobs.status import Heartbeat, live_consumers, write_status
    from jobs.worker import start_consumer, stop_consumer

    job_id = "scaleout-bench"
    job_dir = settings.jobs_dir() / job_id
    job_dir.mkdir(parents=True)
    corpus = job_dir / "corpus"  # where a consumer reads the texts from (`jobs.shards`): the sample
    corpus.mkdir()
    with (corpus / CORPUS_FILE).open("w", encoding="utf-8") as handle:
        handle.writelines(json.dumps({"text": text}) + "\n" for text in texts)
    write_json(corpus / MANIFEST_FILE, {"size": len(texts), "bench": "the sample of bench/scaleout.py"})
    write_status(job_id, state="running")
    # This process plays the consumer running the job: its heartbeat says the job is alive, as a worker's
    # does (without it the job reads as interrupted after a long shard and the consumers skip its shards).
    Heartbeat.current_job = job_id
    Heartbeat().start()
    consumers = [start_consumer(job_dir.parent / f"consumer-{i}.log") for i in range(spec["consumers"])]
    try:
        deadline = time.time() + 120
        while len(live_consumers()) < spec["consumers"] + 1 and time.time() < deadline:  # they and this one
            time.sleep(0.2)
        fanout = QueueFanout(job_id, lambda *_: None)
        started = time.perf_counter()
        with fanning_out(fanout):
            store = featurize(model, texts, job_dir / "corpus-method" / "targets",
                              featurize_key(teacher.fingerprint, texts, prompt), prompt=prompt, teacher=teacher)
        seconds = time.perf_counter() - started
    finally:
        write_status(job_id, state="done")
        for consumer in consumers:
            stop_consumer(consumer)
    counts: dict[str, int] = {}
    for worker in fanout.by.values():
        counts[worker] = counts.get(worker, 0) + 1
    return {"consumers": spec["consumers"] + 1, "seconds": round(seconds, 2),
            "texts_per_s": round(len(texts) / seconds, 1), "shards": store.shards, "shards_by_worker": counts}


if __name__ == "__main__":
    main()
