"""The embeddings service: finished students and their teacher behind Ollama- and OpenAI-shaped routes.

Why these two shapes: most tools that take an embedding endpoint speak one of them (Ollama's
`/api/embed`, OpenAI's `/v1/embeddings`), so a distilled model drops in where the teacher was.

- `ModelRegistry` says which models can be served (every finished model of a models folder, re-listed
  at each miss so a model finished after start is found, or a fixed list of folders) under which names
  (id, record name, and "teacher" or the teacher's id), and holds the loaded encoders in an LRU
  bounded by count and by a memory budget (`DISTILLERY_MEMORY_BUDGET_MB`), each model weighed by its
  encoder's own estimate (`nbytes`), since a 256-d student and the teacher differ tenfold and a
  larger teacher a hundredfold. Students load through `StudentEncoder.open` and the teacher through
  `TeacherEncoder`, never from their files here.
- `create_service` builds the FastAPI app. Requests are parsed by hand rather than by pydantic
  models, so every refusal is a sentence a person understands (and names the field), in the error
  shape the caller's client expects: `{"error": {"message", "type", "param", "code"}}` under `/v1`,
  `{"error": "..."}` (Ollama's) elsewhere.
- The teacher encodes in the thread pool (a forward pass takes milliseconds to seconds and must not
  stall the event loop). The student encodes inline by default: for one short text the encode takes
  tens of microseconds, less than the hop to a worker thread (docs/design.md, "Serving", has the
  measurement); `student_inline=False` sends it to the pool too.
- Both models encode through `encode_queries` unless the request says `"input_type": "document"`
  (or "passage"): an embedding request is most often a query. Only a teacher with prompts (e.g.
  EmbeddingGemma's query and document prompts) answers the two differently.
"""

from __future__ import annotations

import base64
import gc
import hmac
import json
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from core import settings
from core.artifact.folder import ModelFolder, model2vec_weights
from core.encoders.base import Encoder, unit_rows
from core.encoders.student import StudentEncoder
from core.encoders.teacher import DEFAULT_TEACHER, TeacherInfo, resolve_teacher, teacher_encoder
from core.errors import DistilleryError
from core.files import file_sha256, folder_bytes
from core.serving.routing import ROUTED_SUFFIX, RoutedEncoder, open_routed

TEACHER = "teacher"
API_KEY_ENV = "DISTILLERY_API_KEY"  # the key requests must carry; unset: no key
ROUTED_HEADER = "X-Distillery-Routed"
log = logging.getLogger(__name__)
OLLAMA_TAG = ":latest"  # Ollama clients name models `name:tag`; the default tag is accepted


@dataclass(frozen=True)
class Limits:
    """What one request may ask for; beyond it the service answers 413 before encoding anything.

    The defaults follow OpenAI's (2,048 inputs a request); 32,768 characters is far past what either
    model reads (the student cuts at its max_length in tokens, the teacher at 256 tokens), so a longer
    text is almost surely a mistake.
    """

    max_inputs: int = 2048
    max_chars: int = 32_768
    max_body_bytes: int = 8 * 2**20

    @classmethod
    def from_env(cls) -> Limits:
        """`DISTILLERY_MAX_INPUTS`, `DISTILLERY_MAX_INPUT_CHARS`, `DISTILLERY_MAX_BODY_BYTES`."""
        return cls(_env_int("DISTILLERY_MAX_INPUTS", cls.max_inputs),
                   _env_int("DISTILLERY_MAX_INPUT_CHARS", cls.max_chars),
                   _env_int("DISTILLERY_MAX_BODY_BYTES", cls.max_body_bytes))


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        number = int(value)
    except ValueError as exc:
        raise DistilleryError(f"{name}={value!r} is not a whole number.") from exc
    if number < 1:
        raise DistilleryError(f"{name} must be at least 1 (it is {number}).")
    return number


