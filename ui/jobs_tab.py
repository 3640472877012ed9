"""Jobs tab: live progress of queued and running jobs (polled with gr.Timer), cancel, model history."""

from __future__ import annotations

import html
from typing import Any

import gradio as gr
import pandas as pd

from core.artifact.folder import ModelFolder
from jobs import client
from jobs.status import worker_alive
from ui.forms import answer

POLL_SECONDS = 1.0
JOB_COLUMNS = ["job", "state", "stage", "progress", "message", "elapsed", "eta"]
MODEL_COLUMNS = ["model", "name", "method", "created", "size MB", "dim", "vocabulary", "corpus texts", "shortfalls",
                 "total s"]


def build() -> dict[str, Any]:
    worker_md = gr.Markdown(_worker_line())
    bars = gr.HTML(label="Active jobs")
    jobs_df = gr.Dataframe(headers=JOB_COLUMNS, label="Jobs", interactive=False, wrap=True)
    with gr.Row():
        job_choice = gr.Dropdown(label="Job", choices=[], allow_custom_value=True, scale=3)
        cancel_btn = gr.Button("Cancel job", variant="stop", scale=1)
    cancel_md = gr.Markdown()
    gr.Markdown("### Finished models")
    models_df = gr.Dataframe(headers=MODEL_COLUMNS, label="Models", interactive=False, wrap=True)
    with gr.Row():
        eval_choice = gr.Dropdown(label="Model to evaluate (the whole development suite; thresholds and task "
                                        "choice in the Evaluate tab)", choices=[], allow_custom_value=True, scale=3)
        eval_btn = gr.Button("Evaluate model", scale=1)
    eval_md = gr.Markdown()
    timer = gr.Timer(POLL_SECONDS)
    outputs = [worker_md, bars, jobs_df, job_choice, models_df]
    # The dropdown is an input too: a refresh keeps the job the user chose, so Cancel acts on it.
    timer.tick(refresh, job_choice, outputs, api_visibility="private", show_progress="hidden")
    cancel_btn.click(cancel, job_choice, cancel_md, api_name="cancel_job")
    eval_btn.click(evaluate, eval_choice, eval_md, api_name="evaluate_from_jobs")
    models_df.select(_picked_model, None, eval_choice, api_visibility="private")
    gr.Button("Refresh", size="sm").click(refresh, job_choice, outputs, api_visibility="private")
    return {"timer": timer, "models_df": models_df, "refresh_outputs": outputs}


def refresh(chosen: str | None = None):
    """Everything the tab shows. The job the user chose stays chosen while it is queued or running;
    only when it has ended (or none was chosen) does the choice move to the newest active job."""
    jobs = client.list_jobs()
    table = pd.DataFrame([_job_row(j) for j in jobs], columns=JOB_COLUMNS)
    active = [j for j in jobs if j.get("state") in ("queued", "running")]
    choices = [j["job_id"] for j in active]
    value = chosen if chosen in choices else (choices[0] if choices else None)
    return (_worker_line(), _bars(active), table, gr.Dropdown(choices=choices, value=value), models_table())


def models_table() -> pd.DataFrame:
    rows = []
    for folder in ModelFolder.finished():
        r = folder.record
        rows.append([r.id, r.name, r.method, r.created, folder.size_mb(), r.dimension, r.vocabulary_size,
                     r.corpus["size"], len(r.shortfalls), r.total_seconds()])
    return pd.DataFrame(rows, columns=MODEL_COLUMNS)


def _picked_model(event: gr.SelectData):
    """A click on a row of the models table chooses that model for evaluation."""
    return gr.Dropdown(value=event.row_value[0]) if event.row_value else gr.Dropdown()


def evaluate(model_id: str | None) -> str:
    return answer(model_id, "Choose a finished model first (or click its row above).", client.submit_evaluation,
                  lambda status: f"Evaluation of `{model_id}` queued as `{status['job_id']}`. "
                                 f"{status.get('warning', '')}")


def cancel(job_id: str | None) -> str:
    return answer(job_id, "Choose a queued or running job first.", client.cancel,
                  lambda status: f"Job `{job_id}`: {status.get('state')} — {status.get('message', '')}")


def api_job_status(job_id: str) -> dict[str, Any]:
    """The raw status of one job (for scripts and tests through the API)."""
    from jobs.status import read_status

    return read_status(job_id) or {"job_id": job_id, "state": "unknown"}


def _worker_line() -> str:
    if worker_alive():
        return "🟢 A worker is running."
    return ("🔴 **No worker is running**: queued jobs wait until one starts (`make run` or `python app.py` "
            "start one).")


def _job_row(status: dict[str, Any]) -> list[Any]:
    state = status.get("state", "unknown")
    message = " ".join(filter(None, (status.get("error") or status.get("message"), status.get("warning"))))
    eta = status.get("eta")
    return [status.get("job_id"), state, status.get("stage", ""), f"{100 * status.get('fraction', 0):.0f}%",
            message, _seconds(status.get("elapsed")), _seconds(eta) if state == "running" else ""]


def _seconds(value: float | None) -> str:
    if value is None:
        return ""
    minutes, seconds = divmod(int(value), 60)
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


def _bars(active: list[dict[str, Any]]) -> str:
    if not active:
        return "<p>No job is queued or running.</p>"
    parts = []
    for status in active:
        pct = 100 * float(status.get("fraction", 0))
        label = html.escape(f"{status['job_id']} · {status.get('stage', '')} · {pct:.0f}% · {status.get('message', '')}")
        eta = f" · about {_seconds(status['eta'])} left in this stage" if status.get("eta") else ""
        parts.append(
            f"<div style='margin:6px 0'><div>{label}{html.escape(eta)}</div>"
            f"<div style='background:#e5e7eb;border-radius:4px;height:12px'>"
            f"<div style='width:{pct:.1f}%;background:#f97316;height:12px;border-radius:4px'></div></div></div>"
        )
    return "".join(parts)
