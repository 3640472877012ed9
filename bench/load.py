"""The studio under load: twenty users through the real server while a distillation runs.

    .venv/bin/python bench/load.py [--users 20] [--duration 40] [--job-duration 90] [--after 30]
                                   [--corpus-size 400] [--epochs 2] [--think 0.5]

What runs: the studio as users start it (`python app.py --no-worker --port P`, its own process, so its
memory is its own) and a real huey consumer (`jobs.worker.start_consumer`), both on a fresh data
folder, on loopback. One finished model is made first through the page's API (the small vocabulary
recipe of the tests, `helpers.recipe_form`), so Compare has something to open.

The users: one thread and one `gradio_client.Client` each (each its own Gradio session). Every user
first opens the Compare session (`/prepare_session`, as choosing a model does), then loops: a job
status poll (`/job_status`, what the Jobs tab and scripts poll) every step, a search in Compare
(`/search`) every second step (every sixth search on the user's own five texts, a new collection and
so a new session: the bounded session cache has to drop old ones), a corpus preview
(`/preview_corpus`, every other one with a 2 MB upload) every sixth step and a small speed measurement
(`/measure_speed`, three queries, one thread) every twelfth, with `--think` seconds (±50 %) between
steps. Users start at staggered points of that cycle.

Phases, each bounded in time (and in steps per user, `--max-steps`):
- `idle`: no job runs, `--duration` seconds.
- `job`: a corpus-method distillation (`--corpus-size` texts, `--epochs`) is submitted through
  `/submit_recipe`; the users run while it does, until it ends or `--job-duration` seconds pass.
  The job must then end within `--job-timeout` seconds (its state is reported).
- `after`: no job again, `--after` seconds: the same work once every cache is warm, so the memory at
  its end against the end of `idle` says whether the app's memory is flat.

Recorded: every call's latency by kind and phase (p50/p95/max), every error (an exception, or an answer
that starts with "❌"), and the app process's resident set every second. Prints the tables and writes
bench/results/load.json (or --out): `users`, `errors`, `latency_ms[phase][kind]`, `memory_mb`.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from anywhere
sys.path.insert(1, str(ROOT / "tests"))  # helpers.recipe_form: the Recipe tab's inputs, as the UI tests send them

from bench._common import RESULTS, write_results  # noqa: E402

TERMINAL = {"done", "failed", "cancelled", "interrupted"}
KINDS = ("status", "search", "search_own", "preview", "preview_upload", "speed", "prepare_session")
QUERIES = ["how do I open a file in python", "reset my password", "symptoms of the flu", "sort a list in place",
           "what is a neural network", "cheap flights to rome", "define recursion", "book a table for two"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--duration", type=float, default=40, help="seconds of the idle phase")
    parser.add_argument("--job-duration", type=float, default=90, help="most seconds of the job phase")
    parser.add_argument("--job-timeout", type=float, default=300, help="the job must end within this after its phase")
    parser.add_argument("--after", type=float, default=30, help="seconds of the last phase (no job, caches warm)")
    parser.add_argument("--max-steps", type=int, default=300, help="steps per user and phase, at most")
    parser.add_argument("--think", type=float, default=0.5, help="seconds between a user's steps (±50%%)")
    parser.add_argument("--corpus-size", type=int, default=400, help="texts of the corpus-method job")
    parser.add_argument("--epochs", type=int, default=2, help="epochs of the corpus-method job")
    parser.add_argument("--out", type=Path, default=RESULTS / "load.json")
    args = parser.parse_args()

    data = Path(tempfile.mkdtemp(prefix="distillery-load-"))
    os.environ["DISTILLERY_DATA_DIR"] = str(data)
    os.environ.setdefault("DISTILLERY_CORPUS_DIR", str(ROOT.parent / "shared" / "data" / "corpus"))
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))

    import helpers
    from gradio_client import Client

    from jobs.worker import start_consumer, stop_consumer, wait_for_worker

    consumer = start_consumer(data / "consumer.log")
    port = helpers.free_port()
    app = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--no-worker", "--port", str(port)], cwd=ROOT,
                           stdout=open(data / "app.log", "ab"), stderr=subprocess.STDOUT, start_new_session=True)
    run = Run()
    sampler = threading.Thread(target=sample_memory, args=(app.pid, run), daemon=True)
    try:
        if not wait_for_worker(60):
            raise SystemExit(f"the consumer never beat: {(data / 'consumer.log').read_text()[-2000:]}")
        url = wait_up(f"http://127.0.0.1:{port}/", app, data / "app.log")
        print(f"studio at {url} (pid {app.pid}), consumer pid {consumer.pid}, data {data}", flush=True)
        sampler.start()
        admin = Client(url, verbose=False)
        run.phase = "setup"
        started = time.perf_counter()
        model_id = finish(admin, submit(admin, helpers.recipe_form(name="load-base")), 300)["model_id"]
        print(f"base model {model_id} in {time.perf_counter() - started:.0f} s", flush=True)
        upload = write_upload(data / "big notes.txt", 2 * 2**20)
        users = open_clients(url, args.users)
        user_args = dict(model_id=model_id, upload=upload, form=helpers.recipe_form, think=args.think,
                         max_steps=args.max_steps)

        run.rss_mark("idle_start")
        run_phase(run, "idle", users, user_args, lambda: False, args.duration)
        run.rss_mark("idle_end")

        job_id = submit(admin, helpers.recipe_form(method="corpus", name="load-corpus", sif_coefficient=1e-2,
                                                   epochs=args.epochs, corpus_size=args.corpus_size))
        user_args["job_id"] = job_id
        job_started = time.perf_counter()
        ended = lambda: admin.predict(job_id, api_name="/job_status")["state"] in TERMINAL  # noqa: E731
        run_phase(run, "job", users, user_args, ended, args.job_duration)
        overlap = time.perf_counter() - job_started
        job = finish(admin, job_id, args.job_timeout, fail_ok=True)
        job_seconds = time.perf_counter() - job_started
        run.rss_mark("job_end")
        print(f"corpus job {job_id}: {job['state']} after {job_seconds:.0f} s (users ran beside it for "
              f"{overlap:.0f} s)", flush=True)

        run_phase(run, "after", users, user_args, lambda: False, args.after)
        run.rss_mark("after_end")
    finally:
        run.stop.set()
        stop(app)
        stop_consumer(consumer)
    result = summarise(run, args, job | {"seconds": round(job_seconds, 1), "overlap_seconds": round(overlap, 1)})
    print_tables(result)
    write_results(args.out, result)


@dataclass
class Run:
    """Everything measured: calls (phase, kind, seconds), errors, and the app's memory over time."""

    phase: str = "start"
    calls: list[tuple[str, str, float]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    rss: list[tuple[float, str, float]] = field(default_factory=list)  # (seconds since start, phase, MB)
    marks: dict[str, float] = field(default_factory=dict)
    marks_at: dict[str, float] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)
    t0: float = field(default_factory=time.perf_counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def call(self, kind: str, user: int, client: Any, *args: Any, api_name: str) -> None:
        phase, start = self.phase, time.perf_counter()
        try:
            answer = client.predict(*args, api_name=api_name)
            error = answer_error(answer)
        except Exception as exc:  # any failure a user would see
            error = f"{type(exc).__name__}: {exc}"
        seconds = time.perf_counter() - start
        with self.lock:
            self.calls.append((phase, kind, seconds))
            if error:
                self.errors.append({"phase": phase, "kind": kind, "user": user, "error": error[:300],
                                    "at_s": round(start - self.t0, 1)})

    def rss_mark(self, name: str) -> None:
        self.marks[name] = self.rss[-1][2] if self.rss else float("nan")
        self.marks_at[name] = time.perf_counter() - self.t0


def answer_error(answer: Any) -> str | None:
    """An error the page would show: a text answer (or its first part) that starts with ❌."""
    first = answer[0] if isinstance(answer, (tuple, list)) and answer else answer
    return first if isinstance(first, str) and first.lstrip().startswith("❌") else None


def sample_memory(pid: int, run: Run) -> None:
    import psutil

    process = psutil.Process(pid)
    while not run.stop.is_set():
        try:
            run.rss.append((time.perf_counter() - run.t0, run.phase, process.memory_info().rss / 2**20))
        except psutil.Error:
            return
        run.stop.wait(1.0)


def wait_up(url: str, app: subprocess.Popen, log: Path, timeout: float = 180) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if app.poll() is not None:
            raise SystemExit(f"the studio exited: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url + "config", timeout=5):
                return url
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"the studio did not answer within {timeout:.0f} s: {log.read_text()[-2000:]}")


def stop(app: subprocess.Popen) -> None:
    import signal

    if app.poll() is None:
        os.killpg(app.pid, signal.SIGTERM)
        try:
            app.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(app.pid, signal.SIGKILL)
            app.wait(10)


def submit(client: Any, form: list[Any]) -> str:
    message = client.predict(*form, api_name="/submit_recipe")
    match = re.search(r"Submitted job `([^`]+)`", message)
    if not match:
        raise SystemExit(f"not submitted: {message}")
    return match.group(1)


def finish(client: Any, job_id: str, timeout: float, fail_ok: bool = False) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        status = client.predict(job_id, api_name="/job_status")
        if status["state"] in TERMINAL:
            break
        time.sleep(1)
    if status.get("state") != "done" and not fail_ok:
        raise SystemExit(f"job {job_id} did not finish: {status}")
    return {"job_id": job_id, "state": status.get("state"), "model_id": status.get("model_id"),
            "error": status.get("error")}


def write_upload(path: Path, size: int) -> Path:
    """A plain-text upload of about `size` bytes, one paragraph a line, as a user's notes would be."""
    words = "sorting lists in place with a key function is stable and returns none".split()
    rng, lines, total = random.Random(0), [], 0
    while total < size:
        line = " ".join(rng.choice(words) for _ in range(rng.randint(8, 40))) + "\n"
        lines.append(line)
        total += len(line)
    path.write_text("".join(lines))
    return path


def open_clients(url: str, n: int) -> list[Any]:
    """One gradio_client per user, opened a few at a time (each reads the app's config)."""
    from concurrent.futures import ThreadPoolExecutor

    from gradio_client import Client

    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(lambda _: Client(url, verbose=False), range(n)))


