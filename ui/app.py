"""The Gradio app: four tabs over `core` and `jobs`. Layout only; the work happens elsewhere."""

from __future__ import annotations

import gradio as gr

from core.corpus.sources import load_catalogue
from ui import compare_tab, evaluate_tab, jobs_tab, recipe_tab

TITLE = "Distillery — distil a sentence-embedding model into a fast static model"


def build_app() -> gr.Blocks:
    catalogue = load_catalogue()
    with gr.Blocks(title="Distillery") as demo:
        gr.Markdown(f"# 🥃 {TITLE}\nBuild a corpus, distil the teacher into a Model2Vec static model in a "
                    "background worker, then see what the speed costs in quality.")
        with gr.Tabs():
            with gr.Tab("Recipe", id="recipe"):
                recipe_tab.build(catalogue)
            with gr.Tab("Jobs", id="jobs"):
                jobs = jobs_tab.build()
            with gr.Tab("Compare", id="compare"):
                compare = compare_tab.build()
            with gr.Tab("Evaluate", id="evaluate"):
                evaluate = evaluate_tab.build()
        gr.api(jobs_tab.api_job_status, api_name="job_status")
        demo.load(jobs_tab.refresh, None, jobs["refresh_outputs"], api_visibility="private")
        compare_tab.on_page_load(demo, compare)
        demo.load(lambda: gr.Dropdown(choices=compare_tab.model_choices()), None, evaluate["models"],
                  api_visibility="private")
    return demo
