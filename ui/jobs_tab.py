"""Jobs tab: live progress of running jobs and the queued ones' places in line (polled with gr.Timer),
cancel, resume, model history.

In a public studio every list and action here is the visitor's own (`ui.visitors`, `jobs.ownership`).
"""

from __future__ import annotations

import html
import time
from typing import Any

import gradio as gr
import pandas as pd

from core.limits import Limits
from jobs import client
from jobs.ownership import owns_job, visible_models
from jobs.status import live_consumers, placed, read_status, worker_alive
from ui.forms import answer
from ui.visitors import expensive, limits_note, visitor

POLL_SECONDS = 1.0
JOB_COLUMNS = ["state", "job", "progress", "stage", "elapsed", "time left", "message"]  # state first: a phone shows 2
MODEL_COLUMNS = ["model", "name", "method", "created", "size MB", "dim", "vocabulary", "corpus texts",
                 "short domains", "total s"]
MESSAGE_CHARS = 90  # the table's message column; the full message is in the bar above it
STATE_ICONS = {"done": "✓", "running": "▶", "waiting": "○"}


def build() -> dict[str, Any]:
    worker_md = gr.Markdown(_worker_line())
    limits_note(Limits.jobs_line)
    bars = gr.HTML(label="Active jobs")
    jobs_df = gr.Dataframe(headers=JOB_COLUMNS, label="Jobs (newest first)", interactive=False, wrap=True,
                           elem_classes=["jobs-table"])
    with gr.Row(equal_height=True):
        job_choice = gr.Dropdown(label="Job to cancel (queued or running)", choices=[], allow_custom_value=True,
                                 scale=3, min_width=220)
        cancel_btn = gr.Button("Cancel this job", variant="stop", scale=1, min_width=140)
    cancel_md = gr.Markdown()
    cancelled = gr.State(None)  # the job the user last cancelled: its line follows it to the end
    with gr.Row(equal_height=True):
        resume_choice = gr.Dropdown(label="Job to resume (interrupted: its worker was killed or restarted)",
                                    choices=[], allow_custom_value=True, scale=3, min_width=220)
        resume_btn = gr.Button("Resume this job", scale=1, min_width=140)
    resume_md = gr.Markdown("A resumed job keeps what it finished: its corpus and teacher embeddings are reused.")
    gr.Markdown("### Finished models\n*short domains*: domains that got fewer texts than their share asked for "
                "(their sources ran out); the Compare tab shows which and by how much.")
    models_df = gr.Dataframe(headers=MODEL_COLUMNS, label="Models", interactive=False, wrap=True)
    with gr.Row(equal_height=True):
        eval_choice = gr.Dropdown(label="Model to evaluate (every set of its corpus language: English, French "
                                        "or both; thresholds and task choice in the Evaluate tab)", choices=[], allow_custom_value=True, scale=3,
                                  min_width=220)
        eval_btn = gr.Button("Evaluate model", scale=1, min_width=140)
    eval_md = gr.Markdown()
    timer = gr.Timer(POLL_SECONDS)
    outputs = [worker_md, bars, jobs_df, job_choice, models_df, cancel_md, resume_choice]
    inputs = [job_choice, cancelled, resume_choice]
    # The dropdowns are inputs too: a refresh keeps the job the user chose, so Cancel acts on it.
    timer.tick(refresh, inputs, outputs, api_visibility="private", show_progress="hidden")
    cancel_btn.click(cancel, job_choice, [cancel_md, cancelled], api_name="cancel_job")
    resume_btn.click(resume, resume_choice, resume_md, api_name="resume_job")
    eval_btn.click(evaluate, eval_choice, eval_md, api_name="evaluate_from_jobs")
    models_df.select(_picked_model, None, eval_choice, api_visibility="private")
    gr.Button("Refresh", size="sm").click(refresh, inputs, outputs, api_visibility="private")
    return {"timer": timer, "models_df": models_df, "refresh_outputs": outputs, "refresh_inputs": inputs}


