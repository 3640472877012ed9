"""What the Compare tab shows around the hits, on plain values: shared-hit ranks, the off-collection
verdict, and the speed chart's axes (ticks at powers of ten, room for the bar labels)."""

from __future__ import annotations

import math

import pytest

from core.serving.compare import OFF_COLLECTION_BELOW, Comparison
from core.serving.index import Hit
from core.serving.speed_chart import HEADROOM_DECADES, decade_ticks, speed_figure
from core.serving.timing import SpeedReport


def _comparison(teacher: list[tuple[int, float]], student: list[tuple[int, float]]) -> Comparison:
    hits = [[Hit(rank, index, score, f"text {index}") for rank, (index, score) in enumerate(side, 1)]
            for side in (teacher, student)]
    return Comparison("q", hits[0], hits[1], len({h.index for h in hits[0]} & {h.index for h in hits[1]}), 1.0, 0.1)


def test_rank_in_other_gives_each_hit_its_rank_in_the_other_list():
    result = _comparison([(7, 0.6), (3, 0.5), (9, 0.4)], [(3, 0.9), (1, 0.8), (7, 0.7)])
    assert result.rank_in_other("teacher") == [3, 1, None]  # doc 7 is the student's #3, doc 3 its #1
    assert result.rank_in_other("student") == [2, None, 1]
    assert sum(r is not None for r in result.rank_in_other("teacher")) == result.overlap == 2


@pytest.mark.parametrize(("best", "off"), [(OFF_COLLECTION_BELOW - 0.01, True), (OFF_COLLECTION_BELOW, False),
                                           (0.8, False)])
def test_off_collection_follows_the_teachers_best_score_only(best, off):
    result = _comparison([(1, best), (2, best - 0.1)], [(5, 0.99)])  # the student's high score does not count
    assert result.off_collection is off


def test_an_empty_result_is_off_collection():
    assert _comparison([], []).off_collection


def test_decade_ticks_span_the_values_with_powers_of_ten_only():
    ticks, labels = decade_ticks([0.21, 3.5, 140.0])
    assert ticks == pytest.approx([0.1, 1, 10, 100, 1000])
    assert labels == ["0.1", "1", "10", "100", "1,000"]
    assert decade_ticks([50.0, 50.0]) == ([10.0, 100.0], ["10", "100"])  # one value still spans a decade
    assert decade_ticks([0.0, -1.0]) == ([1.0], ["1"])


def _report(label: str, threads: int, rate: float, latencies: list[float]) -> SpeedReport:
    return SpeedReport(label, threads, latencies[0], latencies[-1], latencies[-1], rate, len(latencies), 64,
                       latencies_ms=latencies)


def test_speed_figure_has_decade_ticks_and_room_for_the_bar_labels():
    reports = [_report("teacher", 1, 55.0, [8.0, 9.5, 12.0]), _report("student", 1, 41_000.0, [0.04, 0.05, 0.09]),
               _report("teacher", 2, 48.0, [9.0, 11.0, 30.0]), _report("student", 2, 52_000.0, [0.05, 0.06, 0.2])]
    layout = speed_figure(reports).to_plotly_json()["layout"]
    latency_axis, rate_axis = layout["xaxis"], layout["yaxis2"]
    assert latency_axis["type"] == rate_axis["type"] == "log"
    assert list(latency_axis["tickvals"]) == pytest.approx([0.01, 0.1, 1, 10, 100])
    assert list(rate_axis["tickvals"]) == pytest.approx([10, 100, 1_000, 10_000, 100_000])
    assert list(rate_axis["ticktext"]) == ["10", "100", "1,000", "10,000", "100,000"]
    low, high = rate_axis["range"]
    assert low == pytest.approx(1.0) and high >= math.log10(52_000) + HEADROOM_DECADES - 1e-9  # the label fits
    bars = [t for t in speed_figure(reports).data if t.type == "bar"]
    assert len(bars) == 4 and all(b.cliponaxis is False and b.textposition == "outside" for b in bars)


def test_compare_tab_offers_french_sample_queries_next_to_the_english_ones():
    from gradio.components import Dataset

    from core.serving.compare import SAMPLE_QUERIES
    from ui.app import build_app

    assert set(SAMPLE_QUERIES) == {"en", "fr"} and len(SAMPLE_QUERIES["fr"]) >= 4
    assert any("Python" in q for q in SAMPLE_QUERIES["fr"]) and any("salarié" in q or "employeur" in q
                                                                    for q in SAMPLE_QUERIES["fr"])
    shown = {block.label: [row[0] for row in block.samples] for block in build_app().blocks.values()
             if isinstance(block, Dataset)}
    assert shown["French sample queries"] == list(SAMPLE_QUERIES["fr"])
    assert shown["English sample queries"] == list(SAMPLE_QUERIES["en"])
