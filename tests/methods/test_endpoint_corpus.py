"""The corpus method with a teacher reached over HTTP: the project's own embeddings service on loopback
(its OpenAI and its Ollama route), the same service made unreliable, resumable shards, and a whole
recipe run that never writes the API key anywhere."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import helpers
import numpy as np
import pytest

from core.encoders.endpoint import EndpointClient, EndpointSpec, endpoint_teacher
from core.encoders.teacher import TeacherEncoder, TeacherInfo, resolve_teacher
from core.errors import DistilleryError
from core.methods.corpus import CorpusParams, distill
from core.methods.featurize import featurize, featurize_key
from core.methods.training import TrainParams

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "corpus"
# Without the prior (the bundled teacher's model2vec pass, ~30 s here): what is compared does not
# depend on it, and tests/test_endpoint_recipe.py runs the default with the prior.
PARAMS = CorpusParams(pca_dims=32, max_vocabulary_size=50, min_frequency=2, training=TrainParams(epochs=2),
                      quantize_to="float32", start_prior=False)


def corpus_texts(count: int = 260) -> list[str]:
    """Real sentences of two domains from the shared corpus (the method needs at least 200)."""
    texts: list[str] = []
    for name, field in (("web/wikisplit_sentences", "complex"), ("conversational/sgd_utterances", "text")):
        with gzip.open(SHARED / f"{name}.jsonl.gz", "rt") as handle:
            rows = (json.loads(line)[field] for line in handle)
            texts += [t for _, t in zip(range(count // 2), (t for t in rows if len(t.split()) >= 4))]
    return texts


def spec(url: str, kind: str = "openai", **fields) -> EndpointSpec:
    return EndpointSpec(kind=kind, url=url, model="teacher", api_key_env=helpers.ENDPOINT_KEY_ENV, **fields)


@pytest.mark.slow  # three small distillations over HTTP
def test_same_model_through_either_route_and_an_unreliable_server(endpoint_service: str, unreliable_endpoint,
                                                                  tmp_path: Path) -> None:
    texts = corpus_texts()
    url, door = unreliable_endpoint
    models = {}
    for name, address, kind in (("openai", endpoint_service, "openai"), ("ollama", endpoint_service, "ollama"),
                                ("unreliable", url, "openai")):
        teacher = endpoint_teacher(spec(address, kind, batch_size=8, concurrency=3))
        models[name] = distill(teacher, PARAMS, texts, tmp_path / name)
    reference = models["openai"]
    assert reference.model.dim == 32 and reference.details.targets.complete()
    assert np.isfinite(np.asarray(reference.model.embedding)).all()
    vectors = reference.model.encode(["where is the train station", "the river flows north"],
                                     use_multiprocessing=False)
    assert vectors.shape == (2, 32) and np.isfinite(vectors).all()
    assert door.seen["429"] + door.seen["500"] > 0  # the unreliable server did fail some requests
    for name in ("ollama", "unreliable"):
        np.testing.assert_array_equal(np.asarray(models[name].model.embedding), np.asarray(reference.model.embedding))
    # The targets are the service's teacher vectors, as the local teacher computes them.
    targets = reference.details.targets.open().take(np.arange(5))
    np.testing.assert_allclose(targets, TeacherEncoder(resolve_teacher(None)).encode(texts[:5]), atol=2e-3)


@pytest.mark.slow
def test_interrupted_featurizing_resumes_at_the_first_missing_shard(endpoint_service: str, unreliable_endpoint,
                                                                    tmp_path: Path) -> None:
    texts = corpus_texts(200)
    url, door = unreliable_endpoint
    teacher = endpoint_teacher(spec(url, batch_size=16, concurrency=2, max_retries=8))
    key = featurize_key(teacher.fingerprint, texts, None)
    folder = tmp_path / "targets"

    client = EndpointClient(spec(url, batch_size=16, concurrency=2, max_retries=3), teacher.dimension)
    progress_seen = []

    def go_down_after_two_shards(stage: str, fraction: float, message: str = "") -> None:
        progress_seen.append(fraction)
        if fraction >= 128 / 200:  # two shards of 64 written: the server goes away
            door.down = True

    try:
        with pytest.raises(DistilleryError, match="answered HTTP 503 after 4 tries"):
            featurize(client, texts, folder, key, progress=go_down_after_two_shards, shard_rows=64)
    finally:
        door.down = False
    written = sorted(p.name for p in folder.iterdir())
    # Nothing half-written: whole shards only (no hidden temporary file), the others absent.
    assert written == ["order.npy", "targets.json", "targets_00000.npy", "targets_00001.npy"]
    assert all(np.load(folder / name).shape == (64, 384) for name in written[2:])

    again = EndpointClient(spec(url, batch_size=16, concurrency=2, max_retries=8), teacher.dimension)
    store = featurize(again, texts, folder, key, shard_rows=64)
    assert again.stats.texts == 200 - 128  # only the missing shards were asked for
    assert store.complete()
    reference = featurize(EndpointClient(spec(endpoint_service, batch_size=16), teacher.dimension), texts,
                          tmp_path / "reference", featurize_key("other", texts, None), shard_rows=64)
    np.testing.assert_array_equal(store.open().take(np.arange(200)), reference.open().take(np.arange(200)))


def test_vocabulary_method_is_refused_before_any_request() -> None:
    from core.corpus.sources import load_catalogue
    from core.methods.vocabulary import VocabularyParams
    from core.methods.vocabulary import distill as vocabulary_distill
    from core.recipe import Recipe, validate_recipe

    unreachable = EndpointSpec(kind="openai", url=f"http://127.0.0.1:{helpers.free_port()}", model="m")
    recipe = Recipe(teacher=unreachable, method="vocabulary")
    with pytest.raises(DistilleryError, match="vocabulary method embeds every token with the teacher's weights"):
        validate_recipe(recipe, load_catalogue())
    info = TeacherInfo("openai:m", "", 384, None, "endpoint:x", False, endpoint=unreachable.to_dict())
    with pytest.raises(DistilleryError, match="endpoint without weights: use the corpus method"):
        vocabulary_distill(info, VocabularyParams(), ["a text"], Path("unused"))
    # A student tokenizer is chosen only for a teacher without weights.
    with pytest.raises(DistilleryError, match="lends the student its own tokenizer"):
        CorpusParams(student_tokenizer="bert-base-uncased").validate(resolve_teacher(None))
