"""Plotly figures for the training lab. Labels arrive translated; nothing here reads settings."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from primer.light_figure import LightFigure, axes, grid, hide_axes
from primer.train import EpochRecord

TRAIN_COLOR, VAL_COLOR, AUC_COLOR = "#4fb3a9", "#e4a853", "#c678dd"
GREY = [[0, "black"], [1, "white"]]


def curves(
    epochs: list[EpochRecord], num_epochs: int, labels: dict, previous: list[EpochRecord] | None = None
) -> go.Figure:
    """Loss (left) and accuracy / AUC (right) per epoch, train vs validation; the previous run
    dotted behind, so a changed setting is compared against the run before it.

    Written as dicts (primer.light_figure): the live panel redraws this on every poll of every
    training student, and make_subplots with per-axis updates cost about 20 ms each time."""
    layout = grid(1, 2, (labels["loss"], labels["performance"]), h_space=0.1, image=False, title_size=16, lines=True)
    series = [
        ("train_loss", 1, TRAIN_COLOR, labels["train_loss"]),
        ("val_loss", 1, VAL_COLOR, labels["val_loss"]),
        ("train_accuracy", 2, TRAIN_COLOR, labels["train_accuracy"]),
        ("val_accuracy", 2, VAL_COLOR, labels["val_accuracy"]),
        ("val_auc", 2, AUC_COLOR, labels["val_auc"]),
    ]
    data = []
    for runs, dash, opacity, suffix, show in (
        (previous, "dot", 0.45, labels["previous"], False),
        (epochs, "solid", 1.0, "", True),
    ):
        if not runs:
            continue
        x = [e.epoch for e in runs]
        for attr, index, color, name in series:
            x_name, y_name = axes(index)
            data.append(
                {
                    "type": "scatter",
                    "x": x,
                    "y": [getattr(e, attr) for e in runs],
                    "mode": "lines+markers",
                    "name": f"{name}{suffix}",
                    "line": {"color": color, "dash": dash, "width": 2.5 if show else 1.5},
                    "marker": {"size": 6 if show else 3},
                    "opacity": opacity,
                    "showlegend": show,
                    "legendgroup": attr,
                    "xaxis": x_name,
                    "yaxis": y_name,
                }
            )
    losses = [v for e in (epochs or []) for v in (e.train_loss, e.val_loss) if np.isfinite(v)]
    top = min(max(losses), 3.0) * 1.1 if losses else 1.0
    for name in ("xaxis", "xaxis2"):
        layout[name].update(title={"text": labels["epoch"]}, range=[0.5, max(num_epochs, 1) + 0.5],
                            dtick=max(1, num_epochs // 10))  # fmt: skip
    layout["yaxis"]["range"] = [0, max(top, 0.8)]
    layout["yaxis2"]["range"] = [0.4, 1.01]
    # the chance line across the right panel, labelled at its right end
    layout["shapes"] = [{"type": "line", "xref": "x2 domain", "yref": "y2", "x0": 0, "x1": 1, "y0": 0.5, "y1": 0.5,
                         "line": {"color": "gray", "dash": "dash", "width": 1}}]  # fmt: skip
    layout["annotations"].append({"text": labels["chance"], "showarrow": False, "xref": "x2 domain", "yref": "y2",
                                  "x": 1, "y": 0.5, "xanchor": "right", "yanchor": "top"})  # fmt: skip
    layout.update(height=380, margin={"l": 10, "r": 10, "t": 40, "b": 10}, legend={"orientation": "h", "y": -0.22})
    return LightFigure({"data": data, "layout": layout})


def confusion(matrix: np.ndarray, classes: tuple[str, ...], labels: dict) -> go.Figure:
    """Counts with row percentages: rows are the truth, columns the model's call."""
    row_sums = matrix.sum(axis=1, keepdims=True).clip(min=1)
    text = [
        [f"{matrix[i, j]}<br>({100 * matrix[i, j] / row_sums[i, 0]:.0f}%)" for j in range(len(classes))]
        for i in range(len(classes))
    ]
    fig = go.Figure(
        go.Heatmap(
            z=matrix / row_sums,
            x=[f"{labels['called']}: {c}" for c in classes],
            y=[f"{labels['truth']}: {c}" for c in classes],
            text=text,
            texttemplate="%{text}",
            colorscale="Teal",
            zmin=0,
            zmax=1,
            showscale=False,
        )
    )
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(height=280, margin={"l": 10, "r": 10, "t": 10, "b": 10})
    return fig


