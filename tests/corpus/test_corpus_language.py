"""The corpus plan's language: English, French (../shared/data/fr/corpus) or both, on the real files.

French has no academic source: a French build reports it as a shortfall and fills the other domains
from the French file. "both" splits each domain half and half and tops up one language from the other.
"""

from __future__ import annotations

import gzip
import json
import re
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest

from core.corpus.build import build_corpus
from core.corpus.cleaning import CleaningOptions, normalise_text
from core.corpus.plan import DEFAULT_SHARES, DOMAINS, CorpusPlan, split_count
from core.corpus.sources import SourceSpec, iter_documents, load_catalogue
from core.errors import DistilleryError
from core.languages import check_language
from core.recipe import Recipe

CLEANING = CleaningOptions(min_words=3, max_words=64)
# The French file's domains, by the plan's domain that each French source serves.
FRENCH_DOMAIN = {"web": "web_news", "conversational": "conversational", "code": "technical_code",
                 "domain-specific": "legal"}
FRENCH_WORDS = re.compile(r"\b(le|la|les|des|du|une|est|et|pour|dans|qui|vous|à)\b", re.IGNORECASE)


@pytest.fixture(scope="module")
def catalogue():
    return load_catalogue(hub_available=False)


@pytest.fixture(scope="module")
def french_file(corpus_dir) -> Path:
    path = corpus_dir.parent / "fr" / "corpus" / "fr_corpus.jsonl.gz"
    assert path.is_file(), f"the French corpus is missing at {path}"
    return path


