"""Evaluate tab: queue evaluations (mteb, teacher vs student, speed-up, verdict) and compare their reports.

Several students are shown side by side with their teacher, which is how people tune a recipe: one
table, one grouped bar chart per task, retention per task type, and each student's verdict. After
"Evaluate", the tab follows the jobs it queued (a timer polls their status) and shows the results as
each one ends, so nobody has to guess when to press "Show results". Every evaluation of a model is
kept (`ModelFolder.evaluations`), and the history box picks which of them to show (newest by default).
In a public studio the models offered and shown are those the visitor may see (`jobs.ownership`), and
each evaluation queued is theirs, within the per-visitor limits (`core.limits`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import gradio as gr
import pandas as pd
import plotly.graph_objects as go

from core.artifact.folder import ModelFolder, evaluation_label
from core.errors import DistilleryError
from core.evaluation.tasks import DEFAULT_SUITE, SUITE_LABELS
from core.evaluation.verdict import Thresholds
from core.limits import Limits
from jobs import client
from jobs.ownership import open_model
from jobs.status import TERMINAL, read_status
from ui.compare_tab import model_choices
from ui.forms import decimal, rows_limit, typed_keys
from ui.queueing import SUBMIT
from ui.visitors import expensive, limits_note, visitor
from ui.widgets import holding_typed_keys, number_field

DEFAULTS = Thresholds()
QUICK_ROWS = 200  # the tab's default: a verdict in about a minute on 2 cores
POLL_SECONDS = 1.0
PICK = "::"  # a history choice's value is `<model id>::<evaluation key>`
RESULT_OUTPUTS = 4  # verdict, scores, chart, retention


def build(key_fields: list[gr.Textbox] | None = None) -> dict[str, Any]:
    """The tab; `key_fields` are the Recipe tab's password fields, read (never stored) when an
    evaluation is queued, so a model whose endpoint teacher's key was typed there can be evaluated."""
    with gr.Row():
        models = gr.Dropdown(label="Models (students; each is compared with its teacher)", choices=model_choices(),
                             multiselect=True, allow_custom_value=True, scale=4)
        refresh_btn = gr.Button("↻ models", size="sm", scale=1)
    with gr.Row():
        limit = number_field("Rows per task", QUICK_ROWS, "200: a quick look (about a minute); empty or 0: every "
                             "row, the verdict to trust (the teacher's first full run takes minutes)")
        viable_r = number_field("Viable: retention ≥", DEFAULTS.viable_retention,
                                "the student's share of the teacher's quality (0–1)")
        viable_s = number_field("Viable: speed-up ≥", DEFAULTS.viable_speedup, "times faster than the teacher (CPU)")
        optimal_r = number_field("Optimal: retention ≥", DEFAULTS.optimal_retention, "at least the viable retention")
        optimal_s = number_field("Optimal: speed-up ≥", DEFAULTS.optimal_speedup, "at least the viable speed-up")
    with gr.Row():
        suite = gr.Radio(label="Local suite (when no tasks are named)", value=DEFAULT_SUITE, scale=1,
                         choices=[(label, name) for name, label in SUITE_LABELS.items()],
                         info="English: the development suite; French: STS, fr↔en bitext, intents, glossary")
        tasks = gr.Textbox(label="Tasks: empty for the chosen local suite, or mteb task names and benchmarks "
                                 "(e.g. STSBenchmark, CDTN-intents, SciFact, MTEB(eng, v2)), comma-separated; "
                                 "Hub tasks need the Hub", scale=3)
    limits_note(Limits.jobs_line)
    limits_note(Limits.rate_line)
    with gr.Row():
        run_btn = gr.Button("Evaluate selected models (background job)", variant="primary")
        show_btn = gr.Button("Show results")
    queued_md = gr.Markdown()
    history = gr.Dropdown(label="Evaluations shown (the newest of each model unless you pick others; "
                                "two of one model compare runs)", choices=[], value=[], multiselect=True)
    verdict_md = gr.Markdown()
    scores_df = gr.Dataframe(headers=["task", "type", "teacher", "student"], label="Scores per task (teacher and "
                             "students)", interactive=False, wrap=True)
    chart = gr.Plot(label="Teacher vs students per task")
    retention_df = gr.Dataframe(headers=["model", "overall"], label="Retention per task type (student / teacher)",
                                interactive=False)
    following = gr.State([])  # the jobs this page queued: [{"job_id", "model_id", "state"}]
    timer = gr.Timer(POLL_SECONDS, active=False)
    results = [verdict_md, scores_df, chart, retention_df]

    refresh_btn.click(listed_models, None, models, api_visibility="private")
    inputs = [models, limit, viable_r, viable_s, optimal_r, optimal_s, tasks, suite]
    if key_fields:
        typed, hold = holding_typed_keys(key_fields)
        run_btn.click(**hold).then(start, [*inputs, typed], [queued_md, following, timer], api_name="evaluate",
                                   **SUBMIT)
    else:
        run_btn.click(start, inputs, [queued_md, following, timer], api_name="evaluate", **SUBMIT)
    timer.tick(follow, following, [queued_md, following, timer, history, *results], api_name="follow_evaluations",
               show_progress="hidden")
    models.input(history_choices, models, history, api_name="evaluation_history").then(
        show, [models, history], results, api_visibility="private")
    history.input(show, [models, history], results, api_visibility="private")
    show_btn.click(show, [models, history], results, api_name="evaluation_results")
    return {"models": models, "history": history, "results": results}


