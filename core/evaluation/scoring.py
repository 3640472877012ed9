"""Teacher and students scored on the same tasks through `mteb.evaluate`, and the teacher-score cache.

Local tasks (`core.evaluation.tasks`) and, when the Hub is reachable, real mteb tasks by name go through the
one evaluator, so a local score and a leaderboard score mean the same thing. A task that cannot run
(missing or malformed files, Hub out of reach, an error inside mteb) is reported as skipped with its
reason and the others go on. The teacher's scores are cached per teacher fingerprint, task, data and
mteb version: a teacher is scored once per machine, however many students are compared with it.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from core import settings
from core.encoders.base import Encoder
from core.encoders.student import StudentEncoder
from core.encoders.teacher import TeacherInfo, load_teacher, teacher_encoder
from core.errors import DistilleryError
from core.evaluation.tasks import (
    DEV_SUITE,
    MTEB_VERSION,
    SUITES,
    LocalTask,
    data_digest,
    import_mteb,
    mteb_task,
    suite_tasks,
)
from core.evaluation.verdict import summarise
from core.files import write_json
from core.progress import Progress, silent

TaskRef = LocalTask | str  # a local task, or the name of an mteb task on the Hub
TEACHER_STAGE, STUDENT_STAGE = "teacher scores", "student scores"  # an evaluation's progress stages
ENGLISH_BENCHMARK = "MTEB(eng, v2)"


def task_refs(names: Sequence[str] | None, suite: str | None = None) -> tuple[TaskRef, ...]:
    """Names to tasks: a local task's name (English or French suite) is that task, an mteb benchmark
    name (such as "MTEB(eng, v2)") its tasks, any other name an mteb (Hub) task; no names means the
    named `suite` ("en", the default: the development suite; "fr"; "both", `tasks.SUITES`)."""
    if not names:
        return suite_tasks(suite)
    local = {t.name: t for t in SUITES["both"]}
    refs: list[TaskRef] = []
    for name in names:
        refs.extend(hub_task_names(name) if name.startswith("MTEB(") else [local.get(name, name)])
    return tuple(refs)


def check_task_names(names: Sequence[str] | None, suite: str | None = None) -> None:
    """Refuse unknown task, benchmark or suite names before anything is queued (mteb's metadata is local)."""
    suite_tasks(suite)
    for name in names or []:
        if re.search(r"[/\\]|\.\.", name) or not name.isprintable():
            raise DistilleryError(f"'{name[:100]}' is not a task name: tasks are named as mteb names them (e.g. "
                                  f"STSBenchmark, SciFact, MTEB(eng, v2)), not a path.")
    for ref in task_refs(names, suite):
        if isinstance(ref, str):
            _mteb_task_by_name(ref)


def evaluate_model(model: Any, label: str, tasks: Sequence[TaskRef] = DEV_SUITE, progress: Progress = silent,
                   limit: int | None = None, eval_dir: Path | None = None, batch_size: int = 64,
                   stage: str = "evaluate") -> dict[str, Any]:
    """Scores (0–100) of one loaded model (a `SentenceTransformer`) on `tasks`, with skipped tasks.

    Progress moves by each task's expected share of the time (`task_weights`): one task at a time is
    all mteb lets us see, and Banking77 alone is more than half of the suite's time. Each local task
    reads its own language's folder (`tasks.task_root`) unless `eval_dir` names one for all of them.
    """
    scores: dict[str, float] = {}
    types: dict[str, str] = {}
    skipped: dict[str, str] = {}
    started = time.perf_counter()
    weights = task_weights(tasks, limit)
    total = sum(weights) or 1.0
    for i, ref in enumerate(tasks):
        name = task_name(ref)
        progress(stage, sum(weights[:i]) / total, f"{label}: {name} (task {i + 1} of {len(tasks)})")
        try:
            task = _build_task(ref, eval_dir, limit)
            scores[name] = _score(model, task, batch_size)
            types[name] = str(task.metadata.type)
        except DistilleryError as exc:
            skipped[name] = str(exc)
        except Exception as exc:  # noqa: BLE001 - one task's failure must not end the run
            skipped[name] = f"{type(exc).__name__}: {exc}"
    progress(stage, 1.0, f"{label}: {len(scores)} tasks scored, {len(skipped)} skipped")
    return {**summarise(scores, types), "skipped": skipped, "seconds": round(time.perf_counter() - started, 2),
            "limit": limit, "mteb_version": MTEB_VERSION}


def evaluate_student(folder: Path, tasks: Sequence[TaskRef] = DEV_SUITE, progress: Progress = silent,
                     limit: int | None = None, eval_dir: Path | None = None) -> dict[str, Any]:
    """A student folder's scores (its `SentenceTransformer` view, which mteb evaluates directly)."""
    return evaluate_model(StudentEncoder.open(folder).sentence_transformer(), Path(folder).name, tasks, progress,
                          limit, eval_dir, stage=STUDENT_STAGE)


def teacher_scores(teacher: TeacherInfo, tasks: Sequence[TaskRef] = DEV_SUITE, progress: Progress = silent,
                   limit: int | None = None, eval_dir: Path | None = None) -> dict[str, Any]:
    """The teacher's scores, from the cache where present; only missing tasks load and run the teacher.
    The key of a local task's entry holds the digest of its files in its own language's folder."""
    cached: dict[str, dict[str, Any]] = {}
    missing: list[TaskRef] = []
    paths = _teacher_cache_paths(teacher, tasks, eval_dir, limit)
    for ref in tasks:
        path = paths[task_name(ref)]
        if path.is_file():
            cached[task_name(ref)] = json.loads(path.read_text())
        else:
            missing.append(ref)
    if missing:
        fresh = evaluate_model(teacher_for_mteb(teacher), f"teacher {teacher.name}", missing, progress, limit,
                               eval_dir, stage=TEACHER_STAGE)
        for ref in missing:
            name = task_name(ref)
            if name in fresh["tasks"]:  # skipped tasks are not cached: the data may be fixed later
                entry = {"score": fresh["tasks"][name], "type": fresh["task_types"][name]}
                write_json(paths[name], entry)
                cached[name] = entry
        skipped = fresh["skipped"]
    else:
        skipped = {}
        progress(TEACHER_STAGE, 1.0, f"teacher {teacher.name}: all {len(cached)} tasks from the cache")
    ordered = [task_name(r) for r in tasks if task_name(r) in cached]
    summary = summarise({n: cached[n]["score"] for n in ordered}, {n: cached[n]["type"] for n in ordered})
    return {**summary, "skipped": skipped, "cached": len(tasks) - len(missing), "limit": limit,
            "mteb_version": MTEB_VERSION}


def teacher_for_mteb(teacher: TeacherInfo) -> Any:
    """What mteb evaluates for the teacher: its `SentenceTransformer`, or for a teacher without weights
    (an endpoint, a package) its `Encoder` wrapped as an mteb encoder (queries and documents each in
    their own role)."""
    if teacher.has_weights:
        return load_teacher(teacher)
    return encoder_for_mteb(teacher_encoder(teacher))


def encoder_for_mteb(encoder: Encoder) -> Any:
    """Any `Encoder` as an mteb encoder: documents through `encode`, everything else (queries,
    STS and classification texts) through `encode_queries`, as the service answers by default."""
    import_mteb()
    from mteb.models.abs_encoder import AbsEncoder
    from mteb.types import PromptType

    class Wrapped(AbsEncoder):
        mteb_model_meta = None  # mteb then names the run "no model name" and scores by cosine

        def __init__(self) -> None:
            self.encoder = encoder

        def encode(self, inputs, *, task_metadata, hf_split, hf_subset, prompt_type=None, **kwargs) -> np.ndarray:
            texts = [text for batch in inputs for text in batch["text"]]
            encode = self.encoder.encode if prompt_type == PromptType.document else self.encoder.encode_queries
            return encode(texts)

    return Wrapped()


def teacher_tasks_cached(teacher: TeacherInfo, tasks: Sequence[TaskRef] = DEV_SUITE, limit: int | None = None,
                         eval_dir: Path | None = None) -> bool:
    """Whether every task's teacher score is already cached (an evaluation's plan then skips the teacher)."""
    paths = _teacher_cache_paths(teacher, tasks, eval_dir, limit)
    return all(path.is_file() for path in paths.values())


def _teacher_cache_paths(teacher: TeacherInfo, tasks: Sequence[TaskRef], eval_dir: Path | None,
                         limit: int | None) -> dict[str, Path]:
    folder = settings.cache_dir() / "teacher-scores"  # created by the first write (`write_json`)
    return {task_name(ref): folder / f"{_cache_key(teacher, ref, eval_dir, limit)}.json" for ref in tasks}


def task_weights(tasks: Sequence[TaskRef], limit: int | None) -> list[float]:
    """Each task's expected share of an evaluation's time: a local task's measured seconds on every
    row (Banking77's 77-class classifier alone is most of the suite), equal shares when rows are
    limited, and the mean for a Hub task, whose size is unknown before it is fetched."""
    known = [ref.seconds if isinstance(ref, LocalTask) and limit is None else 0.0 for ref in tasks]
    measured = [w for w in known if w > 0]
    mean = sum(measured) / len(measured) if measured else 1.0
    return [w if w > 0 else mean for w in known]


def hub_task_names(benchmark: str = ENGLISH_BENCHMARK) -> list[str]:
    """The task names of an mteb benchmark (metadata ships with mteb; the data comes from the Hub)."""
    mteb = import_mteb()
    try:
        return [task.metadata.name for task in mteb.get_benchmark(benchmark).tasks]
    except Exception as exc:  # noqa: BLE001 - mteb raises KeyError or ValueError for unknown names
        raise DistilleryError(f"mteb has no benchmark named '{benchmark}': {exc}") from exc


def _build_task(ref: TaskRef, eval_dir: Path | None, limit: int | None):
    if isinstance(ref, LocalTask):
        return mteb_task(ref, eval_dir, limit)
    if not settings.hub_reachable():
        raise DistilleryError("the Hugging Face Hub is not reachable, so this mteb task's data cannot be loaded")
    return _mteb_task_by_name(ref)


def _mteb_task_by_name(name: str):
    """mteb's task object (its metadata is local; its data is fetched only when evaluated)."""
    try:
        return import_mteb().get_task(name)
    except Exception as exc:  # noqa: BLE001 - mteb raises KeyError or ValueError for unknown names
        raise DistilleryError(f"mteb has no task named '{name}'.") from exc


def _score(model, task, batch_size: int) -> float:
    mteb = import_mteb()
    result = mteb.evaluate(model, [task], cache=None, overwrite_strategy="always", co2_tracker=False,
                           show_progress_bar=False, raise_error=True,
                           encode_kwargs={"batch_size": batch_size, "show_progress_bar": False})
    return round(100 * float(result.task_results[0].get_score()), 2)


def task_name(ref: TaskRef) -> str:
    return ref.name if isinstance(ref, LocalTask) else ref


def _cache_key(teacher: TeacherInfo, ref: TaskRef, eval_dir: Path | None, limit: int | None) -> str:
    try:
        data = data_digest(ref, eval_dir) if isinstance(ref, LocalTask) else "hub"
    except OSError:
        data = "unreadable"  # the task will be skipped with its reason, and never cached
    parts = (teacher.fingerprint, task_name(ref), data, str(limit), MTEB_VERSION)
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


