"""Plotly figures for the training lab. Labels arrive translated; nothing here reads settings."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from primer.train import EpochRecord

TRAIN_COLOR, VAL_COLOR, AUC_COLOR = "#4fb3a9", "#e4a853", "#c678dd"


def curves(
    epochs: list[EpochRecord], num_epochs: int, labels: dict, previous: list[EpochRecord] | None = None
) -> go.Figure:
    """Loss (left) and accuracy / AUC (right) per epoch, train vs validation; the previous run
    dotted behind, so a changed setting is compared against the run before it."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=(labels["loss"], labels["performance"]), horizontal_spacing=0.1)
    series = [
        ("train_loss", 1, TRAIN_COLOR, labels["train_loss"]),
        ("val_loss", 1, VAL_COLOR, labels["val_loss"]),
        ("train_accuracy", 2, TRAIN_COLOR, labels["train_accuracy"]),
        ("val_accuracy", 2, VAL_COLOR, labels["val_accuracy"]),
        ("val_auc", 2, AUC_COLOR, labels["val_auc"]),
    ]
    for runs, dash, opacity, suffix, show in (
        (previous, "dot", 0.45, labels["previous"], False),
        (epochs, "solid", 1.0, "", True),
    ):
        if not runs:
            continue
        x = [e.epoch for e in runs]
        for attr, col, color, name in series:
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=[getattr(e, attr) for e in runs],
                    mode="lines+markers",
                    name=f"{name}{suffix}",
                    line={"color": color, "dash": dash, "width": 2.5 if show else 1.5},
                    marker={"size": 6 if show else 3},
                    opacity=opacity,
                    showlegend=show,
                    legendgroup=attr,
                ),
                row=1,
                col=col,
            )
    fig.update_xaxes(title_text=labels["epoch"], range=[0.5, max(num_epochs, 1) + 0.5], dtick=max(1, num_epochs // 10))
    losses = [v for e in (epochs or []) for v in (e.train_loss, e.val_loss) if np.isfinite(v)]
    top = min(max(losses), 3.0) * 1.1 if losses else 1.0
    fig.update_yaxes(range=[0, max(top, 0.8)], row=1, col=1)
    fig.update_yaxes(range=[0.4, 1.01], row=1, col=2)
    fig.add_hline(
        y=0.5,
        line={"color": "gray", "dash": "dash", "width": 1},
        row=1,
        col=2,
        annotation_text=labels["chance"],
        annotation_position="bottom right",
    )
    fig.update_layout(height=380, margin={"l": 10, "r": 10, "t": 40, "b": 10}, legend={"orientation": "h", "y": -0.22})
    return fig


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
    """Small grayscale images in a grid, optionally with the lesion outline drawn in."""
    n = len(images)
    rows = max(1, -(-n // columns))
    fig = make_subplots(rows=rows, cols=columns, subplot_titles=titles, horizontal_spacing=0.02, vertical_spacing=0.08)
    low, high = np.percentile(images, [1, 99]) if n else (0, 1)
    for i, image in enumerate(images):
        r, c = divmod(i, columns)
        fig.add_trace(
            go.Heatmap(z=image, colorscale="gray", zmin=low, zmax=high, showscale=False, hoverinfo="skip"),
            row=r + 1,
            col=c + 1,
        )
        if masks is not None and masks[i].any():
            fig.add_trace(
                go.Contour(
                    z=masks[i].astype(float),
                    contours={"start": 0.5, "end": 0.5, "coloring": "none"},
                    line={"color": "#e4a853", "width": 1.5},
                    showscale=False,
                    showlegend=False,
                    hoverinfo="skip",
                ),
                row=r + 1,
                col=c + 1,
            )
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, autorange="reversed", scaleanchor="x")
    fig.update_annotations(font_size=11)
    fig.update_layout(height=170 * rows + 30, margin={"l": 0, "r": 0, "t": 25, "b": 0})
    return fig