def on_page_load(load: Callable[..., Any], parts: dict[str, Any]) -> None:
    """Open on the newest model with its evaluations listed and its newest report shown (when it has
    one), chained explicitly: a value set by `demo.load` does not fire the dropdown's events. `load`
    is `ui.visitors.page_load`."""
    loaded = load(newest_chosen, None, parts["models"], api_visibility="private")
    listed = loaded.then(history_choices, parts["models"], parts["history"], api_visibility="private")
    listed.then(show, [parts["models"], parts["history"]], parts["results"], api_visibility="private")


def listed_models(request: gr.Request | None = None) -> gr.Dropdown:
    return gr.Dropdown(choices=model_choices(request))


def newest_chosen(request: gr.Request | None = None) -> gr.Dropdown:
    """The tab's starting choice: the newest finished model, so its defaults evaluate something."""
    choices = model_choices(request)
    return gr.Dropdown(choices=choices, value=[choices[0][1]] if choices else [])


def start(model_ids: list[str] | None, limit: Any, viable_r: Any, viable_s: Any, optimal_r: Any,
          optimal_s: Any, tasks: str | None = None, suite: str | None = DEFAULT_SUITE,
          typed: dict[str, str] | None = None, request: gr.Request | None = None,
          ) -> tuple[str, list[dict[str, str]], gr.Timer]:
    """Queue one evaluation per model (the named tasks, else the chosen `suite`); the jobs queued are
    followed (the timer starts) until they end. Each evaluation is an expensive event of its own
    (`ui.visitors.expensive`)."""
    if not model_ids:
        return "Choose at least one model first.", [], gr.Timer(active=False)
    try:
        thresholds = {"viable_retention": decimal(viable_r, "Viable retention"),
                      "viable_speedup": decimal(viable_s, "Viable speed-up"),
                      "optimal_retention": decimal(optimal_r, "Optimal retention"),
                      "optimal_speedup": decimal(optimal_s, "Optimal speed-up")}
        rows = rows_limit(limit)
    except DistilleryError as exc:
        return f"❌ {exc}", [], gr.Timer(active=False)
    names = [n.strip() for n in re.split(r",(?![^()]*\))", tasks or "") if n.strip()] or None
    lines, queued = [], []
    for model_id in model_ids:
        try:
            with expensive(request, "an evaluation"):
                keys = typed_keys(ModelFolder.open(model_id).record.teacher, **(typed or {}))
                status = client.submit_evaluation(model_id, rows, thresholds, names, owner=visitor(request), keys=keys,
                                                  suite=suite or DEFAULT_SUITE)
            queued.append({"job_id": status["job_id"], "model_id": model_id, "state": status.get("state", "queued")})
            lines.append(f"- `{model_id}`: queued as `{status['job_id']}`; results appear here when it ends. "
                         f"{status.get('warning') or ''}")
        except DistilleryError as exc:
            lines.append(f"- `{model_id}`: ❌ {exc}")
    return "\n".join(lines), queued, gr.Timer(active=bool(queued))


