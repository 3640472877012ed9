"""The latency and throughput chart, one figure for the Compare tab and for docs/benchmarks.md."""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from core.serving.timing import SpeedReport

COLOURS = {"teacher": "#636EFA", "student": "#EF553B", "model2vec": "#00CC96"}


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
                       text=[f"{r.throughput_per_s:,.0f}"], textposition="outside", row=1, col=2)
    figure.update_xaxes(type="log", row=1, col=1)
    figure.update_yaxes(type="log", row=1, col=2)
    figure.update_layout(height=420, margin=dict(t=60, b=20),
                         title=title or f"Teacher vs student at {' and '.join(map(str, counts))} thread(s)")
    return figure
