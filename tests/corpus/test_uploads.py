"""core.corpus.uploads.accept_upload: valid files are copied into the job folder, bad ones refused."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import pytest

from core.corpus.sources import iter_documents
from core.corpus.uploads import Upload, accept_upload
from core.errors import DistilleryError


@pytest.fixture()
def job_dir(tmp_path) -> Path:
    folder = tmp_path / "jobs" / "job-1"
    folder.mkdir(parents=True)
    return folder


@pytest.fixture()
def incoming(tmp_path) -> Path:
    folder = tmp_path / "incoming"
    folder.mkdir()
    return folder


def uploads_of(job_dir: Path, domain: str) -> list[Path]:
    folder = job_dir / "uploads" / domain
    return sorted(folder.iterdir()) if folder.is_dir() else []


def test_txt_upload_is_copied_and_readable(job_dir, incoming):
    src = incoming / "notes.txt"
    src.write_text("First line of my notes.\nSecond line, also text.\n", encoding="utf-8")
    spec = accept_upload(Upload(src), job_dir, "web")
    dest = Path(spec.location)
    assert dest.parent == (job_dir / "uploads" / "web").resolve()
    assert dest.read_bytes() == src.read_bytes()
    assert spec.kind == "upload" and spec.domain == "web" and spec.fields == ("text",)
    assert sorted(iter_documents(spec)) == ["First line of my notes.", "Second line, also text."]


def test_jsonl_upload_reads_the_named_field(job_dir, incoming):
    src = incoming / "faq.jsonl"
    with src.open("w", encoding="utf-8") as handle:
        for i in range(5):
            handle.write(json.dumps({"question": f"How do I do thing {i}?", "n": i}) + "\n")
    spec = accept_upload(Upload(src, ("question",)), job_dir, "conversational")
    assert Path(spec.location).is_relative_to((job_dir / "uploads" / "conversational").resolve())
    assert sorted(iter_documents(spec)) == [f"How do I do thing {i}?" for i in range(5)]


def test_real_gzipped_corpus_file_is_accepted(job_dir, corpus_dir):
    spec = accept_upload(Upload(corpus_dir / "legal" / "gdpr_provisions.jsonl.gz"), job_dir, "domain-specific")
    assert Path(spec.location).name == "gdpr_provisions.jsonl.gz"
    assert len(list(iter_documents(spec))) == 97


REFUSED = [
    ("empty.txt", b"", "empty"),
    ("blank.txt", b" \n\t\n", "whitespace"),
    ("image.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)), "binary"),
    ("random.txt", bytes(range(1, 256)) * 40, "binary"),  # no zero byte, and not text in any encoding
    ("big.txt", None, "limited to 100 MB"),
    ("bomb.txt.gz", gzip.compress(b"a" * 2**24) * 17, "inflates to more than 256 MB"),
    ("notes.txt.bz2", b"BZh91AY&SY", "compress it as .gz"),
    ("setup.exe", b"MZ this is not really a program", "not a supported file type"),
    ("broken.jsonl.gz", b"this is not gzip data at all", "gzip"),
]


@pytest.mark.parametrize(("name", "content", "expected"), REFUSED, ids=[r[0] for r in REFUSED])
def test_bad_file_is_refused_and_not_kept(job_dir, incoming, name, content, expected):
    src = incoming / name
    if content is None:
        with src.open("wb") as handle:  # sparse: refused by its size, never read
            handle.truncate(200 * 2**20)
    else:
        src.write_bytes(content)
    with pytest.raises(DistilleryError, match=expected):
        accept_upload(Upload(src), job_dir, "web")
    assert uploads_of(job_dir, "web") == []


FRENCH = "Caf\u00e9 cr\u00e8me br\u00fbl\u00e9e, \u00e0 la fran\u00e7aise \u2019 \u20ac.\n"
ENCODED = [
    ("latin1.txt", FRENCH.replace("\u2019 \u20ac", "").encode("latin-1") * 3),
    ("windows.txt", FRENCH.encode("cp1252") * 3),  # curly quote and euro sign: Windows-1252, not latin-1
    ("utf16-bom.txt", (FRENCH * 3).encode("utf-16")),
    ("utf16-le.txt", (FRENCH * 3).encode("utf-16-le")),
    ("utf16-be.txt", (FRENCH * 3).encode("utf-16-be")),
    ("utf8-bom.jsonl", "".join(json.dumps({"text": FRENCH.strip()}) + "\n" for _ in range(3)).encode("utf-8-sig")),
    ("utf16.jsonl.gz", gzip.compress("".join(json.dumps({"text": FRENCH.strip()}, ensure_ascii=False) + "\n"
                                            for _ in range(3)).encode("utf-16"))),
]


@pytest.mark.parametrize(("name", "content"), ENCODED, ids=[e[0] for e in ENCODED])
def test_text_in_another_encoding_is_decoded_and_kept_as_utf8(job_dir, incoming, name, content):
    src = incoming / name
    src.write_bytes(content)
    spec = accept_upload(Upload(src), job_dir, "web")
    texts = list(iter_documents(spec))
    assert len(texts) == 3 and all(t.startswith("Caf\u00e9 cr\u00e8me br\u00fbl\u00e9e") for t in texts), texts
    stored = Path(spec.location)
    assert stored.suffix != ".gz"  # a gzip in another encoding is stored inflated, as UTF-8
    assert not stored.read_bytes().startswith(b"\xef\xbb\xbf")  # and without a byte-order mark
    stored.read_bytes().decode("utf-8")  # what datasets reads downstream


def test_jsonl_without_the_named_field_is_refused(job_dir, incoming):
    src = incoming / "rows.jsonl"
    src.write_text("\n".join(json.dumps({"body": f"row {i}"}) for i in range(3)) + "\n")
    with pytest.raises(DistilleryError) as info:
        accept_upload(Upload(src, ("text",)), job_dir, "web")
    assert "'text'" in str(info.value) and "body" in str(info.value)
    assert uploads_of(job_dir, "web") == []  # a refused upload is not kept in the job folder


def test_malformed_jsonl_is_refused_and_not_kept(job_dir, incoming):
    src = incoming / "broken.jsonl"
    src.write_text('{"text": "fine row"}\n{"text": "unterminated\n')
    with pytest.raises(DistilleryError, match="broken.jsonl"):
        accept_upload(Upload(src), job_dir, "web")
    assert uploads_of(job_dir, "web") == []


def test_unknown_domain_is_refused(job_dir, incoming):
    src = incoming / "ok.txt"
    src.write_text("Some fine text here.")
    with pytest.raises(DistilleryError, match="poetry"):
        accept_upload(Upload(src), job_dir, "poetry")


def test_hostile_filename_stays_inside_the_job_uploads(job_dir, incoming, tmp_path):
    # the upload arrives under a name that tries to climb out of the job folder
    hostile_dir = incoming / "a" / "b"
    hostile_dir.mkdir(parents=True)
    (hostile_dir / "evil.txt").write_text("Hostile but harmless text.")
    src = hostile_dir / ".." / ".." / "a" / "b" / "evil.txt"
    spec = accept_upload(Upload(src), job_dir, "web")
    dest = Path(spec.location).resolve()
    assert dest.is_relative_to((job_dir / "uploads" / "web").resolve())
    assert dest.name == "evil.txt"
    assert not (job_dir.parent / "evil.txt").exists()
    assert not (tmp_path / "evil.txt").exists()


@pytest.mark.parametrize("name", ["../../evil.txt", "..%2F..%2Fevil.txt", ".hidden.txt", "a b/../c.txt"])
def test_hostile_names_are_reduced_to_a_safe_basename(job_dir, incoming, name):
    # the name a browser sends can contain anything; write it as one file whose basename is hostile
    src = incoming / name.replace("/", "\u2215")  # a lookalike slash keeps it one path component
    src.write_text("Some text that is fine to read.")
    spec = accept_upload(Upload(src), job_dir, "web")
    dest = Path(spec.location).resolve()
    assert dest.parent == (job_dir / "uploads" / "web").resolve()
    assert not dest.name.startswith(".")
    assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", dest.name), dest.name
    assert dest.read_text() == "Some text that is fine to read."


def test_two_uploads_in_different_domains_are_kept_apart(job_dir, incoming):
    a, b = incoming / "a.txt", incoming / "b.txt"
    a.write_text("Alpha text for the web domain.")
    b.write_text("Beta text for the code domain.")
    accept_upload(Upload(a), job_dir, "web")
    accept_upload(Upload(b), job_dir, "code")
    assert [p.name for p in uploads_of(job_dir, "web")] == ["a.txt"]
    assert [p.name for p in uploads_of(job_dir, "code")] == ["b.txt"]


def test_gzip_text_upload_is_read_through(job_dir, incoming):
    src = incoming / "lines.txt.gz"
    with gzip.open(src, "wt", encoding="utf-8") as handle:
        handle.write("Compressed line one.\nCompressed line two.\n")
    spec = accept_upload(Upload(src), job_dir, "web")
    assert sorted(iter_documents(spec)) == ["Compressed line one.", "Compressed line two."]
