"""Figures of the federated-learning lab (Plotly); every label comes in translated."""

from __future__ import annotations

import plotly.graph_objects as go

FEDAVG_COLOR = "#1f77b4"
CENTRAL_COLOR = "#2ca02c"
LOCAL_COLORS = ("#ff7f0e", "#d62728", "#9467bd", "#8c564b", "#e377c2")
NEW_COLOR = "#17becf"


def method_color(method: str) -> str:
    if method == "fedavg":
        return FEDAVG_COLOR
    if method == "central":
        return CENTRAL_COLOR
    return LOCAL_COLORS[int(method.split(":")[1]) % len(LOCAL_COLORS)]


def curves(steps, total_epochs: int, names: dict[str, str], words: dict[str, str]) -> go.Figure:
    """Validation AUC against passes over each hospital's data, one line per model; FedAvg also
    on the new hospital (dashed). `names`: method → legend name."""
    fig = go.Figure()
    order = list(dict.fromkeys(s.method for s in steps))
    for method in order:
        own = [s for s in steps if s.method == method]
        local = method.startswith("local")
        fig.add_scatter(
            x=[s.epochs for s in own],
            y=[s.val_auc for s in own],
            mode="lines+markers",
            name=names[method],
            line={"color": method_color(method), "width": 1.5 if local else 3, "dash": "dot" if local else "solid"},
            marker={"size": 4 if local else 7},
        )
        if method == "fedavg":
            fig.add_scatter(
                x=[s.epochs for s in own],
                y=[s.new_auc for s in own],
                mode="lines+markers",
                name=words["fedavg_new"],
                line={"color": NEW_COLOR, "width": 2, "dash": "dash"},
                marker={"size": 6, "symbol": "diamond"},
            )
    fig.add_hline(y=0.5, line={"color": "grey", "width": 1, "dash": "dot"})
    fig.update_layout(
        xaxis={"title": words["epochs"], "range": [0.5, max(1, total_epochs) + 0.5], "dtick": 1},
        yaxis={"title": words["auc"], "range": [0.3, 1.0]},
        legend={"orientation": "h", "y": -0.25},
        margin={"l": 50, "r": 10, "t": 10, "b": 10},
        height=340,
    )
    return fig


def auc_bars(items: list[dict], words: dict[str, str]) -> go.Figure:
    """AUC with its 95% interval, one bar per model, on one test set.
    items: {name, method, auc, low, high}."""
    fig = go.Figure(
        go.Bar(
            x=[i["name"] for i in items],
            y=[i["auc"] for i in items],
            marker_color=[method_color(i["method"]) for i in items],
            error_y={
                "type": "data",
                "symmetric": False,
                "array": [i["high"] - i["auc"] for i in items],
                "arrayminus": [i["auc"] - i["low"] for i in items],
            },
            text=[f"{i['auc']:.3f}" for i in items],
            textposition="inside",
        )
    )
    fig.add_hline(y=0.5, line={"color": "grey", "width": 1, "dash": "dot"})
    fig.update_layout(
        yaxis={"title": words["auc"], "range": [0.3, 1.0]},
        margin={"l": 50, "r": 10, "t": 30, "b": 10},
        title={"text": words["title"], "font": {"size": 14}},
        height=320,
        showlegend=False,
    )
    return fig
