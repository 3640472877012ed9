"""Text sources per domain: what the sources file offers, and reading documents from each.

Every source is read through `datasets` (local JSONL/CSV/TXT/Parquet files and uploads in full,
Hub datasets streamed), except the built-in docstring source, which parses installed Python files
with `ast` so it works on any machine with no network and imports nothing.

Each source of the sources file has a language ("en" unless it says `language: fr`); a local one
lives below its language's corpus folder (`settings.local_corpus_dir(language)`). A source may keep
only the records whose fields hold given values (`where: {domain: legal}`, applied with datasets'
own `filter`), so one file can serve several domains. Uploads have no language (None).
"""

from __future__ import annotations

import ast
import random
import sysconfig
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

import yaml

from core import settings
from core.corpus.plan import DOMAINS
from core.errors import DistilleryError
from core.languages import LANGUAGES, plan_languages
from core.settings import hub_reachable

SourceKind = Literal["hub", "local", "builtin", "upload"]
FORMATS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".txt": "text", ".parquet": "parquet"}


@dataclass(frozen=True)
class SourceSpec:
    """One source of documents for one domain. `location` is a Hub id, a file path or a built-in id."""

    name: str
    domain: str
    kind: SourceKind
    location: str
    fields: tuple[str, ...] = ("text",)
    config: str | None = None
    split: str = "train"
    language: str | None = None  # "en" or "fr" for the sources file's sources; None for uploads
    where: tuple[tuple[str, str], ...] = ()  # keep only records whose field equals the value

    @property
    def key(self) -> str:
        """Stable identifier used by the UI and in recipes: `kind:name`."""
        return f"{self.kind}:{self.name}"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["fields"] = list(self.fields)
        data["where"] = dict(self.where)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SourceSpec:
        return cls(**{**data, "fields": tuple(data.get("fields") or ("text",)),
                      "where": _where(data.get("where"))})


@dataclass
class SourceCatalogue:
    """All sources the sources file offers on this machine, per domain."""

    by_domain: dict[str, list[SourceSpec]] = field(default_factory=dict)
    hub_available: bool = False
    listed: dict[str, set[str]] = field(default_factory=dict)  # language -> domains the sources file lists

    def get(self, key: str) -> SourceSpec:
        for specs in self.by_domain.values():
            for spec in specs:
                if spec.key == key:
                    return spec
        raise DistilleryError(f"Unknown source '{key}'.")

    def default_keys(self, domain: str, language: str = "en") -> list[str]:
        """Per source language of `language` ("both": English's, then French's): Hub sources when the
        Hub answers, else (or where the Hub offers none in that language) local files; built-in only
        where nothing else serves."""
        keys: list[str] = []
        for lang in plan_languages(language):
            specs = [s for s in self.by_domain.get(domain, []) if s.language == lang]
            preferred = [s for s in specs if s.kind == ("hub" if self.hub_available else "local")]
            if not preferred and self.hub_available:
                preferred = [s for s in specs if s.kind == "local"]
            keys += [s.key for s in (preferred or [s for s in specs if s.kind == "builtin"])]
        return keys

    def choices(self, domain: str, language: str = "en") -> list[SourceSpec]:
        """Every source of the domain, those in `language` ("both": in either) first, for the Recipe
        tab's checkboxes: a plan may mix in a source of the other language on purpose."""
        langs = plan_languages(language)
        specs = self.by_domain.get(domain, [])
        return [s for s in specs if s.language in langs] + [s for s in specs if s.language not in langs]

    def unserved(self, language: str = "en") -> tuple[str, ...]:
        """The domains the sources file lists no source for in `language` (in neither, for "both"):
        French academic text. A plan reports them as shortfalls instead of refusing them."""
        langs = plan_languages(language)
        return tuple(d for d in DOMAINS if not any(d in self.listed.get(lang, set()) for lang in langs))


def load_catalogue(path: Path | None = None, hub_available: bool | None = None) -> SourceCatalogue:
    """Read the sources file; keep Hub sources only when the Hub is reachable, local files only if present."""
    path = path or settings.sources_file()
    raw = yaml.safe_load(path.read_text()) or {}
    hub_ok = hub_reachable() if hub_available is None else hub_available
    catalogue = SourceCatalogue({d: [] for d in DOMAINS}, hub_ok)
    for kind in ("hub", "local", "builtin"):
        for domain, entries in (raw.get(kind) or {}).items():
            if domain not in DOMAINS:
                raise DistilleryError(f"{path}: unknown domain '{domain}' under '{kind}'.")
            for entry in entries or []:
                language = entry.get("language", "en")
                if language not in LANGUAGES or language == "both":
                    raise DistilleryError(f"{path}: source '{entry.get('name')}' has an unknown language "
                                          f"'{language}'; use en or fr.")
                catalogue.listed.setdefault(language, set()).add(domain)
                spec = _spec_from_entry(kind, domain, entry, settings.local_corpus_dir(language))
                if spec is not None and (kind != "hub" or hub_ok):
                    catalogue.by_domain[domain].append(spec)
    return catalogue


