"""Compare tab: teacher and student top-5 side by side on the user's query, and a speed chart."""

from __future__ import annotations

from typing import Any

import gradio as gr
import pandas as pd

from core.artifact.folder import ModelFolder
from core.corpus.sources import SourceSpec, iter_documents
from core.corpus.uploads import check_upload
from core.errors import DistilleryError
from core.serving.compare import CompareSession, CompareSessions, model_overview
from core.serving.speed_chart import speed_figure
from core.serving.timing import all_cores
from ui.forms import answer, upload_path

HIT_COLUMNS = ["rank", "score", "text"]
MODEL_COLUMNS = ["model", "id", "method", "dims", "tokens", "size_mb", "load_ms"]
MAX_TIMING_QUERIES = 200
SESSIONS = CompareSessions()  # bounded: least recently used sessions are dropped


def build() -> dict[str, Any]:
    with gr.Row():
        model = gr.Dropdown(label="Model", choices=model_choices(), allow_custom_value=True, scale=4)
        refresh_btn = gr.Button("↻ models", size="sm", scale=1)
    info_md = gr.Markdown()
    models_df = gr.Dataframe(value=model_rows, label="Finished models: size on disk and load time "
                             "(StaticModel.from_pretrained, measured here)", interactive=False)
    with gr.Accordion("Collection to search (default: a sample of the model's corpus)", open=False):
        own_texts = gr.Textbox(label="Your own texts, one per line (leave empty for the corpus sample)", lines=5)
        own_file = gr.File(label="…or a .txt file, one text per line", file_types=[".txt"])
    with gr.Row():
        query = gr.Textbox(label="Query", placeholder="How do I reset my password?", scale=4)
        search_btn = gr.Button("Search", variant="primary", scale=1)
    summary_md = gr.Markdown()
    with gr.Row():
        teacher_df = gr.Dataframe(headers=HIT_COLUMNS, label="Teacher top-5", wrap=True, interactive=False)
        student_df = gr.Dataframe(headers=HIT_COLUMNS, label="Student top-5", wrap=True, interactive=False)
    with gr.Row():
        timing_queries = gr.Textbox(label="Queries to time, one per line (default: your query and 30 texts of "
                                    "the collection, cut to 12 words)", lines=3, scale=3)
        threads = gr.CheckboxGroup(label="Threads (torch, BLAS and the tokenizer)", choices=thread_choices(),
                                   value=thread_choices(), scale=1)
    speed_btn = gr.Button("Measure speed on this collection")
    speed_plot = gr.Plot(label="Latency and throughput, teacher vs student")
    speed_md = gr.Markdown()

    refresh_btn.click(lambda: (gr.Dropdown(choices=model_choices()), model_rows()), None, [model, models_df],
                      api_name="refresh_models")
    model.change(model_info, model, info_md, api_name="model_info")
    search_args = [model, query, own_texts, own_file]
    search_btn.click(run_search, search_args, [summary_md, teacher_df, student_df], api_name="search")
    query.submit(run_search, search_args, [summary_md, teacher_df, student_df], api_visibility="private")
    speed_btn.click(run_speed, [*search_args, timing_queries, threads], [speed_plot, speed_md], api_name="measure_speed")
    return {"model": model}


def model_choices() -> list[tuple[str, str]]:
    return [(f"{f.record.title} ({f.id})", f.id) for f in ModelFolder.finished()]


def model_rows() -> pd.DataFrame:
    return pd.DataFrame(model_overview(ModelFolder.finished()), columns=MODEL_COLUMNS)


def thread_choices() -> list[str]:
    return [str(n) for n in sorted({1, all_cores()})]


def model_info(model_id: str | None) -> str:
    return answer(model_id, "", ModelFolder.open, _describe)


