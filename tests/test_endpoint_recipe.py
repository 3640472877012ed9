"""A whole recipe with an embeddings API as the teacher (the project's own service on loopback): the
model, its card and record, Compare with the endpoint as the teacher, `python -m core`'s flags and
cost estimate, and no file anywhere holding the API key."""

from __future__ import annotations

import json
import os
from pathlib import Path

import helpers
import pytest

from core.artifact.folder import ModelFolder
from core.corpus.cleaning import CleaningOptions
from core.encoders.endpoint import EndpointSpec
from core.methods.corpus import CorpusParams
from core.methods.training import TrainParams
from core.recipe import Recipe

pytestmark = pytest.mark.slow  # a distillation over HTTP


def endpoint_recipe(url: str, **overrides) -> Recipe:
    fields = dict(name="over-http", teacher=EndpointSpec(kind="openai", url=url, model="teacher",
                                                           api_key_env=helpers.ENDPOINT_KEY_ENV, batch_size=32),
                  method="corpus", corpus_size=300, collection_size=40, cleaning=CleaningOptions(min_words=3, max_words=64),
                  distill=CorpusParams(pca_dims=32, max_vocabulary_size=100, min_frequency=2,
                                       training=TrainParams(epochs=2)))
    fields.update(overrides)
    return Recipe(**fields)


def files_holding(root: Path, needle: str) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and needle.encode() in p.read_bytes()]


def test_recipe_over_http_saves_a_model_and_never_the_key(endpoint_service: str, tmp_path: Path,
                                                          data_dir: Path) -> None:
    from core.pipeline import run_recipe
    from core.serving.compare import CompareSession

    recipe = Recipe.from_dict(json.loads(json.dumps(endpoint_recipe(endpoint_service).to_dict())))  # as JSON
    assert isinstance(recipe.teacher, EndpointSpec) and recipe.teacher.api_key_env == helpers.ENDPOINT_KEY_ENV
    record = run_recipe(recipe, tmp_path / "job", tmp_path / "model")
    assert record.teacher.endpoint is not None and record.teacher.name == "openai:teacher"
    folder = ModelFolder.at(tmp_path / "model")
    assert folder.record.dimension == 32

    # The card names the kind and model, never the URL; the licence is the user's to check.
    card = (tmp_path / "model" / "README.md").read_text()
    assert "OpenAI-compatible endpoint, model teacher" in card and "are yours to check" in card
    assert endpoint_service not in card and "127.0.0.1" not in card and "base_model" not in card
    # The local record keeps the URL (to reach the teacher again); what is published does not.
    published = json.dumps(folder.record.published().to_dict())
    assert endpoint_service not in published and '"api_key_env"' in published

    # Compare uses the endpoint as the teacher.
    session = CompareSession.open(folder)
    result = session.search("how do I book a table", k=3)
    assert len(result.teacher) == 3 and len(result.student) == 3

    # The key is nowhere: not in the job folder, the model, the caches, nor the data folder.
    for root in (tmp_path, data_dir):
        assert files_holding(root, helpers.ENDPOINT_KEY) == []
    assert os.environ[helpers.ENDPOINT_KEY_ENV] == helpers.ENDPOINT_KEY  # the key was there all along


def test_command_line_estimate_and_flags(endpoint_service: str, tmp_path: Path, capsys) -> None:
    from core.__main__ import main

    recipe = tmp_path / "recipe.json"
    base = endpoint_recipe(endpoint_service).to_dict()
    base["teacher"] = "sentence-transformers/all-MiniLM-L6-v2"  # the flags make it an endpoint
    recipe.write_text(json.dumps(base))
    argv = [str(recipe), "--endpoint-kind", "ollama", "--endpoint-url", endpoint_service, "--endpoint-model",
            "teacher", "--api-key-env", helpers.ENDPOINT_KEY_ENV, "--endpoint-batch-size", "50", "--estimate"]
    assert main(argv) == 0
    cost = json.loads(capsys.readouterr().out)
    assert cost["texts"] == 300 and cost["requests"] == 6 and cost["batch_size"] == 50 and cost["concurrency"] == 1
    assert 300 * 3 < cost["tokens"] < 300 * 200
    # The vocabulary method is refused with its reason, before any request.
    recipe.write_text(json.dumps({k: v for k, v in base.items() if k != "distill"}))
    assert main([*argv[:-1], "--method", "vocabulary"]) == 2
    assert "endpoint without weights" in capsys.readouterr().err