def job_line(job: dict[str, str], status: dict[str, Any] | None) -> str:
    """One followed job in a line: its progress while it runs, how it ended (and why) once it has."""
    model, job_id = job["model_id"], job["job_id"]
    if status is None:
        return f"- ❔ `{model}` (`{job_id}`): no status yet"
    state = status.get("state", "unknown")
    if state == "done":
        return f"- ✅ `{model}`: {status.get('message', 'done')}" + (f" ⚠️ {status['warning']}" if status.get(
            "warning") else "")
    if state in ("failed", "interrupted"):
        return f"- ❌ `{model}` (`{job_id}`) {state}: {status.get('error') or status.get('message', '')}"
    if state == "cancelled":
        return f"- ⏹️ `{model}` (`{job_id}`) cancelled: {status.get('message') or 'cancelled in the Jobs tab'}"
    if state == "queued":
        return f"- ⏳ `{model}` (`{job_id}`): queued, {status.get('message') or 'waiting for a worker'}"
    overall = float(status.get("overall", status.get("fraction")) or 0.0)
    eta = status.get("eta")
    left = f", about {eta:.0f} s left" if eta else ""
    return (f"- 🔄 `{model}` (`{job_id}`): {overall:.0%}{left} · {status.get('stage', state)}: "
            f"{status.get('message', '')}")


def follow(jobs: list[dict[str, str]] | None, request: gr.Request | None = None) -> tuple[Any, ...]:
    """One tick of the timer: a live line per followed job; when one ends well, its results are shown
    (every finished model of this batch, newest report each); when all have ended, the timer stops."""
    jobs = list(jobs or [])
    if not jobs:
        return (gr.skip(), [], gr.Timer(active=False), gr.skip(), *[gr.skip()] * RESULT_OUTPUTS)
    lines, updated, newly_done = [], [], False
    for job in jobs:
        status = read_status(job["job_id"])
        state = (status or {}).get("state", "unknown")
        newly_done |= state == "done" and job.get("state") != "done"
        updated.append({**job, "state": state})
        lines.append(job_line(job, status))
    running = any(job["state"] not in TERMINAL for job in updated)
    timer = gr.Timer(active=running)
    if not newly_done:
        return ("\n".join(lines), updated, timer, gr.skip(), *[gr.skip()] * RESULT_OUTPUTS)
    finished = list(dict.fromkeys(job["model_id"] for job in updated if job["state"] == "done"))
    return ("\n".join(lines), updated, timer, history_choices(finished, request), *show(finished, None, request))


def history_choices(model_ids: list[str] | None, request: gr.Request | None = None) -> gr.Dropdown:
    """Every saved evaluation of the chosen models, newest first; the newest of each is chosen."""
    choices, newest = [], []
    for model_id in model_ids or []:
        try:
            entries = open_model(model_id, visitor(request)).evaluations()
        except DistilleryError:
            continue
        choices += [(f"{model_id} — {entry.label}", f"{model_id}{PICK}{entry.key}") for entry in entries]
        newest += [f"{model_id}{PICK}{entries[0].key}"] if entries else []
    return gr.Dropdown(choices=choices, value=newest, multiselect=True)


def chosen_reports(model_ids: list[str], picks: list[str] | None, viewer: str | None = None,
                   ) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """The reports to show, by column label: the picked evaluations of each chosen model, or its newest.

    A model shown with two of its evaluations gets one column per run, labelled with the run's time.
    """
    picked: dict[str, list[str]] = {}
    for pick in picks or []:
        model_id, _, key = pick.rpartition(PICK)
        picked.setdefault(model_id, []).append(key)
    reports, missing = {}, []
    for model_id in model_ids:
        try:
            folder = open_model(model_id, viewer)
            keys: list[str | None] = list(dict.fromkeys(picked.get(model_id, []))) or [None]
            found = [(key, folder.evaluation(key)) for key in keys]
        except DistilleryError as exc:
            missing.append(f"`{model_id}`: {exc}")
            continue
        found = [(key, report) for key, report in found if report is not None]
        if not found:
            missing.append(f"`{model_id}` has not been evaluated yet")
        for number, (key, report) in enumerate(found, 1):
            label = model_id if len(found) == 1 else f"{model_id} ({run_time(report, key)})"
            reports[label if label not in reports else f"{label} #{number}"] = report
    return reports, missing


def run_time(report: dict[str, Any], key: str | None) -> str:
    """When a run was saved, to the second where its key says (columns of one model must differ)."""
    if key and re.fullmatch(r"\d{8}-\d{6}-\d{9}", key):
        return f"{key[:4]}-{key[4:6]}-{key[6:8]} {key[9:11]}:{key[11:13]}:{key[13:15]} UTC"
    return evaluation_label(report, key or "").split(" · ")[0]


