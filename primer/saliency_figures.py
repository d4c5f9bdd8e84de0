"""Plotly figures for the saliency chapter: heatmap overlays, method grids, localization bars,
sanity-check curves, the embedding scatter, shortcut results, and the quiz's generated figure.

Builders take arrays and already-translated labels and return figures; nothing here knows the
page or the language. Images are drawn as grey heatmaps with the row axis pointing down, as a
radiologist reads them, and attribution maps are laid over them with transparent low values,
so the anatomy stays visible wherever the map is quiet.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.colors import get_colorscale
from plotly.subplots import make_subplots

from primer.light_figure import LightFigure, axes, grid, hide_ticks
from primer.quiz import FigureQuestion

# Transparent at zero, then yellow → red: a non-negative map (gradient size, Grad-CAM).
POSITIVE_SCALE = [
    [0.0, "rgba(255,255,178,0)"],
    [0.15, "rgba(254,217,118,0.25)"],
    [0.4, "rgba(253,141,60,0.7)"],
    [0.7, "rgba(240,59,32,0.92)"],
    [1.0, "rgba(189,0,38,1)"],
]
# Blue (against the class) ← transparent at zero → red (for the class): a signed map.
SIGNED_SCALE = [
    [0.0, "rgba(5,48,97,1)"],
    [0.2, "rgba(33,102,172,0.9)"],
    [0.4, "rgba(146,197,222,0.45)"],
    [0.5, "rgba(247,247,247,0)"],
    [0.6, "rgba(244,165,130,0.45)"],
    [0.8, "rgba(214,96,77,0.9)"],
    [1.0, "rgba(103,0,13,1)"],
]
MASK_COLOR = "#00e5ff"  # cyan: visible on grey and on the red-blue maps alike
MARKER_COLOR = "#7CFC00"
METHOD_COLOR = "#1f77b4"
CONTROL_COLOR = "#9e9e9e"
SELECTED_COLOR = "#ffb300"  # amber ring: visible on the light and the dark theme alike


def normalized(amap: np.ndarray, signed: bool, outlier_percent: float = 2.0) -> np.ndarray:
    """A map scaled to [-1, 1] (signed) or [0, 1] (non-negative), Captum's way: divided by the
    value above which the largest `outlier_percent` of the attribution mass lies, then clipped.
    Each map is scaled to itself, so colours compare places within a map, not across maps; and
    a few extreme pixels cannot make the rest of a sparse map invisible."""
    amap = np.asarray(amap, float).squeeze()
    if not signed:
        amap = np.clip(amap, 0.0, None)
    magnitudes = np.sort(np.abs(amap).ravel())
    mass = np.cumsum(magnitudes)
    if mass[-1] <= 0:
        return np.zeros_like(amap)
    threshold = magnitudes[np.searchsorted(mass, mass[-1] * (1 - outlier_percent / 100))]
    return np.clip(amap / threshold, -1.0, 1.0)


def _display_range(image: np.ndarray) -> tuple[float, float]:
    lo, hi = np.percentile(image, [1, 99])
    return float(lo), float(hi if hi > lo else lo + 1.0)


# Under a heatmap the image tops out at light grey, not white, so the colours stay readable.
DIMMED_GRAY = [[0.0, "#000000"], [1.0, "#c8c8c8"]]


GRAY = get_colorscale("gray")  # as a list: the light figures skip Plotly's name lookup


def _image_spec(image: np.ndarray, dimmed: bool = True, **kw) -> dict:
    # The display window's 256 grey levels as bytes: the image is never hovered, and a grid
    # repeats it in every panel (a quarter of float32's bytes to send).
    lo, hi = _display_range(image)
    grey = np.clip((np.asarray(image, np.float64) - lo) / (hi - lo) * 255, 0, 255)
    return dict(
        type="heatmap",
        z=np.round(grey).astype(np.uint8),
        colorscale=DIMMED_GRAY if dimmed else GRAY,
        zmin=0,
        zmax=255,
        showscale=False,
        hoverinfo="skip",
        **kw,
    )


def _outline_spec(mask: np.ndarray, color: str, **kw) -> dict:
    return dict(
        type="contour",
        z=np.asarray(mask, np.uint8),
        contours=dict(start=0.5, end=0.5, size=1, coloring="none"),
        line=dict(color=color, width=2),
        showscale=False,
        hoverinfo="skip",
        **kw,
    )


def _heat_spec(amap: np.ndarray, signed: bool, opacity: float, colorbar: dict | None, hover: str, **kw) -> dict:
    spec = dict(
        type="heatmap",
        z=normalized(amap, signed).astype(np.float32),
        colorscale=SIGNED_SCALE if signed else POSITIVE_SCALE,
        zmin=-1.0 if signed else 0.0,
        zmax=1.0,
        opacity=opacity,
        showscale=colorbar is not None,
        hovertemplate=hover,
        **kw,
    )
    if colorbar is not None:
        spec["colorbar"] = colorbar
    return spec


def _image_trace(image: np.ndarray, dimmed: bool = True, **kw) -> go.Heatmap:
    return go.Heatmap(_image_spec(image, dimmed, **kw))


def _outline(mask: np.ndarray, color: str, **kw) -> go.Contour:
    return go.Contour(_outline_spec(mask, color, **kw))


def _heat_trace(amap: np.ndarray, signed: bool, opacity: float, colorbar: dict | None, hover: str, **kw) -> go.Heatmap:
    return go.Heatmap(_heat_spec(amap, signed, opacity, colorbar, hover, **kw))


def _square_axes(fig: go.Figure, count: int = 1) -> None:
    for i in range(1, count + 1):
        suffix = "" if i == 1 else str(i)
        fig.layout[f"xaxis{suffix}"].update(showticklabels=False, showgrid=False, zeroline=False, constrain="domain")
        fig.layout[f"yaxis{suffix}"].update(
            showticklabels=False,
            showgrid=False,
            zeroline=False,
            autorange="reversed",
            scaleanchor=f"x{suffix}",
            constrain="domain",
        )


def overlay_figure(
    image: np.ndarray,
    amap: np.ndarray | None,
    *,
    signed: bool = False,
    opacity: float = 0.5,
    mask: np.ndarray | None = None,
    marker: np.ndarray | None = None,
    title: str = "",
    colorbar_title: str = "",
    hover_label: str = "attribution",
    height: int = 460,
) -> go.Figure:
    """One image with its attribution map on top, a colorbar, and the true lesion outlined."""
    fig = go.Figure(_image_trace(image, dimmed=amap is not None))
    if amap is not None:
        ticks = [-1, -0.5, 0, 0.5, 1] if signed else [0, 0.25, 0.5, 0.75, 1]
        colorbar = dict(title=dict(text=colorbar_title, side="right"), tickvals=ticks, thickness=14, len=0.9)
        hover = f"row %{{y}}, col %{{x}}<br>{hover_label} %{{z:.2f}}<extra></extra>"
        fig.add_trace(_heat_trace(amap, signed, opacity, colorbar, hover))
    if mask is not None and np.any(mask):
        fig.add_trace(_outline(mask, MASK_COLOR))
    if marker is not None and np.any(marker):
        fig.add_trace(_outline(marker, MARKER_COLOR))
    fig.update_layout(
        title=dict(text=title, x=0.02), height=height, margin=dict(l=10, r=10, t=40 if title else 10, b=10)
    )
    _square_axes(fig)
    return fig


def map_grid(
    image: np.ndarray,
    panels: list[tuple[str, np.ndarray | None, bool]],
    *,
    opacity: float = 0.5,
    mask: np.ndarray | None = None,
    marker: np.ndarray | None = None,
    images: list[np.ndarray] | None = None,
    cols: int = 5,
    panel_height: int = 210,
    hover_label: str = "attribution",
) -> go.Figure:
    """Several maps of one image (or of `images`, one per panel), each scaled to itself.
    panels: (title, map or None for the bare image, signed)."""
    rows = -(-len(panels) // cols)
    # Plain dicts, not make_subplots: 20 panels cost ~0.2 s as validated Plotly objects, on
    # every move of a control (primer.light_figure).
    layout = grid(
        rows,
        cols,
        [p[0] for p in panels],
        h_space=0.015,
        v_space=0.08 / max(rows - 1, 1) if rows > 1 else 0.0,
        title_size=12,
    )
    hide_ticks(layout)
    hover = f"row %{{y}}, col %{{x}}<br>{hover_label} %{{z:.2f}}<extra></extra>"
    data = []
    for i, (_, amap, signed) in enumerate(panels):
        x_name, y_name = axes(i + 1)
        where = dict(xaxis=x_name, yaxis=y_name)
        data.append(_image_spec(images[i] if images is not None else image, **where))
        if amap is not None:
            data.append(_heat_spec(amap, signed, opacity, None, hover, **where))
        if mask is not None and np.any(mask):
            data.append(_outline_spec(mask, MASK_COLOR, **where))
        if marker is not None and np.any(marker):
            data.append(_outline_spec(marker, MARKER_COLOR, **where))
    layout.update(height=panel_height * rows + 40, margin=dict(l=5, r=5, t=30, b=5), showlegend=False)
    return LightFigure({"data": data, "layout": layout})


def localization_bars(
    rows: list[dict],
    names: dict[str, str],
    *,
    pointing_title: str,
    energy_title: str,
    controls: tuple[str, ...] = ("image", "edges", "random"),
    height: int = 460,
) -> go.Figure:
    """Pointing-game accuracy (with its 95% interval) and energy inside the mask, per method,
    best first; the model-free controls in grey."""
    rows = sorted(rows, key=lambda r: r["pointing"])
    labels = [names.get(r["method"], r["method"]) for r in rows]
    colors = [CONTROL_COLOR if r["method"] in controls else METHOD_COLOR for r in rows]
    fig = make_subplots(rows=1, cols=2, shared_yaxes=True, subplot_titles=[pointing_title, energy_title])
    pointing = np.array([r["pointing"] for r in rows])
    fig.add_trace(
        go.Bar(
            x=pointing,
            y=labels,
            orientation="h",
            marker_color=colors,
            error_x=dict(
                type="data",
                symmetric=False,
                array=np.array([r["pointing_high"] for r in rows]) - pointing,
                arrayminus=pointing - np.array([r["pointing_low"] for r in rows]),
                color="#555",
            ),
            text=[f"{v:.0%}" for v in pointing],
            textposition="inside",
            insidetextanchor="start",
            hovertemplate="%{y}: %{x:.0%}<extra></extra>",
        ),
        row=1,
        col=1,
    )
    energy = np.array([r["energy"] for r in rows])
    fig.add_trace(
        go.Bar(
            x=energy,
            y=labels,
            orientation="h",
            marker_color=colors,
            text=[f"{v:.0%}" for v in energy],
            textposition="auto",
            hovertemplate="%{y}: %{x:.0%}<extra></extra>",
        ),
        row=1,
        col=2,
    )
    fig.update_xaxes(range=[0, 1], tickformat=".0%")
    fig.update_layout(height=height, showlegend=False, margin=dict(l=10, r=10, t=40, b=30))
    return fig


def localization_table(rows: list[dict], names: dict[str, str], columns: tuple[str, str, str]) -> list[dict]:
    """The scores as table rows, best first: method, pointing game with its 95% interval, energy."""
    return [
        dict(
            zip(
                columns,
                (
                    names.get(r["method"], r["method"]),
                    f"{r['pointing']:.0%}"
                    + (
                        ""
                        if r["pointing_low"] == r["pointing_high"]
                        else f" ({r['pointing_low']:.0%}–{r['pointing_high']:.0%})"
                    ),
                    f"{r['energy']:.0%}",
                ),
                strict=True,
            )
        )
        for r in sorted(rows, key=lambda r: -r["pointing"])
    ]


def sanity_curves(
    layers: list[str],
    correlation: dict[str, np.ndarray],
    image_correlation: dict[str, np.ndarray],
    names: dict[str, str],
    *,
    layer_names: dict[str, str],
    titles: tuple[str, str],
    depth: int | None = None,
    height: int = 440,
) -> go.Figure:
    """Left: each map's rank correlation with its original as layers are randomised, top down;
    a method that explains the model falls towards 0. Right: its rank correlation with the
    image itself; a rising curve is a map turning into a picture of the image."""
    x = [layer_names.get(layer, layer) for layer in layers]
    # Written as dicts (primer.light_figure): with make_subplots this took ~50 ms per redraw.
    layout = grid(1, 2, list(titles), h_space=0.08, image=False, title_size=16, lines=True)
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf"]
    data = []
    for k, (method, rho) in enumerate(correlation.items()):
        control = method in ("edges", "image")
        line = {"dash": "dash", "color": CONTROL_COLOR} if control else {"color": palette[k % len(palette)]}
        for col, values in ((1, rho), (2, image_correlation[method])):
            x_name, y_name = axes(col)
            data.append({"type": "scatter", "x": x, "y": np.asarray(values, dtype=np.float64),
                         "name": names.get(method, method), "legendgroup": method, "showlegend": col == 1,
                         "mode": "lines+markers", "line": line, "xaxis": x_name, "yaxis": y_name,
                         "hovertemplate": "%{x}: ρ = %{y:.2f}<extra>%{fullData.name}</extra>"})  # fmt: skip
    if depth is not None and 0 <= depth < len(x):
        layout["shapes"] = [
            {"type": "line", "xref": x_name, "yref": f"{y_name} domain", "x0": depth, "x1": depth, "y0": 0, "y1": 1,
             "line": {"color": "#888", "dash": "dot"}}
            for x_name, y_name in (axes(1), axes(2))
        ]  # fmt: skip
    for col in (1, 2):
        x_name, y_name = axes(col)
        layout["xaxis" + x_name[1:]]["tickangle"] = -30
        layout["yaxis" + y_name[1:]]["range"] = [-0.8, 1.05]
    layout.update(
        height=height, margin={"l": 10, "r": 10, "t": 40, "b": 10}, legend={"orientation": "v", "x": 1.01, "y": 1}
    )
    return LightFigure({"data": data, "layout": layout})


def embedding_scatter(
    coords: np.ndarray,
    *,
    groups: np.ndarray | None = None,
    group_names: dict[int, str] | None = None,
    values: np.ndarray | None = None,
    value_title: str = "",
    hover: list[str],
    selected: int | None = None,
    axis_titles: tuple[str, str] = ("", ""),
    height: int = 480,
) -> go.Figure:
    """Test images as points in 2-D. Colour by a category (`groups`) or a number (`values`).
    Each point carries its image index as customdata, so a click can select it."""
    fig = go.Figure()
    index = np.arange(len(coords))
    if values is not None:
        fig.add_trace(
            go.Scattergl(
                x=coords[:, 0],
                y=coords[:, 1],
                mode="markers",
                customdata=index,
                text=hover,
                hovertemplate="%{text}<extra></extra>",
                marker=dict(
                    color=values, colorscale="RdBu_r", cmin=0, cmax=1, size=8, colorbar=dict(title=value_title)
                ),
                showlegend=False,
            )
        )
    else:
        palette = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e"]
        for g in np.unique(groups):
            pick = groups == g
            fig.add_trace(
                go.Scattergl(
                    x=coords[pick, 0],
                    y=coords[pick, 1],
                    mode="markers",
                    name=(group_names or {}).get(int(g), str(g)),
                    customdata=index[pick],
                    text=[hover[i] for i in index[pick]],
                    hovertemplate="%{text}<extra></extra>",
                    marker=dict(size=8, color=palette[int(g) % len(palette)], opacity=0.8),
                )
            )
    if selected is not None and 0 <= selected < len(coords):
        fig.add_trace(
            go.Scatter(
                x=[coords[selected, 0]],
                y=[coords[selected, 1]],
                mode="markers",
                marker=dict(size=20, color="rgba(0,0,0,0)", line=dict(color=SELECTED_COLOR, width=4)),
                hoverinfo="skip",
                showlegend=False,
            )
        )
    fig.update_layout(
        height=height,
        xaxis_title=axis_titles[0],
        yaxis_title=axis_titles[1],
        margin=dict(l=10, r=10, t=20, b=10),
        legend=dict(orientation="h", y=1.02, yanchor="bottom"),
        clickmode="event+select",
    )
    return fig


def shortcut_bars(
    auc: dict[str, dict[str, float]], model_names: dict[str, str], variant_names: dict[str, str], *, y_title: str
) -> go.Figure:
    """Test AUC of each model on each version of the test set; 0.5 is a coin toss."""
    fig = go.Figure()
    colors = ["#d62728", "#1f77b4"]  # the shortcut model in red, the control in blue
    for k, (model, by_variant) in enumerate(auc.items()):
        fig.add_trace(
            go.Bar(
                x=[variant_names.get(v, v) for v in by_variant],
                y=list(by_variant.values()),
                name=model_names.get(model, model),
                marker_color=colors[k % 2],
                text=[f"{v:.2f}" for v in by_variant.values()],
                textposition="outside",
            )
        )
    fig.add_hline(y=0.5, line=dict(dash="dash", color="#888"))
    fig.update_layout(
        barmode="group",
        height=400,
        yaxis=dict(title=y_title, range=[0, 1.1]),
        margin=dict(l=10, r=10, t=20, b=10),
        legend=dict(orientation="h", y=1.02, yanchor="bottom"),
    )
    return fig


# ---------------------------------------------------------------------------------------------
# Quiz figure: which of four maps wins the pointing game?


def quiz_pointing_game(seed: int = 3) -> FigureQuestion:
    """Four maps (A–D) over one outlined lesion. Only one has its single hottest pixel inside
    the lesion; another spreads most of its energy over the lesion but peaks outside it. The
    answer is computed with primer.explain.pointing_hit on the same arrays."""
    from primer.explain import pointing_hit

    rng = np.random.default_rng(seed)
    size = 48
    rows, cols = np.mgrid[0:size, 0:size]
    lesion = np.array([24.0, 22.0])
    mask = np.hypot(rows - lesion[0], cols - lesion[1]) <= 5

    def blob(center, sigma, peak=1.0):
        return peak * np.exp(-((rows - center[0]) ** 2 + (cols - center[1]) ** 2) / (2 * sigma**2))

    inside = blob(lesion + rng.uniform(-2, 2, 2), 3.0)
    broad_but_off = blob(lesion, 9.0, 0.6) + blob(lesion + [0, 13], 1.5, 0.9)  # most energy on the lesion, peak outside
    elsewhere = blob([10.0, 38.0], 4.0)
    edge = blob(lesion + [0, 8], 2.0) + 0.4 * blob(lesion, 3.0)  # peak beside the lesion
    maps = [broad_but_off, inside, edge, elsewhere]
    order = rng.permutation(4)
    maps = [maps[i] for i in order]
    hits = [pointing_hit(m, mask) for m in maps]
    panels = [(letter, m, False) for letter, m in zip("ABCD", maps, strict=True)]
    image = 0.2 * rng.standard_normal((size, size)) + 0.8 * mask
    fig = map_grid(image, panels, opacity=0.85, mask=mask, cols=4, panel_height=200)
    return FigureQuestion(figure=fig, answer=int(np.flatnonzero(hits)[0]))
