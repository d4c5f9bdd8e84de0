"""Plotly figures for the architectures chapter.

Builders take arrays and already-translated labels and return figures; nothing here knows the
page or the language. Images are drawn as RGB composites (grey anatomy, coloured overlays) with
`go.Image`, rows pointing down as a radiologist reads them; boxes are layout rectangles drawn
around whole pixels (a box x1..x2 inclusive spans x1 − 0.5 to x2 + 0.5).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from primer.light_figure import LightFigure, grid
from primer.quiz import FigureQuestion

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")
INSTANCE_COLORS = ((255, 99, 71), (65, 105, 225), (50, 205, 50), (255, 215, 0), (186, 85, 211), (0, 206, 209))
TRUTH_COLOR = "#00e676"  # green dashed: ground truth
PRED_COLOR = "#ff1744"  # red: predictions
CANDIDATE_COLOR = "rgba(255, 193, 7, 0.9)"  # amber: boxes before NMS


# ---------------------------------------------------------------------------------------------
# Image helpers


def to_grey(image: np.ndarray, window: tuple[float, float] | None = None) -> np.ndarray:
    """(H, W) values → (H, W) in [0, 1]; by default the 1st–99th percentile maps to black–white."""
    image = np.asarray(image, dtype=np.float64)
    lo, hi = window if window is not None else np.percentile(image, [1, 99])
    return np.clip((image - lo) / max(hi - lo, 1e-6), 0.0, 1.0)


def rgb(grey: np.ndarray) -> np.ndarray:
    """(H, W) in [0, 1] → (H, W, 3) float."""
    return np.repeat(np.asarray(grey, dtype=np.float64)[..., None], 3, axis=2)


def blend(base: np.ndarray, mask: np.ndarray, color: Sequence[int], alpha: float = 0.45) -> np.ndarray:
    """Tint the pixels of `mask` (H, W) with `color` (0–255 RGB) over an (H, W, 3) image."""
    out = base.copy()
    tint = np.asarray(color, dtype=np.float64) / 255.0
    out[mask] = (1 - alpha) * out[mask] + alpha * tint
    return out


def outline(base: np.ndarray, mask: np.ndarray, color: Sequence[int]) -> np.ndarray:
    """Paint the border pixels of `mask` in `color`."""
    from primer.segdet import boundary

    out = base.copy()
    out[boundary(mask)] = np.asarray(color, dtype=np.float64) / 255.0
    return out


def heat(base: np.ndarray, amap: np.ndarray, strength: float = 0.65) -> np.ndarray:
    """A non-negative map (scaled to its own maximum) over the image in a yellow–red ramp."""
    amap = np.clip(np.asarray(amap, dtype=np.float64), 0, None)
    amap = amap / amap.max() if amap.max() > 0 else amap
    color = np.stack([np.ones_like(amap), 1.0 - 0.85 * amap, 0.2 * (1 - amap)], axis=-1)  # yellow → red
    weight = (strength * amap)[..., None]
    return (1 - weight) * base + weight * color


def as_uint8(image: np.ndarray) -> np.ndarray:
    return (np.clip(image, 0, 1) * 255).astype(np.uint8)


def _box_shape(box: Sequence[float], color: str, xref: str, yref: str, dash: str = "solid", width: float = 2) -> dict:
    x1, y1, x2, y2 = (float(v) for v in box)
    return dict(
        type="rect",
        x0=x1 - 0.5,
        y0=y1 - 0.5,
        x1=x2 + 0.5,
        y1=y2 + 0.5,
        xref=xref,
        yref=yref,
        line=dict(color=color, width=width, dash=dash),
    )


def _axis_refs(index: int) -> tuple[str, str]:
    suffix = "" if index == 1 else str(index)
    return f"x{suffix}", f"y{suffix}"


def _clean_axes(fig: go.Figure) -> None:
    fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False, ticks="")
    fig.update_yaxes(showticklabels=False, showgrid=False, zeroline=False, ticks="")


def image_row(
    images: Sequence[np.ndarray],
    titles: Sequence[str],
    boxes: Sequence[Sequence[dict]] | None = None,
    annotations: Sequence[Sequence[dict]] | None = None,
    height: int = 330,
) -> go.Figure:
    """Several RGB images (H, W, 3) in [0, 1] side by side, each with optional boxes
    ({"box", "color", "dash", "label"}) drawn on top. Plain dicts (primer.light_figure): the
    four-tasks and autoencoder labs redraw this row on every move."""
    layout = grid(1, len(images), list(titles), h_space=0.02, image=False, title_size=16)
    for name, axis in list(layout.items()):
        if name.startswith(("xaxis", "yaxis")):
            axis.update(showticklabels=False, ticks="")
    data, shapes = [], []
    for i, image in enumerate(images, start=1):
        xref, yref = _axis_refs(i)
        data.append(dict(type="image", z=as_uint8(image), hoverinfo="skip", xaxis=xref, yaxis=yref))
        for item in boxes[i - 1] if boxes else ():
            shapes.append(
                _box_shape(item["box"], item["color"], xref, yref, item.get("dash", "solid"), item.get("width", 2))
            )
            if item.get("label"):
                layout["annotations"].append(
                    dict(
                        x=float(item["box"][0]) - 0.5,
                        y=float(item["box"][1]) - 0.5,
                        xref=xref,
                        yref=yref,
                        text=item["label"],
                        showarrow=False,
                        xanchor="left",
                        yanchor="bottom",
                        font=dict(color="white", size=11),
                        bgcolor=item["color"],
                        borderpad=1,
                    )
                )
        for note in annotations[i - 1] if annotations else ():
            layout["annotations"].append(dict(xref=xref, yref=yref, **note))
    layout.update(shapes=shapes, height=height, margin=dict(l=5, r=5, t=40, b=5), showlegend=False)
    return LightFigure({"data": data, "layout": layout})


# ---------------------------------------------------------------------------------------------
# Building blocks: race, degradation, gradient flow


def race_chart(entries, names: dict[str, str], labels: dict[str, str]) -> go.Figure:
    """Validation AUC against training time, one line per design (a point per epoch); the last
    point is a bubble whose area is proportional to the parameter count."""
    fig = go.Figure()
    largest = max((e.params for e in entries), default=1)
    for i, entry in enumerate(entries):
        color = PALETTE[i % len(PALETTE)]
        name = names.get(entry.model, entry.model)
        fig.add_trace(
            go.Scatter(
                x=list(entry.epoch_seconds),
                y=list(entry.val_auc),
                mode="lines+markers",
                line=dict(color=color, width=2),
                marker=dict(size=5),
                name=name,
                legendgroup=entry.model,
                hovertemplate=f"{name}<br>{labels['time']}: %{{x:.1f}} s<br>{labels['val_auc']}: %{{y:.3f}}<extra></extra>",
            )
        )
        size = 14 + 46 * np.sqrt(entry.params / largest)
        fig.add_trace(
            go.Scatter(
                x=[entry.seconds],
                y=[entry.val_auc[-1] if entry.val_auc else np.nan],
                mode="markers+text",
                marker=dict(size=size, color=color, opacity=0.35, line=dict(color=color, width=2)),
                text=[f"{entry.params / 1000:.1f}k"],
                textposition="middle center",
                textfont=dict(size=11),
                showlegend=False,
                legendgroup=entry.model,
                hovertemplate=(
                    f"{name}<br>{labels['params']}: {entry.params:,}<br>{labels['flops']}: {entry.flops / 1e6:.1f} M"
                    f"<br>{labels['test_auc']}: {entry.test_auc:.3f}<br>{labels['time']}: {entry.seconds:.1f} s<extra></extra>"
                ),
            )
        )
    fig.update_layout(
        xaxis_title=labels["time"],
        yaxis_title=labels["val_auc"],
        height=440,
        margin=dict(l=60, r=20, t=30, b=50),
        legend=dict(orientation="h", y=-0.2),
    )
    fig.add_hline(y=0.5, line=dict(color="#9e9e9e", dash="dot"), annotation_text=labels["chance"])
    return fig


def degradation_chart(
    runs: dict[str, dict[str, Sequence[float]]], names: dict[str, str], labels: dict[str, str]
) -> go.Figure:
    """Training loss and training accuracy per epoch for each model (the degradation problem is
    about the training set: a deeper plain net fits it worse, not just generalises worse)."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=(labels["train_loss"], labels["train_accuracy"]))
    for i, (model, run) in enumerate(runs.items()):
        color = PALETTE[i % len(PALETTE)]
        epochs = list(range(1, len(run["train_loss"]) + 1))
        for col, key in ((1, "train_loss"), (2, "train_accuracy")):
            fig.add_trace(
                go.Scatter(
                    x=epochs,
                    y=list(run[key]),
                    mode="lines+markers",
                    name=names.get(model, model),
                    line=dict(color=color, width=2),
                    showlegend=col == 1,
                    legendgroup=model,
                ),
                row=1,
                col=col,
            )
    fig.update_xaxes(title_text=labels["epoch"], dtick=1)
    fig.update_layout(height=380, margin=dict(l=50, r=20, t=40, b=40), legend=dict(orientation="h", y=-0.25))
    return fig


