"""Text pairs for the corpus method's pair stage: where pairs come from, read, cleaned, deduplicated.

The pair stage trains on (anchor, positive) pairs with in-batch negatives (sentence-transformers'
MultipleNegativesRankingLoss), so every pair must hold two different texts that mean much the same,
and a pair repeated would only weigh twice in a batch. This module is the data side of that stage and
nothing else: `config/pairs.yaml` declares the pair sources (Hub datasets, streamed and used only when
the Hub answers, and files of the local corpus folder, left out when missing), `load_pairs` reads them
through the same reader as the corpus sources (`core.corpus.sources`: one `SourceSpec` per source, its
fields joined by `join_fields`), and `read_pair_upload` reads a user's two-column file after the same
checks as any upload (`core.corpus.uploads`); `accept_pair_upload` copies such a file into the job's
folder on submit, and `job_pair_files` finds a recipe's `pair_files` in that folder and nowhere else.
Every text goes through `normalise_text`; a side longer than `max_words` words is cut to its first
`max_words` words (the pair is kept, since the start of a text still matches its partner); a pair with
an empty side or with the same text on both sides (case aside) is dropped, and so is a pair already
kept (same left and same right), across sources and files too.
"""

from __future__ import annotations

import csv
import json
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any, cast

import yaml

from core import settings
from core.corpus.cleaning import normalise_text
from core.corpus.sources import SourceKind, SourceSpec, iter_records, join_fields, root_cause
from core.corpus.uploads import UTF8, check_upload, inside_job, open_text, safe_name, text_encoding
from core.errors import DistilleryError
from core.files import write_atomically
from core.languages import LANGUAGES, plan_languages
from core.progress import Progress, silent
from core.settings import hub_reachable

PAIRS_FILE = settings.REPO_ROOT / "config" / "pairs.yaml"
PAIR_KINDS = ("hub", "local")
PAIR_DOMAIN = "pairs"  # the `domain` of a pair source's `SourceSpec`: a pair source serves no corpus domain
MAX_WORDS = 128
PAIR_UPLOADS = Path("uploads") / "pairs"  # where a job's uploaded pair files lie, inside its folder
# An upload's JSON fields, tried in this order on each line: the anchor's, then the positive's.
JSON_FIELDS = (("anchor", "positive"), ("sentence1", "sentence2"), ("left", "right"))
# A first row of a CSV or TSV upload whose two cells are both among these names is a header.
HEADER_NAMES = frozenset({
    "anchor", "positive", "sentence1", "sentence2", "sentence_1", "sentence_2", "sentence 1", "sentence 2",
    "left", "right", "query", "question", "answer", "text", "text1", "text2", "text_a", "text_b",
    "premise", "hypothesis", "source", "target", "input", "output", "original", "paraphrase",
})
_UPLOAD_EXPECTED = {
    "csv": "expected two columns, the anchor then its positive (a first row naming the columns is allowed), "
           "with a different text in each",
    "tsv": "expected two tab-separated columns, the anchor then its positive (a first row naming the columns "
           "is allowed), with a different text in each",
    "json": "expected one JSON object per line with the fields anchor and positive (or sentence1 and "
            "sentence2, or left and right), holding two different texts",
}


@dataclass(frozen=True)
class PairSource:
    """One declared source of pairs: a local file (`path`) or a Hub dataset (`hub_id`, `config`, `split`).

    `left` and `right` name the fields of the anchor and of the positive; `separator` is a mark that
    joins several sentences inside a field, replaced by a space.
    """

    name: str
    kind: str  # "local" | "hub"
    left: tuple[str, ...]
    right: tuple[str, ...]
    path: Path | None = None
    hub_id: str | None = None
    config: str | None = None
    split: str = "train"
    separator: str | None = None
    language: str = "en"

    def spec(self) -> SourceSpec:
        """The source as the corpus reader takes it, with the fields of both sides."""
        location = str(self.path) if self.kind == "local" else str(self.hub_id)
        return SourceSpec(self.name, PAIR_DOMAIN, cast(SourceKind, self.kind), location, self.left + self.right,
                          self.config, self.split, self.language)