def refresh(chosen: str | None = None, cancelled: str | None = None, resume_chosen: str | None = None,
            request: gr.Request | None = None):
    """Everything the tab shows. The job the user chose stays chosen while it is queued or running;
    only when it has ended (or none was chosen) does the choice move to the newest active job. The
    line under Cancel follows the job last cancelled until it has stopped. The resume choice lists
    the interrupted jobs and likewise keeps the user's."""
    jobs = client.list_jobs(owner=visitor(request))
    table = pd.DataFrame([_job_row(j) for j in jobs], columns=JOB_COLUMNS)
    active = [j for j in jobs if j.get("state") in ("queued", "running")]
    choices = [j["job_id"] for j in active]
    value = chosen if chosen in choices else (choices[0] if choices else None)
    cancel_line = gr.Markdown() if not cancelled else _cancel_line(cancelled, read_status(cancelled))
    interrupted = [j["job_id"] for j in jobs if j.get("state") == "interrupted"]
    resume_value = resume_chosen if resume_chosen in interrupted else (interrupted[0] if interrupted else None)
    return (_worker_line(), _bars(active), table, gr.Dropdown(choices=choices, value=value), models_table(request),
            cancel_line, gr.Dropdown(choices=interrupted, value=resume_value))


def models_table(request: gr.Request | None = None) -> pd.DataFrame:
    rows = []
    for folder in visible_models(visitor(request)):
        r = folder.record
        rows.append([r.id, r.name, r.method, r.created, folder.size_mb(), r.dimension, r.vocabulary_size,
                     r.corpus["size"], len(r.shortfalls), r.total_seconds()])
    return pd.DataFrame(rows, columns=MODEL_COLUMNS)


def _picked_model(event: gr.SelectData):
    """A click on a row of the models table chooses that model for evaluation."""
    return gr.Dropdown(value=event.row_value[0]) if event.row_value else gr.Dropdown()


def evaluate(model_id: str | None, request: gr.Request | None = None) -> str:
    def queue(model_id: str) -> dict[str, Any]:
        with expensive(request, "an evaluation"):
            return client.submit_evaluation(model_id, owner=visitor(request))

    return answer(model_id, "Choose a finished model first (or click its row above).", queue,
                  lambda status: f"Evaluation of `{model_id}` queued as `{status['job_id']}`. "
                                 f"{status.get('warning', '')}")


def cancel(job_id: str | None, request: gr.Request | None = None) -> tuple[str, str | None]:
    """Cancel the job the dropdown shows; the answer names it, and the refresh keeps its line current
    (only for a job of this visitor's: another's line would show its status)."""
    owner = visitor(request)
    line = answer(job_id, "Choose a queued or running job first.", lambda j: client.cancel(j, owner),
                  lambda s: _cancel_line(job_id, s))
    return line, (job_id if job_id and owns_job(read_status(job_id) or {}, owner) else None)


def resume(job_id: str | None, request: gr.Request | None = None) -> str:
    """Queue an interrupted job again (`jobs.client.resume`); a job that cannot be resumed gets the reason."""
    owner = visitor(request)
    return answer(job_id, "Choose an interrupted job first.", lambda j: client.resume(j, owner),
                  lambda s: f"▶ `{job_id}` is queued again: {s.get('message', '')}. {s.get('warning', '')}".strip())


def _cancel_line(job_id: str | None, status: dict[str, Any] | None) -> str:
    state = (status or {}).get("state", "unknown")
    if state in ("queued", "running"):
        return f"⏳ Cancelling `{job_id}`: it stops at its next progress step."
    return f"Job `{job_id}`: **{state}** — {(status or {}).get('message', '')}"


def api_job_status(job_id: str, request: gr.Request | None = None) -> dict[str, Any]:
    """The raw status of one job (for scripts and tests through the API); a queued job with its
    `position` in the queue; another visitor's job is unknown."""
    status = read_status(job_id)
    if status is None or not owns_job(status, visitor(request)):
        return {"job_id": job_id, "state": "unknown"}
    return placed([status])[0]


def api_jobs(request: gr.Request | None = None) -> list[dict[str, Any]]:
    """The statuses the tab lists (`jobs.client.list_jobs`: newest first, queued ones with their
    position; in a public studio the visitor's own), so a script sees the same history and queue
    as a person."""
    return client.list_jobs(owner=visitor(request))


def _worker_line() -> str:
    consumers = live_consumers()
    if len(consumers) > 1 or any(c.get("texts") for c in consumers):
        return f"🟢 {len(consumers)} workers are running: " + "; ".join(_consumer(c) for c in consumers) + "."
    if consumers or worker_alive():  # a live consumer's beat already says so: no second read
        return "🟢 A worker is running."
    return ("🔴 **No worker is running**: queued jobs wait until one starts (`make run` or `python app.py` "
            "start one).")


