"""Labs 1 and 3 of the convolution chapter: a kernel on a real image, and one output pixel of its
feature map computed step by step. Computation: primer.conv; figures: primer.conv_figures."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from app import ui
from app.widgets.conv_common import (
    FALLBACK_IMAGE,
    LabImage,
    clamp,
    play_labels,
    sample,
    sample_map,
    show_error,
    text_field,
    uploaded_image,
)
from primer import conv
from primer import conv_figures as figs
from primer.conv import ConvSettingError

# ---- lab 1: a kernel on a real image ----------------------------------------------------------


def set_custom(lab, weights) -> None:
    lab.set(kernel=conv.CUSTOM_KERNEL, custom=conv.kernel_text(weights))


def kernel_editor(page, lab, weights) -> None:
    """The editable grid over the kernel's text form (the text is what the URL keeps)."""
    grid_key = f"kernel.grid.{lab.state().custom}"  # a fresh grid whenever the text changes
    frame = pd.DataFrame(weights.astype(np.float64), columns=[str(i) for i in range(len(weights))])
    st.data_editor(frame, key=grid_key, hide_index=True,
                   on_change=lambda: set_custom(lab, conv.edited_kernel(weights, st.session_state[grid_key])))  # fmt: skip
    side, total = 8 - len(weights), float(weights.sum())  # 3 ↔ 5
    left, right = st.columns(2)
    left.button(page.t("resize", side=side), width="stretch",
                on_click=lambda: set_custom(lab, conv.resize_kernel(weights, side)))  # fmt: skip
    right.button(page.t("normalize"), width="stretch", disabled=abs(total) < 1e-9 or abs(total - 1) < 1e-6,
                 on_click=lambda: set_custom(lab, weights / total))  # fmt: skip


def kernel_weights(page, lab, kernel_name: str) -> np.ndarray:
    """The chosen kernel's weights, with the grid editor for your own (identity while its text is wrong)."""
    weights = conv.KERNELS.get(kernel_name, conv.KERNELS["identity"]).weights
    if kernel_name != conv.CUSTOM_KERNEL:
        st.button(page.t("edit_copy"), on_click=lambda: set_custom(lab, weights))
        return weights
    try:
        weights = conv.parse_kernel_text(lab.state().custom)
        kernel_editor(page, lab, weights)
    except ConvSettingError as error:
        show_error(page, "kernel", error)
        st.warning(page.t("kernel.fallback"))
    return weights


def kernel_lab(page) -> LabImage:
    """Lab 1; returns the image and feature map that the later labs work on."""
    st.header(page.t("lab.kernel"))
    lab = page.lab(conv.KernelLab)
    lab.presets()
    names = {n: ui.bi({"en": i.en, "zh": i.zh}) for n, i in conv.SAMPLE_IMAGES.items()}
    names[conv.UPLOAD_IMAGE] = page.t("upload")
    left, right = st.columns(2)
    with left:
        image_name = lab.selectbox("image", "image", options=list(names), format_func=names.get, keep=True)
    with right:
        kernel_name = lab.selectbox("kernel", "kernel", options=[*conv.KERNELS, conv.CUSTOM_KERNEL],
                                    format_func=lambda k: page.t(f"kernel.{k}"), keep=True)  # fmt: skip
    key = FALLBACK_IMAGE if image_name == conv.UPLOAD_IMAGE else image_name
    image, spacing = sample(key)
    if image_name == conv.UPLOAD_IMAGE and (upload := uploaded_image(page)) is not None:
        (image, spacing), key = upload, None

    controls_col, grid_col, text_col = st.columns([2, 2, 3])
    with controls_col:
        lab.segmented("border", "border", options=conv.BORDERS, format_func=lambda b: page.t(f"border.{b}"))
        editor = st.container()  # the grid goes above the text box, but the text box is read first
        text_field(page, lab, "custom", "custom", on_change=lambda: lab.set(kernel=conv.CUSTOM_KERNEL))
        with editor:
            weights = kernel_weights(page, lab, kernel_name)
    with grid_col:
        ui.figure(figs.kernel_figure(weights, page.t("kernel.title", k=len(weights))), height=280)
    with text_col:
        if kernel_name in conv.KERNELS:
            st.markdown(ui.bi({"en": conv.KERNELS[kernel_name].en, "zh": conv.KERNELS[kernel_name].zh}))
        st.caption(page.t("kernel.sum", total=float(weights.sum())))
    kernel_text, border = conv.kernel_text(weights), lab.state().border
    try:
        fmap = sample_map(key, kernel_text, border) if key else conv.apply_kernel(image, weights, border)
    except ConvSettingError as error:  # mirroring an upload too small for the kernel
        show_error(page, "kernel", error)
        border, fmap = "same", conv.apply_kernel(image, weights, "same")
    titles = (page.t("fig.input", h=image.shape[0], w=image.shape[1]),
              page.t("fig.map", h=fmap.shape[0], w=fmap.shape[1]))  # fmt: skip
    ui.figure(figs.image_and_map_figure(image, fmap, titles), height=620)
    st.markdown(page.t("fig.map.says", **figs.feature_map_summary(fmap)))
    return LabImage(image, spacing, key, kernel_text, border, fmap)


