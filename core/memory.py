"""A recipe's peak memory, estimated before it is queued, and the memory this machine has for it.

One owner for the estimate: `estimate_peak(recipe, teacher)` runs through the stages the recipe's
method runs (`core.pipeline.stage_plan`'s names) and costs each from what was measured, as a line in
the corpus size, plus what a larger teacher or vocabulary adds; the job's peak is the largest stage.
`check_memory` refuses a recipe whose peak exceeds `available_mb()` (the app's submit and
`python -m core` call it before anything is queued or run).

Where the figures come from (MB here are MiB, as `core.progress.peak_rss_mb` reports them):

- corpus and featurize: `bench/pipeline.py` (bench/results/pipeline.json; corpus method, default
  parameters, MiniLM, 10,000 to 78,506 texts): least-squares lines through each stage's peak RSS.
  Featurize grows by about 4.2 MB per 1,000 texts (its length sort holds every text's tokens); the
  line is extrapolated past 78,506 texts, so large corpora are the least certain part.
- pca and train (corpus method): `bench/memory.py` (bench/results/memory.json; 100,000 and 1,000,000
  texts, a 50,000 × 384 table, no teacher and no texts list in the process), plus the texts the job
  holds (about 0.7 MB per 1,000 texts, docs/benchmarks.md) and the teacher's weights.
- vocabulary and distill (vocabulary method), and index: bench/studio.py's job (bench/results/
  studio.json; vocabulary method, 20,000 texts, MiniLM): 628.6 MB and 1,532.1 MB, less the texts.
  Those readings are the process's peak so far, so they bound the stage from above.

A teacher larger than MiniLM adds its weights' size (held in float32) to the stages that hold it;
a vocabulary × teacher-dimension table larger than the measured 50,000 × 384 adds its size once per
copy the stage holds (model2vec's distill: the embeddings, their PCA and the output, 3; training:
the table, its start, its gradient and Adam's two moments, 5). Those two are reasoned, not measured.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from core.encoders.teacher import TeacherInfo
from core.errors import DistilleryError
from core.recipe import Recipe

MB = 1024 * 1024
TEXTS_MB_PER_1K = 0.7  # a Python list of ~100-word passages (docs/benchmarks.md, "Peak memory")
REFERENCE_TEACHER_MB = 86.7  # all-MiniLM-L6-v2's model.safetensors (90,868,376 bytes), every figure's teacher
REFERENCE_VOCABULARY = 30_522 + 20_000  # MiniLM's tokenizer plus the default 20,000 corpus words
REFERENCE_DIMENSION = 384
MEMORY_LIMIT_ENV = "DISTILLERY_MEMORY_LIMIT_MB"


@dataclass(frozen=True)
class StageMemory:
    """A stage's peak RSS as `fixed_mb + per_1k_mb × texts / 1000`, for the reference teacher and table."""

    fixed_mb: float
    per_1k_mb: float
    holds_teacher: bool
    table_copies: int  # vocabulary × dimension float32 tables the stage holds at its peak


STAGE_MEMORY: dict[str, StageMemory] = {
    "corpus": StageMemory(214.3, 0.31, False, 0),  # pipeline.json corpus stage, line fit
    "vocabulary": StageMemory(614.6, TEXTS_MB_PER_1K, True, 0),  # studio.json: 628.6 MB at 20,000 texts
    "distill": StageMemory(1518.1, TEXTS_MB_PER_1K, True, 3),  # studio.json: 1,532.1 MB at 20,000 texts
    "featurize": StageMemory(1530.5, 4.208, True, 0),  # pipeline.json featurize stage, line fit
    "weights": StageMemory(564.2, 1.063 + TEXTS_MB_PER_1K, True, 1),  # as pca: counts and the table
    "pca": StageMemory(564.2, 1.063 + TEXTS_MB_PER_1K, True, 1),  # memory.json "pca_mb", line fit, + texts
    "train": StageMemory(849.6, 1.079 + TEXTS_MB_PER_1K, True, 5),  # memory.json "train_mb", line fit, + texts
    "index": StageMemory(1518.1, TEXTS_MB_PER_1K, True, 0),  # the teacher and the collection (studio.json)
}  # "save" writes what the stages before it held: never the peak


@dataclass(frozen=True)
class MemoryEstimate:
    recipe_method: str
    texts: int
    stages: dict[str, float]  # MB per stage

    @property
    def peak_mb(self) -> float:
        return max(self.stages.values())

    @property
    def peak_stage(self) -> str:
        return max(self.stages, key=lambda name: self.stages[name])

    def describe(self) -> str:
        """'the corpus method on 2,000,000 texts: featurize 9.7 GB, train 4.3 GB, …' (the three largest)."""
        parts = sorted(self.stages.items(), key=lambda item: -item[1])[:3]
        return f"the {self.recipe_method} method on {self.texts:,} texts: " + ", ".join(
            f"{name} {gb(mb)}" for name, mb in parts)


def gb(mb: float) -> str:
    return f"{mb / 1024:,.1f} GB"