def run_phase(run: Run, phase: str, users: list[Any], user_args: dict[str, Any], ended: Callable[[], bool],
              seconds: float) -> None:
    """All users at once until `seconds` pass or `ended()` (checked every 2 s) says the phase is over."""
    run.phase = phase
    done = threading.Event()
    threads = [threading.Thread(target=user_loop, args=(run, i, c, done), kwargs=user_args, daemon=True)
               for i, c in enumerate(users)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    while time.perf_counter() - start < seconds and any(t.is_alive() for t in threads):
        time.sleep(2)
        if ended():
            break
    done.set()
    for thread in threads:
        thread.join(120)  # a call under way finishes; none is started after `done`
    calls = sum(1 for p, _, _ in run.calls if p == phase)
    errors = sum(1 for e in run.errors if e["phase"] == phase)
    print(f"phase {phase}: {time.perf_counter() - start:.0f} s, {calls} calls, {errors} errors", flush=True)


def user_loop(run: Run, user: int, client: Any, done: threading.Event, model_id: str, upload: Path,
              form: Callable[..., list[Any]], think: float, max_steps: int, job_id: str | None = None) -> None:
    from gradio_client import handle_file

    rng = random.Random(user)
    run.call("prepare_session", user, client, model_id, api_name="/prepare_session")
    searches = previews = 0
    for step in range(user, user + max_steps):  # staggered: each user starts at its own point of the cycle
        if done.is_set():
            return
        if job_id:
            run.call("status", user, client, job_id, api_name="/job_status")
        else:  # no job yet: the poll of a job that ended long ago (what a page left open does)
            run.call("status", user, client, "load-none", api_name="/job_status")
        if step % 2 == 0:
            searches += 1
            query = rng.choice(QUERIES)
            if searches % 6 == 0:  # the user's own texts: a new collection, so a new session
                own = "\n".join(f"user {user} note {searches}: {q}" for q in rng.sample(QUERIES, 5))
                run.call("search_own", user, client, model_id, query, own, None, api_name="/search")
            else:
                run.call("search", user, client, model_id, query, "", None, api_name="/search")
        if step % 6 == 3:
            previews += 1
            if previews % 2:
                run.call("preview", user, client, *form(), "all domains", api_name="/preview_corpus")
            else:
                values = form(**{"code:files": [handle_file(str(upload))], "code:sources": []})
                run.call("preview_upload", user, client, *values, "code", api_name="/preview_corpus")
        if step % 12 == 7:
            run.call("speed", user, client, model_id, "reset my password", "", None,
                     "reset my password\nsort a list\ncheap flights", ["1"], api_name="/measure_speed")
        done.wait(think * rng.uniform(0.5, 1.5))


def percentiles(values: list[float]) -> dict[str, float]:
    import numpy as np

    ms = np.asarray(values) * 1000
    return {"n": len(values), "p50": round(float(np.percentile(ms, 50)), 1),
            "p95": round(float(np.percentile(ms, 95)), 1), "max": round(float(ms.max()), 1)}


def summarise(run: Run, args: argparse.Namespace, job: dict[str, Any]) -> dict[str, Any]:
    import numpy as np

    phases = ("idle", "job", "after")
    latency = {p: {k: percentiles([s for ph, kind, s in run.calls if ph == p and kind == k])
                   for k in KINDS if any(ph == p and kind == k for ph, kind, _ in run.calls)} for p in phases}
    warm = run.marks_at.get("idle_end", 0.0)  # from the end of the first phase: models loaded, caches filled
    loaded = [(t, mb) for t, p, mb in run.rss if p in phases and t >= warm]
    slope = float(np.polyfit([t for t, _ in loaded], [mb for _, mb in loaded], 1)[0]) * 60 if len(loaded) > 2 else None
    memory = {
        "start": round(run.marks.get("idle_start", float("nan")), 1),  # the base model built, no user yet
        "end_idle": round(run.marks.get("idle_end", float("nan")), 1),
        "end_job": round(run.marks.get("job_end", float("nan")), 1),
        "end": round(run.marks.get("after_end", float("nan")), 1),
        "peak": round(max((mb for _, _, mb in run.rss), default=float("nan")), 1),
        "peak_by_phase": {p: round(max((mb for _, ph, mb in run.rss if ph == p), default=float("nan")), 1)
                          for p in phases},
        "growth_after_warm_mb": round(run.marks.get("after_end", float("nan")) - run.marks.get("idle_end", float("nan")), 1),
        "slope_mb_per_min": None if slope is None else round(slope, 2),  # fitted from the end of idle on
        "samples": [[round(t, 1), p, round(mb, 1)] for t, p, mb in run.rss],
    }
    errors_by = {}
    for e in run.errors:
        errors_by[f"{e['phase']}/{e['kind']}"] = errors_by.get(f"{e['phase']}/{e['kind']}", 0) + 1
    try:
        from ui import queueing
        concurrency: dict[str, Any] = {"light_default_limit": queueing.LIGHT_LIMIT, "submit": queueing.SUBMIT,
                                       "session": queueing.SESSION}
        for group in ("CORPUS", "TIMING", "HEAVY"):  # HEAVY: one group for both, before they were split
            if hasattr(queueing, group):
                concurrency[group.lower()] = getattr(queueing, group)
    except ImportError:  # a checkout from before the groups: every event its own, four at a time
        concurrency = {"light_default_limit": 4, "heavy": None, "submit": None, "session": None}

    return {
        "users": args.users, "think_seconds": args.think,
        "phase_seconds": {"idle": args.duration, "job_max": args.job_duration, "after": args.after},
        "concurrency": concurrency,
        "job": job | {"corpus_size": args.corpus_size, "epochs": args.epochs, "method": "corpus"},
        "calls": len(run.calls), "errors": len(run.errors), "errors_by": errors_by, "error_samples": run.errors[:20],
        "latency_ms": latency, "memory_mb": memory,
    }


def print_tables(result: dict[str, Any]) -> None:
    print(f"\n{result['users']} users, {result['calls']} calls, {result['errors']} errors {result['errors_by']}")
    print(f"{'phase':<7}{'kind':<17}{'n':>6}{'p50 ms':>10}{'p95 ms':>10}{'max ms':>10}")
    for phase, kinds in result["latency_ms"].items():
        for kind, f in kinds.items():
            print(f"{phase:<7}{kind:<17}{f['n']:>6}{f['p50']:>10.1f}{f['p95']:>10.1f}{f['max']:>10.1f}")
    m = result["memory_mb"]
    print(f"\napp RSS MB: start {m['start']}, end of idle {m['end_idle']}, end of job {m['end_job']}, end {m['end']}, "
          f"peak {m['peak']} {m['peak_by_phase']}; after warm-up {m['growth_after_warm_mb']:+} MB, "
          f"slope {m['slope_mb_per_min']} MB/min")
    for e in result["error_samples"][:5]:
        print(f"  error: {e}")


if __name__ == "__main__":
    main()
