"""The Gradio app: five tabs over `core` and `jobs`. Layout only; the work happens elsewhere.

`ui.server` serves it (with the page's CSS and script below) beside the embeddings service.
"""

from __future__ import annotations

import gradio as gr

from core.corpus.sources import load_catalogue
from ui import compare_tab, evaluate_tab, jobs_tab, recipe_tab, ship_tab, visitors

TITLE = "Distillery — distil a sentence-embedding model into a fast static model"


CSS = """
/* Table headers on one line (a narrow table scrolls sideways instead of breaking words letter by letter) */
table th, table th * { white-space: nowrap !important; word-break: keep-all !important; }
/* The bars of active jobs (Jobs tab) */
.job-bar { margin: 8px 0 14px; }
.job-head { margin-bottom: 4px; overflow-wrap: anywhere; }
.job-track { background: #e5e7eb; border-radius: 4px; height: 14px; }
.job-fill { background: #f97316; height: 14px; border-radius: 4px; transition: width .4s; }
.job-steps { margin-top: 4px; display: flex; flex-wrap: wrap; gap: 4px 10px; font-size: 0.9em; }
.job-step-waiting { opacity: .55; }
.job-step-running { font-weight: 600; color: #c2410c; }
/* A closed accordion's arrow is rotated past the button's edge: keep it inside */
button.label-wrap { padding-right: 20px; }
/* On a phone, one field per line: side by side, checkbox labels were cut to a letter's width */
@media (max-width: 640px) {
  .row > *, .form > * { min-width: 100% !important; flex-basis: 100% !important; }
  table th, table td { padding-left: 3px !important; padding-right: 3px !important; }
}
/* Labels wrap between words instead of being cut */
label, label span, .wrap .label-text, [data-testid="block-info"] { white-space: normal; overflow-wrap: break-word; }
"""


# A slider's number box accepts any number, and Gradio refuses one past the slider's range with a
# toast while the box keeps showing it and the form keeps the old value. Clamping as the user types
# (before Gradio's own handler, in the capture phase) makes the box show the value the form uses.
CLAMP_SLIDER_BOXES = """
() => {
  const clamp = (event) => {
    const box = event.target;
    if (!(box instanceof HTMLInputElement) || box.dataset.testid !== "number-input" || box.value === "") return;
    const value = Number(box.value);
    if (box.max !== "" && value > Number(box.max)) box.value = box.max;
    else if (box.min !== "" && value < Number(box.min)) box.value = box.min;
  };
  document.addEventListener("input", clamp, true);
  document.addEventListener("change", clamp, true);
}
"""


def import_transformers_whole() -> None:
    """Finish importing transformers before the server's threads start.

    datasets' pickler looks up `transformers.PreTrainedTokenizerBase` whenever "transformers" is in
    `sys.modules`. While the Compare tab's background thread is still importing it, the module is
    there but half-built, and a corpus preview in another thread failed with "module 'transformers'
    has no attribute 'PreTrainedTokenizerBase'". The teacher needs it anyway.
    """
    import transformers

    assert transformers.PreTrainedTokenizerBase is not None  # resolves the lazy attribute now


def build_app() -> gr.Blocks:
    import_transformers_whole()
    catalogue = load_catalogue()
    with gr.Blocks(title="Distillery") as demo:
        gr.Markdown(f"# 🥃 {TITLE}\nBuild a corpus, distil the teacher into a Model2Vec static model in a "
                    "background worker, then see what the speed costs in quality, and ship it.")
        visitors.sign_in()
        with gr.Tabs():
            with gr.Tab("Recipe", id="recipe"):
                recipe = recipe_tab.build(catalogue)
            with gr.Tab("Jobs", id="jobs"):
                jobs = jobs_tab.build()
            with gr.Tab("Compare", id="compare"):
                compare = compare_tab.build()
            with gr.Tab("Evaluate", id="evaluate"):
                evaluate = evaluate_tab.build(recipe["key_fields"])
            with gr.Tab("Ship", id="ship"):
                ship = ship_tab.build()
        gr.api(jobs_tab.api_job_status, api_name="job_status")
        gr.api(jobs_tab.api_jobs, api_name="jobs")
        page_loaded = visitors.page_load(demo)  # public mode: after the page is bound to its visitor
        page_loaded(jobs_tab.refresh, jobs["refresh_inputs"], jobs["refresh_outputs"], api_visibility="private")
        compare_tab.on_page_load(page_loaded, compare)
        evaluate_tab.on_page_load(page_loaded, evaluate)
        ship_tab.on_page_load(page_loaded, ship)
    return demo
