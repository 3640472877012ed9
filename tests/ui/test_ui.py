"""The real Gradio server, driven through gradio_client, with the real consumer behind it.

The `server` fixture (the app on a free port) is in conftest.py; `form` (helpers.recipe_form) builds the
Recipe tab's inputs.
"""

from __future__ import annotations

import json
import os
import re
import time

import pytest
from gradio_client import Client, handle_file
from helpers import recipe_form as form

from core import settings
from core.corpus.plan import DOMAINS
from jobs.folders import EVALUATION_REQUEST

pytestmark = pytest.mark.slow  # a Gradio server with the consumer behind it

TERMINAL = {"done", "failed", "cancelled", "interrupted"}


@pytest.fixture(scope="module")
def client(server) -> Client:
    return Client(server, verbose=False)


def wait_for(client: Client, job_id: str, timeout: float = 300) -> tuple[dict, list[dict]]:
    seen, deadline = [], time.time() + timeout
    while time.time() < deadline:
        status = client.predict(job_id, api_name="/job_status")
        seen.append(status)
        if status["state"] in TERMINAL:
            return status, seen
        time.sleep(1)
    raise AssertionError(f"job {job_id} did not finish: {seen[-1]}")


def test_submit_poll_and_search(client: Client):
    # domain-specific asks for 100/190 of 400 texts (210) from the GDPR file alone (157 passages): a shortfall
    message = client.predict(*form(**{"domain-specific:share": 100, "domain-specific:sources": ["local:gdpr"]}),
                             api_name="/submit_recipe")
    match = re.search(r"Submitted job `([^`]+)`", message)
    assert match, message
    status, seen = wait_for(client, match.group(1))
    assert status["state"] == "done", status
    assert any(s["state"] == "running" and 0 < s.get("fraction", 0) < 1 for s in seen), seen
    assert "Corpus shortfall" in status["warning"] and "domain-specific" in status["warning"]
    model_id = status["model_id"]

    _, table = client.predict(None, api_name="/refresh_models")
    row = dict(zip(table["headers"], next(r for r in table["data"] if r[1] == model_id)))
    assert row["size_mb"] > 0 and 0 < row["load_ms"] < 10_000 and row["dims"] == 64

    info = client.predict(model_id, api_name="/model_info")
    assert "all-MiniLM-L6-v2" in info and "64 dims" in info
    assert "⚠️" in info and "domain-specific" in info  # the shortfall is shown with the model

    summary, teacher, student, *_ = client.predict(model_id, "how do I open a file in python", "", None,
                                               api_name="/search")
    assert re.search(r"\*\*\d of 5\*\* results shared", summary), summary
    assert len(teacher["data"]) == 5 and len(student["data"]) == 5
    scores = [row[1] for row in teacher["data"]]
    assert scores == sorted(scores, reverse=True)

    texts = "the cat sat on the mat\nstock markets fell sharply today\nhow to install python packages\n" \
            "a recipe for tomato soup\nthe court dismissed the appeal\nmy flight was delayed"
    summary, teacher, student, *_ = client.predict(model_id, "installing a python library", texts, None,
                                               api_name="/search")
    assert "collection of 6 texts" in summary
    assert teacher["data"][0][2] == "how to install python packages"

    counts = sorted({1, os.cpu_count() or 1})
    plot, speed = client.predict(model_id, "python", texts, None, "book a table for two\ncheap flights to rome\n",
                                 [str(n) for n in counts], api_name="/measure_speed")
    assert f"Threads: {', '.join(map(str, counts))}" in speed and "2 single queries" in speed, speed
    assert re.search(rf"load average \d+\.\d on {os.cpu_count()} cores", speed), speed
    assert speed.count("higher throughput") == len(counts)
    traces = json.loads(plot["plot"])["data"]
    boxes = [t for t in traces if t["type"] == "box"]
    assert len(boxes) == 2 * len(counts) and all(len(b["x"]) == 2 for b in boxes)  # one latency per query
    assert {t["x"][0] for t in traces if t["type"] == "bar"} == {b["name"] for b in boxes}


