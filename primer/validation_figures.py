"""Plotly figures for the external-validation and ensemble labs. Words arrive translated; the
numbers come from primer.validation and nothing here computes a metric. Plain-dict specs
(primer.light_figure), like the metrics chapter's figures, whose AUC-interval and reliability
diagrams the external-validation lab reuses."""

from __future__ import annotations

import numpy as np

from primer.light_figure import LightFigure

MEMBER_COLOR = "#bbbbbb"
ENSEMBLE_COLOR = "#0072B2"  # Okabe–Ito blue, as the metrics chapter's model colour
TTA_COLOR = "#E69F00"  # Okabe–Ito orange
RIGHT_COLOR, WRONG_COLOR = "#009E73", "#D55E00"


def _figure(data: list[dict], height: int, **layout) -> LightFigure:
    base = {
        "height": height,
        "margin": {"l": 10, "r": 10, "t": 40, "b": 10},
        "legend": {"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0},
    }
    return LightFigure({"data": data, "layout": base | layout})


def auc_by_size(
    member_aucs: list[float], member_tta_aucs: list[float], ensemble_aucs: list[float], words: dict
) -> LightFigure:
    """Each member's test AUC (grey dots, TTA orange) above its index, and the AUC of the
    ensemble of the first k members (blue line) above k."""
    k = np.arange(1, len(member_aucs) + 1)
    data = [
        {"type": "scatter", "x": k, "y": member_aucs, "mode": "markers", "name": words["member"],
         "marker": {"size": 11, "color": MEMBER_COLOR}},
        {"type": "scatter", "x": k, "y": member_tta_aucs, "mode": "markers", "name": words["member_tta"],
         "marker": {"size": 9, "color": TTA_COLOR, "symbol": "diamond"}},
        {"type": "scatter", "x": k, "y": ensemble_aucs, "mode": "lines+markers", "name": words["ensemble"],
         "line": {"color": ENSEMBLE_COLOR, "width": 3}, "marker": {"size": 9}},
    ]  # fmt: skip
    values = [*member_aucs, *member_tta_aucs, *ensemble_aucs]
    low, high = min(values), max(values)
    pad = max(0.01, 0.15 * (high - low))
    return _figure(
        data,
        height=320,
        xaxis={"title": {"text": words["k"]}, "dtick": 1, "range": [0.5, len(k) + 0.5]},
        yaxis={"title": {"text": words["auc"]}, "range": [low - pad, min(1.0, high + pad) + 0.002]},
    )


def disagreement(spread: np.ndarray, correct: np.ndarray, words: dict) -> LightFigure:
    """The members' disagreement (std of P(lesion)) per test image, right calls and wrong ones
    side by side: box plots with every image as a point."""
    data = []
    for mask, name, color in ((correct, words["right"], RIGHT_COLOR), (~correct, words["wrong"], WRONG_COLOR)):
        data.append({"type": "box", "y": spread[mask], "name": f"{name} (n={int(mask.sum())})", "boxpoints": "all",
                     "jitter": 0.5, "pointpos": 0, "marker": {"color": color, "size": 4, "opacity": 0.6},
                     "line": {"color": color}, "fillcolor": "rgba(0,0,0,0)", "showlegend": False})  # fmt: skip
    return _figure(data, height=320, yaxis={"title": {"text": words["spread"]}, "rangemode": "tozero"})
