"""Calls to the embeddings service written out for a person to copy: curl for both shapes
(Ollama's `/api/embed`, OpenAI's `/v1/embeddings`) and the `openai` Python client.

Why here and not in the UI: the text must match the routes and the key check of
`core.serving.service`, and a script or a README can print the same calls. When the service needs a
key (`DISTILLERY_API_KEY` is set), the calls read it from the caller's environment by name, so a
key's value is never written into a page.
"""

from __future__ import annotations

import json
import os
import shlex
from dataclasses import dataclass

from core.serving.service import API_KEY_ENV

EXAMPLE_TEXTS = ("Distilled models are fast.", "Static embeddings need no GPU.")


@dataclass(frozen=True)
class ClientSnippets:
    ollama_curl: str
    openai_curl: str
    openai_python: str


def client_snippets(base_url: str, model: str, key_required: bool | None = None) -> ClientSnippets:
    """The three calls for `model` on the service at `base_url` (no trailing slash needed).
    `key_required` None means: as this process's service is configured."""
    base = base_url.rstrip("/")
    if key_required is None:
        key_required = bool(os.environ.get(API_KEY_ENV))
    auth = f' \\\n  -H "Authorization: Bearer ${API_KEY_ENV}"' if key_required else ""
    texts = list(EXAMPLE_TEXTS)

    def curl(path: str, body: dict[str, object]) -> str:
        return (f"curl {shlex.quote(base + path)} \\\n  -H 'Content-Type: application/json'{auth} \\\n"
                f"  -d {shlex.quote(json.dumps(body))}")

    key = f'os.environ["{API_KEY_ENV}"])' if key_required else '"unused")  # the service asks for no key'
    python = f'''import os

from openai import OpenAI

client = OpenAI(base_url={json.dumps(base + "/v1")}, api_key={key}
response = client.embeddings.create(model={json.dumps(model)}, input={json.dumps(texts)})
vectors = [item.embedding for item in response.data]
print(len(vectors), "vectors of", len(vectors[0]), "dimensions")
'''
    if not key_required:
        python = python.replace("import os\n\n", "", 1)
    return ClientSnippets(curl("/api/embed", {"model": model, "input": texts}),
                          curl("/v1/embeddings", {"model": model, "input": texts}), python)
