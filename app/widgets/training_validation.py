"""The training chapter's validation labs: external validation (site A trains, site B tests) and
ensembles with test-time augmentation. Core: primer.validation; every training run goes through
the process-wide training queue (primer.jobs), watched the way the architectures chapter does."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import streamlit as st

from app import ui
from app.widgets import arch_jobs
from app.widgets import training_panel as panel
from primer import metrics_figures, train_figures
from primer import validation as val
from primer import validation_figures as vfigs
from primer.validation import EnsembleLab, ExternalValidationLab

EXTVAL_JOB, EXTVAL_REPORT, ENSEMBLE_JOBS = "training.extval.job", "training.extval.report", "training.ensemble.jobs"
CURVE_KEYS = ("loss", "performance", "train_loss", "val_loss", "train_accuracy", "val_accuracy", "val_auc", "epoch")
CURVE_KEYS += ("chance", "previous")


def curve_labels(page) -> dict:
    return {k: page.t(f"curve.{k}") for k in CURVE_KEYS}


def progress_line(page, job, name: str) -> None:
    """One job's bar: queued (its place in line), running (epoch, seconds), or its error."""
    if job.state == "queued":
        st.progress(0.0, text=page.t("val.queued", name=name, position=job.position()))
    elif job.state == "running":
        epoch = min(len(job.epochs) + 1, job.total_epochs)
        text = page.t("val.running", name=name, epoch=epoch, total=job.total_epochs, seconds=job.elapsed())
        st.progress(min(1.0, job.progress), text=text)
    elif job.state == "failed":
        st.error(page.t("status.failed", error=job.error))
    elif job.state == "stopped":
        st.warning(page.t("val.stopped", name=name))
    elif job.state == "done":
        done = page.t(
            "status.done", epochs=len(job.epochs), seconds=f"{job.elapsed():.1f}", waited=f"{job.waited():.1f}"
        )
        st.caption(f"{name}: {done}")


def stop(jobs) -> None:
    for job in jobs:
        if not job.finished:
            job.release()


# ---------------------------------------------------------------------------------------------
# External validation


def start_site_a(lab: ExternalValidationLab) -> None:
    st.session_state[EXTVAL_JOB] = val.submit_site_a(lab)


def site_b_report(lab: ExternalValidationLab, job) -> val.ValidationReport:
    """Site B's numbers for the trained model: cached per session, so moving a site-B control
    after training answers in about a second (new site-B images and one inference) and never retrains."""
    signature = (job.key, lab.site_b(), lab.b_images)
    cached = st.session_state.get(EXTVAL_REPORT)
    if cached is None or cached[0] != signature:
        site_a = job.result
        cached = (signature, val.compare_sites(site_a, val.site_b_data(lab, site_a), lab.site_b()))
        st.session_state[EXTVAL_REPORT] = cached
    return cached[1]


def extval_controls(page, lab) -> None:
    t = page.t
    st.markdown(f"**{t('extval.site_a')}**")
    lab.select_slider("num_images", "num_images", options=[500, 1000, 2000, 4000])
    lab.slider("num_epochs", "num_epochs", min_value=1, max_value=20)
    lab.number("seed", "seed", min_value=0, max_value=99_999, step=1)
    st.markdown(f"**{t('extval.site_b')}**")
    lab.slider("b_noise", "extval.b_noise", min_value=0.0, max_value=1.0, step=0.05, keep=True)
    lab.slider("b_beta", "extval.b_beta", min_value=1.0, max_value=4.0, step=0.5, keep=True)
    lab.slider("b_contrast", "extval.b_contrast", min_value=1.0, max_value=4.0, step=0.25, keep=True)
    lab.slider("b_scale", "extval.b_scale", min_value=0.5, max_value=2.0, step=0.1, keep=True)
    lab.slider("b_offset", "extval.b_offset", min_value=-1.0, max_value=1.0, step=0.1, keep=True)
    lab.slider("b_prevalence", "extval.b_prevalence", min_value=0.05, max_value=0.95, step=0.05, keep=True)
    lab.select_slider("b_images", "extval.b_images", options=[300, 1000, 2000])


@st.fragment  # a control reruns this lab only
def external_validation_lab(page) -> None:
    t = page.t
    st.subheader(t("extval.title"))
    st.markdown(t("extval.intro"))
    lab = page.lab(ExternalValidationLab)
    lab.presets()
    controls, results = st.columns([1, 2], gap="large")
    with controls:
        extval_controls(page, lab)
    state = lab.state()
    with results:
        job = st.session_state.get(EXTVAL_JOB)
        running = job is not None and not job.finished
        panel.run_buttons(
            t,
            "training.extval",
            label=t("extval.train"),
            on_train=start_site_a,
            train_args=(state,),
            on_stop=stop,
            stop_args=([job] if job else [],),
            running=running,
        )
        if job is None:
            st.info(t("extval.idle"))
        else:

            def draw():
                progress_line(page, job, t("extval.site_a"))
                if job.epochs:
                    figure = train_figures.curves(job.epochs, job.total_epochs, curve_labels(page))
                    ui.figure(figure, key="training.extval.curves", height=260)

            arch_jobs.watch("training.extval", [job], draw)
        trained = job is not None and job.state == "done" and arch_jobs.work_key(job) == state.training_key()
        if job is not None and job.finished and not trained:
            st.caption(t("settings_changed"))
        site_preview(page, state)
    if trained:
        extval_results(page, state, job)


