"""The architectures chapter's first three labs: one design from inside, the race, and deep
plain vs deep residual. Core: primer.architectures; figures: primer.architectures_figures."""

from __future__ import annotations

import math

import streamlit as st

import models
from app import ui
from app.widgets import arch_jobs
from primer import architectures as arch
from primer import architectures_figures as figs
from primer.architectures import DEEP, DESIGNS, BlocksLab, DegradeLab, RaceLab

RACE, DEGRADE = "arch.race", "arch.degrade"


def title(name: str) -> str:
    return ui.bi(models.spec(name).title)


def kind_names(t) -> dict[str, str]:
    kinds = [*arch.KINDS.values(), "conv1x1", "input", "block_in", "block_out", "concat"]
    return {k: t(f"kind.{k}") for k in kinds}


def rf_text(t, field: int | None) -> str:
    return t("blocks.global") if field is None else f"{field} px"


# ---------------------------------------------------------------------------------------------
# Inside one design


@st.cache_data(show_spinner=False, max_entries=64)
def layer_info(name: str, width: int, stages: int, input_size: int) -> tuple[list, arch.Summary]:
    model = models.build(name, seed=0, width=width, stages=stages)
    rows = arch.layer_table(model, input_size)
    return rows, arch.summary_from_rows(model, rows)


@st.cache_data(show_spinner=False, max_entries=64)
def block_source(name: str, width: int, stages: int, lang: str, _names: dict) -> str:
    model = models.build(name, seed=0, width=width, stages=stages)
    return arch.block_dot(arch.signature_block(model), _names)


@st.fragment  # a control reruns its own lab, not the page
def blocks_lab(page) -> None:
    t = page.t
    lab = page.lab(BlocksLab)
    lab.presets()
    cols = st.columns([2, 1, 1, 1], vertical_alignment="bottom")
    with cols[0]:
        name = lab.selectbox("model", "blocks.model", options=[*DESIGNS, *DEEP], format_func=title, keep=True)
    with cols[1]:
        lab.select_slider("width", "blocks.width", options=[4, 8, 16, 32])
    with cols[2]:
        lab.select_slider("stages", "blocks.stages", options=[2, 3, 4])
    with cols[3]:
        lab.segmented("input_size", "blocks.input_size", options=[32, 64, 128])
    state = lab.state()
    st.markdown(ui.bi(models.spec(name).description))
    with st.spinner(t("computing")):
        rows, total = layer_info(name, state.width, state.stages, state.input_size)
    names = kind_names(t)
    metrics = st.columns(4)
    metrics[0].metric(t("blocks.params"), f"{total.params:,}")
    metrics[1].metric(t("blocks.flops"), f"{total.flops / 1e6:.1f} M", help=t("blocks.flops.help"))
    metrics[2].metric(t("blocks.depth"), total.conv_layers, help=t("blocks.depth.help"))
    metrics[3].metric(t("blocks.rf"), rf_text(t, total.receptive_field), help=t("blocks.rf.help"))
    macro, inside = st.columns(2, gap="large")
    with macro:
        st.markdown(f"**{t('blocks.macro')}**")
        st.graphviz_chart(arch.macro_dot(rows, names, state.input_size))
        st.caption(t("blocks.macro_caption"))
    with inside:
        st.markdown(f"**{t('blocks.inside')}**")
        st.graphviz_chart(block_source(name, state.width, state.stages, ui.lang(), names))
        st.caption(t(f"blocks.inside.{name}"))
    st.markdown(f"**{t('blocks.table')}**")
    table = [
        {
            t("col.layer"): names.get(r.kind, r.kind),
            t("col.detail"): r.detail,
            t("col.output"): " × ".join(str(s) for s in r.output_shape),
            t("col.params"): r.params,
            t("col.flops"): round(r.flops / 1e6, 2),
            t("col.rf"): "—" if r.kind == "linear" else rf_text(t, r.receptive_field),
        }
        for r in rows
    ]
    st.dataframe(table, hide_index=True, width="stretch")
    st.caption(t("blocks.table_caption", input=state.input_size))


# ---------------------------------------------------------------------------------------------
# The race


