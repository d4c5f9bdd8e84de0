"""Figures of the terminology chapter: small functions that return Plotly figures.

Every builder takes a `words` dict of translated labels (English defaults in `EN`), so the same
function draws the English and the Chinese page. Colours come from the Okabe–Ito palette and
read on the app's dark theme as well as on white.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from primer.light_figure import LightFigure, axes, grid, hide_axes
from primer.quiz import FigureQuestion

CNN_COLOR = "#4fb3a9"  # the app's teal: the learned model
HAND_COLOR = "#E69F00"  # hand-engineered pipeline with the prewhitened matched filter
GENERIC_COLOR = "#CC79A7"  # hand-engineered pipeline with generic features only
VAL_COLOR = "#56B4E9"
IDEAL_COLOR = "#dddddd"  # the ceiling: light, dashed
WARN_COLOR = "#D55E00"
SPLIT_COLORS = ("#4fb3a9", "#E69F00", "#CC79A7")  # train, validation, test
INSTANCE_COLORS = ("#E69F00", "#56B4E9", "#009E73", "#F0E442", "#CC79A7")
POSITIVE_COLOR, NEGATIVE_COLOR = "#D55E00", "#56B4E9"

EN = {
    "ai": "Artificial intelligence",
    "ai_example": "Any computer behaviour we would call intelligent, including hand-written rules (early CAD, expert systems)",
    "ml": "Machine learning",
    "ml_example": "Rules learned from examples, e.g. logistic regression on hand-engineered (radiomic) features",
    "dl": "Deep learning",
    "dl_example": "Many-layered neural networks that learn their own features from pixels, e.g. CNNs",
    "class": "Classification",
    "boxes": "Detection",
    "semantic": "Semantic segmentation",
    "instance": "Instance segmentation",
    "lesion_present": "Label: lesion present",
    "lesion_absent": "Label: no lesion",
    "auc": "AUC",
    "test_auc": "Test AUC",
    "val_auc": "Validation AUC",
    "ideal": "Ideal observer (lesion place known)",
    "cnn": "Small CNN (learned features)",
    "hand": "Hand features + logistic regression",
    "hand_generic": "Generic hand features",
    "hand_prewhitened": "Hand features with prewhitened matched filter",
    "contrast": "Lesion contrast (background SD)",
    "chance": "Chance",
    "weight": "Weight (standardised feature)",
    "num_train": "Training images (log scale)",
    "rate_random": "Fraction of training labels flipped",
    "rate_missed": "Fraction of positives labelled normal",
    "clean_ref": "Test AUC, clean reference",
    "noisy_ref": "Test AUC, equally noisy reference",
    "sensitivity": "Sensitivity at 0.5",
    "specificity": "Specificity at 0.5",
    "sensitivity_plain": "Sensitivity",
    "specificity_plain": "Specificity",
    "prevalence": "Prevalence (log scale)",
    "accuracy": "Accuracy",
    "all_normal": "Accuracy of 'everyone is normal'",
    "split_image": "Split by image",
    "split_patient": "Split by patient",
    "fresh_auc": "AUC on new patients",
    "patient": "Patient",
    "image": "Image",
    "train": "Training",
    "val": "Validation",
    "test": "Test",
    "images_per_patient": "Images per patient",
    "feature_x": "Matched-filter peak (standardised)",
    "feature_y": "GLCM contrast (standardised)",
    "boundary": "Decision boundary",
    "lesion": "Lesion",
    "no_lesion": "No lesion",
    "pc": "Principal component",
    "cluster": "Cluster",
    "kernel": "Learned predictor (7×7)",
    "raw": "Image",
    "residual": "What it could not predict (smoothed)",
    "raw_features": "Raw pixels, {n} labels",
    "ssl_features": "Self-supervised residual, {n} labels",
    "cam_hit": "peak on lesion ✓",
    "cam_miss": "peak off lesion ✗",
    "value": "Value",
    "beta_panel": "β = {beta:g}",
}


def _words(words: dict | None) -> dict:
    return {**EN, **(words or {})}


def _layout(fig: go.Figure, height: int = 380, **kwargs) -> go.Figure:
    settings = {
        "height": height,
        "margin": dict(l=10, r=10, t=40, b=10),
        "legend": dict(orientation="h", yanchor="bottom", y=1.02, x=0),
    }
    fig.update_layout(**{**settings, **kwargs})
    return fig


def _rgb(image: np.ndarray) -> np.ndarray:
    """Grey image → (H, W, 3) float RGB in 0..255, windowed at the 1st and 99th percentiles."""
    image = np.asarray(image, dtype=np.float64)
    low, high = np.percentile(image, [1, 99])
    gray = np.clip((image - low) / max(high - low, 1e-9), 0, 1)
    return np.repeat(gray[..., None], 3, axis=2) * 255.0


def _hex(color: str) -> np.ndarray:
    return np.array([int(color[i : i + 2], 16) for i in (1, 3, 5)], dtype=np.float64)


def _paint(rgb: np.ndarray, mask: np.ndarray, color: str, alpha: float = 0.55) -> np.ndarray:
    out = rgb.copy()
    out[mask] = (1 - alpha) * out[mask] + alpha * _hex(color)
    return out


def _no_axes(fig: go.Figure) -> None:
    """Hide the axes; every image keeps square pixels against its own x axis (anchoring all of
    them to the first x axis would squeeze some subplots of a grid and stretch others)."""
    fig.update_xaxes(visible=False)
    fig.for_each_yaxis(lambda axis: axis.update(visible=False, scaleanchor=axis.anchor or "x"))


def image_grid(images, titles, masks=None, columns: int = 4) -> go.Figure:
    """Small grey images in a grid, lesions optionally outlined (drawn here rather than with the
    training chapter's helper, which would import torch on this page's first view). Written as
    plain dicts (primer.light_figure): as make_subplots and per-axis updates it cost ~30 ms, on
    every move of the labs that show examples."""
    n = len(images)
    rows = max(1, -(-n // columns))
    layout = grid(rows, columns, titles, h_space=0.02, v_space=0.08, image=False, title_size=12)
    hide_axes(layout)  # square pixels against its own x axis (see _no_axes)
    data = []
    for i, image in enumerate(images):
        rgb = _rgb(image)
        if masks is not None and masks[i].any():
            rgb[masks[i] & ~_erode(masks[i])] = _hex(HAND_COLOR)
        x_name, y_name = axes(i + 1)
        data.append(dict(type="image", z=rgb.astype(np.uint8), hoverinfo="skip", xaxis=x_name, yaxis=y_name))
    layout.update(
        height=190 * rows + 30,
        margin=dict(l=0, r=0, t=25, b=0),
        legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0),
    )
    return LightFigure({"data": data, "layout": layout})


# ---------------------------------------------------------------------------------------------
# AI ⊃ ML ⊃ DL


def ai_ml_dl_diagram(words: dict | None = None) -> go.Figure:
    """Three nested rounded boxes: deep learning inside machine learning inside AI."""
    w = _words(words)
    fig = go.Figure()
    boxes = (
        (0.0, 0.0, 1.0, 1.0, "#3a4654", w["ai"], w["ai_example"]),
        (0.06, 0.06, 0.94, 0.70, "#2f5d62", w["ml"], w["ml_example"]),
        (0.12, 0.12, 0.88, 0.40, "#4fb3a9", w["dl"], w["dl_example"]),
    )
    for x0, y0, x1, y1, color, title, example in boxes:
        fig.add_shape(
            type="rect", x0=x0, y0=y0, x1=x1, y1=y1, line=dict(color=color, width=3), fillcolor=color, opacity=0.35
        )
        fig.add_annotation(
            x=(x0 + x1) / 2,
            y=y1 - 0.06,
            text=f"<b>{title}</b>",
            showarrow=False,
            font=dict(size=17),
        )
        fig.add_annotation(x=(x0 + x1) / 2, y=y1 - 0.14, text=example, showarrow=False, font=dict(size=12.5), width=560)
    fig.update_xaxes(visible=False, range=[-0.01, 1.01])
    fig.update_yaxes(visible=False, range=[-0.01, 1.01])
    return _layout(fig, height=380, margin=dict(l=0, r=0, t=0, b=0))


# ---------------------------------------------------------------------------------------------
# Task families on one image


def task_families(phantom, words: dict | None = None) -> go.Figure:
    """The same image labelled four ways: a class, boxes, one mask, one mask per lesion."""
    w = _words(words)
    image = phantom.images[0]
    base = _rgb(image)
    titles = (w["class"], w["boxes"], w["semantic"], w["instance"])
    # Written as dicts (primer.light_figure): with make_subplots this took ~40 ms per example.
    layout = grid(1, 4, titles, h_space=0.015, image=False, title_size=16)
    hide_axes(layout)
    semantic = _paint(base, phantom.masks[0], INSTANCE_COLORS[0])
    instance = base.copy()
    for k, mask in enumerate(phantom.instance_masks(0)):
        instance = _paint(instance, mask, INSTANCE_COLORS[k % len(INSTANCE_COLORS)], alpha=0.65)
    data = []
    for col, rgb in enumerate((base, base, semantic, instance), start=1):
        x_name, y_name = axes(col)
        data.append({"type": "image", "z": rgb.astype(np.uint8), "hoverinfo": "skip", "xaxis": x_name, "yaxis": y_name})
    label = w["lesion_present"] if phantom.labels[0] == 1 else w["lesion_absent"]
    layout["annotations"].append({"x": image.shape[1] / 2, "y": image.shape[0] * 0.93, "text": f"<b>{label}</b>",
                                  "showarrow": False, "bgcolor": "rgba(20,24,29,0.75)",
                                  "font": {"color": "#ffffff", "size": 13}, "xref": "x", "yref": "y"})  # fmt: skip
    layout["shapes"] = []
    for k, box in enumerate(phantom.image_boxes(0)):
        x1, y1, x2, y2 = (float(v) for v in box)
        layout["shapes"].append({"type": "rect", "x0": x1 - 1.5, "y0": y1 - 1.5, "x1": x2 + 1.5, "y1": y2 + 1.5,
                                 "line": {"color": INSTANCE_COLORS[k % len(INSTANCE_COLORS)], "width": 2},
                                 "xref": "x2", "yref": "y2"})  # fmt: skip
    layout.update(height=300, margin={"l": 0, "r": 0, "t": 30, "b": 0},
                  legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0})  # fmt: skip
    return LightFigure({"data": data, "layout": layout})


# ---------------------------------------------------------------------------------------------
# Learned vs hand-engineered features


def features_bars(ideal: float, hand: float, cnn: float | None, words: dict | None = None) -> go.Figure:
    """Three AUCs side by side, the ideal observer's as the ceiling."""
    w = _words(words)
    names = [w["ideal"], w["hand"], w["cnn"]]
    values = [ideal, hand, cnn if cnn is not None else float("nan")]
    fig = go.Figure(
        go.Bar(
            y=names,
            x=values,
            orientation="h",
            marker_color=[IDEAL_COLOR, HAND_COLOR, CNN_COLOR],
            text=[f"{v:.3f}" if np.isfinite(v) else "—" for v in values],
            textposition="outside",
            hoverinfo="skip",
        )
    )
    fig.add_vline(x=0.5, line=dict(color="#888888", dash="dot", width=1))
    fig.update_xaxes(title=w["test_auc"], range=[0.4, 1.08])
    fig.update_yaxes(autorange="reversed")
    return _layout(fig, height=240, margin=dict(l=10, r=10, t=10, b=10), showlegend=False)