def test_corpus_method_job_trains_and_records_its_stages(client: Client, data_dir):
    """Method "corpus" through the page's API and the real worker: live progress of its stages, every stage
    timed, a model that is searchable, and a card that records the training curve."""
    message = client.predict(*form(method="corpus", name="ui-corpus", sif_coefficient=1e-2, epochs=3),
                             api_name="/submit_recipe")
    match = re.search(r"Submitted job `([^`]+)`", message)
    assert match, message
    status, seen = wait_for(client, match.group(1))
    assert status["state"] == "done", status
    live = {s.get("stage") for s in seen if s["state"] == "running"}
    assert live & {"featurize", "distill", "train"}, live  # the method's own stages reach the job's progress
    assert {"featurize", "vocabulary", "distill", "weights", "pca", "train", "save"} <= set(status["stages"])

    model_dir = data_dir / "models" / status["model_id"]
    record = json.loads((model_dir / "distillery.json").read_text())
    assert record["recipe"]["method"] == "corpus" and record["recipe"]["distill"]["training"]["epochs"] == 3
    assert 1 <= len(record["training"]["history"]) <= 4 and record["training"]["history"][0]["epoch"] == 0
    card = (model_dir / "README.md").read_text()
    assert "**corpus** method" in card and "validation loss" in card
    summary, teacher, student, *_ = client.predict(status["model_id"], "how do I open a file in python", "", None,
                                               api_name="/search")
    assert len(student["data"]) == 5, summary


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({f"{d}:share": 0 for d in DOMAINS}, "All domain proportions are zero"),
        ({"corpus_size": 0}, "at least 1 text"),
        ({"pca_dims": 1000}, "384"),
        ({"teacher": "no-such-org/no-such-model"}, "cannot be reached"),
        ({"teacher": "/definitely/not/a/folder"}, "neither a local model folder"),
        ({"web:sources": []}, "web"),
        ({"method": "corpus", "corpus_size": 150}, "at least 200 texts"),
        ({"method": "corpus", "max_vocabulary_size": 0}, "vocabulary size must be at least 1"),
        ({"method": "corpus", "learning_rate": 0}, "learning rate"),
        ({"method": "corpus", "start_share": 1.5}, "share of the fitted start"),
        ({"method": "corpus", "epochs": 0}, "Epochs"),
        ({"evaluate_after": True, "evaluation_rows": 3}, "at least 10"),
        ({"endpoint_kind": "openai", "endpoint_url": "http://127.0.0.1:9", "endpoint_model": "m"},
         "endpoint without weights"),  # the vocabulary method, refused before any request
        ({"method": "corpus", "endpoint_kind": "openai", "endpoint_url": "http://127.0.0.1:9", "endpoint_model": "m",
          "api_key_env": "sk-live-123"}, "never the key itself"),
        ({"method": "corpus", "endpoint_kind": "ollama", "endpoint_url": "http://127.0.0.1:9", "endpoint_model": "m"},
         "Could not reach the Ollama endpoint"),
    ],
)
def test_bad_input_is_explained_and_nothing_is_queued(client: Client, data_dir, overrides, expected):
    (data_dir / "jobs").mkdir(exist_ok=True)
    before = set((data_dir / "jobs").iterdir())
    message = client.predict(*form(**overrides), api_name="/submit_recipe")
    assert message.startswith("❌") and expected in message, message
    assert set((data_dir / "jobs").iterdir()) == before


def test_negative_share_is_refused_by_the_slider(client: Client):
    with pytest.raises(Exception, match="less than minimum value 0"):
        client.predict(*form(**{"academic:share": -5}), api_name="/submit_recipe")


def test_binary_and_empty_uploads_are_refused(client: Client, tmp_path):
    binary = tmp_path / "notes.txt"
    binary.write_bytes(b"\x00\x01\x02binary\x00" * 100)
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    for upload, expected in ((binary, "binary"), (empty, "empty")):
        message = client.predict(*form(**{"code:files": [handle_file(str(upload))]}), api_name="/submit_recipe")
        assert message.startswith("❌") and expected in message, message


