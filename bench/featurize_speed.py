"""Teacher featurization throughput (texts per second): bare `encode` vs Distillery's `featurize`.

    python bench/featurize_speed.py [--corpus-dir DIR] [--texts 20000] [--teacher FOLDER] [--random-300m]

Times, on the same texts and device: the teacher's plain `encode` (the baseline), `core.featurize`
(the same encode plus float16 shards on disk), and, with --random-300m, the same pair for an encoder
of ~300M parameters (BERT-large shape) built with random weights: throughput does not depend on the
weights, so this stands in for a 300M teacher such as EmbeddingGemma where its weights cannot travel.
Writes bench/results/featurize_speed.json (or --out).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus-dir", type=Path, help="a corpus built by core; default: build one at the default plan")
    parser.add_argument("--texts", type=int, default=20_000)
    parser.add_argument("--teacher", default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--random-300m", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "featurize_speed.json")
    args = parser.parse_args()

    import torch

    from bench.quality import describe_machine
    from core.corpus import Corpus, build_corpus
    from core.recipe import Recipe
    from core.sources import load_catalogue
    from core.teacher import DEFAULT_TEACHER, load_teacher, resolve_teacher

    work = Path(tempfile.mkdtemp(prefix="distillery-featurize-"))
    corpus = Corpus.load(args.corpus_dir) if args.corpus_dir else build_corpus(
        Recipe(corpus_size=args.texts).corpus_plan(load_catalogue()), work / "corpus")
    texts = corpus.texts()[: args.texts]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    batch = args.batch_size or (256 if device == "cuda" else 64)
    rows = {}
    teacher = resolve_teacher(args.teacher or DEFAULT_TEACHER)
    rows[f"{teacher.name} ({count_parameters(load_teacher(teacher)) / 1e6:.0f}M)"] = measure(
        load_teacher(teacher), texts, batch, work / "t1")
    if args.random_300m:
        model = random_encoder(device)
        rows[f"random BERT-large shape ({count_parameters(model) / 1e6:.0f}M)"] = measure(model, texts, batch, work / "t2")
    result = {"date": date.today().isoformat(), "machine": describe_machine(device), "device": device,
              "texts": len(texts), "batch_size": batch, "models": rows,
              "command": "python bench/featurize_speed.py " + " ".join(sys.argv[1:])}
    print(f"\n{'model':44}{'bare encode/s':>15}{'featurize/s':>13}{'ratio':>8}")
    for name, row in rows.items():
        print(f"{name:44}{row['bare_texts_per_s']:15.0f}{row['featurize_texts_per_s']:13.0f}{row['ratio']:8.3f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


def measure(model, texts: list[str], batch: int, folder: Path) -> dict:
    import torch

    from core.featurize import featurize

    def sync() -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()

    model.encode(texts[:512], batch_size=batch)  # warm-up
    sync()
    start = time.perf_counter()
    model.encode(texts, batch_size=batch)
    sync()
    bare = time.perf_counter() - start
    start = time.perf_counter()
    featurize(model, texts, folder, key="speed", batch_size=batch)
    sync()
    feat = time.perf_counter() - start
    return {"bare_seconds": round(bare, 2), "featurize_seconds": round(feat, 2),
            "bare_texts_per_s": round(len(texts) / bare, 1), "featurize_texts_per_s": round(len(texts) / feat, 1),
            "ratio": round(bare / feat, 3)}


def random_encoder(device: str):
    """A BERT-large-shaped sentence encoder (~335M parameters) with random weights, mean pooling."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    from transformers import BertConfig, BertModel

    from core.teacher import DEFAULT_TEACHER, load_teacher, resolve_teacher

    folder = Path(tempfile.mkdtemp(prefix="random-bert-"))
    load_teacher(resolve_teacher(DEFAULT_TEACHER)).tokenizer.save_pretrained(folder)
    config = BertConfig(vocab_size=30522, hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                        intermediate_size=4096, max_position_embeddings=512)
    BertModel(config).save_pretrained(folder)
    transformer = Transformer(str(folder), max_seq_length=256)
    pooling = Pooling(transformer.get_embedding_dimension(), "mean")
    return SentenceTransformer(modules=[transformer, pooling, Normalize()], device=device)


def count_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())


if __name__ == "__main__":
    main()
