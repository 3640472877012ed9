"""A recipe too large for the machine's memory, submitted through the running app's API: refused
before queueing with the estimate, and nothing queued, no job folder left.

`DISTILLERY_MEMORY_LIMIT_MB` stands for the machine (the studio runs in this process, so it reads
the variable as set here): 4,000 MB, which the default-sized recipe fits and 2,000,000 texts with
the corpus method (about 9.7 GB at featurize, by the measured figures) do not.
"""

from __future__ import annotations

import pytest
from gradio_client import Client
from helpers import recipe_form

from core.memory import MEMORY_LIMIT_ENV
from jobs.queue import huey

pytestmark = pytest.mark.slow  # a Gradio server with the consumer behind it


def test_a_recipe_over_the_memory_is_refused_before_queueing(server, data_dir, monkeypatch) -> None:
    monkeypatch.setenv(MEMORY_LIMIT_ENV, "4000")
    jobs = data_dir / "jobs"
    jobs.mkdir(exist_ok=True)
    folders, pending = set(jobs.iterdir()), huey.pending_count()

    answer = Client(server, verbose=False).predict(
        *recipe_form(name="too-big", method="corpus", corpus_size=2_000_000), api_name="/submit_recipe")

    assert answer.startswith("❌ **Not submitted:** This recipe needs about 9.7 GB of memory at its peak "
                             "(the corpus method on 2,000,000 texts: featurize 9.7 GB"), answer
    assert "DISTILLERY_MEMORY_LIMIT_MB allows 3.9 GB. Use a smaller corpus" in answer
    assert set(jobs.iterdir()) == folders and huey.pending_count() == pending  # nothing queued, nothing left