@st.fragment  # a control reruns its own lab, not the page
def race_lab(page) -> None:
    t = page.t
    lab = page.lab(RaceLab)
    lab.presets()
    cols = st.columns(len(DESIGNS))
    for col, name in zip(cols, DESIGNS, strict=True):
        with col:
            lab.checkbox(name, f"design.{name}", keep=True)
    cols = st.columns(4, vertical_alignment="bottom")
    with cols[0]:
        lab.select_slider("width", "race.width", options=[4, 8, 16])
    with cols[1]:
        lab.select_slider("num_images", "race.num_images", options=[500, 1000, 2000, 4000])
    with cols[2]:
        lab.slider("num_epochs", "race.num_epochs", min_value=1, max_value=15)
    with cols[3]:
        lab.number("seed", "race.seed", min_value=0, max_value=9999, step=1)
    state = lab.state()
    if not state.chosen():
        st.info(t("race.none"))
        return
    st.caption(t("race.same", n=len(state.chosen())))
    if st.button(t("race.start"), type="primary", icon=":material/flag:", key="race.run"):
        from primer.jobs import training_queue

        st.session_state[RACE] = [training_queue().submit(train_lab) for train_lab in state.train_labs()]
    jobs = st.session_state.get(RACE)
    if not jobs:
        st.info(t("race.idle"))
        return
    names = {n: t(f"design.{n}") for n in DESIGNS}
    labels = {k: t(f"race.axis.{k}") for k in ("time", "val_auc", "params", "flops", "test_auc", "chance")}

    def draw():
        entries = [
            arch.race_entry(job.lab.model, job.lab.width, job.epochs, job.result if job.state == "done" else None)
            for job in jobs
            if job.epochs
        ]
        done = sum(job.finished for job in jobs)
        status = t("race.status", done=done, total=len(jobs))
        running = [job for job in jobs if job.state == "running"]
        if running:
            status += " " + t("race.running", model=names.get(running[0].lab.model, running[0].lab.model))
        st.progress(done / len(jobs) + sum(j.progress for j in running) / len(jobs), text=status)
        if entries:
            ui.figure(figs.race_chart(entries, names, labels), key="race.chart")
            st.caption(t("race.caption"))
        if done == len(jobs) and entries:
            st.dataframe(
                [
                    {
                        t("col.design"): names.get(e.model, e.model),
                        t("col.params"): e.params,
                        t("col.flops"): round(e.flops / 1e6, 1),
                        t("col.seconds"): round(e.seconds, 1),
                        t("col.test_auc"): round(e.test_auc, 3),
                    }
                    for e in sorted(entries, key=lambda e: -e.test_auc if not math.isnan(e.test_auc) else 0)
                ],
                hide_index=True,
            )
            st.caption(t("race.table_caption"))
        failed = [job for job in jobs if job.state == "failed"]
        if failed:
            st.error(t("race.failed", error=failed[0].error))

    arch_jobs.watch("race", jobs, draw)


# ---------------------------------------------------------------------------------------------
# Degradation


@st.cache_data(show_spinner=False, max_entries=32)
def flows(blocks_per_stage: int, width: int, seed: int) -> list:
    return [arch.gradient_flow(name, blocks_per_stage, width, seed) for name in DEEP]


@st.fragment  # a control reruns its own lab, not the page
def degrade_lab(page) -> None:
    t = page.t
    lab = page.lab(DegradeLab)
    lab.presets()
    cols = st.columns(3, vertical_alignment="bottom")
    with cols[0]:
        lab.slider("blocks_per_stage", "degrade.blocks", min_value=1, max_value=8, keep=True)
    with cols[1]:
        lab.select_slider("num_epochs", "degrade.num_epochs", options=[3, 6, 10])
    with cols[2]:
        lab.number("seed", "degrade.seed", min_value=0, max_value=9999, step=1)
    state = lab.state()
    layers = 1 + 2 * 3 * state.blocks_per_stage
    names = {n: t(f"design.{n}") for n in (*DESIGNS, *DEEP)}
    with st.spinner(t("computing")):
        found = flows(state.blocks_per_stage, state.width, state.seed)
    ui.figure(
        figs.gradient_flow_chart(found, names, {"layer": t("degrade.layer"), "grad": t("degrade.grad")}),
        key="degrade.flow",
    )
    spread = {f.model: max(f.grad_norm) / min(f.grad_norm) for f in found}
    st.caption(t("degrade.flow_caption", layers=layers, plain=spread["plain_deep"], residual=spread["resnet_deep"]))

    st.markdown(f"**{t('degrade.train_title')}**")
    st.caption(t("degrade.train_help"))
    if st.button(t("degrade.start"), icon=":material/play_arrow:", key="degrade.run"):
        from primer.jobs import training_queue

        st.session_state[DEGRADE] = [training_queue().submit(train_lab) for train_lab in state.train_labs()]
    jobs = st.session_state.get(DEGRADE)
    if not jobs:
        return

    def draw():
        done = sum(job.finished for job in jobs)
        st.progress(
            (done + sum(j.progress for j in jobs if j.state == "running")) / len(jobs),
            text=t("race.status", done=done, total=len(jobs)),
        )
        runs = {
            job.lab.model: {
                "train_loss": [e.train_loss for e in job.epochs],
                "train_accuracy": [e.train_accuracy for e in job.epochs],
            }
            for job in jobs
            if job.epochs
        }
        if runs:
            labels = {k: t(f"degrade.axis.{k}") for k in ("train_loss", "train_accuracy", "epoch")}
            ui.figure(figs.degradation_chart(runs, names, labels), key="degrade.curves")
        if done == len(jobs) and len(runs) == 3:
            final = {m: r["train_accuracy"][-1] for m, r in runs.items()}
            st.caption(
                t(
                    "degrade.result",
                    shallow=final["plain_cnn"],
                    plain=final["plain_deep"],
                    residual=final["resnet_deep"],
                )
            )

    arch_jobs.watch("degrade", jobs, draw)
