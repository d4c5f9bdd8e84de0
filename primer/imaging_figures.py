"""The imaging chapter's lab states and figures: a DICOM image with a value readout under the
cursor, the histogram of its values with the window drawn on it, the preprocessing steps from
stored values to a network's input tensor, and the chapter's quiz figures.

Figures are language-neutral: every word they show comes in through `labels`, so the page
passes its translations and the quiz builders use numbers and units only.
"""

from __future__ import annotations

import base64
import io
import math
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
from PIL import Image

from primer.dicom import (
    WINDOW_PRESETS,
    DicomImage,
    Step,
    apply_window,
    dicom_to_tensor_steps,
    display_image,
    load_example,
    window_edges,
)
from primer.labstate import register_lab
from primer.quiz import FigureQuestion

# ───────────────────────────────────────── lab states ─────────────────────────────────────────


@register_lab("viewer")
@dataclass
class ViewerLab:
    source: str = "ct_small"  # a chest CT in HU: every window preset means something on it
    center: float = 40.0  # window level in the image's units; 40 HU is soft tissue
    width: float = 400.0  # the mediastinal width: fat to contrast-filled vessels on one ramp
    frame: int = 1  # counted from 1, as viewers number frames and slices
    log_counts: bool = True  # air and background dominate a CT histogram; a log axis keeps tissue visible


# Normalisation after windowing: (mean, std), or None for the image's own statistics.
NORMALIZATIONS: dict[str, tuple[float, float] | None] = {
    "image": None,  # per-image z-score, common when training a small model from scratch
    "imagenet": (0.449, 0.226),  # grey average of ImageNet's RGB means and stds (pretrained models)
    "none": (0.0, 1.0),  # leave the windowed [0, 1] values as they are
}
TRAIN_WINDOWS = ("same", *WINDOW_PRESETS, "full")  # "full": min–max of the image, no window
INPUT_SIZES = (32, 64, 128, 224, 256)


@register_lab("tensor")
@dataclass
class TensorLab:
    size: int = 64  # the app's default classifier takes 64 × 64 inputs
    normalize: str = "image"  # a key of NORMALIZATIONS
    train_window: str = "same"  # the window used when the model was trained; "same" = no mismatch


# ─────────────────────────────────────────── helpers ──────────────────────────────────────────


def _figure(data: list[dict], layout: dict) -> go.Figure:
    """A figure from plain dicts, without plotly's default template.

    Figures here are rebuilt on every slider move, and plotly's property-by-property API
    (update_layout, add_shape, make_subplots) costs tens of milliseconds per figure; one
    construction from dicts costs a few. Streamlit's theme styles the figure in the browser.
    """
    return go.Figure({"data": data, "layout": {"template": "none", **layout}})


