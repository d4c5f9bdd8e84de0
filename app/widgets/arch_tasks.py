"""The four-tasks lab: classification, detection, semantic and instance segmentation of one
phantom, the detector's NMS steps, and the U-Net's mask. Core: primer.tasks."""

from __future__ import annotations

import numpy as np
import streamlit as st
import torch

from app import ui
from app.widgets import arch_jobs
from primer import architectures_figures as figs
from primer import tasks
from primer.tasks import FourTaskLab

JOBS = "arch.tasks"
SEG_RUNS = "arch.tasks.seg_runs"  # this session's U-Net jobs by key: with and without skips


def det_key(lab: FourTaskLab) -> str:
    return f"det:{lab.contrast}:{lab.max_lesions}:{lab.seed}"


def seg_key(lab: FourTaskLab, skips: bool | None = None) -> str:
    return f"seg:{lab.contrast}:{lab.max_lesions}:{lab.seed}:{lab.skips if skips is None else skips}"


def start(lab: FourTaskLab) -> None:
    config, train_config = lab.phantom_config(), lab.train_config()
    skips = lab.skips

    def detector(job):
        train, test = tasks.cached_task_data(config)
        model, history = tasks.train_detector(train, test, train_config, job.add_epoch, job.should_stop)
        return {"model": model, "history": history, "pr": tasks.detection_pr(model, test)}

    def segmenter(job):
        train, test = tasks.cached_task_data(config)
        model, history = tasks.train_segmenter(train, test, train_config, skips, job.add_epoch, job.should_stop)
        return {"model": model, "history": history, "dice": tasks.segmentation_dice(model, test)}

    jobs = {
        "det": arch_jobs.submit(det_key(lab), train_config.num_epochs, detector),
        "seg": arch_jobs.submit(seg_key(lab), train_config.num_epochs, segmenter),
    }
    st.session_state[JOBS] = jobs
    st.session_state.setdefault(SEG_RUNS, {})[seg_key(lab)] = jobs["seg"]


@st.cache_resource(show_spinner=False)
def two_stage():
    return tasks.load_two_stage()


@st.cache_data(show_spinner=False, max_entries=64)
def fixed_views(contrast: float, max_lesions: int, seed: int, image: int) -> dict:
    """What needs no live training, for one test image: the default classifier's probability
    and Grad-CAM, and the shipped Mask R-CNN's instances."""
    from primer import explain
    from primer.default_model import CHECKPOINT, load_checkpoint

    _, test = tasks.cached_task_data(tasks.task_config(contrast, max_lesions, seed))
    x = test.x[image : image + 1]
    classifier = explain.private_copy(load_checkpoint(CHECKPOINT)[1])
    with torch.no_grad():
        prob = float(torch.softmax(classifier(x), 1)[0, 1])
    cam = explain.gradcam(classifier, x, target=1)[0, 0]
    model, _ = two_stage()
    found = tasks.two_stage_predict(model, x)[0]
    return {"prob": prob, "cam": cam, "rcnn": found}


def trained(jobs: dict | None, lab: FourTaskLab) -> tuple[dict | None, dict | None]:
    """The session's finished detector and U-Net results, if they match the current settings."""
    if not jobs:
        return None, None
    det, seg = jobs["det"], jobs["seg"]
    det_ok = det.state == "done" and arch_jobs.work_key(det) == det_key(lab)
    seg_ok = seg.state == "done" and arch_jobs.work_key(seg) == seg_key(lab)
    return (det.result if det_ok else None), (seg.result if seg_ok else None)