def _describe(folder: ModelFolder) -> str:
    record = folder.record
    shortfalls = "".join(f"\n- ⚠️ {s['message']}" for s in record.shortfalls)
    return (f"**{record.title}** · {record.method} method · teacher `{record.teacher.name}` · "
            f"{record.dimension} dims · {record.vocabulary_size:,} tokens · {folder.size_mb()} MB on disk · "
            f"corpus {record.corpus['size']:,} texts{shortfalls}")


def _session(model_id: str | None, own_texts: str | None, own_file: Any, progress: gr.Progress) -> CompareSession:
    if not model_id:
        raise DistilleryError("Choose a model first (finished models appear after their job is done).")
    folder = ModelFolder.open(model_id)
    texts = _user_texts(own_texts, own_file)
    return SESSIONS.get(folder, texts, lambda stage, fraction, message="": progress(fraction, desc=message))


def _user_texts(own_texts: str | None, own_file: Any) -> list[str] | None:
    if own_file:
        path = upload_path(own_file)
        if check_upload(path) != "text":
            raise DistilleryError("Upload a .txt file with one text per line.")
        return list(iter_documents(SourceSpec("upload", "web", "upload", str(path))))
    if own_texts and own_texts.strip():
        return own_texts.splitlines()
    return None


def run_search(model_id, query, own_texts, own_file, progress=gr.Progress()):
    try:
        session = _session(model_id, own_texts, own_file, progress)
        result = session.search(query, k=5)
    except DistilleryError as exc:
        raise gr.Error(str(exc)) from exc
    frames = [pd.DataFrame([[h.rank, round(h.score, 4), h.text] for h in hits], columns=HIT_COLUMNS)
              for hits in (result.teacher, result.student)]
    summary = (f"**{result.overlap} of {len(result.teacher)}** results shared · query encode: teacher "
               f"{result.teacher_ms:.1f} ms, student {result.student_ms:.2f} ms · collection of "
               f"{len(session.texts):,} texts")
    return summary, frames[0], frames[1]


def run_speed(model_id, query, own_texts, own_file, timing_queries=None, threads=None, progress=gr.Progress()):
    try:
        session = _session(model_id, own_texts, own_file, progress)
        queries = _timing_queries(timing_queries, query, session.texts)
        counts = sorted({int(t) for t in threads or [all_cores()]})
    except (DistilleryError, ValueError) as exc:
        raise gr.Error(str(exc)) from exc
    progress(0.0, desc="timing teacher and student")
    steps = 2 * len(counts)
    done = iter(range(1, steps + 1))
    reports = session.speed(queries, counts, on_report=lambda r: progress(next(done) / steps,
                            desc=f"{r.label} timed at {r.threads} thread(s)"))
    lines = [f"Threads: {', '.join(map(str, counts))} (torch, BLAS and the tokenizer) · {len(queries)} single "
             f"queries · {reports[0].batch_texts} texts for throughput · student load "
             f"{session.student_load_seconds * 1000:.0f} ms"]
    for n in counts:
        teacher, student = (next(r for r in reports if r.label == label and r.threads == n)
                            for label in ("teacher", "student"))
        lines.append(f"- **{n} thread{'s' if n > 1 else ''}**: student vs teacher **{teacher.query_p50_ms / max(student.query_p50_ms, 1e-9):.0f}× "
                     f"lower p50 latency** ({student.query_p50_ms:.2f} vs {teacher.query_p50_ms:.1f} ms), "
                     f"**{student.throughput_per_s / max(teacher.throughput_per_s, 1e-9):.0f}× higher throughput** "
                     f"({student.throughput_per_s:,.0f} vs {teacher.throughput_per_s:,.0f} texts/s)")
    return speed_figure(reports), "\n".join(lines)


def _timing_queries(timing_queries: str | None, query: str | None, collection: list[str]) -> list[str]:
    """The user's own queries when given, else their search query and short texts of the collection."""
    own = [q.strip() for q in (timing_queries or "").splitlines() if q.strip()]
    if own:
        return own[:MAX_TIMING_QUERIES]
    return ([query] if query and query.strip() else []) + [" ".join(t.split()[:12]) for t in collection[:30]]
