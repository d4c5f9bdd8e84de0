"""Federated-learning lab: local-only models, FedAvg and a centralized model, compared on every
hospital's test set and on a new hospital. Core: primer.future_federated; the whole comparison is
one job of the shared training queue, streaming a record per round (FedAvg) or epoch (the others)."""

from __future__ import annotations

import numpy as np
import streamlit as st

from app import ui
from app.widgets import arch_jobs
from primer import future_federated as fl
from primer import future_federated_figures as figs
from primer.future_federated import FederatedLab

JOB = "future.federated.job"


def method_names(page, num_hospitals: int) -> dict[str, str]:
    names = {f"local:{k}": page.t("federated.local_k", k=k + 1) for k in range(num_hospitals)}
    names["fedavg"] = page.t("federated.fedavg")
    names["central"] = page.t("federated.central")
    return names


def test_set_name(page, name: str) -> str:
    return page.t("federated.new") if name == "new" else page.t("federated.hospital_k", k=int(name[1:]) + 1)


def start(lab: FederatedLab) -> None:
    st.session_state[JOB] = fl.submit(lab)


def stop(job) -> None:
    if job is not None and not job.finished:
        job.release()


def controls(page, lab) -> None:
    lab.slider("num_hospitals", "federated.num_hospitals", min_value=3, max_value=5, keep=True)
    lab.slider("non_iid", "federated.non_iid", min_value=0.0, max_value=1.0, step=0.25, keep=True)
    lab.slider("rounds", "federated.rounds", min_value=1, max_value=20, keep=True)
    lab.slider("local_epochs", "federated.local_epochs", min_value=1, max_value=5, keep=True)
    lab.slider("clients_per_round", "federated.clients_per_round", min_value=1, max_value=5, keep=True)
    lab.select_slider("num_images", "federated.num_images", options=[400, 800, 1600])
    lab.number("seed", "federated.seed", min_value=0, max_value=99_999, step=1)


def hospitals_table(page, lab: FederatedLab) -> None:
    """Who is in the federation at these settings (known before training: sizes and scanners)."""
    acquisitions = fl.hospital_acquisitions(lab.num_hospitals, lab.non_iid) + [fl.NEW_HOSPITAL]
    sizes = fl.hospital_sizes(lab.num_images, lab.num_hospitals, lab.non_iid) + [0]
    rows = []
    for k, (a, n) in enumerate(zip(acquisitions, sizes, strict=True)):
        new = k == lab.num_hospitals
        rows.append(
            {
                page.t("federated.col.site"): page.t("federated.new")
                if new
                else page.t("federated.hospital_k", k=k + 1),
                page.t("federated.col.images"): page.t("federated.test_only", n=lab.new_images) if new else str(n),
                page.t("federated.col.prevalence"): f"{a.prevalence:.0%}",
                page.t("federated.col.noise"): f"{a.noise_std:.2f}",
                page.t("federated.col.beta"): f"{a.beta:.1f}",
                page.t("federated.col.contrast"): f"{a.contrast:.2f}",
                page.t("federated.col.scale"): f"{a.intensity_scale:.2f}",
            }
        )
    with st.expander(page.t("federated.hospitals"), expanded=False, icon=":material/local_hospital:"):
        st.dataframe(rows, hide_index=True, width="stretch")
        st.caption(page.t("federated.hospitals_caption"))


def progress_line(page, job) -> None:
    if job.state == "queued":
        st.progress(0.0, text=page.t("federated.queued", position=job.position()))
    elif job.state == "running":
        last = job.epochs[-1] if job.epochs else None
        stage = page.t("federated.stage.preparing")
        if last is not None:
            stage = method_names(page, 5)[last.method]
        st.progress(min(1.0, job.progress), text=page.t("federated.running", stage=stage, seconds=job.elapsed()))
    elif job.state == "failed":
        st.error(page.t("federated.failed", error=job.error))
    elif job.state == "stopped":
        st.warning(page.t("federated.stopped"))
    elif job.state == "done":
        st.caption(page.t("federated.done", seconds=job.elapsed(), waited=job.waited()))


def curve_words(page) -> dict:
    return {
        "fedavg_new": page.t("federated.fig.fedavg_new"),
        "epochs": page.t("federated.fig.epochs"),
        "auc": page.t("federated.fig.val_auc"),
    }


