"""Evaluate tab: queue evaluations (mteb, teacher vs student, speed-up, verdict) and compare their reports.

Several students are shown side by side with their teacher, which is how people tune a recipe: one
table, one grouped bar chart per task, retention per task type, and each student's verdict.
"""

from __future__ import annotations

import re
from typing import Any

import gradio as gr
import pandas as pd
import plotly.graph_objects as go

from core.artifact.folder import ModelFolder
from core.errors import DistilleryError
from core.evaluation.verdict import Thresholds
from jobs import client
from ui.compare_tab import model_choices
from ui.forms import rows_limit

DEFAULTS = Thresholds()


def build() -> dict[str, Any]:
    with gr.Row():
        models = gr.Dropdown(label="Models (students; each is compared with its teacher)", choices=model_choices(),
                             multiselect=True, allow_custom_value=True, scale=4)
        refresh_btn = gr.Button("↻ models", size="sm", scale=1)
    with gr.Row():
        limit = gr.Number(label="Rows per task (0: all; 200 for a quick look)", value=0, precision=0, minimum=0)
        viable_r = gr.Number(label="Viable: retention ≥", value=DEFAULTS.viable_retention)
        viable_s = gr.Number(label="Viable: speed-up ≥", value=DEFAULTS.viable_speedup)
        optimal_r = gr.Number(label="Optimal: retention ≥", value=DEFAULTS.optimal_retention)
        optimal_s = gr.Number(label="Optimal: speed-up ≥", value=DEFAULTS.optimal_speedup)
    tasks = gr.Textbox(label="Tasks: empty for the local development suite, or mteb task names and benchmarks "
                             "(e.g. STSBenchmark, SciFact, MTEB(eng, v2)), comma-separated; Hub tasks need the Hub")
    with gr.Row():
        run_btn = gr.Button("Evaluate selected models (background job)", variant="primary")
        show_btn = gr.Button("Show results")
    queued_md = gr.Markdown()
    verdict_md = gr.Markdown()
    scores_df = gr.Dataframe(label="Scores per task (teacher and students)", interactive=False, wrap=True)
    chart = gr.Plot(label="Teacher vs students per task")
    retention_df = gr.Dataframe(label="Retention per task type (student / teacher)", interactive=False)

    refresh_btn.click(lambda: gr.Dropdown(choices=model_choices()), None, models, api_visibility="private")
    run_btn.click(start, [models, limit, viable_r, viable_s, optimal_r, optimal_s, tasks], queued_md,
                  api_name="evaluate")
    show_btn.click(show, models, [verdict_md, scores_df, chart, retention_df], api_name="evaluation_results")
    return {"models": models}


def start(model_ids: list[str] | None, limit: float | None, viable_r: float, viable_s: float, optimal_r: float,
          optimal_s: float, tasks: str | None = None) -> str:
    if not model_ids:
        return "Choose at least one model first."
    thresholds = {"viable_retention": viable_r, "viable_speedup": viable_s, "optimal_retention": optimal_r,
                  "optimal_speedup": optimal_s}
    names = [n.strip() for n in re.split(r",(?![^()]*\))", tasks or "") if n.strip()] or None
    lines = []
    for model_id in model_ids:
        try:
            status = client.submit_evaluation(model_id, rows_limit(limit), thresholds,
                                              names)
            lines.append(f"- `{model_id}`: queued as `{status['job_id']}` (Jobs tab). {status.get('warning', '')}")
        except DistilleryError as exc:
            lines.append(f"- `{model_id}`: ❌ {exc}")
    return "\n".join(lines)


def show(model_ids: list[str] | None):
    if not model_ids:
        return "Choose at least one evaluated model.", None, None, None
    reports, missing = {}, []
    for model_id in model_ids:
        try:
            report = ModelFolder.open(model_id).evaluation()
        except DistilleryError as exc:
            missing.append(f"`{model_id}`: {exc}")
            continue
        if report is not None:
            reports[model_id] = report
        else:
            missing.append(f"`{model_id}` has not been evaluated yet")
    notes = "".join(f"\n- {m}" for m in missing)
    if not reports:
        return f"No evaluation to show.{notes}", None, None, None
    return (verdict_text(reports) + notes, scores_table(reports), scores_chart(reports), retention_table(reports))


def verdict_text(reports: dict[str, dict[str, Any]]) -> str:
    lines = []
    for model_id, report in reports.items():
        v = report["verdict"]
        icon = {"optimal": "🟢", "viable": "🟡"}.get(v["verdict"], "🔴")
        speed = f"{v['speedup']:.0f}×" if v["speedup"] else "not measured"
        why = f" ({'; '.join(v['reasons'])})" if v["reasons"] else ""
        rows = "all rows" if report["limit"] is None else f"{report['limit']} rows per task"
        lines.append(f"- {icon} **{model_id}: {v['verdict']}**{why}. Retention {v['retention']:.1%}, speed-up {speed}; "
                     f"weakest: {v['weakest_type']} ({v['weakest_retention']:.1%}). Teacher {report['teacher']}, "
                     f"{rows}, {report['date']}.")
    return "\n".join(lines)


def scores_table(reports: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """One row per task: its type, each distinct teacher's score, and each student's score."""
    columns: dict[str, dict[str, float]] = {}
    types: dict[str, str] = {}
    for model_id, report in reports.items():
        for side, label in (("teacher_scores", f"teacher: {report['teacher']}"), ("student_scores", model_id)):
            columns.setdefault(label, {}).update(report[side]["tasks"])
            types.update(report[side]["task_types"])
    tasks = list(types)
    frame = pd.DataFrame({"task": tasks, "type": [types[t] for t in tasks]})
    for label, scores in columns.items():
        frame[label] = [scores.get(t) for t in tasks]
    return frame


def scores_chart(reports: dict[str, dict[str, Any]]) -> go.Figure:
    frame = scores_table(reports)
    figure = go.Figure()
    for label in frame.columns[2:]:
        figure.add_bar(name=label, x=frame["task"], y=frame[label])
    figure.update_layout(barmode="group", yaxis_title="score (mteb main score × 100)", height=420,
                         legend={"orientation": "h", "y": -0.25})
    return figure


def retention_table(reports: dict[str, dict[str, Any]]) -> pd.DataFrame:
    rows = []
    for model_id, report in reports.items():
        kept = report["retention"]
        rows.append({"model": model_id, **{t: f"{r:.1%}" for t, r in kept["type_means"].items()},
                     "overall": f"{kept['overall']:.1%}"})
    return pd.DataFrame(rows)
