"""core.recipe: a recipe holds its method's parameters, however it is built (Python, JSON, the form)."""

from __future__ import annotations

import json

import helpers
import pytest

from core.corpus.cleaning import CleaningOptions
from core.corpus.sources import load_catalogue
from core.errors import DistilleryError
from core.methods.corpus import CorpusParams
from core.methods.training import TrainParams
from core.methods.vocabulary import VocabularyParams
from core.recipe import Recipe, validate_recipe


@pytest.fixture(scope="module")
def catalogue():
    return load_catalogue(hub_available=False)


def test_a_corpus_recipe_built_in_python_gets_the_corpus_defaults():
    recipe = Recipe(method="corpus")
    assert type(recipe.params) is CorpusParams and recipe.params is recipe.distill
    assert recipe.params.sif_coefficient == 1e-2 == CorpusParams().sif_coefficient
    assert recipe.params.sif_coefficient != VocabularyParams().sif_coefficient  # not model2vec's 1e-4
    assert recipe.params.training == TrainParams() and recipe.params.start_share == CorpusParams().start_share
    assert recipe.params == CorpusParams()
    vocabulary = Recipe()
    assert vocabulary.method == "vocabulary" and vocabulary.params == VocabularyParams()


def test_parameters_of_another_method_are_refused():
    with pytest.raises(DistilleryError, match="vocabulary method's.*'corpus'"):
        Recipe(method="corpus", distill=VocabularyParams())
    with pytest.raises(DistilleryError, match="corpus method's.*'vocabulary'"):
        Recipe(method="vocabulary", distill=CorpusParams())
    with pytest.raises(DistilleryError, match="Unknown method 'nope'"):
        Recipe(method="nope")


@pytest.mark.parametrize("method, params", [
    ("vocabulary", VocabularyParams(pca_dims=32, sif_coefficient=None, pooling="first", max_vocabulary_size=7)),
    ("corpus", CorpusParams(pca_dims=48, start_share=0.25, training=TrainParams(epochs=4, learning_rate=5e-4))),
])
def test_to_dict_and_from_dict_round_trip_for_both_methods(method, params):
    recipe = Recipe(name="round trip", method=method, distill=params, corpus_size=1234, seed=7,
                    cleaning=CleaningOptions(min_words=2, max_words=40), sources={"web": ["local:wikitext"]},
                    evaluate_after=True, evaluation_rows=50)
    data = json.loads(json.dumps(recipe.to_dict()))  # through JSON, as the job folder and the queue keep it
    again = Recipe.from_dict(data)
    assert again == recipe and type(again.params) is type(params) and again.params == params
    assert again.to_dict() == data


def test_flat_training_keys_land_in_training():
    recipe = Recipe.from_dict({"method": "corpus", "distill": {"epochs": 4, "patience": 1, "learning_rate": 2e-3,
                                                               "sif_coefficient": 0.2}})
    assert recipe.params.training == TrainParams(epochs=4, patience=1, learning_rate=2e-3)
    assert recipe.params.sif_coefficient == 0.2  # an explicit value always wins
    nested = Recipe.from_dict({"method": "corpus", "distill": {"training": {"epochs": 4, "patience": 1,
                                                                            "learning_rate": 2e-3}}})
    assert nested.params.training == recipe.params.training
    assert Recipe.from_dict({}).params.sif_coefficient == VocabularyParams().sif_coefficient


def test_unknown_parameter_and_field_names_are_refused():
    with pytest.raises(DistilleryError, match="no parameter.*pca_dimz"):
        Recipe.from_dict({"method": "corpus", "distill": {"pca_dimz": 64}})
    with pytest.raises(DistilleryError, match="vocabulary method has no parameter.*epochs"):
        Recipe.from_dict({"method": "vocabulary", "distill": {"epochs": 3}})  # a corpus-method knob
    with pytest.raises(DistilleryError, match="training has no parameter.*epochz"):  # nested under training
        Recipe.from_dict({"method": "corpus", "distill": {"training": {"epochz": 3}}})
    with pytest.raises(DistilleryError, match="corpus method has no parameter.*epochz"):
        Recipe.from_dict({"method": "corpus", "distill": {"epochz": 3}})
    with pytest.raises(DistilleryError, match="Unknown recipe field.*colour"):
        Recipe.from_dict({"colour": "blue"})


