"""Recipe tab: domain sliders and sources, cleaning, distillation parameters, preview, submit."""

from __future__ import annotations

from typing import Any

import gradio as gr
import pandas as pd

from core.corpus.build import preview_domains
from core.corpus.pairs import load_pair_sources
from core.corpus.plan import DEFAULT_SHARES, DOMAINS
from core.corpus.sources import SourceCatalogue
from core.encoders.endpoint import KINDS
from core.encoders.package import PACKAGE_TEACHERS
from core.errors import DistilleryError
from core.keyring import holding
from core.languages import LANGUAGES
from core.limits import Limits
from core.methods.corpus import CorpusParams
from core.methods.registry import METHODS, params_for
from core.methods.vocabulary import POOLING, QUANTIZE, VocabularyParams
from core.public import allowed_teachers, apply_public_policy
from core.recipe import Recipe
from core.settings import public_mode
from jobs import client
from ui.forms import (
    CUSTOM,
    FORM_FIELDS,
    PAIR_WEIGHT,
    PRESETS,
    as_form,
    estimate,
    estimate_recipe,
    form_pair_uploads,
    form_sources,
    form_uploads,
    preset_choices,
    recipe_from_form,
    shares_from_form,
    shares_summary,
    typed_keys,
)
from ui.queueing import CORPUS, SUBMIT
from ui.visitors import expensive, limits_note, visitor
from ui.widgets import holding_typed_keys, number_field

PAIRS_INFO = ("labelled pairs (a question and its answer, a sentence and its paraphrase) trained with in-batch "
              "negatives")
PACKAGE_HINT = ", ".join(t.teacher_name for t in PACKAGE_TEACHERS.values())
METHOD_INFO = ("vocabulary: model2vec's distill, each token embedded alone (fast). corpus: vectors and token "
               "weights trained so each corpus text's embedding matches the teacher's (slower, closer to it).")