def _spec_from_entry(kind: str, domain: str, entry: dict[str, Any], corpus_dir: Path | None) -> SourceSpec | None:
    fields = tuple(entry.get("fields") or ("text",))
    if kind == "local":
        if corpus_dir is None or not (corpus_dir / entry["path"]).is_file():
            return None
        location = str(corpus_dir / entry["path"])
    else:
        location = entry["id"]
    return SourceSpec(entry["name"], domain, cast(SourceKind, kind), location, fields, entry.get("config"),
                      entry.get("split", "train"), entry.get("language", "en"), _where(entry.get("where")))


def _where(value: Any) -> tuple[tuple[str, str], ...]:
    """A `where` filter as sorted (field, value) pairs (from a dict, as the sources file and JSON hold it)."""
    if not value:
        return ()
    items = value.items() if isinstance(value, dict) else value
    return tuple(sorted((str(k), str(v)) for k, v in items))


def iter_documents(spec: SourceSpec, seed: int = 0) -> Iterator[str]:
    """Yield raw documents of a source in a seeded random order."""
    if spec.kind == "builtin":
        yield from _python_docstrings(seed)
        return
    for record in iter_records(spec, seed):
        text = join_fields(record, spec)
        if text:
            yield text


def join_fields(record: dict[str, Any], spec: SourceSpec) -> str:
    """Join the named fields of one record into one document (lists are joined with spaces)."""
    parts: list[str] = []
    for name in spec.fields:
        if name not in record:
            raise DistilleryError(
                f"Source '{spec.name}' has no field '{name}'; its fields are: {', '.join(sorted(record))}."
            )
        value = record[name]
        if isinstance(value, (list, tuple)):
            value = " ".join(str(v) for v in value if v is not None)
        if value is None:
            continue
        value = str(value).strip()
        if value and len(spec.fields) > 1 and value[-1] not in ".!?:;":
            value += "."  # keep field boundaries as sentence boundaries for passage splitting
        if value:
            parts.append(value)
    return " ".join(parts)


def iter_records(spec: SourceSpec, seed: int) -> Iterator[dict[str, Any]]:
    import datasets  # heavy import, deferred until a corpus is read

    datasets.disable_progress_bars()
    if spec.kind == "hub":
        stream = datasets.load_dataset(spec.location, name=spec.config, split=spec.split, streaming=True)
        if spec.where:
            stream = stream.filter(lambda record: all(str(record.get(k)) == v for k, v in spec.where))
        yield from stream.shuffle(seed=seed, buffer_size=10_000)
        return
    path = Path(spec.location)
    builder = file_format(path)
    try:
        table = datasets.load_dataset(builder, data_files=str(path), split="train", keep_in_memory=True)
    except Exception as exc:  # datasets raises many types for unreadable files
        what = "it is not valid JSON (one object per line)" if builder == "json" else f"it is not valid {builder}"
        raise DistilleryError(f"Could not read '{path.name}': {what}: {root_cause(exc)}") from exc
    if spec.where:
        table = _filtered(table, spec)
    yield from table.shuffle(seed=seed, keep_in_memory=True)


def _filtered(table: Any, spec: SourceSpec) -> Any:
    """The records whose `where` fields hold the named values (datasets' own batched `filter`)."""
    missing = [k for k, _ in spec.where if k not in table.column_names]
    if missing:
        raise DistilleryError(f"Source '{spec.name}' filters on field(s) {', '.join(missing)}, which its file "
                              f"lacks; its fields are: {', '.join(table.column_names)}.")

    def keep(batch: dict[str, list[Any]]) -> list[bool]:
        rows = len(next(iter(batch.values())))
        return [all(str(batch[k][i]) == v for k, v in spec.where) for i in range(rows)]

    return table.filter(keep, batched=True, keep_in_memory=True)


def root_cause(exc: BaseException) -> str:
    """The innermost error's words: datasets wraps the parser's own message ("JSON parse error: ... in
    row 0") in a general one ("An error occurred while generating the dataset")."""
    while exc.__cause__ is not None or exc.__context__ is not None:
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return str(exc).strip() or type(exc).__name__


def file_format(path: Path) -> str:
    """The `datasets` builder for a file, from its extension (`.gz` is looked through)."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in {".gz", ".bz2", ".xz", ".zst"}:
        suffixes = suffixes[:-1]
    if not suffixes or suffixes[-1] not in FORMATS:
        raise DistilleryError(
            f"'{path.name}' is not a supported file type; use one of: {', '.join(sorted(FORMATS))} (optionally .gz)."
        )
    return FORMATS[suffixes[-1]]


def _python_docstrings(seed: int) -> Iterator[str]:
    """Docstrings of the installed standard library and packages, parsed (never imported)."""
    roots = {Path(sysconfig.get_paths()["stdlib"]), Path(sysconfig.get_paths()["purelib"])}
    files = sorted(p for root in roots if root.is_dir() for p in root.rglob("*.py") if "test" not in p.parts)
    random.Random(seed).shuffle(files)
    for path in files:
        try:
            tree = ast.parse(path.read_text(encoding="utf-8", errors="replace"))
        except (SyntaxError, ValueError, OSError, RecursionError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc:
                    yield doc

