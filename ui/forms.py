"""Form values ↔ recipes. Pure functions (no Gradio objects), so they are easy to test.

The Recipe tab's inputs arrive in the order of `FORM_FIELDS`; `recipe_from_form` turns them into a
`Recipe` (with the chosen method's parameters) and the uploads per domain, which `jobs.client.submit`
accepts into the job's folder.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core import pace, settings
from core.corpus.cleaning import CleaningOptions
from core.corpus.plan import DOMAINS, normalise_shares
from core.corpus.uploads import Upload
from core.encoders.endpoint import EndpointSpec
from core.encoders.teacher import TeacherInfo, resolve_teacher
from core.errors import DistilleryError
from core.keyring import HUB_TOKEN
from core.languages import LANGUAGES
from core.memory import available_mb, estimate_peak, gb
from core.methods.corpus import CorpusParams
from core.methods.registry import params_for
from core.methods.training import TrainParams
from core.pipeline import stage_plan
from core.progress import StagePlan
from core.recipe import Recipe

# The pair loss weight used when pairs are chosen and the weight is left empty or 0: the bench's setting
# (bench/levers.py, "pairs-light").
PAIR_WEIGHT = 0.05
# Per domain: share slider, source checkboxes, uploaded files, upload text field(s).
DOMAIN_FIELDS = ("share", "sources", "files", "fields")
FORM_FIELDS: tuple[str, ...] = (
    "name", "teacher", "trust_remote_code", "method",
    "endpoint_kind", "endpoint_url", "endpoint_model", "api_key_env", "query_prefix", "document_prefix",
    "student_tokenizer", "language",
    *(f"{d}:{f}" for d in DOMAINS for f in DOMAIN_FIELDS),
    "corpus_size", "collection_size", "normalise", "dedupe", "min_words", "max_words",
    "use_corpus_vocabulary", "max_vocabulary_size", "min_frequency", "pca_dims", "sif_coefficient",
    "pooling", "quantize_to", "epochs", "patience", "batch_size", "learning_rate", "start_share",
    "pair_sources", "pair_files", "pair_weight", "seed", "evaluate_after",
    "evaluation_rows",
)


def as_form(values: Sequence[Any]) -> dict[str, Any]:
    if len(values) != len(FORM_FIELDS):
        raise DistilleryError(f"The form sent {len(values)} values; {len(FORM_FIELDS)} were expected.")
    return dict(zip(FORM_FIELDS, values))


def _typed(value: Any, label: str) -> float | None:
    """A number from a form field as typed (number boxes send text, so nothing typed is lost): None when
    empty, a message naming the field when it is not a number."""
    if value is None or isinstance(value, bool):
        return None
    text = str(value).strip()
    if not text:
        return None
    try:
        number = float(text.replace("_", ""))
    except ValueError:
        raise DistilleryError(f"{label} must be a number, not '{text[:40]}'.") from None
    if math.isnan(number) or math.isinf(number):
        raise DistilleryError(f"{label} must be a finite number, not '{text[:40]}'.")
    return number


def whole(value: Any, label: str, allow_none: bool = False) -> int | None:
    """A whole number from a form field, or a message that names the field."""
    number = _typed(value, label)
    if number is None:
        if allow_none:
            return None
        raise DistilleryError(f"{label} is empty: type a whole number.")
    if number != int(number):
        raise DistilleryError(f"{label} must be a whole number, not {value}.")
    return int(number)


def decimal(value: Any, label: str, allow_none: bool = False) -> float | None:
    """A number (decimals allowed) from a form field, or a message that names the field."""
    number = _typed(value, label)
    if number is None and not allow_none:
        raise DistilleryError(f"{label} is empty: type a number.")
    return number


def rows_limit(value: Any) -> int | None:
    """Rows per task from a form field: empty or 0 means every row."""
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
    """The domain sliders' values; an empty one is NaN, which `normalise_shares` refuses by name."""
    shares = {}
    for domain in DOMAINS:
        value = _typed(form[f"{domain}:share"], f"The {domain} share")
        shares[domain] = float("nan") if value is None else value
    return shares


def form_uploads(form: dict[str, Any]) -> dict[str, list[Upload]]:
    """The uploaded files per domain, each with the text field(s) typed for that domain."""
    uploads: dict[str, list[Upload]] = {}
    for domain in DOMAINS:
        for file in form.get(f"{domain}:files") or []:
            uploads.setdefault(domain, []).append(Upload(upload_path(file), upload_fields(form, domain)))
    return uploads


def form_pair_uploads(form: dict[str, Any]) -> list[Path]:
    """The pair files uploaded for the corpus method's pair term (none for another method): `jobs.client.submit`
    accepts them into the job's folder and names them in the recipe's `distill.pair_files`."""
    if str(form.get("method") or "") != "corpus":
        return []
    return [upload_path(file) for file in form.get("pair_files") or []]