def build(catalogue: SourceCatalogue) -> dict[str, Any]:
    """Lay out the tab; returns its components by form field name (plus the buttons and outputs).

    The essentials come first (a preset, the method, the domain shares, the corpus size); sources,
    cleaning and every distillation knob wait in closed accordions, and the corpus method's training
    fields are shown only when that method is chosen.
    """
    defaults, params, corpus = Recipe(), VocabularyParams(), CorpusParams()
    c: dict[str, Any] = {}
    gr.Markdown("### 1 · What to make")
    with gr.Row():
        preset = gr.Radio(preset_choices(), value="quick", label="Preset",
                          info="a starting point; any change below makes it your own", scale=3, min_width=260)
        c["method"] = gr.Radio(list(METHODS), value=defaults.method, label="Method", info=METHOD_INFO, scale=2,
                               min_width=220)
    with gr.Row():
        c["name"] = gr.Textbox(label="Model name", placeholder="my-static-model", scale=2, min_width=200,
                               info="names the model folder and its card (letters, digits and dashes)")
        c["corpus_size"] = number_field("Corpus size (texts)", defaults.corpus_size,
                                   "more texts: a better vocabulary and, for the corpus method, better vectors; "
                                   "slower", scale=1)
    estimate_md = gr.Markdown(estimate_recipe(Recipe(method=PRESETS["quick"].method,
                                                     corpus_size=PRESETS["quick"].corpus_size)))
    gr.Markdown("### 2 · Corpus\nEach domain's share of the corpus (normalised to 100%). " + _hub_note(catalogue))
    c["language"] = gr.Radio([(name, code) for code, name in LANGUAGES.items()], value=defaults.language,
                             label="Language", info="the corpus's language (it chooses each domain's sources "
                             "below); English and French: a cross-lingual student, each domain half of each. "
                             "French has no academic source: its share comes out short")
    with gr.Row():
        for domain in DOMAINS:
            c[f"{domain}:share"] = gr.Slider(0, 100, value=DEFAULT_SHARES[domain], step=1, label=domain,
                                             min_width=150)
    shares_md = gr.Markdown(shares_summary(DEFAULT_SHARES, {d: catalogue.default_keys(d) for d in DOMAINS}, {}))
    with gr.Accordion("Sources per domain, and your own files", open=False):
        for domain in DOMAINS:
            with gr.Row():
                c[f"{domain}:sources"] = gr.CheckboxGroup(_source_choices(catalogue, domain, defaults.language),
                                                          value=catalogue.default_keys(domain, defaults.language),
                                                          label=f"{domain}: sources", scale=3, min_width=240)
                c[f"{domain}:files"] = gr.File(label=f"{domain}: upload .txt/.jsonl/.csv/.parquet",
                                               file_count="multiple", scale=2, min_width=200, height=170)
                c[f"{domain}:fields"] = gr.Textbox(label="text field(s) of uploads", value="text", scale=1,
                                                   min_width=160, info="comma-separated, for .jsonl/.csv/.parquet")
    with gr.Accordion("Advanced: teacher, cleaning, vocabulary, output, training", open=False):
        with gr.Row():
            c["teacher"] = gr.Textbox(label="Teacher", value=defaults.teacher, scale=3, min_width=240,
                                      info=f"this public studio's teachers: {', '.join(allowed_teachers())}"
                                      if public_mode() else "a sentence-transformers id on the Hub, a local folder, "
                                      f"or an installed package's function ({PACKAGE_HINT}; the corpus method only)")
            c["trust_remote_code"] = gr.Checkbox(label="Trust remote code", value=False, scale=1, min_width=200,
                                                 info="only for teachers whose own code you trust")
            hub_token = gr.Textbox(label="Hub token", type="password", scale=1, min_width=200,
                                   info="for a gated teacher; held for the job, never saved (or set HF_TOKEN)")
        gr.Markdown("**Or a teacher reached over HTTP** (an embeddings API; the corpus method only). Its API "
                    "key: type it (held in memory for the job, never saved), or name an environment variable of "
                    "the server that holds it.")
        with gr.Row():
            c["endpoint_kind"] = gr.Dropdown([("none: the teacher above", ""), *((k.title, k.name)
                                              for k in KINDS.values())], value="", label="Endpoint kind",
                                             min_width=200, info="OpenAI /v1/embeddings, Ollama /api/embed, TEI /embed")
            c["endpoint_url"] = gr.Textbox(label="Endpoint URL", placeholder="http://localhost:11434", scale=2,
                                           min_width=220, info="the server's base URL")
            c["endpoint_model"] = gr.Textbox(label="Endpoint model", placeholder="all-minilm", min_width=160,
                                             info="the name the API expects")
            api_key = gr.Textbox(label="API key", type="password", min_width=160,
                                 info="held for the job, never saved")
            c["api_key_env"] = gr.Textbox(label="…or its variable", placeholder="OPENAI_API_KEY", min_width=160,
                                          info="the environment variable holding the key")
        with gr.Row():
            c["query_prefix"] = gr.Textbox(label="Query prefix", placeholder="query: ", min_width=160,
                                           info="prepended to queries (Compare, Evaluate)")
            c["document_prefix"] = gr.Textbox(label="Document prefix", placeholder="passage: ", min_width=160,
                                              info="prepended to every corpus text")
            c["student_tokenizer"] = gr.Textbox(label="Student tokenizer", placeholder="the teacher's default", scale=2,
                                                min_width=220, info="for an endpoint or package teacher: a tokenizer "
                                                "folder, a Hub id or package:<name> (empty: the package teacher's own, "
                                                "else the bundled English one)")
        with gr.Row():
            c["normalise"] = gr.Checkbox(label="Normalise unicode and whitespace", value=True, min_width=220,
                                         info="NFKC, one space between words")
            c["dedupe"] = gr.Checkbox(label="Drop exact duplicates", value=True, min_width=200,
                                      info="repeated passages would count twice")
            c["min_words"] = number_field("Min words per passage", defaults.cleaning.min_words,
                                     "shorter passages are dropped")
            c["max_words"] = number_field("Max words per passage", defaults.cleaning.max_words,
                                     "longer passages are cut")
        with gr.Row():
            c["use_corpus_vocabulary"] = gr.Checkbox(label="Add corpus words to the vocabulary", value=True,
                                                     min_width=240,
                                                     info="frequent corpus words become tokens of their own")
            c["max_vocabulary_size"] = number_field("Max corpus words", params.max_vocabulary_size,
                                               "more words: a larger model, fewer words split into pieces")
            c["min_frequency"] = number_field("Min word frequency", params.min_frequency,
                                         "a corpus word must appear this often to be added")
        with gr.Row():
            c["pca_dims"] = number_field("pca_dims", params.pca_dims,
                                    "output dimensions (empty: the teacher's); fewer: smaller and faster, "
                                    "a little less accurate")
            c["sif_coefficient"] = number_field("SIF coefficient", params.sif_coefficient,
                                           "down-weights frequent tokens (smaller: stronger); empty: off")
            c["pooling"] = gr.Dropdown(list(POOLING), value=params.pooling, label="Pooling", min_width=160,
                                       info="how the teacher's token outputs become one vector")
            c["quantize_to"] = gr.Dropdown(list(QUANTIZE), value=params.quantize_to, label="Quantize to",
                                           min_width=160, info="smaller on disk; float16 loses nothing measurable")
        with gr.Group(visible=defaults.method == "corpus", elem_id="corpus-training") as training_group:
            gr.Markdown("**Corpus method: training**")
            with gr.Row():
                c["epochs"] = number_field("Epochs", corpus.training.epochs, "passes over the corpus (at most)")
                c["patience"] = number_field("Early-stop patience", corpus.training.patience,
                                        "epochs without improvement before stopping")
                c["batch_size"] = number_field("Training batch size", corpus.training.batch_size, "texts per step")
                c["learning_rate"] = number_field("Learning rate", corpus.training.learning_rate,
                                             "too high: unstable; too low: slow to improve")
                c["start_share"] = number_field("Share of the fitted start (0–1)", corpus.start_share,
                                           "averaged with the trained table; 0 = trained table only")
            with gr.Row(equal_height=True):  # the file box is the tallest: the row's cells match it
                pair_choices, pair_note = _pair_choices(catalogue)
                c["pair_sources"] = gr.CheckboxGroup(pair_choices, value=[], label="Text pairs", scale=3,
                                                     min_width=240, info=PAIRS_INFO + pair_note)
                c["pair_files"] = gr.File(label="Your pairs (two columns: CSV, TSV or JSONL)", file_count="multiple",
                                          scale=2, min_width=200, height=170)
                c["pair_weight"] = number_field("Pair loss weight", f"{corpus.training.pair_weight:g}",
                                                f"0 or empty while pairs are chosen: {PAIR_WEIGHT}, the bench's "
                                                f"setting")
        with gr.Row():
            c["collection_size"] = number_field("Search collection (texts)", defaults.collection_size,
                                           "corpus texts the Compare tab searches (embedded at the end)")
            c["seed"] = number_field("Seed", defaults.seed, "the same seed and recipe give the same model")
            c["evaluate_after"] = gr.Checkbox(label="Evaluate when saved", value=False, min_width=200,
                                              info="queues an evaluation (Evaluate tab)")
            c["evaluation_rows"] = number_field("…on rows per task", "", "empty: every row; 200 for a quick look")
    with gr.Row():
        preview_domain = gr.Dropdown(["all domains", *DOMAINS], value="all domains", label="Preview",
                                     info="three samples per domain from its sources", min_width=180)
        preview_btn = gr.Button("Preview corpus samples", min_width=180)
        cost_btn = gr.Button("Estimate API requests", min_width=180)
        submit_btn = gr.Button("Distill", variant="primary", min_width=180)
    limits_note(Limits.recipe_line)
    submit_md = gr.Markdown()
    preview_df = gr.Dataframe(headers=["domain", "source", "text"], label="Preview", wrap=True, interactive=False)

    inputs = [c[f] for f in FORM_FIELDS]
    key_fields = [api_key, hub_token]  # never form inputs: `holding_typed_keys`
    quiet = {"api_visibility": "private", "show_progress": "hidden"}
    c["method"].change(_method_changed, c["method"], [c["sif_coefficient"], training_group], **quiet)
    preset.input(_apply_preset, preset, [c["method"], c["corpus_size"]], **quiet)
    for field in ("method", "corpus_size", "epochs", "collection_size", "use_corpus_vocabulary"):
        if field in ("method", "corpus_size"):
            c[field].input(lambda: CUSTOM, None, preset, **quiet)
        c[field].change(lambda *v: estimate(as_form(v)), inputs, estimate_md, **quiet)
    for domain in DOMAINS:
        for part in ("share", "sources", "files"):
            c[f"{domain}:{part}"].change(lambda *v: _summary(catalogue, v), inputs, shares_md, **quiet)
    c["language"].change(lambda language: _language_sources(catalogue, language), c["language"],
                         [c[f"{d}:sources"] for d in DOMAINS], **quiet)
    c["language"].change(lambda *v: _summary(catalogue, v), inputs, shares_md, **quiet)
    preview_btn.click(lambda *v: _preview(catalogue, v[:-1], v[-1]), [*inputs, preview_domain], preview_df,
                      api_name="preview_corpus", **CORPUS)
    typed, hold = holding_typed_keys(key_fields)
    cost_btn.click(**hold).then(lambda *v: _api_cost(catalogue, v[:-1], v[-1]), [*inputs, typed], submit_md,
                                api_name="estimate_api_cost", **CORPUS)

    def submit(request: gr.Request, *values: Any) -> str:  # the request first: Gradio passes it by position
        return _submit(catalogue, values[:-1], values[-1], request)

    submit_btn.click(**hold).then(submit, [*inputs, typed], submit_md, api_name="submit_recipe", **SUBMIT)
    return {"components": c, "inputs": inputs, "submit_md": submit_md, "estimate_md": estimate_md,
            "key_fields": key_fields}


