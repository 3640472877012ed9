"""Recipe tab: domain sliders and sources, cleaning, distillation parameters, preview, submit."""

from __future__ import annotations

from typing import Any

import gradio as gr
import pandas as pd

from core.corpus.build import preview_domains
from core.corpus.plan import DEFAULT_SHARES, DOMAINS
from core.corpus.sources import SourceCatalogue
from core.errors import DistilleryError
from core.methods.corpus import CorpusParams
from core.methods.registry import METHODS, params_for
from core.methods.vocabulary import POOLING, QUANTIZE, VocabularyParams
from core.recipe import Recipe
from jobs import client
from ui.forms import (
    FORM_FIELDS,
    as_form,
    form_sources,
    form_uploads,
    recipe_from_form,
    shares_from_form,
    shares_summary,
)


def build(catalogue: SourceCatalogue) -> dict[str, Any]:
    """Lay out the tab; returns its components by form field name (plus the buttons and outputs)."""
    defaults, params, corpus = Recipe(), VocabularyParams(), CorpusParams()
    c: dict[str, Any] = {}
    gr.Markdown("### 1 · Corpus plan\nSet each domain's share of the corpus (they are normalised), and "
                "which sources serve it. " + _hub_note(catalogue))
    with gr.Row():
        c["name"] = gr.Textbox(label="Model name", placeholder="my-static-model", scale=2)
        c["teacher"] = gr.Textbox(label="Teacher (sentence-transformers id or local folder)",
                                  value=defaults.teacher, scale=3)
        c["trust_remote_code"] = gr.Checkbox(label="Trust remote code", value=False, scale=1)
    with gr.Row():
        for domain in DOMAINS:
            c[f"{domain}:share"] = gr.Slider(0, 100, value=DEFAULT_SHARES[domain], step=1, label=domain)
    shares_md = gr.Markdown(shares_summary(DEFAULT_SHARES, {d: catalogue.default_keys(d) for d in DOMAINS}, {}))
    with gr.Accordion("Sources per domain", open=False):
        for domain in DOMAINS:
            with gr.Row():
                choices = [s.key for s in catalogue.by_domain.get(domain, [])]
                c[f"{domain}:sources"] = gr.CheckboxGroup(choices, value=catalogue.default_keys(domain),
                                                          label=f"{domain}: sources", scale=3)
                c[f"{domain}:files"] = gr.File(label=f"{domain}: upload .txt/.jsonl/.csv/.parquet",
                                               file_count="multiple", scale=2, height=90)
                c[f"{domain}:fields"] = gr.Textbox(label="text field(s) of uploads", value="text", scale=1)
    with gr.Row():
        c["corpus_size"] = gr.Number(label="Corpus size (texts)", value=defaults.corpus_size, precision=0)
        c["collection_size"] = gr.Number(label="Search collection (texts)", value=defaults.collection_size,
                                         precision=0)
        c["normalise"] = gr.Checkbox(label="Normalise unicode/whitespace", value=True)
        c["dedupe"] = gr.Checkbox(label="Drop exact duplicates", value=True)
        c["min_words"] = gr.Number(label="Min words per passage", value=defaults.cleaning.min_words, precision=0)
        c["max_words"] = gr.Number(label="Max words per passage", value=defaults.cleaning.max_words, precision=0)
    gr.Markdown("### 2 · Distillation\n**vocabulary**: model2vec's distill, each token embedded alone (fast). "
                "**corpus**: static vectors and token weights trained so that each corpus text's embedding "
                "reproduces the teacher's (the teacher embeds the whole corpus first: slower, closer to "
                "the teacher).")
    with gr.Row():
        c["method"] = gr.Radio(list(METHODS), value=defaults.method, label="Method")
        c["epochs"] = gr.Number(label="Epochs (corpus)", value=corpus.training.epochs, precision=0)
        c["patience"] = gr.Number(label="Early-stop patience (epochs)", value=corpus.training.patience, precision=0)
        c["batch_size"] = gr.Number(label="Training batch size", value=corpus.training.batch_size, precision=0)
        c["learning_rate"] = gr.Number(label="Learning rate", value=corpus.training.learning_rate)
        c["start_share"] = gr.Number(label="Share of the fitted start (0–1)", value=corpus.start_share,
                                     info="averaged with the trained table; 0 = trained table only")
    with gr.Row():
        c["use_corpus_vocabulary"] = gr.Checkbox(label="Add corpus words to the vocabulary", value=True)
        c["max_vocabulary_size"] = gr.Number(label="Max corpus words", value=params.max_vocabulary_size, precision=0)
        c["min_frequency"] = gr.Number(label="Min word frequency", value=params.min_frequency, precision=0)
        c["pca_dims"] = gr.Number(label="pca_dims (empty: none)", value=params.pca_dims, precision=0)
        c["sif_coefficient"] = gr.Number(label="SIF coefficient", value=params.sif_coefficient)
        c["pooling"] = gr.Dropdown(list(POOLING), value=params.pooling, label="Pooling")
        c["quantize_to"] = gr.Dropdown(list(QUANTIZE), value=params.quantize_to, label="Quantize to")
        c["seed"] = gr.Number(label="Seed", value=0, precision=0)
        c["evaluate_after"] = gr.Checkbox(label="Evaluate when saved (Evaluate tab)", value=False)
        c["evaluation_rows"] = gr.Number(label="…on rows per task (0: all)", value=0, precision=0, minimum=0)
    with gr.Row():
        preview_btn = gr.Button("Preview corpus samples")
        submit_btn = gr.Button("Distill", variant="primary")
    submit_md = gr.Markdown()
    preview_df = gr.Dataframe(headers=["domain", "source", "text"], label="Preview", wrap=True, interactive=False)

    inputs = [c[f] for f in FORM_FIELDS]
    c["method"].change(_method_defaults, c["method"], c["sif_coefficient"], api_visibility="private",
                       show_progress="hidden")
    for domain in DOMAINS:
        for part in ("share", "sources", "files"):
            c[f"{domain}:{part}"].change(lambda *v: _summary(v), inputs, shares_md, api_visibility="private",
                                         show_progress="hidden")
    preview_btn.click(lambda *v: _preview(catalogue, v), inputs, preview_df, api_name="preview_corpus")
    submit_btn.click(lambda *v: _submit(catalogue, v), inputs, submit_md, api_name="submit_recipe")
    return {"components": c, "inputs": inputs, "submit_md": submit_md}


