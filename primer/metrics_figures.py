"""Plotly figures for the performance-metrics chapter, and its quiz's generated figures.

Builders take numbers (and the already-translated words to print) and return a figure; they
compute nothing a reader could not check against `primer.metrics`. Each figure is written as one
plain spec (traces, shapes, annotations, axes) and handed over as a `LightFigure`, not validated:
a class of students redraws these figures on every move, and Plotly's validation was the largest
share of the chapter's CPU (tests/test_light_figure.py checks that what reaches the browser is
what a validated figure sends).

Colours follow one rule across the chapter: true positives bluish green, false positives
vermilion, false negatives blue (Okabe–Ito, distinguishable with the common colour-vision
deficiencies).
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from primer import metrics
from primer.light_figure import LightFigure
from primer.quiz import FigureQuestion

TP_COLOR = "#009E73"
FP_COLOR = "#D55E00"
FN_COLOR = "#0072B2"
MODEL_COLOR = "#0072B2"
OTHER_COLOR = "#E69F00"
POSITIVE_COLOR = "#D55E00"
NEGATIVE_COLOR = "#0072B2"
MARK_COLOR = "#dddddd"  # lines and markers that must read on the app's dark background
CHANCE = {"color": "#888888", "dash": "dot", "width": 1}
POINT = {"size": 14, "color": FP_COLOR, "line": {"color": "white", "width": 2}}

EN = {
    "truth_pos": "Lesion",
    "truth_neg": "No lesion",
    "call_pos": "Called positive",
    "call_neg": "Called negative",
    "fpr": "False-positive rate (1 − specificity)",
    "tpr": "Sensitivity (true-positive rate)",
    "recall": "Sensitivity (recall)",
    "precision": "Precision (PPV)",
    "score": "Score",
    "cases": "Cases",
    "threshold": "Threshold",
    "prevalence": "Prevalence",
    "ppv": "PPV",
    "npv": "NPV",
    "chance": "Chance",
    "band": "95% band",
    "predicted": "Mean predicted probability",
    "observed": "Observed frequency of lesion",
    "count": "Cases per bin",
    "before": "Before",
    "after": "After",
    "perfect": "Perfect calibration",
    "radius": "Lesion radius (pixels)",
    "dice": "Dice",
    "lesions": "Lesions in this image",
    "fp_per_image": "False positives per image",
    "sensitivity": "Sensitivity",
    "auc": "AUC",
    "tp": "True positive",
    "fp": "False positive",
    "fn": "False negative",
    "truth": "True lesion",
    "below": "Below threshold",
    "operating_point": "Operating point",
    "raw": "Not interpolated",
    "test_set": "Test set",
    "chosen": "Chosen",
}


def _words(words: dict | None) -> dict:
    return {**EN, **(words or {})}


def _figure(data: list[dict], height: int = 380, **layout) -> go.Figure:
    """The whole spec as one light figure, with the layout defaults every figure here shares."""
    base = {
        "height": height,
        "margin": {"l": 10, "r": 10, "t": 40, "b": 10},
        "legend": {"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0},
    }
    return LightFigure({"data": data, "layout": base | layout})


def _axis(title: str | None = None, **kwargs) -> dict:
    return ({"title": {"text": title}} if title else {}) | kwargs


def _unit_axis(title: str, **kwargs) -> dict:
    """A 0–1 axis with gridlines every 0.1, the usual frame of ROC and PR plots."""
    return _axis(title, range=[-0.01, 1.01], dtick=0.1, **kwargs)


def _vline(x: float, color: str, dash: str = "solid", width: int = 2) -> dict:
    return {"type": "line", "xref": "x", "yref": "paper", "x0": x, "x1": x, "y0": 0, "y1": 1,
            "line": {"color": color, "dash": dash, "width": width}}  # fmt: skip


def _legend_entry(name: str, color: str, *, dash: str = "solid", marker: str | None = None) -> dict:
    """A legend item with no data (for colours drawn as shapes or image pixels)."""
    if marker:
        return {"type": "scatter", "x": [None], "y": [None], "mode": "markers", "name": name,
                "marker": {"size": 12, "color": color, "symbol": marker}}  # fmt: skip
    return {"type": "scatter", "x": [None], "y": [None], "mode": "lines", "name": name,
            "line": {"color": color, "dash": dash, "width": 3}}  # fmt: skip


def _fmt(value: float, digits: int = 2) -> str:
    return "—" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


# ---------------------------------------------------------------------------------------------
# Classification
# ---------------------------------------------------------------------------------------------


def confusion_figure(conf: metrics.Confusion, words: dict | None = None, *, decimals: int = 0) -> go.Figure:
    """2×2 table as radiology papers print it: truth in rows (lesion first), call in columns.

    Each cell shows its count and its share of its row, so sensitivity and specificity read
    directly; correct cells are green, errors red, deeper for a larger share of the row.
    """
    w = _words(words)
    cells = np.array([[conf.tp, conf.fn], [conf.fp, conf.tn]], dtype=np.float64)  # rows: truth +, truth -
    row_totals = cells.sum(axis=1, keepdims=True)
    shares = np.divide(cells, row_totals, out=np.zeros_like(cells), where=row_totals > 0)
    signed = shares * np.array([[1, -1], [-1, 1]])  # right calls > 0, errors < 0
    names = [["TP", "FN"], ["FP", "TN"]]
    text = [
        [f"<b>{names[r][c]} = {cells[r, c]:,.{decimals}f}</b><br>{100 * shares[r, c]:.0f}%" for c in range(2)]
        for r in range(2)
    ]
    heatmap = {
        "type": "heatmap",
        "z": signed,
        "x": [w["call_pos"], w["call_neg"]],
        "y": [w["truth_pos"], w["truth_neg"]],
        "text": text,
        "texttemplate": "%{text}",
        "textfont": {"size": 16},
        "colorscale": [[0, "#e8785f"], [0.5, "#f7f7f7"], [1, "#5ab4ac"]],
        "zmin": -1,
        "zmax": 1,
        "showscale": False,
        "hoverinfo": "skip",
        "xgap": 3,
        "ygap": 3,
    }
    return _figure([heatmap], height=300, yaxis={"autorange": "reversed"})


def roc_figure(
    curves: list[dict],
    *,
    operating_point: tuple[float, float] | None = None,
    band=None,
    words: dict | None = None,
) -> go.Figure:
    """ROC curves (dicts with name, fpr, tpr and optional color), the chance diagonal, an optional
    bootstrap band around the first curve and the threshold's operating point."""
    w = _words(words)
    data = []
    if band is not None:
        data.append({"type": "scatter", "x": band.fpr, "y": band.high, "mode": "lines", "line": {"width": 0},
                     "showlegend": False, "hoverinfo": "skip"})  # fmt: skip
        data.append({"type": "scatter", "x": band.fpr, "y": band.low, "mode": "lines", "line": {"width": 0},
                     "fill": "tonexty", "fillcolor": "rgba(0,114,178,0.25)", "name": w["band"]})  # fmt: skip
    data.append({"type": "scatter", "x": [0, 1], "y": [0, 1], "mode": "lines", "line": CHANCE, "name": w["chance"]})
    palette = [MODEL_COLOR, OTHER_COLOR, TP_COLOR]
    for i, curve in enumerate(curves):
        line = {"color": curve.get("color", palette[i % 3]), "width": 3 if i == 0 else 2, "shape": "hv"}
        data.append({"type": "scatter", "x": curve["fpr"], "y": curve["tpr"], "mode": "lines", "line": line,
                     "name": curve["name"]})  # fmt: skip
    if operating_point is not None:
        data.append({"type": "scatter", "x": [operating_point[0]], "y": [operating_point[1]], "mode": "markers",
                     "marker": POINT, "name": w["operating_point"]})  # fmt: skip
    return _figure(
        data,
        height=440,
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0, "traceorder": "normal"},
        xaxis=_unit_axis(w["fpr"], constrain="domain"),
        yaxis=_unit_axis(w["tpr"], scaleanchor="x", scaleratio=1, constrain="domain"),
    )


