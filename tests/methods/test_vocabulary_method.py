"""core.methods.vocabulary's parameters (model2vec's knobs) and the method registry."""

from __future__ import annotations

import pytest

from core.encoders.teacher import resolve_teacher
from core.errors import DistilleryError
from core.methods.corpus import CorpusParams
from core.methods.registry import METHODS, method, params_for
from core.methods.training import TrainParams
from core.methods.vocabulary import POOLING, QUANTIZE, VocabularyParams


@pytest.fixture(scope="module")
def default_teacher():
    return resolve_teacher(None)


# --- the parameters ----------------------------------------------------------------------------


def test_default_params_are_valid(default_teacher):
    VocabularyParams().validate(default_teacher)
    VocabularyParams(pca_dims=384).validate(default_teacher)
    VocabularyParams(pca_dims=None, sif_coefficient=None).validate(default_teacher)


def test_pca_dims_above_teacher_dimension_is_refused(default_teacher):
    with pytest.raises(DistilleryError, match="384"):
        VocabularyParams(pca_dims=385).validate(default_teacher)


@pytest.mark.parametrize(
    "params, words",
    [
        (VocabularyParams(pca_dims=1), "at least 2"),
        (VocabularyParams(sif_coefficient=0.0), "SIF"),
        (VocabularyParams(sif_coefficient=1.0), "SIF"),
        (VocabularyParams(sif_coefficient=-1e-4), "SIF"),
        (VocabularyParams(pooling="max"), "Unknown pooling 'max'"),
        (VocabularyParams(quantize_to="int4"), "Unknown quantization 'int4'"),
        (VocabularyParams(max_vocabulary_size=0), "vocabulary size"),
        (VocabularyParams(min_frequency=0), "frequency"),
    ],
)
def test_bad_params_are_refused(default_teacher, params, words):
    with pytest.raises(DistilleryError, match=words):
        params.validate(default_teacher)


def test_vocabulary_size_zero_is_fine_without_corpus_vocabulary(default_teacher):
    VocabularyParams(use_corpus_vocabulary=False, max_vocabulary_size=0).validate(default_teacher)


def test_params_from_json_refuse_unknown_names_and_round_trip():
    params = VocabularyParams(pca_dims=64, pooling="first", quantize_to="int8")
    assert VocabularyParams.from_dict(params.to_dict()) == params
    assert VocabularyParams.from_dict(None) == VocabularyParams()
    assert params.pooling in POOLING and params.quantize_to in QUANTIZE
    with pytest.raises(DistilleryError, match="no parameter.*epochs"):  # a corpus-method knob
        VocabularyParams.from_dict({"epochs": 3})
    with pytest.raises(DistilleryError, match="pca_dimz"):
        VocabularyParams.from_dict({"pca_dimz": 64})


# --- the registry ------------------------------------------------------------------------------


def test_registry_names_each_method_with_its_own_parameters():
    assert set(METHODS) == {"vocabulary", "corpus"}
    assert method("vocabulary").params is VocabularyParams and method("corpus").params is CorpusParams
    assert method("corpus").min_texts > method("vocabulary").min_texts
    assert params_for("vocabulary") == VocabularyParams()
    corpus = params_for("corpus", {"epochs": 4, "sif_coefficient": 0.2})
    assert isinstance(corpus, CorpusParams) and corpus.training == TrainParams(epochs=4)
    assert corpus.sif_coefficient == 0.2
    with pytest.raises(DistilleryError, match="Unknown method 'tokenlearn'"):
        method("tokenlearn")
    with pytest.raises(DistilleryError, match="recipe's method is 'corpus'"):
        params_for("corpus", VocabularyParams())
    with pytest.raises(DistilleryError, match="recipe's method is 'vocabulary'"):
        params_for("vocabulary", CorpusParams())
