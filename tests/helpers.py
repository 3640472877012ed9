"""Shared test helpers (imported by test modules as `helpers`; tests/ is on sys.path through conftest)."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import threading
import time
from collections.abc import Iterator

from core.corpus.cleaning import CleaningOptions
from core.methods.vocabulary import VocabularyParams
from core.recipe import Recipe


def small_recipe(name: str = "small", **overrides) -> Recipe:
    """A recipe that runs in about 20 s on 2 cores: 400 texts, a 300-word corpus vocabulary."""
    fields = dict(name=name, corpus_size=400, collection_size=40,
                  cleaning=CleaningOptions(min_words=3, max_words=64),
                  distill=VocabularyParams(pca_dims=64, max_vocabulary_size=300, min_frequency=2))
    fields.update(overrides)
    return Recipe(**fields)


def recipe_form(**overrides) -> list:
    """All Recipe-tab inputs, in FORM_FIELDS order, for the small test recipe."""
    from core.corpus.sources import load_catalogue
    from ui.forms import FORM_FIELDS

    recipe = small_recipe()
    values = {
        "name": "ui-test", "teacher": recipe.teacher, "trust_remote_code": False, "method": "vocabulary",
        "endpoint_kind": "", "endpoint_url": "", "endpoint_model": "", "api_key_env": "", "query_prefix": "",
        "document_prefix": "", "student_tokenizer": "", "language": overrides.get("language", "en"),
        "corpus_size": recipe.corpus_size, "collection_size": recipe.collection_size,
        "normalise": True, "dedupe": True, "min_words": recipe.cleaning.min_words,
        "max_words": recipe.cleaning.max_words, "use_corpus_vocabulary": True,
        "max_vocabulary_size": recipe.params.max_vocabulary_size, "min_frequency": recipe.params.min_frequency,
        "pca_dims": recipe.params.pca_dims, "sif_coefficient": 1e-4, "pooling": "mean",
        "quantize_to": "float16", "epochs": 10, "patience": 2, "batch_size": 256, "learning_rate": 1e-3, "start_share": 0.5,
        "pair_sources": [], "pair_files": None, "pair_weight": "", "seed": 0, "evaluate_after": False,
        "evaluation_rows": None,
    }
    catalogue = load_catalogue()
    for domain, share in recipe.shares.items():
        values.update({f"{domain}:share": share, f"{domain}:sources": catalogue.default_keys(domain, values["language"]),
                       f"{domain}:files": None, f"{domain}:fields": "text"})
    values.update(overrides)
    return [values[f] for f in FORM_FIELDS]


def free_port() -> int:
    """A TCP port nobody listens on now (for a Gradio server, an app or a Redis server)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def redis_server(folder) -> Iterator[str]:
    """A real `redis-server` on a free loopback port (no persistence); yields its URL."""
    import shutil

    port = free_port()
    server = subprocess.Popen([shutil.which("redis-server") or "redis-server", "--port", str(port), "--bind",
                               "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(folder)],
                              stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while True:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                break
        assert server.poll() is None and time.monotonic() < deadline, "redis-server did not start"
        time.sleep(0.05)
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.terminate()
        server.wait(10)


def tiny_static_model(dim: int = 8, seed: int = 0):
    """A random `StaticModel` over the default teacher's tokenizer: a real model2vec model in milliseconds."""
    from pathlib import Path

    import numpy as np
    from model2vec import StaticModel
    from tokenizers import Tokenizer

    from core.encoders.teacher import resolve_teacher

    tokenizer = Tokenizer.from_file(str(Path(resolve_teacher(None).source) / "tokenizer.json"))
    vectors = np.random.default_rng(seed).normal(size=(tokenizer.get_vocab_size(), dim)).astype(np.float32)
    return StaticModel(vectors, tokenizer, normalize=True)


def tiny_record(model_id: str, created: str = "2025-01-01T00:00:00+00:00", dim: int = 8, **overrides):
    """A `ModelRecord` as the pipeline writes it, for a model that was never distilled (no job folder)."""
    from core.artifact.record import ModelRecord
    from core.encoders.teacher import resolve_teacher

    corpus = {"size": 3, "requested_size": 3, "content_sha256": "0" * 64, "shortfalls": [],
              "domains": {"web": {"requested_share": 1.0, "realised_share": 1.0, "requested": 3, "realised": 3,
                                  "sources": [{"name": "notes"}]}}}
    fields = dict(id=model_id, name=f"tiny {model_id}", created=created, recipe=small_recipe(model_id).to_dict(),
                  teacher=resolve_teacher(None), corpus=corpus, vocabulary_added=0, vocabulary_size=30522,
                  dimension=dim)
    fields.update(overrides)
    return ModelRecord(**fields)


def evaluation_report(model_id: str = "small-model", limit: int | None = 40, date: str = "2025-06-02",
                      student: dict[str, float] | None = None) -> dict:
    """An evaluation report as `core.evaluation.run.evaluate_saved_model` writes it, built from the
    real verdict functions without running mteb (teacher 80/84 on STSBenchmark/MRPC)."""
    from core.evaluation.verdict import retention, summarise, verdict

    types = {"STSBenchmark": "STS", "MRPC": "PairClassification"}
    teacher_scores = {**summarise({"STSBenchmark": 80.0, "MRPC": 84.0}, types), "skipped": {}}
    student_scores = {**summarise(student or {"STSBenchmark": 72.0, "MRPC": 78.0}, types),
                      "skipped": {"Gone": "missing"}}
    kept = retention(student_scores, teacher_scores)
    speed = {"speedup": 70.0, "threads": 2, "texts": 3, "teacher_texts_per_s": 100.0, "student_texts_per_s": 7000.0}
    return {"model_id": model_id, "teacher": "sentence-transformers/all-MiniLM-L6-v2", "date": date,
            "tasks": list(types), "limit": limit, "mteb_version": "2.26.24", "teacher_scores": teacher_scores,
            "student_scores": student_scores, "retention": kept, "speed": speed, "verdict": verdict(kept, 70.0),
            "seconds": 1.0}


@contextlib.contextmanager
def running(app, host: str = "127.0.0.1") -> Iterator[str]:
    """The app on a real uvicorn server on a free port, in a thread; yields its base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def wait_healthy(url: str, seconds: float = 60, process: subprocess.Popen | None = None) -> dict:
    """The service's /health answer once it is 200 (a model loaded); fails when the process exits."""
    import httpx

    deadline = time.monotonic() + seconds
    last = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the server exited: {process.communicate()[0]}")
        with contextlib.suppress(httpx.TransportError):
            last = httpx.get(f"{url}/health", timeout=2)
            if last.status_code == 200:
                return last.json()
        time.sleep(0.1)
    raise AssertionError(f"not healthy after {seconds} s: {last and last.text}")


# The key the loopback embeddings service (conftest's `endpoint_service`) asks for, and the variable
# that holds it while tests run; tests search written files for it.
ENDPOINT_KEY_ENV = "DISTILLERY_TEST_ENDPOINT_KEY"
ENDPOINT_KEY = f"sk-test-{__import__('secrets').token_hex(12)}"


def teacher_service():
    """The project's embeddings service serving only the bundled teacher, behind `ENDPOINT_KEY`."""
    from core.serving.service import ModelRegistry, create_service

    return create_service(ModelRegistry(folders=[]), api_key=ENDPOINT_KEY, preload=["teacher"])


def unreliable(app, share: float = 0.1, slow: float = 0.1, seed: int = 2):
    """`app` behind a front door that answers 429 or 500 to a `share` of requests and delays
    another `slow` share by 0.2 s (seeded: the same draws in the same order each run; seed 2 fails
    5 of its first 30 draws, so a short test sees several retries). `door.seen` counts what it did;
    `door.down = True` answers 503 to everything (a server that went away and came back)."""
    import asyncio
    import random
    from collections import Counter

    from fastapi.responses import JSONResponse

    rng = random.Random(seed)
    seen: Counter[str] = Counter()

    async def door(scope, receive, send):
        if scope["type"] == "http" and scope["path"] != "/health":
            draw = rng.random()
            status = 503 if door.down else 429 if draw < share / 2 else 500 if draw < share else None
            if status is not None:
                seen[str(status)] += 1
                await JSONResponse({"error": "unreliable on purpose"}, status_code=status)(scope, receive, send)
                return
            if draw < share + slow:
                seen["slow"] += 1
                await asyncio.sleep(0.2)
        await app(scope, receive, send)

    door.seen = seen  # type: ignore[attr-defined]
    door.down = False  # type: ignore[attr-defined]
    return door
