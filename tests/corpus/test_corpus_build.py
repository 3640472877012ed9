"""core.corpus.sources and core.corpus.build on the real local corpus (../shared/data/corpus)."""

from __future__ import annotations

import itertools
import json
from collections import Counter
from pathlib import Path

import pytest

from core.corpus.build import CORPUS_FILE, MANIFEST_FILE, Corpus, build_corpus
from core.corpus.cleaning import CleaningOptions
from core.corpus.plan import DEFAULT_SHARES, DOMAINS, CorpusPlan
from core.corpus.sources import SourceSpec, iter_documents, load_catalogue
from core.errors import DistilleryError

CLEANING = CleaningOptions(min_words=3, max_words=64)


@pytest.fixture(scope="module")
def catalogue():
    return load_catalogue(hub_available=False)


def default_sources(catalogue) -> dict[str, list[SourceSpec]]:
    return {d: [catalogue.get(k) for k in catalogue.default_keys(d)] for d in DOMAINS}


@pytest.fixture(scope="module")
def builds(catalogue, tmp_path_factory):
    """The default plan at 2,000 texts, built twice with seed 0 and once with seed 1."""
    root = tmp_path_factory.mktemp("corpora")
    out = {}
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        plan = CorpusPlan(dict(DEFAULT_SHARES), 2000, default_sources(catalogue), CLEANING, seed)
        out[name] = build_corpus(plan, root / name)
    return out


# --- the catalogue -----------------------------------------------------------------------------


def test_catalogue_lists_local_sources_for_every_domain(catalogue, corpus_dir):
    assert catalogue.hub_available is False
    french_dir = corpus_dir.parent / "fr" / "corpus"  # the French corpus, beside the English one
    for domain in DOMAINS:
        local = [s for s in catalogue.by_domain[domain] if s.kind == "local"]
        assert [s for s in local if s.language == "en"], f"no local English source for {domain}"
        for spec in local:
            assert Path(spec.location).is_file()
            folder = corpus_dir if spec.language == "en" else french_dir
            assert Path(spec.location).is_relative_to(folder.resolve()), spec
    assert not any(s.kind == "hub" for specs in catalogue.by_domain.values() for s in specs)


def test_catalogue_has_the_builtin_docstring_source(catalogue):
    spec = catalogue.get("builtin:python-docstrings")
    assert spec.domain == "code" and spec.kind == "builtin"


def test_default_keys_prefer_local_files(catalogue):
    for domain in DOMAINS:
        keys = catalogue.default_keys(domain)
        assert keys and all(k.startswith("local:") for k in keys)
    assert "builtin:python-docstrings" not in catalogue.default_keys("code")
    assert "local:gdpr" in catalogue.default_keys("domain-specific")


def test_unknown_source_key_raises(catalogue):
    with pytest.raises(DistilleryError, match="local:nope"):
        catalogue.get("local:nope")


def test_builtin_docstring_source_yields_text(catalogue):
    docs = list(itertools.islice(iter_documents(catalogue.get("builtin:python-docstrings")), 20))
    assert len(docs) == 20
    assert all(isinstance(d, str) and d.strip() for d in docs)


# --- building the default plan -----------------------------------------------------------------


def test_default_plan_gives_exact_per_domain_counts(builds):
    corpus = builds["a"]
    expected = {"academic": 600, "web": 600, "conversational": 400, "code": 200, "domain-specific": 200}
    rows = list(corpus.rows())
    assert len(rows) == 2000
    assert Counter(r["domain"] for r in rows) == expected
    manifest = corpus.manifest
    assert manifest["size"] == manifest["requested_size"] == 2000
    assert manifest["shortfalls"] == []
    for domain, count in expected.items():
        entry = manifest["domains"][domain]
        assert entry["requested"] == entry["realised"] == count
        assert entry["requested_share"] == pytest.approx(DEFAULT_SHARES[domain] / 100)
        assert entry["realised_share"] == pytest.approx(count / 2000)
        assert entry["sources"], domain


def test_manifest_per_source_counts_match_the_rows(builds):
    corpus = builds["a"]
    counted = Counter(f"{r['domain']}/{r['source']}" for r in corpus.rows())
    assert corpus.manifest["per_source"] == dict(counted)
    # round-robin: both academic sources contribute
    assert counted["academic/scitldr"] > 0 and counted["academic/pubmedqa"] > 0


def test_corpus_has_no_duplicates_and_bounded_passages(builds):
    texts = builds["a"].texts()
    assert len(set(texts)) == len(texts)
    lengths = [len(t.split()) for t in texts]
    assert min(lengths) >= CLEANING.min_words
    assert max(lengths) <= CLEANING.max_words
    assert builds["a"].manifest["words"] == sum(lengths)


def test_content_hash_is_stable_for_a_seed_and_changes_with_it(builds):
    a, b, c = (builds[k].manifest["content_sha256"] for k in "abc")
    assert a == b
    assert a != c
    assert builds["a"].texts() == builds["b"].texts()


