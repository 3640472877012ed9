"""Form values ↔ recipes. Pure functions (no Gradio objects), so they are easy to test.

The Recipe tab's inputs arrive in the order of `FORM_FIELDS`; `recipe_from_form` turns them into a
`Recipe` (with the chosen method's parameters) and the uploads per domain, which `jobs.client.submit`
accepts into the job's folder.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from core.corpus.cleaning import CleaningOptions
from core.corpus.plan import DOMAINS, normalise_shares
from core.corpus.uploads import Upload
from core.errors import DistilleryError
from core.methods.corpus import CorpusParams
from core.methods.registry import params_for
from core.methods.training import TrainParams
from core.recipe import Recipe

# Per domain: share slider, source checkboxes, uploaded files, upload text field(s).
DOMAIN_FIELDS = ("share", "sources", "files", "fields")
FORM_FIELDS: tuple[str, ...] = (
    "name", "teacher", "trust_remote_code", "method",
    *(f"{d}:{f}" for d in DOMAINS for f in DOMAIN_FIELDS),
    "corpus_size", "collection_size", "normalise", "dedupe", "min_words", "max_words",
    "use_corpus_vocabulary", "max_vocabulary_size", "min_frequency", "pca_dims", "sif_coefficient",
    "pooling", "quantize_to", "epochs", "patience", "batch_size", "learning_rate", "start_share", "seed", "evaluate_after",
    "evaluation_rows",
)


def as_form(values: Sequence[Any]) -> dict[str, Any]:
    if len(values) != len(FORM_FIELDS):
        raise DistilleryError(f"The form sent {len(values)} values; {len(FORM_FIELDS)} were expected.")
    return dict(zip(FORM_FIELDS, values))


def whole(value: Any, label: str, allow_none: bool = False) -> int | None:
    """A whole number from a form field, or a message that names the field."""
    if value is None or value == "":
        if allow_none:
            return None
        raise DistilleryError(f"{label} is empty.")
    number = float(value)
    if math.isnan(number) or math.isinf(number) or number != int(number):
        raise DistilleryError(f"{label} must be a whole number, not {value}.")
    return int(number)


def rows_limit(value: Any) -> int | None:
    """Rows per task from a number box: 0 or empty means every row (a Gradio number box cannot show
    "empty", so its default is 0 and must not be refused as "fewer than 10")."""
    return whole(value, "Rows per task", allow_none=True) or None


def upload_path(file: Any) -> Path:
    """The server-side path of a Gradio file value (a path string, a tempfile wrapper or a FileData dict)."""
    if isinstance(file, dict):
        return Path(file["path"])
    return Path(getattr(file, "name", file))


def upload_fields(form: dict[str, Any], domain: str) -> tuple[str, ...]:
    """The comma-separated text field names typed for a domain's uploads (default: `text`)."""
    return tuple(f.strip() for f in str(form.get(f"{domain}:fields") or "text").split(",") if f.strip())


def shares_from_form(form: dict[str, Any]) -> dict[str, float]:
    return {d: float(form[f"{d}:share"]) if form[f"{d}:share"] is not None else float("nan") for d in DOMAINS}


def form_uploads(form: dict[str, Any]) -> dict[str, list[Upload]]:
    """The uploaded files per domain, each with the text field(s) typed for that domain."""
    uploads: dict[str, list[Upload]] = {}
    for domain in DOMAINS:
        for file in form.get(f"{domain}:files") or []:
            uploads.setdefault(domain, []).append(Upload(upload_path(file), upload_fields(form, domain)))
    return uploads


def form_sources(form: dict[str, Any]) -> dict[str, list[str]]:
    return {d: list(form.get(f"{d}:sources") or []) for d in DOMAINS}


def recipe_from_form(form: dict[str, Any]) -> tuple[Recipe, dict[str, list[Upload]]]:
    """The recipe the form describes, and its uploads (accepted into the job's folder on submit).

    Only the chosen method's parameters are read; an empty field takes that method's default.
    """
    method = str(form.get("method") or "vocabulary")
    defaults = params_for(method)
    sif = form.get("sif_coefficient")
    params: dict[str, Any] = dict(
        pca_dims=whole(form.get("pca_dims"), "pca_dims", allow_none=True) or None,
        sif_coefficient=None if sif in (None, "", 0) else float(sif),
        pooling=str(form.get("pooling")), quantize_to=str(form.get("quantize_to")),
        use_corpus_vocabulary=bool(form.get("use_corpus_vocabulary")),
        max_vocabulary_size=whole(form.get("max_vocabulary_size"), "The vocabulary size"),
        min_frequency=whole(form.get("min_frequency"), "The minimum frequency"),
    )
    if isinstance(defaults, CorpusParams):
        training = defaults.training
        learning_rate, start_share = form.get("learning_rate"), form.get("start_share")
        params["training"] = TrainParams(
            epochs=_or_default(whole(form.get("epochs"), "Epochs", allow_none=True), training.epochs),
            patience=_or_default(whole(form.get("patience"), "Patience", allow_none=True), training.patience),
            batch_size=_or_default(whole(form.get("batch_size"), "The training batch size", allow_none=True),
                                   training.batch_size),
            learning_rate=training.learning_rate if learning_rate in (None, "") else float(learning_rate),
        )
        params["start_share"] = defaults.start_share if start_share in (None, "") else float(start_share)
    recipe = Recipe(
        name=str(form.get("name") or "").strip(),
        teacher=str(form.get("teacher") or "").strip() or Recipe().teacher,
        trust_remote_code=bool(form.get("trust_remote_code")),
        method=method,
        shares=shares_from_form(form),
        corpus_size=whole(form.get("corpus_size"), "The corpus size"),
        sources=form_sources(form),
        cleaning=CleaningOptions(
            normalise=bool(form.get("normalise")), dedupe=bool(form.get("dedupe")),
            min_words=whole(form.get("min_words"), "The minimum passage length"),
            max_words=whole(form.get("max_words"), "The maximum passage length"),
        ),
        distill=type(defaults)(**params),
        collection_size=whole(form.get("collection_size"), "The search collection size"),
        seed=whole(form.get("seed"), "The seed"),
        evaluate_after=bool(form.get("evaluate_after")),
        evaluation_rows=rows_limit(form.get("evaluation_rows")),
    )
    return recipe, form_uploads(form)


def _or_default(value: int | None, default: int) -> int:
    """An empty field takes the method's default; a 0 stays 0, so validation can explain it."""
    return default if value is None else value


def shares_summary(shares: dict[str, float], sources: dict[str, list[str]], upload_counts: dict[str, int]) -> str:
    """Markdown: the normalised shares, and a warning for each domain with a share but no source."""
    try:
        normalised = normalise_shares(shares)
    except DistilleryError as exc:
        return f"⚠️ {exc}"
    cells = " · ".join(f"**{d}** {normalised[d]:.1%}" for d in DOMAINS)
    missing = [d for d in DOMAINS if normalised[d] > 0 and not sources.get(d) and not upload_counts.get(d)]
    warning = "".join(f"\n\n⚠️ **{d}** has a share of {normalised[d]:.1%} but no source: choose one, upload "
                      f"a file, or set its share to 0." for d in missing)
    return f"Normalised shares: {cells}{warning}"


def answer(value: Any, missing: str, action: Callable[[Any], Any], report: Callable[[Any], str]) -> str:
    """A button's Markdown answer: `missing` when nothing is chosen, `report(action(value))` when the
    action works, and the user's error (a `DistilleryError`) with a cross when it is refused."""
    if not value:
        return missing
    try:
        return report(action(value))
    except DistilleryError as exc:
        return f"❌ {exc}"
