"""How the studio's events share the server: who may run at once, and beside whom.

Gradio runs each event in a worker thread, at most `concurrency_limit` at a time per
`concurrency_id` (events with no id each get their own). The defaults (`ui.server`: 4 per event)
let four corpus previews or four speed measurements run together on a 2-core machine, and every
light request (a job-status poll, a search) then waits behind them for a core. So:

- CORPUS (limit 1): the events that read and clean a corpus for seconds: the preview (the sources
  or a large upload) and the API-cost estimate (builds a corpus).
- TIMING (limit 1): the speed measurement and the routing curve (both time the teacher, seconds).
  Each heavy kind waits for its own kind only: a preview used to wait 20 s behind a line of speed
  measurements when both shared one group (`docs/benchmarks.md`). At most two heavy events run at
  once, one per core of the smallest machine, and neither waits for the light events.
- SUBMIT (limit 1): queueing a distillation or an evaluation (accepts uploads into the job folder,
  checks memory); apart from the heavy groups so a submission never waits behind a queue of previews.
- SESSION (limit 2): opening a Compare session (mostly waiting for the teacher to load on its own
  thread, `CompareSessions.open_in_background`); apart so a page load is not stuck behind a speed
  measurement, and bounded so twenty page loads do not hold twenty threads.
- Everything else (status polls, search, model lists) keeps its own group at the queue's default
  limit (`LIGHT_LIMIT`): short and many, they pass the heavy work instead of queueing behind it.

`bench/load.py` measures the result (twenty users, with and without a distillation running).
"""

from __future__ import annotations

from typing import Any

LIGHT_LIMIT = 4  # the queue's default_concurrency_limit: each light event, up to four at a time
CORPUS: dict[str, Any] = {"concurrency_id": "corpus", "concurrency_limit": 1}
TIMING: dict[str, Any] = {"concurrency_id": "timing", "concurrency_limit": 1}
SUBMIT: dict[str, Any] = {"concurrency_id": "submit", "concurrency_limit": 1}
SESSION: dict[str, Any] = {"concurrency_id": "compare_session", "concurrency_limit": 2}
