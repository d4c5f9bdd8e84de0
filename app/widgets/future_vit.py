"""Vision transformer vs CNN: test AUC against training-set size, attention rollout beside
Grad-CAM, both scored with the pointing game. Core: primer.future_vit; one queued job runs the
whole size sweep and streams a record per finished (model, size) run."""

from __future__ import annotations

import streamlit as st

from app import ui
from app.widgets import arch_jobs
from primer import future_vit as fv

JOB = "future.vit.job"


def start(lab: fv.VitLab) -> None:
    st.session_state[JOB] = fv.submit_sweep(lab)
    st.session_state[f"{JOB}.sizes"] = lab.sizes()  # the curve's axis follows the run, not later settings


def stop(job) -> None:
    if job is not None and not job.finished:
        job.release()


@st.fragment  # a control reruns this lab only
def lab(page) -> None:
    t = page.t
    st.subheader(t("vit.title"))
    st.markdown(t("vit.intro"))
    binding = page.lab(fv.VitLab)
    binding.presets()
    controls, results = st.columns([1, 2], gap="large")
    with controls:
        binding.select_slider("patch_size", "vit.patch_size", options=list(fv.PATCH_SIZES), keep=True)
        binding.select_slider("dim", "vit.dim", options=[16, 32, 48, 64])
        binding.slider("depth", "vit.depth", min_value=1, max_value=4, keep=True)
        binding.select_slider("heads", "vit.heads", options=[1, 2, 3, 4, 8])
        binding.select_slider("largest", "vit.largest", options=[200, 500, 1000, 1400], keep=True)
        binding.select_slider("steps", "vit.steps", options=[20, 40, 60, 120, 200])
        binding.number("seed", "vit.seed", min_value=0, max_value=99_999, step=1)
    state = binding.state()
    problems = state.problems()
    job = st.session_state.get(JOB)
    with results:
        running = job is not None and not job.finished
        cols = st.columns(3)
        cols[0].button(t("vit.train"), type="primary", icon=":material/play_arrow:", on_click=start, args=(state,),
                       disabled=running or bool(problems), key="future.vit.train", width="stretch")  # fmt: skip
        cols[1].button(t("vit.stop"), icon=":material/stop:", on_click=stop, args=(job,), disabled=not running,
                       key="future.vit.stop", width="stretch")  # fmt: skip
        for key in problems:
            st.error(t(key, dim=state.dim, heads=state.heads, patch=state.patch_size))
        if job is None:
            st.info(t("vit.idle"))
        else:

            def draw():
                if job.state == "queued":
                    st.progress(0.0, text=t("vit.queued", position=job.position()))
                elif job.state == "running":
                    live = job.latest
                    if live is None:  # the data are being made, the first epoch is not done yet
                        text = t("vit.starting", seconds=job.elapsed())
                    else:
                        text = t("vit.running", model=t(f"vit.fig.{live.model}"), size=live.size, epoch=live.epoch,
                                 epochs=live.num_epochs, done=len(job.epochs), total=job.total_epochs,
                                 seconds=job.elapsed())  # fmt: skip
                    st.progress(min(1.0, job.progress), text=text)
                elif job.state == "failed":
                    st.error(t("vit.failed", error=job.error))
                elif job.state == "done":
                    st.caption(t("vit.done", seconds=job.elapsed()))
                live = job.latest if job.state == "running" else None
                if job.epochs or live is not None:
                    curve, monitor = st.columns([3, 2]) if live is not None else (st.container(), None)
                    sizes = st.session_state.get(f"{JOB}.sizes", state.sizes())
                    with curve:
                        ui.figure(fv.auc_figure(job.epochs, sizes, words(page)), key="future.vit.curve", height=320)
                    if monitor is not None:
                        with monitor:
                            ui.figure(fv.live_figure(live, words(page)), key="future.vit.live", height=320)
                            st.caption(t("vit.live_caption"))

            arch_jobs.watch("future.vit", [job], draw)
        trained = job is not None and job.state == "done" and arch_jobs.work_key(job) == state.training_key()
        if job is not None and job.finished and not trained:
            st.caption(t("vit.settings_changed"))
    if trained:
        maps_panel(page, binding, state, job.result)
    page.lesson("vit", expanded=False)
    page.lesson("attention_maps", expanded=False)


def words(page) -> dict:
    keys = ("cnn", "vit", "size", "auc", "chance", "image", "rollout", "gradcam", "pointing", "random", "epoch",
            "val_auc")  # fmt: skip
    return {k: page.t(f"vit.fig.{k}") for k in keys}


def maps_panel(page, binding, state: fv.VitLab, result: fv.SweepResult) -> None:
    t = page.t
    n = len(result.lesion_images)
    st.markdown(f"**{t('vit.maps_title')}**")
    cols = st.columns(2)
    with cols[0]:
        binding.slider("image", "vit.image", min_value=0, max_value=max(0, n - 1), keep=True)
    with cols[1]:
        sizes = result.sizes[::-1]  # 0: the largest run
        binding.select_slider("explain_size", "vit.explain_size", options=list(range(len(sizes))), keep=True,
                              format_func=lambda i: str(sizes[i]))  # fmt: skip
    view = fv.view(result, binding.state())
    ui.figure(fv.maps_figure(view, words(page)), key="future.vit.maps", height=300)
    left, right = st.columns(2)
    with left:
        ui.figure(fv.pointing_figure(view, words(page)), key="future.vit.pointing", height=260)
    with right:
        st.caption(t("vit.pointing_caption", size=view.size, n=view.n, vit=view.vit_hits, cnn=view.cnn_hits,
                     vit_low=view.vit_ci[0], vit_high=view.vit_ci[1], cnn_low=view.cnn_ci[0],
                     cnn_high=view.cnn_ci[1], chance=view.chance))  # fmt: skip
        st.caption(t("vit.auc_caption", size=result.sizes[0], vit=result.auc("vit", result.sizes[0]),
                     cnn=result.auc("cnn", result.sizes[0])))  # fmt: skip