@st.fragment  # a control reruns this lab only
def lab(page) -> None:
    t = page.t
    st.subheader(t("federated.title"))
    st.markdown(t("federated.intro"))
    binding = page.lab(FederatedLab)
    binding.presets()
    left, right = st.columns([1, 2], gap="large")
    with left:
        controls(page, binding)
    state = binding.state()
    problem = state.problem()
    with right:
        job = st.session_state.get(JOB)
        running = job is not None and not job.finished
        cols = st.columns(3)
        cols[0].button(
            t("federated.train"),
            type="primary",
            icon=":material/play_arrow:",
            on_click=start,
            args=(state,),
            disabled=running or problem is not None,
            key="future.federated.train",
            width="stretch",
        )
        cols[1].button(
            t("federated.stop"),
            icon=":material/stop:",
            on_click=stop,
            args=(job,),
            disabled=not running,
            key="future.federated.stop",
            width="stretch",
        )
        if problem is not None:
            st.warning(t(problem, k=state.num_hospitals, c=state.clients_per_round))
        if job is None:
            st.info(t("federated.idle"))
        else:
            names = method_names(page, job.result.lab.num_hospitals if job.result else state.num_hospitals)

            def draw():
                progress_line(page, job)
                if job.epochs:
                    total = job.result.lab.total_epochs() if job.result else state.total_epochs()
                    total = max(total, max(s.epochs for s in job.epochs))
                    figure = figs.curves(job.epochs, total, names, curve_words(page))
                    ui.figure(figure, key="future.federated.curves", height=340)
                    st.caption(t("federated.curves_caption"))

            arch_jobs.watch("future.federated", [job], draw)
        trained = job is not None and job.state == "done" and arch_jobs.work_key(job) == state.training_key()
        if job is not None and job.finished and not trained:
            st.caption(t("federated.settings_changed"))
        hospitals_table(page, state)
    if trained and not job.result.stopped:
        results(page, binding, job.result)
    if not ui.presenting():
        page.lesson("federated_learning", expanded=False)


def bar_items(page, result: fl.FederatedResult, view: str) -> list[dict]:
    """The bars for one test set (the display-only control): each local model, their average,
    FedAvg, centralized."""
    names = method_names(page, len(result.sizes))
    items = []
    for method in result.methods():
        a = result.auc[method][view]
        items.append({"name": names[method], "method": method, "auc": a.auc, "low": a.low, "high": a.high})
    return items


def results_figure(page, result: fl.FederatedResult, view: str):
    """What a move of the display-only control redraws (the benchmark times this function)."""
    words = {"auc": page.t("federated.fig.auc"), "title": page.t("federated.fig.on", site=test_set_name(page, view))}
    return figs.auc_bars(bar_items(page, result, view), words)


def results(page, binding, result: fl.FederatedResult) -> None:
    t = page.t
    lab = result.lab
    st.markdown(f"**{t('federated.results')}**")
    local_new = result.local_mean_auc("new")
    fed_new = result.auc["fedavg"]["new"].auc
    central_new = result.auc["central"]["new"].auc
    cols = st.columns(3)
    cols[0].metric(t("federated.metric.local"), f"{local_new:.3f}")
    cols[1].metric(t("federated.metric.fedavg"), f"{fed_new:.3f}", delta=f"{fed_new - local_new:+.3f}")
    cols[2].metric(t("federated.metric.central"), f"{central_new:.3f}", delta=f"{central_new - fed_new:+.3f}")
    views = [f"h{k}" for k in range(lab.num_hospitals)] + ["new"]
    left, right = st.columns([1, 2], gap="large")
    if st.session_state.get(binding.key("view"), "new") not in views:  # a hospital this run does not have
        st.session_state[binding.key("view")] = "new"
    with left:
        view = binding.selectbox(
            "view", "federated.view", options=views, format_func=lambda v: test_set_name(page, v), keep=True
        )
    with right:
        ui.figure(results_figure(page, result, view), key="future.federated.bars", height=320)
    names = method_names(page, lab.num_hospitals)
    rows = []
    for method in result.methods():
        row = {t("federated.col.model"): names[method]}
        for name in views:
            own = method == f"local:{name[1:]}"
            cell = f"{result.auc[method][name].auc:.3f}"
            row[test_set_name(page, name)] = f"{cell} ●" if own else cell
        rows.append(row)
    st.dataframe(rows, hide_index=True, width="stretch")
    st.caption(t("federated.table_caption", seconds=sum(result.seconds.values())))
    own_local = float(np.mean([result.auc[f"local:{k}"][f"h{k}"].auc for k in range(lab.num_hospitals)]))
    own_fed = float(np.mean([result.auc["fedavg"][f"h{k}"].auc for k in range(lab.num_hospitals)]))
    key = "federated.why.fed_better" if fed_new > local_new else "federated.why.fed_not_better"
    sentence = t(key, fed=fed_new, local=local_new, central=central_new)
    sentence += " " + t("federated.why.own", own_local=own_local, own_fed=own_fed)
    st.markdown(sentence)
