"""The page as a person's browser renders it: headless Chromium against the real server."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.mark.slow  # a Gradio server, the consumer and a browser
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (.ci/run installs it)")
def test_page_renders_tabs_sliders_and_shares(server):
    with tempfile.TemporaryDirectory() as profile:
        dom = subprocess.run(
            [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=20000", "--dump-dom", server],
            capture_output=True, text=True, timeout=120,
        ).stdout
    rendered = re.sub(r"<script.*?</script>", "", dom, flags=re.S)  # drop the config, keep the rendered DOM
    assert rendered.count('type="range"') >= 5, "the five domain sliders were not rendered"
    tabs = re.findall(r'role="tab"[^>]*>(.*?)</button>', rendered, flags=re.S)
    assert {"Recipe", "Jobs", "Compare", "Evaluate"} <= {re.sub(r"<[^>]+>", "", t).strip() for t in tabs}, tabs
    assert "Normalised shares:" in rendered and "<strong>academic</strong>" in rendered
    radios = re.findall(r'<input[^>]*type="radio"[^>]*>', rendered)
    assert any('value="corpus"' in r for r in radios) and any('value="vocabulary"' in r for r in radios), radios
