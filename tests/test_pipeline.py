"""core.pipeline.run_recipe end to end on the small recipe: corpus → vocabulary method → collection → model folder.

The model is built once per session (the `small_model` fixture in conftest.py).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from core.artifact.folder import COLLECTION_FILE, RECORD_FILE, ModelFolder
from core.artifact.record import ModelRecord
from core.pipeline import sample_collection

pytestmark = pytest.mark.slow  # one real distillation (shared by the session)


def test_distilled_model_loads_in_model2vec(small_model):
    from model2vec import StaticModel

    model = StaticModel.from_pretrained(str(small_model.path))
    vectors = model.encode(["a contract clause about liability", "how do I sort a list in python"],
                           use_multiprocessing=False)
    assert vectors.shape == (2, 64)
    assert np.all(np.isfinite(vectors)) and np.linalg.norm(vectors[0]) > 0
    assert not np.allclose(vectors[0], vectors[1])


def test_distilled_model_loads_in_sentence_transformers(small_model):
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(small_model.path), device="cpu")
    vectors = model.encode(["hello world", "static embeddings are fast"])
    assert vectors.shape == (2, 64)


def test_model_card_carries_the_teacher_licence(small_model):
    card = (small_model.path / "README.md").read_text()
    front = card.split("---")[1]
    assert "license: apache-2.0" in front
    assert "license: mit" not in card
    assert "base_model: sentence-transformers/all-MiniLM-L6-v2" in front


def test_record_holds_the_stages_and_the_corpus(small_model):
    record, folder = small_model.record, small_model.path
    assert isinstance(record, ModelRecord) and record.id == "small-model" and record.method == "vocabulary"
    saved = json.loads((folder / RECORD_FILE).read_text())
    assert {"corpus", "vocabulary", "distill", "index"} <= set(saved["stages"])
    assert all(saved["stages"][s]["seconds"] >= 0 for s in saved["stages"])
    assert saved["dimension"] == 64 == record.dimension
    assert saved["teacher"]["licence"] == "apache-2.0"
    assert saved["corpus"]["size"] == 400
    assert 0 < saved["vocabulary_added"] <= 300
    assert saved["recipe"]["distill"]["pca_dims"] == 64 and saved["job_dir"] == str(small_model.job_dir)
    assert "save" in record.stages
    assert not list(folder.parent.glob(".*.tmp"))
    # Each stage records its own peak memory; the record's peak is the whole run's.
    peaks = [stage["peak_rss_mb"] for stage in record.stages.values()]
    assert all(peak > 0 for peak in peaks)
    assert record.peak_rss_mb >= max(peaks[:-1])  # every stage timed before the record was made


def test_the_search_collection_is_a_seeded_corpus_sample_inside_the_folder(small_model):
    folder = ModelFolder.at(small_model.path)
    collection = json.loads((small_model.path / COLLECTION_FILE).read_text())
    assert folder.collection() == collection and len(collection) == 40
    from core.corpus.build import Corpus

    texts = Corpus.load(small_model.job_dir / "corpus").texts()
    assert collection == sample_collection(texts, 40, seed=0)  # reproducible from the recipe's seed
    assert set(collection) <= set(texts)
