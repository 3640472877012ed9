"""The studio's HTTP server: the Gradio app at "/" and the embeddings service beside it, on one port.

Why one port: a Space (and most hosts) exposes a single port, and a model distilled in the studio
should answer at the address already in the browser, under the routes tools expect (Ollama's
`/api/embed`, OpenAI's `/v1/embeddings`; the Ship tab prints the calls).

- `studio_asgi` builds a FastAPI parent app. Each route of the service (`core.serving.service`,
  configured from the environment as `python -m serve` is) is forwarded, path unchanged, to the
  service's own app, so its key check, body limit, CORS and error shapes apply to those paths only
  and never to the studio's uploads. Everything else goes to Gradio, mounted at "/" with the page's
  stylesheet and script (Gradio 6 takes them at launch or at mount). The service's lifespan (its
  optional preload) runs inside Gradio's.
- `start` builds the studio, runs uvicorn in a thread and returns a `Studio` handle. `app.py` and the
  tests' `server` fixture both start it here, so the tests exercise what users run.
- The studio preloads no model unless `DISTILLERY_PRELOAD` names some: building the service then
  looks nothing up, so the studio starts even where the teacher cannot be resolved.
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import gradio as gr
from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.routing import Route

from core import settings
from core.corpus.uploads import MAX_UPLOAD_MB
from core.errors import DistilleryError

FOOTER_LINKS: list[Any] = ["api"]  # the API page for gradio_client users; no "built with" or settings links


def service_paths(service: FastAPI) -> list[str]:
    """The paths the service answers (its own routes, so a route added there is forwarded too)."""
    return [route.path for route in service.routes if isinstance(route, APIRoute)]


def studio_asgi(demo: gr.Blocks, service: FastAPI | None = None, server_name: str = "127.0.0.1",
                server_port: int = 7860) -> FastAPI:
    """The parent app: the service's routes, then the studio at "/" (`demo` must be queued already)."""
    from ui.app import CLAMP_SLIDER_BOXES, CSS

    if service is None:
        from core.serving.service import ModelRegistry, service_from_env
        from jobs.ownership import shared_with_all

        # A public studio's routes serve only the models every visitor may see (shared or unowned).
        service = service_from_env(ModelRegistry(visible=shared_with_all if settings.public_mode() else None))

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with service.router.lifespan_context(service):
            yield

    app = FastAPI(title="Distillery", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    for path in service_paths(service):
        # A Route whose endpoint is an ASGI app passes every method to it, with the path untouched.
        app.router.routes.append(Route(path, endpoint=service))
    return gr.mount_gradio_app(app, demo, path="/", server_name=server_name, server_port=server_port,
                               footer_links=FOOTER_LINKS, css=CSS, js=CLAMP_SLIDER_BOXES,
                               # a public studio hands out copies instead (`ui.ship_tab.make_zip`)
                               allowed_paths=[] if settings.public_mode() else [str(settings.exports_dir())],
                               max_file_size=MAX_UPLOAD_MB * 2**20)  # refused as it arrives, not once stored


@dataclass
class Studio:
    """A running studio: its URL (with a trailing slash, as Gradio prints it), the server and the app."""

    url: str
    demo: gr.Blocks
    server: Any  # uvicorn.Server
    thread: threading.Thread

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.demo.close(verbose=False)

    def wait(self) -> None:
        """Block until Ctrl-C (or a SIGTERM that the caller turns into KeyboardInterrupt), then stop."""
        try:
            while self.thread.is_alive():
                self.thread.join(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            self.close()


def start(host: str = "127.0.0.1", port: int = 7860, quiet: bool = False, timeout: float = 60.0) -> Studio:
    """Build the studio and serve it with the embeddings service on `host:port`, in a thread."""
    import uvicorn

    from core.encoders.threads import serving_process_threads
    from core.memory import return_arrow_memory
    from ui.app import build_app
    from ui.queueing import LIGHT_LIMIT

    serving_process_threads()
    return_arrow_memory()
    demo = build_app().queue(default_concurrency_limit=LIGHT_LIMIT)  # heavy events: ui.queueing
    app = studio_asgi(demo, server_name=host, server_port=port)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, name="studio-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise DistilleryError(f"The studio could not start on {host}:{port}: is another program using the "
                                  f"port? Choose another with --port (or GRADIO_SERVER_PORT).")
        time.sleep(0.02)
    shown = "localhost" if host in ("0.0.0.0", "::") else f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}/"
    if not quiet:
        print(f"* Running on local URL:  {url}\n* Embeddings on the same port: POST {url}api/embed (Ollama), "
              f"POST {url}v1/embeddings (OpenAI)", flush=True)
    return Studio(url, demo, server, thread)
