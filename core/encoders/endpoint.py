"""A teacher reached over HTTP: an embeddings API (OpenAI-compatible, Ollama, TEI) instead of weights.

The corpus method needs from its teacher only the embedding of each corpus text, so a user whose
production embeddings come from an API can distil it without the weights. This module owns:

- `EndpointSpec`: what a recipe says about the endpoint (kind, URL, model, prefixes, the *name* of
  the environment variable holding the key, batching, concurrency, rate limit). The key itself is
  read from that variable, or is the one typed in the page and held for the job (`core.keyring`),
  when a client is made; it is never stored: not in the spec, the recipe, the record, the card or
  an error message.
- `EndpointClient`: batched requests, several in flight, retries with exponential backoff on 429,
  5xx and dropped connections (honouring `Retry-After`), a client-side rate limit shared by every
  request, and replies checked before use (count, one dimension throughout, finite numbers), so a
  bad reply stops the job with a sentence instead of writing bad targets.
- `EndpointEncoder`: the endpoint as an `Encoder` (`core.encoders.base`) with its prefixes, for the
  Compare and Evaluate tabs and the search collection.
- `endpoint_teacher`: the `TeacherInfo` of an endpoint, after one probe request that checks the URL,
  the key and the model and learns the dimension before a job starts.
- `estimate_cost`: texts, tokens (by the student's tokenizer) and requests, shown before a job.

Defaults follow each API's documented limits: OpenAI takes up to 2,048 inputs a request (300k tokens
in all); TEI refuses more than `--max-client-batch-size` (32 by default); Ollama serves one request
at a time unless `OLLAMA_NUM_PARALLEL` says otherwise.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, fields, replace
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import numpy as np

from core.encoders.base import embed_non_empty
from core.errors import DistilleryError
from core.keyring import held_key

if TYPE_CHECKING:
    import httpx

    from core.encoders.teacher import TeacherInfo


@dataclass(frozen=True)
class Kind:
    """One API shape: its route, its largest batch, and the defaults that respect its limits."""

    name: str
    title: str
    route: str
    max_batch: int
    batch_size: int
    concurrency: int


KINDS: dict[str, Kind] = {
    "openai": Kind("openai", "OpenAI-compatible", "/v1/embeddings", 2048, 256, 4),
    "ollama": Kind("ollama", "Ollama", "/api/embed", 2048, 64, 1),
    "tei": Kind("tei", "Text Embeddings Inference", "/embed", 2048, 32, 4),
}
RETRIED = frozenset({408, 409, 425, 429}) | frozenset(range(500, 600))
MAX_BACKOFF_SECONDS = 30.0
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class EndpointSpec:
    """An endpoint teacher as a recipe names it (plain data; see the module docstring for the key).

    `url` is the server's base URL (`http://localhost:11434`, `https://api.openai.com/v1`) or the
    full route; `batch_size` and `concurrency` None take the kind's defaults; `requests_per_minute`
    None sends as fast as the concurrency allows.
    """

    kind: str
    url: str
    model: str = ""
    query_prefix: str = ""
    document_prefix: str = ""
    api_key_env: str | None = None
    batch_size: int | None = None
    concurrency: int | None = None
    requests_per_minute: float | None = None
    timeout: float = 120.0
    max_retries: int = 6

    def validate(self) -> None:
        if self.kind not in KINDS:
            raise DistilleryError(f"Unknown endpoint kind '{self.kind}'; choose one of {', '.join(KINDS)}.")
        parts = urlsplit(self.url or "")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise DistilleryError(f"The endpoint URL must start with http:// or https:// and name a host, "
                                  f"e.g. http://localhost:11434 (got {self.url!r}).")
        if parts.username or parts.password:
            raise DistilleryError("The endpoint URL must not carry credentials: put the key in an environment "
                                  "variable and name it in api_key_env.")
        if self.kind != "tei" and not self.model.strip():
            raise DistilleryError(f"A {KINDS[self.kind].title} endpoint needs the model's name (e.g. "
                                  f"{'text-embedding-3-small' if self.kind == 'openai' else 'all-minilm'}).")
        if self.api_key_env is not None and not _ENV_NAME.fullmatch(self.api_key_env):
            raise DistilleryError("api_key_env is the *name* of the environment variable that holds the key "
                                  "(e.g. OPENAI_API_KEY), never the key itself.")
        kind = KINDS[self.kind]
        if not 1 <= self.batch <= kind.max_batch:
            raise DistilleryError(f"The endpoint batch size must be between 1 and {kind.max_batch} "
                                  f"({kind.title} accepts at most {kind.max_batch} inputs a request).")
        if not 1 <= self.workers <= 64:
            raise DistilleryError("The endpoint concurrency must be between 1 and 64 requests in flight.")
        if self.requests_per_minute is not None and not self.requests_per_minute > 0:
            raise DistilleryError("The rate limit must be above 0 requests per minute (or empty for none).")
        if not self.timeout > 0 or not 0 <= self.max_retries <= 20:
            raise DistilleryError("The endpoint timeout must be above 0 s and the retries between 0 and 20.")

    @property
    def batch(self) -> int:
        return self.batch_size or KINDS[self.kind].batch_size

    @property
    def workers(self) -> int:
        return self.concurrency or KINDS[self.kind].concurrency

    @property
    def route_url(self) -> str:
        """The URL requests go to: the kind's route appended unless the URL already ends with it
        (an OpenAI base URL ending in `/v1`, as the openai client takes it, gets `/embeddings`)."""
        base = self.url.rstrip("/")
        route = KINDS[self.kind].route
        if base.endswith(route):
            return base
        if self.kind == "openai" and base.endswith("/v1"):
            return base + "/embeddings"
        return base + route

    @property
    def title(self) -> str:
        """The kind and model, what a card or a progress line may show (never the URL or the key)."""
        return f"{KINDS[self.kind].title} endpoint" + (f", model {self.model}" if self.model else "")

    def api_key(self) -> str | None:
        """The key, read from the environment now; with no variable named, the key typed in the page
        and held for this job or event (`core.keyring`); None when there is neither."""
        if not self.api_key_env:
            return held_key(self.fingerprint())
        key = os.environ.get(self.api_key_env, "").strip()
        if not key:
            raise DistilleryError(f"The environment variable {self.api_key_env} (api_key_env) is not set: set it "
                                  f"to the endpoint's API key.")
        return key

    def fingerprint(self) -> str:
        """What decides the vectors: kind, route, model and prefixes (not batching, nor the key)."""
        parts = [self.kind, self.route_url, self.model, self.query_prefix, self.document_prefix]
        return "endpoint:" + hashlib.sha256(json.dumps(parts).encode()).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EndpointSpec:
        data = dict(data)
        if "api_key" in data:
            raise DistilleryError("A recipe never holds an API key: put the key in an environment variable and "
                                  "name that variable in api_key_env.")
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        if unknown:
            raise DistilleryError(f"An endpoint teacher has no field(s) {', '.join(unknown)}.")
        missing = [name for name in ("kind", "url") if not data.get(name)]
        if missing:
            raise DistilleryError(f"An endpoint teacher needs {' and '.join(missing)}.")
        spec = cls(**data)
        spec.validate()
        return spec


class RateLimiter:
    """Request starts spaced at least 60/`per_minute` seconds apart across every thread; a 429's
    `Retry-After` pushes the next start back for all of them, not only the request that got it."""

    def __init__(self, per_minute: float | None) -> None:
        self.interval = 60.0 / per_minute if per_minute else 0.0
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self.interval
        if start > now:
            time.sleep(start - now)

    def defer(self, seconds: float) -> None:
        with self._lock:
            self._next = max(self._next, time.monotonic() + seconds)


@dataclass
class ClientStats:
    """What a client sent, for the record and benchmarks (requests include retries)."""

    requests: int = 0
    retries: int = 0
    texts: int = 0


class EndpointClient:
    """Embeds texts through one endpoint; thread-safe (one connection pool, one rate limiter)."""

    def __init__(self, spec: EndpointSpec, dimension: int | None = None) -> None:
        """`dimension`: the one replies must have (the probe's); None: the first reply's."""
        import httpx

        spec.validate()
        self.spec = spec
        self.dimension = dimension
        self.stats = ClientStats()
        self._limiter = RateLimiter(spec.requests_per_minute)
        self._stats_lock = threading.Lock()
        limits = httpx.Limits(max_connections=spec.workers, max_keepalive_connections=spec.workers)
        self._http = httpx.Client(timeout=httpx.Timeout(spec.timeout, connect=min(spec.timeout, 10.0)), limits=limits)
        # Read once, here: the requests run on pool threads, outside the context that holds a typed key.
        self._key = spec.api_key()

    def close(self) -> None:
        self._http.close()

    def embed(self, texts: Sequence[str], progress: Any = None) -> np.ndarray:
        """float32 vectors of `texts` as the endpoint returns them, in order. Batches of `batch_size`
        go out `concurrency` at a time; the first failure cancels the rest and raises. `progress`, if
        given, is called with the number of texts done after each batch."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dimension or 0), dtype=np.float32)
        batches = [texts[i:i + self.spec.batch] for i in range(0, len(texts), self.spec.batch)]
        if len(batches) == 1 or self.spec.workers == 1:
            parts = []
            for batch in batches:
                parts.append(self._post(batch))
                if progress is not None:
                    progress(sum(len(p) for p in parts))
            return np.concatenate(parts)
        with ThreadPoolExecutor(min(self.spec.workers, len(batches)), thread_name_prefix="endpoint") as pool:
            futures = [pool.submit(self._post, batch) for batch in batches]
            parts, done = [], 0
            try:
                for future in futures:
                    parts.append(future.result())
                    done += len(parts[-1])
                    if progress is not None:
                        progress(done)
            except BaseException:
                for future in futures:
                    future.cancel()
                raise
        return np.concatenate(parts)

    def probe(self) -> int:
        """One request of one text: checks URL, key and model, and returns the dimension. Fails at
        once when the server cannot be reached (a job should not start against a wrong URL)."""
        vectors = self._post(["Distillery checks the endpoint."], retries=min(self.spec.max_retries, 2),
                             connect_retries=0)
        return int(vectors.shape[1])

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._key}"} if self._key else {}

    def _body(self, texts: list[str]) -> dict[str, Any]:
        kind = self.spec.kind
        if kind == "openai":
            return {"model": self.spec.model, "input": texts, "encoding_format": "float"}
        if kind == "ollama":
            return {"model": self.spec.model, "input": texts, "truncate": True}
        return {"inputs": texts, "truncate": True, "normalize": True}

    def _post(self, texts: list[str], retries: int | None = None, connect_retries: int | None = None) -> np.ndarray:
        """One batch, retried with exponential backoff (and jitter) on 429, 5xx and lost connections."""
        import httpx

        retries = self.spec.max_retries if retries is None else retries
        connect_retries = retries if connect_retries is None else connect_retries
        url, body, headers = self.spec.route_url, self._body(texts), self._headers()
        attempt = 0
        while True:
            self._limiter.wait()
            with self._stats_lock:
                self.stats.requests += 1
                self.stats.retries += attempt > 0
            try:
                response = self._http.post(url, json=body, headers=headers)
            except httpx.ConnectError as exc:
                if attempt >= connect_retries:
                    raise DistilleryError(f"Could not reach the {self.spec.title} at {url}: {_reason(exc)}. Check "
                                          f"the URL and that the server is running.") from None
                delay = _backoff(attempt)
            except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
                if attempt >= retries:
                    raise DistilleryError(f"The {self.spec.title} at {url} did not answer after {attempt + 1} "
                                          f"tries: {_reason(exc)}.") from None
                delay = _backoff(attempt)
            else:
                if response.status_code < 300:
                    vectors = self._parse(response, len(texts))
                    with self._stats_lock:
                        self.stats.texts += len(texts)
                    return vectors
                if response.status_code not in RETRIED or attempt >= retries:
                    raise self._refusal(response, attempt + 1)
                delay = _retry_after(response) or _backoff(attempt)
                if response.status_code == 429:
                    self._limiter.defer(delay)
            attempt += 1
            time.sleep(delay)

    def _refusal(self, response: httpx.Response, tries: int) -> DistilleryError:
        status, url = response.status_code, self.spec.route_url
        detail = self._scrub(_server_message(response))
        if status in (401, 403):
            how = (f"check the key in {self.spec.api_key_env}" if self.spec.api_key_env else
                   "check the key typed in the page" if self._key else
                   "it needs one: type it in the Recipe tab's API key field, or name an environment variable holding it")
            return DistilleryError(f"The {self.spec.title} refused the API key (HTTP {status}): {how}.")
        if status == 404:
            return DistilleryError(f"The {self.spec.title} answered 404 at {url}: wrong URL or unknown model"
                                   f"{': ' + detail if detail else ''}.")
        after = f" after {tries} tries" if tries > 1 else ""
        return DistilleryError(f"The {self.spec.title} answered HTTP {status}{after}{': ' + detail if detail else ''}.")

    def _scrub(self, text: str) -> str:
        """A server's message with the key cut out (some servers echo what they were sent)."""
        return text.replace(self._key, "***") if self._key else text

    def _parse(self, response: httpx.Response, count: int) -> np.ndarray:
        """The reply's vectors, or a `DistilleryError` saying what is wrong with them."""
        title = self.spec.title
        try:
            payload = response.json()
        except ValueError:
            raise DistilleryError(f"The {title} answered with something that is not JSON.") from None
        try:
            rows = _rows(self.spec.kind, payload)
        except (KeyError, TypeError, IndexError, ValueError):
            raise DistilleryError(f"The {title}'s reply is not shaped like a {KINDS[self.spec.kind].title} "
                                  f"embeddings reply (is the kind right?).") from None
        if len(rows) != count:
            raise DistilleryError(f"The {title} returned {len(rows)} vectors for {count} texts.")
        sizes = {len(row) if isinstance(row, list) else -1 for row in rows}
        if len(sizes) > 1 or -1 in sizes:
            raise DistilleryError(f"The {title} returned vectors of varying dimension "
                                  f"({', '.join(str(s) for s in sorted(sizes))}) in one reply.")
        try:
            vectors = np.asarray(rows, dtype=np.float32)
        except (TypeError, ValueError):
            raise DistilleryError(f"The {title} returned vectors with values that are not numbers.") from None
        if vectors.ndim != 2 or vectors.shape[1] == 0:
            raise DistilleryError(f"The {title} returned empty vectors.")
        if not np.isfinite(vectors).all():
            raise DistilleryError(f"The {title} returned vectors holding NaN or infinite values.")
        with self._stats_lock:
            if self.dimension is None:
                self.dimension = int(vectors.shape[1])
        if vectors.shape[1] != self.dimension:
            raise DistilleryError(f"The {title} returned vectors of varying dimension: {self.dimension} when it "
                                  f"was checked, {vectors.shape[1]} now.")
        return vectors


