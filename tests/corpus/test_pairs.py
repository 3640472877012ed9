"""core.corpus.pairs: pair sources on the real local corpus (../shared/data/corpus), cleaning, uploads."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from core.corpus.pairs import PairSource, load_pair_sources, load_pairs, read_pair_upload
from core.errors import DistilleryError

LOCAL = {"wikisplit", "disfl-qa", "conala", "pubmedqa", "scitldr"}
HUB = {"all-nli", "quora-duplicates", "natural-questions"}


@pytest.fixture(scope="module")
def sources(corpus_dir) -> dict[str, PairSource]:
    return {s.name: s for s in load_pair_sources(hub_available=False)}


@pytest.fixture(scope="module")
def every_pair(sources):
    """Every pair of every local source, with the progress calls made while reading them."""
    calls: list[tuple[str, float, str]] = []
    pairs = load_pairs(list(sources.values()), progress=lambda stage, fraction, message="": calls.append(
        (stage, fraction, message)))
    return pairs, calls


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def test_local_sources_are_listed_and_hub_ones_are_not_when_offline(sources):
    assert set(sources) == LOCAL
    assert all(s.kind == "local" and s.path is not None and s.path.is_file() for s in sources.values())
    assert {s.name for s in load_pair_sources()} == LOCAL  # HF_HUB_OFFLINE=1: the Hub is not asked


def test_hub_sources_are_declared_but_not_loaded_offline():
    declared = {s.name: s for s in load_pair_sources(hub_available=True)}
    assert HUB | LOCAL == set(declared)
    nli = declared["all-nli"]
    assert (nli.kind, nli.hub_id, nli.config, nli.left, nli.right) == (
        "hub", "sentence-transformers/all-nli", "pair", ("anchor",), ("positive",))
    assert declared["natural-questions"].right == ("answer",)
    with pytest.raises(DistilleryError, match="out of reach"):
        load_pairs([declared["quora-duplicates"], declared["conala"]])


def test_no_french_pair_source_is_declared(corpus_dir):
    assert load_pair_sources(hub_available=False, language="fr") == []
    assert {s.name for s in load_pair_sources(hub_available=False, language="both")} == LOCAL


@pytest.mark.parametrize("name", sorted(LOCAL))
def test_each_local_source_yields_clean_pairs(sources, name):
    pairs = load_pairs([sources[name]], limit_per_source=300, max_words=64)
    assert len(pairs) == 300 and pairs.counts == {name: 300}
    for left, right in zip(pairs.left, pairs.right, strict=True):
        assert left and right and left.casefold() != right.casefold()
        assert len(left.split()) <= 64 and len(right.split()) <= 64
        assert left == left.strip() and "  " not in left + right
    assert len(set(zip(pairs.left, pairs.right, strict=True))) == len(pairs)


def test_every_local_pair_after_cleaning(every_pair):
    pairs, calls = every_pair
    assert set(pairs.counts) == LOCAL and sum(pairs.counts.values()) == len(pairs)
    # Most records make a pair; the few dropped are repeats, unrewritten intents or identical sides.
    assert pairs.counts["wikisplit"] > 14_900 and pairs.counts["disfl-qa"] > 11_700
    assert pairs.counts["pubmedqa"] == 1000 and pairs.counts["scitldr"] > 3_200
    assert 2_500 < pairs.counts["conala"] < 2_878
    assert len(set(zip(pairs.left, pairs.right, strict=True))) == len(pairs)
    assert max(len(t.split()) for t in pairs.left + pairs.right) <= 128
    assert {c[0] for c in calls} == {"pairs"} and len(calls) == len(LOCAL) + 1
    fractions = [c[1] for c in calls]
    assert fractions == sorted(fractions) and fractions[0] == 0.0 and fractions[-1] == 1.0


def test_wikisplit_sentences_are_joined_with_a_space(sources):
    pairs = load_pairs([sources["wikisplit"]])
    assert not any("<::::>" in text for text in pairs.right + pairs.left)
    assert sum(" . " in text for text in pairs.right) > 0.9 * len(pairs)  # the sentences, one after the other


def test_scitldr_joins_the_abstract_sentences(sources):
    pairs = load_pairs([sources["scitldr"]], limit_per_source=50, max_words=1000)
    assert all(len(right.split()) > len(left.split()) for left, right in zip(pairs.left, pairs.right, strict=True))


def test_limit_and_seed_give_a_reproducible_sample(sources):
    conala = sources["conala"]
    first = load_pairs([conala], limit_per_source=100, seed=3)
    again = load_pairs([conala], limit_per_source=100, seed=3)
    other = load_pairs([conala], limit_per_source=100, seed=4)
    assert len(first) == 100 and (first.left, first.right) == (again.left, again.right)
    assert first.left != other.left
    whole = load_pairs([conala])
    assert set(zip(first.left, first.right, strict=True)) <= set(zip(whole.left, whole.right, strict=True))


def test_cleaning_and_dedupe(tmp_path):
    long = " ".join(f"word{i}" for i in range(20))
    path = write_jsonl(tmp_path / "pairs.jsonl", [
        {"a": "How  do I\tsort a list?", "b": "Sort a list in Python."},
        {"a": "How do I sort a list?", "b": "Sort a list in Python."},  # the same pair once normalised
        {"a": "Same text.", "b": "same TEXT."},  # identical sides, case aside
        {"a": "", "b": "An empty anchor."},
        {"a": "A missing positive.", "b": None},
        {"a": "A long positive.", "b": long},
        {"a": "Sort a list in Python.", "b": "How do I sort a list?"},  # the reverse pair is another pair
    ])
    source = PairSource("mine", "local", ("a",), ("b",), path=path)
    pairs = load_pairs([source], max_words=8)
    assert sorted(zip(pairs.left, pairs.right, strict=True)) == [
        ("A long positive.", " ".join(long.split()[:8])),  # cut, not dropped
        ("How do I sort a list?", "Sort a list in Python."),
        ("Sort a list in Python.", "How do I sort a list?"),
    ]
    assert pairs.counts == {"mine": 3}
    twice = load_pairs([source, PairSource("again", "local", ("a",), ("b",), path=path)], max_words=8)
    assert twice.counts == {"mine": 3, "again": 0} and len(twice) == 3


def test_a_missing_field_is_named(tmp_path):
    path = write_jsonl(tmp_path / "pairs.jsonl", [{"a": "One text.", "b": "Another text."}])
    with pytest.raises(DistilleryError, match="no field 'c'"):
        load_pairs([PairSource("mine", "local", ("a",), ("c",), path=path)])


def test_pairs_file_errors_are_clear(tmp_path):
    bad = tmp_path / "pairs.yaml"
    bad.write_text("local:\n  - {name: x, path: a.jsonl, left: [a]}\n")
    with pytest.raises(DistilleryError, match="'x' needs right"):
        load_pair_sources(bad, hub_available=False)
    bad.write_text("hub:\n  - {name: x, id: a/b, left: [a], right: [b], language: de}\n")
    with pytest.raises(DistilleryError, match="unknown language 'de'"):
        load_pair_sources(bad, hub_available=True)
    bad.write_text("local:\n  - {name: gone, path: nowhere/missing.jsonl.gz, left: [a], right: [b]}\n")
    assert load_pair_sources(bad, hub_available=False) == []


def test_tsv_upload_with_a_header(tmp_path):
    path = tmp_path / "my pairs.tsv"
    path.write_text("anchor\tpositive\nA cat sits on the mat.\tThere is a cat on the mat.\n"
                    "\"Quoted\" text stays.\tIt keeps \"its\" quotes.\textra column\n"
                    "only one column\n", encoding="utf-8")
    pairs = read_pair_upload(path)
    assert pairs.left == ["A cat sits on the mat.", "\"Quoted\" text stays."]
    assert pairs.right == ["There is a cat on the mat.", "It keeps \"its\" quotes."]
    assert pairs.counts == {"my pairs.tsv": 2}


def test_csv_upload_without_a_header_in_windows_1252(tmp_path):
    path = tmp_path / "pairs.csv"
    path.write_bytes("Caf\u00e9 au lait,\"A coffee, with milk\"\nTwo euros,Deux \u20ac\n".encode("cp1252"))
    pairs = read_pair_upload(path)
    assert pairs.left == ["Caf\u00e9 au lait", "Two euros"]
    assert pairs.right == ["A coffee, with milk", "Deux \u20ac"]


def test_jsonl_upload_with_anchor_and_positive(tmp_path):
    path = tmp_path / "pairs.jsonl.gz"
    records = [{"anchor": f"Question number {i}?", "positive": f"The answer to number {i}.", "negative": "x"}
               for i in range(5)]
    records += [{"sentence1": "First sentence.", "sentence2": ["Second", "sentence."]}, {"other": "ignored"}]
    path.write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in records).encode()))
    pairs = read_pair_upload(path)
    assert len(pairs) == 6 and pairs.left[0] == "Question number 0?"
    assert pairs.right[-1] == "Second sentence."


@pytest.mark.parametrize(("name", "content", "message"), [
    ("empty.tsv", b"", "'empty.tsv' is empty"),
    ("blob.csv", bytes(range(256)) * 64, "'blob.csv' is a binary file"),
    ("column.csv", b"text\nfirst line\nsecond line\n", "'column.csv' holds no usable pair: expected two columns"),
    ("same.tsv", b"Same text.\tsame text.\n", "'same.tsv' holds no usable pair"),
    ("fields.jsonl", b'{"text": "a", "label": 1}\n', "'fields.jsonl' holds no usable pair: .*anchor and positive"),
    ("broken.jsonl", b'{"anchor": "a", "positive": \n', "Line 1 of the upload 'broken.jsonl' is not valid JSON"),
    ("notes.txt", b"one text per line\n", "'notes.txt' is not a pair file; upload pairs as .csv, .tsv or .jsonl"),
])
def test_bad_uploads_are_refused_clearly(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DistilleryError, match=message) as caught:
        read_pair_upload(path)
    assert "second line" not in str(caught.value)  # the file's text is never echoed


def test_oversized_and_gzipped_tsv_uploads(tmp_path, monkeypatch):
    from core.corpus import uploads

    path = tmp_path / "pairs.tsv.gz"
    path.write_bytes(gzip.compress(b"left\tright\nA short question?\tA short answer.\n"))
    assert read_pair_upload(path).left == ["A short question?"]
    monkeypatch.setattr(uploads, "MAX_UPLOAD_MB", 0)
    with pytest.raises(DistilleryError, match="'pairs.tsv.gz' is .* uploads are limited"):
        read_pair_upload(path)