def _consumer(beat: dict[str, Any]) -> str:
    """One live worker (its heartbeat, `jobs.status.live_consumers`): where, on what, how fast."""
    rate = beat.get("texts_per_s")
    speed = f", {rate:,.0f} texts/s over {beat['texts']:,} teacher texts" if rate else ", no shard yet"
    return f"`{beat['worker']}` ({beat.get('device', 'CPU')}{speed})"


def _job_row(status: dict[str, Any]) -> list[Any]:
    state = status.get("state", "unknown")
    message = " ".join(filter(None, (status.get("error") or status.get("message"), status.get("warning"))))
    if len(message) > MESSAGE_CHARS:
        message = message[: MESSAGE_CHARS - 1] + "…"
    running = state == "running"
    return [state, status.get("job_id"), f"{100 * _overall(status):.0f}%", _place(status) or _stage_label(status),
            _seconds(_elapsed(status)), _seconds(_time_left(status)) if running else "", message]


def _overall(status: dict[str, Any]) -> float:
    """The job's overall fraction (older statuses only had the stage's)."""
    if status.get("state") == "done":
        return 1.0
    return float(status.get("overall", status.get("fraction", 0.0)) or 0.0)


def _place(status: dict[str, Any]) -> str:
    """A queued job's place in the queue ("2nd in line"), or "" when it has none (not queued, or just taken)."""
    position = status.get("position") if status.get("state") == "queued" else None
    if not position:
        return ""
    suffix = "th" if position % 100 in (11, 12, 13) else {1: "st", 2: "nd", 3: "rd"}.get(position % 10, "th")
    return f"{position}{suffix} in line"


def _stage_label(status: dict[str, Any]) -> str:
    steps, stage = status.get("steps") or [], status.get("stage", "")
    names = [name for name, _, _ in steps]
    if stage in names and status.get("state") == "running":
        return f"{stage} ({names.index(stage) + 1}/{len(names)})"
    return stage


def _elapsed(status: dict[str, Any]) -> float | None:
    """Elapsed time now, not at the last write: a long step still shows the clock moving."""
    elapsed = status.get("elapsed")
    if elapsed is None or status.get("state") != "running":
        return elapsed
    return elapsed + _since_written(status)


def _time_left(status: dict[str, Any]) -> float | None:
    """The job's ETA counted down since it was written (a step that reports rarely still counts down)."""
    eta = status.get("eta")
    if eta is None:
        return None
    return max(0.0, eta - _since_written(status))


def _since_written(status: dict[str, Any]) -> float:
    """Seconds since the worker last wrote this status (the tab polls more often than it writes)."""
    return max(0.0, time.time() - status.get("updated", time.time()))


def _seconds(value: float | None) -> str:
    if value is None:
        return ""
    hours, rest = divmod(int(value), 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


def _bars(active: list[dict[str, Any]]) -> str:
    """Per active job: one overall bar, the running stage with its own share, the time left, and the
    list of stages (done ✓, running ▶, waiting ○)."""
    if not active:
        return "<p>No job is queued or running.</p>"
    return "".join(_bar(status) for status in active)


def _bar(status: dict[str, Any]) -> str:
    pct = 100 * _overall(status)
    job = html.escape(str(status.get("name") or status["job_id"]))
    if status.get("state") == "queued":
        place = " · ".join(filter(None, ("queued", _place(status), str(status.get("message", "")))))
        head = f"<b>{job}</b> · {html.escape(place)}"
    else:
        left = _time_left(status)
        eta = f" · about {_seconds(left)} left" if left is not None and left >= 1 else ""
        if left is not None and left < 1 and pct < 99:
            eta = " · finishing this step"
        stage = f"{_stage_label(status)} {100 * float(status.get('fraction', 0)):.0f}%"
        head = (f"<b>{job}</b> · <b>{pct:.0f}%</b> of the job{eta} · elapsed {_seconds(_elapsed(status))}"
                f"<br>step: {html.escape(stage)} — {html.escape(str(status.get('message', '')))}")
    steps = " ".join(
        f"<span class='job-step job-step-{state}' title='{state}'>{STATE_ICONS.get(state, '')} {html.escape(name)}</span>"
        for name, state, _ in status.get("steps") or [])
    return (f"<div class='job-bar' data-job='{html.escape(status['job_id'])}'><div class='job-head'>{head}</div>"
            f"<div class='job-track' role='progressbar' aria-valuenow='{pct:.0f}' aria-valuemin='0' "
            f"aria-valuemax='100'><div class='job-fill' style='width:{pct:.1f}%'></div></div>"
            f"<div class='job-steps'>{steps}</div></div>")