def env_list(name: str) -> list[str]:
    """A comma-separated environment variable as a list (empty entries dropped)."""
    return [part.strip() for part in os.environ.get(name, "").split(",") if part.strip()]


@dataclass(frozen=True)
class Served:
    """One servable model: `key` is its canonical name (a student's id, "<id>:routed", or "teacher")."""

    key: str
    folder: ModelFolder | None  # None for the teacher
    teacher: TeacherInfo | None = None
    routed: bool = False  # the student with the teacher for hard inputs (core.serving.routing)

    @property
    def names(self) -> list[str]:
        if self.folder is None:
            assert self.teacher is not None
            return [TEACHER, self.teacher.name]
        suffix = ROUTED_SUFFIX if self.routed else ""
        name = self.folder.record.name + suffix
        return [self.key] + ([name] if self.folder.record.name and name != self.key else [])


@dataclass
class _Loaded:
    encoder: Encoder
    seconds: float
    nbytes: int


DEFAULT_MEMORY_BUDGET_MB = 2048
# How long a public studio's answer to "may this model be served?" is kept: a model its owner stops
# sharing leaves the embeddings routes within this many seconds.
VISIBILITY_SECONDS = 2.0


def memory_budget_mb() -> int:
    """`DISTILLERY_MEMORY_BUDGET_MB`: the memory the loaded models may hold together (default 2,048 MB,
    room for the default teacher and a dozen 256-d students beside the interpreter and torch)."""
    return _env_int("DISTILLERY_MEMORY_BUDGET_MB", DEFAULT_MEMORY_BUDGET_MB)


def _named_folder(name: str, models_dir: Path | None) -> ModelFolder:
    """A folder path first, then a finished model's id, then (a name with one "/") a Hub id."""
    if Path(name).expanduser().is_dir():
        return ModelFolder.at(Path(name).expanduser())
    try:
        return ModelFolder.open(name, models_dir)
    except DistilleryError:
        if name.count("/") != 1:
            raise
    from core.artifact.export import pull_from_hub

    return pull_from_hub(name)


def encoder_nbytes(encoder: Encoder) -> int:
    """The memory an encoder holds by its own estimate (`nbytes`); 0 for one that gives none."""
    return int(getattr(encoder, "nbytes", 0) or 0)