def pr_figure(
    pr: metrics.PrCurve, *, operating_point: tuple[float, float] | None = None, words: dict | None = None
) -> go.Figure:
    """Precision against recall, the chance line at the prevalence, and the operating point."""
    w = _words(words)
    data = [
        {"type": "scatter", "x": [0, 1], "y": [pr.prevalence] * 2, "mode": "lines", "line": CHANCE,
         "name": w["chance"]},
        {"type": "scatter", "x": pr.recall, "y": pr.precision, "mode": "lines",
         "line": {"color": MODEL_COLOR, "width": 3, "shape": "vh"}, "name": f"AP = {pr.average_precision:.3f}"},
    ]  # fmt: skip
    if operating_point is not None and np.isfinite(operating_point[1]):
        data.append({"type": "scatter", "x": [operating_point[0]], "y": [operating_point[1]], "mode": "markers",
                     "marker": POINT, "name": w["operating_point"]})  # fmt: skip
    return _figure(data, height=440, xaxis=_unit_axis(w["recall"]), yaxis=_unit_axis(w["precision"]))


def score_histogram(
    scores, labels, threshold: float, *, words: dict | None = None, bins: int = 25, score_range=(0.0, 1.0)
) -> go.Figure:
    """Scores of the cases with and without a lesion, and the threshold that splits them."""
    w = _words(words)
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels).astype(bool)
    low, high = score_range
    edges = np.linspace(low, high, bins + 1)
    centers = (edges[:-1] + edges[1:]) / 2.0
    data = []
    for mask, name, color in ((~labels, w["truth_neg"], NEGATIVE_COLOR), (labels, w["truth_pos"], POSITIVE_COLOR)):
        # Counted here (the last bin closed), drawn as bars: no histogram binning in the browser.
        counts, _ = np.histogram(np.clip(scores[mask], low, high), bins=edges)
        data.append({"type": "bar", "x": centers, "y": counts, "width": edges[1] - edges[0], "name": name,
                     "marker": {"color": color}, "opacity": 0.6})  # fmt: skip
    note = {"x": threshold, "y": 1.0, "yref": "paper", "text": f" {w['threshold']} {threshold:.2f}",
            "showarrow": False, "xanchor": "left"}  # fmt: skip
    return _figure(
        data,
        height=320,
        barmode="overlay",
        shapes=[_vline(threshold, MARK_COLOR, width=3)],
        annotations=[note],
        xaxis=_axis(w["score"], range=[low, high]),
        yaxis=_axis(w["cases"]),
    )


