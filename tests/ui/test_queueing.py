"""The studio's events are grouped on purpose (`ui.queueing`): each kind of heavy work one at a time,
in a group of its own, so status polls and searches never queue behind it, and a preview never
queues behind speed measurements."""

from __future__ import annotations

from ui.app import build_app
from ui.queueing import CORPUS, SESSION, SUBMIT, TIMING


def test_heavy_events_share_one_slot_per_kind_apart_from_the_light_ones() -> None:
    fns = {fn.api_name: fn for fn in build_app().fns.values() if fn.api_name}
    groups = {"preview_corpus": CORPUS, "estimate_api_cost": CORPUS, "measure_speed": TIMING, "routing": TIMING,
              "submit_recipe": SUBMIT, "evaluate": SUBMIT, "prepare_session": SESSION}
    for name, group in groups.items():
        assert (fns[name].concurrency_id, fns[name].concurrency_limit) == \
            (group["concurrency_id"], group["concurrency_limit"]), name
    assert CORPUS["concurrency_limit"] == TIMING["concurrency_limit"] == 1
    assert len({g["concurrency_id"] for g in (CORPUS, TIMING, SUBMIT, SESSION)}) == 4
    grouped = {g["concurrency_id"] for g in groups.values()}
    for light in ("job_status", "search", "model_info", "refresh_models", "follow_evaluations"):
        assert fns[light].concurrency_id not in grouped, light