# ---- lab 3: one output pixel, step by step -----------------------------------------------------


def jump_to(lab, fmap: np.ndarray, sign: int) -> None:
    row, col = np.unravel_index(int(np.argmax(sign * fmap)), fmap.shape)
    lab.set(row=int(row), col=int(col))


def picked(lab, source: LabImage) -> None:
    """A click on the image or the crop: that pixel's output position ("valid" maps are offset)."""
    points = st.session_state["dotprod.pick"]["selection"]["points"]
    if points:
        fmap = source.fmap
        offset = (source.image.shape[0] - fmap.shape[0]) // 2
        row, col = (int(round(points[0][axis])) - offset for axis in ("y", "x"))
        lab.set(row=min(max(row, 0), fmap.shape[0] - 1), col=min(max(col, 0), fmap.shape[1] - 1))


@st.fragment
def dot_lab(page, source: LabImage) -> None:
    st.header(page.t("lab.dotprod"))
    lab = page.lab(conv.DotLab)
    lab.presets()
    fmap = source.fmap
    cols = st.columns(4)
    for col, field, top in zip(cols, ("row", "col"), fmap.shape, strict=False):
        clamp(lab, field, top - 1)
        with col:  # no max_value: the default may lie outside a small image, and clamp() fixes that
            lab.number(field, field, min_value=0, keep=True)
    cols[2].button(page.t("strongest_pos"), on_click=jump_to, args=(lab, fmap, 1), width="stretch")
    cols[3].button(page.t("strongest_neg"), on_click=jump_to, args=(lab, fmap, -1), width="stretch")
    s = lab.state()
    step = conv.feature_map_step(source.image, conv.parse_kernel_text(source.kernel_text), s.row, s.col,
                                 source.border)  # fmt: skip
    where = figs.patch_context_figure(source.image, step, (page.t("fig.where"), page.t("fig.crop")))
    where.update_layout(height=int(440 * (1.35 if ui.presenting() else 1.0)))  # as ui.figure does
    st.plotly_chart(where, key="dotprod.pick", on_select=lambda: picked(lab, source), selection_mode="points",
                    config={"displaylogo": False})  # fmt: skip
    st.caption(page.t("click_to_pick"))
    titles = (page.t("fig.patch"), page.t("fig.kernel"), page.t("fig.products"))
    ui.figure(figs.dot_product_figure(step, titles, page.t("fig.sum"), play_labels(page)))
    st.markdown(page.t("fig.dot.says", row=s.row, col=s.col, total=step.total, value=float(fmap[s.row, s.col])))
    with st.expander(page.t("written_out")):
        terms = [f"{p:.3f}×({w:.3g})" for p, w in zip(step.patch.ravel(), step.kernel.ravel(), strict=True)]
        st.code(" + ".join(terms) + f"\n= {step.total:.4f}", language=None, wrap_lines=True)
