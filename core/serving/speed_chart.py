"""The latency and throughput chart, one figure for the Compare tab and for docs/benchmarks.md.

Both axes are logarithmic (the student is one to three orders of magnitude faster), ticked at powers
of ten only, so the labels read 1, 10, 100, 1,000 and not plotly's crowded 2, 5, 2, 5 in between.
The throughput bars' value labels sit above the bars, so the axis gets headroom for them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from core.serving.timing import SpeedReport

COLOURS = {"teacher": "#636EFA", "student": "#EF553B", "model2vec": "#00CC96"}
HEADROOM_DECADES = 0.45  # above the tallest bar, in powers of ten: room for its label


def decade_ticks(values: Sequence[float]) -> tuple[list[float], list[str]]:
    """Powers of ten that span `values` (positive ones), and their labels ("0.1", "1", "1,000")."""
    positive = [v for v in values if v > 0]
    if not positive:
        return [1.0], ["1"]
    low, high = math.floor(math.log10(min(positive))), math.ceil(math.log10(max(positive)))
    ticks = [10.0**e for e in range(low, max(high, low + 1) + 1)]
    return ticks, [f"{t:,.0f}" if t >= 1 else f"{t:g}" for t in ticks]


def speed_figure(reports: list[SpeedReport], title: str | None = None) -> go.Figure:
    """Latency distributions (a box per model and thread count) and throughput, both on log axes."""
    counts = sorted({r.threads for r in reports})
    figure = make_subplots(rows=1, cols=2, column_widths=[0.6, 0.4],
                           subplot_titles=("Single-query latency (ms, log)", "Throughput (texts/s, log)"))
    for r in reports:
        name = f"{r.label} · {r.threads} thread{'s' if r.threads > 1 else ''}"
        figure.add_box(x=r.latencies_ms, name=name, marker_color=COLOURS.get(r.label), boxpoints="outliers",
                       orientation="h", showlegend=False, row=1, col=1)
        figure.add_bar(x=[name], y=[r.throughput_per_s], marker_color=COLOURS.get(r.label), showlegend=False,
                       text=[f"{r.throughput_per_s:,.0f}"], textposition="outside", cliponaxis=False, row=1, col=2)
    latency_ticks, latency_labels = decade_ticks([t for r in reports for t in r.latencies_ms])
    figure.update_xaxes(type="log", tickvals=latency_ticks, ticktext=latency_labels, row=1, col=1)
    rates = [r.throughput_per_s for r in reports if r.throughput_per_s > 0]
    rate_ticks, rate_labels = decade_ticks(rates)
    # A log axis's range is in powers of ten: from the lowest tick to above the tallest bar and its label.
    top = math.log10(max(rates)) + HEADROOM_DECADES if rates else 1.0
    figure.update_yaxes(type="log", tickvals=rate_ticks, ticktext=rate_labels,
                        range=[math.log10(rate_ticks[0]), max(top, math.log10(rate_ticks[-1]))], row=1, col=2)
    figure.update_layout(height=420, margin=dict(t=80, b=20),
                         title=title or f"Teacher vs student at {' and '.join(map(str, counts))} thread(s)")
    return figure
