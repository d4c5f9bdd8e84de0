"""Domain shift lab: scanner A trains, scanner B tests, three remedies side by side.
Core: primer.future_shift; both training runs go through the shared queue (primer.jobs)."""

from __future__ import annotations

import streamlit as st

from app import ui
from app.widgets import arch_jobs
from app.widgets.training_validation import curve_labels, progress_line, stop
from primer import future_shift as fs
from primer import metrics_figures, train_figures

JOBS, REPORT = "future.shift.jobs", "future.shift.report"


class TrainingWords:
    """The training chapter's progress and curve strings, reused as they are translated there."""

    def t(self, key: str, **values) -> str:
        return ui.t(f"training.{key}", **values)


WORDS = TrainingWords()
COLORS = {"none": metrics_figures.MODEL_COLOR, "normalize": "#2ca02c", "augment": "#9467bd", "adabn": "#d62728"}


def start(lab: fs.ShiftLab) -> None:
    st.session_state[JOBS] = fs.submit(lab)


def cached_report(lab: fs.ShiftLab, jobs) -> fs.ShiftReport:
    """B's numbers for the trained pair: moving the shift level re-draws B and re-scores it (about a
    second), never retrains; the display-only control reuses the cached report."""
    signature = tuple(job.key for job in jobs) + (lab.shift, lab.b_level, lab.b_images, lab.adapt_images)
    cached = st.session_state.get(REPORT)
    if cached is None or cached[0] != signature:
        cached = (signature, fs.shift_report(lab, jobs[0].result, jobs[1].result))
        st.session_state[REPORT] = cached
    return cached[1]


def controls(page, lab) -> None:
    t = page.t
    st.markdown(f"**{t('shift.site_b')}**")
    shift = lab.segmented("shift", "shift.shift", options=list(fs.SHIFTS), format_func=lambda k: t(f"shift.prop.{k}"),
                          keep=True)  # fmt: skip
    low, high = fs.SHIFTS.get(shift, fs.SHIFTS["noise"])[2]
    key = lab.key("b_level")
    if key in st.session_state:  # another property's level may lie outside this one's range: clamp it
        st.session_state[key] = min(max(float(st.session_state[key]), low), high)
    lab.slider("b_level", f"shift.level.{shift}", min_value=low, max_value=high, step=0.05, keep=True)
    lab.select_slider("b_images", "shift.b_images", options=[300, 1000, 2000])
    st.markdown(f"**{t('shift.site_a')}**")
    lab.select_slider("num_images", "shift.num_images", options=[500, 1000, 2000, 4000])
    lab.slider("num_epochs", "shift.num_epochs", min_value=1, max_value=20)
    lab.number("seed", "shift.seed", min_value=0, max_value=99_999, step=1)


@st.fragment  # a control reruns this lab only
def lab(page) -> None:
    t = page.t
    st.subheader(t("shift.title"))
    st.markdown(t("shift.intro"))
    binding = page.lab(fs.ShiftLab)
    binding.presets()
    left, right = st.columns([1, 2], gap="large")
    with left:
        controls(page, binding)
    state = binding.state()
    problem = fs.check(state)
    jobs = st.session_state.get(JOBS) or []
    with right:
        running = any(not job.finished for job in jobs)
        cols = st.columns(3)
        cols[0].button(t("shift.train"), type="primary", icon=":material/play_arrow:", on_click=start, args=(state,),
                       disabled=running or problem is not None, key="future.shift.train", width="stretch")  # fmt: skip
        cols[1].button(WORDS.t("stop"), icon=":material/stop:", on_click=stop, args=(jobs,), disabled=not running,
                       key="future.shift.stop", width="stretch")  # fmt: skip
        if problem:
            st.error(t(problem))
        if not jobs:
            st.info(t("shift.idle"))
        else:

            def draw():
                for job, name in zip(jobs, (t("shift.model.base"), t("shift.model.augment")), strict=True):
                    progress_line(WORDS, job, name)
                    if job.epochs and job.state != "done":
                        figure = train_figures.curves(job.epochs, job.total_epochs, curve_labels(WORDS))
                        ui.figure(figure, key=f"future.shift.curves.{job.key}", height=240)

            arch_jobs.watch("future.shift", jobs, draw)
        wanted = [state.base_key(), state.augment_key()]
        trained = [arch_jobs.work_key(job) for job in jobs] == wanted and all(job.state == "done" for job in jobs)
        if jobs and all(job.finished for job in jobs) and not trained:
            st.caption(WORDS.t("settings_changed"))
    if trained and problem is None:
        results(page, binding, state, jobs)
    if not ui.presenting():
        page.lesson("domain_shift", expanded=False)