def features_sweep(points: list[dict], beta: float, contrast: float, feature_set: str, words=None) -> go.Figure:
    """AUC against lesion contrast at this texture β: where each reader wins."""
    w = _words(words)
    here = sorted((p for p in points if abs(p["beta"] - beta) < 1e-9), key=lambda p: p["contrast"])
    x = [p["contrast"] for p in here]
    fig = go.Figure()
    series = (
        ("ideal_auc", w["ideal"], IDEAL_COLOR, "dash"),
        (f"hand_{feature_set}_auc", w["hand"], HAND_COLOR, "solid"),
        ("test_auc", w["cnn"], CNN_COLOR, "solid"),
    )
    for key, name, color, dash in series:
        fig.add_trace(
            go.Scatter(
                x=x, y=[p[key] for p in here], name=name, mode="lines+markers", line=dict(color=color, dash=dash)
            )
        )
    fig.add_vline(x=contrast, line=dict(color="#888888", width=1))
    fig.add_hline(y=0.5, line=dict(color="#888888", dash="dot", width=1))
    fig.update_xaxes(title=w["contrast"])
    fig.update_yaxes(title=w["test_auc"], range=[0.4, 1.02])
    return _layout(fig, height=340)


def feature_weights(coefficients: dict, names: dict, words: dict | None = None) -> go.Figure:
    """Logistic-regression weights of the standardised hand features: what the classic model
    ended up relying on."""
    w = _words(words)
    keys = list(coefficients)
    values = [coefficients[k] for k in keys]
    fig = go.Figure(
        go.Bar(
            x=values,
            y=[names.get(k, k) for k in keys],
            orientation="h",
            marker_color=[HAND_COLOR if v >= 0 else VAL_COLOR for v in values],
            hoverinfo="skip",
        )
    )
    fig.update_xaxes(title=w["weight"], zeroline=True)
    fig.update_yaxes(autorange="reversed")
    return _layout(fig, height=260, showlegend=False)


