"""Gradio components the tabs share (layout only; the values they send are read by `ui.forms`)."""

from __future__ import annotations

from typing import Any

import gradio as gr


def number_field(label: str, value: Any, info: str, scale: int = 1) -> gr.Textbox:
    """A number field that sends what was typed.

    A browser's number box sends nothing for "fast", and nothing quietly meant the default; as text,
    the value reaches `ui.forms.whole` / `decimal`, which refuse it by the field's name.
    """
    return gr.Textbox(label=label, value="" if value is None else str(value), info=info, scale=scale, min_width=160,
                      max_lines=1, elem_classes=["number-field"])


def holding_typed_keys(fields: list[gr.Textbox]) -> tuple[gr.State, dict[str, Any]]:
    """A State for the Recipe tab's password fields (the API key, the Hub token) and the arguments of a
    private event that copies them into it. An event that needs them is chained after that one
    (`.click(**hold).then(...)`) and reads the State: Gradio's run history records the inputs of
    public events, never a State's, and gradio_client callers send none (they name a variable)."""
    typed = gr.State({})
    hold = {"fn": lambda key, token: {"api_key": key, "hub_token": token}, "inputs": fields, "outputs": typed,
            "api_visibility": "private", "show_progress": "hidden"}
    return typed, hold