def prevalence_figure(
    sensitivity: float, specificity: float, prevalence: float, test_prevalence: float, *, words: dict | None = None
) -> go.Figure:
    """PPV and NPV of one test (fixed sensitivity and specificity) as the prevalence changes."""
    w = _words(words)
    grid = np.logspace(-3, np.log10(0.99), 200)
    ppv, npv = metrics.ppv_npv_at_prevalence(sensitivity, specificity, grid)
    data = [
        {"type": "scatter", "x": grid * 100, "y": ppv, "mode": "lines", "name": w["ppv"],
         "line": {"color": POSITIVE_COLOR, "width": 3}},
        {"type": "scatter", "x": grid * 100, "y": npv, "mode": "lines", "name": w["npv"],
         "line": {"color": NEGATIVE_COLOR, "width": 3}},
    ]  # fmt: skip
    for value, name, symbol in ((prevalence, w["chosen"], "circle"), (test_prevalence, w["test_set"], "diamond")):
        at_ppv, at_npv = metrics.ppv_npv_at_prevalence(sensitivity, specificity, value)
        marker = {"size": 13, "symbol": symbol, "color": MARK_COLOR, "line": {"color": "#333333", "width": 1}}
        data.append({"type": "scatter", "x": [value * 100] * 2, "y": [at_ppv, at_npv], "mode": "markers",
                     "marker": marker, "name": f"{name} ({100 * value:.3g}%)"})  # fmt: skip
    ticks = [0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100]
    xaxis = _axis(f"{w['prevalence']} (%)", type="log", tickvals=ticks, ticktext=[f"{t:g}" for t in ticks])
    return _figure(data, height=380, xaxis=xaxis, yaxis=_unit_axis(None))


def reliability_figure(
    before: metrics.ReliabilityBins, after: metrics.ReliabilityBins | None = None, *, words: dict | None = None
) -> go.Figure:
    """Reliability diagram (observed frequency against mean predicted probability per bin) over a
    bar chart of how many cases each bin holds (second y axis, bottom quarter)."""
    w = _words(words)
    data = [{"type": "scatter", "x": [0, 1], "y": [0, 1], "mode": "lines", "line": CHANCE, "name": w["perfect"]}]
    series = [(before, w["before"], OTHER_COLOR)] + ([(after, w["after"], MODEL_COLOR)] if after is not None else [])
    for bins, name, color in series:
        filled = bins.counts > 0
        data.append({"type": "scatter", "x": bins.mean_predicted[filled], "y": bins.observed_frequency[filled],
                     "mode": "lines+markers", "marker": {"size": 9, "color": color},
                     "line": {"color": color, "width": 2}, "name": name, "customdata": bins.counts[filled],
                     "hovertemplate": "p̄=%{x:.2f}, obs=%{y:.2f}, n=%{customdata}"})  # fmt: skip
        data.append({"type": "bar", "x": bins.centers, "y": bins.counts, "marker": {"color": color},
                     "opacity": 0.7, "showlegend": False, "name": name, "xaxis": "x2", "yaxis": "y2"})  # fmt: skip
    return _figure(
        data,
        height=480,
        barmode="group",
        bargap=0.1,
        xaxis=_axis(None, range=[0, 1], dtick=0.1, anchor="y", matches="x2", showticklabels=False),
        yaxis=_axis(w["observed"], range=[-0.02, 1.02], dtick=0.2, domain=[0.3, 1.0]),
        xaxis2=_axis(w["predicted"], range=[0, 1], dtick=0.1, anchor="y2"),
        yaxis2=_axis(w["count"], domain=[0.0, 0.22]),
    )


