"""Imaging data and DICOM: open a DICOM, window it, read CT values, follow it to a tensor.

The viewer itself (loading, window controls, image, histogram, metadata) is the shared widget
app/widgets/dicom_viewer.py; the figures and lab states are in primer/imaging_figures.py.
Both labs run as one fragment: a window or frame change reruns them, not the lessons and quiz.
"""

import streamlit as st

from app import ui
from app.widgets import dicom_viewer as viewer
from primer.imaging_figures import INPUT_SIZES, NORMALIZATIONS, TRAIN_WINDOWS, TensorLab, ViewerLab

page = ui.ChapterPage("imaging")
page.lesson("pixels_header")
page.lesson("hounsfield")


def labs() -> None:
    # ── Lab 1: the viewer ────────────────────────────────────────────────────────────────────
    st.header(page.t("viewer.title"))
    lab = page.lab(ViewerLab)
    lab.presets()
    loaded = viewer.source_picker(lab)
    if loaded is not None and loaded.error is not None:
        viewer.show_error(loaded.error)
    image_ready = loaded is not None and loaded.image is not None
    if image_ready:
        frame, center, width = viewer.window_controls(lab, loaded)
        log_counts = lab.toggle("log_counts", "log_counts") if not loaded.image.is_color else True
        viewer.image_panel(loaded, frame, center, width, log_counts=log_counts)
        with st.expander(page.t("metadata.title"), icon=":material/table_view:"):
            viewer.metadata_panel(loaded)

    page.lesson("bit_depth", expanded=False)
    page.lesson("deidentification", expanded=False)

    # ── Lab 2: from DICOM to tensor ──────────────────────────────────────────────────────────
    st.header(page.t("tensor.title"))
    page.lesson("preprocessing")
    tensor = page.lab(TensorLab)
    tensor.presets()
    size_col, norm_col, train_col = st.columns(3)
    with size_col:
        tensor.select_slider("size", "size", options=list(INPUT_SIZES), keep=True)
    with norm_col:
        tensor.selectbox(
            "normalize", "normalize", options=list(NORMALIZATIONS), format_func=lambda v: page.t(f"normalize.{v}")
        )
    with train_col:
        tensor.selectbox(
            "train_window",
            "train_window",
            options=list(TRAIN_WINDOWS),
            format_func=lambda v: page.t(f"train_window.{v}"),
            keep=True,
        )
    if image_ready:
        st.caption(page.t("tensor.lead"))
        viewer.tensor_panel(loaded, frame, center, width, tensor.state())
    else:
        st.info(page.t("tensor.no_image"))


# Presenting moves secondary controls to the sidebar, which a fragment may not write to.
if ui.presenting():
    labs()
else:
    st.fragment(labs)()
page.quiz()
