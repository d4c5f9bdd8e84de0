"""Uncertainty lab: MC dropout and a deep ensemble, calibration, referral of uncertain cases and
out-of-distribution images. Core: primer.future_uncertainty; every member trains through the
shared queue; moving X (the referred share) only redraws."""

from __future__ import annotations

import numpy as np
import streamlit as st

from app import ui
from app.widgets import arch_jobs
from primer import future_uncertainty as fu
from primer import metrics_figures
from primer.future_uncertainty import UncertaintyLab
from primer.light_figure import LightFigure

JOBS, SCORES = "future.uncertainty.jobs", "future.uncertainty.scores"
KEPT_COLOR, REFER_COLOR = "#0072B2", "#D55E00"


def stop(jobs) -> None:
    for job in jobs:
        if not job.finished:
            job.release()


def progress_line(page, job, name: str) -> None:
    t = page.t
    if job.state == "queued":
        st.progress(0.0, text=t("uncertainty.queued", name=name, position=job.position()))
    elif job.state == "running":
        epoch = min(len(job.epochs) + 1, job.total_epochs)
        text = t("uncertainty.running", name=name, epoch=epoch, total=job.total_epochs, seconds=job.elapsed())
        st.progress(min(1.0, job.progress), text=text)
    elif job.state == "failed":
        st.error(t("uncertainty.failed", error=job.error))
    elif job.state == "stopped":
        st.warning(t("uncertainty.stopped", name=name))


def start(lab: UncertaintyLab) -> None:
    st.session_state[JOBS] = fu.submit_members(lab)


def scores(lab: UncertaintyLab, jobs) -> dict:
    """Both methods' answers on every group, cached per trained members and T (never retrains)."""
    signature = (tuple(job.key for job in jobs), lab.mc_passes)
    cached = st.session_state.get(SCORES)
    if cached is None or cached[0] != signature:
        cached = (signature, fu.score_groups(lab, [job.result for job in jobs]))
        st.session_state[SCORES] = cached
    return cached[1]