def feature_examples(phantoms, words=None) -> go.Figure:
    """A few images of the task at this contrast and texture, lesions outlined."""
    w = _words(words)
    titles = [w["lesion"] if label == 1 else w["no_lesion"] for label in phantoms.labels]
    return image_grid(phantoms.images, titles, phantoms.masks, columns=2)


def beta_backgrounds(images, betas, words=None) -> go.Figure:
    """The same background texture at each β, side by side (each panel windowed alike, at its
    own 1st and 99th percentiles, so what differs is the texture, not the brightness)."""
    w = _words(words)
    return image_grid(images, [w["beta_panel"].format(beta=beta) for beta in betas], columns=len(betas))


# ---------------------------------------------------------------------------------------------
# Learning curve


def learning_curve(summary, highlight: int | None, show_hand: bool, ideal: float | None, words=None) -> go.Figure:
    """Mean AUC ± 1 SD over seeds against training-set size, log axis."""
    w = _words(words)
    fig = go.Figure()
    series = [("test_auc", w["test_auc"] + " · " + w["cnn"], CNN_COLOR, "solid")]
    series.append(("val_auc", w["val_auc"] + " · " + w["cnn"], VAL_COLOR, "dot"))
    if show_hand:
        series += [
            ("hand_prewhitened_auc", w["hand_prewhitened"], HAND_COLOR, "solid"),
            ("hand_generic_auc", w["hand_generic"], GENERIC_COLOR, "solid"),
        ]
    for key, name, color, dash in series:
        fig.add_trace(
            go.Scatter(
                x=summary.sizes,
                y=summary.mean[key],
                error_y=dict(type="data", array=summary.sd[key], visible=True, thickness=1.2),
                name=name,
                mode="lines+markers",
                line=dict(color=color, dash=dash),
            )
        )
    if ideal is not None:
        fig.add_hline(
            y=ideal,
            line=dict(color=IDEAL_COLOR, dash="dash", width=1),
            annotation_text=w["ideal"],
            annotation_position="top left",
        )
    if highlight is not None:
        fig.add_vline(x=highlight, line=dict(color="#888888", width=1))
    fig.add_hline(y=0.5, line=dict(color="#888888", dash="dot", width=1))
    fig.update_xaxes(
        title=w["num_train"], type="log", tickvals=summary.sizes, ticktext=[f"{n:,}" for n in summary.sizes]
    )
    fig.update_yaxes(title=w["auc"], range=[0.4, 1.06])
    return _layout(fig, height=420)


