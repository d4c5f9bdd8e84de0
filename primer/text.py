"""Text that comes from a user's file, made to show as written wherever the page puts it.

A file name, a tag value or a class folder name is data, not markup. Streamlit reads Markdown
(links, images, emphasis, `$math$`, `:colour[...]` directives) in messages, captions and widget
labels, and Plotly reads a few HTML tags and entities in titles, tick labels and hovers. Each
sink gets its own escape, applied where the text enters it:

    st.error(ui.t("...", name=markdown_literal(file_name)))   # Markdown sinks
    titles = [plot_literal(class_name) for ...]               # Plotly strings
    st.text(name), st.dataframe(rows), st.code(value)          # already literal: nothing to do

Both keep the characters a reader sees; neither deletes anything but line breaks (a newline in
Markdown can start a heading or a list) and what is past `limit`.
"""

from __future__ import annotations

import html
import re

# Every ASCII punctuation character may be backslash-escaped in CommonMark, and an escaped one
# is always shown as itself: no link, emphasis, HTML, entity, directive or math can start.
_MARKDOWN_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]+")


def _one_line(value, limit: int | None) -> str:
    text = _CONTROL.sub(" ", str(value))
    if limit is not None and len(text) > limit:
        text = text[: max(limit - 1, 0)] + "…"
    return text


def markdown_literal(value, limit: int | None = 200) -> str:
    """`value` as Markdown that renders to exactly its characters (on one line, cut at `limit`)."""
    return _MARKDOWN_PUNCTUATION.sub(r"\\\1", _one_line(value, limit))


def plot_literal(value, limit: int | None = 60) -> str:
    """`value` for a Plotly title, label or hover: its tags and entities shown, not read."""
    return html.escape(_one_line(value, limit), quote=False)
