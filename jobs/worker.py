"""Starting and stopping a huey consumer as a subprocess (huey's consumer cannot run in a thread)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from core.settings import REPO_ROOT
from jobs.status import worker_alive


def consumer_command(workers: int = 1) -> list[str]:
    return [sys.executable, "-m", "huey.bin.huey_consumer", "jobs.tasks.huey", "-k", "process",
            "-w", str(workers), "-q"]


def start_consumer(log_file: Path | None = None, env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start `huey_consumer jobs.tasks.huey -k process` in its own process group."""
    out = open(log_file, "ab") if log_file else subprocess.DEVNULL
    return subprocess.Popen(consumer_command(), cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT,
                            env={**os.environ, **(env or {})}, start_new_session=True)


def stop_consumer(process: subprocess.Popen, timeout: float = 10.0) -> None:
    """SIGTERM the consumer's process group (it and its worker processes), then SIGKILL if needed."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout)
    except ProcessLookupError:
        pass


def wait_for_worker(timeout: float = 60.0) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if worker_alive():
            return True
        time.sleep(0.25)
    return False
