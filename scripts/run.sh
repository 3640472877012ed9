#!/usr/bin/env bash
# `make run`: one huey consumer (-k process) and the Gradio app; Ctrl-C stops both.
set -u
PY=${1:-.venv/bin/python}
PORT=${2:-7860}
# The studio and its consumer share one sealing key (core/keyring.py): random per run unless set.
export DISTILLERY_SECRET_KEY="${DISTILLERY_SECRET_KEY:-$("$PY" -c 'import secrets; print(secrets.token_urlsafe(32))')}"
"$PY" -m huey.bin.huey_consumer jobs.tasks.huey -k process -w 1 &
CONSUMER=$!
stop() { kill -TERM "$CONSUMER" 2>/dev/null; wait "$CONSUMER" 2>/dev/null; }
trap 'stop; exit 0' INT TERM
trap stop EXIT
"$PY" app.py --no-worker --port "$PORT"
