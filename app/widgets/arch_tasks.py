"""The four-tasks lab: classification, detection, semantic and instance segmentation of one
phantom, the detector's NMS steps beside the shipped two-stage model's proposals, and the
segmenter's mask (U-Net or dilated, three losses). Core: primer.tasks."""

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
SEG_RUNS = "arch.tasks.seg_runs"  # this session's segmenter jobs by key, to compare settings
SEG_LABELS = {"unet": "U-Net", "dilated": "dilated"}  # short names in the comparison table


def det_key(lab: FourTaskLab) -> str:
    # The detector's training reads only the data settings; the view fields (image, thresholds,
    # proposals) and the segmenter fields change nothing it learns.
    return f"det:{lab.contrast}:{lab.max_lesions}:{lab.seed}"


def seg_key(lab: FourTaskLab, skips: bool | None = None) -> str:
    """The data settings and everything the segmenter's training reads. The dilated segmenter
    has no skips, so the toggle does not split its runs."""
    segmenter, skips = lab.segmenter_choice(), lab.skips if skips is None else skips
    wiring = f"{skips}" if segmenter == "unet" else "-"
    return f"seg:{lab.contrast}:{lab.max_lesions}:{lab.seed}:{segmenter}:{wiring}:{lab.loss_choice()}"


def start(lab: FourTaskLab) -> None:
    config, train_config = lab.phantom_config(), lab.train_config()
    skips, segmenter, loss = lab.skips, lab.segmenter_choice(), lab.loss_choice()

    def detector(job):
        train, test = tasks.cached_task_data(config)
        model, history = tasks.train_detector(train, test, train_config, job.add_epoch, job.should_stop)
        return {"model": model, "history": history, "pr": tasks.detection_pr(model, test)}

    def segmentation(job):
        train, test = tasks.cached_task_data(config)
        model, history = tasks.train_segmenter(
            train, test, train_config, skips, job.add_epoch, job.should_stop, segmenter=segmenter, loss=loss
        )
        report = tasks.segmentation_report(model, test)
        return {
            "model": model,
            "history": history,
            "dice": report.dice,
            "report": report,
            "receptive_field": tasks.segmenter_receptive_field(model),
            "settings": {"segmenter": segmenter, "skips": skips, "loss": loss},
        }

    jobs = {
        "det": arch_jobs.submit(det_key(lab), train_config.num_epochs, detector),
        "seg": arch_jobs.submit(seg_key(lab), train_config.num_epochs, segmentation),
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
    proposals = tasks.rpn_proposals(model, x)[0]
    return {"prob": prob, "cam": cam, "rcnn": found, "proposals": proposals}


@st.cache_data(show_spinner=False, max_entries=16)
def two_stage_ap(contrast: float, max_lesions: int, seed: int) -> tuple[float, int]:
    """The shipped two-stage model's box AP@0.5 on this setting's whole test set (no training).
    On the default setting it is the figure the checkpoint records, computed by the same code
    on the same images (a test checks they agree), so the first view of the page stays fast."""
    config = tasks.task_config(contrast, max_lesions, seed)
    model, shipped = two_stage()
    _, test = tasks.cached_task_data(config)
    if config == tasks.task_config():
        return float(shipped["metrics"]["box_ap50"]), len(test)
    return tasks.two_stage_pr(model, test).average_precision, len(test)


@st.cache_data(show_spinner=False)
def anatomy() -> tasks.TwoStageAnatomy:
    return tasks.two_stage_anatomy(two_stage()[0])


def trained(jobs: dict | None, lab: FourTaskLab) -> tuple[dict | None, dict | None]:
    """The session's finished detector and segmenter results, if they match the current
    settings; a segmenter trained earlier in the session for these settings counts too, so
    switching back and forth between finished runs needs no new training."""
    if not jobs:
        return None, None
    det = jobs["det"]
    seg = st.session_state.get(SEG_RUNS, {}).get(seg_key(lab), jobs["seg"])
    det_ok = det.state == "done" and arch_jobs.work_key(det) == det_key(lab)
    seg_ok = seg.state == "done" and arch_jobs.work_key(seg) == seg_key(lab)
    return (det.result if det_ok else None), (seg.result if seg_ok else None)


@st.fragment  # a control reruns its own lab, not the page
def four_tasks_lab(page) -> None:
    t = page.t
    lab = page.lab(FourTaskLab)
    lab.presets()
    cols = st.columns(3, vertical_alignment="bottom")
    with cols[0]:
        lab.slider("contrast", "tasks.contrast", min_value=1.0, max_value=5.0, step=0.5, keep=True)
    with cols[1]:
        lab.slider("max_lesions", "tasks.max_lesions", min_value=1, max_value=4)
    with cols[2]:
        lab.number("seed", "tasks.seed", min_value=0, max_value=9999, step=1)
    cols = st.columns(3, vertical_alignment="bottom")
    with cols[0]:
        lab.segmented(
            "segmenter", "tasks.segmenter", options=list(tasks.SEGMENTERS), format_func=lambda k: t(f"tasks.seg.{k}")
        )
    with cols[1]:
        lab.segmented(
            "seg_loss", "tasks.seg_loss", options=list(tasks.SEG_LOSSES), format_func=lambda k: t(f"tasks.loss.{k}")
        )
    with cols[2]:
        dilated = lab.state().segmenter_choice() == "dilated"
        lab.toggle("skips", "tasks.skips", keep=True, disabled=dilated)
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
    elif arch_jobs.work_key(jobs["det"]) != det_key(state) or (
        seg is None and arch_jobs.work_key(jobs["seg"]) != seg_key(state)
    ):
        st.caption(t("settings_changed"))
    instance_section(page, state, test, index, image, fixed, instances)
    stages_section(page, lab, state, test, index, image, x, fixed, det)
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


def stages_section(page, lab, state, test, index, image, x, fixed, det) -> None:
    """One stage or two, on the same image and the same test set: the RPN's proposals and the
    two-stage boxes (no training needed), the one-stage candidates and NMS-kept boxes (after
    training), both APs, and the anchors the RPN scores at one position."""
    t = page.t
    st.subheader(t("tasks.stages"))
    shape = anatomy()
    lab.slider("proposals", "tasks.proposals", min_value=1, max_value=shape.post_nms_top_n)
    top_n = int(np.clip(lab.state().proposals, 1, shape.post_nms_top_n))
    proposals, rcnn = fixed["proposals"], fixed["rcnn"]
    confident = rcnn.scores >= 0.5
    truth = test.boxes[index].astype(np.float64)
    cand = tasks.candidates(det["model"], x, state.score_threshold)[0] if det else None
    kept = tasks.nms(cand.boxes, cand.scores, state.nms_iou) if det else None
    titles = [
        t("tasks.stages.proposals", n=min(top_n, len(proposals.boxes)), total=len(proposals.boxes)),
        t("tasks.stages.rcnn", n=int(confident.sum())),
        t("tasks.stages.candidates", n=len(cand.boxes)) if det else t("tasks.stages.candidates_idle"),
        t("tasks.stages.kept", n=len(kept)) if det else t("tasks.stages.kept_idle"),
    ]
    fig = figs.one_vs_two_stage_row(
        image,
        truth,
        proposals.boxes[:top_n],
        rcnn.boxes[confident],
        rcnn.scores[confident],
        None if cand is None else cand.boxes,
        None if cand is None else cand.boxes[kept],
        None if cand is None else cand.scores[kept],
        titles,
        t("tasks.press_train"),
    )
    ui.figure(fig, key="tasks.stages")
    with st.spinner(t("computing")):
        ap_two, n_test = two_stage_ap(state.contrast, state.max_lesions, state.seed)
    cols = st.columns(2)
    cols[0].metric(t("tasks.stages.ap_two"), f"{ap_two:.3f}")
    cols[1].metric(t("tasks.stages.ap_one"), f"{det['pr'].average_precision:.3f}" if det else "—")
    st.caption(
        t(
            "tasks.stages_caption",
            top=min(top_n, len(proposals.boxes)),
            post=shape.post_nms_top_n,
            n=n_test,
            threshold=state.score_threshold,
            iou=state.nms_iou,
        )
        + " "
        + (t("tasks.stages.ap_both", diff=ap_two - det["pr"].average_precision) if det else t("tasks.stages.ap_wait"))
    )
    left, right = st.columns([2, 3], gap="large")
    grid, stride = shape.feature_maps[0][1], shape.feature_maps[0][2]
    # the position nearest the first true lesion's centre (anchors are centred on stride multiples)
    centre = test.centers[index][0] if len(test.centers[index]) else np.array([image.shape[0] / 2] * 2)
    row, col = (int(np.clip(round(float(v) / stride), 0, grid - 1)) for v in centre)
    anchors = tasks.anchors_at(two_stage()[0], row, col, image.shape[0])
    with left:
        sizes = " · ".join(f"{s} px" for s in shape.anchor_sizes)
        ui.figure(
            figs.anchors_panel(
                image, anchors, (row * stride, col * stride), [""] * len(anchors), t("tasks.anchors.title")
            ),
            key="tasks.anchors",
        )
    with right:
        st.markdown(
            t(
                "tasks.anchors_text",
                a=shape.anchors_per_position,
                sizes=sizes,
                ratios=", ".join(f"{r:g}" for r in shape.aspect_ratios),
                grid=grid,
                stride=stride,
                total=shape.anchors_per_image,
                pre=shape.pre_nms_top_n,
                nms=shape.rpn_nms_iou,
                post=shape.post_nms_top_n,
            )
        )
        maps = len(shape.feature_maps)
        st.markdown(t("tasks.fpn_yes", maps=maps) if shape.has_fpn else t("tasks.fpn_no", stride=stride))


def segmentation_section(page, state, image, probs, truth, seg) -> None:
    t = page.t
    st.subheader(t("tasks.unet"))
    titles = [t("tasks.unet.probs"), t("tasks.unet.overlap")]
    ui.figure(figs.overlap_panel(image, probs, truth, titles), key="tasks.overlap")
    settings = seg.get("settings", {"segmenter": "unet", "skips": state.skips, "loss": "dice_ce"})
    if settings["segmenter"] == "unet":
        wiring = t("tasks.with_skips") if settings["skips"] else t("tasks.without_skips")
    else:
        wiring = t("tasks.dilated_wiring")
    line = t("tasks.unet_caption", dice=seg["dice"], skips=wiring)
    if seg.get("receptive_field") is not None:
        line += " " + t("tasks.rf_caption", rf=seg["receptive_field"], size=image.shape[0])
    st.caption(line)
    rows = []
    for run in st.session_state.get(SEG_RUNS, {}).values():
        if run.state != "done" or "report" not in (run.result or {}):
            continue
        r, how = run.result["report"], run.result["settings"]
        model = SEG_LABELS[how["segmenter"]] + ("" if how["segmenter"] != "unet" or how["skips"] else " −skips")
        rows.append(
            {
                t("col.segmenter"): model,
                t("col.loss"): t(f"tasks.loss.{how['loss']}"),
                t("col.dice"): round(r.dice, 3),
                t("col.image_dice"): round(r.image_dice, 3),
                t("col.small_dice"): round(r.small_dice, 3),
                t("col.large_dice"): round(r.large_dice, 3),
                t("col.unsure_all"): f"{r.uncertain:.1%}",
                t("col.unsure"): f"{r.lesion_uncertain:.1%}",
                t("col.rf"): run.result["receptive_field"] or t("blocks.global"),
            }
        )
    if rows:
        st.dataframe(rows, hide_index=True, width="stretch")
        st.caption(t("tasks.seg_table_caption"))
    if len(rows) < 2:
        st.caption(t("tasks.unet_try_other"))
