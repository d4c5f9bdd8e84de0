"""Subgroups and fairness lab: one model trained on a scanner mixture, one threshold fixed on the
overall validation set, and sensitivity, specificity and AUC per subgroup with 95% intervals.
Core: primer.future_subgroups; the one training run goes through the shared queue (primer.jobs);
the grouping and the threshold rule only re-count cached predictions."""

from __future__ import annotations

import streamlit as st

from app import ui
from app.widgets import arch_jobs
from app.widgets import training_panel as panel
from app.widgets.future_shift import WORDS
from app.widgets.training_validation import curve_labels, progress_line, stop
from primer import future_subgroups as fsg
from primer import train_figures

JOB = "future.subgroups.job"


def start(lab: fsg.SubgroupLab) -> None:
    if fsg.check(lab) is None:
        st.session_state[JOB] = fsg.submit(lab)


def share_label(share: float) -> str:
    return f"{share:.0%}"


def controls(page, lab) -> None:
    t = page.t
    st.markdown(f"**{t('subgroups.development')}**")
    lab.select_slider("b_share", "subgroups.b_share", options=list(fsg.SHARES), format_func=share_label, keep=True)
    lab.select_slider("num_images", "subgroups.num_images", options=[500, 1000, 2000, 4000])
    lab.slider("num_epochs", "subgroups.num_epochs", min_value=1, max_value=20)
    lab.number("seed", "subgroups.seed", min_value=0, max_value=99_999, step=1)
    lab.select_slider("test_images", "subgroups.test_images", options=[400, 1000, 2000, 4000])
    st.markdown(f"**{t('subgroups.display')}**")
    lab.segmented("grouping", "subgroups.grouping", options=list(fsg.GROUPINGS), keep=True,
                  format_func=lambda g: t(f"subgroups.grouping.{g}"))  # fmt: skip
    lab.segmented("rule", "subgroups.rule", options=list(fsg.RULES), keep=True,
                  format_func=lambda r: t(f"subgroups.rule.{r}"))  # fmt: skip


@st.fragment  # a control reruns this lab only
def lab(page) -> None:
    t = page.t
    st.subheader(t("subgroups.title"))
    st.markdown(t("subgroups.intro"))
    binding = page.lab(fsg.SubgroupLab)
    binding.presets()
    left, right = st.columns([1, 2], gap="large")
    with left:
        controls(page, binding)
    state = binding.state()
    problem = fsg.check(state)
    job = st.session_state.get(JOB)
    with right:
        running = job is not None and not job.finished
        panel.run_buttons(
            lambda key, **values: t(f"subgroups.{key}", **values),
            "future.subgroups",
            label=t("subgroups.train"),
            on_train=start,
            train_args=(state,),
            on_stop=stop,
            stop_args=([job] if job else [],),
            running=running,
        )
        if problem:
            st.error(t(problem, share=state.b_share, n=state.num_images))
        if job is None:
            st.info(t("subgroups.idle"))
        else:

            def draw():
                progress_line(WORDS, job, t("subgroups.model"))
                if job.epochs and job.state != "done":
                    figure = train_figures.curves(job.epochs, job.total_epochs, curve_labels(WORDS))
                    ui.figure(figure, key="future.subgroups.curves", height=240)

            arch_jobs.watch("future.subgroups", [job], draw)
        trained = job is not None and job.state == "done" and arch_jobs.work_key(job) == state.training_key()
        if job is not None and job.finished and not trained:
            st.caption(WORDS.t("settings_changed"))
    if trained and problem is None:
        results(page, state, job.result)
    if not ui.presenting():
        page.lesson("subgroups", expanded=False)


def names(page) -> dict[str, str]:
    ids = ("overall", "a", "b", *fsg.SIZES, *(h for h, *_ in fsg.HOSPITALS))
    return {i: page.t(f"subgroups.group.{i}") for i in ids}


def view(page, lab: fsg.SubgroupLab, model: fsg.MixtureModel):
    """What a display-only control redraws: the report (counts on cached predictions) and its figure."""
    t = page.t
    report = fsg.subgroup_report(model, lab.grouping, lab.rule)
    words = {p: t(f"subgroups.fig.{p}") for p in fsg.PANELS}
    return report, fsg.forest_figure(report, names(page), words)


def fmt_ci(value: float, ci: tuple[float, float]) -> str:
    if value != value:  # NaN: no case of that class in the subgroup
        return "–"
    return f"{value:.1%} ({ci[0]:.1%}–{ci[1]:.1%})"


def results(page, lab: fsg.SubgroupLab, model: fsg.MixtureModel) -> None:
    t = page.t
    report, figure = view(page, lab, model)
    label = names(page)
    st.markdown(f"**{t('subgroups.results')}**")
    cols = st.columns(4)
    cols[0].metric(t("subgroups.metric.share"), f"{model.train_b_share:.1%}", help=t("subgroups.metric.share_help"))
    cols[1].metric(t("subgroups.metric.threshold"), f"{report.threshold:.2f}",
                   help=t(f"subgroups.rule.{lab.rule}.help"))  # fmt: skip
    cols[2].metric(t("subgroups.metric.sens"), f"{report.overall.sensitivity:.1%}")
    cols[3].metric(t("subgroups.metric.auc"), f"{report.overall.auc.auc:.3f}")
    ui.figure(figure, key="future.subgroups.forest")
    rows = []
    for r in (report.overall, *report.rows):
        auc = "–" if r.auc is None else f"{r.auc.auc:.3f} ({r.auc.low:.3f}–{r.auc.high:.3f})"
        rows.append({t("subgroups.col.group"): label.get(r.name, r.name), t("subgroups.col.n"): r.n,
                     t("subgroups.col.pos"): r.positives, t("subgroups.col.prev"): f"{r.observed:.0%}",
                     t("subgroups.col.sens"): fmt_ci(r.sensitivity, r.sensitivity_ci),
                     t("subgroups.col.spec"): fmt_ci(r.specificity, r.specificity_ci),
                     t("subgroups.col.ppv"): "–" if r.ppv != r.ppv else f"{r.ppv:.1%}",
                     t("subgroups.col.auc"): auc, t("subgroups.col.predicted"): f"{r.mean_predicted:.1%}"})  # fmt: skip
    st.dataframe(rows, hide_index=True, width="stretch")
    sentences = []
    for key, values in fsg.explain(report):
        values = dict(values)
        for side in ("best", "worst"):
            if side in values:
                values[side] = label.get(values[side], values[side])
        sentences.append(t(key, **values))
    caption_key = "subgroups.table_caption.size" if lab.grouping == "size" else "subgroups.table_caption"
    st.caption(t(caption_key) + " " + " ".join(sentences))