def gradient_flow_chart(flows, names: dict[str, str], labels: dict[str, str]) -> go.Figure:
    """RMS weight gradient of each 3×3 conv layer at initialisation, input side on the left."""
    fig = go.Figure()
    for i, flow in enumerate(flows):
        fig.add_trace(
            go.Scatter(
                x=list(flow.layer),
                y=list(flow.grad_norm),
                mode="lines+markers",
                name=names.get(flow.model, flow.model),
                line=dict(color=PALETTE[i % len(PALETTE)], width=2),
            )
        )
    fig.update_layout(
        xaxis_title=labels["layer"],
        yaxis_title=labels["grad"],
        yaxis_type="log",
        yaxis_dtick=1,  # one label per decade: the spread is read in orders of magnitude
        height=360,
        margin=dict(l=60, r=20, t=20, b=50),
        legend=dict(orientation="h", y=-0.25),
    )
    return fig


def accuracy_flops_chart(points, scaled, names: dict[str, str], labels: dict[str, str]) -> go.Figure:
    """Validation AUC against forward FLOPs (log axis) for every registered classifier. Designs
    raced this session are filled bubbles (area ∝ parameters); the others sit as open markers
    on a strip below, FLOPs only, until they are raced. `scaled` adds the scaling lab's trained
    variants as diamonds. Only measured AUCs are drawn: nothing is filled in."""
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.8, 0.2], vertical_spacing=0.04)
    largest = max((p.params for p in [*points, *scaled]), default=1)
    raced = [p for p in points if p.val_auc is not None]
    waiting = [p for p in points if p.val_auc is None]

    def hover(p, name):
        auc = f"<br>{labels['val_auc']}: {p.val_auc:.3f}" if p.val_auc is not None else ""
        return (
            f"{name}<br>{labels['flops']}: {p.flops / 1e6:.1f} M<br>{labels['params']}: {p.params:,}"
            f"<br>{labels['input']}: {p.resolution} px{auc}<extra></extra>"
        )

    for i, p in enumerate(raced):
        name = names.get(p.model, p.model)
        fig.add_trace(
            go.Scatter(
                x=[p.flops],
                y=[p.val_auc],
                mode="markers+text",
                marker=dict(size=12 + 30 * np.sqrt(p.params / largest), color=PALETTE[i % len(PALETTE)], opacity=0.6),
                text=[name],
                textposition="top center",
                name=name,
                hovertemplate=hover(p, name),
            ),
            row=1,
            col=1,
        )
    if scaled:
        fig.add_trace(
            go.Scatter(
                x=[p.flops for p in scaled],
                y=[p.val_auc for p in scaled],
                mode="markers+text",
                marker=dict(symbol="diamond", size=13, color="#ff7f0e", line=dict(color="#333", width=1)),
                text=[p.label for p in scaled],
                textposition="bottom center",
                name=labels["scaled"],
                hovertemplate=[hover(p, p.label) for p in scaled],
            ),
            row=1,
            col=1,
        )
    if waiting:
        fig.add_trace(
            go.Scatter(
                x=[p.flops for p in waiting],
                y=[0.0] * len(waiting),
                mode="markers",
                marker=dict(symbol="circle-open", size=12, color="#757575", line=dict(width=2)),
                name=labels["not_raced"],
                hovertemplate=[hover(p, names.get(p.model, p.model)) for p in waiting],
            ),
            row=2,
            col=1,
        )
    flops = [p.flops for p in [*points, *scaled]]
    span = [np.log10(min(flops) / 1.6), np.log10(max(flops) * 1.6)] if flops else None  # log axes take log10 ranges
    fig.update_xaxes(type="log", range=span, row=1, col=1)
    fig.update_xaxes(type="log", range=span, title_text=labels["flops_axis"], row=2, col=1)
    aucs = [p.val_auc for p in [*raced, *scaled] if p.val_auc is not None and np.isfinite(p.val_auc)]
    low = min([0.45, *(a - 0.05 for a in aucs)])  # AUC lives in [0.5, 1]: keep chance in view
    fig.update_yaxes(title_text=labels["val_auc"], range=[low, 1.02], row=1, col=1)
    fig.update_yaxes(showticklabels=False, range=[-1, 1], title_text=labels["strip"], row=2, col=1)
    if not raced and not scaled:
        fig.add_annotation(
            text=labels["invite"], xref="paper", yref="paper", x=0.5, y=0.6, showarrow=False, font=dict(size=14)
        )
    fig.update_layout(height=480, margin=dict(l=60, r=20, t=20, b=50), legend=dict(orientation="h", y=-0.2))
    return fig


