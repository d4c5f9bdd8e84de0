"""Self-supervised pretraining lab: contrastive pretraining on unlabelled phantoms, then a
label-efficiency curve against training from scratch, random features and supervised
pretraining on another task; the embedding before and after. Core: primer.future_selfsup; one
queued job streams the contrastive loss, then a record per label budget. Choosing the budget
shown or the projection only redraws."""

from __future__ import annotations

import streamlit as st

from app import ui
from app.widgets import arch_jobs
from primer import future_selfsup as fss

JOB = "future.selfsup.job"


def start(lab: fss.SelfSupLab) -> None:
    st.session_state[JOB] = fss.submit(lab)


def stop(job) -> None:
    if job is not None and not job.finished:
        job.release()


def words(page) -> dict:
    keys = ("scratch", "random", "supervised", "selfsup", "labels", "auc", "chance", "loss", "step",
            "emb_random", "emb_selfsup", "class0", "class1")  # fmt: skip
    return {k: page.t(f"selfsup.fig.{k}") for k in keys}


def controls(binding) -> None:
    binding.select_slider("pool_size", "selfsup.pool_size", options=[500, 1000, 2000, 4000])
    binding.slider("pretrain_epochs", "selfsup.pretrain_epochs", min_value=0, max_value=10)
    binding.select_slider("temperature", "selfsup.temperature", options=[0.05, 0.1, 0.2, 0.5, 1.0, 2.0])
    binding.select_slider("batch_size", "selfsup.batch_size", options=[16, 32, 64, 128, 256])
    binding.select_slider("image_size", "selfsup.image_size", options=[32, 48, 64])
    binding.number("seed", "selfsup.seed", min_value=0, max_value=99_999, step=1)


def progress(page, job) -> None:
    t = page.t
    if job.state == "queued":
        st.progress(0.0, text=t("selfsup.queued", position=job.position()))
    elif job.state == "running":
        last = job.epochs[-1] if job.epochs else None
        if last is None:
            text = t("selfsup.running.data", seconds=job.elapsed())
        elif last.stage == "pretrain":
            text = t("selfsup.running.pretrain", step=last.step, total=last.total, seconds=job.elapsed())
        elif last.stage == "supervised":
            text = t("selfsup.running.supervised", seconds=job.elapsed())
        else:
            text = t("selfsup.running.budgets", done=last.step, total=last.total, seconds=job.elapsed())
        st.progress(min(1.0, job.progress), text=text)
    elif job.state == "failed":
        st.error(t("selfsup.failed", error=job.error))
    elif job.state == "stopped":
        st.warning(t("selfsup.stopped"))
    elif job.state == "done":
        st.caption(t("selfsup.done", seconds=job.elapsed()))
    losses = [r.loss for r in job.epochs if r.stage == "pretrain"]
    if losses and job.state != "done":
        ui.figure(fss.loss_figure(losses, words(page)), key="future.selfsup.loss_live", height=220)


@st.fragment  # a control reruns this lab only
def lab(page) -> None:
    t = page.t
    st.subheader(t("selfsup.title"))
    st.markdown(t("selfsup.intro"))
    binding = page.lab(fss.SelfSupLab)
    binding.presets()
    left, right = st.columns([1, 2], gap="large")
    with left:
        controls(binding)
    state = binding.state()
    job = st.session_state.get(JOB)
    with right:
        running = job is not None and not job.finished
        cols = st.columns(3)
        cols[0].button(t("selfsup.train"), type="primary", icon=":material/play_arrow:", on_click=start,
                       args=(state,), disabled=running, key="future.selfsup.train", width="stretch")  # fmt: skip
        cols[1].button(t("selfsup.stop"), icon=":material/stop:", on_click=stop, args=(job,), disabled=not running,
                       key="future.selfsup.stop", width="stretch")  # fmt: skip
        if job is None:
            st.info(t("selfsup.idle"))
        else:
            arch_jobs.watch("future.selfsup", [job], lambda: progress(page, job))
        trained = job is not None and job.state == "done" and arch_jobs.work_key(job) == state.training_key()
        if job is not None and job.finished and not trained:
            st.caption(t("selfsup.settings_changed"))
    if trained and job.result.points:
        results(page, binding, job.result)
    if not ui.presenting():
        page.lesson("self_supervised", expanded=False)


def results(page, binding, result: fss.Result) -> None:
    t = page.t
    w = words(page)
    budgets = sorted({p.labels for p in result.points})
    pick, numbers = st.columns([1, 2], gap="large")
    with pick:
        binding.select_slider("budget", "selfsup.budget", options=list(fss.BUDGETS), keep=True)
    budget = binding.state().budget
    budget = budget if budget in budgets else budgets[0]
    with numbers:
        st.markdown(f"**{t('selfsup.metrics_title', labels=budget)}**")
        cols = st.columns(len(fss.READERS))
        for col, reader in zip(cols, fss.READERS, strict=True):
            auc = result.auc(reader, budget)
            delta = None if reader == "scratch" else f"{auc - result.auc('scratch', budget):+.3f}"
            col.metric(t(f"selfsup.short.{reader}"), f"{auc:.3f}", delta=delta, help=w[reader])
    left, right = st.columns([3, 2])
    with left:
        st.markdown(f"**{t('selfsup.curve_title')}**")
        ui.figure(fss.budget_figure(result, budget, w), key="future.selfsup.curve", height=400)
    with right:
        st.markdown(f"**{t('selfsup.loss_title')}**")
        if result.losses:
            ui.figure(fss.loss_figure(result.losses, w), key="future.selfsup.loss", height=400)
        else:
            st.info(t("selfsup.no_pretraining"))
    smallest = budgets[0]
    st.caption(t("selfsup.curve_caption", labels=smallest, selfsup=result.auc("selfsup", smallest),
                 scratch=result.auc("scratch", smallest), supervised=result.auc("supervised", smallest),
                 random=result.auc("random", smallest)))  # fmt: skip
    st.markdown(f"**{t('selfsup.embedding_title')}**")
    binding.segmented("projection", "selfsup.projection", options=["pca", "tsne"], keep=True,
                      format_func=lambda m: ui.t(f"future.selfsup.projection.{m}"))  # fmt: skip
    method = binding.state().projection
    with st.spinner(t("selfsup.projecting")):  # t-SNE takes ~3 s the first time, then it is cached
        figure = fss.embedding_figure(result, method, w)
    ui.figure(figure, key="future.selfsup.embedding", height=360)
    largest = budgets[-1]
    st.caption(t("selfsup.embedding_caption", labels=largest, random=result.auc("random", largest),
                 selfsup=result.auc("selfsup", largest)))  # fmt: skip
