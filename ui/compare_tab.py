"""Compare tab: teacher and student top-5 side by side on the user's query, and a speed chart.

Choosing a model (the newest finished one is chosen when the page loads) opens its session in the
background with a status line that moves, so the first search does not pay for loading the teacher.

In a public studio the models offered, and the ones a request may name, are those the visitor may
see (`jobs.ownership`): their own and the shared ones.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import gradio as gr
import pandas as pd

from core.artifact.folder import ModelFolder
from core.corpus.uploads import upload_lines
from core.encoders.threads import all_cores
from core.errors import DistilleryError
from core.languages import LANGUAGES
from core.limits import Limits
from core.serving.compare import (
    OFF_COLLECTION_BELOW,
    SAMPLE_QUERIES,
    CompareSession,
    CompareSessions,
    Comparison,
    model_overview,
)
from core.serving.routing import DEFAULT_THRESHOLD
from core.serving.routing_chart import queries_curve, route_queries, suite_curve, tradeoff_figure
from core.serving.speed_chart import speed_figure
from jobs.ownership import open_model, visible_models
from ui.forms import answer, upload_path
from ui.queueing import SESSION, TIMING
from ui.visitors import expensive, limits_note, visitor

HIT_COLUMNS = ["#", "score", "text", "shared"]  # short headers: at 400 px each table is 300 px wide
MODEL_COLUMNS = ["model", "id", "method", "dims", "tokens", "size_mb", "load_ms"]
MAX_TIMING_QUERIES = 200
TABLE_CHARS = 220  # about four wrapped lines in half the page's width: five rows fit without a scroll bar
SESSIONS = CompareSessions()  # bounded: least recently used sessions are dropped
POLL_SECONDS = 0.5
SIDES = ("teacher", "student")

SCALE_NOTE = (
    "ℹ️ **Scores are on different scales.** Each score is a cosine similarity in that model's own "
    "embedding space: the student's are usually higher across the board than the teacher's for the "
    "same texts, so a student score of 0.5 is not better than a teacher score of 0.4. Compare the "
    "**ranks** and the **shared** hits (✓), not the score values. Click a row to read its full text."
)
THREADS_NOTE = (
    "**Why can the teacher be slower at 2 threads than at 1?** torch splits each layer's work between "
    "its threads and waits for the last one to finish before the next layer. When the machine has no "
    "idle core (the web server, a job in the worker, another program, and the tokenizer's own thread "
    "pool all want one), the second thread is often paused, and every layer waits for it. Measured "
    "here on 2 cores under a load average of 5: one short query took 15–26 ms at 1 thread but 22–103 ms "
    "(p95 200–320 ms) at 2; with the tokenizer's pool turned off, 14–73 ms. On the same machine when it "
    "was quieter, 2 threads doubled the throughput (35 vs 17 texts/s). So read the 2-thread figures "
    "with the load average printed above the chart; the student, a table lookup, barely notices."
)


def build() -> dict[str, Any]:
    with gr.Row():
        model = gr.Dropdown(label="Model", choices=model_choices(), allow_custom_value=True, scale=4)
        refresh_btn = gr.Button("↻ models", size="sm", scale=1)
    status_md = gr.Markdown()
    info_md = gr.Markdown()
    models_df = gr.Dataframe(label="Finished models: size on disk and load time "
                             "(StaticModel.from_pretrained, measured here)", interactive=False)
    with gr.Accordion("Collection to search (default: a sample of the model's corpus)", open=False):
        own_texts = gr.Textbox(label="Your own texts, one per line (leave empty for the corpus sample)", lines=5)
        own_file = gr.File(label="…or a .txt file, one text per line", file_types=[".txt"])
    with gr.Row():
        query = gr.Textbox(label="Query", placeholder="How do I reset my password?", scale=4)
        search_btn = gr.Button("Search", variant="primary", scale=1)
    with gr.Row():
        for language, queries in SAMPLE_QUERIES.items():  # a click fills the query box (in the browser)
            gr.Examples([[q] for q in queries], [query], label=f"{LANGUAGES[language]} sample queries",
                        api_visibility="private")
    summary_md = gr.Markdown()
    with gr.Row():
        tables = [gr.Dataframe(headers=HIT_COLUMNS, label=f"{side.capitalize()} top-5", wrap=True,
                               interactive=False, max_height=1200, column_widths=["9%", "20%", "49%", "22%"])
                  for side in SIDES]
    gr.Markdown(SCALE_NOTE)
    full_md = gr.Markdown()
    hits_state = gr.State({side: [] for side in SIDES})
    with gr.Row():
        timing_queries = gr.Textbox(label="Queries to time, one per line (default: your query and 30 texts of "
                                    "the collection, cut to 12 words)", lines=3, scale=3)
        threads = gr.CheckboxGroup(label="Threads (torch, BLAS and the tokenizer)", choices=thread_choices(),
                                   value=thread_choices(), scale=1)
    speed_btn = gr.Button("Measure speed on this collection")
    limits_note(Limits.rate_line)
    speed_plot = gr.Plot(label="Latency and throughput, teacher vs student")
    speed_md = gr.Markdown()
    gr.Markdown(THREADS_NOTE)
    gr.Markdown(ROUTING_NOTE)
    suite_figure, suite_text = routing_suite()
    with gr.Row():
        gr.Plot(value=suite_figure, label="Routing on the development suite")
        queries_plot = gr.Plot(label="Routing on your queries")
    gr.Markdown(suite_text)
    route_btn = gr.Button("Show routing on the queries searched in this session")
    route_md = gr.Markdown()
    searched = gr.State([])

    refresh_btn.click(refresh_models, model, [model, models_df], api_name="refresh_models")
    model.change(model_info, model, info_md, api_name="model_info")
    model.change(prepare_session, model, status_md, api_name="prepare_session", **SESSION)
    search_args = [model, query, own_texts, own_file]
    search_outputs = [summary_md, *tables, hits_state, full_md]
    for trigger in (search_btn.click(run_search, search_args, search_outputs, api_name="search"),
                    query.submit(run_search, search_args, search_outputs, api_visibility="private")):
        trigger.success(remember_query, [query, searched], searched, api_visibility="private")
    route_btn.click(run_routing, [*search_args, searched], [queries_plot, route_md], api_name="routing", **TIMING)
    for side, table in zip(SIDES, tables):
        table.select(full_text_shower(side), hits_state, full_md, api_visibility="private")
    speed_btn.click(run_speed, [*search_args, timing_queries, threads], [speed_plot, speed_md], api_name="measure_speed", **TIMING)
    return {"model": model, "info": info_md, "status": status_md, "models_df": models_df}


def on_page_load(load: Callable[..., Any], parts: dict[str, Any]) -> None:
    """Choose the newest model when the page loads (`load`: `ui.visitors.page_load`), list the models,
    describe the chosen one and start opening its session.

    Chained explicitly: a value set by `demo.load` does not fire the dropdown's `change`.
    """
    loaded = load(newest_model, None, parts["model"], api_name="compare_models", api_visibility="undocumented")
    loaded.then(model_rows, None, parts["models_df"], api_visibility="private")
    loaded.then(model_info, parts["model"], parts["info"], api_visibility="private")
    loaded.then(prepare_session, parts["model"], parts["status"], api_visibility="private", **SESSION)


def model_choices(request: gr.Request | None = None) -> list[tuple[str, str]]:
    """The finished models the visitor may use (every one in a private studio), newest first."""
    return [(f"{f.record.title} ({f.id})", f.id) for f in visible_models(visitor(request))]


def kept_or_newest(current: str | None = None, request: gr.Request | None = None,
                   ) -> tuple[list[tuple[str, str]], str | None]:
    """The finished models, and the choice: `current` while it still exists, else the newest
    (`ModelFolder.finished` is newest first), so at page load a person coming from a finished job
    finds it chosen, its session already opening. The Ship tab's list follows the same rule."""
    choices = model_choices(request)
    ids = [model_id for _, model_id in choices]
    return choices, current if current in ids else (ids[0] if ids else None)