# ---------------------------------------------------------------------------------------------
# Label noise


def noise_curve(summary: dict, kind: str, rate: float, words=None) -> go.Figure:
    w = _words(words)
    x = summary["rate"]
    fig = go.Figure()
    for key, name, color, dash in (
        ("test_auc", w["clean_ref"], CNN_COLOR, "solid"),
        ("noisy_reference_auc", w["noisy_ref"], WARN_COLOR, "dash"),
        ("sensitivity", w["sensitivity"], HAND_COLOR, "dot"),
    ):
        fig.add_trace(
            go.Scatter(x=x, y=summary[key], name=name, mode="lines+markers", line=dict(color=color, dash=dash))
        )
    fig.add_vline(x=rate, line=dict(color="#888888", width=1))
    fig.add_hline(y=0.5, line=dict(color="#888888", dash="dot", width=1))
    fig.update_xaxes(title=w[f"rate_{kind}"], tickformat=".0%")
    fig.update_yaxes(title=w["value"], range=[0, 1.02])
    return _layout(fig, height=360)


def noisy_examples(images, given, truth, masks, words=None) -> go.Figure:
    """Training images titled with the label training sees; a ✗ marks a wrong one, and the
    true lesions are outlined."""
    w = _words(words)
    name = {1: w["lesion"], 0: w["no_lesion"]}
    titles = [f"{name[int(g)]}" + ("" if g == t else " ✗") for g, t in zip(given, truth, strict=True)]
    return image_grid(images, titles, masks)