def auc_comparison_figure(
    items: list[dict], *, ceiling: float | None = None, ceiling_label: str = "", words: dict | None = None
) -> go.Figure:
    """AUCs with their intervals, one row per reader (dicts: name, auc, low, high, color); the
    numbers go into the row labels, where they never collide near AUC = 1."""
    w = _words(words)
    names = [f"{item['name']}<br><b>{item['auc']:.3f}</b> ({item['low']:.3f}–{item['high']:.3f})" for item in items]
    error = {
        "type": "data",
        "symmetric": False,
        "array": [item["high"] - item["auc"] for item in items],
        "arrayminus": [item["auc"] - item["low"] for item in items],
        "thickness": 2,
        "width": 8,
        "color": MARK_COLOR,
    }
    colors = [item.get("color", MODEL_COLOR) for item in items]
    points = {"type": "scatter", "x": [item["auc"] for item in items], "y": names, "mode": "markers",
              "marker": {"size": 14, "color": colors}, "error_x": error, "showlegend": False}  # fmt: skip
    shapes, notes = [], []
    if ceiling is not None:
        shapes.append(_vline(ceiling, MARK_COLOR, "dash"))
        notes.append({"x": ceiling, "y": 1.0, "yref": "paper", "text": ceiling_label, "showarrow": False,
                      "xanchor": "right", "yanchor": "bottom"})  # fmt: skip
    low = max(0.0, min(item["low"] for item in items) - 0.03)
    return _figure(
        [points],
        height=130 + 70 * len(items),
        shapes=shapes,
        annotations=notes,
        xaxis=_axis(w["auc"], range=[low, 1.0 + (1.0 - low) * 0.02]),
        yaxis={"autorange": "reversed"},
    )


def bootstrap_figure(
    interval: metrics.AucInterval, delong: metrics.AucInterval, *, words: dict | None = None
) -> go.Figure:
    """The bootstrap's resampled AUCs, with its percentile interval and DeLong's beside it."""
    w = _words(words)
    data = [
        {"type": "histogram", "x": interval.resampled_aucs, "nbinsx": 40, "marker": {"color": "#bbbbbb"},
         "showlegend": False},
        _legend_entry("Bootstrap", MODEL_COLOR),
        _legend_entry("DeLong", OTHER_COLOR, dash="dash"),
    ]  # fmt: skip
    shapes = [_vline(v, MODEL_COLOR) for v in (interval.low, interval.high)]
    shapes += [_vline(v, OTHER_COLOR, "dash") for v in (delong.low, delong.high)]
    return _figure(data, height=300, shapes=shapes, xaxis=_axis(w["auc"]), yaxis=_axis(w["count"]))


# ---------------------------------------------------------------------------------------------
# Segmentation
# ---------------------------------------------------------------------------------------------


def _gray_rgb(image) -> np.ndarray:
    image = np.asarray(image, dtype=np.float64)
    low, high = np.percentile(image, [1, 99])
    gray = np.clip((image - low) / max(high - low, 1e-9), 0, 1)
    return np.repeat(gray[..., None], 3, axis=2) * 255.0  # (H, W, 3)


def _hex_rgb(color: str) -> np.ndarray:
    return np.array([int(color[i : i + 2], 16) for i in (1, 3, 5)], dtype=np.float64)


def _image_axes() -> dict:
    return {"xaxis": {"visible": False}, "yaxis": {"visible": False, "scaleanchor": "x"}}


