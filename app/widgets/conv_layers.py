"""Labs 2, 4, 5 and 6 of the convolution chapter: stride/padding/dilation, activations with
pooling and batch normalization, the receptive field, and a trained model's first-layer filters.

Each lab is a fragment, so one of its sliders reruns only that lab (the 150 ms budget); they all
work on lab 1's image and feature map (`LabImage`). Computation: primer.conv; figures and the
numbers behind each sentence: primer.conv_figures.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from app import ui
from app.widgets.conv_common import (
    FALLBACK_IMAGE,
    LabImage,
    activated,
    batchnorm_batch,
    clamp,
    default_maps,
    default_report,
    play_labels,
    show_error,
    text_field,
)
from primer import conv
from primer import conv_figures as figs
from primer.conv import ConvSettingError

# ---- lab 2: stride, padding, dilation ----------------------------------------------------------

STRIDE_SLIDERS = [("size", "size", 3, 9), ("kernel", "ksize", 1, 5), ("stride", "stride", 1, 3),
                  ("padding", "padding", 0, 3), ("dilation", "dilation", 1, 3)]  # fmt: skip


@st.fragment
def stride_lab(page, source: LabImage) -> None:
    st.header(page.t("lab.stride"))
    lab = page.lab(conv.StrideLab)
    lab.presets()
    for col, (field, label, low, high) in zip(st.columns(5), STRIDE_SLIDERS, strict=True):
        with col:
            lab.slider(field, label, min_value=low, max_value=high, keep=field in ("stride", "padding"))
    s, reads = lab.state(), None
    try:
        reads = conv.reads_map(s.size, s.kernel, s.stride, s.padding, s.dilation)
        st.latex(figs.output_size_latex(s.size, s.kernel, s.stride, s.padding, s.dilation))
    except ConvSettingError as error:
        show_error(page, "conv", error)
    out = reads.output_shape[0] if reads else None
    for col, field in zip(st.columns([1, 1, 4]), ("out_row", "out_col"), strict=False):
        if out:
            clamp(lab, field, out - 1)
        with col:  # drawn even for an impossible setting, so a preset's value reaches the URL
            lab.number(field, field, min_value=0, max_value=out - 1 if out else None, disabled=not out)
    span = conv.effective_kernel(s.kernel, s.dilation)
    if reads is None:
        ui.figure(figs.oversize_figure(s.size, s.padding, span, page.t("fig.oversize", span=span)))
        return
    s = lab.state()
    titles = (page.t("fig.padded", n=s.size, p=s.padding), page.t("fig.output", n=out))
    ui.figure(figs.grid_view_figure(reads, s.out_row, s.out_col, titles, play_labels(page)))
    st.markdown(page.t("fig.grid.says", n=s.size, out=out, span=span, skipped=reads.never_read(),
                       only_padding=reads.padding_only_outputs()))  # fmt: skip
    layer = [conv.LayerSpec("conv", s.kernel, s.stride, s.dilation, s.padding)]
    sizes = [conv.layer_output_sizes(layer, n)[0] for n in source.image.shape]
    if None not in sizes:
        h, w = source.image.shape
        st.caption(page.t("on_image", h=h, w=w, oh=sizes[0], ow=sizes[1]))


# ---- lab 4: activations, pooling, batch normalization ------------------------------------------


def actpool_lab(page, source: LabImage) -> None:
    st.header(page.t("lab.actpool"))
    lab = page.lab(conv.ActPoolLab)
    lab.presets()
    activation_part(page, lab, source)
    batchnorm_part(page, lab, source)


@st.fragment
def activation_part(page, lab, source: LabImage) -> None:
    """Pooling is nested inside: a new activation reruns both, a pooling slider only pooling."""
    acts = {a: page.t(f"act.{a}") for a in conv.ACTIVATIONS}
    st.subheader(page.t("activation"))
    cols = st.columns([2, 1, 1])
    with cols[0]:
        lab.segmented("activation", "act_label", options=conv.ACTIVATIONS, format_func=acts.get, keep=True)
    with cols[1]:
        lab.select_slider("gain", "gain", options=[0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0])
    with cols[2]:
        lab.slider("negative_slope", "slope", min_value=0.0, max_value=0.5, step=0.05,
                   disabled=lab.state().activation != "leaky_relu")  # fmt: skip
    s = lab.state()
    out = activated(source, s)
    numbers = figs.activation_summary(source.fmap, s.gain, s.activation, s.negative_slope)
    curve_col, map_col = st.columns([2, 3])
    with curve_col:
        band = (numbers["low"], numbers["high"])
        ui.figure(figs.activation_figure(s.activation, acts, page.t("fig.slope"), band, page.t("fig.band"),
                                         s.negative_slope), height=460)  # fmt: skip
    with map_col:
        title = page.t("fig.activated", act=acts[s.activation], h=out.shape[0], w=out.shape[1])
        ui.figure(figs.maps_row_figure([out], [title]), height=460)
    st.markdown(page.t("fig.act.says", **numbers))
    pooling_part(page, lab, source)


@st.fragment
def pooling_part(page, lab, source: LabImage) -> None:
    st.subheader(page.t("pooling"))
    cols = st.columns(3)
    with cols[0]:
        lab.segmented("pool", "pool", options=["max", "avg"], format_func=lambda k: page.t(f"pool.{k}"), keep=True)
    with cols[1]:
        lab.slider("pool_size", "pool_size", min_value=2, max_value=8)
    with cols[2]:
        lab.slider("pool_stride", "pool_stride", min_value=1, max_value=8)
    s = lab.state()
    try:
        pooled = conv.pool2d(activated(source, s), s.pool, s.pool_size, s.pool_stride)
    except ConvSettingError as error:
        show_error(page, "conv", error)
        return
    h, w = pooled.output_hw
    map_col, grids_col = st.columns([3, 2])
    with map_col:
        ui.figure(figs.maps_row_figure([pooled.output], [page.t("fig.pooled", h=h, w=w)]), height=460)
    with grids_col:
        grids = figs.pooling_example(s.pool, s.pool_size, s.pool_stride)
        ui.figure(figs.number_grids_figure(grids, (page.t("fig.grid8"), page.t("fig.pooled_small"))))
    st.markdown(page.t(f"fig.pool.says.{s.pool}", size=s.pool_size, stride=s.pool_stride, h=h, w=w,
                       formula=pooled.explained[0]))  # fmt: skip


@st.fragment
def batchnorm_part(page, lab, source: LabImage) -> None:
    st.subheader(page.t("batchnorm"))
    lab.slider("batch", "batch", min_value=2, max_value=len(conv.SAMPLE_IMAGES))
    batch, demo = batchnorm_batch(source.key or FALLBACK_IMAGE, lab.state().batch)
    channels = [page.t(f"bn.{c}") for c in conv.BN_CHANNELS]
    ui.figure(figs.batchnorm_figure(batch, demo.output, channels, (page.t("fig.before"), page.t("fig.after"))))
    stats = {"mean_before": demo.mean_before, "var_before": demo.var_before, "mean_after": demo.mean_after,
             "var_after": demo.var_after}  # fmt: skip
    # Rounded here and shown with three decimals (+ 0.0 turns -0.0 into 0.0: no "-0.000"); a pandas
    # Styler did the same at 8 ms per redraw of the chapter.
    table = pd.DataFrame({page.t(f"bn.{k}"): np.round(v, 3) + 0.0 for k, v in stats.items()}, index=channels)
    st.dataframe(table, column_config={c: st.column_config.NumberColumn(format="%.3f") for c in table.columns})
    st.markdown(page.t("fig.bn.says", n=len(batch)))


# ---- lab 5: receptive field --------------------------------------------------------------------


def layer_editor(page, lab, layers) -> None:
    """An editable table of the layers over their text form, which is what the URL keeps."""
    rows = [{"kind": x.kind, "kernel": x.kernel, "stride": x.stride, "dilation": x.dilation} for x in layers]
    grid_key = f"rf.grid.{lab.state().layers}"  # a fresh table whenever the text changes

    def number(name: str) -> st.column_config.NumberColumn:
        low, high = conv.LAYER_LIMITS[name]
        return st.column_config.NumberColumn(page.t(f"col.{name}"), min_value=low, max_value=high)

    config = {"kind": st.column_config.SelectboxColumn(page.t("col.kind"), options=["conv", "pool"]),
              **{name: number(name) for name in conv.LAYER_LIMITS}}  # fmt: skip

    def edited():
        changed = conv.layers_from_rows(conv.apply_table_changes(rows, st.session_state[grid_key]))
        if changed:
            lab.set(layers=conv.layers_text(changed[: conv.MAX_LAYERS]))

    st.data_editor(pd.DataFrame(rows), key=grid_key, num_rows="dynamic", column_config=config, hide_index=True,
                   on_change=edited)  # fmt: skip


@st.fragment
def field_lab(page, source: LabImage) -> None:
    st.header(page.t("lab.rf"))
    lab = page.lab(conv.FieldLab)
    lab.presets()
    edit_col, fig_col = st.columns([2, 3])
    layers = None
    with edit_col:
        editor = st.container()  # the table goes above the text box, but the text box is read first
        text_field(page, lab, "layers", "layers")
        for col, field in zip(st.columns(2), ("across", "down"), strict=True):
            with col:
                lab.slider(field, field, min_value=0, max_value=100, step=5)
        with editor:
            try:
                layers = conv.parse_layers(lab.state().layers)
                layer_editor(page, lab, layers)
            except ConvSettingError as error:
                show_error(page, "layers", error)
    if not layers:
        return
    s, rows, names = lab.state(), conv.receptive_field(layers), conv.layers_text(layers).split(",")
    height, width = source.image.shape
    with fig_col:
        centre = (s.down / 100 * (height - 1), s.across / 100 * (width - 1))
        ui.figure(figs.receptive_field_figure(source.image, rows, centre, names))
    last = rows[-1]
    mm = page.t("rf.mm", mm=last.size * source.spacing) if source.spacing else page.t("rf.no_mm")
    st.markdown(page.t("fig.rf.says", layers=len(rows), size=last.size, jump=last.jump, mm=mm,
                       share=100 * last.size / width))  # fmt: skip
    growth_col, table_col = st.columns([4, 5])
    with growth_col:
        ui.figure(figs.receptive_field_growth_figure(rows, names, (page.t("rf.size"), page.t("rf.jump"))))
    columns = {"col.layer": names, "col.span": [r.effective_kernel for r in rows], "col.rf": [r.size for r in rows],
               "col.jump": [r.jump for r in rows], "col.out": conv.layer_output_sizes(layers, height)}  # fmt: skip
    table_col.dataframe(pd.DataFrame({page.t(k): v for k, v in columns.items()}, index=range(1, len(rows) + 1)))


# ---- lab 6: learned filters --------------------------------------------------------------------

FILTER_SWITCHES = [("model", False), ("resolution", True), ("stage", False)]  # (field, keep)


def learned_filters(model_choice: str, run, source: LabImage, resolution: str, stage: str):
    """(FilterReport, learned maps, classic maps) for the chosen model on lab 1's image."""
    if model_choice == "user" and run is not None:
        model = run.model()
        report = conv.filter_report(conv.filter_weights(model), conv.starting_filters(run.lab, run.num_classes))
        return report, *conv.learned_and_classic_maps(model, source.image, resolution, stage)
    if source.key is not None:
        return default_report(), *default_maps(source.key, resolution, stage)
    maps = conv.learned_and_classic_maps(ui.default_model().model, source.image, resolution, stage)
    return default_report(), *maps


