"""A saved model evaluated end to end: scores, retention, CPU speed-up, verdict, written into its folder."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from core.artifact.folder import ModelFolder
from core.encoders.student import StudentEncoder
from core.encoders.teacher import TeacherInfo, resolve_recorded, teacher_encoder
from core.errors import DistilleryError
from core.evaluation.scoring import (
    STUDENT_STAGE,
    TEACHER_STAGE,
    TaskRef,
    evaluate_model,
    task_name,
    task_weights,
    teacher_scores,
    teacher_tasks_cached,
)
from core.evaluation.tasks import DEV_SUITE, MTEB_VERSION, suite_name
from core.evaluation.verdict import Thresholds, retention, verdict
from core.progress import Progress, StagePlan, expected_seconds, silent
from core.serving.timing import teacher_vs_student


def evaluate_saved_model(model_dir: Path, tasks: Sequence[TaskRef] = DEV_SUITE, limit: int | None = None,
                         thresholds: Thresholds = Thresholds(), progress: Progress = silent,
                         speed_texts: int = 256) -> dict[str, Any]:
    """Score a distilled model and its teacher, measure the CPU speed-up, decide, and save the report.

    `tasks` is any list of task references (`scoring.task_refs` turns names or a suite name into one);
    the report names the suite ("en", "fr", "both") when the tasks are exactly one of `tasks.SUITES`.

    The report goes to the model folder (`ModelFolder.write_evaluation`: the report file, the record
    and the card, each replaced atomically, so a reader never sees half of one).
    """
    thresholds.validate()
    folder = ModelFolder.at(Path(model_dir))
    student = StudentEncoder.open(folder.path)  # refuses a missing or corrupt folder before any work
    teacher = resolve_recorded(folder.record.teacher)
    started = time.perf_counter()
    teacher_result = teacher_scores(teacher, tasks, progress, limit)
    student_result = evaluate_model(student.sentence_transformer(), folder.id, tasks, progress, limit,
                                    stage=STUDENT_STAGE)
    if not student_result["tasks"]:
        reasons = "; ".join(f"{t}: {why}" for t, why in list(student_result["skipped"].items())[:5])
        raise DistilleryError(f"No task could be scored ({reasons}).")
    kept = retention(student_result, teacher_result)
    progress("speed", 0.0, "timing teacher and student on the same texts")
    speed = measure_speedup(folder, teacher, student, speed_texts)
    progress("speed", 1.0, f"student {speed['speedup']:.0f}× faster" if speed else "no texts to time")
    report = {
        "model_id": folder.id, "teacher": teacher.name, "date": time.strftime("%Y-%m-%d"),
        "tasks": [task_name(t) for t in tasks], "suite": suite_name(tasks), "limit": limit,
        "mteb_version": MTEB_VERSION,
        "teacher_scores": teacher_result, "student_scores": student_result, "retention": kept,
        "speed": speed, "verdict": verdict(kept, speed["speedup"] if speed else None, thresholds),
        "seconds": round(time.perf_counter() - started, 1),
    }
    folder.write_evaluation(report)
    return report


TEACHER_SLOWDOWN = 12  # the teacher scores the suite about this many times slower than a student (2 cores)


def evaluation_plan(teacher: TeacherInfo, tasks: Sequence[TaskRef] = DEV_SUITE, limit: int | None = None,
                    ) -> StagePlan:
    """The stages of `evaluate_saved_model` with their expected seconds, for the job's overall bar:
    the teacher's scores cost nothing once cached, and a row limit shrinks both scorings. The student's
    time is the development suite's, scaled by the tasks' measured seconds (`task_weights`), so the
    French suite or both suites are planned by their own size."""
    suite_seconds = sum(task_weights(DEV_SUITE, None))
    student = expected_seconds("evaluate", 0) * sum(task_weights(tasks, None)) / suite_seconds
    if limit is not None:
        student *= min(1.0, 0.1 + limit / 2000)
    teacher_seconds = 0.1 if teacher_tasks_cached(teacher, tasks, limit) else TEACHER_SLOWDOWN * student
    return StagePlan.of([(TEACHER_STAGE, teacher_seconds), (STUDENT_STAGE, student), ("speed", 5.0)])


def measure_speedup(folder: ModelFolder, teacher: TeacherInfo, student: StudentEncoder,
                    max_texts: int = 256) -> dict[str, Any] | None:
    """Throughput of student and teacher on the model's own corpus sample, same threads (`serving.timing`).

    Both on the CPU: the verdict's speed-up is a CPU figure, even on a machine with a GPU.
    """
    try:
        texts = folder.collection()[:max_texts]
    except DistilleryError:
        return None
    reports = teacher_vs_student(teacher_encoder(teacher, device="cpu").encode_queries, student.encode, texts[:20], texts)
    by_label = {r.label: r for r in reports}
    ratio = by_label["student"].throughput_per_s / by_label["teacher"].throughput_per_s
    return {"speedup": round(ratio, 1), "threads": reports[0].threads, "texts": len(texts),
            "teacher_texts_per_s": round(by_label["teacher"].throughput_per_s, 1),
            "student_texts_per_s": round(by_label["student"].throughput_per_s, 1)}
