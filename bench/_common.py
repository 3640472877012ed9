"""What every benchmark script shares: the machine it ran on, peak memory, and writing its results.

Scripts print their tables and write `bench/results/<name>.json` through `write_results`, which
stamps the date, the machine and the command line, so every published figure says where it came
from (docs/benchmarks.md quotes them).
"""

from __future__ import annotations

import os
import platform
import sys
from datetime import date
from pathlib import Path
from typing import Any

from core.files import write_json
from core.progress import peak_rss_mb

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"

__all__ = ["RESULTS", "ROOT", "command_line", "describe_machine", "peak_rss_mb", "write_results"]


def describe_machine(device: str = "cpu") -> str:
    """Cores and CPU model (and the GPU's name when `device` is CUDA), as the results record them."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    text = f"{os.cpu_count()} cores ({cpu})"
    if str(device).startswith("cuda"):
        import torch

        text += f", GPU {torch.cuda.get_device_name(0)}"
    return text


def command_line() -> str:
    """How this script was started, relative to the repository (for the results' `command`)."""
    script = Path(sys.argv[0]).resolve()
    shown = script.relative_to(ROOT) if script.is_relative_to(ROOT) else script
    return " ".join(["python", str(shown), *sys.argv[1:]])


def write_results(path: Path, result: dict[str, Any], device: str = "cpu") -> Path:
    """`result` with date, machine and command (unless it already names them), written atomically."""
    stamped = {"date": date.today().isoformat(), "machine": describe_machine(device), "command": command_line(),
               **result}
    write_json(Path(path), stamped)
    print(f"wrote {path}")
    return Path(path)
