"""The embeddings service under load: latency and requests per second over real HTTP, against a floor.

    .venv/bin/python bench/serve.py [STUDENT_FOLDER] [--requests 2000] [--teacher-requests 300]
                                    [--clients 1,8,32] [--route /api/embed] [--repeats 3] [--max-seconds 90]

Servers: `python -m serve --model STUDENT` (the real service, with the teacher) in a subprocess on
loopback, and the *floor*: the same service, built by the same `create_service`/`service_from_env`
and run by the same `uvicorn.run`, whose model returns a fixed vector of the student's width (random
floats, so the JSON is as long as the student's) without encoding anything. The floor pays for everything a request costs but the model (HTTP, JSON in and
out, validation, the registry lookup, serialising the vector), so the student's figures over the
floor's say what the model adds to the framework.

Clients: one short text per request (how n8n and Ollama clients call `/api/embed`), over keep-alive
connections, 1, 8 and 32 at a time, a fixed number of requests per configuration after a warm-up.
The load generator writes raw HTTP/1.1 on asyncio streams: an HTTP client library costs about as much
CPU per request as the server does, and on a 2-core machine it would measure itself. Each
configuration runs `--repeats` times (the teacher once), interleaved with the others, and the fastest run is kept (the
machine is shared; interference only ever slows a run down).

Models: the student, the teacher and, when the service lists one in `/v1/models`, the student's
routed variant (a name ending in ":routed"); `--models` narrows the list. Memory: the service
process's resident set with one student loaded (`--no-teacher`, as the service runs for a student
alone), and the full service's after the teacher has served too.

Prints the table and the ratios against the targets; writes bench/results/serve.json (or --out).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from bench._common import RESULTS, ROOT, write_results  # noqa: E402

FLOOR = "floor"
TARGETS = {"student_p50_vs_floor": ("<=", 1.5), "student_rps_vs_floor_32": (">=", 0.70),
           "student_vs_teacher_rps_32": (">=", 10.0), "service_rss_mb": ("<", 500.0)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("student", type=Path, nargs="?", default=None,
                        help="a finished student folder; default: bench/speed.py's 256-d student, built once")
    parser.add_argument("--requests", type=int, default=2000, help="requests per configuration (floor, student)")
    parser.add_argument("--teacher-requests", type=int, default=300, help="the teacher is slow: fewer requests")
    parser.add_argument("--clients", default="1,8,32", help="concurrent clients, comma-separated")
    parser.add_argument("--models", default="floor,student,teacher,routed",
                        help="which to measure (routed only when the service lists a ':routed' name)")
    parser.add_argument("--route", default="/api/embed", choices=["/api/embed", "/v1/embeddings"])
    parser.add_argument("--repeats", type=int, default=3,
                        help="runs per configuration of the floor and the student (the fastest is kept); the teacher runs once")
    parser.add_argument("--max-seconds", type=float, default=90, help="a configuration stops issuing requests after this")
    parser.add_argument("--out", type=Path, default=RESULTS / "serve.json")
    parser.add_argument("--floor-server", type=int, default=None, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.floor_server is not None:  # the floor's own process (started by the bench below)
        run_floor(args.student, args.floor_server)
        return

    from bench.speed import default_student
    from core.artifact.folder import ModelFolder
    from core.encoders.teacher import resolve_teacher

    args.student = as_model_folder(args.student or default_student(resolve_teacher(None)))
    student_id = ModelFolder.at(args.student).id  # the name the service lists it by
    texts = short_texts(5000)
    clients = [int(c) for c in args.clients.split(",")]
    wanted = [m.strip() for m in args.models.split(",") if m.strip()]

    rss_alone = student_alone_rss(args.student, student_id, texts)
    print(f"service RSS, one student loaded (--no-teacher): {rss_alone:.1f} MB", flush=True)

    with server(["-m", "serve", "--model", str(args.student)], {"DISTILLERY_PRELOAD": student_id}) as (url, proc), \
            server([str(Path(__file__).resolve()), str(args.student), "--floor-server", "{port}"], {}) as (floor_url, _):
        listed = [m["id"] for m in http_json(url, "GET", "/v1/models")["data"]]
        routed = next((n for n in listed if n == f"{student_id}:routed"), None) \
            or next((n for n in listed if n.endswith(":routed")), None)
        targets: dict[str, tuple[str, str, int]] = {}
        for name in wanted:
            if name == FLOOR:
                targets[FLOOR] = (floor_url, student_id, args.requests)
            elif name == "student":
                targets["student"] = (url, student_id, args.requests)
            elif name == "teacher":
                targets["teacher"] = (url, "teacher", args.teacher_requests)
            elif name == "routed" and routed is not None:  # these short texts mostly go to the teacher
                targets["routed"] = (url, routed, args.teacher_requests)
        not_measured = {} if routed is not None or "routed" not in wanted else \
            {"routed": "the service lists no ':routed' model in /v1/models"}
        dims = {label: check(base, model, args.route, texts[0]) for label, (base, model, _) in targets.items()}
        print(f"vector widths: {dims}", flush=True)

        runs: dict[tuple[str, int], list[dict[str, Any]]] = {}
        for repeat in range(args.repeats):
            for n_clients in clients:
                for label, (base, model, n) in targets.items():
                    if label in ("teacher", "routed") and repeat:
                        continue  # slow, and 10x away from the student's figures: once is enough
                    run = asyncio.run(load(base, args.route, model, texts, n_clients, n, args.max_seconds))
                    runs.setdefault((label, n_clients), []).append(run)
                    print(f"[{repeat + 1}/{args.repeats}] {label:8} {n_clients:3} clients: {run['rps']:8.0f} req/s, "
                          f"p50 {run['p50_ms']:.2f} ms, p99 {run['p99_ms']:.2f} ms", flush=True)
        rss_full = rss_mb(proc.pid)

    rows = [{"model": label, "clients": c, **best(runs[(label, c)]),
             "rps_all_runs": [round(r["rps"], 1) for r in runs[(label, c)]]}
            for label in targets for c in clients]
    by = {(r["model"], r["clients"]): r for r in rows}
    lo, hi = min(clients), max(clients)
    result: dict[str, Any] = {
        "student": str(args.student), "route": args.route, "clients": clients, "repeats": args.repeats,
        "requests": {label: n for label, (_, _, n) in targets.items()}, "models": {k: v[1] for k, v in targets.items()},
        "dimensions": dims, "client": "raw HTTP/1.1 keep-alive on asyncio streams, one text per request",
        "server": "uvicorn.run (python -m serve), default loop and HTTP implementation",
        "routed_share_of_texts": routed_share(texts) if "routed" in targets else None,
        "student_p50_vs_floor": ratio(by[("student", lo)]["p50_ms"], by[(FLOOR, lo)]["p50_ms"]),
        "student_rps_vs_floor_32": ratio(by[("student", hi)]["rps"], by[(FLOOR, hi)]["rps"]),
        "student_vs_teacher_rps_32": ratio(by[("student", hi)]["rps"], by[("teacher", hi)]["rps"])
        if ("teacher", hi) in by else None,
        "service_rss_mb": round(rss_alone, 1), "service_with_teacher_rss_mb": round(rss_full, 1),
        "targets": {k: f"{op} {v}" for k, (op, v) in TARGETS.items()}, "rows": rows,
    }
    if ("routed", hi) in by:
        result["routed_rps_vs_floor_32"] = ratio(by[("routed", hi)]["rps"], by[(FLOOR, hi)]["rps"])
        result["routed_p50_vs_floor"] = ratio(by[("routed", lo)]["p50_ms"], by[(FLOOR, lo)]["p50_ms"])
    if not_measured:
        result["not_measured"] = not_measured
    print_table(rows, result)
    write_results(args.out, result, "cpu")


def as_model_folder(folder: Path) -> Path:
    """A folder the service serves: a Distillery model folder as it is; a bare model2vec folder
    (bench/speed.py's default student) wrapped once, beside it, with a record saying what it is."""
    from model2vec import StaticModel

    from core.artifact.folder import RECORD_FILE, ModelFolder
    from core.artifact.record import ModelRecord
    from core.encoders.teacher import resolve_teacher
    from core.methods.vocabulary import VocabularyParams
    from core.recipe import Recipe

    folder = Path(folder)
    if (folder / RECORD_FILE).is_file():
        return folder
    wrapped = folder.with_name(f"{folder.name}-served")
    if (wrapped / RECORD_FILE).is_file():
        return wrapped
    model = StaticModel.from_pretrained(str(folder))
    corpus = {"size": 0, "requested_size": 0, "content_sha256": "", "shortfalls": [], "domains": {}}
    record = ModelRecord(id=wrapped.name, name=f"bench student ({folder.name})", created=datetime.now(UTC).isoformat(),
                         recipe=Recipe(name=wrapped.name, distill=VocabularyParams(pca_dims=model.dim)).to_dict(),
                         teacher=resolve_teacher(None), corpus=corpus, vocabulary_added=0,
                         vocabulary_size=int(model.embedding.shape[0]), dimension=int(model.dim),
                         extra={"note": f"bench/serve.py wrapped the bare model2vec folder {folder}"})
    ModelFolder.create(model, record, ["a text"], wrapped)
    return wrapped


# --- the servers --------------------------------------------------------------------------------


def run_floor(student: Path, port: int) -> None:
    """The floor: the service as `python -m serve` builds it, with a model that returns a fixed unit
    vector of the student's width (the student's name, so requests are byte for byte the same)."""
    import numpy as np
    import uvicorn

    from core.artifact.folder import ModelFolder
    from core.serving.service import ModelRegistry, Served, service_from_env

    folder = ModelFolder.at(student)
    # A unit vector of random floats, not [1, 0, 0, ...]: the student's floats print as 17 digits in
    # JSON, and the floor must pay for writing them as the student does.
    vector = np.random.default_rng(0).normal(size=(1, folder.record.dimension)).astype(np.float32)
    vector /= np.linalg.norm(vector)

    class Fixed:
        label = fingerprint = "fixed"
        nbytes = vector.nbytes

        def encode(self, texts: Sequence[str]) -> np.ndarray:
            return np.repeat(vector, len(texts), axis=0)

        encode_queries = encode

    class FloorRegistry(ModelRegistry):
        def _load(self, model: Served) -> Any:
            return Fixed()

    app = service_from_env(FloorRegistry([folder], teacher=None), [folder.id])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


@contextlib.contextmanager
def server(argv: list[str], env: dict[str, str]) -> Iterator[tuple[str, subprocess.Popen]]:
    """A server subprocess on a free loopback port ("{port}" in `argv` is replaced), healthy."""
    port = free_port()
    full_env = {**os.environ, "HOST": "127.0.0.1", "PORT": str(port), "LOG_LEVEL": "warning",
                "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", **env}
    # The server's output goes to a file: a pipe nobody reads fills up and blocks the server mid-run.
    log = tempfile.TemporaryFile("w+")
    proc = subprocess.Popen([sys.executable, *[a.replace("{port}", str(port)) for a in argv]], cwd=ROOT,
                            env=full_env, stdout=log, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc, log)
        yield url, proc
    finally:
        log.close()
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()


def wait_healthy(url: str, proc: subprocess.Popen, log: IO[str], seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log.seek(0)
            raise SystemExit(f"the server exited: {log.read()[-4000:]}")
        with contextlib.suppress(OSError, ValueError):
            if http_json(url, "GET", "/health").get("status") == "healthy":
                return
        time.sleep(0.2)
    raise SystemExit(f"{url} was not healthy after {seconds} s")


def student_alone_rss(student: Path, student_id: str, texts: list[str]) -> float:
    """The resident set of `python -m serve --model STUDENT --no-teacher` after 500 requests."""
    with server(["-m", "serve", "--model", str(student), "--no-teacher"], {"DISTILLERY_PRELOAD": student_id}) \
            as (url, proc):
        asyncio.run(load(url, "/api/embed", student_id, texts, 8, 500))
        return rss_mb(proc.pid)


def rss_mb(pid: int) -> float:
    import psutil

    return psutil.Process(pid).memory_info().rss / 2**20


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- the clients --------------------------------------------------------------------------------


def request_bytes(route: str, model: str, text: str, port: int) -> bytes:
    body = json.dumps({"model": model, "input": text}).encode()
    return (f"POST {route} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> tuple[int, bytes]:
    """One request on a keep-alive connection: the status and the body (Content-Length framed)."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    return status, await reader.readexactly(length)


async def load(base: str, route: str, model: str, texts: list[str], n_clients: int, n_requests: int,
               max_seconds: float = 600) -> dict[str, Any]:
    """`n_requests` one-text requests from `n_clients` connections at once, after a warm-up of a
    tenth as many (fewer when `max_seconds` runs out first: the teacher on a busy machine); latency
    per request and requests per second over the whole run."""
    host, port = "127.0.0.1", int(base.rsplit(":", 1)[1])
    requests = [request_bytes(route, model, text, port) for text in texts]
    spans: list[tuple[float, float]] = []
    errors = reconnects = 0
    warmup = max(n_requests // 10, n_clients)
    counter = iter(range(warmup + n_requests))  # shared: the first `warmup` draws are not timed

    async def client() -> None:
        nonlocal errors, reconnects
        reader, writer = await asyncio.open_connection(host, port)
        try:
            for i in counter:
                start = time.perf_counter()
                if start > deadline:
                    break
                try:
                    status, _ = await exchange(reader, writer, requests[i % len(requests)])
                except (ConnectionError, asyncio.IncompleteReadError):  # counted, never hidden
                    status, reconnects = 0, reconnects + 1
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, port)
                if i >= warmup:
                    spans.append((start, time.perf_counter()))
                    errors += status != 200
        finally:
            writer.close()

    deadline = time.perf_counter() + max_seconds
    await asyncio.gather(*(client() for _ in range(n_clients)))
    wall = max(end for _, end in spans) - min(start for start, _ in spans)
    latencies = [end - start for start, end in spans]
    ms = sorted(x * 1000 for x in latencies)
    return {"requests": len(ms), "errors": errors, "reconnects": reconnects, "rps": len(ms) / wall, "p50_ms": quantile(ms, 0.50),
            "p95_ms": quantile(ms, 0.95), "p99_ms": quantile(ms, 0.99), "mean_ms": statistics.fmean(ms)}


def check(base: str, model: str, route: str, text: str) -> int:
    """One real request, read as JSON: the vector's width (and a loud failure instead of a table of 4xx)."""
    body = http_json(base, "POST", route, {"model": model, "input": text})
    vector = body["embeddings"][0] if "embeddings" in body else body["data"][0]["embedding"]
    return len(vector)


def http_json(base: str, method: str, path: str, payload: dict | None = None) -> dict[str, Any]:
    import urllib.request

    data = json.dumps(payload).encode() if payload is not None else None
    request = urllib.request.Request(base + path, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def routed_share(texts: Sequence[str]) -> float:
    """The share of the bench's texts a routed model sends to the teacher (its signal, its threshold
    as this environment sets it): the routed rows are mostly the teacher's when it is near 1."""
    import numpy as np

    from core.serving.routing import threshold_from_env, word_count_signal

    return round(float(np.mean(word_count_signal(None, texts) > threshold_from_env())), 3)


def short_texts(n: int) -> list[str]:
    """Short queries, as an agent or a workflow sends them: conversational corpus texts cut to 12
    words (bench/speed.py's queries), seeded; a fixed sentence set when the corpus folder is missing."""
    import itertools
    import random

    from core import settings
    from core.corpus.sources import iter_documents, load_catalogue

    texts: list[str] = []
    if settings.local_corpus_dir() is not None:
        catalogue = load_catalogue(hub_available=False)
        for key in catalogue.default_keys("conversational"):
            for text in itertools.islice(iter_documents(catalogue.get(key)), 3 * n):
                if len(text.split()) >= 4:
                    texts.append(" ".join(text.split()[:12]))
    if not texts:
        texts = [f"how do I reset the password of account number {i} on the staging server" for i in range(n)]
    random.Random(0).shuffle(texts)
    return texts[:n]


# --- the report ---------------------------------------------------------------------------------


def quantile(sorted_ms: list[float], q: float) -> float:
    return sorted_ms[min(len(sorted_ms) - 1, int(q * len(sorted_ms)))]


def best(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The fastest run of a configuration (by requests per second), rounded."""
    run = max(runs, key=lambda r: r["rps"])
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in run.items()}


def ratio(a: float, b: float) -> float:
    return round(a / b, 3) if b else float("nan")


def print_table(rows: list[dict[str, Any]], result: dict[str, Any]) -> None:
    print(f"\n{'model':9} {'clients':>7} {'req/s':>9} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'errors':>6}")
    for r in rows:
        print(f"{r['model']:9} {r['clients']:7} {r['rps']:9.0f} {r['p50_ms']:8.2f} {r['p95_ms']:8.2f} "
              f"{r['p99_ms']:8.2f} {r['errors']:6}")
    print()
    for key, (op, target) in TARGETS.items():
        value = result.get(key)
        met = value is not None and {"<=": value <= target, ">=": value >= target, "<": value < target}[op]
        print(f"{key:28} {value!s:>8}  target {op} {target}  {'met' if met else 'MISSED'}")


if __name__ == "__main__":
    main()
