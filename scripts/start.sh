#!/usr/bin/env bash
# The container's entry point: DISTILLERY_MODE picks the studio (default) or the embeddings service
# alone, on $HOST:$PORT. `exec` replaces this shell, so signals (docker stop's SIGTERM) reach python.
# DRY_RUN=1 prints the command instead of running it (tests/test_deploy.py checks each mode).
set -euo pipefail

MODE=${DISTILLERY_MODE:-studio}
HOST=${HOST:-0.0.0.0}
PORT=${PORT:-7860}
PY=${PYTHON:-python}

case "$MODE" in
  studio)
    # The studio starts its own huey worker; the service routes are mounted on the same port.
    cmd=("$PY" app.py --host "$HOST" --port "$PORT")
    ;;
  service)
    # Every finished model of the data folder (or DISTILLERY_MODELS, comma-separated names or folders).
    cmd=("$PY" -m serve)
    IFS=',' read -r -a models <<< "${DISTILLERY_MODELS:-}"
    for model in "${models[@]}"; do
      [[ -n "${model// /}" ]] && cmd+=(--model "${model// /}")
    done
    ;;
  *)
    echo "error: DISTILLERY_MODE must be 'studio' or 'service', not '$MODE'." >&2
    exit 2
    ;;
esac

export HOST PORT
if [[ -n "${DRY_RUN:-}" ]]; then
  printf '%s\n' "${cmd[*]}"
  exit 0
fi
exec "${cmd[@]}"