@pytest.fixture(scope="module")
def french_texts(french_file) -> dict[str, str]:
    """All French passages of each of the file's domains, normalised as cleaning does, one per line."""
    by_domain: dict[str, list[str]] = defaultdict(list)
    with gzip.open(french_file, "rt", encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            by_domain[row["domain"]].append(normalise_text(row["text"]))
    return {d: "\n".join(texts) for d, texts in by_domain.items()}


def test_each_language_plans_its_own_sources_and_the_same_counts(catalogue):
    counts = {}
    for language in ("en", "fr", "both"):
        plan = Recipe(language=language, corpus_size=1000).corpus_plan(catalogue)
        counts[language] = plan.validate()
        languages = {d: {s.language for s in plan.sources[d]} for d in DOMAINS}
        if language == "en":
            assert all(languages[d] == {"en"} for d in DOMAINS) and plan.unserved == ()
        elif language == "fr":
            assert languages["academic"] == set() and plan.unserved == ("academic",)
            assert all(languages[d] == {"fr"} for d in FRENCH_DOMAIN)
            assert [s.name for s in plan.sources["code"]] == ["fr-python-docs"]
            assert dict(plan.sources["domain-specific"][0].where) == {"domain": "legal"}
        else:
            assert languages["academic"] == {"en"} and plan.unserved == ()
            assert all(languages[d] == {"en", "fr"} for d in FRENCH_DOMAIN)
    assert counts["en"] == counts["fr"] == counts["both"] == {
        "academic": 300, "web": 300, "conversational": 200, "code": 100, "domain-specific": 100}
    assert split_count(101, 2) == [51, 50] and split_count(10, 3) == [4, 3, 3]


def test_a_where_filter_keeps_one_domain_of_the_french_file(catalogue, french_file):
    spec = catalogue.get("local:fr-legal")
    assert spec.language == "fr" and Path(spec.location) == french_file.resolve()
    documents = list(iter_documents(spec))
    assert len(documents) == 3_176  # the README's count of legal passages, and nothing else
    assert sum("Code civil" in d for d in documents) > 2_000
    again = SourceSpec.from_dict(json.loads(json.dumps(spec.to_dict())))  # as a manifest keeps it
    assert again == spec
    wrong = SourceSpec("bad", "web", "local", str(french_file), ("text",), language="fr", where=(("genre", "x"),))
    with pytest.raises(DistilleryError, match="filters on field.*genre.*its fields are: id, text, domain"):
        next(iter_documents(wrong))


def test_a_french_build_reports_academic_short_and_fills_the_rest_from_the_french_file(
        catalogue, french_texts, tmp_path):
    recipe = Recipe(language="fr", corpus_size=600, cleaning=CLEANING)  # default shares: academic 30%
    corpus = build_corpus(recipe.corpus_plan(catalogue), tmp_path / "fr")
    manifest = corpus.manifest
    assert manifest["language"] == "fr"
    [short] = manifest["shortfalls"]
    assert short["domain"] == "academic" and short["requested"] == 180 and short["realised"] == 0
    assert "no French source serves it" in short["message"]
    for domain in FRENCH_DOMAIN:
        entry = manifest["domains"][domain]
        assert entry["realised"] == entry["requested"] > 0 and entry["languages"] == {"fr": entry["requested"]}
    rows = list(corpus.rows())
    assert len(rows) == manifest["size"] == 420
    assert {r["source"] for r in rows} == {"fr-news-treebanks", "fr-conversational", "fr-python-docs", "fr-legal"}
    for row in rows:  # every passage comes from the French file's matching domain
        assert row["text"] in french_texts[FRENCH_DOMAIN[row["domain"]]], row
    assert sum(bool(FRENCH_WORDS.search(r["text"])) for r in rows) > 0.8 * len(rows)


def test_both_languages_split_each_domain_half_and_half(catalogue, tmp_path):
    recipe = Recipe(language="both", corpus_size=601, cleaning=CLEANING)
    corpus = build_corpus(recipe.corpus_plan(catalogue), tmp_path / "both")
    manifest = corpus.manifest
    assert manifest["size"] == 601 and manifest["shortfalls"] == [] and manifest["language"] == "both"
    for domain in FRENCH_DOMAIN:
        requested = manifest["domains"][domain]["requested"]
        assert manifest["domains"][domain]["languages"] == dict(zip(("en", "fr"), split_count(requested, 2)))
    assert manifest["domains"]["academic"]["languages"] == {"en": 181}  # no French: all English
    sources = Counter(r["source"] for r in corpus.rows())
    assert sum(n for s, n in sources.items() if s.startswith("fr-")) == 90 + 60 + 30 + 30


def test_both_tops_up_a_short_language_from_the_other(catalogue, tmp_path):
    small = tmp_path / "petit.jsonl"
    small.write_text("".join(json.dumps({"text": f"Voici la phrase française numéro {i} pour le test."}) + "\n"
                             for i in range(10)))
    french = SourceSpec("petit", "web", "local", str(small), language="fr")
    plan = CorpusPlan({"web": 1}, 60, {"web": [catalogue.get("local:wikitext"), french]}, CLEANING, 0, "both")
    manifest = build_corpus(plan, tmp_path / "c").manifest
    assert manifest["domains"]["web"]["languages"] == {"en": 50, "fr": 10}  # 30 asked of French, 10 it had
    assert manifest["size"] == 60 and manifest["shortfalls"] == []


def test_an_unknown_language_is_refused_with_the_known_ones(catalogue):
    for bad in ("de", "FR", "", None, "english"):
        with pytest.raises(DistilleryError, match=r"Unknown corpus language .*'en' \(English\), 'fr' \(French\), "
                                                  r"'both'"):
            Recipe(language=bad)
    with pytest.raises(DistilleryError, match="Unknown corpus language 'klingon'"):
        Recipe.from_dict({"language": "klingon"})
    plan = CorpusPlan(dict(DEFAULT_SHARES), 10, {}, CLEANING, 0, "es")
    with pytest.raises(DistilleryError, match="Unknown corpus language 'es'"):
        plan.validate()
    assert check_language("both") == "both"


def test_an_old_recipe_without_a_language_loads_as_english(catalogue):
    old = Recipe(corpus_size=500).to_dict()
    del old["language"]
    recipe = Recipe.from_dict(json.loads(json.dumps(old)))
    assert recipe.language == "en"
    plan = recipe.corpus_plan(catalogue)
    assert plan.language == "en" and plan.unserved == ()
    assert {d: [s.key for s in plan.sources[d]] for d in DOMAINS} == {d: catalogue.default_keys(d) for d in DOMAINS}
    assert all(s.language == "en" for specs in plan.sources.values() for s in specs)


def test_a_french_plan_with_only_academic_is_refused_clearly(catalogue):
    recipe = Recipe(language="fr", shares={"academic": 100.0})
    with pytest.raises(DistilleryError, match="No French source serves any domain .*academic"):
        recipe.corpus_plan(catalogue).validate()
    chosen = Recipe(language="fr", sources={d: [] for d in DOMAINS}).corpus_plan(catalogue)
    with pytest.raises(DistilleryError, match="no source: web, conversational, code, domain-specific"):
        chosen.validate()  # French sources exist for these: leaving them all out is the user's mistake


def test_the_command_line_takes_a_language(monkeypatch, tmp_path, capsys):
    import core.__main__ as cli

    seen = []

    def stop(recipe, *args, **kwargs):
        seen.append(recipe)
        raise DistilleryError("stopped by the test")

    monkeypatch.setattr(cli, "validate_recipe", stop)
    assert cli.main(["--language", "fr"]) == 2 and seen[-1].language == "fr"
    path = tmp_path / "old.json"
    path.write_text(json.dumps({"corpus_size": 100}))
    assert cli.main([str(path)]) == 2 and seen[-1].language == "en"
    path.write_text(json.dumps({"language": "de"}))
    assert cli.main([str(path)]) == 2 and "Unknown corpus language 'de'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["--language", "de"])


def test_mixed_script_and_emoji_text_is_kept_and_embeds(tmp_path):
    import helpers

    texts = ["Le café ☕ de Zürich est très bon 😀 aujourd'hui, vraiment.",
             "Москва и Paris: deux villes 🏙️ très différentes, non?",
             "東京 Tokyo est une ville immense 🗼 avec beaucoup de monde.",
             "مرحبا bonjour hello 👋🏽 — trois salutations en une ligne.",
             "Ελληνικά και français mélangés 🇫🇷🇬🇷 dans la même phrase ici.",
             "emoji only line with words 🎉🎉🎉 👨‍👩‍👧‍👦 ✅ ❤️ 🤖 done",
             "En persan, می‌خواهم veut dire je veux, avec un ZWNJ."]
    path = tmp_path / "mixed.jsonl"
    path.write_text("".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts), encoding="utf-8")
    spec = SourceSpec("mixed", "web", "local", str(path), language="fr")
    corpus = build_corpus(CorpusPlan({"web": 1}, len(texts), {"web": [spec]}, CLEANING, 0, "fr"), tmp_path / "c")
    kept = corpus.texts()
    assert corpus.manifest["shortfalls"] == [] and len(kept) == len(texts)
    for marker in ("😀", "Москва", "東京", "مرحبا", "🇫🇷", "👨‍👩‍👧‍👦", "می‌خواهم"):  # joiners kept
        assert any(marker in t for t in kept), marker
    model = helpers.tiny_static_model(dim=8)
    vectors = model.encode(kept, use_multiprocessing=False)
    assert vectors.shape == (len(texts), 8) and np.isfinite(vectors).all()
    assert (np.linalg.norm(vectors, axis=1) > 0.5).all()  # every text kept some known token