def overlap_figure(image, overlap, *, words: dict | None = None, alpha: float = 0.65) -> go.Figure:
    """The image with true-positive, false-positive and false-negative pixels painted in."""
    w = _words(words)
    rgb = _gray_rgb(image)
    for code, color in ((1, TP_COLOR), (2, FP_COLOR), (3, FN_COLOR)):
        where = np.asarray(overlap) == code
        rgb[where] = (1 - alpha) * rgb[where] + alpha * _hex_rgb(color)
    data = [{"type": "image", "z": rgb.astype(np.uint8), "hoverinfo": "skip"}]
    data += [_legend_entry(w[k], c, marker="square") for k, c in (("tp", TP_COLOR), ("fp", FP_COLOR), ("fn", FN_COLOR))]
    return _figure(data, height=460, **_image_axes())


def dice_radius_figure(radii, dice_values, lesion_radii=(), *, words: dict | None = None) -> go.Figure:
    """Dice of one fixed boundary error on disks of growing radius."""
    w = _words(words)
    data = [{"type": "scatter", "x": radii, "y": dice_values, "mode": "lines+markers",
             "line": {"color": MODEL_COLOR, "width": 3}, "name": w["dice"]}]  # fmt: skip
    if len(lesion_radii):
        values = np.interp(lesion_radii, radii, dice_values)
        data.append({"type": "scatter", "x": lesion_radii, "y": values, "mode": "markers", "name": w["lesions"],
                     "marker": {"size": 12, "symbol": "diamond", "color": FP_COLOR}})  # fmt: skip
    return _figure(data, height=340, xaxis=_axis(w["radius"]), yaxis=_axis(w["dice"], range=[-0.02, 1.02], dtick=0.1))


# ---------------------------------------------------------------------------------------------
# Detection
# ---------------------------------------------------------------------------------------------


def _rect(box, color: str, dash: str = "solid", width: int = 2) -> dict:
    x1, y1, x2, y2 = (float(v) for v in box)
    # Boxes hold inclusive pixel indices; a pixel's square spans ±0.5 around its index.
    return {"type": "rect", "x0": x1 - 0.5, "y0": y1 - 0.5, "x1": x2 + 0.5, "y1": y2 + 0.5,
            "line": {"color": color, "dash": dash, "width": width}}  # fmt: skip


def boxes_figure(
    image, true_boxes, pred_boxes, pred_scores, is_hit, score_threshold: float, *, words: dict | None = None
) -> go.Figure:
    """True boxes (light, dashed) and predicted boxes with their scores: a hit green, a false
    positive red, a box below the score threshold faint and dotted (not called)."""
    w = _words(words)
    shapes = [_rect(box, MARK_COLOR, "dash", 2) for box in true_boxes]
    notes = []
    for box, score, hit in zip(pred_boxes, pred_scores, is_hit, strict=True):
        called = score >= score_threshold
        color = TP_COLOR if hit else FP_COLOR
        shapes.append(_rect(box, color if called else "#bbbbbb", "solid" if called else "dot", 2 if called else 1))
        notes.append({"x": float(box[0]) - 0.5, "y": float(box[1]) - 0.5, "text": f"{score:.2f}",
                      "showarrow": False, "xanchor": "left", "yanchor": "bottom",
                      "font": {"color": "white" if called else "#cccccc", "size": 12},
                      "bgcolor": color if called else "rgba(0,0,0,0.4)"})  # fmt: skip
    data = [{"type": "image", "z": _gray_rgb(image).astype(np.uint8), "hoverinfo": "skip"}]
    legend = ((w["truth"], MARK_COLOR, "dash"), (w["tp"], TP_COLOR, "solid"), (w["fp"], FP_COLOR, "solid"),
              (w["below"], "#bbbbbb", "dot"))  # fmt: skip
    data += [_legend_entry(name, color, dash=dash) for name, color, dash in legend]
    return _figure(data, height=460, shapes=shapes, annotations=notes, **_image_axes())


def detection_pr_figure(pr, *, operating_point=None, words: dict | None = None) -> go.Figure:
    """Detection precision–recall curve (recall can stop short of 1: lesions never marked)."""
    w = _words(words)
    envelope = np.maximum.accumulate(pr.precision[::-1])[::-1] if pr.precision.size else pr.precision
    data = [
        {"type": "scatter", "x": np.r_[0.0, pr.recall], "y": np.r_[1.0, pr.precision], "mode": "lines",
         "line": {"color": "#bbbbbb", "width": 1}, "name": w["raw"]},
        {"type": "scatter", "x": np.r_[0.0, pr.recall], "y": np.r_[envelope[:1], envelope], "mode": "lines",
         "line": {"color": MODEL_COLOR, "width": 3, "shape": "vh"}, "name": f"AP = {pr.average_precision:.3f}"},
    ]  # fmt: skip
    if operating_point is not None and np.isfinite(operating_point[1]):
        data.append({"type": "scatter", "x": [operating_point[0]], "y": [operating_point[1]], "mode": "markers",
                     "marker": POINT, "name": w["operating_point"]})  # fmt: skip
    return _figure(data, height=400, xaxis=_unit_axis(w["recall"]), yaxis=_unit_axis(w["precision"]))