def image_grid(images: np.ndarray, titles: list[str], masks: np.ndarray | None = None, columns: int = 4) -> go.Figure:
    """Small grayscale images in a grid, optionally with the lesion outline drawn in. Written as
    dicts, and each image sent as 8-bit grey levels between the 1st and 99th percentile (a
    quarter of the bytes of float32, the same picture on screen)."""
    n = len(images)
    rows = max(1, -(-n // columns))
    layout = grid(rows, columns, titles, h_space=0.02, v_space=0.08, image=False, title_size=11)
    hide_axes(layout, scaleanchor="x", reversed=True)  # every image has the size of the first
    low, high = (float(v) for v in np.percentile(images, [1, 99])) if n else (0.0, 1.0)
    grey = np.clip(np.round((np.asarray(images, dtype=np.float32) - low) / max(high - low, 1e-12) * 255), 0, 255)
    data = []
    for i in range(n):
        x_name, y_name = axes(i + 1)
        data.append({"type": "heatmap", "z": grey[i].astype(np.uint8), "colorscale": GREY, "zmin": 0, "zmax": 255,
                     "showscale": False, "hoverinfo": "skip", "xaxis": x_name, "yaxis": y_name})  # fmt: skip
        if masks is not None and masks[i].any():
            data.append({"type": "contour", "z": masks[i].astype(np.uint8),
                         "contours": {"start": 0.5, "end": 0.5, "coloring": "none"},
                         "line": {"color": "#e4a853", "width": 1.5}, "showscale": False, "showlegend": False,
                         "hoverinfo": "skip", "xaxis": x_name, "yaxis": y_name})  # fmt: skip
    layout.update(height=170 * rows + 30, margin={"l": 0, "r": 0, "t": 25, "b": 0})
    return LightFigure({"data": data, "layout": layout})


LR_COLOR = "#61afef"


def learning_rate_curve(
    epochs: list[EpochRecord], num_epochs: int, labels: dict, previous: list[EpochRecord] | None = None
) -> go.Figure:
    """The learning rate of every optimizer step, on the same epoch axis as the loss curves
    (step j of n in epoch e sits at e − ½ + j/n): a short strip drawn under them, the previous
    run dotted behind. Linear scale: warm-up and cosine read as the ramp and the arc they are."""
    data = []
    for runs, dash, opacity, width in ((previous, "dot", 0.45, 1.5), (epochs, "solid", 1.0, 2.5)):
        x, y = [], []
        for e in runs or []:
            n = len(e.learning_rates)
            x += [e.epoch - 0.5 + j / n for j in range(n)]
            y += e.learning_rates
        if y:
            data.append({"type": "scatter", "x": x, "y": y, "mode": "lines", "opacity": opacity,
                         "line": {"color": LR_COLOR, "dash": dash, "width": width}, "showlegend": False,
                         "hovertemplate": "%{y:.2g}<extra></extra>"})  # fmt: skip
    layout = grid(1, 1, (labels["learning_rate"],), image=False, title_size=16, lines=True)
    layout["xaxis"].update(title={"text": labels["epoch"]}, range=[0.5, max(num_epochs, 1) + 0.5],
                           dtick=max(1, num_epochs // 10))  # fmt: skip
    layout["yaxis"].update(rangemode="tozero", exponentformat="e", nticks=4)
    layout.update(height=200, margin={"l": 10, "r": 10, "t": 35, "b": 10}, showlegend=False)
    return LightFigure({"data": data, "layout": layout})


def reliability(bins, labels: dict) -> go.Figure:
    """Reliability diagram of the test set: observed share of positives against the mean
    predicted probability in each of ten bins, the diagonal for a calibrated model."""
    filled = bins.counts > 0
    data = [
        {"type": "scatter", "x": [0, 1], "y": [0, 1], "mode": "lines", "name": labels["perfect"],
         "line": {"color": "gray", "dash": "dash", "width": 1}},
        {"type": "scatter", "x": bins.mean_predicted[filled], "y": bins.observed_frequency[filled],
         "mode": "lines+markers", "name": labels["model"], "customdata": bins.counts[filled],
         "line": {"color": AUC_COLOR, "width": 2}, "marker": {"size": 8},
         "hovertemplate": "p̄=%{x:.2f}, obs=%{y:.2f}, n=%{customdata}<extra></extra>"},
    ]  # fmt: skip
    layout = grid(1, 1, (), image=False, lines=True)
    layout["xaxis"].update(title={"text": labels["predicted"]}, range=[0, 1], dtick=0.2)
    layout["yaxis"].update(title={"text": labels["observed"]}, range=[-0.02, 1.02], dtick=0.2)
    layout.update(height=280, margin={"l": 10, "r": 10, "t": 10, "b": 10}, legend={"orientation": "h", "y": -0.3})
    return LightFigure({"data": data, "layout": layout})
