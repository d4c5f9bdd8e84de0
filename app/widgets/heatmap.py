"""A heatmap over an image: opacity slider, colorbar, and the true lesion outlined.

    from app.widgets import heatmap
    heatmap.overlay(image, amap, signed=True, key="mylab.overlay")          # draws its own slider
    heatmap.overlay(image, amap, opacity=lab_state.opacity, mask=mask)     # opacity from a lab

Signed maps (evidence for the class in red, against it in blue) and non-negative maps
(yellow → red) are both transparent where they are near zero, so the anatomy stays readable.
Each map is scaled to itself (primer.saliency_figures.normalized), as the caption under it says.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from app import ui
from primer.saliency_figures import overlay_figure

# The widget's text lives with the chapter that introduced it (lessons/saliency/strings.yaml).
STRINGS = "saliency.heatmap."


def opacity_slider(*, key: str, value: float = 0.5, label: str | None = None) -> float:
    """A 0–1 opacity slider kept for the session (for pages without a lab field for it)."""
    return st.slider(
        label or ui.t(STRINGS + "opacity"),
        0.0,
        1.0,
        value,
        0.05,
        key=key,
        help=ui.t(STRINGS + "opacity.help"),
        persist_state="session",
    )


def overlay(
    image: np.ndarray,
    amap: np.ndarray | None,
    *,
    signed: bool = False,
    opacity: float | None = None,
    mask: np.ndarray | None = None,
    marker: np.ndarray | None = None,
    title: str = "",
    key: str | None = None,
    height: int = 460,
    caption: bool = True,
) -> None:
    """Draw the image with the map on top (or the image alone when `amap` is None). With
    `opacity=None` an opacity slider is drawn above the figure (its key is `<key>.opacity`)."""
    if opacity is None and amap is not None:
        opacity = opacity_slider(key=f"{key or 'heatmap'}.opacity")
    fig = overlay_figure(
        image,
        amap,
        signed=signed,
        opacity=0.5 if opacity is None else opacity,
        mask=mask,
        marker=marker,
        title=title,
        colorbar_title=ui.t(STRINGS + ("colorbar_signed" if signed else "colorbar")),
        hover_label=ui.t(STRINGS + "hover"),
        height=height,
    )
    ui.figure(fig, key=key)
    if caption and amap is not None:
        parts = [ui.t(STRINGS + ("caption_signed" if signed else "caption"))]
        if mask is not None and np.any(mask):
            parts.append(ui.t(STRINGS + "caption_mask"))
        st.caption(" ".join(parts))
