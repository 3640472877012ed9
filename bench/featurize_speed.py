"""Teacher featurization throughput (texts per second): bare `encode` vs Distillery's `featurize`.

    python bench/featurize_speed.py [--corpus-dir DIR] [--texts 20000] [--teacher FOLDER] [--random-300m]

For each model, first a sweep: the teacher's plain `encode` on `--sweep-texts` texts at each precision
(float32, and float16/bfloat16 on a GPU) and each batch size, to choose both by measurement. Then, at
the fastest setting, on the same `--texts` texts and device: bare `encode` (the baseline) and
`core.methods.featurize` (the same encode plus float16 shards on disk), and their ratio. With --random-300m
the same for an encoder of ~335M parameters (BERT-large shape) built with random weights: throughput
does not depend on the weights, so this stands in for a 300M teacher such as EmbeddingGemma where
its weights cannot travel. Writes bench/results/featurize_speed.json (or --out).
"""

from __future__ import annotations

import argparse
import os
import random
import re
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench._common import RESULTS, write_results  # noqa: E402

GPU_BATCHES = (64, 128, 256, 512, 1024)
CPU_BATCHES = (32, 64, 128)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus-dir", type=Path, help="a corpus built by core; default: build one at the default plan")
    parser.add_argument("--texts", type=int, default=20_000)
    parser.add_argument("--sweep-texts", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=2, help="runs per sweep setting (the best counts)")
    parser.add_argument("--teacher", default=None)
    parser.add_argument("--batch-sizes", default="", help="comma-separated; default: 64..1024 on a GPU, 32..128 on CPU")
    parser.add_argument("--random-300m", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS / "featurize_speed.json")
    args = parser.parse_args()

    import torch

    from core.corpus.build import Corpus, build_corpus
    from core.corpus.sources import load_catalogue
    from core.encoders.teacher import DEFAULT_TEACHER, load_teacher, resolve_teacher
    from core.recipe import Recipe

    work = Path(tempfile.mkdtemp(prefix="distillery-featurize-"))
    corpus = Corpus.load(args.corpus_dir) if args.corpus_dir else build_corpus(
        Recipe(corpus_size=args.texts).corpus_plan(load_catalogue()), work / "corpus")
    texts = corpus.texts()
    texts = random.Random(0).sample(texts, min(args.texts, len(texts)))  # every domain, not the first one
    device = "cuda" if torch.cuda.is_available() else "cpu"
    batches = tuple(int(b) for b in args.batch_sizes.split(",") if b) or (GPU_BATCHES if device == "cuda" else CPU_BATCHES)
    dtypes = ("float32", "float16", "bfloat16") if device == "cuda" else ("float32",)
    teacher = resolve_teacher(args.teacher or DEFAULT_TEACHER)
    models = {teacher.name: lambda: load_teacher(teacher, precision="float32")}
    if args.random_300m:
        models["random BERT-large shape"] = lambda: random_encoder(device, load_teacher(teacher).tokenizer)
    rows = {}
    for name, make in models.items():
        model = make()
        label = f"{name} ({count_parameters(model) / 1e6:.0f}M)"
        sweep = sweep_settings(model, texts[: args.sweep_texts], dtypes, batches, args.repeats)
        best = max(sweep, key=lambda r: r["texts_per_s"])
        model.to(getattr(torch, best["dtype"]))
        rows[label] = {"sweep": sweep, "best": {k: best[k] for k in ("dtype", "batch_size")},
                       **measure(model, texts, best["batch_size"], work / re.sub(r"\W+", "_", label), args.repeats)}
        print(f"{label}: best {best['dtype']} batch {best['batch_size']}: {rows[label]}", flush=True)
        del model
        if device == "cuda":
            torch.cuda.empty_cache()
    print_table(rows)
    write_results(args.out, {"device": device, "texts": len(texts), "sweep_texts": min(args.sweep_texts, len(texts)),
                             "models": rows}, device)


def print_table(rows: dict) -> None:
    print(f"\n{'model':40}{'dtype':>10}{'batch':>7}{'bare encode/s':>15}{'featurize/s':>13}{'ratio':>8}")
    for name, row in rows.items():
        print(f"{name:40}{row['best']['dtype']:>10}{row['best']['batch_size']:7d}"
              f"{row['bare_texts_per_s']:15.0f}{row['featurize_texts_per_s']:13.0f}{row['ratio']:8.3f}")
    for name, row in rows.items():
        print(f"\nsweep, {name} (texts/s of bare encode):")
        for r in row["sweep"]:
            print(f"  {r['dtype']:>9} batch {r['batch_size']:5d}: {r['texts_per_s']:9.0f}")


def _sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def sweep_settings(model, texts: list[str], dtypes, batches, repeats: int = 2) -> list[dict]:
    """Bare `encode` throughput at each precision and batch size, the best of `repeats` runs.

    The first run at a new batch size or precision meets new tensor shapes (kernel selection and
    allocator growth on a GPU), so a single run would favour whichever setting came later.
    """
    import torch

    out = []
    for dtype in dtypes:
        model.to(getattr(torch, dtype))
        for batch in batches:
            best = 0.0
            for _ in range(repeats):
                _sync()
                start = time.perf_counter()
                model.encode(texts, batch_size=batch)
                _sync()
                best = max(best, len(texts) / (time.perf_counter() - start))
            out.append({"dtype": dtype, "batch_size": batch, "texts_per_s": round(best, 1)})
            print(f"  sweep {dtype} batch {batch}: {out[-1]['texts_per_s']} texts/s", flush=True)
    return out


def measure(model, texts: list[str], batch: int, folder: Path, repeats: int = 2) -> dict:
    """Bare `encode` and `featurize` on the same texts, alternated, the best of `repeats` runs each
    (after a full warm-up pass, so neither meets the tensor shapes first)."""
    from core.methods.featurize import featurize

    model.encode(texts, batch_size=batch)  # warm-up over every shape
    bare, feat = float("inf"), float("inf")
    for run in range(repeats):
        _sync()
        start = time.perf_counter()
        model.encode(texts, batch_size=batch)
        _sync()
        bare = min(bare, time.perf_counter() - start)
        start = time.perf_counter()
        featurize(model, texts, folder / f"run{run}", key="speed", batch_size=batch)  # a fresh folder: no resuming
        _sync()
        feat = min(feat, time.perf_counter() - start)
    return {"bare_seconds": round(bare, 2), "featurize_seconds": round(feat, 2),
            "bare_texts_per_s": round(len(texts) / bare, 1), "featurize_texts_per_s": round(len(texts) / feat, 1),
            "ratio": round(bare / feat, 3)}


def random_encoder(device: str, tokenizer):
    """A BERT-large-shaped sentence encoder (~335M parameters) with random weights, mean pooling, and
    the teacher's tokenizer (so it reads the same token sequences)."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    from transformers import BertConfig, BertModel

    folder = Path(tempfile.mkdtemp(prefix="random-bert-"))
    tokenizer.save_pretrained(folder)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                        intermediate_size=4096, max_position_embeddings=512)
    BertModel(config).save_pretrained(folder)
    transformer = Transformer(str(folder), max_seq_length=256)
    pooling = Pooling(transformer.get_embedding_dimension(), "mean")
    return SentenceTransformer(modules=[transformer, pooling, Normalize()], device=device)


def count_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())


if __name__ == "__main__":
    main()