def _apply_preset(key: str) -> tuple[Any, Any]:
    preset = PRESETS.get(key)
    if preset is None:
        return gr.Radio(), gr.Textbox()
    return preset.method, str(preset.corpus_size)


def _method_changed(method: str) -> tuple[str, Any]:
    """The SIF coefficient changes meaning with the method (rank-estimated vs real corpus counts), and
    only the corpus method trains."""
    sif = params_for(method).sif_coefficient
    return ("" if sif is None else str(sif)), gr.Group(visible=method == "corpus")


def _pair_choices(catalogue: SourceCatalogue) -> tuple[list[tuple[str, str]], str]:
    """(label, name) per pair source readable on this machine (`config/pairs.yaml`), French ones saying
    so, and a note when none is (or the file cannot be read: the page still opens, and says why)."""
    try:
        sources = load_pair_sources(hub_available=catalogue.hub_available, language="both")
    except DistilleryError as exc:
        return [], f" ({exc})"
    choices = [(f"{s.name} (French)" if s.language == "fr" else s.name, s.name) for s in sources]
    return choices, "" if choices else " (none is readable on this machine: upload your own)"


def _hub_note(catalogue: SourceCatalogue) -> str:
    if catalogue.hub_available:
        return "The Hugging Face Hub is reachable: Hub datasets are streamed."
    return ("The Hugging Face Hub is not reachable: sources are the local corpus folder and the built-in "
            "Python docstrings, plus your uploads.")


