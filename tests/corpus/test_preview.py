"""core.corpus.build.preview_domains: the Recipe tab's preview, uploads accepted into a folder of the call's own."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from core import settings
from core.corpus import build
from core.corpus.plan import DOMAINS
from core.corpus.sources import load_catalogue
from core.corpus.uploads import Upload
from core.errors import DistilleryError


@pytest.fixture(scope="module")
def catalogue():
    return load_catalogue(hub_available=False)


def scratch_folders() -> list[str]:
    return sorted(p.name for p in settings.jobs_dir().iterdir() if p.name.startswith(".preview"))


def write_upload(folder: Path, who: str) -> Path:
    """`notes.txt` (the same name for every caller, as two browsers may send) with the caller's own lines."""
    folder.mkdir(parents=True)
    path = folder / "notes.txt"
    path.write_text("".join(f"Line {i} written by {who} for the preview.\n" for i in range(5)), encoding="utf-8")
    return path


def test_concurrent_previews_each_see_their_own_upload(tmp_path, monkeypatch):
    """Two previews at once, each with an upload of the same name in the same domain. Both are held
    inside their scratch folder until the other has accepted its upload too (a barrier in front of
    every read), which is where a shared scratch folder let one preview overwrite, or delete, the
    other's file."""
    paths = {who: write_upload(tmp_path / who, who) for who in ("alice", "bob")}
    barrier = threading.Barrier(2, timeout=60)
    original = build.preview

    def in_step(*args, **kwargs):
        barrier.wait()  # both calls have accepted their uploads for this domain before either reads
        return original(*args, **kwargs)

    monkeypatch.setattr(build, "preview", in_step)
    with ThreadPoolExecutor(2) as pool:
        futures = {who: pool.submit(build.preview_domains, load_catalogue(hub_available=False), {},
                                    {"web": [Upload(path)]}, 10) for who, path in paths.items()}
        results = {who: future.result(timeout=120) for who, future in futures.items()}

    for who, rows in results.items():
        other = "bob" if who == "alice" else "alice"
        assert sorted(r["text"] for r in rows) == [f"Line {i} written by {who} for the preview." for i in range(5)], rows
        assert {r["domain"] for r in rows} == {"web"} and {r["source"] for r in rows} == {"upload-notes.txt"}
        assert not any(other in r["text"] for r in rows)
    assert scratch_folders() == []  # every call removed its own scratch folder
    assert all(p.read_text().startswith("Line 0") for p in paths.values())  # the user's files are untouched


def test_preview_mixes_catalogue_sources_and_uploads(catalogue, tmp_path):
    upload = write_upload(tmp_path / "carol", "carol")
    sources = {d: catalogue.default_keys(d)[:1] for d in DOMAINS}
    rows = build.preview_domains(catalogue, sources, {"code": [Upload(upload)]}, n=3)
    assert {r["domain"] for r in rows} == set(DOMAINS)
    assert all(sum(r["domain"] == d for r in rows) == 3 for d in DOMAINS)  # n passages per domain
    code = [r for r in rows if r["domain"] == "code"]
    # round-robin between the catalogue source and the upload
    assert {r["source"] for r in code} == {catalogue.get(sources["code"][0]).name, "upload-notes.txt"}
    assert scratch_folders() == []


def test_a_refused_upload_leaves_no_scratch_folder(catalogue, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(DistilleryError, match="empty"):
        build.preview_domains(catalogue, {}, {"web": [Upload(empty)]})
    assert scratch_folders() == []