def referral_figure(curve: fu.CoverageCurve, x_percent: int, words: dict) -> LightFigure:
    """Error rate and AUC of the kept cases against coverage, with the chosen X marked."""
    at = 1 - x_percent / 100
    data = [
        {"type": "scatter", "x": curve.coverage, "y": curve.error, "mode": "lines", "name": words["error"],
         "line": {"color": REFER_COLOR, "width": 3}},
        {"type": "scatter", "x": curve.coverage, "y": curve.auc, "mode": "lines", "name": words["auc"],
         "line": {"color": KEPT_COLOR, "width": 3}, "yaxis": "y2"},
    ]  # fmt: skip
    layout = {
        "height": 340,
        "margin": {"l": 10, "r": 10, "t": 40, "b": 10},
        "legend": {"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0},
        "xaxis": {"title": {"text": words["coverage"]}, "autorange": "reversed", "tickformat": ".0%"},
        "yaxis": {"title": {"text": words["error"]}, "rangemode": "tozero", "tickformat": ".0%"},
        "yaxis2": {"title": {"text": words["auc"]}, "overlaying": "y", "side": "right", "range": [0.5, 1.0]},
        "shapes": [{"type": "line", "x0": at, "x1": at, "y0": 0, "y1": 1, "yref": "paper",
                    "line": {"color": "#dddddd", "dash": "dash"}}],
    }  # fmt: skip
    return LightFigure({"data": data, "layout": layout})


def groups_figure(values: dict[str, np.ndarray], names: dict, axis: str) -> LightFigure:
    data = [
        {"type": "box", "y": v, "name": names[g], "boxpoints": "all", "jitter": 0.5, "pointpos": 0,
         "marker": {"size": 3, "opacity": 0.5}, "boxmean": True, "showlegend": False}
        for g, v in values.items()
    ]  # fmt: skip
    layout = {"height": 340, "margin": {"l": 10, "r": 10, "t": 30, "b": 10},
              "yaxis": {"title": {"text": axis}, "rangemode": "tozero"}}  # fmt: skip
    return LightFigure({"data": data, "layout": layout})


def referral_view(lab: UncertaintyLab, answers: dict, labels: np.ndarray) -> dict:
    """What moving X redraws: the curve (from the chosen method and measure) and the numbers at X."""
    test = answers[lab.method]["test"]
    curve = fu.coverage_curve(labels, test.probs, test.uncertainty(lab.measure), fu.COVERAGES)
    i = int(np.argmin(np.abs(curve.coverage - (1 - lab.refer_percent / 100))))
    return {"curve": curve, "i": i}


def controls(lab) -> None:
    lab.slider("num_models", "uncertainty.num_models", min_value=2, max_value=5)
    lab.select_slider("num_images", "uncertainty.num_images", options=[500, 1000, 2000])
    lab.slider("num_epochs", "uncertainty.num_epochs", min_value=1, max_value=10)
    lab.select_slider("dropout", "uncertainty.dropout", options=[0.0, 0.05, 0.1, 0.2, 0.3, 0.5])
    lab.number("seed", "uncertainty.seed", min_value=0, max_value=99_999, step=1)
    lab.select_slider("mc_passes", "uncertainty.mc_passes", options=[1, 5, 10, 30, 100])
    lab.segmented("method", "uncertainty.method", options=list(fu.METHODS), keep=True,
                  format_func=lambda m: ui.t(f"future.uncertainty.method.{m}"))  # fmt: skip
    lab.selectbox("measure", "uncertainty.measure", options=list(fu.MEASURES), keep=True,  # four: too wide for buttons
                  format_func=lambda m: ui.t(f"future.uncertainty.measure.{m}"))  # fmt: skip
    lab.slider("refer_percent", "uncertainty.refer_percent", min_value=0, max_value=50, step=1, keep=True)


@st.fragment  # a control reruns this lab only
def lab(page) -> None:
    t = page.t
    st.subheader(t("uncertainty.title"))
    st.markdown(t("uncertainty.intro"))
    binding = page.lab(UncertaintyLab)
    binding.presets()
    left, right = st.columns([1, 2], gap="large")
    with left:
        controls(binding)
    state = binding.state()
    jobs = st.session_state.get(JOBS) or []
    with right:
        running = any(not job.finished for job in jobs)
        cols = st.columns(3)
        cols[0].button(t("uncertainty.train", k=state.num_models), type="primary", icon=":material/play_arrow:",
                       on_click=start, args=(state,), disabled=running, key="future.uncertainty.train",
                       width="stretch")  # fmt: skip
        cols[1].button(t("uncertainty.stop"), icon=":material/stop:", on_click=stop, args=(jobs,), disabled=not running,
                       key="future.uncertainty.stop", width="stretch")  # fmt: skip
        if not jobs:
            st.info(t("uncertainty.idle"))
        else:

            def draw():
                for k, job in enumerate(jobs):
                    name = t("uncertainty.member", k=k + 1)
                    if job.state == "done":
                        st.caption(t("uncertainty.member_done", name=name, auc=job.result.epochs[-1].val_auc,
                                     seconds=job.result.seconds))  # fmt: skip
                    else:
                        progress_line(page, job, name)

            arch_jobs.watch("future.uncertainty", jobs, draw)
        wanted = [state.member_key(k) for k in range(state.num_models)]
        trained = [arch_jobs.work_key(job) for job in jobs] == wanted and all(job.state == "done" for job in jobs)
        if jobs and all(job.finished for job in jobs) and not trained:
            st.caption(t("uncertainty.settings_changed"))
    if state.dropout == 0 and state.method == "mc":
        st.warning(t("uncertainty.no_dropout"))
    if trained:
        results(page, state, jobs)
    if not ui.presenting():
        page.lesson("uncertainty", expanded=False)
        page.lesson("selective_prediction", expanded=False)


def results(page, lab: UncertaintyLab, jobs) -> None:
    t = page.t
    answers = scores(lab, jobs)
    labels = fu.group_images(lab.num_images, lab.seed)["test"][1]
    view = referral_view(lab, answers, labels)
    curve, i = view["curve"], view["i"]
    words = {"error": t("uncertainty.fig.error"), "auc": t("uncertainty.fig.auc"),
             "coverage": t("uncertainty.fig.coverage")}  # fmt: skip
    st.markdown(f"**{t('uncertainty.referral', n=len(labels))}**")
    cols = st.columns(3)
    cols[0].metric(t("uncertainty.metric.referred"), f"{len(labels) - curve.kept[i]}")
    cols[1].metric(t("uncertainty.metric.error"), f"{curve.error[i]:.1%}", delta=f"{curve.error[i] - curve.error[0]:+.1%}",
                   delta_color="inverse")  # fmt: skip
    cols[2].metric(t("uncertainty.metric.auc"), f"{curve.auc[i]:.3f}", delta=f"{curve.auc[i] - curve.auc[0]:+.3f}")
    ui.figure(referral_figure(curve, lab.refer_percent, words), key="future.uncertainty.referral")
    method = t(f"uncertainty.method.{lab.method}")
    measure = t(f"uncertainty.measure.{lab.measure}")
    st.caption(t("uncertainty.referral_caption", method=method, measure=measure, x=lab.refer_percent,
                 full=curve.error[0], kept=curve.error[i]))  # fmt: skip
    left, right = st.columns(2)
    with left:
        st.markdown(f"**{t('uncertainty.reliability')}**")
        mc, ens = (fu.reliability(labels, answers[m]["test"].probs) for m in fu.METHODS)
        rwords = {"before": t("uncertainty.method.mc"), "after": t("uncertainty.method.ensemble"),
                  "perfect": t("uncertainty.fig.perfect"), "observed": t("uncertainty.fig.observed"),
                  "predicted": t("uncertainty.fig.predicted"), "count": t("uncertainty.fig.count")}  # fmt: skip
        ui.figure(metrics_figures.reliability_figure(mc, ens, words=rwords), key="future.uncertainty.reliability",
                  height=380)  # fmt: skip
    with right:
        st.markdown(f"**{t('uncertainty.ood')}**")
        names = {g: t(f"uncertainty.group.{g}") for g in fu.GROUPS}
        values = {g: answers[lab.method][g].uncertainty(lab.measure) for g in fu.GROUPS}
        ui.figure(groups_figure(values, names, measure), key="future.uncertainty.groups", height=380)
    rows = []
    for g in fu.GROUPS:
        row = {t("uncertainty.col.group"): names[g]}
        for m in fu.METHODS:
            u = answers[m][g].uncertainty(lab.measure)
            row[t(f"uncertainty.method.{m}")] = f"{u.mean():.3f}"
            row[t("uncertainty.col.ood_auc", method=t(f"uncertainty.method.{m}"))] = (
                "—" if g == "test" else f"{fu.ood_auc(answers[m]['test'].uncertainty(lab.measure), u):.2f}"
            )
        row[t("uncertainty.col.called")] = f"{(answers[lab.method][g].probs >= 0.5).mean():.0%}"
        rows.append(row)
    st.dataframe(rows, hide_index=True, width="stretch")
    st.caption(t("uncertainty.ood_caption", measure=measure))
