"""`python app.py` alone (how a Space starts it) brings its own consumer and takes it down on exit."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest
from helpers import free_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow  # the app, its consumer and a Gradio server in subprocesses
def test_app_starts_and_stops_its_own_consumer(tmp_path):
    port = free_port()
    env = {**os.environ, "DISTILLERY_DATA_DIR": str(tmp_path), "PYTHONUNBUFFERED": "1"}
    app = subprocess.Popen([sys.executable, "app.py", "--port", str(port)], cwd=ROOT, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = app.stdout.readline()
        match = re.search(r"Started a huey consumer \(pid (\d+)\)", line)
        assert match, line
        consumer = psutil.Process(int(match.group(1)))
        assert "huey_consumer" in " ".join(consumer.cmdline())
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
                    assert response.status == 200
                    break
            except OSError:
                time.sleep(0.5)
        else:
            raise AssertionError("the app never answered")
        app.send_signal(signal.SIGTERM)
        app.wait(60)
        consumer.wait(30)
        assert not consumer.is_running()
    finally:
        if app.poll() is None:
            app.kill()


@pytest.mark.slow  # a fresh interpreter imports the app
def test_the_app_imports_transformers_whole_before_its_threads_start():
    """A Compare session opening in a background thread imports transformers; a corpus preview in
    another thread used to find it half-built in `sys.modules` (datasets' pickler looks up
    `transformers.PreTrainedTokenizerBase`) and fail. Building the app finishes that import first."""
    code = ("import sys; from ui.app import build_app; build_app(); "
            "print(hasattr(sys.modules['transformers'], 'PreTrainedTokenizerBase'))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert out.stdout.strip().endswith("True"), out.stderr[-2000:]