# ---------------------------------------------------------------------------------------------
# Class imbalance


def imbalance_curve(reports: list[dict], prevalence: float, words=None) -> go.Figure:
    """Accuracy, AUC, sensitivity and specificity against prevalence, with calling everyone
    normal."""
    w = _words(words)
    x = [r["prevalence"] for r in reports]
    fig = go.Figure()
    for key, name, color, dash in (
        ("accuracy", w["accuracy"], HAND_COLOR, "solid"),
        ("all_normal_accuracy", w["all_normal"], "#888888", "dash"),
        ("auc", w["auc"], CNN_COLOR, "solid"),
        ("sensitivity", w["sensitivity_plain"], WARN_COLOR, "solid"),
        ("specificity", w["specificity_plain"], "#b48ead", "dot"),
    ):
        fig.add_trace(
            go.Scatter(
                x=x, y=[r[key] for r in reports], name=name, mode="lines+markers", line=dict(color=color, dash=dash)
            )
        )
    fig.add_vline(x=prevalence, line=dict(color="#888888", width=1))
    fig.update_xaxes(
        title=w["prevalence"], type="log", tickvals=x, ticktext=[f"{p:.0%}" for p in x], autorange="reversed"
    )
    fig.update_yaxes(title=w["value"], range=[0, 1.02])
    return _layout(fig, height=360)


# ---------------------------------------------------------------------------------------------
# Leakage


def split_assignment(assign: np.ndarray, words=None) -> go.Figure:
    """One row per patient, one cell per image, coloured by the split it landed in."""
    w = _words(words)
    names = (w["train"], w["val"], w["test"])
    patients, images = assign.shape
    colorscale = [[0.0, SPLIT_COLORS[0]], [0.333, SPLIT_COLORS[0]], [0.334, SPLIT_COLORS[1]]]
    colorscale += [[0.666, SPLIT_COLORS[1]], [0.667, SPLIT_COLORS[2]], [1.0, SPLIT_COLORS[2]]]
    fig = go.Figure(
        go.Heatmap(
            z=assign,
            x=[f"{w['image']} {j + 1}" for j in range(images)],
            y=[f"{w['patient']} {i + 1}" for i in range(patients)],
            zmin=0,
            zmax=2,
            colorscale=colorscale,
            showscale=False,
            xgap=2,
            ygap=2,
            text=[[names[v] for v in row] for row in assign],
            hovertemplate="%{y}, %{x}: %{text}<extra></extra>",
        )
    )
    for name, color in zip(names, SPLIT_COLORS, strict=True):
        fig.add_trace(
            go.Scatter(
                x=[None], y=[None], mode="markers", marker=dict(size=12, color=color, symbol="square"), name=name
            )
        )
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(showgrid=False)
    return _layout(fig, height=330, plot_bgcolor="rgba(0,0,0,0)")


def patient_images(images, words=None) -> go.Figure:
    """The repeat images of one patient side by side."""
    w = _words(words)
    count = len(images)
    return image_grid(images, [f"{w['image']} {j + 1}" for j in range(count)], columns=min(count, 5))


def leak_bars(by_image: dict, by_patient: dict, words=None) -> go.Figure:
    """Validation, test and new-patient AUC of the two splits, side by side."""
    w = _words(words)
    metrics = ("val_auc", "test_auc", "fresh_auc")
    labels = [w["val_auc"], w["test_auc"], w["fresh_auc"]]
    fig = go.Figure()
    for point, name, color in ((by_image, w["split_image"], WARN_COLOR), (by_patient, w["split_patient"], CNN_COLOR)):
        values = [point[m] for m in metrics]
        fig.add_trace(
            go.Bar(
                x=labels,
                y=values,
                name=name,
                marker_color=color,
                text=[f"{v:.3f}" for v in values],
                textposition="outside",
            )
        )
    fig.add_hline(y=0.5, line=dict(color="#888888", dash="dot", width=1))
    fig.update_yaxes(title=w["auc"], range=[0.4, 1.08])
    return _layout(fig, height=340, barmode="group")