def _rows(kind: str, payload: Any) -> list[Any]:
    if kind == "openai":
        data = sorted(payload["data"], key=lambda item: item["index"])
        return [_decode_base64(item["embedding"]) for item in data]
    if kind == "ollama":
        return list(payload["embeddings"])
    if isinstance(payload, dict):  # TEI answers a bare list; some proxies wrap it
        payload = payload["embeddings"]
    return list(payload)


def _decode_base64(value: Any) -> Any:
    """An OpenAI-compatible server may answer base64 even when asked for floats."""
    if isinstance(value, str):
        import base64

        return np.frombuffer(base64.b64decode(value), dtype="<f4").tolist()
    return value


def _server_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:300]
    if isinstance(body, dict):
        error = body.get("error", body.get("message", body))
        if isinstance(error, dict):
            error = error.get("message", error)
        return str(error)[:300]
    return str(body)[:300]


def _backoff(attempt: int) -> float:
    """Exponential backoff with jitter: 0.5 s, 1 s, 2 s, ... at most 30 s, each scaled by 0.5-1."""
    return min(MAX_BACKOFF_SECONDS, 0.5 * 2 ** attempt) * random.uniform(0.5, 1.0)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    try:
        return min(max(float(value), 0.0), MAX_BACKOFF_SECONDS * 2)
    except ValueError:
        return None