@st.fragment
def filters_lab(page, source: LabImage) -> None:
    st.header(page.t("lab.filters"))
    lab = page.lab(conv.FiltersLab)
    lab.presets()
    run = ui.user_run()  # the training lab's last model, if this session trained one
    options = {"model": ["default", "user"] if run is not None else ["default"], "resolution": ["model", "full"],
               "stage": ["conv", "relu"]}  # fmt: skip
    if lab.state().model not in options["model"]:
        st.session_state[lab.key("model")] = "default"
    for col, (field, keep) in zip(st.columns([3, 3, 4]), FILTER_SWITCHES, strict=True):
        with col:
            lab.segmented(field, field, options=options[field], format_func=lambda c, f=field: page.t(f"{f}.{c}"),
                          keep=keep)  # fmt: skip
    s = lab.state()
    with st.spinner(page.t("loading_model")):
        report, learned, classic = learned_filters(s.model, run, source, s.resolution, s.stage)
    numbers = [str(i + 1) for i in range(len(report.weights))]
    classic_names = [page.t(f"short.{n}") for n in conv.CLASSIC_3X3]
    rows = [(page.t("row.learned"), report.weights, numbers), (page.t("row.initial"), report.initial, numbers),
            (page.t("row.classic"), np.stack([conv.KERNELS[n].weights for n in conv.CLASSIC_3X3]), classic_names)]  # fmt: skip
    ui.figure(figs.kernels_grid_figure([row for row in rows if row[1] is not None]))
    summary = figs.filter_summary(report)
    says = "fig.filters.says" if summary.get("near_start", True) else "fig.filters.says.moved"
    st.markdown(page.t(says, **(summary | {"best": page.t(f"kernel.{summary['best']}")})))
    st.caption(page.t("fig.maps.caption", side=learned.shape[-1], stage=page.t(f"stage.{s.stage}")))
    ui.figure(figs.maps_grid_figure([(page.t("row.learned_maps"), learned, numbers),
                                     (page.t("row.classic_maps"), classic, classic_names)]))  # fmt: skip
    st.markdown(page.t("fig.maps.says"))