def test_preview_shows_every_domain_and_the_uploads(client: Client, tmp_path):
    table = client.predict(*form(), api_name="/preview_corpus")
    domains = {row[0] for row in table["data"]}
    assert domains == set(DOMAINS)
    notes = tmp_path / "my notes.txt"
    notes.write_text("".join(f"My own note number {i} about sorting lists.\n" for i in range(10)))
    table = client.predict(*form(**{"code:files": [handle_file(str(notes))], "code:sources": []}),
                           api_name="/preview_corpus")
    code = [row for row in table["data"] if row[0] == "code"]
    assert code and {row[1] for row in code} == {"upload-my_notes.txt"} and "My own note" in code[0][2]


def test_the_language_choice_reaches_the_recipe_and_a_french_corpus(client: Client, data_dir):
    """French in the Recipe tab: the preview draws from the French file (no academic source) and the
    submitted recipe says "fr" (tests/corpus/test_corpus_language.py builds French corpora; the job is
    cancelled here rather than waited for)."""
    table = client.predict(*form(language="fr"), api_name="/preview_corpus")
    assert {row[0] for row in table["data"]} == set(DOMAINS) - {"academic"}
    assert all(row[1].startswith("fr-") for row in table["data"]), table["data"]
    message = client.predict(*form(language="fr", name="ui-french"), api_name="/submit_recipe")
    match = re.search(r"Submitted job `([^`]+)`", message)
    assert match, message
    recipe = json.loads((data_dir / "jobs" / match.group(1) / "recipe.json").read_text())
    assert recipe["language"] == "fr" and recipe["sources"]["code"] == ["local:fr-python-docs"]
    client.predict(match.group(1), api_name="/cancel_job")
    status, _ = wait_for(client, match.group(1))
    assert status["state"] in {"cancelled", "done"}, status


def follow(client: Client, timeout: float = 300) -> tuple[list[str], tuple]:
    """Tick the Evaluate tab's timer (as the page does every second) until it stops itself; returns the
    progress lines seen and the last tick's outputs (lines, timer, history, verdict, scores, chart, kept)."""
    seen, deadline = [], time.time() + timeout
    while time.time() < deadline:
        outputs = client.predict(api_name="/follow_evaluations")
        seen.append(outputs[0])
        if not outputs[1]["active"]:
            return seen, outputs
        time.sleep(1)
    raise AssertionError(f"the Evaluate tab still follows its jobs: {seen[-1]}")


