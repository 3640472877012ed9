"""Test set-up: offline Hub, a throw-away data folder, the shared local corpus, a real consumer.

The environment is set before any project module is imported, because `jobs.queue` opens the
SQLite queue in the data folder at import time.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
_DATA = Path(tempfile.mkdtemp(prefix="distillery-test-"))
os.environ["DISTILLERY_DATA_DIR"] = str(_DATA)
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
os.environ.setdefault("DISTILLERY_CORPUS_DIR", str(SHARED / "corpus"))

import pytest  # noqa: E402



@pytest.fixture(scope="session")
def data_dir() -> Path:
    return _DATA


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    path = Path(os.environ["DISTILLERY_CORPUS_DIR"])
    assert path.is_dir(), f"the shared corpus is missing at {path}"
    return path


@pytest.fixture(scope="session")
def consumer(data_dir: Path):
    """A real `huey_consumer jobs.tasks.huey -k process` subprocess on the test data folder."""
    from jobs.worker import start_consumer, stop_consumer, wait_for_worker

    process = start_consumer(data_dir / "consumer.log")
    assert wait_for_worker(60), (data_dir / "consumer.log").read_text()
    yield process
    stop_consumer(process)