@st.fragment  # a control reruns its own lab, not the page
def four_tasks_lab(page) -> None:
    t = page.t
    lab = page.lab(FourTaskLab)
    lab.presets()
    cols = st.columns(4, vertical_alignment="bottom")
    with cols[0]:
        lab.slider("contrast", "tasks.contrast", min_value=1.0, max_value=5.0, step=0.5, keep=True)
    with cols[1]:
        lab.slider("max_lesions", "tasks.max_lesions", min_value=1, max_value=4)
    with cols[2]:
        lab.toggle("skips", "tasks.skips", keep=True)
    with cols[3]:
        lab.number("seed", "tasks.seed", min_value=0, max_value=9999, step=1)
    state = lab.state()
    st.button(
        t("tasks.train"), type="primary", icon=":material/play_arrow:", on_click=start, args=(state,), key="tasks.run"
    )
    jobs = st.session_state.get(JOBS)
    if jobs:
        live(page, jobs)
    cols = st.columns(3, vertical_alignment="bottom")
    with cols[0]:
        lab.number("image", "tasks.image", min_value=0, max_value=249, step=1, keep=True)
    with cols[1]:
        lab.slider("score_threshold", "tasks.score_threshold", min_value=0.05, max_value=0.95, step=0.05)
    with cols[2]:
        lab.slider("nms_iou", "tasks.nms_iou", min_value=0.1, max_value=0.9, step=0.05)
    state = lab.state()
    _, test = tasks.cached_task_data(state.phantom_config())
    index = int(np.clip(state.image, 0, len(test) - 1))
    image, x = test.x[index, 0].numpy(), test.x[index : index + 1]
    det, seg = trained(jobs, state)
    with st.spinner(t("computing")):
        fixed = fixed_views(state.contrast, state.max_lesions, state.seed, index)
    found = tasks.detect(det["model"], x, state.score_threshold, state.nms_iou)[0] if det else None
    probs = tasks.segment(seg["model"], x)[0] if seg else None
    instances = tasks.instances_from_mask(probs >= 0.5) if seg else None
    dice = tasks.segdet.dice(test.masks[index], probs >= 0.5) if seg else None
    titles = [
        t("tasks.panel.cls", p=fixed["prob"]),
        t("tasks.panel.det", n=len(found[0])) if found else t("tasks.panel.det_idle"),
        t("tasks.panel.seg", dice=dice) if seg else t("tasks.panel.seg_idle"),
        t("tasks.panel.inst", n=int(instances.max())) if seg else t("tasks.panel.inst_idle"),
    ]
    fig = figs.four_tasks_row(
        image,
        titles,
        test.boxes[index],
        test.masks[index],
        fixed["cam"],
        None if found is None else found[0],
        None if found is None else found[1],
        None if probs is None else probs >= 0.5,
        instances,
        t("tasks.press_train"),
    )
    ui.figure(fig, key="tasks.four")
    st.caption(t("tasks.four_caption", lesions=len(test.boxes[index])))
    if not jobs:
        st.info(t("tasks.idle"))
    elif arch_jobs.work_key(jobs["det"]) != det_key(state) or arch_jobs.work_key(jobs["seg"]) != seg_key(state):
        st.caption(t("settings_changed"))
    instance_section(page, state, test, index, image, fixed, instances)
    if det:
        detection_section(page, state, test, index, image, x, det)
    if seg:
        segmentation_section(page, state, image, probs, test.masks[index], seg)


def live(page, jobs: dict) -> None:
    t = page.t
    names = {"det": t("tasks.model.det"), "seg": t("tasks.model.seg")}

    def draw():
        parts = []
        for kind, job in jobs.items():
            if job.state == "queued":
                parts.append(t("tasks.status.queued", model=names[kind], position=job.position()))
            elif job.state == "running":
                parts.append(
                    t(
                        "tasks.status.running",
                        model=names[kind],
                        epoch=min(len(job.epochs) + 1, job.total_epochs),
                        total=job.total_epochs,
                        seconds=job.elapsed(),
                    )
                )
            elif job.state == "done":
                last = job.epochs[-1]
                parts.append(t(f"tasks.status.done_{kind}", seconds=last.seconds, score=last.score))
            else:
                parts.append(t("tasks.status.failed", model=names[kind], error=job.error or job.state))
        st.progress(sum(j.progress for j in jobs.values()) / len(jobs), text=" · ".join(parts))
        histories = {names[k]: j.epochs for k, j in jobs.items() if j.epochs}
        if histories:
            labels = {"loss": t("tasks.curve.loss"), "score": t("tasks.curve.score"), "epoch": t("tasks.curve.epoch")}
            ui.figure(
                figs.training_curves(histories, labels, max(j.total_epochs for j in jobs.values())), key="tasks.curves"
            )

    with st.expander(
        t("tasks.training"), expanded=any(not j.finished for j in jobs.values()), icon=":material/monitoring:"
    ):
        arch_jobs.watch("tasks", list(jobs.values()), draw)


