"""Build a distillation corpus from a plan: exact per-domain counts, cleaned, deduplicated, saved.

Within a domain, sources are drawn round-robin, so each source contributes equally until it runs
out and the others make up its part. A domain that cannot fill its count is reported in the
manifest as a shortfall; its missing texts are never taken from another domain, because that
would silently change the mix the user asked for. So is a domain with no source in the plan's
language (French academic text).

A plan in both languages splits each domain's count between its English and French sources
(`core.corpus.plan.split_count`, half and half) and tops up what one language cannot fill from the
other; the manifest counts each domain's texts per language.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core import settings
from core.corpus.cleaning import CleaningOptions, clean_document
from core.corpus.plan import DOMAINS, CorpusPlan, normalise_shares, split_count
from core.corpus.sources import SourceCatalogue, SourceSpec, iter_documents
from core.corpus.uploads import Upload, accept_upload
from core.errors import DistilleryError
from core.files import write_json, write_jsonl
from core.languages import LANGUAGES
from core.progress import Progress, silent

CORPUS_FILE = "corpus.jsonl"
MANIFEST_FILE = "manifest.json"


@dataclass
class Corpus:
    """A built corpus on disk: its folder, texts and manifest."""

    folder: Path
    manifest: dict[str, Any]

    @property
    def path(self) -> Path:
        return self.folder / CORPUS_FILE

    def texts(self) -> list[str]:
        return [row["text"] for row in self.rows()]

    def rows(self) -> Iterator[dict[str, str]]:
        with self.path.open(encoding="utf-8") as handle:
            for line in handle:
                yield json.loads(line)

    @classmethod
    def load(cls, folder: Path) -> Corpus:
        manifest = json.loads((folder / MANIFEST_FILE).read_text())
        return cls(folder, manifest)


def build_corpus(plan: CorpusPlan, out_dir: Path, progress: Progress = silent) -> Corpus:
    """Draw, clean and save the corpus; write `corpus.jsonl` and `manifest.json` into `out_dir`."""
    counts = plan.validate()
    started = time.perf_counter()
    seen: set[bytes] = set()
    rows: list[dict[str, str]] = []
    per_source: dict[str, int] = {}
    for domain in DOMAINS:
        if counts[domain] == 0:
            continue
        done_before = len(rows)

        def report(n: int, domain: str = domain, base: int = done_before) -> None:
            progress("corpus", (base + n) / plan.size, f"{domain}: {n:,}/{counts[domain]:,}")

        for text, source in _draw_languages(plan.sources.get(domain, []), counts[domain], plan, seen, report):
            rows.append({"text": text, "domain": domain, "source": source})
            per_source[f"{domain}/{source}"] = per_source.get(f"{domain}/{source}", 0) + 1
    if not rows:
        raise DistilleryError("The corpus came out empty: no source yielded a passage that passed cleaning.")
    manifest = _manifest(plan, counts, rows, per_source, time.perf_counter() - started)
    _write_atomically(out_dir, rows, manifest)
    progress("corpus", 1.0, f"{len(rows):,} texts")
    return Corpus(out_dir, manifest)


def _draw_domain(
    specs: Sequence[SourceSpec], quota: int, plan: CorpusPlan, seen: set[bytes], report: Any
) -> Iterator[tuple[str, str]]:
    """Round-robin over the domain's sources until `quota` passages are drawn or all run dry."""
    streams = {spec.name: _passages(spec, plan) for spec in specs}
    taken = 0
    while streams and taken < quota:
        for name in list(streams):
            passage = _next_new(streams[name], seen, plan.cleaning.dedupe)
            if passage is None:
                del streams[name]
                continue
            yield passage, name
            taken += 1
            if taken % 500 == 0:
                report(taken)
            if taken >= quota:
                break
    report(taken)


def _draw_languages(
    specs: Sequence[SourceSpec], quota: int, plan: CorpusPlan, seen: set[bytes], report: Any
) -> Iterator[tuple[str, str]]:
    """A "both" plan: the quota split evenly between the domain's English sources, its French ones and
    its uploads (those present), each part drawn round-robin within its language; then what a part
    could not fill is topped up from the others, in that order. One language: `_draw_domain` as is."""
    groups = [g for g in (_in_language(specs, "en"), _in_language(specs, "fr"), _in_language(specs, None)) if g]
    if plan.language != "both" or len(groups) < 2:
        yield from _draw_domain(specs, quota, plan, seen, report)
        return
    draws = [_draw_domain(group, quota, plan, seen, lambda _n: None) for group in groups]
    taken = 0
    for draw, part in [*zip(draws, split_count(quota, len(draws))), *((d, quota) for d in draws)]:
        for passage in itertools.islice(draw, max(0, min(part, quota - taken))):
            yield passage
            taken += 1
            if taken % 500 == 0:
                report(taken)
    report(taken)