def pair_weight(form: dict[str, Any], default: float) -> float:
    """The pair loss weight typed; empty or 0 while pair sources or files are chosen: `PAIR_WEIGHT`."""
    weight = decimal(form.get("pair_weight"), "The pair loss weight", allow_none=True)
    if not weight and (form.get("pair_sources") or form.get("pair_files")):
        return PAIR_WEIGHT
    return _or_default(weight, default)


def form_sources(form: dict[str, Any]) -> dict[str, list[str]]:
    return {d: list(form.get(f"{d}:sources") or []) for d in DOMAINS}


def recipe_from_form(form: dict[str, Any]) -> tuple[Recipe, dict[str, list[Upload]]]:
    """The recipe the form describes, and its uploads (accepted into the job's folder on submit).

    Only the chosen method's parameters are read; an empty field takes that method's default. The
    corpus method's uploaded pair files are not in the recipe yet: `form_pair_uploads` gives them to
    `jobs.client.submit`, which names them in `distill.pair_files` once accepted into the job's folder.
    """
    method = str(form.get("method") or "vocabulary")
    defaults = params_for(method)
    params: dict[str, Any] = dict(
        pca_dims=whole(form.get("pca_dims"), "pca_dims", allow_none=True) or None,
        sif_coefficient=decimal(form.get("sif_coefficient"), "The SIF coefficient", allow_none=True) or None,
        pooling=str(form.get("pooling")), quantize_to=str(form.get("quantize_to")),
        use_corpus_vocabulary=bool(form.get("use_corpus_vocabulary")),
        max_vocabulary_size=whole(form.get("max_vocabulary_size"), "The vocabulary size"),
        min_frequency=whole(form.get("min_frequency"), "The minimum frequency"),
    )
    if isinstance(defaults, CorpusParams):
        training = defaults.training
        params["training"] = TrainParams(
            epochs=_or_default(whole(form.get("epochs"), "Epochs", allow_none=True), training.epochs),
            patience=_or_default(whole(form.get("patience"), "Patience", allow_none=True), training.patience),
            batch_size=_or_default(whole(form.get("batch_size"), "The training batch size", allow_none=True),
                                   training.batch_size),
            learning_rate=_or_default(decimal(form.get("learning_rate"), "The learning rate", allow_none=True),
                                      training.learning_rate),
            pair_weight=pair_weight(form, training.pair_weight),
        )
        params["pair_sources"] = tuple(str(name) for name in form.get("pair_sources") or ())
        params["start_share"] = _or_default(decimal(form.get("start_share"), "The share of the fitted start",
                                                    allow_none=True), defaults.start_share)
        params["student_tokenizer"] = str(form.get("student_tokenizer") or "").strip() or None
    recipe = Recipe(
        name=str(form.get("name") or "").strip(),
        teacher=endpoint_from_form(form) or str(form.get("teacher") or "").strip() or Recipe().teacher,
        trust_remote_code=bool(form.get("trust_remote_code")),
        method=method,
        language=str(form.get("language") or "en"),
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


def endpoint_from_form(form: dict[str, Any]) -> EndpointSpec | None:
    """The teacher endpoint the form names, or None (the teacher is then the weights field's). Only
    the name of the key's environment variable is part of it: a key typed in the page is never in a
    recipe (`typed_keys`)."""
    kind = str(form.get("endpoint_kind") or "").strip()
    if not kind:
        return None
    text = {name: str(form.get(name) or "") for name in ("endpoint_url", "endpoint_model", "api_key_env",
                                                          "query_prefix", "document_prefix")}
    spec = EndpointSpec(kind=kind, url=text["endpoint_url"].strip(), model=text["endpoint_model"].strip(),
                        query_prefix=text["query_prefix"], document_prefix=text["document_prefix"],
                        api_key_env=text["api_key_env"].strip() or None)
    spec.validate()
    return spec


def typed_keys(teacher: str | EndpointSpec | TeacherInfo, api_key: str | None = None,
               hub_token: str | None = None) -> dict[str, str]:
    """The keys typed in the Recipe tab's password fields that `teacher` uses, by their id
    (`core.keyring`): an endpoint's API key, a Hub token for a teacher from the Hub (gated ones).

    `teacher` is a recipe's (a name or an `EndpointSpec`: a job about to be submitted) or a saved
    model's (`TeacherInfo`: an evaluation from the Evaluate tab). A recipe that names its key's
    variable and has a key typed too is refused; for a saved model that key was typed for another
    recipe and is left out. A local teacher never gets the Hub token (nothing to download).
    """
    api_key, hub_token = (api_key or "").strip(), (hub_token or "").strip()
    saved = isinstance(teacher, TeacherInfo)
    endpoint = teacher if isinstance(teacher, EndpointSpec) else (
        EndpointSpec.from_dict(teacher.endpoint) if saved and teacher.endpoint is not None else None)
    if endpoint is not None:
        if api_key and endpoint.api_key_env:
            if saved:
                return {}
            raise DistilleryError("Give the endpoint's key one way: type it in the API key field, or name the "
                                  "environment variable that holds it, not both.")
        return {endpoint.fingerprint(): api_key} if api_key else {}
    from_hub = teacher.from_hub if isinstance(teacher, TeacherInfo) else True  # a name: checked when loading
    return {HUB_TOKEN: hub_token} if hub_token and from_hub else {}


def _or_default(value: Any, default: Any) -> Any:
    """An empty field takes the method's default; a 0 stays 0, so validation can explain it."""
    return default if value is None else value


def shares_summary(shares: dict[str, float], sources: dict[str, list[str]], upload_counts: dict[str, int],
                   unserved: Sequence[str] = (), language: str = "en") -> str:
    """Markdown: the normalised shares, and a warning for each domain with a share but no source (one
    the language has no source for, e.g. French academic text, will come out short instead)."""
    try:
        normalised = normalise_shares(shares)
    except DistilleryError as exc:
        return f"⚠️ {exc}"
    cells = " · ".join(f"**{d}** {normalised[d]:.1%}" for d in DOMAINS)
    missing = [d for d in DOMAINS if normalised[d] > 0 and not sources.get(d) and not upload_counts.get(d)]
    warning = "".join(
        f"\n\n⚠️ **{d}** has a share of {normalised[d]:.1%} but no {LANGUAGES.get(language, language)} source "
        "exists: it will come out short (upload a file, or set its share to 0)." if d in unserved else
        f"\n\n⚠️ **{d}** has a share of {normalised[d]:.1%} but no source: choose one, upload "
        f"a file, or set its share to 0." for d in missing)
    return f"Normalised shares: {cells}{warning}"


@dataclass(frozen=True)
class Preset:
    """A starting point on the Recipe tab: the method and corpus size; everything else keeps its default."""

    title: str
    method: str
    corpus_size: int


PRESETS: dict[str, Preset] = {
    "quick": Preset("Quick", "vocabulary", 20_000),
    "best": Preset("Best quality", "corpus", 100_000),
}
CUSTOM = "custom"


def preset_choices() -> list[tuple[str, str]]:
    """(label, key) pairs, each label with the preset's estimated time (`estimate`)."""
    choices = [(f"{p.title}: {p.method} method, {p.corpus_size:,} texts (≈ {duration(_plan_seconds(p))})", key)
               for key, p in PRESETS.items()]
    return [*choices, ("Custom: my own settings", CUSTOM)]


def _plan_seconds(preset: Preset) -> float:
    return paced_plan(Recipe(method=preset.method, corpus_size=preset.corpus_size)).total_seconds


def paced_plan(recipe: Recipe) -> StagePlan:
    """The recipe's stage plan at this machine's measured pace (`core.pace`)."""
    return stage_plan(recipe).scaled(pace.factor("distillation"))


def duration(seconds: float) -> str:
    """A rough duration for people: "40 s", "12 min", "1 h 20 min"."""
    if seconds < 90:
        return f"{max(5, round(seconds / 5) * 5):.0f} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 90 else f"{minutes // 60} h {minutes % 60:02d} min"


def estimate(form: dict[str, Any]) -> str:
    """Markdown: how long the form's recipe should take, and where the time goes (the pipeline bench's
    stage fits on a 2-core CPU), or why it cannot be estimated yet."""
    try:
        recipe, _ = recipe_from_form(form)
    except (DistilleryError, ValueError, TypeError) as exc:
        return f"⏱️ No estimate yet: {exc}"
    return estimate_recipe(recipe)


def estimate_recipe(recipe: Recipe) -> str:
    plan = paced_plan(recipe)
    top = sorted(plan.stages, key=lambda s: -s[1])[:2]
    where = ", ".join(f"{name} {seconds / plan.total_seconds:.0%}" for name, seconds in top)
    jobs = pace.measured("distillation")
    basis = (f"on this machine (its pace over {jobs} finished job{'s' if jobs > 1 else ''})" if jobs else
             "on a 2-core CPU (the pipeline bench; this machine's own pace is used once a job has finished)")
    return f"⏱️ Estimated time: **about {duration(plan.total_seconds)}** {basis} — mostly {where}." + _memory_line(recipe)


def _memory_line(recipe: Recipe) -> str:
    """The recipe's estimated peak memory against what the machine has free (`core.memory`), or nothing
    while the teacher cannot be resolved (the submit names that)."""
    try:
        teacher = resolve_teacher(recipe.teacher, recipe.trust_remote_code, settings.teacher_dirs())
        estimate = estimate_peak(recipe, teacher)
        free, basis = available_mb()
    except (DistilleryError, ValueError, TypeError):
        return ""
    line = f"\n\n🧠 Peak memory: **about {gb(estimate.peak_mb)}** (the {estimate.peak_stage} stage); {basis} {gb(free)}"
    return line + (" — **too much: this recipe will be refused.**" if estimate.peak_mb > free else ".")


def answer(value: Any, missing: str, action: Callable[[Any], Any], report: Callable[[Any], str]) -> str:
    """A button's Markdown answer: `missing` when nothing is chosen, `report(action(value))` when the
    action works, and the user's error (a `DistilleryError`) with a cross when it is refused."""
    if not value:
        return missing
    try:
        return report(action(value))
    except DistilleryError as exc:
        return f"❌ {exc}"