def test_evaluation_after_distillation_and_the_evaluate_tab(client: Client):
    # A name longer than a job id's slug: the model id is 61 characters, and the evaluation's job id keeps it whole.
    message = client.predict(*form(name="eval-ui with a recipe name longer than forty", evaluate_after=True,
                                   evaluation_rows=30), api_name="/submit_recipe")
    job_id = re.search(r"Submitted job `([^`]+)`", message).group(1)
    status, _ = wait_for(client, job_id)
    assert status["state"] == "done" and "evaluation queued as" in status["message"], status
    evaluation_job = re.search(r"evaluation queued as (\S+)", status["message"]).group(1)
    model_id = status["model_id"]
    assert re.fullmatch(rf"evaluate-{model_id}-\d{{8}}-\d{{6}}-[0-9a-f]{{4}}", evaluation_job), evaluation_job
    evaluated, seen = wait_for(client, evaluation_job, timeout=600)
    assert evaluated["state"] == "done", evaluated
    assert {s.get("stage") for s in seen} & {"teacher scores", "student scores"}  # per-task progress reached the Jobs tab
    verdict_md, scores, chart, kept = client.predict([model_id], [], api_name="/evaluation_results")
    assert model_id in verdict_md and re.search(r"\*\*(optimal|viable|not viable)\*\*", verdict_md.replace(
        f"**{model_id}: ", "**")), verdict_md
    suite = {"STSBenchmark", "SICK-R", "Banking77", "TREC", "MRPC", "MedQuAD", "XQuAD-en", "PythonStdlibDoc2Code"}
    assert {row[0] for row in scores["data"]} == suite
    assert len(scores["headers"]) == 4  # task, type, teacher, this student
    assert chart is not None and kept["data"][0][0] == model_id
    history = client.predict([model_id], api_name="/evaluation_history")
    assert len(history["choices"]) == 1 and history["value"] == [history["choices"][0][1]]
    assert "30 rows/task · 8 tasks" in history["choices"][0][0]

    # The tab's own evaluation with its defaults (0 rows: all of them), followed until it ends, then shown
    # without pressing anything; the earlier evaluation stays in the history and can be shown beside it.
    queued, timer = client.predict([model_id], 0, 0.83, 50, 0.89, 100, "MRPC", api_name="/evaluate")
    tab_job = re.search(r"queued as `([^`]+)`", queued).group(1)
    assert timer["active"] and tab_job.startswith(f"evaluate-{model_id}-"), queued
    lines, (last, _, history, verdict_md, scores, chart, kept) = follow(client)
    assert any(tab_job in line and re.search(r"(🔄|⏳)", line) for line in lines), lines  # live while it ran
    assert f"✅ `{model_id}`" in last, last
    assert [row[0] for row in scores["data"]] == ["MRPC"] and f"**{model_id}:" in verdict_md and chart is not None
    newest, older = (value for _, value in history["choices"])
    assert history["value"] == [newest] and "all rows · MRPC" in history["choices"][0][0]
    _, scores, _, _ = client.predict([model_id], [older], api_name="/evaluation_results")
    assert {row[0] for row in scores["data"]} == suite  # the earlier report, picked
    _, scores, _, kept = client.predict([model_id], [newest, older], api_name="/evaluation_results")
    assert len(scores["headers"]) == 5 and len(kept["data"]) == 2  # both runs side by side

    # The French suite chosen in the tab (no task named): the request carries it, the job scores the
    # four French sets (their teacher scores too) and the history names the suite.
    queued, timer = client.predict([model_id], 30, 0.83, 50, 0.89, 100, "", "fr", api_name="/evaluate")
    french_job = re.search(r"queued as `([^`]+)`", queued).group(1)
    assert json.loads((settings.jobs_dir() / french_job / EVALUATION_REQUEST).read_text())["suite"] == "fr"
    _, (last, _, history, verdict_md, scores, _, kept) = follow(client)
    assert f"✅ `{model_id}`" in last, last
    assert [row[0] for row in scores["data"]] == ["STSBenchmark-fr", "PythonDocs-fr-en", "CDTN-intents",
                                                  "CDTN-glossary"]
    assert {row[1] for row in scores["data"]} == {"STS", "BitextMining", "Classification", "Retrieval"}
    assert "30 rows/task · 4 tasks (French)" in history["choices"][0][0] and f"**{model_id}:" in verdict_md

    # Bad input: an unknown model and an impossible threshold are refused with a message, nothing queued.
    queued, timer = client.predict([model_id, "no-such-model"], 5, 0.83, 50, 0.89, 100, "", api_name="/evaluate")
    assert "at least 10" in queued and "no-such-model" in queued and not timer["active"]
    queued, _ = client.predict([model_id], 30, 0.95, 50, 0.89, 100, "", api_name="/evaluate")
    assert "viable ≤ optimal" in queued
    assert "choose a finished model" in client.predict("", api_name="/evaluate_from_jobs").lower()
    assert "❌" in client.predict("../../etc", api_name="/evaluate_from_jobs")
    queued, _ = client.predict([model_id], 30, 0.83, 50, 0.89, 100, "MRPC, NoSuchTask", api_name="/evaluate")
    assert "no task named 'NoSuchTask'" in queued
    # The English MTEB benchmark by name: its data is on the Hub, out of reach here, so the job ends
    # with that reason for every task instead of a crash, and the tab says so when it ends.
    queued, timer = client.predict([model_id], 30, 0.83, 50, 0.89, 100, "MTEB(eng, v2)", api_name="/evaluate")
    hub_job = re.search(r"queued as `([^`]+)`", queued).group(1)
    assert timer["active"]
    _, (last, _, history, verdict_md, *_) = follow(client)
    assert f"❌ `{model_id}` (`{hub_job}`) failed:" in last and "not reachable" in last, last
    assert history == {"__type__": "update"} and verdict_md == {"__type__": "update"}  # no results replaced
    failed = client.predict(hub_job, api_name="/job_status")
    assert failed["state"] == "failed" and "not reachable" in failed["error"], failed


