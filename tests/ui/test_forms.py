"""ui.forms: the Recipe tab's values → a Recipe (with the chosen method's parameters) and its uploads.

Pure functions, no server: the form values below are what Gradio sends, in FORM_FIELDS order.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from core.corpus.plan import DOMAINS
from core.corpus.uploads import Upload
from core.errors import DistilleryError
from core.methods.corpus import CorpusParams
from core.methods.training import TrainParams
from core.methods.vocabulary import VocabularyParams
from ui.forms import (
    FORM_FIELDS,
    PAIR_WEIGHT,
    PRESETS,
    as_form,
    duration,
    estimate,
    form_pair_uploads,
    form_sources,
    form_uploads,
    preset_choices,
    recipe_from_form,
    shares_summary,
    typed_keys,
    whole,
)


def values(**overrides) -> dict:
    form = {
        "name": " my model ", "teacher": "", "trust_remote_code": False, "method": "vocabulary",
        "endpoint_kind": "", "endpoint_url": "", "endpoint_model": "", "api_key_env": "", "query_prefix": "",
        "document_prefix": "", "student_tokenizer": "", "language": "en",
        "corpus_size": 400.0, "collection_size": 40, "normalise": True, "dedupe": True, "min_words": 3,
        "max_words": 64, "use_corpus_vocabulary": True, "max_vocabulary_size": 300, "min_frequency": 2,
        "pca_dims": 64, "sif_coefficient": 1e-4, "pooling": "mean", "quantize_to": "float16", "epochs": None,
        "patience": None, "batch_size": None, "learning_rate": None, "start_share": None,
        "pair_sources": [], "pair_files": None, "pair_weight": "", "seed": 3,
        "evaluate_after": False, "evaluation_rows": None,
    }
    for domain in DOMAINS:
        form.update({f"{domain}:share": 20, f"{domain}:sources": [f"local:{domain}"], f"{domain}:files": None,
                     f"{domain}:fields": "text"})
    form.update(overrides)
    return as_form([form[f] for f in FORM_FIELDS])


def test_a_vocabulary_form_gives_a_vocabulary_recipe_and_no_uploads():
    recipe, uploads = recipe_from_form(values())
    assert uploads == {}
    assert recipe.name == "my model" and recipe.teacher == "sentence-transformers/all-MiniLM-L6-v2"
    assert recipe.method == "vocabulary" and type(recipe.params) is VocabularyParams
    assert recipe.params == VocabularyParams(pca_dims=64, sif_coefficient=1e-4, max_vocabulary_size=300,
                                             min_frequency=2)
    assert recipe.corpus_size == 400 and isinstance(recipe.corpus_size, int) and recipe.seed == 3
    assert recipe.sources == {d: [f"local:{d}"] for d in DOMAINS} == form_sources(values())
    assert recipe.uploads == {}  # accepted into the job's folder by `jobs.client.submit`, not here


def test_a_corpus_form_reads_the_training_fields_and_empty_ones_take_the_defaults():
    recipe, _ = recipe_from_form(values(method="corpus", sif_coefficient=1e-2, epochs=4, learning_rate=5e-4))
    assert type(recipe.params) is CorpusParams
    assert recipe.params.training == TrainParams(epochs=4, learning_rate=5e-4)  # patience, batch size: defaults
    assert recipe.params.start_share == CorpusParams().start_share
    assert recipe.params.sif_coefficient == 1e-2
    zero, _ = recipe_from_form(values(method="corpus", epochs=0))
    assert zero.params.training.epochs == 0  # kept, so that validation can explain it
    with pytest.raises(DistilleryError, match="Epochs"):
        zero.params.validate()


def test_uploads_come_back_per_domain_with_their_fields(tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.txt"
    form = values(**{"web:files": [str(a), {"path": str(b)}], "web:fields": "title, body",
                     "code:files": [str(b)]})
    _, uploads = recipe_from_form(form)
    assert uploads == form_uploads(form) == {
        "web": [Upload(Path(a), ("title", "body")), Upload(Path(b), ("title", "body"))],
        "code": [Upload(Path(b), ("text",))],
    }


def test_the_pair_fields_reach_the_corpus_recipe_and_chosen_pairs_get_a_weight(tmp_path):
    plain, _ = recipe_from_form(values(method="corpus"))
    assert plain.params.pair_sources == () and plain.params.pair_files == ()
    assert plain.params.training.pair_weight == TrainParams().pair_weight == 0.0
    assert form_pair_uploads(values(method="corpus")) == []
    plain.params.validate()  # no pairs, no weight: nothing to refuse

    for empty in ("", "0", None):  # pairs chosen, the weight left empty or 0: the bench's setting
        chosen, _ = recipe_from_form(values(method="corpus", pair_sources=["conala", "wikisplit"], pair_weight=empty))
        assert chosen.params.pair_sources == ("conala", "wikisplit")
        assert chosen.params.training.pair_weight == PAIR_WEIGHT == 0.05
    typed, _ = recipe_from_form(values(method="corpus", pair_sources=["conala"], pair_weight=" 0.2 "))
    assert typed.params.training.pair_weight == 0.2

    pairs = tmp_path / "pairs.tsv"
    form = values(method="corpus", pair_files=[str(pairs), {"path": str(pairs)}])
    with_file, uploads = recipe_from_form(form)
    assert uploads == {}  # pair files are not corpus uploads
    assert form_pair_uploads(form) == [pairs, pairs]  # accepted into the job's folder by `jobs.client.submit`
    assert with_file.params.training.pair_weight == PAIR_WEIGHT and with_file.params.pair_files == ()
    # another method has no pair term: its form's pair fields are not read
    vocabulary, _ = recipe_from_form(values(pair_sources=["conala"], pair_files=[str(pairs)], pair_weight="x"))
    assert type(vocabulary.params) is VocabularyParams and form_pair_uploads(values(pair_files=[str(pairs)])) == []

    with pytest.raises(DistilleryError, match="The pair loss weight must be a number, not 'heavy'"):
        recipe_from_form(values(method="corpus", pair_weight="heavy"))
    refused, _ = recipe_from_form(values(method="corpus", pair_sources=["conala"], pair_weight="1000"))
    with pytest.raises(DistilleryError, match="pair loss weights must be between 0 and 100"):
        refused.params.validate()
    weight_only, _ = recipe_from_form(values(method="corpus", pair_weight="0.3"))
    assert weight_only.params.training.pair_weight == 0.3 and weight_only.params.pair_sources == ()


@pytest.mark.parametrize("field, value, expected", [
    ("corpus_size", 2.5, "The corpus size must be a whole number"),
    ("corpus_size", None, "The corpus size is empty"),
    ("min_words", float("nan"), "minimum passage length must be a finite number"),
    # number fields send the text typed: a word is refused by the field's name, never dropped
    ("learning_rate", "fast", "The learning rate must be a number, not 'fast'"),
    ("epochs", "ten", "Epochs must be a number, not 'ten'"),
    ("pca_dims", "256 dims", "pca_dims must be a number"),
    ("sif_coefficient", "strong", "The SIF coefficient must be a number"),
    ("evaluation_rows", "all", "Rows per task must be a number"),
    ("corpus_size", "  ", "The corpus size is empty"),
])
def test_bad_numbers_name_their_field(field, value, expected):
    with pytest.raises(DistilleryError, match=expected):
        recipe_from_form(values(method="corpus", **{field: value}))


def test_numbers_arrive_as_text_and_empty_optional_fields_take_their_meaning():
    recipe, _ = recipe_from_form(values(method="corpus", corpus_size="1_000", learning_rate=" 5e-4 ", epochs="",
                                        pca_dims="", sif_coefficient="", evaluation_rows="0"))
    assert recipe.corpus_size == 1000 and recipe.params.training.learning_rate == 5e-4
    assert recipe.params.training.epochs == TrainParams().epochs  # empty: the method's default
    assert recipe.params.pca_dims is None and recipe.params.sif_coefficient is None  # empty: off
    assert recipe.evaluation_rows is None  # 0: every row


def test_presets_and_the_estimate_follow_the_pipeline_bench():
    quick, best = (recipe_from_form(values(method=p.method, corpus_size=str(p.corpus_size)))[0]
                   for p in PRESETS.values())
    assert (quick.method, best.method) == ("vocabulary", "corpus") and best.corpus_size > quick.corpus_size
    labels = [label for label, _ in preset_choices()]
    assert "≈" in labels[0] and "min" in labels[1] and labels[-1].startswith("Custom")
    assert "Estimated time: **about" in estimate(values(method="corpus", corpus_size="100000"))
    assert "mostly featurize" in estimate(values(method="corpus", corpus_size="100000"))
    assert "🧠 Peak memory: **about 1.9 GB** (the featurize stage)" in estimate(values(method="corpus",
                                                                                    corpus_size="100000"))
    assert estimate(values(corpus_size="lots")).startswith("⏱️ No estimate yet: The corpus size must be a number")
    assert duration(40) == "40 s" and duration(1200) == "20 min" and duration(7200) == "2 h 00 min"


def test_the_form_size_is_checked_and_whole_numbers_read():
    with pytest.raises(DistilleryError, match=f"{len(FORM_FIELDS)} were expected"):
        as_form([1, 2, 3])
    assert whole("7", "x") == 7 and whole(None, "x", allow_none=True) is None


def test_the_language_field_reaches_the_recipe_and_the_summary_names_a_missing_french_source():
    assert recipe_from_form(values())[0].language == "en"
    assert recipe_from_form(values(language="both"))[0].language == "both"
    with pytest.raises(DistilleryError, match="Unknown corpus language 'de'"):
        recipe_from_form(values(language="de"))
    sources = {d: ["local:x"] for d in DOMAINS}
    sources["academic"] = []
    summary = shares_summary({d: 20 for d in DOMAINS}, sources, {}, ("academic",), "fr")
    assert "**academic** has a share of 20.0% but no French source exists: it will come out short" in summary


def test_shares_summary_warns_about_a_domain_without_a_source():
    sources = {d: ["local:x"] for d in DOMAINS}
    sources["code"] = []
    summary = shares_summary({d: 20 for d in DOMAINS}, sources, {})
    assert "Normalised shares:" in summary and "**code** has a share of 20.0% but no source" in summary
    assert "⚠️" not in shares_summary({d: 20 for d in DOMAINS}, sources, {"code": 1})  # an upload serves it
    assert summary.count("⚠️") == 1
    assert shares_summary({d: 0 for d in DOMAINS}, sources, {}).startswith("⚠️ All domain proportions are zero")


def test_an_endpoint_form_gives_an_endpoint_teacher_and_never_a_key():
    from core.encoders.endpoint import EndpointSpec

    recipe, _ = recipe_from_form(values(method="corpus", endpoint_kind="ollama", endpoint_url=" http://h:11434 ",
                                        endpoint_model="all-minilm", api_key_env="OLLAMA_KEY",
                                        query_prefix="query: ", student_tokenizer=" /models/tok "))
    assert recipe.teacher == EndpointSpec(kind="ollama", url="http://h:11434", model="all-minilm",
                                          query_prefix="query: ", api_key_env="OLLAMA_KEY")
    assert recipe.params.student_tokenizer == "/models/tok"
    assert recipe.to_dict()["teacher"]["api_key_env"] == "OLLAMA_KEY"
    with pytest.raises(DistilleryError, match="never the key itself"):
        recipe_from_form(values(method="corpus", endpoint_kind="openai", endpoint_url="https://api.example.com",
                                endpoint_model="m", api_key_env="sk-live-123"))
    plain, _ = recipe_from_form(values(endpoint_url="http://ignored"))  # no kind: the weights teacher
    assert plain.teacher == "sentence-transformers/all-MiniLM-L6-v2"


def test_typed_keys_go_to_the_teacher_that_uses_them_and_never_into_the_recipe():
    from core.keyring import HUB_TOKEN

    endpoint, _ = recipe_from_form(values(method="corpus", endpoint_kind="openai", endpoint_url="http://h:8000",
                                          endpoint_model="m"))
    keys = typed_keys(endpoint.teacher, " sk-typed-1 ", "hf_token")
    assert keys == {endpoint.teacher.fingerprint(): "sk-typed-1"}  # the Hub token is not the endpoint's
    assert "sk-typed-1" not in str(endpoint.to_dict())
    hub, _ = recipe_from_form(values(teacher="google/embeddinggemma-300m"))
    assert typed_keys(hub.teacher, "sk-typed-1", " hf_token ") == {HUB_TOKEN: "hf_token"}
    assert typed_keys(hub.teacher, "", "") == {}
    named, _ = recipe_from_form(values(method="corpus", endpoint_kind="openai", endpoint_url="http://h:8000",
                                       endpoint_model="m", api_key_env="OPENAI_API_KEY"))
    with pytest.raises(DistilleryError, match="one way: type it .* or name the environment variable"):
        typed_keys(named.teacher, "sk-typed-1", None)


def test_typed_keys_follow_a_saved_models_teacher():
    from dataclasses import replace

    from core.encoders.endpoint import EndpointSpec
    from core.encoders.teacher import resolve_teacher
    from core.keyring import HUB_TOKEN

    local = resolve_teacher(None)  # the bundled teacher: a local folder, which never sends a Hub token
    assert typed_keys(local, "sk-1", "hf_1") == {}
    assert typed_keys(replace(local, is_local=False), "sk-1", " hf_1 ") == {HUB_TOKEN: "hf_1"}
    spec = EndpointSpec(kind="ollama", url="http://h:11434", model="all-minilm")
    endpoint = replace(local, endpoint=spec.to_dict())
    assert typed_keys(endpoint, " sk-1 ", "hf_1") == {spec.fingerprint(): "sk-1"}
    named = replace(local, endpoint=replace(spec, api_key_env="OLLAMA_KEY").to_dict())
    assert typed_keys(named, "sk-1") == {}  # the recipe named its variable: the worker reads that


def test_the_language_radio_refreshes_each_domains_sources():
    from core.corpus.sources import load_catalogue
    from ui.recipe_tab import _language_sources

    catalogue = load_catalogue(hub_available=False)
    french = dict(zip(DOMAINS, _language_sources(catalogue, "fr")))
    assert french["code"].value == ["local:fr-python-docs"] and french["academic"].value == []
    assert french["code"].choices[0] == ("local:fr-python-docs (French)", "local:fr-python-docs")
    assert len(french["code"].choices) == len(catalogue.by_domain["code"])  # English ones stay choices
    both = dict(zip(DOMAINS, _language_sources(catalogue, "both")))
    assert both["web"].value == catalogue.default_keys("web") + ["local:fr-news-treebanks"]
    english = dict(zip(DOMAINS, _language_sources(catalogue, "en")))
    assert english["web"].value == catalogue.default_keys("web") and english["web"].choices[0][1] == "local:wikitext"