def _summary(catalogue: SourceCatalogue, values: tuple[Any, ...]) -> str:
    form = as_form(values)
    language = form.get("language") if form.get("language") in LANGUAGES else "en"
    try:
        shares = shares_from_form(form)
    except DistilleryError as exc:
        return f"⚠️ {exc}"
    return shares_summary(shares, {d: form[f"{d}:sources"] for d in DOMAINS},
                          {d: len(form[f"{d}:files"] or []) for d in DOMAINS}, catalogue.unserved(language), language)


def _source_choices(catalogue: SourceCatalogue, domain: str, language: str) -> list[tuple[str, str]]:
    """(label, key) per source of the domain, the language's own first; French ones say so."""
    return [(f"{s.key} (French)" if s.language == "fr" else s.key, s.key) for s in catalogue.choices(domain, language)]


def _language_sources(catalogue: SourceCatalogue, language: str) -> list[Any]:
    """Each domain's sources for the chosen language: its own listed first, and chosen by default.
    Every source stays a choice, so a recipe may mix in one of the other language on purpose."""
    language = language if language in LANGUAGES else "en"
    return [gr.CheckboxGroup(choices=_source_choices(catalogue, d, language), value=catalogue.default_keys(d, language))
            for d in DOMAINS]


def _preview(catalogue: SourceCatalogue, values: tuple[Any, ...], domain: str | None = None) -> pd.DataFrame:
    """Three cleaned samples per domain, or of one domain when one is chosen."""
    form = as_form(values)
    sources, uploads = form_sources(form), form_uploads(form)
    if domain in DOMAINS:
        sources = {d: (v if d == domain else []) for d, v in sources.items()}
        uploads = {d: v for d, v in uploads.items() if d == domain}
    try:
        rows = preview_domains(catalogue, sources, uploads, n=3)
    except DistilleryError as exc:
        raise gr.Error(str(exc)) from exc
    return pd.DataFrame(rows, columns=["domain", "source", "text"])