# ---------------------------------------------------------------------------------------------
# Kinds of learning


def supervised_figure(example, words=None) -> go.Figure:
    """The labelled images in a two-feature plane and the line logistic regression drew."""
    w = _words(words)
    fig = go.Figure()
    for value, name, color in ((1, w["lesion"], POSITIVE_COLOR), (0, w["no_lesion"], NEGATIVE_COLOR)):
        pick = example.labels == value
        fig.add_trace(
            go.Scatter(
                x=example.features[pick, 0],
                y=example.features[pick, 1],
                mode="markers",
                name=name,
                marker=dict(color=color, size=9, line=dict(width=1, color="#14181d")),
            )
        )
    (a, b), c = example.weights, example.bias
    xs = np.linspace(example.features[:, 0].min() - 0.5, example.features[:, 0].max() + 0.5, 50)
    if abs(b) > 1e-9:
        fig.add_trace(
            go.Scatter(
                x=xs, y=-(a * xs + c) / b, mode="lines", name=w["boundary"], line=dict(color="#dddddd", dash="dash")
            )
        )
    else:
        fig.add_vline(x=-c / a, line=dict(color="#dddddd", dash="dash"))
    span = example.features[:, 1]
    fig.update_yaxes(title=w["feature_y"], range=[span.min() - 0.7, span.max() + 0.7])
    fig.update_xaxes(title=w["feature_x"])
    return _layout(fig, height=360)


def unsupervised_figure(example, words=None) -> go.Figure:
    """Images placed by their first two principal components; colour = hidden truth, symbol =
    k-means cluster; beside it the top three components as images."""
    w = _words(words)
    fig = make_subplots(
        rows=1,
        cols=4,
        column_widths=[0.46, 0.18, 0.18, 0.18],
        subplot_titles=[""] + [f"{w['pc']} {i + 1} ({v:.0%})" for i, v in enumerate(example.explained)],
        horizontal_spacing=0.03,
    )
    for value, name, color in ((1, w["lesion"], POSITIVE_COLOR), (0, w["no_lesion"], NEGATIVE_COLOR)):
        pick = example.labels == value
        fig.add_trace(
            go.Scatter(
                x=example.coords[pick, 0],
                y=example.coords[pick, 1],
                mode="markers",
                name=name,
                marker=dict(
                    color=color,
                    size=6,
                    opacity=0.8,
                    symbol=np.where(example.clusters[pick] == 0, "circle", "x"),
                ),
            ),
            row=1,
            col=1,
        )
    for i, component in enumerate(example.components):
        fig.add_trace(
            go.Heatmap(z=component, colorscale="RdBu", zmid=0, showscale=False, hoverinfo="skip"), row=1, col=i + 2
        )
        fig.update_xaxes(visible=False, row=1, col=i + 2)
        fig.update_yaxes(visible=False, autorange="reversed", scaleanchor=f"x{i + 2}", row=1, col=i + 2)
    fig.update_xaxes(title=f"{w['pc']} 1", row=1, col=1)
    fig.update_yaxes(title=f"{w['pc']} 2", row=1, col=1)
    return _layout(fig, height=340)


def self_supervised_figure(example, words=None) -> go.Figure:
    """The learned 7×7 predictor, an image with a lesion, and what the predictor could not
    predict (the lesion stands out once the predictable anatomy is gone)."""
    w = _words(words)
    fig = make_subplots(rows=1, cols=3, subplot_titles=(w["kernel"], w["raw"], w["residual"]), horizontal_spacing=0.03)
    fig.add_trace(
        go.Heatmap(
            z=example.kernel,
            colorscale="RdBu",
            zmid=0,
            showscale=False,
            text=np.round(example.kernel, 2),
            texttemplate="%{text}",
            textfont=dict(size=9),
            hoverinfo="skip",
        ),
        row=1,
        col=1,
    )
    ring = _ring(example.example_mask)
    for col, image in ((2, example.example), (3, example.residual)):
        rgb = _rgb(image)
        rgb[ring] = _hex(HAND_COLOR)
        fig.add_trace(go.Image(z=rgb.astype(np.uint8), hoverinfo="skip"), row=1, col=col)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_yaxes(autorange="reversed", scaleanchor="x", row=1, col=1)
    fig.update_yaxes(scaleanchor="x2", row=1, col=2)
    fig.update_yaxes(scaleanchor="x3", row=1, col=3)
    return _layout(fig, height=300, margin=dict(l=0, r=0, t=30, b=0))