def site_preview(page, lab: ExternalValidationLab) -> None:
    """Four lesion images of each site on one grey scale, so a calibration shift shows as brightness."""
    seed = lab.seed + 1  # other patients than the ones trained and tested on
    a, _ = val.site_images(replace(val.SITE_A, prevalence=1.0), 4, seed)
    b, _ = val.site_images(replace(lab.site_b(), prevalence=1.0), 4, seed + val.SITE_B_SEED_OFFSET)
    titles = [page.t("extval.site_a_short")] * 4 + [page.t("extval.site_b_short")] * 4
    with st.expander(page.t("extval.preview"), expanded=False, icon=":material/image:"):
        ui.figure(train_figures.image_grid(np.concatenate([a, b]), titles), key="training.extval.preview", height=380)
        st.caption(page.t("extval.preview_caption"))


def extval_results(page, lab: ExternalValidationLab, job) -> None:
    t = page.t
    try:
        report = site_b_report(lab, job)
    except Exception as exc:  # e.g. a site B with a single class: say so, keep the page working
        st.error(t("extval.failed", error=f"{type(exc).__name__}: {exc}"))
        return
    i, e = report.internal, report.external
    st.markdown(f"**{t('extval.results')}**")
    cols = st.columns(3)
    cols[0].metric(t("extval.internal_auc"), f"{i.auc.auc:.3f}", help=t("extval.ci", low=i.auc.low, high=i.auc.high))
    cols[1].metric(
        t("extval.external_auc"),
        f"{e.auc.auc:.3f}",
        delta=f"{-report.auc_drop:+.3f}",
        help=t("extval.ci", low=e.auc.low, high=e.auc.high),
    )
    cols[2].metric(t("extval.threshold"), f"{i.threshold:.2f}", help=t("extval.threshold.help"))
    left, right = st.columns(2)
    with left:
        items = [
            {"name": t("extval.internal"), "auc": i.auc.auc, "low": i.auc.low, "high": i.auc.high,
             "color": metrics_figures.OTHER_COLOR},  # the reliability diagram's colours: A orange, B blue
            {"name": t("extval.external"), "auc": e.auc.auc, "low": e.auc.low, "high": e.auc.high,
             "color": metrics_figures.MODEL_COLOR},
        ]  # fmt: skip
        ui.figure(
            metrics_figures.auc_comparison_figure(items, words={"auc": t("extval.auc_axis")}),
            key="training.extval.aucs",
        )
    with right:
        words = {
            "before": t("extval.internal"),
            "after": t("extval.external"),
            "perfect": t("extval.perfect"),
            "observed": t("extval.observed_axis"),
            "predicted": t("extval.predicted_axis"),
            "count": t("extval.count_axis"),
        }
        ui.figure(metrics_figures.reliability_figure(i.bins, e.bins, words=words), key="training.extval.reliability")
    rows = [
        {
            t("extval.col.site"): t(f"extval.{name}"),
            t("extval.col.n"): f"{r.n} ({r.positives})",
            t("extval.col.sens"): f"{r.sensitivity:.1%}",
            t("extval.col.spec"): f"{r.specificity:.1%}",
            t("extval.col.ppv"): f"{r.ppv:.1%}",
            t("extval.col.predicted"): f"{r.mean_predicted:.1%}",
            t("extval.col.observed"): f"{r.observed:.1%}",
            t("extval.col.ece"): f"{r.ece:.3f}",
        }
        for name, r in (("internal", i), ("external", e))
    ]
    st.dataframe(rows, hide_index=True, width="stretch")
    st.caption(t("extval.table_caption"))
    st.markdown(" ".join(t(key, **values) for key, values in val.explain(report)))


# ---------------------------------------------------------------------------------------------
# Ensembles and test-time augmentation


def start_members(lab: EnsembleLab) -> None:
    st.session_state[ENSEMBLE_JOBS] = val.submit_members(lab)


def ensemble_controls(page, lab) -> None:
    lab.slider("num_models", "ensemble.num_models", min_value=1, max_value=5, keep=True)
    lab.select_slider("num_images", "num_images", options=[500, 1000, 2000, 4000])
    lab.slider("num_epochs", "num_epochs", min_value=1, max_value=10)
    lab.select_slider("width", "width", options=[4, 8, 16])
    lab.number("seed", "seed", min_value=0, max_value=99_999, step=1)


