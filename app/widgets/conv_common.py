"""Shared pieces of the convolution chapter's labs: the image and feature map that lab 1 hands to
the others, the cached computations behind them, the user's DICOM, and small UI helpers.

Caching: the sample images and everything derived from them are cached by their settings
(`st.cache_data`); an uploaded image is kept in this session only and is never cached.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import streamlit as st

from app import ui
from primer import conv
from primer.conv import ConvSettingError
from primer.dicom import DicomError, read_dicom

UPLOAD = "convolutions.upload"  # session only: the user's image never leaves this session
UPLOAD_WIDGET = "kernel.file"
FALLBACK_IMAGE = "ct_small"  # stands in while no upload has been decoded


@dataclass(frozen=True)
class LabImage:
    """Lab 1's choices, which labs 2–6 build on."""

    image: np.ndarray  # (H, W) float32 in [0, 1]
    spacing: float | None  # millimetres per pixel, when the file says
    key: str | None  # the sample's name, which keys the caches; None for an upload
    kernel_text: str  # the kernel as text (what the URL keeps)
    border: str  # "same", "reflect" or "valid"
    fmap: np.ndarray  # (H', W') the feature map


def show_error(page, prefix: str, error) -> None:
    """A coded error from the core as a translated message (`convolutions.<prefix>.error.<code>`);
    the DICOM reader's errors in the words the imaging chapter's viewer uses for them."""
    if isinstance(error, DicomError):
        from app.widgets import dicom_viewer

        dicom_viewer.show_error(error)
        return
    st.error(ui.error_message(f"{page.id}.{prefix}", error.code, **error.detail))


def text_field(page, lab, field: str, label: str, **kwargs) -> None:
    """A text box bound to the URL like the lab's other widgets (it holds an edited table).
    Drawn on every run: a bound widget that appears only after a preset set its value would
    leave that value out of the address."""
    st.text_input(page.t(label), key=lab.key(field), value=lab.defaults[field], help=page.t(f"{label}.help"),
                  **ui.URL_STATE, **kwargs)  # fmt: skip


def clamp(lab, field: str, top: int) -> None:
    """Keep a position inside an output that shrank (before its widget is drawn)."""
    if st.session_state.get(lab.key(field), lab.defaults[field]) > top:
        st.session_state[lab.key(field)] = top


def play_labels(page) -> tuple[str, str]:
    return page.t("play"), page.t("pause")


# ---- cached computations on the bundled images -----------------------------------------------


@st.cache_data(show_spinner=False, max_entries=16)
def sample(name: str) -> tuple[np.ndarray, float | None]:
    return conv.sample_image(name), conv.sample_pixel_spacing(name)


@st.cache_data(show_spinner=False, max_entries=64)
def sample_map(name: str, kernel: str, border: str) -> np.ndarray:
    return conv.apply_kernel(sample(name)[0], conv.parse_kernel_text(kernel), border)


@st.cache_data(show_spinner=False, max_entries=32)
def sample_activated(name: str, kernel: str, border: str, activation: str, gain: float, slope: float) -> np.ndarray:
    return conv.activate(gain * sample_map(name, kernel, border), activation, slope)


def activated(source: LabImage, state) -> np.ndarray:
    """Lab 1's feature map × gain through the chosen activation (cached for the samples)."""
    if source.key is not None:
        return sample_activated(source.key, source.kernel_text, source.border, state.activation, state.gain,
                                state.negative_slope)  # fmt: skip
    return conv.activate(state.gain * source.fmap, state.activation, state.negative_slope)


@st.cache_data(show_spinner=False, max_entries=16)
def batchnorm_batch(first: str, size: int) -> tuple[np.ndarray, conv.BatchNormDemo]:
    """The lab image first, then the other samples: (N, 3, 64, 64) maps and one batch-norm step."""
    names = [first] + [n for n in conv.SAMPLE_IMAGES if n != first]
    batch = conv.batch_feature_maps([sample(n)[0] for n in names[:size]])
    return batch, conv.batchnorm_demo(batch)


@st.cache_data(show_spinner=False, max_entries=4)
def default_report() -> conv.FilterReport:
    default = ui.default_model()
    start = conv.starting_filters(default.lab, default.model.head.out_features)
    return conv.filter_report(conv.filter_weights(default.model), start)


@st.cache_data(show_spinner=False, max_entries=32)
def default_maps(name: str, resolution: str, stage: str) -> tuple[np.ndarray, np.ndarray]:
    return conv.learned_and_classic_maps(ui.default_model().model, sample(name)[0], resolution, stage)


# ---- the user's DICOM ------------------------------------------------------------------------


def read_upload() -> None:
    """Decode the uploaded DICOM once and keep only the lab image, in this session."""
    file = st.session_state.get(UPLOAD_WIDGET)
    st.session_state.pop(UPLOAD, None)
    if file is not None:
        try:
            image, spacing = conv.image_from_dicom(read_dicom(file.getvalue()))
            st.session_state[UPLOAD] = {"image": image, "spacing": spacing, "name": file.name}
        except (DicomError, ConvSettingError) as error:
            st.session_state[UPLOAD] = {"error": error}


def uploaded_image(page) -> tuple[np.ndarray, float | None] | None:
    """The uploader, then the decoded image or a message; None until a file decodes."""
    st.file_uploader(page.t("upload.file"), key=UPLOAD_WIDGET, on_change=read_upload)
    upload = st.session_state.get(UPLOAD) or {}
    if "image" in upload:
        st.text(page.t("upload.shown", name=upload["name"]))  # a file name is text, never markup
        return upload["image"], upload["spacing"]
    if "error" in upload:
        show_error(page, "upload", upload["error"])
    else:
        st.info(page.t("upload.none"))
    return None