def show(model_ids: list[str] | None, picks: list[str] | None = None, request: gr.Request | None = None):
    if not model_ids:
        return "Choose at least one evaluated model.", None, None, None
    reports, missing = chosen_reports(model_ids, picks, visitor(request))
    notes = "".join(f"\n- {m}" for m in missing)
    if not reports:
        return f"No evaluation to show.{notes}", None, None, None
    return (verdict_text(reports) + notes, scores_table(reports), scores_chart(reports), retention_table(reports))


def verdict_text(reports: dict[str, dict[str, Any]]) -> str:
    lines = []
    for label, report in reports.items():
        v = report["verdict"]
        icon = {"optimal": "🟢", "viable": "🟡"}.get(v["verdict"], "🔴")
        speed = f"{v['speedup']:.0f}×" if v["speedup"] else "not measured"
        why = f" ({'; '.join(v['reasons'])})" if v["reasons"] else ""
        rows = "all rows" if report["limit"] is None else f"{report['limit']} rows per task"
        lines.append(f"- {icon} **{label}: {v['verdict']}**{why}. Retention {v['retention']:.1%}, speed-up {speed}; "
                     f"weakest: {v['weakest_type']} ({v['weakest_retention']:.1%}). Teacher {report['teacher']}, "
                     f"{rows}, {report['date']}.")
    return "\n".join(lines)


def teacher_column(teacher: str) -> str:
    """A teacher's column: its name without the organisation (the verdict line names it in full), so
    the header fits a phone's table; distinct teachers keep distinct columns."""
    return f"teacher: {teacher.rstrip('/').rsplit('/', 1)[-1]}"


def scores_table(reports: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """One row per task: its type, each distinct teacher's score, and each student's score."""
    columns: dict[str, dict[str, float]] = {}
    types: dict[str, str] = {}
    for label, report in reports.items():
        for side, column in (("teacher_scores", teacher_column(report["teacher"])), ("student_scores", label)):
            columns.setdefault(column, {}).update(report[side]["tasks"])
            types.update(report[side]["task_types"])
    tasks = list(types)
    frame = pd.DataFrame({"task": tasks, "type": [types[t] for t in tasks]})
    for column, scores in columns.items():
        frame[column] = [scores.get(t) for t in tasks]
    return frame


def scores_chart(reports: dict[str, dict[str, Any]]) -> go.Figure:
    """Grouped bars, one group per task: teachers in greys, students in colours.

    Readable by construction: the legend sits above the plot (it used to cover the task names), task
    names tilt and the margins grow to fit them, and the score axis runs from 0 (or the lowest score,
    if one is negative) to a little above the highest, so small differences are not squashed against
    a fixed 100.
    """
    frame = scores_table(reports)
    figure = go.Figure()
    greys = ["#6b6b6b", "#a3a3a3", "#cfcfcf"]
    for teachers, label in enumerate(c for c in frame.columns[2:] if c.startswith("teacher: ")):
        figure.add_bar(name=label, x=frame["task"], y=frame[label], marker_color=greys[teachers % len(greys)],
                       hovertemplate="%{x}: %{y:.1f}<extra>" + label + "</extra>")
    for label in (c for c in frame.columns[2:] if not c.startswith("teacher: ")):
        figure.add_bar(name=label, x=frame["task"], y=frame[label],
                       hovertemplate="%{x}: %{y:.1f}<extra>" + label + "</extra>")
    values = pd.to_numeric(frame.iloc[:, 2:].stack(), errors="coerce").dropna()
    low = min(0.0, float(values.min())) if len(values) else 0.0
    high = float(values.max()) if len(values) else 100.0
    series = len(frame.columns) - 2
    figure.update_layout(
        barmode="group", bargap=0.25, bargroupgap=0.05, height=460 + 22 * max(0, series - 3),
        margin={"t": 40 + 22 * ((series + 1) // 2), "b": 40, "l": 60, "r": 20},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "xanchor": "left", "x": 0},
        yaxis={"title": "score (mteb main score × 100)", "range": [low, min(100.0, high * 1.08) if high > 0 else 1.0],
               "automargin": True},
        xaxis={"tickangle": -30, "automargin": True, "title": None},
    )
    return figure


def retention_table(reports: dict[str, dict[str, Any]]) -> pd.DataFrame:
    rows = []
    for label, report in reports.items():
        kept = report["retention"]
        rows.append({"model": label, **{t: f"{r:.1%}" for t, r in kept["type_means"].items()},
                     "overall": f"{kept['overall']:.1%}"})
    return pd.DataFrame(rows)
