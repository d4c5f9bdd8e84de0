"""Figures for the convolution chapter: small functions that take arrays and return Plotly figures.

Conventions, so every figure reads the same way on a projector:

- images are grey (0 = black, 1 = white), in pixel coordinates with row 0 at the top;
- feature maps use one diverging colour scale centred on zero: blue is negative, white is zero,
  red is positive, and the limits are symmetric (±L) so the colour of zero never moves;
- figures carry numbers, not sentences: titles come in from the page, already translated, and
  the page writes a plain-language sentence beside each figure.

Speed: a slider must answer within 150 ms, and Plotly's validation of every property costs tens
of milliseconds per subplot. So figures are written as plain dicts (a tiny grid helper replaces
``make_subplots``) and wrapped in ``LightFigure`` (both in primer.light_figure), which skip
validation and copying; maps are float32 arrays, which Plotly sends as binary, so hovering
still shows every pixel's value.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import plotly.graph_objects as go
from plotly.colors import get_colorscale, sample_colorscale

from primer import conv
from primer.light_figure import LightFigure
from primer.light_figure import axes as _axes
from primer.light_figure import grid as _grid
from primer.light_figure import hide_ticks as _hide_ticks
from primer.quiz import FigureQuestion

# Colour scales as explicit lists: the figures skip Plotly's validation, which is what would
# otherwise translate Python-side names such as "RdBu_r" for plotly.js.
DIVERGING = get_colorscale("RdBu_r")  # blue < 0 < red, white at zero
GRAY = [[0.0, "rgb(0,0,0)"], [1.0, "rgb(255,255,255)"]]
BLUES = get_colorscale("Blues")
GREYS = get_colorscale("Greys")
PAD_GREY = "#d9d9d9"
READ_BLUE = "#1f77b4"
SKIP_RED = "#f4b6b6"
HIGHLIGHT = "#ff7f0e"


def _figure(data: list[dict], layout: dict, height: int, title: str | None = None, frames=None) -> LightFigure:
    layout = {
        "height": height,
        "margin": {"l": 10, "r": 10, "t": 60 if title else 36, "b": 10},
        "font": {"size": 15},
        **layout,
    }
    if title:
        layout["title"] = {"text": title, "x": 0.0, "xanchor": "left"}
    return LightFigure({"data": data, "layout": layout, "frames": frames})


def _nice_step(span: float, count: int = 5) -> float:
    """A round tick step (1, 2 or 5 × 10^k) giving about ``count`` ticks over ``span``."""
    raw = max(float(span), 1e-9) / count
    power = 10 ** np.floor(np.log10(raw))
    return float(next(m * power for m in (1, 2, 5, 10) if m * power >= raw))


def _fixed_ticks(axis: dict, low: float, high: float, count: int = 5) -> None:
    """Ticks fixed in data units, not chosen from the drawn size, so the same figure shows the
    same tick labels in every browser window (the shared-link test compares page text)."""
    axis.update(tickmode="linear", tick0=0.0, dtick=_nice_step(high - low, count))


def _pixel_ticks(layout: dict, index: int, height: int, width: int) -> None:
    x_name, y_name = _axes(index)
    _fixed_ticks(layout["xaxis" + x_name[1:]], 0, width)
    _fixed_ticks(layout["yaxis" + y_name[1:]], 0, height)


def _colorbar(limit: float, **extra) -> dict:
    """A colour bar with five fixed ticks, −L … L."""
    values = np.linspace(-limit, limit, 5)
    return {"tickmode": "array", "tickvals": values.tolist(), "ticktext": [f"{v:.2g}" for v in values], **extra}


def robust_limit(values: np.ndarray, percentile: float = 99.5) -> float:
    """Symmetric colour limit ±L: the 99.5th percentile of |value|, so a few extreme pixels (often
    at a zero-padded border) do not wash out the rest. Never 0."""
    magnitude = np.abs(np.asarray(values, dtype=np.float32)).ravel()
    if magnitude.size == 0:
        return 1.0
    if magnitude.size > 65536:  # a regular subsample gives the same percentile, 4–16× faster
        magnitude = magnitude[:: magnitude.size // 65536]
    limit = float(np.percentile(magnitude, percentile))
    return limit if limit > 1e-6 else max(float(magnitude.max()), 1e-6)


def _heatmap(z, index: int = 1, *, diverging: bool, limit: float | None = None, colorbar=None, **extra) -> dict:
    """A map as a heatmap trace: grey in [0, 1], or diverging on ±limit."""
    z = np.asarray(z, dtype=np.float32)
    x_name, y_name = _axes(index)
    trace = {
        "type": "heatmap",
        "z": z,
        "xaxis": x_name,
        "yaxis": y_name,
        "showscale": colorbar is not None,
        "hovertemplate": "row %{y}, col %{x}: %{z:.3f}<extra></extra>",
    }
    if diverging:
        limit = robust_limit(z) if limit is None else limit
        trace.update(colorscale=DIVERGING, zmin=-limit, zmax=limit, zmid=0)
        if colorbar is not None:
            trace["colorbar"] = _colorbar(limit, **colorbar)
    else:
        trace.update(colorscale=GRAY, zmin=0.0, zmax=1.0)
        if colorbar is not None:
            trace["colorbar"] = colorbar
    trace.update(extra)
    return trace


def _number_grid(z, text, index: int, colorscale, zmin: float, zmax: float, size: int = 16, **extra) -> dict:
    """A small grid with a number written in every cell."""
    x_name, y_name = _axes(index)
    trace = {
        "type": "heatmap",
        "z": np.asarray(z, dtype=np.float64),
        "text": np.asarray(text, dtype=object),
        "texttemplate": "%{text}",
        "textfont": {"size": size},
        "colorscale": colorscale,
        "zmin": zmin,
        "zmax": zmax,
        "showscale": False,
        "xgap": 2,
        "ygap": 2,
        "xaxis": x_name,
        "yaxis": y_name,
        "hoverinfo": "skip",
    }
    trace.update(extra)
    return trace


def _short(value: float) -> str:
    """Compact number for a cell: 0.0625 → 0.062, 5 → 5, −0.333 → −0.33."""
    value = float(value)
    if abs(value - round(value)) < 1e-9:
        return str(int(round(value)))
    return f"{value:.2g}" if abs(value) < 0.1 else f"{value:.2f}".rstrip("0")


def _cell_texts(values: np.ndarray) -> np.ndarray:
    return np.array([[_short(v) for v in row] for row in np.asarray(values)], dtype=object)


def _play_menu(labels: tuple[str, str], duration_ms: int) -> dict:
    """Play / pause buttons under an animated figure."""
    return {
        "type": "buttons",
        "direction": "left",
        "x": 0.0,
        "y": 0.0,
        "xanchor": "left",
        "yanchor": "top",
        "pad": {"t": 40},
        # Dark text on a light button: readable on the app's dark theme and on a white page.
        "bgcolor": "#e6e6e6",
        "bordercolor": "#888888",
        "font": {"color": "#111111", "size": 14},
        "buttons": [
            {
                "label": labels[0],
                "method": "animate",
                "args": [None, {"frame": {"duration": duration_ms, "redraw": True}, "fromcurrent": True}],
            },
            {
                "label": labels[1],
                "method": "animate",
                "args": [[None], {"frame": {"duration": 0, "redraw": False}, "mode": "immediate"}],
            },
        ],
    }


def _frame_slider(names: Sequence[str], active: int, prefix: str = "") -> dict:
    return {
        "active": active,
        "x": 0.12,
        "len": 0.88,
        "y": 0.0,
        "pad": {"t": 30},
        "currentvalue": {"prefix": prefix, "font": {"size": 14}},
        "steps": [
            {
                "method": "animate",
                "label": name,
                "args": [[name], {"mode": "immediate", "frame": {"duration": 0, "redraw": True}}],
            }
            for name in names
        ],
    }


def image_uint8(image: np.ndarray, max_side: int | None = None) -> np.ndarray:
    """A background picture as 0–255 integers (4× smaller to send), optionally shrunk."""
    image = np.asarray(image, dtype=np.float32)
    if max_side is not None and max(image.shape) > max_side:
        image = conv.shrink(image, max_side)
    return np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)


# ---------------------------------------------------------------------------------------------
# Lab 1: a kernel on a real image
# ---------------------------------------------------------------------------------------------


def image_and_map_figure(
    image: np.ndarray, feature_map: np.ndarray, titles: tuple[str, str], height: int = 540
) -> go.Figure:
    """Input (grey) and feature map (diverging, ±L) side by side; zooming one zooms both."""
    layout = _grid(1, 2, titles, h_space=0.07)
    layout["xaxis2"]["matches"] = "x"
    layout["yaxis2"]["matches"] = "y"
    for index in (1, 2):
        _pixel_ticks(layout, index, *image.shape)
    offset = (image.shape[0] - feature_map.shape[0]) // 2  # "valid" maps are smaller: keep them aligned
    data = [
        _heatmap(image, 1, diverging=False),
        _heatmap(
            feature_map,
            2,
            diverging=True,
            colorbar={"thickness": 14, "len": 0.9},
            x0=offset,
            y0=offset,
        ),
    ]
    return _figure(data, layout, height)


def kernel_figure(weights: np.ndarray, title: str = "", height: int = 300) -> go.Figure:
    """A kernel as a small grid with its weights written in the cells."""
    weights = np.asarray(weights, dtype=np.float64)
    limit = max(float(np.abs(weights).max()), 1e-6)
    trace = _number_grid(
        weights,
        _cell_texts(weights),
        1,
        DIVERGING,
        -limit,
        limit,
        size=18 if weights.shape[0] <= 3 else 14,
        hoverinfo=None,
        hovertemplate="w[%{y},%{x}] = %{z:.4g}<extra></extra>",
    )
    layout = _grid(1, 1)
    _hide_ticks(layout)
    return _figure([trace], layout, height, title)


def feature_map_summary(feature_map: np.ndarray) -> dict:
    """Numbers for the sentence beside a feature map."""
    values = np.asarray(feature_map, dtype=np.float64)
    return {
        "min": float(values.min()),
        "max": float(values.max()),
        "limit": robust_limit(values),
        "negative": 100.0 * float((values < -1e-6).mean()),
        "positive": 100.0 * float((values > 1e-6).mean()),
    }


# ---------------------------------------------------------------------------------------------
# Lab 2: which input cells each output cell reads
# ---------------------------------------------------------------------------------------------


def _read_overlay(reads: conv.ReadsMap, out_row: int, out_col: int) -> dict:
    """The cells one output cell reads, as a small heatmap placed over the input grid: the tap
    number (1…k²) on each cell read, NaN in the gaps a dilation leaves. Only this small patch and
    its corner move in an animation frame, so a frame costs a few bytes."""
    cells = reads.cells(out_row, out_col)  # (kh, kw, 2) image coordinates
    top, left = cells[0, 0]
    span_h = cells[-1, 0, 0] - top + 1
    span_w = cells[0, -1, 1] - left + 1
    z = np.full((span_h, span_w), np.nan, dtype=np.float32)
    for tap, (r, c) in enumerate(cells.reshape(-1, 2), start=1):
        z[r - top, c - left] = tap
    return {"type": "heatmap", "z": z, "x0": int(left), "y0": int(top), "dx": 1, "dy": 1}


def _one_cell(row: int, col: int) -> dict:
    return {"type": "heatmap", "z": np.ones((1, 1), dtype=np.float32), "x0": col, "y0": row, "dx": 1, "dy": 1}


def grid_view_figure(
    reads: conv.ReadsMap,
    out_row: int,
    out_col: int,
    titles: tuple[str, str],
    play_labels: tuple[str, str] = ("▶", "❚❚"),
    height: int = 500,
) -> go.Figure:
    """The padded input grid and the output grid. The chosen output cell and the input cells it
    reads are blue (numbered in kernel order); grey cells are padding (zeros); pink cells are
    read by no output cell at all. The play button slides the kernel over every output cell."""
    padded_h, padded_w = reads.padded_shape
    out_h, out_w = reads.output_shape
    ph, pw = reads.padding
    in_h, in_w = reads.input_shape

    kind = np.ones((padded_h, padded_w))  # 1: padding
    kind[ph : ph + in_h, pw : pw + in_w] = 0  # 0: an image cell
    kind_text = np.where(kind == 1, "0", "").astype(object)
    never_read = (reads.read_counts() == 0) & (kind == 0)
    kind[never_read] = 2  # 2: skipped by every output cell
    kind_text[never_read] = "–"
    kind_colors = [[0, "white"], [0.33, "white"], [0.34, PAD_GREY], [0.66, PAD_GREY], [0.67, SKIP_RED], [1, SKIP_RED]]

    layout = _grid(1, 2, titles, widths=[padded_w, max(out_w, 2)], h_space=0.08, title_shift=24)
    cell = {"xgap": 3, "ygap": 3, "showscale": False, "hoverinfo": "skip"}
    blue = {"colorscale": [[0, READ_BLUE], [1, READ_BLUE]], "opacity": 0.85, "textfont": {"color": "white", "size": 16}}
    x_in = np.arange(padded_w) - pw  # image coordinates: padding cells are −1, −2, …
    y_in = np.arange(padded_h) - ph
    out_text = np.array([[f"{i},{j}" for j in range(out_w)] for i in range(out_h)], dtype=object)
    data = [
        {"type": "heatmap", "z": kind, "x": x_in, "y": y_in, "text": kind_text, "texttemplate": "%{text}",
         "colorscale": kind_colors, "zmin": 0, "zmax": 2, "textfont": {"color": "#666"}, **cell},
        {**_read_overlay(reads, out_row, out_col), "texttemplate": "%{z}", **blue, **cell},
        {"type": "heatmap", "z": np.zeros((out_h, out_w)), "text": out_text, "texttemplate": "%{text}",
         "textfont": {"size": 11, "color": "#777"}, "colorscale": [[0, "#f3f3f3"], [1, "#f3f3f3"]],
         "xaxis": "x2", "yaxis": "y2", **cell},
        {**_one_cell(out_row, out_col), "xaxis": "x2", "yaxis": "y2", **blue, **cell},
    ]  # fmt: skip
    frames, names = [], []
    for i in range(out_h):
        for j in range(out_w):
            name = f"{i},{j}"
            names.append(name)
            frames.append(
                {
                    "name": name,
                    "data": [_read_overlay(reads, i, j), _one_cell(i, j)],
                    "traces": [1, 3],
                }
            )
    for axis in ("xaxis", "xaxis2"):
        layout[axis].update(tickmode="linear", dtick=1, side="top")
    for axis in ("yaxis", "yaxis2"):
        layout[axis].update(tickmode="linear", dtick=1)
    layout["updatemenus"] = [_play_menu(play_labels, 600)]
    layout["sliders"] = [_frame_slider(names, out_row * out_w + out_col)]
    fig = _figure(data, layout, height, frames=frames)
    fig.update_layout(margin={"l": 10, "r": 10, "t": 80, "b": 100})
    return fig


def oversize_figure(size: int, padding: int, span: int, title: str, height: int = 400) -> go.Figure:
    """An impossible setting, drawn: the padded input and, dashed red, the span of the dilated
    kernel that does not fit inside it."""
    padded = size + 2 * padding
    kind = np.ones((padded, padded))
    kind[padding : padding + size, padding : padding + size] = 0
    low = -padding - 0.5
    top = low + max(span, padded) + 0.5
    data = [
        {"type": "heatmap", "z": kind, "x": np.arange(padded) - padding, "y": np.arange(padded) - padding,
         "colorscale": [[0, "white"], [1, PAD_GREY]], "zmin": 0, "zmax": 1, "xgap": 3, "ygap": 3,
         "showscale": False, "hoverinfo": "skip"},
    ]  # fmt: skip
    layout = _grid(1, 1)
    for axis in ("xaxis", "yaxis"):
        layout[axis].update(tickmode="linear", dtick=1)
    layout["xaxis"]["range"] = [low - 0.5, top]
    layout["yaxis"].update(range=[top, low - 0.5], autorange=False)
    layout["shapes"] = [
        {"type": "rect", "x0": low, "y0": low, "x1": low + span, "y1": low + span,
         "line": {"color": "#d62728", "width": 4, "dash": "dash"}},
    ]  # fmt: skip
    return _figure(data, layout, height, title)


def output_size_latex(n: int, kernel: int, stride: int, padding: int, dilation: int) -> str:
    """The output-size formula with the numbers filled in, as LaTeX (for st.latex)."""
    result = conv.output_size(n, kernel, stride, padding, dilation)
    numerator = n + 2 * padding - dilation * (kernel - 1) - 1
    return (
        r"n_\text{out} = \left\lfloor \frac{n + 2p - d(k-1) - 1}{s} \right\rfloor + 1"
        rf" = \left\lfloor \frac{{{n} + 2\cdot{padding} - {dilation}\cdot({kernel}-1) - 1}}{{{stride}}} \right\rfloor + 1"
        rf" = \left\lfloor \frac{{{numerator}}}{{{stride}}} \right\rfloor + 1 = {result}"
    )


# ---------------------------------------------------------------------------------------------
# Lab 3: one output pixel, step by step
# ---------------------------------------------------------------------------------------------


def dot_product_figure(
    step: conv.DotProduct,
    titles: tuple[str, str, str],
    sum_label: str,
    play_labels: tuple[str, str] = ("▶", "❚❚"),
    height: int = 460,
) -> go.Figure:
    """Patch ⊙ kernel = products, every number written in its cell, the sum in the title.

    The play button adds the products one at a time with the running sum, as one would by hand.
    Taps that fall outside the image carry an asterisk (zero padding, or a mirrored value).
    """
    k_h, k_w = step.kernel.shape
    marks = np.where(step.padding_mask, "*", "")
    patch_text = np.char.add(_cell_texts(step.patch).astype(str), marks).astype(object)
    product_text = _cell_texts(step.products)
    kernel_limit = max(float(np.abs(step.kernel).max()), 1e-6)
    product_limit = max(float(np.abs(step.products).max()), 1e-6)
    size = 18 if k_h <= 3 else 13
    layout = _grid(1, 3, titles, h_space=0.1)
    _hide_ticks(layout)
    hover = {"hoverinfo": None, "hovertemplate": "%{z:.4f}<extra></extra>"}
    data = [
        _number_grid(step.patch, patch_text, 1, GRAY, -0.6, 1.6, size, **hover),
        _number_grid(step.kernel, _cell_texts(step.kernel), 2, DIVERGING, -kernel_limit, kernel_limit, size, **hover),
        _number_grid(step.products, product_text, 3, DIVERGING, -product_limit, product_limit, size, **hover),
    ]
    gaps = [(layout["xaxis"]["domain"][1] + layout["xaxis2"]["domain"][0]) / 2,
            (layout["xaxis2"]["domain"][1] + layout["xaxis3"]["domain"][0]) / 2]  # fmt: skip
    for x, symbol in zip(gaps, ("⊙", "="), strict=True):
        layout["annotations"].append(
            {"x": x, "y": 0.5, "xref": "paper", "yref": "paper", "text": f"<b>{symbol}</b>",
             "showarrow": False, "font": {"size": 32}}
        )  # fmt: skip

    flat = step.products.ravel()
    frames, names = [], []
    for count in range(1, flat.size + 1):
        shown = np.full(flat.size, np.nan)
        shown[:count] = flat[:count]
        text = np.where(np.isnan(shown), "", product_text.ravel()).astype(object)
        running = float(flat[:count].sum())
        names.append(str(count))
        frames.append(
            {
                "name": str(count),
                "data": [{"type": "heatmap", "z": shown.reshape(k_h, k_w), "text": text.reshape(k_h, k_w)}],
                "traces": [2],
                "layout": {"title": {"text": f"{sum_label} Σ₁…{count} = {running:.4f}"}},
            }
        )
    layout["updatemenus"] = [_play_menu(play_labels, 700)]
    layout["sliders"] = [_frame_slider(names, flat.size - 1)]
    fig = _figure(data, layout, height, f"{sum_label} Σ = {step.total:.4f}", frames=frames)
    fig.update_layout(margin={"l": 10, "r": 10, "t": 90, "b": 90})
    return fig


def patch_context_figure(
    image: np.ndarray,
    step: conv.DotProduct,
    titles: tuple[str, str],
    radius: int = 6,
    height: int = 440,
) -> go.Figure:
    """Where the pixel is: the whole image with a marker, and a zoomed crop (grey outside the
    image) with the kernel's footprint outlined and every pixel's value written in.

    Two layers of invisible points (every pixel of the crop, every few pixels of the whole
    image) make a click pick a new position: a chart selection reports their (x, y)."""
    image = np.asarray(image, dtype=np.float32)
    positions = step.positions.reshape(-1, 2)  # (k·k, 2) row, col
    top, left = positions.min(axis=0)
    bottom, right = positions.max(axis=0)
    centre_r, centre_c = (top + bottom) // 2, (left + right) // 2
    side = 2 * radius + 1
    rows = np.arange(centre_r - radius, centre_r - radius + side)
    cols = np.arange(centre_c - radius, centre_c - radius + side)
    crop = np.full((side, side), np.nan, dtype=np.float32)
    inside_r = (rows >= 0) & (rows < image.shape[0])
    inside_c = (cols >= 0) & (cols < image.shape[1])
    crop[np.ix_(inside_r, inside_c)] = image[np.ix_(rows[inside_r], cols[inside_c])]
    text = np.array([["" if np.isnan(v) else f"{v:.2f}" for v in row] for row in crop], dtype=object)

    overview = image_uint8(image, 256)
    scale = image.shape[0] / overview.shape[0]
    layout = _grid(1, 2, titles, h_space=0.06)
    _pixel_ticks(layout, 1, *image.shape)
    layout["xaxis"]["range"] = [-0.5, image.shape[1] - 0.5]  # the click targets must not widen the view
    layout["yaxis"].update(range=[image.shape[0] - 0.5, -0.5], autorange=False)
    layout["xaxis2"].update(tickmode="linear", dtick=2)
    layout["yaxis2"].update(tickmode="linear", dtick=2)
    layout["xaxis2"]["range"] = [cols[0] - 0.5, cols[-1] + 0.5]
    layout["yaxis2"].update(range=[rows[-1] + 0.5, rows[0] - 0.5], autorange=False)
    layout["plot_bgcolor"] = PAD_GREY
    data = [
        {"type": "heatmap", "z": overview, "dx": scale, "dy": scale, "x0": (scale - 1) / 2, "y0": (scale - 1) / 2,
         "colorscale": GRAY, "zmin": 0, "zmax": 255, "showscale": False, "hoverinfo": "skip"},
        {"type": "scatter", "x": [centre_c], "y": [centre_r], "mode": "markers", "hoverinfo": "skip",
         "marker": {"symbol": "circle-open", "size": 30, "color": HIGHLIGHT, "line": {"width": 3}},
         "showlegend": False},
        {"type": "heatmap", "z": crop, "x": cols, "y": rows, "text": text, "texttemplate": "%{text}",
         "textfont": {"size": 10}, "colorscale": GRAY, "zmin": 0, "zmax": 1, "showscale": False, "xgap": 1,
         "ygap": 1, "xaxis": "x2", "yaxis": "y2", "hoverinfo": "skip"},
    ]  # fmt: skip
    layout["shapes"] = [
        {"type": "rect", "xref": "x2", "yref": "y2", "x0": c - 0.5, "x1": c + 0.5, "y0": r - 0.5, "y1": r + 0.5,
         "line": {"color": HIGHLIGHT, "width": 3}}
        for r, c in positions
    ]  # fmt: skip
    every = max(1, max(image.shape) // 96)  # about 96 × 96 targets on the whole image
    grid_r, grid_c = np.mgrid[0 : image.shape[0] : every, 0 : image.shape[1] : every]
    crop_r, crop_c = np.meshgrid(rows[inside_r], cols[inside_c], indexing="ij")
    # The points sit above the pictures, so they, not the heatmaps, receive hover and clicks.
    target = {"type": "scatter", "mode": "markers", "showlegend": False, "marker": {"size": 12, "symbol": "square",
              "opacity": 0.0}, "hovertemplate": "row %{y}, col %{x}<extra></extra>"}  # fmt: skip
    values = image[crop_r, crop_c].ravel()
    data.append({**target, "x": grid_c.ravel(), "y": grid_r.ravel(), "name": "pick-overview"})
    data.append({**target, "x": crop_c.ravel(), "y": crop_r.ravel(), "xaxis": "x2", "yaxis": "y2", "name": "pick-crop",
                 "text": [f"{v:.4f}" for v in values], "hovertemplate": "row %{y}, col %{x}: %{text}<extra></extra>"})  # fmt: skip
    layout["clickmode"] = "event+select"
    layout["dragmode"] = "zoom"
    return _figure(data, layout, height)


# ---------------------------------------------------------------------------------------------
# Lab 4: activations, pooling, batch normalization
# ---------------------------------------------------------------------------------------------

ACTIVATION_COLORS = {"relu": "#d62728", "leaky_relu": "#ff7f0e", "sigmoid": "#2ca02c", "tanh": "#1f77b4"}


@lru_cache(maxsize=32)
def _curve(name: str, negative_slope: float) -> conv.ActivationCurve:
    """One activation curve over [−6, 6] (autograd for the slope: worth keeping between reruns)."""
    return conv.activation_curve(name, -6, 6, 241, negative_slope)


def activation_figure(
    chosen: str,
    names: dict[str, str],
    slope_label: str,
    band: tuple[float, float] | None = None,
    band_label: str = "",
    negative_slope: float = 0.1,
    height: int = 430,
) -> go.Figure:
    """The four activation curves (the chosen one bold, its slope dashed) and, shaded, where most
    of the feature map's values fall on the x axis."""
    data = []
    for name in conv.ACTIVATIONS:
        curve = _curve(name, negative_slope)
        bold = name == chosen
        data.append(
            {"type": "scatter", "x": curve.x, "y": curve.y, "name": names[name], "mode": "lines",
             "line": {"color": ACTIVATION_COLORS[name], "width": 5 if bold else 1.5}, "opacity": 1.0 if bold else 0.45}
        )  # fmt: skip
        if bold:
            data.append(
                {"type": "scatter", "x": curve.x, "y": curve.slope, "name": slope_label, "mode": "lines",
                 "line": {"color": ACTIVATION_COLORS[name], "width": 2.5, "dash": "dash"}}
            )  # fmt: skip
    layout = {
        "xaxis": {"range": [-6, 6], "dtick": 2, "zeroline": True, "zerolinecolor": "#999", "title": {"text": "x"}},
        "yaxis": {"range": [-1.5, 3], "dtick": 1, "zeroline": True, "zerolinecolor": "#999", "title": {"text": "f(x)"}},
        "legend": {"orientation": "h", "y": -0.2},
    }
    if band is not None:
        low, high = max(band[0], -6.0), min(band[1], 6.0)
        layout["shapes"] = [
            {"type": "rect", "xref": "x", "yref": "paper", "x0": low, "x1": high, "y0": 0, "y1": 1,
             "fillcolor": "#ffe9a8", "opacity": 0.6, "line": {"width": 0}, "layer": "below"}
        ]  # fmt: skip
        layout["annotations"] = [
            {"x": (low + high) / 2, "y": 1.0, "xref": "x", "yref": "paper", "yanchor": "bottom",
             "text": band_label, "showarrow": False, "font": {"size": 13}}
        ]  # fmt: skip
    fig = _figure(data, layout, height)
    fig.update_layout(margin={"l": 10, "r": 10, "t": 40, "b": 10})
    return fig


