"""Teacher and students scored on the same tasks through `mteb.evaluate`, retention, and the ship verdict.

Local tasks (`core.mteb_tasks`) and, when the Hub is reachable, real mteb tasks by name go through the
one evaluator, so a local score and a leaderboard score mean the same thing. A task that cannot run
(missing or malformed files, Hub out of reach, an error inside mteb) is reported as skipped with its
reason and the others go on. The teacher's scores are cached per teacher fingerprint, task, data and
mteb version: a teacher is scored once per machine, however many students are compared with it.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from core import settings
from core.errors import DistilleryError
from core.mteb_tasks import DEV_SUITE, MTEB_VERSION, LocalTask, data_digest, import_mteb, mteb_task
from core.progress import Progress, silent
from core.teacher import TeacherInfo

TaskRef = LocalTask | str  # a local task, or the name of an mteb task on the Hub
ENGLISH_BENCHMARK = "MTEB(eng, v2)"


@dataclass(frozen=True)
class Thresholds:
    """Ship thresholds as ratios to the teacher: retention of its average, and CPU speed-up."""

    viable_retention: float = 0.83
    viable_speedup: float = 50.0
    optimal_retention: float = 0.89
    optimal_speedup: float = 100.0

    def validate(self) -> None:
        if not 0 < self.viable_retention <= self.optimal_retention <= 2:
            raise DistilleryError("Retention thresholds must satisfy 0 < viable ≤ optimal (e.g. 0.83 and 0.89).")
        if not 0 < self.viable_speedup <= self.optimal_speedup:
            raise DistilleryError("Speed-up thresholds must satisfy 0 < viable ≤ optimal (e.g. 50 and 100).")


def task_refs(names: Sequence[str] | None) -> tuple[TaskRef, ...]:
    """Names to tasks: a development-suite name is the local task, an mteb benchmark name (such as
    "MTEB(eng, v2)") its tasks, any other name an mteb (Hub) task; none means the development suite."""
    if not names:
        return DEV_SUITE
    local = {t.name: t for t in DEV_SUITE}
    refs: list[TaskRef] = []
    for name in names:
        refs.extend(hub_task_names(name) if name.startswith("MTEB(") else [local.get(name, name)])
    return tuple(refs)


def check_task_names(names: Sequence[str] | None) -> None:
    """Refuse unknown task or benchmark names before anything is queued (mteb's metadata is local)."""
    for ref in task_refs(names):
        if isinstance(ref, str):
            _mteb_task_by_name(ref)


def evaluate_model(model, label: str, tasks: Sequence[TaskRef] = DEV_SUITE, progress: Progress = silent,
                   limit: int | None = None, eval_dir: Path | None = None, batch_size: int = 64) -> dict[str, Any]:
    """Scores (0–100) of one loaded model (a `SentenceTransformer`) on `tasks`, with skipped tasks."""
    eval_dir = Path(eval_dir or settings.eval_dir())
    scores: dict[str, float] = {}
    types: dict[str, str] = {}
    skipped: dict[str, str] = {}
    started = time.perf_counter()
    for i, ref in enumerate(tasks):
        name = _name(ref)
        progress("evaluate", i / len(tasks), f"{label}: {name}")
        try:
            task = _build_task(ref, eval_dir, limit)
            scores[name] = _score(model, task, batch_size)
            types[name] = str(task.metadata.type)
        except DistilleryError as exc:
            skipped[name] = str(exc)
        except Exception as exc:  # noqa: BLE001 - one task's failure must not end the run
            skipped[name] = f"{type(exc).__name__}: {exc}"
    progress("evaluate", 1.0, f"{label}: {len(scores)} tasks scored, {len(skipped)} skipped")
    return {**summarise(scores, types), "skipped": skipped, "seconds": round(time.perf_counter() - started, 2),
            "limit": limit, "mteb_version": MTEB_VERSION}


def evaluate_student(folder: Path, tasks: Sequence[TaskRef] = DEV_SUITE, progress: Progress = silent,
                     limit: int | None = None, eval_dir: Path | None = None) -> dict[str, Any]:
    return evaluate_model(load_student_model(folder), Path(folder).name, tasks, progress, limit, eval_dir)


def teacher_scores(teacher: TeacherInfo, tasks: Sequence[TaskRef] = DEV_SUITE, progress: Progress = silent,
                   limit: int | None = None, eval_dir: Path | None = None) -> dict[str, Any]:
    """The teacher's scores, from the cache where present; only missing tasks load and run the teacher."""
    eval_dir = Path(eval_dir or settings.eval_dir())
    folder = settings.cache_dir() / "teacher-scores"
    folder.mkdir(parents=True, exist_ok=True)
    cached: dict[str, dict[str, Any]] = {}
    missing: list[TaskRef] = []
    paths = {_name(ref): folder / f"{_cache_key(teacher, ref, eval_dir, limit)}.json" for ref in tasks}
    for ref in tasks:
        path = paths[_name(ref)]
        if path.is_file():
            cached[_name(ref)] = json.loads(path.read_text())
        else:
            missing.append(ref)
    if missing:
        from core.teacher import load_teacher

        fresh = evaluate_model(load_teacher(teacher), f"teacher {teacher.name}", missing, progress, limit, eval_dir)
        for ref in missing:
            name = _name(ref)
            if name in fresh["tasks"]:  # skipped tasks are not cached: the data may be fixed later
                entry = {"score": fresh["tasks"][name], "type": fresh["task_types"][name]}
                _write_json(paths[name], entry)
                cached[name] = entry
        skipped = fresh["skipped"]
    else:
        skipped = {}
        progress("evaluate", 1.0, f"teacher {teacher.name}: all {len(cached)} tasks from the cache")
    ordered = [_name(r) for r in tasks if _name(r) in cached]
    summary = summarise({n: cached[n]["score"] for n in ordered}, {n: cached[n]["type"] for n in ordered})
    return {**summary, "skipped": skipped, "cached": len(tasks) - len(missing), "limit": limit,
            "mteb_version": MTEB_VERSION}


def summarise(scores: dict[str, float], types: dict[str, str]) -> dict[str, Any]:
    """Per-task scores, per-type means, and the mean of the type means (each type counts once)."""
    by_type: dict[str, list[float]] = {}
    for name, score in scores.items():
        by_type.setdefault(types[name], []).append(score)
    type_means = {t: round(sum(v) / len(v), 2) for t, v in by_type.items()}
    mean = round(sum(type_means.values()) / len(type_means), 2) if type_means else None
    return {"tasks": scores, "task_types": types, "type_means": type_means, "mean_of_types": mean}


def retention(student: dict[str, Any], teacher: dict[str, Any]) -> dict[str, Any]:
    """student / teacher per task, per task type, and on the mean of task-type means, over the tasks
    both were scored on."""
    shared = [n for n in student["tasks"] if n in teacher["tasks"] and teacher["tasks"][n] > 0]
    if not shared:
        raise DistilleryError("The student and the teacher share no scored task; nothing to compare.")
    s = summarise({n: student["tasks"][n] for n in shared}, {n: student["task_types"][n] for n in shared})
    t = summarise({n: teacher["tasks"][n] for n in shared}, {n: teacher["task_types"][n] for n in shared})
    return {
        "tasks": {n: round(student["tasks"][n] / teacher["tasks"][n], 4) for n in shared},
        "type_means": {k: round(s["type_means"][k] / t["type_means"][k], 4) for k in s["type_means"]},
        "overall": round(s["mean_of_types"] / t["mean_of_types"], 4),
    }


def verdict(kept: dict[str, Any], speedup: float | None, thresholds: Thresholds = Thresholds()) -> dict[str, Any]:
    """optimal / viable / not viable, from retention and CPU speed-up, naming the weakest task type."""
    thresholds.validate()
    weakest = min(kept["type_means"], key=kept["type_means"].get)
    overall = kept["overall"]
    if speedup is not None and overall >= thresholds.optimal_retention and speedup >= thresholds.optimal_speedup:
        decision = "optimal"
    elif speedup is not None and overall >= thresholds.viable_retention and speedup >= thresholds.viable_speedup:
        decision = "viable"
    else:
        decision = "not viable"
    reasons = []
    if overall < thresholds.viable_retention:
        reasons.append(f"retention {overall:.1%} is below {thresholds.viable_retention:.0%}")
    if speedup is None:
        reasons.append("the speed-up has not been measured")
    elif speedup < thresholds.viable_speedup:
        reasons.append(f"the speed-up {speedup:.0f}× is below {thresholds.viable_speedup:.0f}×")
    return {"verdict": decision, "retention": overall, "speedup": speedup,
            "weakest_type": weakest, "weakest_retention": kept["type_means"][weakest],
            "reasons": reasons, "thresholds": asdict(thresholds)}


def load_student_model(folder: Path):  # -> SentenceTransformer
    """A model2vec folder as a SentenceTransformer (StaticEmbedding), which mteb evaluates directly."""
    folder = Path(folder)
    needed = [f for f in ("config.json", "model.safetensors", "tokenizer.json") if not (folder / f).is_file()]
    if not folder.is_dir() or needed:
        raise DistilleryError(f"{folder} is not a complete model2vec folder (missing: {', '.join(needed) or 'all'}).")
    from sentence_transformers import SentenceTransformer

    try:
        model = SentenceTransformer(str(folder), device="cpu")
    except Exception as exc:  # noqa: BLE001 - a corrupt file can fail in many ways
        raise DistilleryError(f"{folder} could not be loaded as a model2vec model: {exc}") from exc
    model.model_card_data.model_name = f"local/{folder.name}"
    return model


def hub_task_names(benchmark: str = ENGLISH_BENCHMARK) -> list[str]:
    """The task names of an mteb benchmark (metadata ships with mteb; the data comes from the Hub)."""
    mteb = import_mteb()
    try:
        return [task.metadata.name for task in mteb.get_benchmark(benchmark).tasks]
    except Exception as exc:  # noqa: BLE001 - mteb raises KeyError or ValueError for unknown names
        raise DistilleryError(f"mteb has no benchmark named '{benchmark}': {exc}") from exc


def _build_task(ref: TaskRef, eval_dir: Path, limit: int | None):
    if isinstance(ref, LocalTask):
        return mteb_task(ref, eval_dir, limit)
    from core.hub import hub_reachable

    if not hub_reachable():
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


def _name(ref: TaskRef) -> str:
    return ref.name if isinstance(ref, LocalTask) else ref


def _cache_key(teacher: TeacherInfo, ref: TaskRef, eval_dir: Path, limit: int | None) -> str:
    try:
        data = data_digest(ref, eval_dir) if isinstance(ref, LocalTask) else "hub"
    except OSError:
        data = "unreadable"  # the task will be skipped with its reason, and never cached
    parts = (teacher.fingerprint, _name(ref), data, str(limit), MTEB_VERSION)
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def _write_json(path: Path, value: Any) -> None:
    _write_text(path, json.dumps(value, indent=2))


EVALUATION_FILE = "evaluation.json"


def evaluate_saved_model(model_dir: Path, tasks: Sequence[TaskRef] = DEV_SUITE, limit: int | None = None,
                         thresholds: Thresholds = Thresholds(), progress: Progress = silent,
                         speed_texts: int = 256) -> dict[str, Any]:
    """Score a distilled model and its teacher, measure the CPU speed-up, decide, and save the report.

    The report goes to `evaluation.json` in the model folder, and into its record and model card
    (each file replaced atomically, so a reader never sees half of one).
    """
    from core.pipeline import RECORD_FILE, load_record

    thresholds.validate()
    model_dir = Path(model_dir)
    student = load_student_model(model_dir)  # refuses a missing or corrupt folder before any work
    record = load_record(model_dir)
    teacher = _record_teacher(record)
    started = time.perf_counter()
    teacher_result = teacher_scores(teacher, tasks, progress, limit)
    student_result = evaluate_model(student, record["id"], tasks, progress, limit)
    if not student_result["tasks"]:
        reasons = "; ".join(f"{t}: {why}" for t, why in list(student_result["skipped"].items())[:5])
        raise DistilleryError(f"No task could be scored ({reasons}).")
    kept = retention(student_result, teacher_result)
    progress("speed", 0.0, "timing teacher and student on the same texts")
    speed = measure_speedup(record, teacher, model_dir, speed_texts)
    progress("speed", 1.0, f"student {speed['speedup']:.0f}× faster" if speed else "no texts to time")
    report = {
        "model_id": record["id"], "teacher": teacher.name, "date": time.strftime("%Y-%m-%d"),
        "tasks": [_name(t) for t in tasks], "limit": limit, "mteb_version": MTEB_VERSION,
        "teacher_scores": teacher_result, "student_scores": student_result, "retention": kept,
        "speed": speed, "verdict": verdict(kept, speed["speedup"] if speed else None, thresholds),
        "seconds": round(time.perf_counter() - started, 1),
    }
    _write_json(model_dir / EVALUATION_FILE, report)
    record["evaluation"] = report
    _write_json(model_dir / RECORD_FILE, record)
    from core.model_card import render_card

    _write_text(model_dir / "README.md", render_card(record))
    return report


def measure_speedup(record: dict[str, Any], teacher: TeacherInfo, model_dir: Path,
                    max_texts: int = 256) -> dict[str, Any] | None:
    """Throughput of student and teacher on the model's own corpus sample, same threads (the Compare tab's code)."""
    from core.compare import compare_speed, default_collection
    from core.embedders import query_encoder, student_embedder

    try:
        texts = default_collection(record)[:max_texts]
    except DistilleryError:
        return None
    # On the CPU, both: the verdict's speed-up is a CPU figure, even on a machine with a GPU.
    reports = compare_speed(query_encoder(teacher, device="cpu"), student_embedder(model_dir).encode, texts[:20], texts)
    by_label = {r.label: r for r in reports}
    ratio = by_label["student"].throughput_per_s / by_label["teacher"].throughput_per_s
    return {"speedup": round(ratio, 1), "threads": reports[0].threads, "texts": len(texts),
            "teacher_texts_per_s": round(by_label["teacher"].throughput_per_s, 1),
            "student_texts_per_s": round(by_label["student"].throughput_per_s, 1)}


def _record_teacher(record: dict[str, Any]) -> TeacherInfo:
    """The model's teacher, resolved and verified again (as the Compare tab does)."""
    from core.teacher import resolve_teacher

    return resolve_teacher(record["teacher"]["name"], record["teacher"].get("trust_remote_code", False))


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
