"""`python -m serve --model NAME_OR_FOLDER_OR_HUB_ID [--model ...] [--models-dir DIR]`: serve models over HTTP.

Thin on purpose: the routes, limits and model cache live in `core.serving.service`. `$HOST` and
`$PORT` choose the address (default 127.0.0.1:8000; `HOST=::` listens on IPv6 and, where the system
allows dual-stack sockets, IPv4 too). Without `--model`, every finished model of the data folder (or
`--models-dir`) is served, including models finished after start. The first model is preloaded
unless `DISTILLERY_PRELOAD` names others, so `/health` turns healthy once it is in memory.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from core.errors import DistilleryError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serve", description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", default=[], metavar="NAME_OR_FOLDER",
                        help="a model folder, a finished model's id, the Hub id of a model Distillery pushed (user/model), "
                             "or 'teacher' (repeatable; default: all finished)")
    parser.add_argument("--models-dir", type=Path, default=None, help="where finished models are (default: the data folder's)")
    parser.add_argument("--no-teacher", action="store_true", help="do not serve the teacher")
    args = parser.parse_args(argv)

    import uvicorn

    from core.encoders.teacher import DEFAULT_TEACHER
    from core.encoders.threads import serving_process_threads
    from core.serving.service import ModelRegistry, service_from_env

    serving_process_threads()

    try:
        registry = ModelRegistry.from_names(args.model, args.models_dir, None if args.no_teacher else DEFAULT_TEACHER)
        served = registry.served()
        default = [served[0].key] if served else []  # the first named, or the newest finished
        app = service_from_env(registry, default)
        host, port = os.environ.get("HOST", "127.0.0.1"), int(os.environ.get("PORT", "8000"))
    except (DistilleryError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"Serving {', '.join(registry.names()) or 'no models yet'} on http://{f'[{host}]' if ':' in host else host}:{port}",
          flush=True)
    level = os.environ.get("LOG_LEVEL", "info")
    # The registry's evictions and over-budget warnings, in uvicorn's own line format.
    logging.basicConfig(level=level.upper(), format="%(levelname)s:     %(name)s: %(message)s")
    uvicorn.run(app, host=host, port=port, log_level=level)
    return 0


if __name__ == "__main__":
    sys.exit(main())