COMPARE_TEXTS = [
    "How to install python packages with pip.",
    "Open a file in python with the built-in open function and read its lines.",
    "A recipe for tomato soup with basil and garlic.",
    "The court dismissed the appeal on procedural grounds.",
    "Stock markets fell sharply today after the rate decision.",
    "My flight to Rome was delayed by three hours.",
    "Sort a list of numbers in python with sorted().",
    "The patient was treated with insulin for type 1 diabetes.",
    " ".join(f"This long passage about python file handling goes on, sentence {i}, to test how the table "
             f"cuts it." for i in range(12)),  # about 1,000 characters
]


@pytest.fixture
def compare_models(data_dir):
    """Two real (random-weight) model2vec models, the second the newest, with a small collection."""
    import shutil
    from datetime import UTC, datetime, timedelta

    from helpers import tiny_record, tiny_static_model

    from core.artifact.folder import ModelFolder

    now = datetime.now(UTC)
    made = []
    for i, model_id in enumerate(("cmp-older", "cmp-newest")):
        created = (now + timedelta(days=365 * 50 + i)).isoformat(timespec="seconds")  # newer than any job's
        path = data_dir / "models" / model_id
        ModelFolder.create(tiny_static_model(dim=16, seed=i), tiny_record(model_id, created=created, dim=16),
                           COMPARE_TEXTS, path)
        made.append(path)
    yield [p.name for p in made]
    for path in made:
        shutil.rmtree(path, ignore_errors=True)


def test_compare_preselects_the_newest_and_opens_it_before_the_first_search(client: Client, compare_models):
    from core.artifact.folder import ModelFolder
    from ui import compare_tab

    older, newest = compare_models
    loaded = client.predict(api_name="/compare_models")  # what the page chooses when it loads
    assert loaded["value"] == newest and [c[1] for c in loaded["choices"]][:2] == [newest, older], loaded
    dropdown, table = client.predict(older, api_name="/refresh_models")
    assert {older, newest} <= {row[1] for row in table["data"]}
    assert dropdown["value"] == older  # refreshing keeps the choice
    assert client.predict("gone-model", api_name="/refresh_models")[0]["value"] == newest

    folder = ModelFolder.open(newest)
    assert not compare_tab.SESSIONS.is_open(folder)
    job = client.submit(newest, api_name="/prepare_session")
    job.result(timeout=300)
    statuses = job.outputs()
    assert statuses[0].startswith("⏳ Loading the teacher and the student"), statuses
    assert statuses[-1].startswith("✅ Ready") and "9 texts" in statuses[-1], statuses
    assert compare_tab.SESSIONS.is_open(folder)  # the first search will find both models loaded
    session = compare_tab.SESSIONS.get(folder)
    assert client.predict(newest, api_name="/prepare_session").startswith("✅ Ready")  # chosen again: at once

    summary, teacher, student, *_ = client.predict(newest, COMPARE_TEXTS[-1], "", None, api_name="/search")
    assert compare_tab.SESSIONS.get(folder) is session  # the search used the opened session
    assert teacher["headers"] == student["headers"] == compare_tab.HIT_COLUMNS
    assert len(teacher["data"]) == len(student["data"]) == 5
    long_row = teacher["data"][0]
    assert long_row[2].startswith("This long passage") and long_row[2].endswith(" …")
    assert len(long_row[2]) <= compare_tab.TABLE_CHARS + 2 < len(COMPARE_TEXTS[-1])
    assert "off the collection" not in summary  # the query is in the collection: the teacher scores 1.0
    # "✓ student #k" marks a text the student ranked k-th; unmarked rows are not in the student's list
    student_rank = {row[2]: row[0] for row in student["data"]}
    for row in teacher["data"]:
        assert row[3] == (f"✓ student #{student_rank[row[2]]}" if row[2] in student_rank else ""), row
    shared = sum(bool(row[3]) for row in teacher["data"])
    assert shared == sum(bool(row[3]) for row in student["data"])
    assert f"**{shared} of 5** results shared" in summary