@dataclass
class PairSet:
    """Cleaned, deduplicated pairs: `left[i]` is the anchor of `right[i]`."""

    left: list[str] = field(default_factory=list)
    right: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)  # pairs kept per source name

    def __len__(self) -> int:
        return len(self.left)


class _Collector:
    """Cleans pairs as they come and keeps those that are usable and new."""

    def __init__(self, max_words: int) -> None:
        if max_words < 1:
            raise DistilleryError("The maximum pair length must be at least 1 word.")
        self.max_words = max_words
        self.pairs = PairSet()
        self._seen: set[tuple[str, str]] = set()

    def add(self, left: str, right: str) -> bool:
        left, right = self._clean(left), self._clean(right)
        if not left or not right or left.casefold() == right.casefold() or (left, right) in self._seen:
            return False
        self._seen.add((left, right))
        self.pairs.left.append(left)
        self.pairs.right.append(right)
        return True

    def _clean(self, text: str) -> str:
        words = normalise_text(text).split(" ")
        return " ".join(words[: self.max_words])


def load_pair_sources(path: Path | None = None, hub_available: bool | None = None,
                      language: str = "en") -> list[PairSource]:
    """The pair sources the pairs file declares in `language` ("both": in English or French) that this
    machine can read: Hub sources only when the Hub is reachable (asked when `hub_available` is None),
    local files only where they are."""
    path = path or PAIRS_FILE
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise DistilleryError(f"Could not read the pairs file '{path}': {exc}") from exc
    if not isinstance(raw, dict) or set(raw) - set(PAIR_KINDS):
        raise DistilleryError(f"{path}: the pairs file holds lists named {' and '.join(PAIR_KINDS)}, nothing else.")
    languages = plan_languages(language)
    hub_ok = hub_available
    sources: list[PairSource] = []
    for kind in PAIR_KINDS:
        for entry in raw.get(kind) or []:
            source = _source_from_entry(kind, entry, path)
            if source is None or source.language not in languages:
                continue
            if kind == "hub":
                hub_ok = hub_reachable() if hub_ok is None else hub_ok
                if not hub_ok:
                    continue
            sources.append(source)
    return sources


ALL_SOURCES = "all"


def choose_pair_sources(names: Sequence[str], hub_available: bool | None = None) -> list[PairSource]:
    """The sources a recipe names (`"all"`: every one this machine can read, in either language); a
    name that is not declared, or not readable here (a Hub set offline), is refused by name."""
    available = load_pair_sources(hub_available=hub_available, language="both")
    if ALL_SOURCES in names:
        if not available:
            raise DistilleryError("No source of text pairs is readable on this machine (config/pairs.yaml).")
        return available
    by_name = {source.name: source for source in available}
    missing = [name for name in names if name not in by_name]
    if missing:
        raise DistilleryError(f"Unknown or unreachable pair source(s) {', '.join(missing)}; readable here: "
                              f"{', '.join(by_name) or 'none'} (or '{ALL_SOURCES}').")
    return [by_name[name] for name in dict.fromkeys(names)]


def _source_from_entry(kind: str, entry: Any, path: Path) -> PairSource | None:
    """One entry of the pairs file; None for a local file that is not on this machine."""
    if not isinstance(entry, dict) or not entry.get("name"):
        raise DistilleryError(f"{path}: every pair source under '{kind}' needs a name.")
    name = str(entry["name"])
    language = entry.get("language", "en")
    if language not in LANGUAGES or language == "both":
        raise DistilleryError(f"{path}: pair source '{name}' has an unknown language '{language}'; use en or fr.")
    needed = ("left", "right", "id" if kind == "hub" else "path")
    missing = [key for key in needed if not entry.get(key)]
    if missing:
        raise DistilleryError(f"{path}: pair source '{name}' needs {', '.join(missing)}.")
    left, right = _fields(entry["left"]), _fields(entry["right"])
    separator = entry.get("separator") or None
    if kind == "hub":
        return PairSource(name, kind, left, right, hub_id=str(entry["id"]), config=entry.get("config"),
                          split=entry.get("split", "train"), separator=separator, language=language)
    corpus_dir = settings.local_corpus_dir(language)
    if corpus_dir is None or not (corpus_dir / entry["path"]).is_file():
        return None
    return PairSource(name, kind, left, right, path=corpus_dir / entry["path"], separator=separator,
                      language=language)