def _reason(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def without_url(value: Any) -> Any:
    """A recipe, a record or a spec with every endpoint teacher's URL blanked (a card or a Hub push
    must not publish a private address; the key was never there)."""
    if isinstance(value, dict):
        is_endpoint = value.get("kind") in KINDS and "url" in value and "api_key_env" in value
        return {k: (None if is_endpoint and k == "url" else without_url(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [without_url(item) for item in value]
    return value


def endpoint_teacher(spec: EndpointSpec) -> TeacherInfo:
    """The endpoint as a resolved teacher, after a probe that checks URL, key and model and learns the
    dimension. `name` is "<kind>:<model>"; `source` is empty (there are no weights to load); the spec
    (never the key) travels in `endpoint`."""
    from core.encoders.teacher import TeacherInfo

    spec.validate()
    client = EndpointClient(spec)
    try:
        dimension = client.probe()
    finally:
        client.close()
    prompts = {name: prefix for name, prefix in (("query", spec.query_prefix), ("document", spec.document_prefix))
               if prefix}
    return TeacherInfo(f"{spec.kind}:{spec.model or 'default'}", "", dimension, None, spec.fingerprint(), False, False,
                       prompts, spec.to_dict())


class EndpointEncoder:
    """The endpoint as an `Encoder`: the document or query prefix, then unit-length rows; an empty
    text gives a zero row without a request (APIs refuse empty inputs)."""

    label = "teacher"

    def __init__(self, info: TeacherInfo, spec: EndpointSpec | None = None) -> None:
        from core.encoders.teacher import encoder_fingerprint

        if info.endpoint is None:
            raise DistilleryError(f"'{info.name}' is not an endpoint teacher.")
        self.info = info
        self.spec = spec or EndpointSpec.from_dict(info.endpoint)
        self.client = EndpointClient(self.spec, info.dimension)
        self.fingerprint = encoder_fingerprint(info)
        self.nbytes = 0

    def with_batching(self, batch_size: int | None = None, concurrency: int | None = None) -> EndpointEncoder:
        """The same endpoint with other batching (what a benchmark or a test varies)."""
        spec = replace(self.spec, batch_size=batch_size or self.spec.batch_size,
                       concurrency=concurrency or self.spec.concurrency)
        return EndpointEncoder(self.info, spec)

    def release(self) -> None:
        self.client.close()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, self.spec.document_prefix)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, self.spec.query_prefix)

    def _encode(self, texts: Sequence[str], prefix: str) -> np.ndarray:
        return embed_non_empty(texts, self.info.dimension, lambda kept: self.client.embed([prefix + t for t in kept]))


@dataclass(frozen=True)
class CostEstimate:
    """What featurizing a corpus through an endpoint will send, shown before the job starts."""

    texts: int
    tokens: int  # by the student's tokenizer (the API's own count may differ by a few percent)
    requests: int
    batch_size: int
    concurrency: int

    def sentence(self, title: str) -> str:
        return (f"{title}: {self.texts:,} texts, about {self.tokens:,} tokens (by the student's tokenizer), "
                f"{self.requests:,} requests of up to {self.batch_size} texts, {self.concurrency} at a time.")


def estimate_cost(spec: EndpointSpec, texts: Sequence[str], tokenizer: Any) -> CostEstimate:
    """Texts, tokens and requests for `texts` (with the document prefix); `tokenizer` is a
    `tokenizers.Tokenizer` or a transformers tokenizer (the student's)."""
    from tokenizers import Tokenizer

    # A private copy without padding or truncation: a saved tokenizer may pad every text to 128 ids.
    backend = Tokenizer.from_str(getattr(tokenizer, "backend_tokenizer", tokenizer).to_str())
    backend.no_padding()
    backend.no_truncation()
    tokens = 0
    prefixed = [spec.document_prefix + text for text in texts]
    for start in range(0, len(prefixed), 4096):
        encodings = backend.encode_batch(prefixed[start:start + 4096], add_special_tokens=False)
        tokens += sum(len(e.ids) for e in encodings)
    return CostEstimate(len(texts), tokens, -(-len(texts) // spec.batch), spec.batch, spec.workers)