def instance_section(page, state, test, index, image, fixed, instances) -> None:
    t = page.t
    st.subheader(t("tasks.instances"))
    rcnn = fixed["rcnn"]
    rcnn_map = rcnn.instance_map(score_threshold=0.5)
    grey = figs.to_grey(image)
    panels = [figs.instance_overlay(grey, test.instance_map[index]), figs.instance_overlay(grey, rcnn_map)]
    titles = [t("tasks.inst.truth", n=len(test.boxes[index])), t("tasks.inst.rcnn", n=int(rcnn_map.max()))]
    boxes = [
        [],
        [
            {"box": b, "color": figs.PRED_COLOR, "label": f"{s:.2f}"}
            for b, s in zip(rcnn.boxes, rcnn.scores, strict=True)
            if s >= 0.5
        ],
    ]
    if instances is not None:
        panels.insert(1, figs.instance_overlay(grey, instances))
        titles.insert(1, t("tasks.inst.cc", n=int(instances.max())))
        boxes.insert(1, [])
    ui.figure(figs.image_row(panels, titles, boxes), key="tasks.instances")
    ious = tasks.instance_ious(test.instance_map[index], rcnn_map)
    text = ", ".join(f"{v:.2f}" for v in ious) or "—"
    _, shipped = two_stage()
    st.caption(
        t("tasks.inst_caption", ious=text, ap=shipped["metrics"]["box_ap50"], mask_iou=shipped["metrics"]["mask_iou"])
    )


def detection_section(page, state, test, index, image, x, det) -> None:
    t = page.t
    st.subheader(t("tasks.nms"))
    cand = tasks.candidates(det["model"], x, state.score_threshold)[0]
    trace = tasks.nms_trace(cand.boxes, cand.scores, state.nms_iou)
    truth = test.boxes[index].astype(np.float64)
    kept_ious = []
    for j in trace.kept:
        overlaps = (
            tasks.box_iou(torch.from_numpy(cand.boxes[j : j + 1]), torch.from_numpy(truth)).numpy()
            if len(truth)
            else np.zeros((1, 0))
        )
        kept_ious.append(float(overlaps.max()) if overlaps.size else 0.0)
    titles = [
        t("tasks.nms.heatmap"),
        t("tasks.nms.candidates", n=len(cand.boxes)),
        t("tasks.nms.kept", n=len(trace.kept)),
    ]
    ui.figure(
        figs.nms_row(
            image, tasks.heatmap(det["model"], x), cand.boxes, cand.scores, trace.kept, truth, kept_ious, titles
        ),
        key="tasks.nms",
    )
    st.caption(t("tasks.nms_caption", threshold=state.score_threshold, iou=state.nms_iou))
    left, right = st.columns([3, 2], gap="large")
    with left:
        rows = [
            {
                t("col.step"): i + 1,
                t("col.kept_score"): round(float(cand.scores[step.kept]), 3),
                t("col.removed"): len(step.suppressed),
                t("col.removed_iou"): ", ".join(f"{v:.2f}" for v in step.ious) or "—",
            }
            for i, step in enumerate(trace.steps)
        ]
        if rows:
            st.dataframe(rows, hide_index=True, width="stretch")
            st.caption(t("tasks.nms_table_caption"))
        else:
            st.info(t("tasks.nms_none", threshold=state.score_threshold))
    with right:
        pr = det["pr"]
        labels = {"recall": t("tasks.recall"), "precision": t("tasks.precision")}
        ui.figure(figs.pr_curve(pr.recall, pr.precision, labels), key="tasks.pr", height=300)
        st.caption(t("tasks.pr_caption", ap=pr.average_precision, n=len(test)))


def segmentation_section(page, state, image, probs, truth, seg) -> None:
    t = page.t
    st.subheader(t("tasks.unet"))
    titles = [t("tasks.unet.probs"), t("tasks.unet.overlap")]
    ui.figure(figs.overlap_panel(image, probs, truth, titles), key="tasks.overlap")
    other = st.session_state.get(SEG_RUNS, {}).get(seg_key(state, not state.skips))
    line = t(
        "tasks.unet_caption", dice=seg["dice"], skips=t("tasks.with_skips") if state.skips else t("tasks.without_skips")
    )
    if other is not None and other.state == "done":
        line += " " + t(
            "tasks.unet_other",
            dice=other.result["dice"],
            skips=t("tasks.without_skips") if state.skips else t("tasks.with_skips"),
        )
    else:
        line += " " + t("tasks.unet_try_other")
    st.caption(line)