def activation_summary(feature_map: np.ndarray, gain: float, activation: str, negative_slope: float) -> dict:
    """Numbers for the activation sentence: where 98% of the scaled map lies (the shaded band),
    the function's slope at both ends of it, and the share of pixels set to exactly zero."""
    scaled = gain * np.asarray(feature_map, dtype=np.float32)[::2, ::2]  # a quarter is plenty
    low, high = (float(v) for v in np.percentile(scaled, [1, 99]))
    slope = conv.activation_curve(activation, low, high, 2, negative_slope).slope
    output = conv.activate(scaled, activation, negative_slope)
    zeroed = 100 * float(((output == 0) & (scaled != 0)).mean())
    return {"low": low, "high": high, "slope_low": float(slope[0]), "slope_high": float(slope[-1]), "zeroed": zeroed}


def maps_row_figure(
    maps: Sequence[np.ndarray],
    titles: Sequence[str],
    *,
    diverging: Sequence[bool] | None = None,
    height: int = 420,
) -> go.Figure:
    """A row of maps (e.g. feature map → activated → pooled) at their own sizes; the diverging
    ones share one ±L so colours compare across panels."""
    count = len(maps)
    diverging = list(diverging) if diverging is not None else [True] * count
    limits = [robust_limit(m) for m, d in zip(maps, diverging, strict=True) if d]
    limit = max(limits) if limits else 1.0
    layout = _grid(1, count, titles, h_space=0.04)
    data = []
    for i, (z, is_div) in enumerate(zip(maps, diverging, strict=True), start=1):
        _pixel_ticks(layout, i, *np.shape(z))
        colorbar = {"thickness": 12, "len": 0.9} if i == count and is_div else None
        data.append(_heatmap(z, i, diverging=is_div, limit=limit, colorbar=colorbar))
    return _figure(data, layout, height)


