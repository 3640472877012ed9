"""The studio's events are grouped on purpose (`ui.queueing`): heavy work one at a time, in a group of
its own, so status polls and searches never queue behind it."""

from __future__ import annotations

from ui.app import build_app
from ui.queueing import HEAVY, SESSION, SUBMIT


def test_heavy_events_share_one_slot_apart_from_the_light_ones() -> None:
    fns = {fn.api_name: fn for fn in build_app().fns.values() if fn.api_name}
    groups = {"preview_corpus": HEAVY, "estimate_api_cost": HEAVY, "measure_speed": HEAVY, "routing": HEAVY,
              "submit_recipe": SUBMIT, "evaluate": SUBMIT, "prepare_session": SESSION}
    for name, group in groups.items():
        assert (fns[name].concurrency_id, fns[name].concurrency_limit) == \
            (group["concurrency_id"], group["concurrency_limit"]), name
    assert HEAVY["concurrency_limit"] == 1
    grouped = {g["concurrency_id"] for g in groups.values()}
    for light in ("job_status", "search", "model_info", "refresh_models", "follow_evaluations"):
        assert fns[light].concurrency_id not in grouped, light
