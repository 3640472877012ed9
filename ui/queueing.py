"""How the studio's events share the server: who may run at once, and beside whom.

Gradio runs each event in a worker thread, at most `concurrency_limit` at a time per
`concurrency_id` (events with no id each get their own). The defaults (`ui.server`: 4 per event)
let four corpus previews or four speed measurements run together on a 2-core machine, and every
light request (a job-status poll, a search) then waits behind them for a core. So:

- HEAVY (limit 1, one group): the events that hold the CPU for seconds: corpus preview (reads and
  cleans the sources or a large upload), the API-cost estimate (builds a corpus), the speed
  measurement and the routing curve (both time the teacher). They wait for each other, never for
  the light events, and at most one competes with them.
- SUBMIT (limit 1): queueing a distillation or an evaluation (accepts uploads into the job folder,
  checks memory); apart from HEAVY so a submission never waits behind a queue of previews.
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
HEAVY: dict[str, Any] = {"concurrency_id": "heavy", "concurrency_limit": 1}
SUBMIT: dict[str, Any] = {"concurrency_id": "submit", "concurrency_limit": 1}
SESSION: dict[str, Any] = {"concurrency_id": "compare_session", "concurrency_limit": 2}