def pooling_example(kind: str, size: int, stride: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A small 8×8 integer grid and its pooled version, to read the rule off the numbers."""
    grid = np.random.default_rng(seed).integers(0, 10, size=(8, 8)).astype(np.float64)
    return grid, conv.pool2d(grid, kind, size, stride).output


def number_grids_figure(grids: Sequence[np.ndarray], titles: Sequence[str], height: int = 320) -> go.Figure:
    """Small grids of numbers side by side (e.g. an 8×8 grid and its pooled version)."""
    widths = [g.shape[1] for g in grids]
    layout = _grid(1, len(grids), titles, widths=widths, h_space=0.08)
    _hide_ticks(layout)
    top = max(float(np.max(g)) for g in grids)
    data = [_number_grid(grid, _cell_texts(grid), i, BLUES, 0, top * 1.6, 14) for i, grid in enumerate(grids, start=1)]
    return _figure(data, layout, height)


BN_COLORS = ("#7f7f7f", "#1f77b4", "#d62728")


def batchnorm_figure(
    before: np.ndarray, after: np.ndarray, channel_names: Sequence[str], titles: tuple[str, str], height: int = 400
) -> go.Figure:
    """Each channel's spread of values over the whole batch, before and after batch normalization:
    different centres and widths before; one common scale (mean 0, variance 1) after."""
    layout = _grid(1, 2, titles, h_space=0.08, image=False)
    data = []
    for index, maps in ((1, before), (2, after)):
        for c, name in enumerate(channel_names):
            values = np.asarray(maps[:, c], dtype=np.float64).ravel()
            low, high = np.percentile(values, [0.5, 99.5])
            counts, edges = np.histogram(values, bins=60, range=(low, high) if high > low else None)
            centres = (edges[:-1] + edges[1:]) / 2
            density = counts / max(counts.sum(), 1) / np.diff(edges)
            x_name, y_name = _axes(index)
            data.append(
                {"type": "scatter", "x": centres, "y": density, "mode": "lines", "fill": "tozeroy", "name": name,
                 "legendgroup": name, "showlegend": index == 1, "xaxis": x_name, "yaxis": y_name,
                 "line": {"color": BN_COLORS[c % len(BN_COLORS)], "width": 2}, "opacity": 0.6}
            )  # fmt: skip
    layout["yaxis"]["showticklabels"] = layout["yaxis2"]["showticklabels"] = False
    for index, maps in ((1, before), (2, after)):
        values = np.asarray(maps, dtype=np.float64)
        _fixed_ticks(layout["xaxis" + _axes(index)[0][1:]], *np.percentile(values, [0.5, 99.5]))
    layout["legend"] = {"orientation": "h", "y": -0.15}
    return _figure(data, layout, height)


# ---------------------------------------------------------------------------------------------
# Lab 5: receptive field
# ---------------------------------------------------------------------------------------------


def _layer_colors(count: int) -> list[str]:
    return sample_colorscale("Plasma", np.linspace(0.05, 0.85, max(count, 2)).tolist())[:count]


def receptive_field_figure(
    image: np.ndarray,
    rows: Sequence[conv.ReceptiveFieldRow],
    centre: tuple[float, float],
    layer_names: Sequence[str],
    height: int = 580,
) -> go.Figure:
    """The image with one square per layer, centred on one output pixel: each square is what that
    layer's output pixel can see (its theoretical receptive field). Click a legend entry to hide
    or show one layer's square."""
    background = image_uint8(image)
    colors = _layer_colors(len(rows))
    cy, cx = centre
    data = [
        {"type": "heatmap", "z": background, "colorscale": GRAY, "zmin": 0, "zmax": 255, "showscale": False,
         "hoverinfo": "skip"}
    ]  # fmt: skip
    for i, (row, name) in enumerate(zip(rows, layer_names, strict=True)):
        half = row.size / 2
        x0, x1, y0, y1 = cx - half, cx + half, cy - half, cy + half
        data.append(
            {"type": "scatter", "x": [x0, x1, x1, x0, x0], "y": [y0, y0, y1, y1, y0], "mode": "lines",
             "line": {"color": colors[i], "width": 4 if i == len(rows) - 1 else 2},
             "name": f"{i + 1}: {name} — {row.size} px", "hoverinfo": "name"}
        )  # fmt: skip
    layout = _grid(1, 1)
    height_px, width_px = background.shape
    _pixel_ticks(layout, 1, height_px, width_px)
    layout["xaxis"]["range"] = [-0.5, width_px - 0.5]
    layout["yaxis"].update(range=[height_px - 0.5, -0.5], autorange=False)
    layout["legend"] = {"x": 1.02, "y": 1, "font": {"size": 13}}
    return _figure(data, layout, height)


def receptive_field_growth_figure(
    rows: Sequence[conv.ReceptiveFieldRow],
    layer_names: Sequence[str],
    labels: tuple[str, str],
    height: int = 330,
) -> go.Figure:
    """Receptive field size (bars) and jump (line), layer by layer."""
    x = [f"{i + 1}: {name}" for i, name in enumerate(layer_names)]
    sizes = [r.size for r in rows]
    data = [
        {"type": "bar", "x": x, "y": sizes, "name": labels[0], "marker": {"color": _layer_colors(len(rows))},
         "text": sizes, "textposition": "outside"},
        {"type": "scatter", "x": x, "y": [r.jump for r in rows], "name": labels[1], "mode": "lines+markers",
         "line": {"color": "#333"}},
    ]  # fmt: skip
    y_axis = {"range": [0, max(sizes) * 1.15]}
    _fixed_ticks(y_axis, 0, max(sizes) * 1.15, 4)
    layout = {"legend": {"orientation": "h", "y": 1.15}, "bargap": 0.25, "yaxis": y_axis}
    return _figure(data, layout, height)


# ---------------------------------------------------------------------------------------------
# Lab 6: learned filters
# ---------------------------------------------------------------------------------------------


def _grid_rows_layout(rows, h_space: float, v_space: float) -> tuple[dict, int]:
    n_cols = max(len(r[1]) for r in rows)
    titles = []
    for _, items, names in rows:
        titles += list(names) + [""] * (n_cols - len(items))
    layout = _grid(len(rows), n_cols, titles, h_space=h_space, v_space=v_space)
    _hide_ticks(layout)
    for r, (row_title, _, _) in enumerate(rows):
        axis = layout["yaxis" + _axes(r * n_cols + 1)[1][1:]]
        axis["title"] = {"text": row_title, "font": {"size": 13}}
    for annotation in layout["annotations"]:
        annotation["font"] = {"size": 12}
    return layout, n_cols


def kernels_grid_figure(
    rows: Sequence[tuple[str, np.ndarray, Sequence[str]]], height_per_row: int = 175, numbers: bool = True
) -> go.Figure:
    """Rows of small kernels (row title, (C, k, k) weights, a title per kernel). Each kernel has its
    own symmetric colour scale: its shape is the point, not its size (hover shows the weights)."""
    layout, n_cols = _grid_rows_layout(rows, 0.015, 0.12)
    data = []
    for r, (_, weights, _) in enumerate(rows):
        for c, w in enumerate(weights):
            w = np.asarray(w, dtype=np.float64)
            limit = max(float(np.abs(w).max()), 1e-6)
            # two decimals tell 1/9 from 1/16; "+ 0.0" turns a rounded "-0.00" into "0.00"
            text = np.array([[f"{round(v, 2) + 0.0:.2f}" for v in line] for line in w], dtype=object)
            trace = _number_grid(
                w,
                text if numbers else np.full(w.shape, "", dtype=object),
                r * n_cols + c + 1,
                DIVERGING,
                -limit,
                limit,
                10,
                hoverinfo=None,
                hovertemplate="%{z:.3f}<extra></extra>",
                xgap=1,
                ygap=1,
            )
            data.append(trace)
    return _figure(data, layout, height_per_row * len(rows) + 40)


def maps_grid_figure(
    rows: Sequence[tuple[str, np.ndarray, Sequence[str]]], max_side: int = 160, height_per_row: int = 200
) -> go.Figure:
    """Rows of feature maps (row title, (C, H, W) maps, titles). Each map has its own ±L (its
    pattern is the point) and is shrunk for display to at most ``max_side`` pixels."""
    layout, n_cols = _grid_rows_layout(rows, 0.01, 0.1)
    data = []
    for r, (_, maps, _) in enumerate(rows):
        for c, z in enumerate(maps):
            z = np.asarray(z, dtype=np.float32)
            if max(z.shape) > max_side:
                z = conv.shrink(z, max_side)
            data.append(_heatmap(z, r * n_cols + c + 1, diverging=True))
    return _figure(data, layout, height_per_row * len(rows) + 40)


NEAR_START_CORRELATION = 0.9  # r ≥ 0.9 with its random start: the filter is still mostly that start


def filter_summary(report: conv.FilterReport) -> dict:
    """Numbers for the honest sentence beside the learned filters."""
    out = {
        "count": len(report.weights),
        "similarity_max": float(report.similarity.max()),
        "similarity_median": float(np.median(report.similarity)),
        "best": report.nearest[int(np.argmax(report.similarity))],
        "best_index": int(np.argmax(report.similarity)) + 1,
    }
    if report.change is not None:
        out.update(
            change_min=100 * float(report.change.min()),
            change_max=100 * float(report.change.max()),
            correlation_min=float(report.init_correlation.min()),
            # the "barely moved" reading holds only while every filter still resembles its start
            near_start=bool(report.init_correlation.min() >= NEAR_START_CORRELATION),
        )
    return out


# ---------------------------------------------------------------------------------------------
# Quiz figures: the answer is computed from the very numbers drawn
# ---------------------------------------------------------------------------------------------


def quiz_dot_product(seed: int = 3) -> FigureQuestion:
    """A 3×3 integer patch and a 3×3 integer kernel; the answer is their dot product."""
    rng = np.random.default_rng(seed)
    patch = rng.integers(0, 6, size=(3, 3)).astype(np.float64)
    kernel = rng.choice([-2, -1, 0, 1, 2], size=(3, 3)).astype(np.float64)
    step = conv.dot_product_at(patch, kernel, 0, 0)
    limit = float(np.abs(kernel).max()) or 1.0
    layout = _grid(1, 2, ("Patch / 图像块", "Kernel / 卷积核"), h_space=0.12)
    _hide_ticks(layout)
    data = [
        _number_grid(patch, patch.astype(int).astype(str), 1, GREYS, -2, 12, 22),
        _number_grid(kernel, kernel.astype(int).astype(str), 2, DIVERGING, -limit, limit, 22),
    ]
    figure = _figure(data, layout, 320)
    return FigureQuestion(figure=figure, answer=float(step.total), extra={"patch": patch, "kernel": kernel})


def quiz_receptive_field(layers: str = "c3,c3,p2,c3") -> FigureQuestion:
    """A layer stack drawn as blocks; the answer is the receptive field of its last layer."""
    specs = conv.parse_layers(layers)
    rows = conv.receptive_field(specs)
    labels = [f"{'conv' if s.kind == 'conv' else 'max pool'} {s.kernel}×{s.kernel}<br>stride {s.stride}" for s in specs]
    data = [
        {"type": "bar", "x": [f"{i + 1}" for i in range(len(specs))], "y": [1] * len(specs), "text": labels,
         "textposition": "inside", "insidetextanchor": "middle", "textfont": {"size": 16, "color": "white"},
         "marker": {"color": ["#1f77b4" if s.kind == "conv" else "#ff7f0e" for s in specs]}, "hoverinfo": "skip"}
    ]  # fmt: skip
    layout = {
        "yaxis": {"visible": False},
        "xaxis": {"type": "category", "title": {"text": "input → layer 1 → … → output"}},
    }
    return FigureQuestion(figure=_figure(data, layout, 260), answer=float(rows[-1].size))