def teacher_weights_mb(teacher: TeacherInfo) -> float | None:
    """The teacher's weights as loaded (float32), from its folder's files; None for a teacher without one."""
    folder = Path(teacher.source)
    if not folder.is_dir():
        return None
    files = [p for pattern in ("*.safetensors", "pytorch_model*.bin") for p in folder.glob(pattern)]
    if not files:
        return None
    size = sum(p.stat().st_size for p in files) / MB
    dtype = str(_config(folder).get("torch_dtype") or _config(folder).get("dtype") or "")
    return size * 2 if dtype in ("float16", "bfloat16") else size  # loaded as float32


def teacher_vocabulary(teacher: TeacherInfo) -> int | None:
    vocabulary = _config(Path(teacher.source)).get("vocab_size")
    return int(vocabulary) if isinstance(vocabulary, int) else None


def _config(folder: Path) -> dict:
    try:
        data = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return {}
    return data.get("text_config", data) if isinstance(data, dict) else {}


def estimate_peak(recipe: Recipe, teacher: TeacherInfo) -> MemoryEstimate:
    """Peak memory per stage of `recipe` (MB), by method, corpus size, teacher and vocabulary."""
    from core.pipeline import stage_plan  # the pipeline imports the methods; this module stays light

    texts = int(recipe.corpus_size)
    weights = teacher_weights_mb(teacher)
    teacher_extra = max(0.0, (weights or REFERENCE_TEACHER_MB) - REFERENCE_TEACHER_MB)
    params = recipe.params
    rows = (teacher_vocabulary(teacher) or 30_522) + (params.max_vocabulary_size if params.use_corpus_vocabulary else 0)
    table_extra = max(0.0, (rows * teacher.dimension - REFERENCE_VOCABULARY * REFERENCE_DIMENSION) * 4 / MB)
    stages: dict[str, float] = {}
    for name in stage_plan(recipe).names:
        cost = STAGE_MEMORY.get(name)
        if cost is None:
            continue
        stages[name] = round(cost.fixed_mb + cost.per_1k_mb * texts / 1000 + (teacher_extra if cost.holds_teacher else 0)
                             + cost.table_copies * table_extra, 1)
    return MemoryEstimate(recipe.method, texts, stages)


def available_mb() -> tuple[float, str]:
    """Memory a job may use now, and where that figure comes from.

    `DISTILLERY_MEMORY_LIMIT_MB` when set (tests, deployments that know their share); otherwise the
    smaller of the kernel's MemAvailable and what the process's cgroup limit leaves (a container).
    """
    named = os.environ.get(MEMORY_LIMIT_ENV, "").strip()
    if named:
        try:
            return float(named), f"{MEMORY_LIMIT_ENV} allows"
        except ValueError:
            raise DistilleryError(f"{MEMORY_LIMIT_ENV} must be a number of megabytes, not {named!r}.") from None
    found: list[tuple[float, str]] = []
    meminfo = _meminfo_available_mb()
    if meminfo is not None:
        found.append((meminfo, "this machine has free"))
    cgroup = _cgroup_left_mb()
    if cgroup is not None:
        found.append((cgroup, "this container's memory limit leaves"))
    return min(found) if found else (float("inf"), "no limit is known")


def _meminfo_available_mb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return None


def _cgroup_left_mb(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """Limit minus usage of this process's cgroup (v2 `memory.max`, or v1's `limit_in_bytes`)."""
    for limit_file, usage_file in (("memory.max", "memory.current"),
                                   ("memory/memory.limit_in_bytes", "memory/memory.usage_in_bytes")):
        try:
            limit = (root / limit_file).read_text().strip()
            if limit == "max" or int(limit) >= 1 << 60:  # v1 writes "no limit" as a huge number
                continue
            return (int(limit) - int((root / usage_file).read_text().strip())) / MB
        except (OSError, ValueError):
            continue
    return None


def check_memory(recipe: Recipe, teacher: TeacherInfo) -> MemoryEstimate:
    """Refuse (`DistilleryError`) a recipe whose estimated peak exceeds the memory available now."""
    estimate = estimate_peak(recipe, teacher)
    available, basis = available_mb()
    if estimate.peak_mb > available:
        raise DistilleryError(
            f"This recipe needs about {gb(estimate.peak_mb)} of memory at its peak ({estimate.describe()}); "
            f"{basis} {gb(available)}. Use a smaller corpus (memory grows with the corpus size, mostly in the "
            f"{estimate.peak_stage} stage), the vocabulary method, or a machine with more memory.")
    return estimate


def return_arrow_memory() -> None:
    """Make Arrow allocate through the system allocator in a long-running process (the studio).

    Arrow's default pool (mimalloc in these wheels) keeps freed memory for reuse. The studio reads
    corpora into Arrow tables for every preview (`datasets`, `keep_in_memory`), and under the load bench its
    resident memory rose about 10 MB a minute with the default pool while the Python heap stayed
    flat (tracemalloc); with the system allocator the same load stayed level (docs/benchmarks.md).
    """
    import pyarrow as pa

    pa.set_memory_pool(pa.system_memory_pool())