def test_corpus_is_saved_and_reloads(builds):
    corpus = builds["a"]
    assert (corpus.folder / CORPUS_FILE).is_file()
    assert json.loads((corpus.folder / MANIFEST_FILE).read_text()) == corpus.manifest
    reloaded = Corpus.load(corpus.folder)
    assert reloaded.manifest == corpus.manifest
    assert reloaded.texts() == corpus.texts()
    assert not list(corpus.folder.glob(".*.tmp"))


# --- shortfalls and impossible plans -----------------------------------------------------------


def test_tiny_source_gives_a_shortfall_and_does_not_enlarge_other_domains(catalogue, tmp_path):
    sources = {"academic": [catalogue.get("local:scitldr")], "domain-specific": [catalogue.get("local:gdpr")]}
    plan = CorpusPlan({"academic": 20, "domain-specific": 80}, 1000, sources, CLEANING, 0)
    corpus = build_corpus(plan, tmp_path / "short")
    manifest = corpus.manifest
    domains = Counter(r["domain"] for r in corpus.rows())
    assert domains["academic"] == 200  # exactly its own count, not enlarged
    assert 0 < domains["domain-specific"] < 800
    assert manifest["size"] == 200 + domains["domain-specific"] < 1000
    assert manifest["requested_size"] == 1000
    [shortfall] = manifest["shortfalls"]
    assert shortfall["domain"] == "domain-specific"
    assert shortfall["requested"] == 800
    assert shortfall["realised"] == domains["domain-specific"]
    assert "domain-specific" in shortfall["message"] and "not enlarged" in shortfall["message"]
    assert manifest["domains"]["domain-specific"]["realised_share"] < manifest["domains"]["domain-specific"]["requested_share"]


def test_domain_with_a_share_but_no_source_raises_naming_it(catalogue, tmp_path):
    sources = default_sources(catalogue)
    del sources["code"]
    plan = CorpusPlan(dict(DEFAULT_SHARES), 100, sources, CLEANING, 0)
    with pytest.raises(DistilleryError, match="code"):
        build_corpus(plan, tmp_path / "x")
    assert not (tmp_path / "x" / CORPUS_FILE).exists()


def test_domain_with_zero_share_needs_no_source(catalogue, tmp_path):
    plan = CorpusPlan({"web": 1}, 50, {"web": [catalogue.get("local:wikitext")]}, CLEANING, 0)
    corpus = build_corpus(plan, tmp_path / "web")
    assert corpus.manifest["size"] == 50
    assert {r["domain"] for r in corpus.rows()} == {"web"}


def test_empty_source_gives_a_clear_error(tmp_path):
    empty = tmp_path / "blank.jsonl"
    empty.write_text(json.dumps({"text": "a"}) + "\n")
    spec = SourceSpec("blank", "web", "local", str(empty))
    plan = CorpusPlan({"web": 1}, 10, {"web": [spec]}, CleaningOptions(min_words=3), 0)
    with pytest.raises(DistilleryError, match="empty"):
        build_corpus(plan, tmp_path / "out")


# --- the Hub path, for real, through a local dataset folder ------------------------------------


@pytest.fixture()
def dataset_folder(tmp_path) -> Path:
    folder = tmp_path / "my-dataset"
    folder.mkdir()
    with (folder / "train.jsonl").open("w") as handle:
        for i in range(40):
            handle.write(json.dumps({"body": f"Hub document number {i} talks about topic {i % 7}.", "id": i}) + "\n")
    return folder


def test_hub_kind_streams_a_dataset(dataset_folder):
    spec = SourceSpec("folder", "web", "hub", str(dataset_folder), ("body",))
    docs = list(iter_documents(spec, seed=3))
    assert len(docs) == 40
    assert set(docs) == {f"Hub document number {i} talks about topic {i % 7}." for i in range(40)}
    assert docs != sorted(docs, key=lambda d: int(d.split()[3]))  # shuffled by the seed
    assert list(iter_documents(spec, seed=3)) == docs


def test_hub_kind_feeds_build_corpus(dataset_folder, tmp_path):
    spec = SourceSpec("folder", "web", "hub", str(dataset_folder), ("body",))
    corpus = build_corpus(CorpusPlan({"web": 1}, 25, {"web": [spec]}, CLEANING, 0), tmp_path / "c")
    assert corpus.manifest["per_source"] == {"web/folder": 25}


def test_hub_kind_missing_field_names_the_available_fields(dataset_folder):
    spec = SourceSpec("folder", "web", "hub", str(dataset_folder), ("text",))
    with pytest.raises(DistilleryError) as info:
        next(iter_documents(spec))
    message = str(info.value)
    assert "'text'" in message and "body" in message and "id" in message


def test_local_missing_field_names_the_available_fields(catalogue):
    gdpr = catalogue.get("local:gdpr")
    spec = SourceSpec("gdpr", "domain-specific", "local", gdpr.location, ("nope",))
    with pytest.raises(DistilleryError, match=r"no field 'nope'.*text"):
        next(iter_documents(spec))


def test_several_fields_are_joined_with_list_values(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text(json.dumps({"title": "A title", "sentences": ["First one.", "Second one."]}) + "\n")
    spec = SourceSpec("rows", "academic", "local", str(path), ("title", "sentences"))
    assert list(iter_documents(spec)) == ["A title. First one. Second one."]
