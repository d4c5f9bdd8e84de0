"""Compound scaling: accuracy against FLOPs for every registered classifier, and a lab that grows
a base design by φ in depth, width, resolution or all three. Core: primer.scaling; figures:
primer.architectures_figures."""

from __future__ import annotations

import streamlit as st

import models
from app import ui
from app.widgets import arch_jobs
from primer import architectures_figures as figs
from primer import scaling
from primer.architectures import RaceLab
from primer.scaling import BASES, MAX_PHI, MODES, ScaleLab

SCALE = "arch.scale"  # the session's scaling runs, newest last
RACE = "arch.race"  # the race lab's jobs (app.widgets.arch_blocks)


def _names(t) -> dict[str, str]:
    return {n: t(f"design.{n}") for n in models.names("classifier")}


def _raced(jobs) -> tuple[int, dict[str, float]]:
    """(width, final validation AUC per design) of this session's finished race runs."""
    done = [job for job in jobs or [] if job.state == "done" and job.epochs]
    width = done[0].lab.width if done else RaceLab().width
    return width, {job.lab.model: job.epochs[-1].val_auc for job in done if job.lab.width == width}


def _scaled_points(t, runs) -> list[scaling.FrontierPoint]:
    points = []
    for run in runs:
        v = run.variant
        label = t("scale.point", design=t(f"design.{v.base}"), mode=t(f"scale.mode.{v.mode}"), phi=v.phi)
        points.append(scaling.FrontierPoint(v.base, v.flops, v.params, run.val_auc[-1], v.dims.resolution, label=label))
    return points


def frontier(page) -> None:
    """Accuracy against FLOPs: measured AUCs only, from the race and the scaling lab."""
    t = page.t
    width, aucs = _raced(st.session_state.get(RACE))
    runs = [job.result for job in st.session_state.get(SCALE, []) if job.state == "done"]
    points = scaling.frontier_points(width, aucs)
    labels = {
        k: t(f"frontier.{k}")
        for k in ("val_auc", "flops", "flops_axis", "params", "input", "not_raced", "strip", "scaled", "invite")
    }
    ui.figure(figs.accuracy_flops_chart(points, _scaled_points(t, runs), _names(t), labels), key="frontier.chart")
    waiting = len([p for p in points if p.val_auc is None])
    st.caption(t("frontier.caption", width=width, waiting=waiting, total=len(points)))


@st.fragment  # a control reruns its own lab, not the page
def scale_lab(page) -> None:
    t = page.t
    lab = page.lab(ScaleLab)
    lab.presets()
    cols = st.columns(2, vertical_alignment="bottom")
    with cols[0]:
        lab.selectbox("base", "scale.base", options=list(BASES), format_func=lambda n: t(f"design.{n}"), keep=True)
    with cols[1]:
        lab.slider("phi", "scale.phi", min_value=0, max_value=MAX_PHI, keep=True)
    lab.segmented("mode", "scale.mode", options=list(MODES), format_func=lambda m: t(f"scale.mode.{m}"), keep=True)
    state = lab.state()
    with st.spinner(t("computing")):
        table = scaling.scaling_table(state.base)
    chosen = scaling.scaled_variant(state.base, state.mode, state.phi)
    base = scaling.scaled_variant(state.base, state.mode, 0)
    metrics = st.columns(4)
    metrics[0].metric(t("scale.depth"), chosen.dims.depth, delta=chosen.dims.depth - base.dims.depth or None)
    metrics[1].metric(t("scale.width"), chosen.dims.width, delta=chosen.dims.width - base.dims.width or None)
    metrics[2].metric(
        t("scale.resolution"),
        f"{chosen.dims.resolution} px",
        delta=chosen.dims.resolution - base.dims.resolution or None,
    )
    metrics[3].metric(t("scale.flops"), f"{chosen.flops / 1e6:.1f} M", delta=f"× {chosen.flops / base.flops:.2f}")
    mode_names = {m: t(f"scale.mode.{m}") for m in MODES}
    ideal = {m: scaling.ideal_flops_ratio(m) for m in MODES}
    labels = {k: t(f"scale.axis.{k}") for k in ("phi", "ratio", "depth", "width", "resolution", "flops")}
    ui.figure(
        figs.scaling_flops_chart(table, ideal, (state.mode, state.phi), mode_names, labels), key="scale.flops_chart"
    )
    st.caption(
        t(
            "scale.caption",
            compound=ideal["compound"],
            ratio=(chosen.flops / base.flops) ** (1 / state.phi) if state.phi else 1.0,
            ideal=ideal[state.mode],
        )
    )

    cols = st.columns(3, vertical_alignment="bottom")
    with cols[0]:
        lab.select_slider("num_images", "scale.num_images", options=[500, 1000, 2000])
    with cols[1]:
        lab.select_slider("num_epochs", "scale.num_epochs", options=[3, 6, 10])
    with cols[2]:
        lab.number("seed", "scale.seed", min_value=0, max_value=9999, step=1)
    state = lab.state()
    if st.button(t("scale.start"), icon=":material/play_arrow:", key="scale.run"):
        frozen = ScaleLab(**vars(state))

        def work(job):
            return scaling.train_scaled(frozen, on_epoch=job.add_epoch, should_stop=job.should_stop)

        job = arch_jobs.submit(scaling.run_key(frozen), frozen.num_epochs, work)
        kept = [j for j in st.session_state.get(SCALE, []) if j.key != job.key]
        st.session_state[SCALE] = [*kept, job][-8:]  # the figure keeps the last eight variants
    jobs = st.session_state.get(SCALE)
    if not jobs:
        st.caption(t("scale.idle"))
        return

    def draw():
        for job in jobs:
            arch_jobs.progress_line(t, job)
        finished = [job for job in jobs if job.state == "done"]
        if finished:
            run = finished[-1].result
            st.caption(
                t(
                    "scale.result",
                    point=_scaled_points(t, [run])[0].label,
                    val_auc=run.val_auc[-1],
                    test_auc=run.test_auc,
                    seconds=run.seconds,
                    resolution=run.variant.dims.resolution,
                )
            )

    arch_jobs.watch("scale", jobs, draw)