def _fields(value: Any) -> tuple[str, ...]:
    return (str(value),) if isinstance(value, str) else tuple(str(v) for v in value)


def load_pairs(sources: Sequence[PairSource], limit_per_source: int | None = None, seed: int = 0,
               progress: Progress = silent, max_words: int = MAX_WORDS, uploads: Sequence[Path] = ()) -> PairSet:
    """The cleaned pairs of `sources`, read in a seeded random order (a Hub stream is shuffled in a
    buffer, as the corpus shuffles it); `limit_per_source` keeps the first that many usable pairs of
    each source in that order, a seeded random sample. The pairs of `uploads` (a user's files, read as
    `read_pair_upload` reads them, in full) follow, counted by file name, deduplicated with the rest."""
    if limit_per_source is not None and limit_per_source < 1:
        raise DistilleryError("The number of pairs per source must be at least 1.")
    collector = _Collector(max_words)
    hub = [s.name for s in sources if s.kind == "hub"]
    if hub and not hub_reachable():
        raise DistilleryError(f"The pair source(s) {', '.join(hub)} are read from the Hugging Face Hub, which "
                              f"is out of reach; choose local pair sources instead.")
    total = len(sources) + len(uploads)
    for index, source in enumerate(sources):
        progress("pairs", index / total, f"Reading pairs from {source.name}")
        kept = 0
        for left, right in _source_pairs(source, seed):
            if collector.add(left, right):
                kept += 1
                if limit_per_source is not None and kept >= limit_per_source:
                    break
        collector.pairs.counts[source.name] = collector.pairs.counts.get(source.name, 0) + kept
    for index, path in enumerate(uploads, len(sources)):
        progress("pairs", index / total, f"Reading pairs from {Path(path).name}")
        _collect_upload(collector, Path(path))
    progress("pairs", 1.0, f"{len(collector.pairs):,} pairs from {total} source(s)")
    return collector.pairs


def _source_pairs(source: PairSource, seed: int) -> Iterator[tuple[str, str]]:
    """Raw (left, right) texts of one source's records, in a seeded random order."""
    if source.kind not in PAIR_KINDS:
        raise DistilleryError(f"Pair source '{source.name}' has an unknown kind '{source.kind}'; use hub or local.")
    spec = source.spec()
    left, right = replace(spec, fields=source.left), replace(spec, fields=source.right)
    try:
        for record in iter_records(spec, seed):
            yield _side(record, left, source.separator), _side(record, right, source.separator)
    except DistilleryError:
        raise
    except Exception as exc:  # datasets raises many types for an unreachable or changed Hub dataset
        if source.kind != "hub":
            raise
        raise DistilleryError(f"Could not read the pair source '{source.name}' ({source.hub_id}) from the "
                              f"Hub: {root_cause(exc)}") from exc


def _side(record: dict[str, Any], spec: SourceSpec, separator: str | None) -> str:
    text = join_fields(record, spec)
    return text.replace(separator, " ") if separator else text


def read_pair_upload(path: Path) -> PairSet:
    """The pairs of a user's file: CSV or TSV (the first two columns; a first row naming the columns is
    a header; TSV is split on tabs, without quoting) or JSON lines (fields anchor/positive, sentence1/
    sentence2 or left/right), optionally gzipped, cleaned as `load_pairs` cleans. Refused with a message
    naming the file when it is empty, binary, too large or holds no usable pair."""
    path = Path(path)
    collector = _Collector(MAX_WORDS)
    if not _collect_upload(collector, path):
        raise DistilleryError(f"The upload '{path.name}' holds no usable pair: "
                              f"{_UPLOAD_EXPECTED[_upload_kind(path)[0]]}.")
    return collector.pairs