def scaling_flops_chart(
    variants, ideal: dict[str, float], chosen: tuple[str, int], mode_names: dict[str, str], labels: dict[str, str]
) -> go.Figure:
    """FLOPs relative to the base (log axis) against φ, one line per scaling mode as torch
    counts them, beside the dotted ideal (ratio per step)^φ; the chosen variant is circled."""
    fig = go.Figure()
    base = next(v.flops for v in variants if v.phi == 0)
    for i, mode in enumerate(mode_names):
        color = PALETTE[i % len(PALETTE)]
        line = sorted((v for v in variants if v.mode == mode), key=lambda v: v.phi)
        phis = [v.phi for v in line]
        fig.add_trace(
            go.Scatter(
                x=phis,
                y=[v.flops / base for v in line],
                mode="lines+markers",
                line=dict(color=color, width=2),
                name=mode_names[mode],
                legendgroup=mode,
                customdata=[[v.dims.depth, v.dims.width, v.dims.resolution, v.flops / 1e6] for v in line],
                hovertemplate=(
                    f"{mode_names[mode]}<br>φ = %{{x}}<br>{labels['depth']}: %{{customdata[0]}}"
                    f"<br>{labels['width']}: %{{customdata[1]}}<br>{labels['resolution']}: %{{customdata[2]}} px"
                    f"<br>{labels['flops']}: %{{customdata[3]:.1f}} M (× %{{y:.2f}})<extra></extra>"
                ),
            )
        )
        fig.add_trace(
            go.Scatter(
                x=phis,
                y=[ideal[mode] ** phi for phi in phis],
                mode="lines",
                line=dict(color=color, width=1, dash="dot"),
                showlegend=False,
                legendgroup=mode,
                hoverinfo="skip",
            )
        )
    mode, phi = chosen
    pick = next(v for v in variants if v.mode == mode and v.phi == phi)
    fig.add_trace(
        go.Scatter(
            x=[phi],
            y=[pick.flops / base],
            mode="markers",
            marker=dict(size=18, color="rgba(0,0,0,0)", line=dict(color="#000", width=2)),
            showlegend=False,
            hoverinfo="skip",
        )
    )
    fig.update_layout(
        xaxis=dict(title=labels["phi"], dtick=1),
        yaxis=dict(title=labels["ratio"], type="log"),
        height=380,
        margin=dict(l=60, r=20, t=20, b=50),
        legend=dict(orientation="h", y=-0.25),
    )
    return fig