def png_data_uri(pixels: np.ndarray) -> str:
    """uint8 (H, W) or (H, W, 3) as an inline PNG: a few tens of kB instead of a JSON array."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buffer, format="PNG", compress_level=1)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _stride(shape: tuple[int, ...], limit: int) -> int:
    """The subsampling step that brings the longer side to at most `limit` pixels."""
    return max(1, math.ceil(max(shape[0], shape[1]) / limit))


def _compact(values: np.ndarray) -> np.ndarray:
    """Integer-valued data as int16/int32 (half the bytes of float32 on the wire), else float32.

    Tested by casting and comparing, which is an order of magnitude faster than np.mod.
    """
    if values.dtype.kind in "iu" or not values.size:
        return values
    low, high = float(values.min()), float(values.max())
    for kind, lowest, highest in ((np.int16, -(2**15), 2**15 - 1), (np.int32, -(2**31), 2**31 - 1)):
        if lowest <= low and high <= highest:
            as_int = values.astype(kind)
            return as_int if np.array_equal(as_int, values) else values.astype(np.float32, copy=False)
    return values.astype(np.float32, copy=False)


def _nice_length(target: float) -> float:
    """1, 2 or 5 × 10^k at or below `target` (for a scale bar)."""
    exponent = math.floor(math.log10(target))
    for mantissa in (5.0, 2.0, 1.0):
        if mantissa * 10**exponent <= target:
            return mantissa * 10**exponent
    return 10.0 ** (exponent - 1)


# ──────────────────────────────────────── the image ──────────────────────────────────────────


def image_figure(
    img: DicomImage,
    frame: int,
    center: float,
    width: float,
    *,
    value_name: str = "HU",
    max_display: int = 1024,
    max_hover: int = 512,
    height: int = 560,
    revision: str | None = None,
    background: str = "black",
) -> go.Figure:
    """One frame as the viewer shows it, with the value under the cursor on hover.

    Two layers: the windowed frame as a PNG (at most `max_display` pixels on its longer side)
    and, on top, an invisible heatmap of the modality values (at most `max_hover` pixels; on a
    larger image the readout is the exact value of the nearest sampled pixel, whose row and
    column it shows). `revision` keeps zoom and pan across window changes of the same image.
    """
    shown = display_image(img, frame, center, width)  # (H, W) or (H, W, 3) uint8
    rows, cols = shown.shape[:2]
    step = _stride(shown.shape, max_display)
    hover_step = _stride(shown.shape, max_hover)
    grid = dict(x0=0, y0=0, dx=hover_step, dy=hover_step)
    data = [
        dict(type="image", source=png_data_uri(shown[::step, ::step]), x0=0, y0=0, dx=step, dy=step, hoverinfo="skip")
    ]
    if img.is_color:
        rgb = img.pixels[frame][::hover_step, ::hover_step]  # (h, w, 3)
        hover = "x %{x} · y %{y}<br>R %{z[0]} G %{z[1]} B %{z[2]}<extra></extra>"
        data.append(dict(type="image", z=rgb, opacity=0, hovertemplate=hover, **grid))
    else:
        values = _compact(img.pixels[frame][::hover_step, ::hover_step])  # (h, w)
        number = "%{z}" if values.dtype.kind == "i" else "%{z:.4g}"
        transparent = [[0, "rgba(0,0,0,0)"], [1, "rgba(0,0,0,0)"]]
        hover = f"x %{{x}} · y %{{y}}<br><b>{number} {value_name}</b><extra></extra>"
        data.append(
            dict(type="heatmap", z=values, colorscale=transparent, showscale=False, hovertemplate=hover, **grid)
        )
    # row / column spacing: non-square pixels keep their true shape
    ratio = img.pixel_spacing[0] / img.pixel_spacing[1] if img.pixel_spacing else 1.0
    shapes, annotations = _scale_bar(img, rows, cols)
    layout = dict(
        height=height,
        margin=dict(l=0, r=0, t=0, b=0),
        paper_bgcolor=background,  # a viewport's black; "rgba(0,0,0,0)" blends into the page
        plot_bgcolor="black",
        uirevision=revision,
        hoverlabel=dict(bgcolor="#14181d", bordercolor="#4fb3a9", font=dict(size=14, color="#ffffff")),
        xaxis=dict(visible=False, range=[-0.5, cols - 0.5], constrain="domain"),
        yaxis=dict(visible=False, range=[rows - 0.5, -0.5], scaleanchor="x", scaleratio=ratio, constrain="domain"),
        shapes=shapes,
        annotations=annotations,
    )
    return _figure(data, layout)


def _scale_bar(img: DicomImage, rows: int, cols: int) -> tuple[list[dict], list[dict]]:
    """A bar of a round length along the bottom left, when the spacing is at the patient."""
    if not img.pixel_spacing or img.pixel_spacing_source not in ("PixelSpacing", "PixelMeasuresSequence"):
        return [], []  # unknown, or at the detector or a region: a bar would claim a size at the patient
    col_mm = img.pixel_spacing[1]
    length_mm = _nice_length(cols * col_mm / 5)
    length_px = length_mm / col_mm
    x0, y = cols * 0.04, rows * 0.95
    colour = "#ffd54f"
    bar = dict(type="line", x0=x0, x1=x0 + length_px, y0=y, y1=y, line=dict(color=colour, width=4))
    label = f"{length_mm / 10:g} cm" if length_mm >= 10 else f"{length_mm:g} mm"
    text = dict(x=x0 + length_px / 2, y=y, yshift=12, text=label, showarrow=False, font=dict(color=colour, size=13))
    return [bar], [text]


# ──────────────────────────────────────── the histogram ───────────────────────────────────────

HISTOGRAM_LABELS = {"x": "HU", "y": "pixels", "ramp": "grey level on screen (0–255)"}


def histogram_figure(
    values: np.ndarray,
    center: float,
    width: float,
    *,
    invert: bool = False,
    log_counts: bool = True,
    value_range: tuple[float, float] | None = None,
    labels: dict[str, str] | None = None,
    height: int = 380,
) -> go.Figure:
    """Histogram of one frame's values, each bar painted the grey its pixels are shown in, with
    the window's ramp (value → grey level, right axis) drawn over it and the window shaded.

    `value_range` fixes the x axis (the whole image's range, so it does not jump between frames).
    """
    text = {**HISTOGRAM_LABELS, **(labels or {})}
    x = np.asarray(values, dtype=np.float32).ravel()
    low_value, high_value = value_range or (float(x.min()), float(x.max()))
    span = max(high_value - low_value, 1e-6)
    integral = bool(np.all(np.mod(x[:: max(x.size // 1000, 1)], 1) == 0))
    n_bins = max(int(min(120, span + 1)) if integral else 120, 2)
    counts, edges = np.histogram(x, bins=n_bins, range=(low_value, low_value + span))
    mids = (edges[:-1] + edges[1:]) / 2
    grey = display_grey(mids, center, width, invert)
    low_edge, high_edge = window_edges(center, width)
    x_lo = min(low_value, low_edge) - 0.02 * span
    x_hi = max(high_value, high_edge) + 0.02 * span
    ramp = "#ff5252"

    bars = dict(
        type="bar",
        x=mids,
        y=np.where(counts > 0, counts, np.nan) if log_counts else counts,
        width=float(edges[1] - edges[0]),
        marker=dict(color=[f"rgb({g},{g},{g})" for g in grey], line=dict(color="#8795a3", width=0.6)),
        hovertemplate=f"%{{x:.4g}} {text['x']}<br>%{{y}} {text['y']}<extra></extra>",
        showlegend=False,
    )
    line = dict(
        type="scatter",
        x=[x_lo, low_edge, high_edge, x_hi],
        y=[255, 255, 0, 0] if invert else [0, 0, 255, 255],
        yaxis="y2",
        mode="lines",
        line=dict(color=ramp, width=2.5),
        hovertemplate=f"%{{x:.4g}} {text['x']} → %{{y:.0f}}<extra></extra>",
        showlegend=False,
    )
    band = dict(
        type="rect", xref="x", yref="paper", x0=low_edge, x1=high_edge, y0=0, y1=1,
        fillcolor=ramp, opacity=0.18, line=dict(width=0), layer="below",
    )  # fmt: skip
    layout = dict(
        height=height,
        margin=dict(l=50, r=40, t=10, b=45),
        bargap=0,
        plot_bgcolor="rgba(0,0,0,0)",
        paper_bgcolor="rgba(0,0,0,0)",
        shapes=[band],
        xaxis=dict(title=dict(text=text["x"]), range=[x_lo, x_hi], showgrid=False, zeroline=False),
        yaxis=dict(title=dict(text=text["y"]), type="log" if log_counts else "linear", showgrid=False),
        yaxis2=dict(
            overlaying="y",
            side="right",
            range=[-5, 262],
            tickvals=[0, 128, 255],
            showgrid=False,
            title=dict(text=text["ramp"], font=dict(color=ramp)),
            tickfont=dict(color=ramp),
        ),
    )
    return _figure([bars, line], layout)


def display_grey(values: np.ndarray, center: float, width: float, invert: bool = False) -> np.ndarray:
    """The 0–255 grey level each value is shown with (the same rule as display_image)."""
    fraction = apply_window(np.asarray(values, dtype=np.float32), center, width)
    if invert:
        fraction = 1.0 - fraction
    return np.floor(fraction * 255.0 + 0.5).astype(int)


# ─────────────────────────────────── from DICOM to tensor ─────────────────────────────────────


def tensor_steps(img: DicomImage, frame: int, center: float, width: float, lab: TensorLab) -> list[Step]:
    """dicom_to_tensor_steps with the lab's input size and normalisation."""
    mean_std = NORMALIZATIONS[lab.normalize]
    mean, std = mean_std if mean_std is not None else (None, None)
    return dicom_to_tensor_steps(img, frame, center, width, size=lab.size, mean=mean, std=std)


def training_window(img: DicomImage, frame: int, choice: str, center: float, width: float) -> tuple[float, float]:
    """The window a model was trained with: the current one, a preset, or the frame's full range."""
    if choice == "same":
        return center, width
    if choice in WINDOW_PRESETS:
        return WINDOW_PRESETS[choice]
    values = img.pixels[frame]
    if img.is_color:
        return 128.0, 256.0  # colour becomes luminance 0–255: its full range
    low, high = float(values.min()), float(values.max())
    return (low + high) / 2 + 0.5, max(high - low + 1, 1.0)  # ramp from min exactly to max


@dataclass(frozen=True)
class Mismatch:
    """The same frame through today's preprocessing and through the training-time one."""

    now: np.ndarray  # (size, size) windowed and resized, in [0, 1]
    trained: np.ndarray  # (size, size) the same with the training window
    mean_abs: float  # mean |now − trained| on the [0, 1] grey scale
    changed: float  # fraction of input pixels that differ by more than 10% of the grey scale


def mismatch(now: list[Step], trained: list[Step]) -> Mismatch:
    """Compare two runs of the steps at the network's input size (before normalisation, so the
    difference is in grey levels a reader can picture)."""
    a = np.asarray(now[-2].array, dtype=np.float32)  # (size, size)
    b = np.asarray(trained[-2].array, dtype=np.float32)  # (size, size)
    difference = np.abs(a - b)
    return Mismatch(now=a, trained=b, mean_abs=float(difference.mean()), changed=float((difference > 0.1).mean()))


def _as_2d_or_rgb(array) -> np.ndarray:
    values = array.detach().numpy() if hasattr(array, "detach") else np.asarray(array)
    if values.ndim == 4:  # (1, 1, H, W) network input
        values = values[0, 0]
    return values


def _panel_trace(array, low: float, high: float, max_pixels: int, colorscale="gray") -> dict:
    """One image panel: a heatmap from `low` (black) to `high` (white), subsampled to at most
    `max_pixels` per side, with the value under the cursor; colour samples (H, W, 3) as an
    image stretched to their maximum (YCbCr or 16-bit samples shown as if they were RGB)."""
    values = _as_2d_or_rgb(array)
    stride = _stride(values.shape, max_pixels)
    values = values[::stride, ::stride]  # (h, w) or (h, w, 3)
    if values.ndim == 3:
        top = float(values.max()) or 1.0
        scaled = np.clip(values.astype(np.float32) * (255.0 / top), 0, 255).astype(np.uint8)
        return dict(type="image", z=scaled, dx=stride, dy=stride, hoverinfo="skip")
    z = _compact(values)
    number = "%{z}" if z.dtype.kind == "i" else "%{z:.3f}"
    return dict(
        type="heatmap",
        z=z,
        dx=stride,
        dy=stride,
        colorscale=colorscale,
        zmin=low,
        zmax=high if high > low else low + 1,
        showscale=False,
        hovertemplate=f"x %{{x}} · y %{{y}}<br>{number}<extra></extra>",
    )


def _panels(traces: list[dict], titles: list[str], height: int, spacing: float = 0.025) -> go.Figure:
    """Image panels side by side, each with its own axes and keeping its aspect ratio."""
    n = len(traces)
    panel = (1 - spacing * (n - 1)) / n
    layout: dict = dict(height=height, margin=dict(l=0, r=0, t=28, b=0), annotations=[])
    for i, (trace, title) in enumerate(zip(traces, titles, strict=True)):
        suffix = "" if i == 0 else str(i + 1)
        trace.update(xaxis=f"x{suffix}", yaxis=f"y{suffix}")
        left = i * (panel + spacing)
        layout[f"xaxis{suffix}"] = dict(domain=[left, left + panel], visible=False, constrain="domain")
        layout[f"yaxis{suffix}"] = dict(
            anchor=f"x{suffix}", autorange="reversed", scaleanchor=f"x{suffix}", visible=False, constrain="domain"
        )
        layout["annotations"].append(
            dict(
                text=title, x=left + panel / 2, y=1, xref="paper", yref="paper",
                xanchor="center", yanchor="bottom", showarrow=False, font=dict(size=13),
            )
        )  # fmt: skip
    return _figure(traces, layout)


def steps_figure(steps: list[Step], titles: list[str], *, max_pixels: int = 256, height: int = 215) -> go.Figure:
    """Every preprocessing step side by side, each stretched from its own min to max."""
    traces = [_panel_trace(step.array, step.min, step.max, max_pixels) for step in steps]
    return _panels(traces, titles, height)


def mismatch_figure(result: Mismatch, titles: list[str], *, height: int = 300) -> go.Figure:
    """Today's input and the training-time input on one 0–1 grey scale, and their difference
    (red: brighter now, blue: darker now)."""
    difference = (result.now - result.trained).astype(np.float32)
    traces = [
        _panel_trace(result.now, 0.0, 1.0, 256),
        _panel_trace(result.trained, 0.0, 1.0, 256),
        _panel_trace(difference, -1.0, 1.0, 256, colorscale="RdBu_r"),
    ]
    traces[2].update(showscale=True, colorbar=dict(thickness=10, len=0.9), hovertemplate="%{z:+.2f}<extra></extra>")
    return _panels(traces, titles, height)


# ────────────────────────────────────────── quiz figures ──────────────────────────────────────

# Tissue classes of the "read the CT value" question, in the order of its options.
TISSUE_CLASSES = (
    ("air or lung", -math.inf, -500.0),
    ("fat", -500.0, -20.0),
    ("soft tissue, blood or water", -20.0, 200.0),
    ("bone", 200.0, math.inf),
)


def quiz_tissue_in_box(
    example: str = "ct_small", top: int = 116, left: int = 40, size: int = 8, center: float = 40, width: float = 400
) -> FigureQuestion:
    """A CT slice with a box drawn on it; the key is the tissue class of the box's mean HU."""
    img = load_example(example)
    fig = image_figure(img, 0, center, width, height=320, background="rgba(0,0,0,0)")
    fig.add_shape(
        type="rect",
        x0=left - 0.5,
        x1=left + size - 0.5,
        y0=top - 0.5,
        y1=top + size - 0.5,
        line=dict(color="#00e5ff", width=3),
    )
    mean_hu = float(img.pixels[0, top : top + size, left : left + size].mean())
    answer = next(i for i, (_, low, high) in enumerate(TISSUE_CLASSES) if low <= mean_hu < high)
    return FigureQuestion(fig, answer, extra={"mean_hu": mean_hu})


def quiz_window_ramp(center: float = -600, width: float = 1500, ask: str = "center") -> FigureQuestion:
    """A window's grey-scale ramp (HU → displayed grey); the key is its center or width."""
    low, high = window_edges(center, width)
    x = np.array([-2000.0, low, high, 2000.0])
    line = dict(
        type="scatter",
        x=x,
        y=[0, 0, 255, 255],
        mode="lines+markers",
        line=dict(color="#d62728", width=3),
        hovertemplate="%{x:.0f} HU → %{y}<extra></extra>",
    )
    layout = dict(
        height=320,
        margin=dict(l=10, r=10, t=10, b=10),
        xaxis=dict(title=dict(text="HU"), range=[-2000, 2000], dtick=250, tickangle=-45),
        yaxis=dict(title=dict(text="0–255"), range=[-10, 265], dtick=51),
    )
    fig = _figure([line], layout)
    return FigureQuestion(fig, float(center if ask == "center" else width))
