"""Plotly figures as plain dicts: the plumbing that keeps a figure cheap to rebuild on every rerun.

A normal ``go.Figure`` validates every property of every trace as it is built (``make_subplots``
and ``update_layout`` per axis add more) and deep-copies it all again when Streamlit asks for
``to_dict()``: tens of milliseconds for a grid of heatmaps, too much for a slider that must
answer within 150 ms, and CPU that twenty students pay twenty times. Builders here write traces
and layouts as dicts (``grid`` replaces ``make_subplots``) and wrap them in ``LightFigure``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from _plotly_utils.utils import to_typed_array_spec


class LightFigure(go.Figure):
    """A Plotly figure whose traces, frames and layout stay plain dicts of numpy arrays.

    A normal ``go.Figure`` turns every trace into validated objects and deep-copies them again in
    ``to_dict()``: about 10 ms per figure here, too much for a 150 ms slider. Even the layout
    alone costs 3–4 ms to validate, so it stays a dict too until someone asks for
    ``fig.layout`` (or calls ``update_layout``): then it becomes a real Plotly object and
    everything works as usual. ``to_dict()`` hands the traces and frames over as they are.
    """

    def __init__(self, spec: dict | None = None, **_ignored):
        spec = spec or {}
        self._light_layout: dict | None = None  # go.Figure's own __init__ reads .layout
        self._in_init = True
        super().__init__()  # empty, so cheap; validating, so a layout built later is checked
        self._in_init = False
        self._light_layout = dict(spec.get("layout") or {})
        self._light_data = list(spec.get("data", []))
        self._light_frames = list(spec.get("frames", []) or [])

    @property
    def layout(self):
        if getattr(self, "_light_layout", None) is not None:  # first use: validate the dict into Plotly's object
            light, self._light_layout = self._light_layout, None
            go.Figure.layout.fset(self, light)
        return go.Figure.layout.fget(self)

    @layout.setter
    def layout(self, value):
        self._light_layout = None
        go.Figure.layout.fset(self, value)

    def _initialize_layout_template(self):
        # Plotly copies its default template into every new figure's layout (about 1 ms). A
        # light figure sends its dict layout without it, and the layout setter that builds the
        # real layout sets the template again, so the copy made while constructing is skipped.
        if not getattr(self, "_in_init", False):
            super()._initialize_layout_template()

    @property
    def height(self) -> int | None:
        """The layout's height, without building the layout object."""
        return self._light_layout.get("height") if self._light_layout is not None else self.layout.height

    def update_layout(self, dict1=None, overwrite=False, **kwargs):
        """As Plotly's, but while the layout is still a dict, plain keys (no magic underscores)
        are merged into it like Plotly merges them: nested dicts key by key."""
        changes = {**(dict1 or {}), **kwargs}
        if self._light_layout is None or overwrite or any("_" in key for key in changes):
            return super().update_layout(changes, overwrite=overwrite)
        _merge(self._light_layout, changes)
        return self

    def to_dict(self) -> dict:
        layout = self._light_layout if self._light_layout is not None else self.layout.to_plotly_json()
        out = {"data": [encoded(trace) for trace in self._light_data], "layout": layout}
        if self._light_frames:
            out["frames"] = [
                {**frame, "data": [encoded(trace) for trace in frame.get("data", [])]} for frame in self._light_frames
            ]
        return out

    def to_plotly_json(self) -> dict:
        return self.to_dict()

    @property
    def light_data(self) -> list[dict]:
        """The traces, as the dicts the builders wrote (for tests and inspection)."""
        return self._light_data

    @property
    def light_frames(self) -> list[dict]:
        return self._light_frames


def _merge(target: dict, changes: dict) -> None:
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            target[key] = dict(target[key])  # the builder's nested dict may be shared: copy, then merge
            _merge(target[key], value)
        else:
            target[key] = value


def encoded(trace: dict) -> dict:
    """Numeric arrays as Plotly's binary (base64) arrays, other arrays as lists."""
    out = {}
    for key, value in trace.items():
        if isinstance(value, np.ndarray):
            value = to_typed_array_spec(value) if value.dtype.kind in "fiu" and value.size else value.tolist()
        out[key] = value
    return out


def axes(index: int) -> tuple[str, str]:
    """Trace references of subplot `index` (1-based, row-major): ("x", "y"), ("x2", "y2"), …"""
    suffix = "" if index == 1 else str(index)
    return f"x{suffix}", f"y{suffix}"


def grid(
    n_rows: int,
    n_cols: int,
    titles: Sequence[str] = (),
    widths: Sequence[float] | None = None,
    h_space: float = 0.05,
    v_space: float = 0.1,
    image: bool = True,
    title_shift: int = 0,
    title_size: int = 15,
    lines: bool = False,
) -> dict:
    """Layout for an n_rows × n_cols grid of subplots, titles above each; with ``image``, every
    subplot has square pixels and row 0 at the top; with ``lines``, Plotly's grid and zero lines
    stay on (for charts), as make_subplots leaves them."""
    widths = np.asarray(widths if widths is not None else [1.0] * n_cols, dtype=np.float64)
    widths = widths / widths.sum() * (1 - h_space * (n_cols - 1))
    height = (1 - v_space * (n_rows - 1)) / n_rows
    layout: dict = {"annotations": []}
    for r in range(n_rows):
        for c in range(n_cols):
            index = r * n_cols + c + 1
            x_name, y_name = axes(index)
            x0 = float(widths[:c].sum() + h_space * c)
            x1 = x0 + float(widths[c])
            y1 = 1 - r * (height + v_space)
            y0 = y1 - height
            x0, x1, y0, y1 = (min(max(round(v, 6), 0.0), 1.0) + 0.0 for v in (x0, x1, y0, y1))  # no -0.0
            x_axis = {"domain": [x0, x1], "anchor": y_name}
            y_axis = {"domain": [y0, y1], "anchor": x_name}
            if not lines:
                for axis in (x_axis, y_axis):
                    axis.update(showgrid=False, zeroline=False)
            if image:
                x_axis["constrain"] = "domain"
                y_axis.update(autorange="reversed", scaleanchor=x_name, constrain="domain", constraintoward="top")
            layout["xaxis" + x_name[1:]] = x_axis
            layout["yaxis" + y_name[1:]] = y_axis
            if index - 1 < len(titles) and titles[index - 1]:
                layout["annotations"].append(
                    {
                        "text": titles[index - 1],
                        "x": (x0 + x1) / 2,
                        "y": y1,
                        "xref": "paper",
                        "yref": "paper",
                        "xanchor": "center",
                        "yanchor": "bottom",
                        "showarrow": False,
                        "font": {"size": title_size},
                        **({"yshift": title_shift} if title_shift else {}),
                    }
                )
    return layout


def hide_axes(layout: dict, *, scaleanchor: str | None = None, reversed: bool = False) -> None:
    """Hide every axis of a grid of images, keeping square pixels: each y axis is tied to its own
    x axis, or to ``scaleanchor`` when given; ``reversed`` puts row 0 at the top."""
    for name, axis in layout.items():
        if name.startswith("xaxis"):
            axis["visible"] = False
        elif name.startswith("yaxis"):
            axis.update(visible=False, scaleanchor=scaleanchor or axis["anchor"])
            if reversed:
                axis["autorange"] = "reversed"


def hide_ticks(layout: dict) -> None:
    for name, axis in layout.items():
        if name.startswith(("xaxis", "yaxis")):
            axis["showticklabels"] = False