def _method_defaults(method: str) -> float | None:
    """The SIF coefficient changes meaning with the method (rank-estimated vs real corpus counts)."""
    return params_for(method).sif_coefficient


def _hub_note(catalogue: SourceCatalogue) -> str:
    if catalogue.hub_available:
        return "The Hugging Face Hub is reachable: Hub datasets are streamed."
    return ("The Hugging Face Hub is not reachable: sources are the local corpus folder and the built-in "
            "Python docstrings, plus your uploads.")


def _summary(values: tuple[Any, ...]) -> str:
    form = as_form(values)
    return shares_summary(shares_from_form(form), {d: form[f"{d}:sources"] for d in DOMAINS},
                          {d: len(form[f"{d}:files"] or []) for d in DOMAINS})


def _preview(catalogue: SourceCatalogue, values: tuple[Any, ...]) -> pd.DataFrame:
    form = as_form(values)
    try:
        rows = preview_domains(catalogue, form_sources(form), form_uploads(form), n=3)
    except DistilleryError as exc:
        raise gr.Error(str(exc)) from exc
    return pd.DataFrame(rows, columns=["domain", "source", "text"])


def _submit(catalogue: SourceCatalogue, values: tuple[Any, ...]) -> str:
    try:
        recipe, uploads = recipe_from_form(as_form(values))
        status = client.submit(recipe, catalogue, uploads)
    except (DistilleryError, ValueError, TypeError) as exc:
        return f"❌ **Not submitted:** {exc}"
    note = f"\n\n⚠️ {status['warning']}" if status.get("warning") else ""
    return f"✅ Submitted job `{status['job_id']}`: follow it in the **Jobs** tab.{note}"