@dataclass
class ModelRegistry:
    """The models a service offers and the encoders it holds.

    `folders` fixes the students served; without it every finished model of `models_dir` (default the
    data folder's) is served. `teacher` None serves no teacher. Encoders load on first use and stay
    held while there are at most `cache_size` of them and their estimated memory (`encoder_nbytes`)
    stays within `memory_budget_mb` (None: `DISTILLERY_MEMORY_BUDGET_MB`, else 2,048); beyond either,
    the least recently used are evicted. The one just loaded is never evicted: a model larger than
    the whole budget is still served (alone), and `over_budget` says so for logs and `/health`.
    """

    folders: Sequence[ModelFolder] | None = None
    models_dir: Path | None = None
    teacher: str | None = DEFAULT_TEACHER
    cache_size: int = 4
    memory_budget_mb: float | None = None
    # Which students may be served now (None: all); asked again every `VISIBILITY_SECONDS`, since who
    # may see a model changes without the models folder changing (a public studio's sharing,
    # `ui.server`), but not at every request: each answer reads a file per model.
    visible: Callable[[ModelFolder], bool] | None = None
    _loaded: OrderedDict[str, _Loaded] = field(default_factory=OrderedDict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _load_locks: dict[str, threading.Lock] = field(default_factory=dict, repr=False)
    _teacher: TeacherInfo | None = field(default=None, repr=False)
    _listing: tuple[tuple[str, int] | None, list[Served]] | None = field(default=None, repr=False)
    _shown: tuple[list[Served], float, list[Served]] | None = field(default=None, repr=False)  # listing, when, shown

    def __post_init__(self) -> None:
        if self.memory_budget_mb is None:
            self.memory_budget_mb = memory_budget_mb()
        if self.memory_budget_mb <= 0 or self.cache_size < 1:
            raise DistilleryError(f"A model registry needs a memory budget above 0 MB and room for at least one "
                                  f"model (memory_budget_mb={self.memory_budget_mb}, cache_size={self.cache_size}).")

    @classmethod
    def from_names(cls, names: Sequence[str], models_dir: Path | None = None, teacher: str | None = DEFAULT_TEACHER,
                   cache_size: int = 4, memory_budget_mb: float | None = None) -> ModelRegistry:
        """Models named on a command line: a folder path, a finished model's id in `models_dir`, a Hub
        id of a model Distillery pushed ("user/model"), or "teacher" (served anyway unless `teacher` is
        None). No names: every finished model."""
        folders = [_named_folder(name, models_dir) for name in names if name != TEACHER]
        return cls(folders if names else None, models_dir, teacher, cache_size, memory_budget_mb)

    def served(self) -> list[Served]:
        """Every model on offer, students first (newest first when listed from the models folder).

        Listed again only when the models folder changed (its modification time moves when a finished
        model is renamed into it or one is deleted), not at every request: a listing reads every
        model's record, which would cost each request more than the student's encode."""
        stamp = self._listing_stamp()
        with self._lock:
            cached = self._listing[1] if self._listing is not None and stamp is not None and self._listing[0] == stamp else None
        if cached is None:
            cached = self._list()
            with self._lock:
                self._listing = (stamp, cached)
        if self.visible is None:
            return cached
        now = time.monotonic()
        with self._lock:
            shown = self._shown
        if shown is not None and shown[0] is cached and now - shown[1] < VISIBILITY_SECONDS:
            return shown[2]
        visible = self.visible
        result = [model for model in cached if model.folder is None or visible(model.folder)]
        with self._lock:
            self._shown = (cached, now, result)
        return result

    def _listing_stamp(self) -> tuple[str, int] | None:
        if self.folders is not None:
            return ("", 0)  # a fixed list
        root = self.models_dir or settings.models_dir()
        try:
            return (str(root), root.stat().st_mtime_ns)
        except OSError:
            return None  # no models folder yet: listed each time until it exists

    def _list(self) -> list[Served]:
        folders = list(self.folders) if self.folders is not None else ModelFolder.finished(self.models_dir)
        models = [Served(folder.id, folder) for folder in folders]
        if self.teacher is not None:
            teacher = self._teacher_info()
            models += [Served(folder.id + ROUTED_SUFFIX, folder, teacher, routed=True)
                       for folder in folders if folder.has_collection]  # the routed map is fitted on it
            models.append(Served(TEACHER, None, teacher))
        return models

    def _teacher_info(self) -> TeacherInfo:
        """Resolved once: resolving checks the weights' checksum."""
        with self._lock:
            if self._teacher is None:
                self._teacher = resolve_teacher(self.teacher)
            return self._teacher

    def names(self) -> list[str]:
        return [name for model in self.served() for name in model.names]

    def find(self, name: str) -> Served:
        """The model a request names (id first, then record name, then the teacher's names)."""
        served = self.served()
        for candidate in (name, name.removesuffix(OLLAMA_TAG)):
            for model in served:  # ids before names, so an id never loses to another model's name
                if model.key == candidate:
                    return model
            for model in served:
                if candidate in model.names:
                    return model
        available = ", ".join(repr(n) for n in dict.fromkeys(m for s in served for m in s.names)) or "none"
        raise DistilleryError(f"There is no model '{name}'. Available models: {available}.")

    def held(self, name: str) -> tuple[Served, Encoder] | None:
        """The model and its encoder when it is loaded already, else None; never reads a file while the
        listing is current, so the service calls it on the event loop and skips two thread hops."""
        model = self.find(name)
        encoder = self._take_held(model.key)
        return None if encoder is None else (model, encoder)

    def _take_held(self, key: str) -> Encoder | None:
        """The encoder held under `key`, now the most recently used; None when it is not held."""
        with self._lock:
            held = self._loaded.get(key)
            if held is None:
                return None
            self._loaded.move_to_end(key)
            return held.encoder

    def get(self, name: str) -> tuple[Served, Encoder, float]:
        """The model's encoder, loading it when it is not held; the seconds spent loading (0 when held)."""
        model = self.find(name)
        encoder = self._take_held(model.key)
        if encoder is not None:
            return model, encoder, 0.0
        with self._lock:
            load_lock = self._load_locks.setdefault(model.key, threading.Lock())
        with load_lock:  # one load per model at a time; other models load in parallel
            encoder = self._take_held(model.key)  # loaded by another caller while this one waited
            if encoder is not None:
                return model, encoder, 0.0
            start = time.perf_counter()
            encoder = self._load(model)
            seconds = time.perf_counter() - start
            nbytes = encoder_nbytes(encoder)
            with self._lock:
                self._loaded[model.key] = _Loaded(encoder, seconds, nbytes)
                evicted = self._evict(keep=model.key)
                over = self.over_budget()
            if evicted:
                gc.unfreeze()  # what an evicted model leaves in cycles must be collectable again
            for name, gone in evicted:
                log.info("evicted model %r (%.1f MB) to load %r", name, gone.nbytes / 2**20, model.key)
                _release(gone.encoder)
            _settle_after_load()
            if over:
                log.warning("%s", over)
        return model, encoder, seconds

    def _load(self, model: Served) -> Encoder:
        """One model's encoder, read from its files (students through `StudentEncoder.open`; a routed
        model shares the teacher this registry holds)."""
        if model.routed:
            assert model.folder is not None
            return open_routed(model.folder.path, self.get(TEACHER)[1])
        if model.folder is not None:
            return StudentEncoder.open(model.folder.path)
        assert model.teacher is not None
        return teacher_encoder(model.teacher)

    def _evict(self, keep: str) -> list[tuple[str, _Loaded]]:
        """Least recently used first, until the count and the budget hold or only `keep` is left
        (called under the lock; the caller releases what comes back outside it)."""
        assert self.memory_budget_mb is not None
        budget = self.memory_budget_mb * 2**20
        evicted = []
        while len(self._loaded) > 1 and (len(self._loaded) > self.cache_size
                                         or sum(m.nbytes for m in self._loaded.values()) > budget):
            name = next(n for n in self._loaded if n != keep)
            evicted.append((name, self._loaded.pop(name)))
        return evicted

    def loaded(self) -> list[str]:
        """The canonical names of the encoders held now, least recently used first."""
        with self._lock:
            return list(self._loaded)

    def memory(self) -> list[tuple[str, float]]:
        """The encoders held now with their estimated memory in MB, least recently used first."""
        with self._lock:
            return [(name, held.nbytes / 2**20) for name, held in self._loaded.items()]

    def over_budget(self) -> str | None:
        """A sentence when the models held exceed the memory budget (only when one model alone does,
        since eviction keeps the rest within it), else None."""
        assert self.memory_budget_mb is not None
        total = sum(held.nbytes for held in list(self._loaded.values())) / 2**20
        if total <= self.memory_budget_mb:
            return None
        return (f"the loaded models need about {total:,.0f} MB, over the memory budget of "
                f"{self.memory_budget_mb:,.0f} MB (DISTILLERY_MEMORY_BUDGET_MB): served anyway, alone")


def _settle_after_load() -> None:
    """Collect once, then move every object alive now out of the collector's reach (`gc.freeze`).

    Loading the teacher imports torch and transformers: hundreds of thousands of objects that live as
    long as the process. Left in the oldest generation, each full collection walked them all, about
    0.3 s with the event loop stopped, which was the student's p99 at 32 clients when the teacher had
    been loaded in the same service (docs/benchmarks.md, "Embeddings service under load")."""
    gc.collect()
    gc.freeze()


def _release(encoder: Encoder) -> None:
    """Let an evicted encoder's memory go: it leaves its per-process load cache, if it has one."""
    release = getattr(encoder, "release", None)
    if callable(release):
        release()


class ApiError(Exception):
    """A refusal with its HTTP status and the field it is about."""

    def __init__(self, status: int, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param = status, message, param


_TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
          413: "request_too_large", 422: "invalid_request_error", 503: "service_unavailable"}


def _texts(body: dict[str, Any], limits: Limits, truncate: bool, key: str = "input") -> list[str]:
    """The request's texts, or a 422/413 that says which one is wrong and how."""
    value = body.get(key)
    if value is None:
        raise ApiError(422, f"'{key}' is required: a string or a list of strings.", key)
    texts = [value] if isinstance(value, str) else value
    if not isinstance(texts, list):
        raise ApiError(422, f"'{key}' must be a string or a list of strings, not {type(value).__name__}.", key)
    if not texts:
        raise ApiError(422, f"'{key}' is an empty list: send at least one text.", key)
    if len(texts) > limits.max_inputs:
        raise ApiError(413, f"'{key}' has {len(texts)} texts; at most {limits.max_inputs} are accepted per "
                            f"request. Split them over several requests.", key)
    out = []
    for i, text in enumerate(texts):
        where = f"'{key}'" if isinstance(value, str) else f"{key}[{i}]"
        if not isinstance(text, str):
            hint = " (token arrays are not supported: send the text)" if isinstance(text, int | list) else ""
            raise ApiError(422, f"{where} is {type(text).__name__}, not a string{hint}.", key)
        if not text.strip():
            raise ApiError(422, f"{where} is empty: every input must contain some text.", key)
        if len(text) > limits.max_chars:
            if not truncate:
                raise ApiError(413, f"{where} has {len(text):,} characters; at most {limits.max_chars:,} are "
                                    f"accepted per text.", key)
            text = text[:limits.max_chars]
        out.append(text)
    return out


def _dimensions(body: dict[str, Any]) -> int | None:
    value = body.get("dimensions")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ApiError(422, f"'dimensions' must be a whole number, not {value!r}.", "dimensions")
    if value < 1:
        raise ApiError(422, f"'dimensions' must be at least 1 (it is {value}).", "dimensions")
    return value


QUERY_TYPES = ("query", "search_query")
DOCUMENT_TYPES = ("document", "passage", "search_document")


def _is_query(body: dict[str, Any]) -> bool:
    """`input_type` (optional; Cohere's and NVIDIA's field, also sent by LangChain's wrappers):
    "query" (the default: an embedding request is most often a search) or "document"/"passage", which
    decides the teacher's prompt where it has one (a student has none; both give the same vectors)."""
    value = body.get("input_type")
    if value is None:
        return True
    if value in QUERY_TYPES or value in DOCUMENT_TYPES:
        return value in QUERY_TYPES
    raise ApiError(422, f"'input_type' must be one of {', '.join(QUERY_TYPES + DOCUMENT_TYPES)} (or left out for "
                        f"'query'), not {value!r}.", "input_type")


def shorten(vectors: np.ndarray, dimensions: int | None, model: str) -> np.ndarray:
    """Matryoshka-style: the first `dimensions` components, scaled back to unit length."""
    if dimensions is None:
        return vectors
    if dimensions > vectors.shape[1]:
        raise ApiError(422, f"'dimensions' is {dimensions}, but '{model}' has only {vectors.shape[1]}.", "dimensions")
    return unit_rows(vectors[:, :dimensions])


def count_tokens(encoder: Encoder, texts: Sequence[str]) -> int:
    """Tokens the model read (for `usage` and `prompt_eval_count`): each encoder counts with its own
    tokenizer (`count_tokens`); words for one that has none."""
    counter = getattr(encoder, "count_tokens", None)
    if callable(counter):
        return int(counter(texts))
    return sum(len(t.split()) for t in texts)


def check_key(expected: str | None, headers: Any) -> bool:
    """True when no key is set, or the request carries it (`Authorization: Bearer` or `X-API-Key`)."""
    if not expected:
        return True
    given = headers.get("x-api-key") or ""
    auth = headers.get("authorization") or ""
    if auth.lower().startswith("bearer "):
        given = given or auth[7:].strip()
    return hmac.compare_digest(given.encode(), expected.encode())


def create_service(models: ModelRegistry, api_key: str | None = None, limits: Limits | None = None,
                   preload: Sequence[str] = (), cors_origins: Sequence[str] = (),
                   student_inline: bool = True) -> FastAPI:
    """The service's FastAPI app. `preload` names models to load in the background at start;
    `/health` answers 503 until at least one model is loaded (held in memory, ready to encode)."""
    limits = limits or Limits()
    for name in preload:
        models.find(name)  # an unknown name fails at start, not in a log line nobody reads
    preload_errors: dict[str, str] = {}

    def _preload() -> None:
        for name in preload:
            try:
                models.get(name)
            except Exception as exc:  # noqa: BLE001 - reported by /health
                preload_errors[name] = str(exc)

    @asynccontextmanager
    async def lifespan(_: Any) -> AsyncIterator[None]:
        if preload:
            threading.Thread(target=_preload, name="preload-models", daemon=True).start()
        yield

    app = FastAPI(title="Distillery embeddings", lifespan=lifespan, docs_url=None, redoc_url=None)
    if cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(cors_origins), allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "X-API-Key", "Content-Type"], expose_headers=[ROUTED_HEADER])

    def error(request: Request, status: int, message: str, param: str | None = None) -> JSONResponse:
        if request.url.path.startswith("/v1/"):
            body: dict[str, Any] = {"error": {"message": message, "type": _TYPES.get(status, "api_error"),
                                              "param": param, "code": status}}
        else:
            body = {"error": message}
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return JSONResponse(body, status_code=status, headers=headers)

    @app.middleware("http")
    async def guard(request: Request, call_next: Callable) -> Any:
        """The key and the declared body size are checked before the body is read."""
        if request.url.path != "/health" and request.method != "OPTIONS" \
                and not check_key(api_key, request.headers):
            return error(request, 401, "A valid API key is required: send 'Authorization: Bearer <key>' "
                                       "or 'X-API-Key: <key>'.")
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > limits.max_body_bytes:
            return error(request, 413, f"The request body has {int(length):,} bytes; at most "
                                       f"{limits.max_body_bytes:,} are accepted.")
        return await call_next(request)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error(request, exc.status, exc.message, exc.param)

    async def read_json(request: Request) -> dict[str, Any]:
        size, chunks = 0, []
        async for chunk in request.stream():  # a body sent without a length is counted as it comes
            size += len(chunk)
            if size > limits.max_body_bytes:
                raise ApiError(413, f"The request body is over {limits.max_body_bytes:,} bytes.")
            chunks.append(chunk)
        try:
            body = json.loads(b"".join(chunks) or b"null")
        except ValueError as exc:
            raise ApiError(400, f"The request body is not valid JSON: {exc}.") from exc
        if not isinstance(body, dict):
            raise ApiError(400, "The request body must be a JSON object such as "
                                '{"model": "...", "input": ["a text"]}.')
        return body

    async def embed(body: dict[str, Any], truncate: bool, key: str = "input") -> dict[str, Any]:
        name = body.get("model")
        if not isinstance(name, str) or not name:
            raise ApiError(422, "'model' is required: the name of a model (GET /api/tags or /v1/models lists them).",
                           "model")
        texts = _texts(body, limits, truncate, key)
        dimensions = _dimensions(body)
        queries = _is_query(body)
        try:  # a held model is found on the loop; a load (or a new listing) goes to the thread pool
            hit = models.held(name)
            served = hit[0] if hit is not None else await run_in_threadpool(models.find, name)
        except DistilleryError as exc:
            raise ApiError(400, str(exc), "model") from exc
        if hit is not None:
            model, encoder, load_seconds = hit[0], hit[1], 0.0
        else:
            try:
                model, encoder, load_seconds = await run_in_threadpool(models.get, served.key)
            except DistilleryError as exc:  # the name is right but its files are not usable
                raise ApiError(500, f"The model '{name}' cannot be loaded: {exc}", "model") from exc
        routed = None
        if isinstance(encoder, RoutedEncoder):
            answer = await run_in_threadpool(encoder.route, texts, queries)
            vectors, routed = answer.vectors, answer.header
        else:
            encode = encoder.encode_queries if queries else encoder.encode
            vectors = encode(texts) if model.folder is not None and student_inline \
                else await run_in_threadpool(encode, texts)
        vectors = shorten(np.asarray(vectors, dtype=np.float32), dimensions, name)
        return {"model": name, "vectors": vectors, "load_seconds": load_seconds,
                "tokens": count_tokens(encoder, texts), "routed": routed}

    def routed_header(response: Response, result: dict[str, Any]) -> None:
        """`X-Distillery-Routed: k/n`: k of the n inputs went to the teacher (routed models only)."""
        if result["routed"] is not None:
            response.headers[ROUTED_HEADER] = result["routed"]

    async def ollama_embed(request: Request, response: Response) -> dict[str, Any]:
        start = time.perf_counter_ns()
        body = await read_json(request)
        truncate = body.get("truncate", True)
        if not isinstance(truncate, bool):
            raise ApiError(422, f"'truncate' must be true or false, not {truncate!r}.", "truncate")
        key = "input" if body.get("input") is not None or body.get("prompt") is None else "prompt"
        result = await embed(body, truncate, key)
        routed_header(response, result)
        vectors = result["vectors"].tolist()
        answer: dict[str, Any] = {"model": result["model"], "embeddings": vectors}
        if len(vectors) == 1:
            answer["embedding"] = vectors[0]
        answer.update(total_duration=time.perf_counter_ns() - start,
                      load_duration=int(result["load_seconds"] * 1e9), prompt_eval_count=result["tokens"])
        return answer

    app.post("/api/embed")(ollama_embed)
    app.post("/api/embeddings")(ollama_embed)

    @app.post("/v1/embeddings")
    async def openai_embed(request: Request, response: Response) -> dict[str, Any]:
        body = await read_json(request)
        encoding = body.get("encoding_format") or "float"
        if encoding not in ("float", "base64"):
            raise ApiError(422, f"'encoding_format' must be \"float\" or \"base64\", not {encoding!r}.",
                           "encoding_format")
        if body.get("user") is not None and not isinstance(body["user"], str):
            raise ApiError(422, "'user' must be a string.", "user")
        result = await embed(body, truncate=False)
        routed_header(response, result)
        vectors = result["vectors"]
        data = [{"object": "embedding", "index": i,
                 "embedding": base64.b64encode(row.astype("<f4").tobytes()).decode("ascii")
                 if encoding == "base64" else row.tolist()} for i, row in enumerate(vectors)]
        return {"object": "list", "data": data, "model": result["model"],
                "usage": {"prompt_tokens": result["tokens"], "total_tokens": result["tokens"]}}

    @app.get("/api/tags")
    async def tags() -> dict[str, Any]:
        return {"models": await run_in_threadpool(lambda: [_tag(m) for m in models.served()])}

    @app.get("/v1/models")
    async def openai_models() -> dict[str, Any]:
        served = await run_in_threadpool(models.served)
        return {"object": "list", "data": [{"id": m.key if m.folder is not None else TEACHER, "object": "model",
                                            "created": int(_created(m).timestamp()), "owned_by": "distillery"}
                                           for m in served]}

    @app.get("/health")
    async def health(request: Request) -> Any:
        loaded = models.loaded()
        if loaded:
            memory: dict[str, Any] = {"budget_mb": models.memory_budget_mb,
                      "models": [{"name": name, "mb": round(mb, 1)} for name, mb in models.memory()]}
            over = models.over_budget()
            if over:
                memory["warning"] = over
            return {"status": "healthy", "models_loaded": loaded, "memory": memory}
        if preload_errors:
            message = "; ".join(f"'{n}' failed to load: {e}" for n, e in preload_errors.items())
        elif preload:
            message = f"loading {', '.join(preload)}"
        else:
            message = "no model is loaded yet: name one in DISTILLERY_PRELOAD or send an embedding request"
        return JSONResponse({"status": "unavailable", "models_loaded": [], "message": message}, status_code=503)

    @app.exception_handler(404)
    async def not_found(request: Request, _: Exception) -> JSONResponse:
        return error(request, 404, f"There is no route {request.method} {request.url.path}. Routes: POST /api/embed, "
                                   "POST /api/embeddings, GET /api/tags, POST /v1/embeddings, GET /v1/models, "
                                   "GET /health.")

    @app.exception_handler(405)
    async def wrong_method(request: Request, _: Exception) -> JSONResponse:
        return error(request, 405, f"{request.url.path} does not answer {request.method}.")

    return app


