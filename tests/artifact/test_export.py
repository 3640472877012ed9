"""core.artifact.export: the zip a person downloads and the push to the Hub, on tiny real models.

The push runs huggingface_hub for real down to its HTTP client, which answers from a fake Hub
(`httpx.MockTransport` through `huggingface_hub.set_client_factory`): the files checked are the
bytes that would have left the machine, and the token is looked for everywhere it must not be.
The last test unzips a real distilled model and checks it gives the same vectors in model2vec,
sentence-transformers and the embeddings service.
"""

from __future__ import annotations

import base64
import json
import logging
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helpers
import httpx
import numpy as np
import pytest

from core import settings
from core.artifact.export import check_repo_id, push_to_hub, resolve_token, shipped_files, zip_model
from core.artifact.folder import CARD_FILE, COLLECTION_FILE, RECORD_FILE, ModelFolder
from core.errors import DistilleryError

TOKEN = "hf_distillery_test_token_4f9a2c"  # distinctive, so a leak anywhere is found by a plain search


@pytest.fixture()
def folder(tmp_path) -> ModelFolder:
    return ModelFolder.create(helpers.tiny_static_model(), helpers.tiny_record("tiny-ship"), ["a text", "another"],
                              tmp_path / "models" / "tiny-ship")


def test_the_zip_holds_the_model_folder_under_its_id(folder, tmp_path):
    (folder.path / ".README.md.0123.tmp").write_text("an atomic write in progress")
    exports = tmp_path / "exports"
    archive = zip_model(folder, exports)
    assert archive == exports / "tiny-ship.zip"
    with zipfile.ZipFile(archive) as opened:
        names = set(opened.namelist())
    assert {"tiny-ship/model.safetensors", "tiny-ship/tokenizer.json", "tiny-ship/config.json",
            f"tiny-ship/{CARD_FILE}", f"tiny-ship/{RECORD_FILE}", f"tiny-ship/{COLLECTION_FILE}"} <= names
    assert not any("/." in name for name in names), names
    assert sorted(p.name for p in exports.iterdir()) == ["tiny-ship.zip"]  # no temporary file left behind


def test_the_zip_is_reused_until_the_folder_changes(folder, tmp_path):
    exports = tmp_path / "exports"
    first = zip_model(folder, exports)
    stamp = first.stat().st_mtime_ns
    assert zip_model(folder, exports).stat().st_mtime_ns == stamp
    folder.write_evaluation(helpers.evaluation_report("tiny-ship"))
    again = zip_model(folder, exports)
    assert again.stat().st_mtime_ns > stamp
    with zipfile.ZipFile(again) as opened:
        assert "tiny-ship/evaluation.json" in opened.namelist()
        assert "Evaluation" in opened.read(f"tiny-ship/{CARD_FILE}").decode()


