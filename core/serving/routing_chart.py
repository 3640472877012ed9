"""The routing trade-off chart (share sent to the teacher against quality and latency), for the Compare
tab: one figure builder for the development suite's curve (bench/results/routing.json) and for the
curve over the user's own queries (`queries_curve`), so both read the same way.

On the user's queries there are no gold labels, so "quality" is agreement with the teacher: of the
teacher's top 5 in the collection, how many the routed model also returns. A routed query is the
teacher's own (5 of 5); a query kept on the student is mapped into the teacher's space and searched
in the teacher's index, as the service's `NAME:routed` does against documents the teacher indexed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go

from core.serving.routing import ALWAYS, DEFAULT_THRESHOLD, NEVER, word_count_signal

RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results" / "routing.json"
GRID = (NEVER, 1 / 2, 1 / 4, 1 / 6, 1 / 8, 1 / 10, 1 / 12, 1 / 16, 1 / 24, 1 / 48, ALWAYS)  # bench/routing.py's
QUALITY, LATENCY, MARK = "#EF553B", "#636EFA", "#00CC96"


@dataclass(frozen=True)
class CurvePoint:
    threshold: float
    share_routed: float  # 0..1
    quality: float  # quality recovered (0..1) or top-5 agreement (0..1)
    latency_ms: float | None = None


def suite_curve(path: Path = RESULTS, group: str = "without_flattering") -> tuple[list[CurvePoint], dict[str, Any]]:
    """The development suite's curve of the shipped design (teacher space, short-text signal) from
    `bench/routing.py`'s results, and the results' header (date, machine, student, knee)."""
    results = json.loads(Path(path).read_text())
    default = results["default"]
    student = results["students"][default["student"]]
    points = [CurvePoint(p["threshold"], p["share_routed"], p[group]["recovered"], p["latency_ms_per_input"])
              for p in student["curves"][f"{default['space']}/{default['signal']}"]]
    return points, {"date": results.get("date"), "machine": results.get("machine"), **default}


@dataclass(frozen=True)
class QueryRoute:
    query: str
    signal: float
    student_agreement: int  # of the teacher's top k, how many the unrouted (mapped student) query finds
    k: int


def route_queries(session: Any, queries: Sequence[str], k: int = 5) -> list[QueryRoute]:
    """Each query's signal and its top-k agreement with the teacher when kept on the student.

    `session` is an open `core.serving.compare.CompareSession`; the map into the teacher's space is
    fitted on its collection (the teacher's vectors are already in its index)."""
    from core.serving.routing import SharedSpace

    space = SharedSpace.fit(session.student.encode(session.texts), session.teacher_index.matrix)
    signals = word_count_signal(session.student.model.tokenizer, list(queries))
    routes = []
    for query, signal in zip(queries, signals, strict=True):
        teacher_top = {i for i, _ in session.teacher_index.search(session.teacher_encoder.encode_queries([query])[0], k)}
        mapped = space.apply(session.student.encode_queries([query]))[0]
        student_top = {i for i, _ in session.teacher_index.search(mapped, k)}
        routes.append(QueryRoute(query, float(signal), len(teacher_top & student_top), k))
    return routes


def queries_curve(routes: Sequence[QueryRoute]) -> list[CurvePoint]:
    """Share routed and mean top-k agreement at each threshold of the grid, over the user's queries."""
    points = []
    for threshold in GRID:
        routed = [r.signal > threshold for r in routes]
        agreement = [1.0 if sent else r.student_agreement / r.k for r, sent in zip(routes, routed, strict=True)]
        points.append(CurvePoint(threshold, float(np.mean(routed)), float(np.mean(agreement))))
    return points


def tradeoff_figure(points: Sequence[CurvePoint], chosen: float = DEFAULT_THRESHOLD, title: str = "",
                    quality_label: str = "Quality recovered (%)") -> go.Figure:
    """Share sent to the teacher (x) against quality (left axis) and, when known, latency per input
    (right axis), the chosen threshold marked and every point labelled with its threshold on hover."""
    figure = go.Figure()
    x = [p.share_routed * 100 for p in points]
    hover = [_threshold_text(p.threshold) for p in points]
    figure.add_scatter(x=x, y=[p.quality * 100 for p in points], mode="lines+markers", name=quality_label,
                       line=dict(color=QUALITY), customdata=hover,
                       hovertemplate="%{customdata}<br>routed %{x:.1f}%<br>%{y:.1f}%<extra></extra>")
    if any(p.latency_ms is not None for p in points):
        figure.add_scatter(x=x, y=[p.latency_ms for p in points], mode="lines+markers", name="Latency per input (ms)",
                           yaxis="y2", line=dict(color=LATENCY, dash="dot"), customdata=hover,
                           hovertemplate="%{customdata}<br>routed %{x:.1f}%<br>%{y:.2f} ms<extra></extra>")
    mark = next((p for p in points if p.threshold == chosen), None)
    if mark is not None:
        figure.add_scatter(x=[mark.share_routed * 100], y=[mark.quality * 100], mode="markers+text",
                           name=f"default ({_threshold_text(chosen)})", marker=dict(size=14, color=MARK, symbol="star"),
                           text=[f"default: under {round(1 / chosen)} words"], hoverinfo="skip",
                           textposition="bottom left" if mark.share_routed > 0.6 else "top right")
    figure.update_layout(
        title=title, height=400, margin=dict(t=60, b=40, l=50, r=50), hovermode="closest",
        xaxis=dict(title="Inputs sent to the teacher (%)", range=[-3, 103]),
        yaxis=dict(title=quality_label), legend=dict(orientation="h", y=-0.25),
        yaxis2=dict(title="ms per input", overlaying="y", side="right", showgrid=False, rangemode="tozero"))
    return figure


def _threshold_text(threshold: float) -> str:
    if threshold >= NEVER:
        return "never route"
    if threshold <= ALWAYS:
        return "always route"
    return f"route texts under {round(1 / threshold)} words" if threshold > 0 else "route every text"