def service_from_env(models: ModelRegistry, default_preload: Sequence[str] = ()) -> FastAPI:
    """`create_service` configured from the environment: `DISTILLERY_API_KEY` (off when unset),
    `DISTILLERY_PRELOAD` (comma-separated names, else `default_preload`), `DISTILLERY_CORS_ORIGINS`
    (comma-separated; CORS off when unset), the `Limits` variables and `DISTILLERY_STUDENT_INLINE`
    ("0" sends student encodes to the thread pool)."""
    preload = env_list("DISTILLERY_PRELOAD") or list(default_preload)
    inline = os.environ.get("DISTILLERY_STUDENT_INLINE", "1").strip().lower() not in ("0", "false", "no", "off")
    return create_service(models, os.environ.get(API_KEY_ENV) or None, Limits.from_env(), preload,
                          env_list("DISTILLERY_CORS_ORIGINS"), inline)


def _created(model: Served) -> datetime:
    if model.folder is not None:
        try:
            return datetime.fromisoformat(model.folder.record.created)
        except ValueError:
            pass
    path = Path(model.teacher.source) if model.teacher is not None else None
    stamp = path.stat().st_mtime if path is not None and path.exists() else 0.0
    return datetime.fromtimestamp(stamp, UTC)


def _tag(model: Served) -> dict[str, Any]:
    """One `/api/tags` entry, as Ollama lists a model (size in bytes, sha256 digest of the weights)."""
    if model.folder is not None:
        record = model.folder.record
        size, digest = model.folder.size_bytes(), file_sha256(model2vec_weights(model.folder.path))
        details = {"format": "model2vec", "family": record.method, "families": [record.method],
                   "parameter_size": f"{record.vocabulary_size * record.dimension / 1e6:.1f}M",
                   "quantization_level": str(record.recipe.get("distill", {}).get("quantize_to", "")),
                   "dimension": record.dimension, "teacher": record.teacher.name, "title": record.title}
        if model.routed and model.teacher is not None:  # answers in the teacher's space (core.serving.routing)
            details.update(format="model2vec+teacher", families=[record.method, "teacher"],
                           dimension=model.teacher.dimension)
        name = model.key
    else:
        assert model.teacher is not None
        info = model.teacher
        source = Path(info.source)
        size = folder_bytes(source) if info.is_local and source.is_dir() else 0
        digest = info.fingerprint.split(":", 1)[-1]
        details = {"format": "sentence-transformers", "family": "teacher", "families": ["teacher"],
                   "parameter_size": "", "quantization_level": "", "dimension": info.dimension,
                   "teacher": info.name, "title": info.name}
        name = TEACHER
    return {"name": name, "model": name, "size": size, "digest": digest,
            "modified_at": _created(model).isoformat(), "details": details}