def _api_cost(catalogue: SourceCatalogue, values: tuple[Any, ...], typed: dict[str, str] | None = None) -> str:
    """What featurizing the corpus through the endpoint teacher will send, before a job is queued: the
    corpus is built in a throw-away folder (seconds) and counted; nothing is sent but one probe."""
    import tempfile
    from pathlib import Path

    from core.encoders.endpoint import EndpointSpec
    from core.pipeline import estimate_recipe

    try:
        recipe, uploads = recipe_from_form(as_form(values))
        if uploads:
            raise DistilleryError("The estimate counts the catalogue's sources only; submit to include uploads.")
        apply_public_policy(recipe)  # before the probe: a public studio reaches allowed endpoints only
        keys = typed_keys(recipe.teacher, **(typed or {}))
        with tempfile.TemporaryDirectory(prefix="distillery-estimate-") as folder, holding(keys):
            cost = estimate_recipe(recipe, Path(folder), catalogue=catalogue)
    except (DistilleryError, ValueError, TypeError) as exc:
        return f"❌ **No estimate:** {exc}"
    assert isinstance(recipe.teacher, EndpointSpec)
    return f"💰 {cost.sentence(recipe.teacher.title)}"


def _submit(catalogue: SourceCatalogue, values: tuple[Any, ...], typed: dict[str, str] | None = None,
            request: gr.Request | None = None) -> str:
    try:
        form = as_form(values)
        recipe, uploads = recipe_from_form(form)
        with expensive(request, "a distillation"):
            status = client.submit(recipe, catalogue, uploads, typed_keys(recipe.teacher, **(typed or {})),
                                   owner=visitor(request), pair_uploads=form_pair_uploads(form))
    except (DistilleryError, ValueError, TypeError) as exc:
        return f"❌ **Not submitted:** {exc}"
    note = f"\n\n⚠️ {status['warning']}" if status.get("warning") else ""
    return f"✅ Submitted job `{status['job_id']}`: follow it in the **Jobs** tab.{note}"