def froc_figure(froc, *, operating_point=None, words: dict | None = None) -> go.Figure:
    """Sensitivity against false positives per image on a log axis, with the LUNA16 levels."""
    w = _words(words)
    shown = froc.fp_per_image > 0
    data = [
        {"type": "scatter", "x": froc.fp_per_image[shown], "y": froc.sensitivity[shown], "mode": "lines",
         "line": {"color": MODEL_COLOR, "width": 3, "shape": "hv"}, "name": "FROC"},
        {"type": "scatter", "x": froc.fp_levels, "y": froc.sensitivity_at_levels, "mode": "markers",
         "marker": {"size": 10, "symbol": "square", "color": OTHER_COLOR}, "name": f"CPM = {froc.cpm:.3f}"},
    ]  # fmt: skip
    if operating_point is not None and operating_point[0] > 0:
        data.append({"type": "scatter", "x": [operating_point[0]], "y": [operating_point[1]], "mode": "markers",
                     "marker": POINT, "name": w["operating_point"]})  # fmt: skip
    ticks = [f"1/{round(1 / v)}" if v < 1 else f"{v:g}" for v in froc.fp_levels]
    xaxis = _axis(w["fp_per_image"], type="log", range=[np.log10(0.05), np.log10(16)],
                  tickvals=list(froc.fp_levels), ticktext=ticks)  # fmt: skip
    return _figure(data, height=400, xaxis=xaxis, yaxis=_unit_axis(w["sensitivity"]))


# ---------------------------------------------------------------------------------------------
# Quiz figures: the answer is computed from the very numbers drawn
# ---------------------------------------------------------------------------------------------

QUIZ_WORDS = {
    "truth_pos": "D+",
    "truth_neg": "D−",
    "call_pos": "T+",
    "call_neg": "T−",
    "fpr": "FPR = 1 − Sp",
    "tpr": "TPR = Se",
}


def quiz_confusion_ppv(seed: int = 3) -> FigureQuestion:
    """A screening-like 2×2 table; the question asks for its PPV."""
    rng = np.random.default_rng(seed)
    positives, negatives = int(rng.integers(30, 60)), int(rng.integers(700, 1200))
    tp = int(round(positives * rng.uniform(0.8, 0.95)))
    fp = int(round(negatives * rng.uniform(0.05, 0.12)))
    conf = metrics.Confusion(tp=tp, fp=fp, tn=negatives - fp, fn=positives - tp)
    answer = round(metrics.rates(conf).ppv, 3)
    return FigureQuestion(confusion_figure(conf, QUIZ_WORDS), answer, {"confusion": conf})


def quiz_roc_point(seed: int = 5) -> FigureQuestion:
    """A binormal ROC curve with one marked operating point; the question asks its sensitivity."""
    rng = np.random.default_rng(seed)
    labels = np.r_[np.ones(200), np.zeros(200)]
    scores = np.r_[rng.normal(1.6, 1.0, 200), rng.normal(0.0, 1.0, 200)]
    curve = metrics.roc(labels, scores)
    sweep = metrics.ThresholdSweep(labels, scores)
    # The threshold that keeps exactly 40 of the 200 negatives above it: a 20% false-positive rate.
    threshold = float(np.sort(scores[labels == 0])[::-1][40 - 1])
    fpr, tpr = sweep.operating_point(threshold)
    fig = roc_figure([{"name": "ROC", "fpr": curve.fpr, "tpr": curve.tpr}], operating_point=(fpr, tpr),
                     words=QUIZ_WORDS)  # fmt: skip
    guide = {"color": "#888888", "dash": "dot"}
    fig.update_layout(
        showlegend=False,
        shapes=[
            {"type": "line", "x0": fpr, "x1": fpr, "y0": 0, "y1": tpr, "line": guide},
            {"type": "line", "x0": 0, "x1": fpr, "y0": tpr, "y1": tpr, "line": guide},
        ],
    )
    return FigureQuestion(fig, round(float(tpr), 2), {"fpr": fpr})