def figures(page, report: fs.ShiftReport, shown: str):
    """The two figures the page draws from a cached report (the display-only redraw)."""
    t = page.t
    i = report.internal
    items = [{"name": t("shift.arm.internal"), "auc": i.auc.auc, "low": i.auc.low, "high": i.auc.high,
              "color": metrics_figures.OTHER_COLOR}]  # fmt: skip
    for name in fs.ARMS:
        a = report.arms[name].auc
        items.append({"name": t(f"shift.arm.{name}"), "auc": a.auc, "low": a.low, "high": a.high,
                      "color": COLORS[name]})  # fmt: skip
    aucs = metrics_figures.auc_comparison_figure(items, words={"auc": t("shift.auc_axis")})
    words = {"before": t("shift.arm.internal"), "after": t(f"shift.arm.{shown}"), "perfect": t("shift.perfect"),
             "observed": t("shift.observed_axis"), "predicted": t("shift.predicted_axis"),
             "count": t("shift.count_axis")}  # fmt: skip
    reliability = metrics_figures.reliability_figure(i.bins, report.arms[shown].bins, words=words)
    return aucs, reliability


def results(page, binding, lab: fs.ShiftLab, jobs) -> None:
    t = page.t
    try:
        report = cached_report(lab, jobs)
    except Exception as exc:  # keep the page working and say what failed
        st.error(t("shift.failed", error=f"{type(exc).__name__}: {exc}"))
        return
    st.markdown(f"**{t('shift.results')}**")
    cols = st.columns(5)
    cols[0].metric(t("shift.arm.internal"), f"{report.internal.auc.auc:.3f}")
    for col, name in zip(cols[1:], fs.ARMS, strict=True):
        delta = report.arms[name].auc.auc - report.internal.auc.auc
        col.metric(t(f"shift.arm.{name}"), f"{report.arms[name].auc.auc:.3f}", delta=f"{delta:+.3f}")
    binding.segmented("shown", "shift.shown", options=list(fs.ARMS), format_func=lambda k: t(f"shift.arm.{k}"),
                      keep=True)  # fmt: skip
    shown = binding.state().shown if binding.state().shown in fs.ARMS else "none"
    aucs, reliability = figures(page, report, shown)
    left, right = st.columns(2)
    with left:
        ui.figure(aucs, key="future.shift.aucs")
    with right:
        ui.figure(reliability, key="future.shift.reliability")
    rows = []
    for name, r in [("internal", report.internal), *report.arms.items()]:
        rows.append({t("shift.col.arm"): t(f"shift.arm.{name}"), t("shift.col.auc"): f"{r.auc.auc:.3f}",
                     t("shift.col.sens"): f"{r.sensitivity:.1%}", t("shift.col.spec"): f"{r.specificity:.1%}",
                     t("shift.col.predicted"): f"{r.mean_predicted:.1%}", t("shift.col.observed"): f"{r.observed:.1%}",
                     t("shift.col.ece"): f"{r.ece:.3f}"})  # fmt: skip
    st.dataframe(rows, hide_index=True, width="stretch")
    values = {"drop": report.drop, "mean": report.b_mean, "std": report.b_std,
              "aug_a": report.augment_internal.auc.auc, "a": report.internal.auc.auc}  # fmt: skip
    if report.drop < 0.02:
        sentence = t("shift.caption.no_drop", **values)
    else:
        best = fs.best_remedy(report)
        values.update(best=t(f"shift.arm.{best}"), share=report.recovered[best])
        sentence = t("shift.caption.drop" if report.recovered[best] < 1 else "shift.caption.drop_all", **values)
    augment = "shift.caption.augment" if values["aug_a"] < values["a"] else "shift.caption.augment_free"
    sentence += " " + t("shift.caption.inputs", **values) + " " + t(augment, **values)
    if report.internal.auc.auc < 0.8:  # a barely trained model makes every comparison noise
        sentence += " " + t("shift.caption.undertrained", **values)
    st.caption(sentence)