@st.fragment  # a control reruns this lab only
def ensemble_lab(page) -> None:
    t = page.t
    st.subheader(t("ensemble.title"))
    st.markdown(t("ensemble.intro"))
    lab = page.lab(EnsembleLab)
    lab.presets()
    controls, results = st.columns([1, 2], gap="large")
    with controls:
        ensemble_controls(page, lab)
    state = lab.state()
    jobs = st.session_state.get(ENSEMBLE_JOBS) or []
    with results:
        running = any(not job.finished for job in jobs)
        panel.run_buttons(
            t,
            "training.ensemble",
            label=t("ensemble.train", k=state.num_models),
            on_train=start_members,
            train_args=(state,),
            on_stop=stop,
            stop_args=(jobs,),
            running=running,
        )
        if not jobs:
            st.info(t("ensemble.idle"))
        else:

            def draw():
                for k, job in enumerate(jobs):
                    name = t("ensemble.member", k=k + 1)
                    if job.state == "done":
                        st.caption(t("ensemble.member_done", name=name, auc=job.result.epochs[-1].val_auc,
                                     seconds=job.result.seconds))  # fmt: skip
                    else:
                        progress_line(page, job, name)

            arch_jobs.watch("training.ensemble", jobs, draw)
        wanted = [state.member_key(k) for k in range(state.num_models)]
        trained = [arch_jobs.work_key(job) for job in jobs] == wanted and all(job.state == "done" for job in jobs)
        if jobs and all(job.finished for job in jobs) and not trained:
            st.caption(t("settings_changed"))
    if trained:
        ensemble_results(page, state, [job.result for job in jobs])


def ensemble_results(page, lab: EnsembleLab, members: list) -> None:
    t = page.t
    labels = val.ensemble_splits(lab.num_images, lab.seed).test.y.numpy()
    report = val.ensemble_report(members, labels)
    best = int(np.argmax(report.member_aucs))
    st.markdown(f"**{t('ensemble.results', n=len(labels))}**")
    cols = st.columns(4)
    cols[0].metric(t("ensemble.metric.member"), f"{report.member_aucs[0]:.3f}")
    cols[1].metric(t("ensemble.metric.member_tta"), f"{report.member_tta_aucs[0]:.3f}")
    cols[2].metric(t("ensemble.metric.ensemble", k=len(members)), f"{report.ensemble_auc:.3f}")
    cols[3].metric(t("ensemble.metric.ensemble_tta"), f"{report.ensemble_tta_auc:.3f}")
    left, right = st.columns(2)
    words = {
        "member": t("ensemble.fig.member"),
        "member_tta": t("ensemble.fig.member_tta"),
        "ensemble": t("ensemble.fig.ensemble"),
        "k": t("ensemble.fig.k"),
        "auc": t("ensemble.fig.auc"),
        "right": t("ensemble.fig.right"),
        "wrong": t("ensemble.fig.wrong"),
        "spread": t("ensemble.fig.spread"),
    }
    with left:
        figure = vfigs.auc_by_size(report.member_aucs, report.member_tta_aucs, report.auc_by_size, words)
        ui.figure(figure, key="training.ensemble.aucs")
        test = report.vs_best
        values = {"k": len(members), "ensemble": report.ensemble_auc, "low": min(report.member_aucs),
                  "high": max(report.member_aucs), "best": best + 1, "diff": test.difference, "p": test.p_value,
                  "seconds": report.seconds}  # fmt: skip
        if len(members) < 2:
            sentence = t("ensemble.caption_one", **values)
        elif test.p_value < 0.05 and test.difference > 0:
            sentence = t("ensemble.caption_better", **values)
        elif test.p_value < 0.05:
            sentence = t("ensemble.caption_worse", **values)
        else:
            sentence = t("ensemble.caption_same", **values)
        tta_gain = report.member_tta_aucs[0] - report.member_aucs[0]
        ens_tta_gain = report.ensemble_tta_auc - report.ensemble_auc
        st.caption(sentence + " " + t("ensemble.caption_tta", gain=tta_gain, ens_gain=ens_tta_gain))
    with right:
        if len(members) < 2:
            st.info(t("ensemble.need_two"))
        else:
            ui.figure(vfigs.disagreement(report.spread, report.correct, words), key="training.ensemble.spread")
            if np.isnan(report.spread_auc):
                st.caption(t("ensemble.spread_no_errors", right=report.spread_right))
            else:
                st.caption(
                    t(
                        "ensemble.spread_caption",
                        right=report.spread_right,
                        wrong=report.spread_wrong,
                        auc=report.spread_auc,
                        errors=int((~report.correct).sum()),
                    )
                    + " "
                    + t("ensemble.spread_flags" if report.spread_auc >= 0.6 else "ensemble.spread_no_flag")
                )