def _collect_upload(collector: _Collector, path: Path) -> int:
    """Add the pairs of a user's file to `collector` (after `check_upload`), counted by the file's
    name; returns how many were kept (0: none usable, or all already kept)."""
    kind, named = _upload_kind(path)
    check_upload(path, named)
    encoding = text_encoding(path, named) or UTF8
    rows = _json_rows(path, encoding) if kind == "json" else _table_rows(path, encoding, kind)
    kept = sum(collector.add(left, right) for left, right in rows)
    collector.pairs.counts[path.name] = collector.pairs.counts.get(path.name, 0) + kept
    return kept


def accept_pair_upload(path: Path, job_dir: Path) -> str:
    """Check a user's pair file (`read_pair_upload`: refused with a message naming it), copy it below
    `job_dir/uploads/pairs/` under a safe name, and return where it lies relative to `job_dir`, which
    is what a recipe's `pair_files` holds (`core.methods.corpus.CorpusParams`)."""
    src = Path(path)
    read_pair_upload(src)
    relative = PAIR_UPLOADS / safe_name(src.name)
    dest = inside_job(job_dir, relative, src.name)

    def copy(handle: IO[bytes]) -> None:
        with src.open("rb") as raw:
            shutil.copyfileobj(raw, handle)

    write_atomically(dest, copy, src.stat().st_size)  # whole or absent; a full disk is named (`DiskError`)
    return relative.as_posix()


def job_pair_files(job_dir: Path, files: Sequence[str]) -> list[Path]:
    """A recipe's `pair_files` as paths, each refused unless it lies inside `job_dir` (`inside_job`)."""
    return [inside_job(job_dir, name) for name in files]


def _upload_kind(path: Path) -> tuple[str, Path]:
    """"csv", "tsv" or "json", and the name `check_upload` judges the file by (a TSV is judged as a CSV)."""
    name = path.name.lower()
    base = name[:-3] if name.endswith(".gz") else name
    if base.endswith((".jsonl", ".json")):
        return "json", path
    if base.endswith(".csv"):
        return "csv", path
    if base.endswith(".tsv"):
        stem = path.name[: len(base) - 4]
        return "tsv", Path(stem + ".csv" + path.name[len(base):])
    raise DistilleryError(f"The upload '{path.name}' is not a pair file; upload pairs as .csv, .tsv or .jsonl "
                          f"(optionally .gz).")


def _table_rows(path: Path, encoding: str, kind: str) -> Iterator[tuple[str, str]]:
    with open_text(path, encoding) as handle:
        if kind == "tsv":
            reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        else:
            reader = csv.reader(handle)
        try:
            for row in reader:
                if reader.line_num == 1 and _is_header(row):
                    continue
                if len(row) >= 2:
                    yield row[0], row[1]
        except csv.Error as exc:
            raise DistilleryError(f"Line {reader.line_num} of the upload '{path.name}' could not be read as "
                                  f"{kind.upper()}: {exc}.") from exc


def _is_header(row: list[str]) -> bool:
    return len(row) >= 2 and all(cell.strip().casefold() in HEADER_NAMES for cell in row[:2])


def _json_rows(path: Path, encoding: str) -> Iterator[tuple[str, str]]:
    specs: dict[str, SourceSpec] = {}

    def text(record: dict[str, Any], name: str) -> str:
        spec = specs.setdefault(name, SourceSpec(path.name, PAIR_DOMAIN, "upload", str(path), (name,)))
        return join_fields(record, spec)

    with open_text(path, encoding) as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DistilleryError(f"Line {number} of the upload '{path.name}' is not valid JSON ({exc.msg}); "
                                      f"{_UPLOAD_EXPECTED['json']}.") from exc
            if not isinstance(record, dict):
                continue
            names = next((pair for pair in JSON_FIELDS if pair[0] in record and pair[1] in record), None)
            if names is not None:
                yield text(record, names[0]), text(record, names[1])
