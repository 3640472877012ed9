"""core.corpus.plan (shares → exact counts) and core.corpus.cleaning (normalisation, passage splitting, filters)."""

from __future__ import annotations

import math

import pytest

from core.corpus.cleaning import CleaningOptions, clean_document, normalise_text, split_passages
from core.corpus.plan import DEFAULT_SHARES, DOMAINS, domain_counts, normalise_shares
from core.errors import DistilleryError

# --- core.corpus.plan --------------------------------------------------------------------------


def test_normalise_shares_sums_to_one_and_fills_missing_domains():
    shares = normalise_shares({"academic": 3, "web": 1})
    assert set(shares) == set(DOMAINS)
    assert math.isclose(sum(shares.values()), 1.0)
    assert shares["academic"] == pytest.approx(0.75)
    assert shares["code"] == 0.0


@pytest.mark.parametrize(
    "shares, words",
    [
        ({d: 0 for d in DOMAINS}, "zero"),
        ({}, "zero"),
        ({"academic": 10, "web": -1}, "negative"),
        ({"academic": float("nan")}, "not a number"),
        ({"academic": float("inf")}, "not a number"),
        ({"academic": 10, "poetry": 5}, "Unknown domain"),
    ],
)
def test_normalise_shares_refuses_bad_shares(shares, words):
    with pytest.raises(DistilleryError, match=words):
        normalise_shares(shares)


def test_unknown_domain_message_names_it_and_the_known_ones():
    with pytest.raises(DistilleryError) as info:
        normalise_shares({"poetry": 1})
    assert "poetry" in str(info.value)
    assert all(d in str(info.value) for d in DOMAINS)


def test_negative_share_message_names_the_domain():
    with pytest.raises(DistilleryError, match="'web'"):
        normalise_shares({"academic": 1, "web": -0.5})


@pytest.mark.parametrize(
    "shares, size",
    [
        ({"academic": 1, "web": 1, "conversational": 1}, 10),
        ({"academic": 1, "web": 1, "conversational": 1}, 1),
        ({"academic": 1, "web": 1, "conversational": 1}, 2),
        ({d: 1 for d in DOMAINS}, 3),
        ({d: 1 for d in DOMAINS}, 7),
        (DEFAULT_SHARES, 1),
        (DEFAULT_SHARES, 999),
        (DEFAULT_SHARES, 20_001),
        ({"academic": 0.1, "web": 0.2, "code": 0.7}, 13),
        ({"academic": 1e-9, "web": 1.0}, 5),
        ({"academic": 33.3, "web": 33.3, "conversational": 33.4}, 100_003),
    ],
)
def test_domain_counts_sum_exactly_to_the_size(shares, size):
    counts = domain_counts(shares, size)
    assert set(counts) == set(DOMAINS)
    assert sum(counts.values()) == size
    assert all(isinstance(c, int) and c >= 0 for c in counts.values())
    # largest remainder: every count is within 1 of its exact share
    fractions = normalise_shares(shares)
    for domain in DOMAINS:
        assert abs(counts[domain] - fractions[domain] * size) < 1
        if fractions[domain] == 0:
            assert counts[domain] == 0


def test_equal_thirds_of_ten():
    counts = domain_counts({"academic": 1, "web": 1, "conversational": 1}, 10)
    assert sorted(counts[d] for d in ("academic", "web", "conversational")) == [3, 3, 4]
    assert counts["code"] == counts["domain-specific"] == 0


def test_default_plan_at_20000():
    assert domain_counts(DEFAULT_SHARES, 20_000) == {
        "academic": 6000, "web": 6000, "conversational": 4000, "code": 2000, "domain-specific": 2000,
    }


@pytest.mark.parametrize("size", [0, -5])
def test_corpus_size_below_one_raises(size):
    with pytest.raises(DistilleryError, match="at least 1"):
        domain_counts(DEFAULT_SHARES, size)


@pytest.mark.parametrize("size", [2.5, True, "100"])
def test_corpus_size_must_be_a_whole_number(size):
    with pytest.raises(DistilleryError, match="whole number"):
        domain_counts(DEFAULT_SHARES, size)


def test_corpus_size_is_capped():
    with pytest.raises(DistilleryError, match="capped"):
        domain_counts(DEFAULT_SHARES, 10**9)


# --- core.corpus.cleaning ----------------------------------------------------------------------


def test_normalise_text_applies_nfkc():
    # full-width letters, the "ﬁ" ligature and a superscript two are NFKC-folded
    assert normalise_text("Ｈｅｌｌｏ ﬁne x²") == "Hello fine x2"


def test_normalise_text_removes_control_characters_and_collapses_whitespace():
    raw = "  a\x00b\tc\r\n\n d\u200be\ufeff   f\x7f  "
    out = normalise_text(raw)
    assert out == "a b c d e f"
    assert not any(ord(ch) < 32 for ch in out)


def test_normalise_text_of_only_whitespace_is_empty():
    assert normalise_text(" \t\n\u3000 ") == ""


def test_split_passages_keeps_sentences_whole():
    sentences = [f"Sentence number {i} has exactly seven words." for i in range(10)]
    passages = split_passages(" ".join(sentences), max_words=20)
    assert len(passages) == 5  # two 7-word sentences fit in 20 words, three do not
    for passage in passages:
        assert len(passage.split()) <= 20
        assert passage.startswith("Sentence number") and passage.endswith("words.")
    # nothing is lost or reordered
    assert " ".join(passages) == " ".join(sentences)


def test_split_passages_short_text_is_one_passage():
    assert split_passages("One. Two words. Three more words.", max_words=50) == ["One. Two words. Three more words."]


def test_an_over_long_sentence_is_cut_into_windows():
    long_sentence = "Word " + " ".join(f"w{i}" for i in range(24)) + "."
    text = f"Short first sentence. {long_sentence} Short last sentence."
    passages = split_passages(text, max_words=10)
    assert all(len(p.split()) <= 10 for p in passages)
    assert passages[0] == "Short first sentence."
    assert passages[-1] == "Short last sentence."
    assert " ".join(passages[1:-1]).split() == long_sentence.split()
    assert len(passages) == 2 + 3  # 25 words in windows of 10


def test_clean_document_filters_short_passages_and_normalises():
    options = CleaningOptions(min_words=4, max_words=10)
    assert clean_document("Too short.", options) == []
    assert clean_document("   \x00  ", options) == []
    out = clean_document("Ｔｈｉｓ\tpassage   is long enough to keep.", options)
    assert out == ["This passage is long enough to keep."]


def test_clean_document_drops_only_the_short_pieces():
    options = CleaningOptions(min_words=3, max_words=6)
    text = "This first sentence has six words. Ok. And this closing one has six."
    out = clean_document(text, options)
    assert out == ["This first sentence has six words.", "And this closing one has six."]
    assert all(3 <= len(p.split()) <= 6 for p in out)


def test_clean_document_without_normalise_keeps_characters():
    options = CleaningOptions(normalise=False, min_words=1, max_words=50)
    assert clean_document("  Ｗｉｄｅ text  ", options) == ["Ｗｉｄｅ text"]


def test_cleaning_options_validate():
    with pytest.raises(DistilleryError, match="at least 1"):
        CleaningOptions(min_words=0).validate()
    with pytest.raises(DistilleryError, match="below the minimum"):
        CleaningOptions(min_words=10, max_words=5).validate()
    CleaningOptions().validate()