def model_dropdown(current: str | None = None, request: gr.Request | None = None) -> gr.Dropdown:
    choices, value = kept_or_newest(current, request)
    return gr.Dropdown(choices=choices, value=value)


def newest_model(request: gr.Request | None = None) -> gr.Dropdown:
    """The page's starting choice: the newest model the visitor may use."""
    return model_dropdown(None, request)


def refresh_models(current: str | None, request: gr.Request | None = None) -> tuple[gr.Dropdown, pd.DataFrame]:
    """The current choice is kept while it still exists; otherwise the newest model is chosen."""
    return model_dropdown(current, request), model_rows(request)


def model_rows(request: gr.Request | None = None) -> pd.DataFrame:
    return pd.DataFrame(model_overview(visible_models(visitor(request))), columns=MODEL_COLUMNS)


def thread_choices() -> list[str]:
    return [str(n) for n in sorted({1, all_cores()})]


def model_info(model_id: str | None, request: gr.Request | None = None) -> str:
    return answer(model_id, "", lambda m: open_model(m, visitor(request)), _describe)


def _describe(folder: ModelFolder) -> str:
    record = folder.record
    shortfalls = "".join(f"\n- ⚠️ {s['message']}" for s in record.shortfalls)
    return (f"**{record.title}** · {record.method} method · teacher `{record.teacher.name}` · "
            f"{record.dimension} dims · {record.vocabulary_size:,} tokens · {folder.size_mb()} MB on disk · "
            f"corpus {record.corpus['size']:,} texts{shortfalls}")