def test_validate_recipe_checks_the_methods_needs(catalogue):
    teacher = validate_recipe(helpers.small_recipe(), catalogue)
    assert teacher.dimension == 384
    with pytest.raises(DistilleryError, match="at least 200 texts"):
        validate_recipe(helpers.small_recipe(method="corpus", distill=None, corpus_size=150), catalogue)
    with pytest.raises(DistilleryError, match="learning rate"):
        validate_recipe(helpers.small_recipe(method="corpus", distill=CorpusParams(
            training=TrainParams(learning_rate=0))), catalogue)
    with pytest.raises(DistilleryError, match="384"):
        validate_recipe(helpers.small_recipe(distill=VocabularyParams(pca_dims=1000)), catalogue)
    with pytest.raises(DistilleryError, match="between 10 and"):
        validate_recipe(helpers.small_recipe(collection_size=5), catalogue)
    with pytest.raises(DistilleryError, match="whole number"):
        validate_recipe(helpers.small_recipe(corpus_size=400.5), catalogue)
    with pytest.raises(DistilleryError, match="between 0 and 4,294,967,295"):
        validate_recipe(helpers.small_recipe(seed=2**70), catalogue)  # torch refuses it inside the job
    for name, what in (("../../etc", "'/'"), ("a\\b", "'\\\\\\\\'"), ("nul\x00", "a control character")):
        with pytest.raises(DistilleryError, match=f"contains {what}.*folder name"):
            validate_recipe(helpers.small_recipe(name), catalogue)


def test_a_studio_teacher_is_read_only_from_the_teacher_folders(catalogue, tmp_path):
    import shutil

    from core.encoders.teacher import resolve_teacher

    default = resolve_teacher(None)
    root = tmp_path / "teachers"
    shutil.copytree(default.source, root / "minilm")
    outside = tmp_path / "elsewhere"
    shutil.copytree(default.source, outside)
    recipe = helpers.small_recipe(teacher="minilm")  # relative names are looked up in the folders
    assert validate_recipe(recipe, catalogue, [root]).source == str((root / "minilm").resolve())
    assert validate_recipe(helpers.small_recipe(teacher=str(root / "minilm")), catalogue, [root]).dimension == 384
    for name in (str(outside), "/etc", "~"):
        with pytest.raises(DistilleryError, match="local teachers are read only from"):
            validate_recipe(helpers.small_recipe(teacher=name), catalogue, [root])
    (root / "escape").symlink_to(outside)  # a link inside that leads out
    with pytest.raises(DistilleryError, match="local teachers are read only from"):
        validate_recipe(helpers.small_recipe(teacher="escape"), catalogue, [root])
    for name, expected in ((f"{root}/../elsewhere", "'..' is not allowed"), ("org/x\x00", "control character"),
                           ("x" * 400, "too long")):
        with pytest.raises(DistilleryError, match=expected):
            validate_recipe(helpers.small_recipe(teacher=name), catalogue, [root])
    assert validate_recipe(helpers.small_recipe(teacher=str(outside)), catalogue).dimension == 384  # no limit given


def test_corpus_plan_uses_the_catalogue_defaults_and_the_uploads(catalogue, tmp_path):
    upload = {"name": "upload-notes.txt", "domain": "web", "kind": "upload", "location": str(tmp_path / "n.txt"),
              "fields": ["text"]}
    recipe = helpers.small_recipe(uploads={"web": [upload]})
    plan = recipe.corpus_plan(catalogue)
    assert plan.size == 400 and plan.seed == 0 and plan.cleaning == recipe.cleaning
    assert [s.name for s in plan.sources["web"]][-1] == "upload-notes.txt"
    assert [s.key for s in plan.sources["academic"]] == catalogue.default_keys("academic")
    chosen = helpers.small_recipe(sources={"web": ["local:wikitext"]}).corpus_plan(catalogue)
    assert [s.key for s in chosen.sources["web"]] == ["local:wikitext"] and chosen.sources["code"] == []