def weak_figure(example, words=None) -> go.Figure:
    """Test images with the class activation map laid over them and the true lesion outlined."""
    w = _words(words)
    count = len(example.images)
    titles = [w["cam_hit"] if hit else w["cam_miss"] for hit in example.hits]
    fig = make_subplots(rows=1, cols=count, subplot_titles=titles, horizontal_spacing=0.015)
    for i in range(count):
        rgb = _rgb(example.images[i])
        heat = example.maps[i]
        top = np.percentile(heat, 90)  # only the strongest tenth of the map glows
        heat = np.clip((heat - top) / max(heat.max() - top, 1e-9), 0, 1)
        rgb = rgb * (1 - 0.7 * heat[..., None]) + _hex(HAND_COLOR) * 0.7 * heat[..., None]
        rgb[_ring(example.masks[i])] = _hex(CNN_COLOR)
        fig.add_trace(go.Image(z=rgb.astype(np.uint8), hoverinfo="skip"), row=1, col=i + 1)
        row, col = example.peaks[i]
        fig.add_trace(
            go.Scatter(
                x=[col],
                y=[row],
                mode="markers",
                marker=dict(symbol="x-thin", size=14, line=dict(width=3, color=WARN_COLOR)),
                hoverinfo="skip",
                showlegend=False,
            ),
            row=1,
            col=i + 1,
        )
    _no_axes(fig)
    height, width = example.images.shape[1:]
    fig.update_xaxes(range=[-0.5, width - 0.5])  # a peak marker at the border must not widen the panel
    fig.update_yaxes(range=[height - 0.5, -0.5])
    return _layout(fig, height=260, margin=dict(l=0, r=0, t=30, b=0))


def _erode(mask: np.ndarray) -> np.ndarray:
    from scipy import ndimage

    return ndimage.binary_erosion(mask)


def _ring(mask: np.ndarray) -> np.ndarray:
    """A one-pixel outline just outside a mask, so it marks the lesion without covering it."""
    from scipy import ndimage

    grown = ndimage.binary_dilation(mask, iterations=2)
    return grown & ~ndimage.binary_dilation(mask)


def comparison_bars(values: dict[str, float], words=None) -> go.Figure:
    """A few AUCs as horizontal bars (names already translated)."""
    w = _words(words)
    names = list(values)
    fig = go.Figure(
        go.Bar(
            y=names,
            x=[values[n] for n in names],
            orientation="h",
            marker_color=[GENERIC_COLOR, CNN_COLOR][: len(names)] if len(names) <= 2 else CNN_COLOR,
            text=[f"{values[n]:.3f}" for n in names],
            textposition="outside",
            hoverinfo="skip",
        )
    )
    fig.add_vline(x=0.5, line=dict(color="#888888", dash="dot", width=1))
    fig.update_xaxes(title=w["test_auc"], range=[0.4, 1.08])
    fig.update_yaxes(autorange="reversed")
    return _layout(fig, height=180, margin=dict(l=10, r=10, t=10, b=10), showlegend=False)


# ---------------------------------------------------------------------------------------------
# Quiz


def quiz_learning_curve(num_train: int = 1000) -> FigureQuestion:
    """The stored learning curve; the answer is the CNN's mean test AUC at `num_train` images,
    read from the same data that is plotted."""
    from primer import terminology as term

    summary = term.curve_summary(term.load_points("curve")["points"])
    words = {
        "test_auc": "Test AUC · 测试集 AUC",
        "val_auc": "Validation AUC · 验证集 AUC",
        "cnn": "CNN",
        "num_train": "Training images (log) · 训练图像数（对数坐标）",
        "auc": "AUC",
    }
    fig = learning_curve(summary, None, False, None, words)
    # The nearest stored size: only differs from `num_train` while the data file is incomplete.
    at = min(range(len(summary.sizes)), key=lambda i: abs(np.log(summary.sizes[i] / num_train)))
    answer = summary.mean["test_auc"][at]
    return FigureQuestion(fig, answer=round(answer, 2))
