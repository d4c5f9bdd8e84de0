"""The training lab's figures, written as dicts, against Plotly's own subplot machinery and a
hand computation of the grey levels."""

import json

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
import pytest
from plotly.subplots import make_subplots

from primer import train_figures
from primer.train import EpochRecord

LABELS = {k: k.upper() for k in ("loss", "performance", "train_loss", "val_loss", "train_accuracy",
                                 "val_accuracy", "val_auc", "previous", "epoch", "chance")}  # fmt: skip
SERIES = [("train_loss", 1), ("val_loss", 1), ("train_accuracy", 2), ("val_accuracy", 2), ("val_auc", 2)]


def sent(fig) -> dict:
    """What the browser receives, Plotly's default template left out (Streamlit's theme replaces it)."""
    out = json.loads(pio.to_json(fig.to_dict(), validate=False))
    out["layout"].pop("template", None)
    return out


def plotly_curves(epochs, num_epochs, previous) -> go.Figure:
    """The same chart built the usual way: make_subplots, traces per cell, axis updates, add_hline."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=(LABELS["loss"], LABELS["performance"]), horizontal_spacing=0.1)
    colors = {"train_loss": train_figures.TRAIN_COLOR, "val_loss": train_figures.VAL_COLOR,
              "train_accuracy": train_figures.TRAIN_COLOR, "val_accuracy": train_figures.VAL_COLOR,
              "val_auc": train_figures.AUC_COLOR}  # fmt: skip
    for runs, dash, opacity, suffix, show in (
        (previous, "dot", 0.45, "PREVIOUS", False),
        (epochs, "solid", 1.0, "", True),
    ):
        for attr, col in SERIES if runs else ():
            trace = go.Scatter(x=[e.epoch for e in runs], y=[getattr(e, attr) for e in runs], mode="lines+markers",
                               name=f"{attr.upper()}{suffix}", opacity=opacity, showlegend=show, legendgroup=attr,
                               line={"color": colors[attr], "dash": dash, "width": 2.5 if show else 1.5},
                               marker={"size": 6 if show else 3})  # fmt: skip
            fig.add_trace(trace, row=1, col=col)
    fig.update_xaxes(title_text="EPOCH", range=[0.5, max(num_epochs, 1) + 0.5], dtick=max(1, num_epochs // 10))
    losses = [v for e in epochs for v in (e.train_loss, e.val_loss) if np.isfinite(v)]
    top = min(max(losses), 3.0) * 1.1 if losses else 1.0
    fig.update_yaxes(range=[0, max(top, 0.8)], row=1, col=1)
    fig.update_yaxes(range=[0.4, 1.01], row=1, col=2)
    fig.add_hline(y=0.5, line={"color": "gray", "dash": "dash", "width": 1}, row=1, col=2,
                  annotation_text="CHANCE", annotation_position="bottom right")  # fmt: skip
    fig.update_layout(height=380, margin={"l": 10, "r": 10, "t": 40, "b": 10}, legend={"orientation": "h", "y": -0.22})
    return fig


def records(count: int, seed: int) -> list[EpochRecord]:
    rng = np.random.default_rng(seed)
    return [EpochRecord(i + 1, *rng.uniform(0, 4, 5).tolist(), float(i)) for i in range(count)]


@pytest.mark.parametrize(
    "epochs, num_epochs, previous",
    [
        (records(3, 0), 6, None),
        (records(6, 1), 6, records(6, 2)),
        ([], 20, records(4, 3)),  # a new run has started, nothing back yet
        ([EpochRecord(1, float("nan"), 0.5, float("inf"), 0.5, 0.5, 1.0)], 30, None),  # a diverged loss
    ],
)
def test_curves_send_what_make_subplots_sends(epochs, num_epochs, previous):
    assert sent(train_figures.curves(epochs, num_epochs, LABELS, previous)) == sent(
        plotly_curves(epochs, num_epochs, previous)
    )


def test_image_grid_maps_the_1st_to_99th_percentile_onto_256_grey_levels():
    rng = np.random.default_rng(0)
    images = rng.normal(size=(6, 16, 16)).astype(np.float32)
    masks = np.zeros((6, 16, 16), dtype=bool)
    masks[2, 4:8, 4:8] = True
    fig = train_figures.image_grid(images, [f"case {i}" for i in range(6)], masks, columns=4)
    low, high = np.percentile(images, [1, 99])
    heatmaps = [t for t in fig.light_data if t["type"] == "heatmap"]
    contours = [t for t in fig.light_data if t["type"] == "contour"]
    assert len(heatmaps) == 6 and len(contours) == 1 and contours[0]["xaxis"] == "x3"
    for image, trace in zip(images, heatmaps, strict=True):
        expected = np.clip(np.round((image - low) / (high - low) * 255), 0, 255)
        assert trace["z"].dtype == np.uint8
        np.testing.assert_array_equal(trace["z"], expected)
    layout = sent(fig)["layout"]
    assert layout["height"] == 170 * 2 + 30  # two rows of four
    assert [a["text"] for a in layout["annotations"]] == [f"case {i}" for i in range(6)]
    assert all(layout[f"yaxis{i if i > 1 else ''}"]["scaleanchor"] == "x" for i in range(1, 9))