def prepare_session(model_id: str | None, request: gr.Request | None = None) -> Iterator[str]:
    """Open the chosen model's session (both models, the corpus sample indexed) in the background,
    yielding a status line until it is ready; the search then starts at once."""
    if not model_id:
        yield ""
        return
    try:
        folder = open_model(model_id, visitor(request))
        if SESSIONS.is_open(folder):
            yield _ready(SESSIONS.get(folder), None)
            return
        opening = SESSIONS.open_in_background(folder)
    except DistilleryError as exc:
        yield f"❌ {exc}"
        return
    start = time.perf_counter()
    while True:
        yield (f"⏳ Loading the teacher and the student, so that searches answer at once: {opening.message} "
               f"({time.perf_counter() - start:.0f} s)")
        if opening.wait(POLL_SECONDS):
            break
    if opening.error is not None or opening.session is None:
        yield f"❌ This model cannot be compared: {opening.error}"
        return
    yield _ready(opening.session, time.perf_counter() - start)


def _ready(session: CompareSession, seconds: float | None) -> str:
    took = f" in {seconds:.1f} s" if seconds is not None else ""
    return (f"✅ Ready{took}: teacher `{session.teacher.name}` and student loaded, "
            f"{len(session.texts):,} texts of the corpus sample indexed. Searches answer at once.")


def _session(model_id: str | None, own_texts: str | None, own_file: Any, progress: gr.Progress,
             request: gr.Request | None) -> CompareSession:
    folder, texts = _choice(model_id, own_texts, own_file, request)
    return SESSIONS.get(folder, texts, lambda stage, fraction, message="": progress(fraction, desc=message))


def _choice(model_id: str | None, own_texts: str | None, own_file: Any,
            request: gr.Request | None) -> tuple[ModelFolder, list[str] | None]:
    if not model_id:
        raise DistilleryError("Choose a model first (finished models appear after their job is done).")
    return open_model(model_id, visitor(request)), _user_texts(own_texts, own_file)


def _user_texts(own_texts: str | None, own_file: Any) -> list[str] | None:
    if own_file:
        return upload_lines(upload_path(own_file))
    if own_texts and own_texts.strip():
        return own_texts.splitlines()
    return None