def test_a_zip_that_fails_halfway_leaves_nothing_visible(folder, tmp_path, monkeypatch):
    exports = tmp_path / "exports"

    def broken(self, filename, arcname=None, *args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(zipfile.ZipFile, "write", broken)
    with pytest.raises(OSError, match="disk full"):
        zip_model(folder, exports)
    assert list(exports.iterdir()) == []


def test_the_default_zip_goes_to_the_exports_folder_of_the_data_folder(folder):
    archive = zip_model(folder)
    assert archive.parent == settings.data_dir() / "exports"
    archive.unlink()


@pytest.mark.parametrize("repo_id", ["", "  ", "a/b/c", "owner/bad--name", "owner/na me", "x" * 97])
def test_bad_repo_ids_are_refused_with_the_rule(repo_id):
    with pytest.raises(DistilleryError, match="repository"):
        check_repo_id(repo_id)


def test_a_repo_id_is_stripped():
    assert check_repo_id("  me/my-model.v2 ") == "me/my-model.v2"


def test_no_token_is_a_clear_refusal(folder, monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    with pytest.raises(DistilleryError, match="token with write access"):
        push_to_hub(folder, "me/model", token="  ")
    monkeypatch.setenv("HF_TOKEN", "from-the-environment")
    assert resolve_token("") == "from-the-environment"
    assert resolve_token("typed") == "typed"


def test_offline_is_refused_before_any_request(folder, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DistilleryError, match="HF_HUB_OFFLINE"):
        push_to_hub(folder, "me/model", token=TOKEN)


class FakeHub:
    """Answers huggingface_hub's create-repo, card check, preupload and commit calls; keeps every request."""

    def __init__(self, fail_commit: int | None = None) -> None:
        self.requests: list[httpx.Request] = []
        self.fail_commit = fail_commit

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        path = request.url.path
        if path == "/api/repos/create":
            body = json.loads(request.content)
            return httpx.Response(200, json={"url": f"https://huggingface.co/{body['organization']}/{body['name']}",
                                             "name": f"{body['organization']}/{body['name']}"})
        if path == "/api/validate-yaml":  # the card's front matter is checked before the commit
            return httpx.Response(200, json={"errors": [], "warnings": []})
        if "/preupload/" in path:
            files = json.loads(request.content)["files"]
            return httpx.Response(200, json={"files": [{"path": f["path"], "uploadMode": "regular",
                                                        "shouldIgnore": False} for f in files]})
        if "/commit/" in path:
            if self.fail_commit:
                return httpx.Response(self.fail_commit, json={"error": "Invalid credentials in Authorization header"})
            return httpx.Response(200, json={"commitUrl": "https://huggingface.co/me/model/commit/abc",
                                             "commitOid": "abc", "pullRequestUrl": None})
        return httpx.Response(404, json={"error": f"the fake Hub has no {path}"})

    def committed(self) -> dict[str, bytes]:
        """path in repo -> bytes of every file in the commit (regular uploads carry their content)."""
        commit = next(r for r in self.requests if "/commit/" in r.url.path)
        lines = [json.loads(line) for line in commit.content.decode().splitlines() if line.strip()]
        return {line["value"]["path"]: base64.b64decode(line["value"]["content"])
                for line in lines if line["key"] == "file"}


@pytest.fixture()
def fake_hub(monkeypatch) -> Iterator[FakeHub]:
    import huggingface_hub
    from huggingface_hub import constants

    hub = FakeHub()
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    huggingface_hub.set_client_factory(lambda: httpx.Client(transport=httpx.MockTransport(hub)))
    yield hub
    from huggingface_hub.utils._http import default_client_factory

    huggingface_hub.set_client_factory(default_client_factory)


def _everything_written(root: Path) -> Iterator[tuple[Path, bytes]]:
    """Every file under `root` but the live queue's SQLite files: closing any descriptor of a SQLite
    file drops every POSIX lock this process holds on it, which left this process's huey connection
    blind to the consumer's heartbeats for the rest of the session (a push never touches the queue)."""
    for path in root.rglob("*"):
        if path.is_file() and ".db" not in path.name:
            yield path, path.read_bytes()


def test_a_push_sends_the_model_and_its_card_and_the_token_only_as_a_header(folder, fake_hub, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    url = push_to_hub(folder, "me/model", token=TOKEN, private=True)
    assert url == "https://huggingface.co/me/model"

    create = next(r for r in fake_hub.requests if r.url.path == "/api/repos/create")
    assert json.loads(create.content)["visibility"] == "private"
    files = fake_hub.committed()
    assert {"model.safetensors", "tokenizer.json", "config.json", CARD_FILE, RECORD_FILE} <= set(files)
    assert COLLECTION_FILE not in files  # the corpus sample stays on this machine
    assert files["model.safetensors"] == (folder.path / "model.safetensors").read_bytes()
    card = files[CARD_FILE].decode()
    assert 'StaticModel.from_pretrained("me/model")' in card and "## Recipe" in card

    repo_calls = [r for r in fake_hub.requests if r.url.path.startswith(("/api/repos/", "/api/models/"))]
    assert len(repo_calls) == 3  # create, preupload, commit
    assert all(r.headers.get("authorization") == f"Bearer {TOKEN}" for r in repo_calls)
    for request in fake_hub.requests:
        assert TOKEN.encode() not in request.content and TOKEN not in str(request.url)
    for path, content in _everything_written(settings.data_dir()):
        assert TOKEN.encode() not in content, path
    for path, content in _everything_written(folder.path):
        assert TOKEN.encode() not in content, path
    captured = capsys.readouterr()
    assert TOKEN not in caplog.text + captured.out + captured.err


def test_a_push_publishes_no_local_path(tmp_path, fake_hub):
    """The record and card on the Hub keep the recipe but not where things sat on this machine."""
    corpus = {"size": 3, "requested_size": 3, "content_sha256": "0" * 64, "shortfalls": [], "domains": {"web": {
        "requested_share": 1.0, "realised_share": 1.0, "requested": 3, "realised": 3,
        "sources": [{"name": "notes", "kind": "local", "location": "/home/alice/private/notes.jsonl"}]}}}
    record = helpers.tiny_record("tiny-paths", corpus=corpus, job_dir="/home/alice/distillery/jobs/tiny-paths")
    folder = ModelFolder.create(helpers.tiny_static_model(), record, ["a text"], tmp_path / "models" / "tiny-paths")
    push_to_hub(folder, "me/model", token=TOKEN)
    files = fake_hub.committed()
    pushed = json.loads(files[RECORD_FILE])
    assert pushed["job_dir"] is None
    assert pushed["corpus"]["domains"]["web"]["sources"][0]["location"] == "local:notes.jsonl"
    assert pushed["teacher"]["source"].startswith("local:") and pushed["teacher"]["fingerprint"]
    for name in (RECORD_FILE, CARD_FILE):
        assert b"/home/alice" not in files[name] and str(settings.REPO_ROOT).encode() not in files[name], name
    assert json.loads((folder.path / RECORD_FILE).read_text())["job_dir"]  # the local copy is untouched


def test_a_push_takes_hf_token_when_no_token_is_given(folder, fake_hub, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    push_to_hub(folder, "me/model", token="", private=False)
    assert all(r.headers.get("authorization") == f"Bearer {TOKEN}" for r in fake_hub.requests
               if r.url.path.startswith("/api/models/"))
    create = next(r for r in fake_hub.requests if r.url.path == "/api/repos/create")
    assert json.loads(create.content)["visibility"] == "public"


def test_a_refused_push_says_why_without_the_token(folder, fake_hub):
    fake_hub.fail_commit = 401
    with pytest.raises(DistilleryError) as caught:
        push_to_hub(folder, "me/model", token=TOKEN)
    message = str(caught.value)
    assert "me/model" in message and "Invalid credentials" in message and TOKEN not in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_shipped_files_skip_hidden_files_at_any_depth(folder):
    (folder.path / "evaluations").mkdir()
    (folder.path / "evaluations" / ".x.json.tmp").write_text("{}")
    names = [p.relative_to(folder.path).as_posix() for p in shipped_files(folder)]
    assert not any(part.startswith(".") for name in names for part in name.split("/"))


@pytest.mark.slow  # loads sentence-transformers and a distilled model
def test_an_unzipped_model_gives_the_same_vectors_everywhere(small_model, tmp_path):
    """model2vec, sentence-transformers and the service's /v1/embeddings agree on the unzipped folder."""
    from fastapi.testclient import TestClient
    from model2vec import StaticModel
    from sentence_transformers import SentenceTransformer

    from core.serving.service import ModelRegistry, create_service

    with zipfile.ZipFile(zip_model(ModelFolder.at(small_model.path), tmp_path / "exports")) as opened:
        opened.extractall(tmp_path / "unzipped")
    path = tmp_path / "unzipped" / small_model.path.name
    texts = ["A cat sat on the mat.", "Static embeddings need no GPU.", "ångström café naïve"]

    def unit(vectors: Any) -> np.ndarray:
        array = np.asarray(vectors, dtype=np.float32)
        return array / np.linalg.norm(array, axis=1, keepdims=True)

    static = np.asarray(StaticModel.from_pretrained(str(path)).encode(texts), dtype=np.float32)
    transformer = SentenceTransformer(str(path), device="cpu").encode(texts)
    with TestClient(create_service(ModelRegistry([ModelFolder.at(path)], teacher=None))) as client:
        answer = client.post("/v1/embeddings", json={"model": small_model.record.id, "input": texts})
    assert answer.status_code == 200, answer.text
    served = [item["embedding"] for item in answer.json()["data"]]

    # The table is float16: sentence-transformers pools in float16 and the service re-normalises
    # model2vec's float16 output in float32 (unit rows), so all agree up to float16 rounding (~1e-4).
    served = np.asarray(served, dtype=np.float32)
    assert np.allclose(np.linalg.norm(served, axis=1), 1, atol=1e-5)
    assert np.allclose(unit(static), unit(transformer), atol=5e-4)
    assert np.allclose(unit(static), served, atol=5e-4)


def _hub_cache(root: Path, repo_id: str, folder: ModelFolder) -> Path:
    """A Hub cache holding `repo_id` as huggingface_hub lays it out (refs/main names a snapshot), the
    way a host that once downloaded the model, or a volume filled elsewhere, has it."""
    storage = root / f"models--{repo_id.replace('/', '--')}"
    snapshot, blobs = storage / "snapshots" / ("0" * 40), storage / "blobs"
    blobs.mkdir(parents=True)
    for number, path in enumerate(shipped_files(folder)):
        if path.name != COLLECTION_FILE:  # what a push sends; each snapshot file links to its blob
            blob = blobs / f"blob{number}"
            blob.write_bytes(path.read_bytes())
            link = snapshot / path.relative_to(folder.path)
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(blob)
    (storage / "refs").mkdir()
    (storage / "refs" / "main").write_text("0" * 40)
    return root


def test_a_hub_id_is_served_from_the_hub_cache(folder, tmp_path, monkeypatch):
    """`python -m serve --model me/model` on a host without the studio: huggingface_hub's own
    snapshot_download (offline here, so it reads its cache) finds the model Distillery pushed."""
    import huggingface_hub.constants

    from core.artifact.export import pull_from_hub
    from core.serving.service import ModelRegistry

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(_hub_cache(tmp_path / "hub", "me/model", folder)))
    pulled = pull_from_hub("me/model")
    assert pulled.id == "tiny-ship" and (pulled.path / "model.safetensors").is_file()
    registry = ModelRegistry.from_names(["me/model"], tmp_path / "no-models", teacher=None)
    assert registry.names()[0] == "tiny-ship"
    _, encoder, _ = registry.get("tiny-ship")
    assert encoder.encode(["a text"]).shape == (1, 8)
    with_teacher = ModelRegistry.from_names(["me/model"], tmp_path / "no-models").names()
    assert "teacher" in with_teacher and "tiny-ship:routed" not in with_teacher  # no collection to fit a map on

    with pytest.raises(DistilleryError, match="not in the Hub cache and the Hub cannot be reached"):
        pull_from_hub("me/other-model")
    with pytest.raises(DistilleryError, match="There is no finished model 'nothing-here'"):
        ModelRegistry.from_names(["nothing-here"], tmp_path / "no-models", teacher=None)
