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
