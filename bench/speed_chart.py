"""The latency distributions of bench/speed.py as a plotly chart for docs/benchmarks.md.

    .venv/bin/python bench/speed_chart.py [--results bench/results/speed.json] [--out docs/charts/speed]

Reads speed.json and speed_latencies.json (written by bench/speed.py), draws the Compare tab's
chart (`core.serving.speed_chart.speed_figure`: a latency box per model and thread count, passages per
second) and writes OUT.html (plotly.js from its CDN) and OUT.png (a headless Chromium screenshot
of the same page with plotly.js inlined, so no network is needed). The PNG is skipped, with a
message, where Chromium is not installed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
from pathlib import Path

from bench._common import RESULTS, ROOT


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, default=RESULTS / "speed.json")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "charts" / "speed")
    args = parser.parse_args()
    write_chart(args.results, args.out)


def write_chart(results: Path, out: Path) -> None:
    from core.serving.speed_chart import speed_figure
    from core.serving.timing import SpeedReport

    speed = json.loads(results.read_text())
    latencies = json.loads(results.with_name(results.stem + "_latencies.json").read_text())["rows"]
    reports = [SpeedReport(label=row["model"], threads=row["threads"], query_p50_ms=row["p50_ms"],
                           query_p95_ms=row["p95_ms"], query_p99_ms=row["p99_ms"],
                           throughput_per_s=row["passages_per_s"], queries=len(latencies[key]), batch_texts=0,
                           short_per_s=row["short_per_s"], latencies_ms=latencies[key])
               for key, row in speed["rows"].items()]
    figure = speed_figure(reports, title=f"Single-query latency and passages/s — {speed['machine']}, {speed['date']}")
    figure.update_layout(width=1200, height=520)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.write_html(out.with_suffix(".html"), include_plotlyjs="cdn")
    print(f"wrote {out.with_suffix('.html')}")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("no chromium: PNG skipped")
        return
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / "chart.html"
        figure.write_html(page, include_plotlyjs=True, config={"staticPlot": True})
        subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        f"--user-data-dir={tmp}/profile", "--virtual-time-budget=10000", "--window-size=1220,540",
                        f"--screenshot={out.with_suffix('.png')}", page.as_uri()],
                       check=True, capture_output=True, timeout=120)
    print(f"wrote {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