def training_curves(histories: dict[str, Sequence], labels: dict[str, str], total_epochs: int) -> go.Figure:
    """Loss and score per epoch for the live task models (score: Dice or AP, or PSNR)."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=(labels["loss"], labels["score"]))
    for i, (name, history) in enumerate(histories.items()):
        color = PALETTE[i % len(PALETTE)]
        epochs = [h.epoch for h in history]
        for col, values in ((1, [h.loss for h in history]), (2, [h.score for h in history])):
            fig.add_trace(
                go.Scatter(
                    x=epochs,
                    y=values,
                    mode="lines+markers",
                    name=name,
                    line=dict(color=color),
                    legendgroup=name,
                    showlegend=col == 1,
                ),
                row=1,
                col=col,
            )
    fig.update_xaxes(title_text=labels["epoch"], range=[0.5, total_epochs + 0.5], dtick=max(1, total_epochs // 10))
    fig.update_layout(height=300, margin=dict(l=50, r=20, t=40, b=40), legend=dict(orientation="h", y=-0.3))
    return fig


# ---------------------------------------------------------------------------------------------
# Four tasks


def pr_curve(recall: np.ndarray, precision: np.ndarray, labels: dict[str, str]) -> go.Figure:
    fig = go.Figure(
        go.Scatter(
            x=np.r_[0.0, recall],
            y=np.r_[1.0, precision],
            mode="lines",
            line=dict(shape="hv", color=PALETTE[0], width=2),
            hovertemplate=f"{labels['recall']}: %{{x:.2f}}<br>{labels['precision']}: %{{y:.2f}}<extra></extra>",
        )
    )
    fig.update_layout(
        xaxis=dict(title=labels["recall"], range=[0, 1.02]),
        yaxis=dict(title=labels["precision"], range=[0, 1.02]),
        height=300,
        margin=dict(l=50, r=20, t=20, b=40),
    )
    return fig


def instance_overlay(image_grey: np.ndarray, instance_map: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Each instance (1..k) tinted in its own colour, with its border drawn solid."""
    out = rgb(image_grey)
    for k in range(1, int(instance_map.max()) + 1):
        color = INSTANCE_COLORS[(k - 1) % len(INSTANCE_COLORS)]
        mask = instance_map == k
        out = outline(blend(out, mask, color, alpha), mask, color)
    return out