def _in_language(specs: Sequence[SourceSpec], language: str | None) -> list[SourceSpec]:
    """The sources of one language; None: those of no known language (uploads)."""
    known = ("en", "fr")
    return [s for s in specs if (s.language == language if language else s.language not in known)]


def _passages(spec: SourceSpec, plan: CorpusPlan) -> Iterator[str]:
    for document in iter_documents(spec, plan.seed):
        yield from clean_document(document, plan.cleaning)


def _next_new(stream: Iterator[str], seen: set[bytes], dedupe: bool) -> str | None:
    for passage in stream:
        if not dedupe:
            return passage
        digest = hashlib.blake2b(passage.encode("utf-8"), digest_size=16).digest()
        if digest not in seen:
            seen.add(digest)
            return passage
    return None


def _manifest(
    plan: CorpusPlan, counts: Mapping[str, int], rows: list[dict[str, str]], per_source: dict[str, int], seconds: float
) -> dict[str, Any]:
    realised = {d: sum(1 for r in rows if r["domain"] == d) for d in DOMAINS}
    requested_shares = normalise_shares(plan.shares)
    shortfalls = [
        {
            "domain": d,
            "requested": counts[d],
            "realised": realised[d],
            "message": (f"'{d}' asked for {counts[d]:,} texts but no {LANGUAGES[plan.language]} source serves it"
                        if d in plan.unserved and not plan.sources.get(d) else
                        f"'{d}' asked for {counts[d]:,} texts but its sources gave only {realised[d]:,} after "
                        "cleaning") + "; the other domains were not enlarged to make up for it.",
        }
        for d in DOMAINS
        if realised[d] < counts[d]
    ]
    languages = _languages(plan, per_source)
    digest = hashlib.sha256()
    for row in rows:
        digest.update(row["text"].encode("utf-8") + b"\n")
    words = sum(len(r["text"].split()) for r in rows)
    return {
        "requested_size": plan.size,
        "size": len(rows),
        "domains": {
            d: {
                "requested_share": round(requested_shares[d], 6),
                "realised_share": round(realised[d] / len(rows), 6),
                "requested": counts[d],
                "realised": realised[d],
                "sources": [s.to_dict() for s in plan.sources.get(d, [])] if counts[d] else [],
                "languages": languages[d],
            }
            for d in DOMAINS
        },
        "language": plan.language,
        "per_source": per_source,
        "shortfalls": shortfalls,
        "words": words,
        "characters": sum(len(r["text"]) for r in rows),
        "mean_words": round(words / len(rows), 2),
        "cleaning": plan.cleaning.to_dict(),
        "seed": plan.seed,
        "content_sha256": digest.hexdigest(),
        "build_seconds": round(seconds, 3),
    }


def _languages(plan: CorpusPlan, per_source: Mapping[str, int]) -> dict[str, dict[str, int]]:
    """Each domain's realised texts per source language ("upload" for sources of no stated language)."""
    out: dict[str, dict[str, int]] = {d: {} for d in DOMAINS}
    for domain in DOMAINS:
        for spec in plan.sources.get(domain, []):
            n = per_source.get(f"{domain}/{spec.name}", 0)
            if n:
                language = spec.language or "upload"
                out[domain][language] = out[domain].get(language, 0) + n
    return out


def _write_atomically(out_dir: Path, rows: list[dict[str, str]], manifest: dict[str, Any]) -> None:
    """The texts first, then the manifest: a folder with a manifest always has its whole corpus."""
    write_jsonl(out_dir / CORPUS_FILE, rows)
    write_json(out_dir / MANIFEST_FILE, manifest)


def preview(specs: Sequence[SourceSpec], n: int = 5, cleaning: CleaningOptions | None = None, seed: int = 0) -> list[dict[str, str]]:
    """The first `n` cleaned passages the domain's sources would give (for the Recipe tab)."""
    plan = CorpusPlan(shares={}, size=n, sources={}, cleaning=cleaning or CleaningOptions(), seed=seed)
    return [{"source": s, "text": t} for t, s in _draw_domain(specs, n, plan, set(), lambda _n: None)]


def preview_domains(
    catalogue: SourceCatalogue, sources: Mapping[str, Sequence[str]], uploads: Mapping[str, Sequence[Upload]],
    n: int = 3,
) -> list[dict[str, str]]:
    """The first `n` passages of each domain's chosen sources and uploads, as the Recipe tab previews them.

    Uploads are accepted (checked and copied) into a scratch folder of this call's own, removed when
    it returns, so concurrent previews never touch each other's files.
    """
    rows: list[dict[str, str]] = []
    with tempfile.TemporaryDirectory(prefix=".preview-", dir=settings.jobs_dir()) as scratch:
        for domain in DOMAINS:
            specs = [catalogue.get(key) for key in sources.get(domain, [])]
            specs += [accept_upload(upload, Path(scratch), domain) for upload in uploads.get(domain, [])]
            rows += [{"domain": domain, **row} for row in preview(specs, n=n)]
    return rows