def run_search(model_id, query, own_texts, own_file, request: gr.Request | None = None, progress=gr.Progress()):
    """Yields a loading line first when the session is not open yet, then the two tables."""
    empty = pd.DataFrame(columns=HIT_COLUMNS)
    try:
        folder, texts = _choice(model_id, own_texts, own_file, request)
        if not SESSIONS.is_open(folder, texts):
            what = "your texts" if texts is not None else "the corpus sample"
            yield (f"⏳ Loading the teacher and the student and embedding {what} (first search on this "
                   f"collection only)…", empty, empty, {side: [] for side in SIDES}, "")
        session = _session(model_id, own_texts, own_file, progress, request)
        result = session.search(query, k=5)
    except DistilleryError as exc:
        raise gr.Error(str(exc)) from exc
    yield (summary(result, session, texts is not None), *hit_tables(result),
           {"teacher": [h.text for h in result.teacher], "student": [h.text for h in result.student]}, "")


def summary(result: Comparison, session: CompareSession, own_texts: bool) -> str:
    """The line above the tables, and a warning when the query is off the collection."""
    line = (f"**{result.overlap} of {len(result.teacher)}** results shared · query encode: teacher "
            f"{result.teacher_ms:.1f} ms, student {result.student_ms:.2f} ms · collection of "
            f"{len(session.texts):,} texts")
    if result.teacher_read:
        line += (f"\n\n⚠️ **This query is long** ({len(result.query):,} characters): the teacher reads only its "
                 f"first {result.teacher_read} tokens, so the two models are compared on its beginning.")
    if result.student_blind:
        line += ("\n\n⚠️ **The student knows none of the query's tokens** (emoji or a script its vocabulary "
                 "lacks): its vector is empty, so its ranking says nothing. Add such words to the corpus, or "
                 "search in words.")
    if not result.off_collection:
        return line
    best = result.teacher[0].score if result.teacher else 0.0
    remedy = ("add texts that answer it" if own_texts else
              "paste your own texts under “Collection to search”, or build the model with a larger search "
              "collection (Recipe tab, collection size, up to 5,000)")
    return (f"{line}\n\n⚠️ **This query looks off the collection**: even the teacher's best match scores only "
            f"{best:.2f} (below {OFF_COLLECTION_BELOW}), so nothing here answers it and neither model's hits "
            f"say much about the student's quality. To try it fairly, {remedy}.")


def hit_tables(result: Comparison) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One table per model: rank, score, the text cut to a readable length, and where the other model
    ranked the same text ("✓ student #2"), so agreement shows at a glance."""
    frames = []
    for side, other in (("teacher", "student"), ("student", "teacher")):
        hits = getattr(result, side)
        rows = [[h.rank, round(h.score, 3), cut(h.text), f"✓ {other} #{r}" if r else ""]
                for h, r in zip(hits, result.rank_in_other(side))]
        frames.append(pd.DataFrame(rows, columns=HIT_COLUMNS))
    return frames[0], frames[1]


def cut(text: str, limit: int = TABLE_CHARS) -> str:
    """`text` whole when short, else its first words up to `limit` characters and an ellipsis."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    head = text[:limit].rsplit(" ", 1)[0] if " " in text[:limit] else text[:limit]
    return head.rstrip(" ,;:.") + " …"


def full_text_shower(side: str) -> Callable[..., str]:
    """The click handler of one table: the full text of the clicked row, below the tables."""

    def show(hits: dict[str, list[str]], event: gr.SelectData) -> str:
        return full_text(hits, side, event.index[0] if isinstance(event.index, (list, tuple)) else event.index)

    return show


def full_text(hits: dict[str, list[str]], side: str, row: int) -> str:
    texts = (hits or {}).get(side) or []
    if not 0 <= row < len(texts):
        return ""
    return f"**{side.capitalize()} #{row + 1}, full text:**\n\n> " + texts[row].replace("\n", "\n> ")