# ---------------------------------------------------------------------------------------------
# Generative


def mosaic(patches: np.ndarray, columns: int, gap: int = 2) -> np.ndarray:
    """(N, h, w) patches in [0, 1] → one (rows·(h+gap), columns·(w+gap)) image, white gaps."""
    n, h, w = patches.shape
    rows = -(-n // columns)
    out = np.ones((rows * (h + gap) - gap, columns * (w + gap) - gap))
    for i, patch in enumerate(patches):
        r, c = divmod(i, columns)
        out[r * (h + gap) : r * (h + gap) + h, c * (w + gap) : c * (w + gap) + w] = patch
    return out


def grey_figure(image: np.ndarray, height: int = 320, title: str = "") -> go.Figure:
    """One grey image in [0, 1] (a mosaic, a strip)."""
    fig = go.Figure(go.Image(z=as_uint8(rgb(image)), hoverinfo="skip"))
    _clean_axes(fig)
    fig.update_layout(height=height, margin=dict(l=5, r=5, t=30 if title else 5, b=5), title=title or None)
    return fig


def code_scatter(
    coords: np.ndarray,
    source: np.ndarray,
    source_names: Sequence[str],
    highlight: dict[str, np.ndarray],
    labels: dict[str, str],
) -> go.Figure:
    """The test patches' codes in 2-D (PCA), one colour per CT slice; `highlight` marks a few
    named points (the chosen patch clean, and noisy at the current level)."""
    fig = go.Figure()
    for s, name in enumerate(source_names):
        pick = source == s
        if pick.any():
            fig.add_trace(
                go.Scatter(
                    x=coords[pick, 0],
                    y=coords[pick, 1],
                    mode="markers",
                    marker=dict(size=6, color=PALETTE[s % len(PALETTE)], opacity=0.55),
                    name=name,
                    hoverinfo="skip",
                )
            )
    symbols = ("star", "x", "diamond")
    for i, (name, point) in enumerate(highlight.items()):
        fig.add_trace(
            go.Scatter(
                x=[point[0]],
                y=[point[1]],
                mode="markers",
                marker=dict(
                    size=16, symbol=symbols[i % len(symbols)], color="#ffd600", line=dict(color="black", width=1.5)
                ),
                name=name,
            )
        )
    fig.update_layout(
        xaxis_title=labels["pc1"],
        yaxis_title=labels["pc2"],
        height=380,
        margin=dict(l=50, r=20, t=20, b=40),
        legend=dict(orientation="h", y=-0.25),
    )
    return fig


def latent_scatter(
    means: np.ndarray, shapes: np.ndarray, shape_names: Sequence[str], path: np.ndarray | None, labels: dict[str, str]
) -> go.Figure:
    """Test lesions' latent means (first two dimensions), coloured by shape; the interpolation
    path drawn as a line."""
    fig = go.Figure()
    for s, name in enumerate(shape_names):
        pick = shapes == s
        fig.add_trace(
            go.Scatter(
                x=means[pick, 0],
                y=means[pick, 1],
                mode="markers",
                marker=dict(size=5, color=PALETTE[s], opacity=0.5),
                name=name,
                hoverinfo="skip",
            )
        )
    if path is not None:
        fig.add_trace(
            go.Scatter(
                x=path[:, 0],
                y=path[:, 1],
                mode="lines+markers",
                line=dict(color="black", width=2),
                marker=dict(size=7, color="black"),
                name=labels["path"],
            )
        )
    fig.update_layout(
        xaxis_title=labels["z1"],
        yaxis_title=labels["z2"],
        height=380,
        margin=dict(l=50, r=20, t=20, b=40),
        legend=dict(orientation="h", y=-0.25),
    )
    return fig


# ---------------------------------------------------------------------------------------------
# Quiz: read the parameter count off a layer table


def quiz_depthwise_savings(channels: int = 32) -> FigureQuestion:
    """Bar chart of the weights of a full 3×3 conv and a depthwise-separable one for `channels`
    in and out; the question asks how many times fewer the separable one has (computed here)."""
    full = 9 * channels * channels
    separable = 9 * channels + channels * channels
    fig = go.Figure(
        go.Bar(
            x=["3×3 conv", "depthwise 3×3 + pointwise 1×1"],
            y=[full, separable],
            text=[f"{full:,}", f"{separable:,}"],
            textposition="outside",
            marker_color=[PALETTE[0], PALETTE[2]],
        )
    )
    fig.update_layout(
        height=300,
        margin=dict(l=50, r=20, t=30, b=40),
        yaxis_title="weights",
        title=f"{channels} → {channels} channels",
    )
    return FigureQuestion(fig, round(full / separable, 1))


# ---------------------------------------------------------------------------------------------
# The four tasks, composed


def four_tasks_row(
    image: np.ndarray,
    titles: Sequence[str],
    truth_boxes: np.ndarray,
    truth_mask: np.ndarray,
    cam: np.ndarray | None,
    det_boxes: np.ndarray | None,
    det_scores: np.ndarray | None,
    seg_mask: np.ndarray | None,
    instances: np.ndarray | None,
    missing: str,
) -> go.Figure:
    """Classification (Grad-CAM), detection (boxes), semantic and instance segmentation of one
    image. Truth is green (dashed boxes, outlines); a panel whose model is not trained yet
    shows the bare image with `missing` written on it."""
    grey = to_grey(image)
    base = rgb(grey)
    truth_outline = outline(base, truth_mask, (0, 230, 118))
    panels, boxes, notes = [], [], []
    note = [
        dict(
            x=image.shape[1] / 2,
            y=image.shape[0] * 0.92,  # along the bottom edge: the lesions stay visible
            text=missing,
            showarrow=False,
            font=dict(color="white", size=13),
            bgcolor="rgba(0,0,0,0.6)",
        )
    ]
    truth = [{"box": b, "color": TRUTH_COLOR, "dash": "dash", "width": 1.5} for b in truth_boxes]
    # classification
    panels.append(base if cam is None else heat(base, cam))
    boxes.append([])
    notes.append(note if cam is None else [])
    # detection
    panels.append(base)
    predicted = (
        []
        if det_boxes is None
        else [{"box": b, "color": PRED_COLOR, "label": f"{s:.2f}"} for b, s in zip(det_boxes, det_scores, strict=True)]
    )
    boxes.append(truth + predicted)
    notes.append(note if det_boxes is None else [])
    # semantic segmentation
    panels.append(
        truth_outline
        if seg_mask is None
        else outline(blend(base, seg_mask, (255, 23, 68), 0.5), truth_mask, (0, 230, 118))
    )
    boxes.append([])
    notes.append(note if seg_mask is None else [])
    # instance segmentation
    panels.append(truth_outline if instances is None else instance_overlay(grey, instances))
    boxes.append([])
    notes.append(note if instances is None else [])
    return image_row(panels, titles, boxes, notes)


def nms_row(
    image: np.ndarray,
    heatmap: np.ndarray,
    cand_boxes: np.ndarray,
    cand_scores: np.ndarray,
    kept: Sequence[int],
    truth_boxes: np.ndarray,
    kept_ious: Sequence[float],
    titles: Sequence[str],
) -> go.Figure:
    """The detector's steps on one image: its heatmap, every box above the score threshold,
    and the boxes NMS keeps (labelled with score and IoU against the nearest true box)."""
    grey = to_grey(image)
    base = rgb(grey)
    size = image.shape[0] // heatmap.shape[0]
    upsampled = np.kron(heatmap, np.ones((size, size)))  # (H, W): each cell as a block
    truth = [{"box": b, "color": TRUTH_COLOR, "dash": "dash", "width": 1.5} for b in truth_boxes]
    candidates_drawn = [{"box": b, "color": CANDIDATE_COLOR, "width": 1} for b in cand_boxes]
    kept_drawn = [
        {"box": cand_boxes[j], "color": PRED_COLOR, "label": f"{cand_scores[j]:.2f} · IoU {iou:.2f}"}
        for j, iou in zip(kept, kept_ious, strict=True)
    ]
    return image_row(
        [heat(base, upsampled, 0.8), base, base], titles, [[], truth + candidates_drawn, truth + kept_drawn]
    )


def overlap_panel(image: np.ndarray, probs: np.ndarray, truth: np.ndarray, titles: Sequence[str]) -> go.Figure:
    """The U-Net's probability map, and its mask against the truth: true positive pixels
    yellow, false positives red, false negatives blue."""
    from primer.segdet import overlap_map

    grey = to_grey(image)
    base = rgb(grey)
    codes = overlap_map(truth, probs >= 0.5)
    colored = base
    for code, color in ((1, (255, 214, 0)), (2, (255, 23, 68)), (3, (41, 121, 255))):
        colored = blend(colored, codes == code, color, 0.7)
    return image_row([hot(probs), colored], titles)


def hot(values: np.ndarray) -> np.ndarray:
    """Values in [0, 1] on an absolute black → red → yellow → white scale, (H, W, 3): 0.5, the
    threshold of the mask, is pure red."""
    v = np.clip(np.asarray(values, dtype=np.float64), 0, 1)
    return np.stack([np.clip(2 * v, 0, 1), np.clip(2 * v - 1, 0, 1), np.clip(4 * v - 3, 0, 1)], axis=-1)


def one_vs_two_stage_row(
    image: np.ndarray,
    truth_boxes: np.ndarray,
    proposals: np.ndarray,
    rcnn_boxes: np.ndarray,
    rcnn_scores: np.ndarray,
    cand_boxes: np.ndarray | None,
    kept_boxes: np.ndarray | None,
    kept_scores: np.ndarray | None,
    titles: Sequence[str],
    missing: str,
) -> go.Figure:
    """Two detectors on one image. Two-stage: the RPN's top proposals (amber, thin), then the
    second stage's final boxes (red, with score). One-stage: every cell's candidate (amber),
    then what NMS keeps (red); `None` for the one-stage panels until it is trained."""
    base = rgb(to_grey(image))
    truth = [{"box": b, "color": TRUTH_COLOR, "dash": "dash", "width": 1.5} for b in truth_boxes]
    thin = [{"box": b, "color": CANDIDATE_COLOR, "width": 1} for b in proposals]
    final = [{"box": b, "color": PRED_COLOR, "label": f"{s:.2f}"} for b, s in zip(rcnn_boxes, rcnn_scores, strict=True)]
    boxes = [truth + thin, truth + final]
    notes: list[list[dict]] = [[], []]
    if cand_boxes is None or kept_boxes is None or kept_scores is None:
        note = dict(x=image.shape[1] / 2, y=image.shape[0] * 0.92, text=missing, showarrow=False)
        note.update(font=dict(color="white", size=13), bgcolor="rgba(0,0,0,0.6)")
        boxes += [truth, truth]
        notes += [[note], [note]]
    else:
        boxes.append(truth + [{"box": b, "color": CANDIDATE_COLOR, "width": 1} for b in cand_boxes])
        boxes.append(
            truth
            + [
                {"box": b, "color": PRED_COLOR, "label": f"{s:.2f}"}
                for b, s in zip(kept_boxes, kept_scores, strict=True)
            ]
        )
        notes += [[], []]
    return image_row([base] * 4, titles, boxes, notes)


def anchors_panel(
    image: np.ndarray, anchors: np.ndarray, centre: tuple[float, float], labels: Sequence[str], title: str
):
    """The anchor boxes a region proposal network scores at one position, drawn on the image in
    distinct colours (one per anchor), with the position marked."""
    base = rgb(to_grey(image))
    drawn = [
        {"box": b, "color": PALETTE[k % len(PALETTE)], "label": label, "width": 2}
        for k, (b, label) in enumerate(zip(anchors, labels, strict=True))
    ]
    mark = dict(x=centre[1], y=centre[0], text="✚", showarrow=False, font=dict(color="#ffeb3b", size=14))
    return image_row([base], [title], [drawn], [[mark]], height=360)


def gan_curves(steps: Sequence, labels: dict[str, str], total_steps: int) -> go.Figure:
    """A GAN's two games per generator step: the losses (left) and what the discriminator says
    about real and generated patches (right). Dotted lines: where a discriminator that cannot
    tell them apart sits (D loss ln 4, G loss ln 2, both probabilities 0.5). Thin lines: every
    step; thick: a 10-step moving mean (single steps are noisy by nature)."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=(labels["losses"], labels["probabilities"]))
    x = [s.step for s in steps]
    series = (
        (1, "d_loss", labels["d_loss"], PALETTE[1]),
        (1, "g_loss", labels["g_loss"], PALETTE[0]),
        (2, "d_real", labels["d_real"], PALETTE[2]),
        (2, "d_fake", labels["d_fake"], PALETTE[3]),
    )
    for col, name, label, color in series:
        values = np.array([getattr(s, name) for s in steps], dtype=float)
        window = min(10, len(values)) or 1
        smooth = np.convolve(values, np.ones(window) / window, mode="valid") if len(values) else values
        fig.add_trace(
            go.Scatter(
                x=x,
                y=values,
                mode="lines",
                line=dict(color=color, width=1),
                opacity=0.35,
                showlegend=False,
                hoverinfo="skip",
                legendgroup=name,
            ),
            row=1,
            col=col,
        )
        fig.add_trace(
            go.Scatter(
                x=x[window - 1 :],
                y=smooth,
                mode="lines" if len(values) >= 10 else "lines+markers",  # the first steps show as dots
                name=label,
                line=dict(color=color, width=2.5),
                legendgroup=name,
            ),
            row=1,
            col=col,
        )
    for col, level in ((1, float(np.log(4))), (1, float(np.log(2))), (2, 0.5)):
        fig.add_hline(y=level, line=dict(dash="dot", color="grey", width=1), row=1, col=col)
    fig.update_xaxes(title_text=labels["step"], range=[0, max(total_steps, 1)])
    fig.update_yaxes(range=[0, 1], row=1, col=2)
    fig.update_layout(height=320, margin=dict(l=50, r=20, t=40, b=40), legend=dict(orientation="h", y=-0.3))
    return fig


def diversity_curve(history: Sequence, labels: dict[str, str], total_epochs: int) -> go.Figure:
    """Sample diversity relative to real patches after each epoch; 1 = as varied as the data."""
    fig = go.Figure(
        go.Scatter(
            x=[h.epoch for h in history],
            y=[h.score for h in history],
            mode="lines+markers",
            line=dict(color=PALETTE[4]),
            name=labels["diversity"],
        )
    )
    fig.add_hline(y=1.0, line=dict(dash="dot", color="grey"), annotation_text=labels["real"])
    fig.update_layout(
        xaxis=dict(title=labels["epoch"], range=[0.5, total_epochs + 0.5], dtick=1),
        yaxis=dict(title=labels["diversity"], rangemode="tozero"),
        height=280,
        margin=dict(l=50, r=20, t=20, b=40),
    )
    return fig
