"""Test set-up: offline Hub, a throw-away data folder, the shared local corpus, a real consumer.

The environment is set before any project module is imported, because `jobs.queue` opens the
SQLite queue in the data folder at import time.

Tests mirror the packages (`tests/corpus`, `tests/methods`, ...); there is no `__init__.py`, so each
test file's basename is unique and tests/ (this folder) is on sys.path, which is how test modules
import `helpers`. Fixtures shared across folders live here, so no test module imports another.
"""

from __future__ import annotations

import atexit
import os
import secrets
import shutil
import tempfile
from pathlib import Path
from typing import Any, NamedTuple

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
_DATA = Path(tempfile.mkdtemp(prefix="distillery-test-"))
# Removed when the test process exits, after the session fixtures (the consumer among them) are torn down.
atexit.register(shutil.rmtree, _DATA, ignore_errors=True)
os.environ["DISTILLERY_DATA_DIR"] = str(_DATA)
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
os.environ.setdefault("DISTILLERY_CORPUS_DIR", str(SHARED / "corpus"))
# The session consumer never retries a job on its own: a job another test killed on purpose must not
# be run again behind the tests' backs. tests/jobs/test_a_resume.py starts consumers that do.
os.environ.setdefault("DISTILLERY_AUTO_RETRIES", "0")
# What the launchers do (core/keyring.py): the studio and the consumers it starts share a sealing key.
os.environ.setdefault("DISTILLERY_SECRET_KEY", secrets.token_urlsafe(32))

import pytest  # noqa: E402

# These modules start and kill their own consumers on the session's queue, so they must run before
# any test that starts the session `consumer` (two consumers would race for its tasks). Their names
# sort first in their folder; `pytest_collection_modifyitems` below puts them first whatever the folders.
RUNS_FIRST = ("test_a_resume.py", "test_a_worker_killed.py")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # In RUNS_FIRST's order (test_a_resume's retrying consumers must not find test_a_worker_killed's
    # dead job); stable: the rest keep their order.
    items.sort(key=lambda item: RUNS_FIRST.index(item.path.name) if item.path.name in RUNS_FIRST else len(RUNS_FIRST))


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
    if not wait_for_worker(60):
        stop_consumer(process)  # not left running after the session, holding a deleted data folder
        raise AssertionError(f"the consumer never beat: {(data_dir / 'consumer.log').read_text()}")
    yield process
    stop_consumer(process)


@pytest.fixture(scope="module")
def server(consumer) -> Any:
    """The real studio (Gradio and the embeddings service on one port, started as `app.py` starts it)
    on a free port, with the session consumer behind it; yields its URL."""
    import helpers

    from ui.server import start

    studio = start("127.0.0.1", helpers.free_port(), quiet=True)
    yield studio.url
    studio.close()


class BuiltModel(NamedTuple):
    record: Any  # core.artifact.record.ModelRecord
    path: Path  # <root>/models/small-model
    job_dir: Path


@pytest.fixture(scope="session")
def small_model(tmp_path_factory) -> BuiltModel:
    """One model made by the product's own pipeline (`run_recipe` on `helpers.small_recipe`, about
    20 s), in a models folder of its own; shared by the pipeline, artifact, evaluation and Compare
    tests. Tests may add files to it (an evaluation report) but must leave its folders in place."""
    import helpers

    from core.pipeline import run_recipe

    root = tmp_path_factory.mktemp("small-model")
    path, job_dir = root / "models" / "small-model", root / "jobs" / "small-model"
    record = run_recipe(helpers.small_recipe("small-test"), job_dir, path)
    return BuiltModel(record, path, job_dir)


@pytest.fixture(scope="session")
def endpoint_service() -> Any:
    """The project's embeddings service on loopback serving the bundled teacher behind a key (held in
    `helpers.ENDPOINT_KEY_ENV` for the session): the teacher an endpoint test reaches over HTTP."""
    import helpers

    os.environ[helpers.ENDPOINT_KEY_ENV] = helpers.ENDPOINT_KEY
    with helpers.running(helpers.teacher_service()) as url:
        helpers.wait_healthy(url)
        yield url
    os.environ.pop(helpers.ENDPOINT_KEY_ENV, None)


@pytest.fixture(scope="session")
def unreliable_endpoint() -> Any:
    """The same service behind `helpers.unreliable` (10% of requests 429 or 500, 10% slow); yields
    the URL and the door (its `seen` counts, its `down` switch)."""
    import helpers

    os.environ[helpers.ENDPOINT_KEY_ENV] = helpers.ENDPOINT_KEY
    door = helpers.unreliable(helpers.teacher_service())
    with helpers.running(door) as url:
        helpers.wait_healthy(url)
        yield url, door