def test_compare_says_when_the_query_is_off_the_collection(client: Client, compare_models):
    _, newest = compare_models
    summary, *_ = client.predict(newest, "who won the football world cup in 2018", "", None, api_name="/search")
    assert "looks off the collection" in summary and "paste your own texts" in summary, summary
    best = float(re.search(r"best match scores only ([\d.]+)", summary).group(1))
    assert best < 0.35
    own = "\n".join(COMPARE_TEXTS[:4])
    summary, *_ = client.predict(newest, "who won the football world cup in 2018", own, None, api_name="/search")
    assert "collection of 4 texts" in summary and "add texts that answer it" in summary, summary


def test_compare_page_explains_scores_threads_and_shows_full_texts(server):
    import urllib.request

    import gradio as gr

    from ui import compare_tab

    config = json.loads(urllib.request.urlopen(f"{server}config", timeout=30).read())
    markdown = [c["props"].get("value") or "" for c in config["components"] if c.get("type") == "markdown"]
    assert compare_tab.SCALE_NOTE in markdown and compare_tab.THREADS_NOTE in markdown
    tables = {c["id"] for c in config["components"] if c.get("props", {}).get("label") in ("Teacher top-5",
                                                                                       "Student top-5")}
    selects = [d for d in config["dependencies"] if any(t[0] in tables and t[1] == "select" for t in d["targets"])]
    assert len(selects) == 2  # a click on either table shows the full text
    # When the page loads, the newest model is chosen and its session starts opening (a value set by a
    # load event does not fire the dropdown's change, so the load chains both on explicitly).
    load = next(d for d in config["dependencies"] if d.get("api_name") == "compare_models")
    chained = {re.sub(r"_\d+$", "", d["api_name"]) for d in config["dependencies"] if d.get("trigger_after") == load["id"]}
    assert {"model_info", "prepare_session"} <= chained, chained
    hits = {"teacher": ["short", COMPARE_TEXTS[-1]], "student": ["other"]}
    shown = compare_tab.full_text_shower("teacher")(hits, gr.SelectData(None, {"index": [1, 2], "value": "x"}))
    assert shown.startswith("**Teacher #2, full text:**") and COMPARE_TEXTS[-1] in shown
    assert compare_tab.full_text(hits, "student", 3) == ""  # a click on an empty table shows nothing


def test_api_cost_is_estimated_before_submitting(client: Client, endpoint_service: str, data_dir):
    from helpers import ENDPOINT_KEY_ENV

    endpoint = {"method": "corpus", "endpoint_kind": "openai", "endpoint_url": endpoint_service,
                "endpoint_model": "teacher", "api_key_env": ENDPOINT_KEY_ENV}
    before = set((data_dir / "jobs").iterdir()) if (data_dir / "jobs").exists() else set()
    message = client.predict(*form(**endpoint, corpus_size=300), api_name="/estimate_api_cost")
    assert message.startswith("💰 OpenAI-compatible endpoint, model teacher: 300 texts"), message
    assert "2 requests of up to 256 texts, 4 at a time" in message
    assert (set((data_dir / "jobs").iterdir()) if (data_dir / "jobs").exists() else set()) == before  # nothing queued
    refused = client.predict(*form(corpus_size=300), api_name="/estimate_api_cost")
    assert refused.startswith("❌") and "endpoint teacher" in refused
