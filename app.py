"""Entry point (also the Hugging Face Space's `app_file`): serve the studio and, on the same port, the
embeddings service (`/api/embed`, `/v1/embeddings`, ...; see `ui.server`).

`python app.py` starts its own huey consumer as a subprocess when none is running and stops it on
exit; `make run` starts the consumer itself and passes `--no-worker`.
"""

from __future__ import annotations

import argparse
import atexit
import os
import signal

from core import settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
    parser.add_argument("--no-worker", action="store_true", help="do not start a huey consumer")
    args = parser.parse_args()

    from core.keyring import ensure_sealing_key
    from jobs.status import worker_alive
    from jobs.worker import start_consumer, stop_consumer

    # SIGTERM (how containers and `kill` stop a process) exits like Ctrl-C, so atexit stops the consumer.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    ensure_sealing_key()  # before the consumer starts: it inherits the key that opens keys typed in the page
    if not args.no_worker and not worker_alive():
        consumer = start_consumer(settings.data_dir() / "consumer.log")
        atexit.register(stop_consumer, consumer)
        print(f"Started a huey consumer (pid {consumer.pid}); log: {settings.data_dir() / 'consumer.log'}")

    from core.errors import DistilleryError
    from ui.server import start

    try:
        studio = start(args.host, args.port)
    except DistilleryError as exc:
        raise SystemExit(f"error: {exc}") from None
    studio.wait()  # until Ctrl-C or SIGTERM


if __name__ == "__main__":
    main()