def test_a_french_or_cross_lingual_students_card_names_its_languages():
    import helpers
    import yaml

    from core.artifact.card import render_card

    english = yaml.safe_load(render_card(helpers.tiny_record("en-card")).split("---")[1])
    assert "language" not in english  # English cards as before
    recipe = helpers.small_recipe("both-card", language="both").to_dict()
    corpus = {"size": 3, "requested_size": 3, "content_sha256": "0" * 64, "shortfalls": [], "language": "both",
              "domains": {"web": {"requested_share": 1.0, "realised_share": 1.0, "requested": 3, "realised": 3,
                                  "sources": [{"name": "wikitext"}, {"name": "fr-news-treebanks"}],
                                  "languages": {"en": 2, "fr": 1}}}}
    card = render_card(helpers.tiny_record("both-card", recipe=recipe, corpus=corpus))
    assert yaml.safe_load(card.split("---")[1])["language"] == ["en", "fr"]
    assert "| web | 100.0% | 100.0% | 3 (2 en, 1 fr) | wikitext, fr-news-treebanks |" in card


def test_the_preview_shows_french_samples_per_domain(catalogue, french_texts):
    from core.corpus.build import preview_domains

    rows = preview_domains(catalogue, {d: catalogue.default_keys(d, "fr") for d in DOMAINS}, {}, n=3)
    assert Counter(r["domain"] for r in rows) == {d: 3 for d in FRENCH_DOMAIN}  # academic: nothing to show
    for row in rows:
        assert row["source"].startswith("fr-") and row["text"] in french_texts[FRENCH_DOMAIN[row["domain"]]]