def run_speed(model_id, query, own_texts, own_file, timing_queries=None, threads=None,
              request: gr.Request | None = None, progress=gr.Progress()):
    """Time the teacher and the student (an expensive event: rate-limited in a public studio)."""
    try:
        with expensive(request, "a speed measurement"):
            session = _session(model_id, own_texts, own_file, progress, request)
            queries = _timing_queries(timing_queries, query, session.texts)
            counts = sorted({int(t) for t in threads or [all_cores()]})
    except (DistilleryError, ValueError) as exc:
        raise gr.Error(str(exc)) from exc
    progress(0.0, desc="timing teacher and student")
    load = os.getloadavg()[0]  # what the threads competed with (see THREADS_NOTE)
    steps = 2 * len(counts)
    done = iter(range(1, steps + 1))
    reports = session.speed(queries, counts, on_report=lambda r: progress(next(done) / steps,
                            desc=f"{r.label} timed at {r.threads} thread(s)"))
    lines = [f"Threads: {', '.join(map(str, counts))} (torch, BLAS and the tokenizer) · {len(queries)} single "
             f"queries · {reports[0].batch_texts} texts for throughput · student load "
             f"{session.student_load_seconds * 1000:.0f} ms · load average {load:.1f} on {all_cores()} cores"
             f"{' (busier than its cores: threads wait for each other, see the note below)' if load > all_cores() else ''}"]
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


ROUTING_NOTE = (
    "### Smart routing (`NAME:routed` in the embeddings service)\n"
    "The student answers, and short inputs (under 16 words by default) go to the teacher. Answers "
    "are in the teacher's space (the student's vectors mapped by a least-squares fit on the collection), "
    "so search documents indexed once by the teacher. Left: quality recovered on the development suite "
    "without the sets that flatter students; right: the queries you searched in this session."
)


def routing_suite() -> tuple[Any, str]:
    """The development suite's trade-off chart from bench/results/routing.json, and its source line."""
    try:
        points, about = suite_curve()
    except (OSError, KeyError, ValueError):
        return None, "No routing measurement yet: run `python bench/routing.py STUDENT_FOLDER`."
    title = "Development suite<br><sup>STS, pairs, retrieval; without flattering sets</sup>"
    return (tradeoff_figure(points, DEFAULT_THRESHOLD, title),
            f"Suite curve: `bench/routing.py`, student {about['student']}, {about['date']}, {about['machine']}; "
            f"latency per input is modelled from that run's measured encode times.")


def remember_query(query: str | None, searched: list[str] | None) -> list[str]:
    """The session's searched queries, oldest first, each once (the routing curve is drawn over them)."""
    queries = [q for q in (searched or []) if q != (query or "").strip()]
    return (queries + [query.strip()])[-MAX_TIMING_QUERIES:] if query and query.strip() else queries


def run_routing(model_id, query, own_texts, own_file, searched=None, request: gr.Request | None = None,
                progress=gr.Progress()):
    """Which of the session's queries the default threshold routes, and the curve over them."""
    queries = remember_query(query, searched)
    if not queries:
        raise gr.Error("Search a few queries first: the curve is drawn over the queries of this session.")
    try:
        session = _session(model_id, own_texts, own_file, progress, request)
    except DistilleryError as exc:
        raise gr.Error(str(exc)) from exc
    routes = route_queries(session, queries)
    figure = tradeoff_figure(queries_curve(routes), DEFAULT_THRESHOLD, f"Your {len(routes)} queries",
                             quality_label="Top-5 agreement with the teacher (%)")
    routed = sum(r.signal > DEFAULT_THRESHOLD for r in routes)
    lines = [f"At the default threshold (texts under {round(1 / DEFAULT_THRESHOLD)} words): **{routed} of "
             f"{len(routes)}** queries go to the teacher.", "",
             "| query | words | routed | top-5 on the student |",
             "|---|---:|:---:|---:|"]
    lines += [f"| {cut(r.query, 60).replace('|', '/')} | {round(1 / r.signal)} | {'yes' if r.signal > DEFAULT_THRESHOLD else 'no'} "
              f"| {r.student_agreement}/{r.k} |" for r in routes]
    return figure, "\n".join(lines)
