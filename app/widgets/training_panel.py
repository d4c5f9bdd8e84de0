"""The training lab's UI pieces: grouped controls, the data preview, the live run panel (a worker
thread trains while a fragment polls it), the results card, own data and cross-validation.

The training itself runs in primer.jobs' process-wide queue; this module only starts, watches
and draws jobs. A session keeps its current job under JOB and the previous run's epochs under
PREVIOUS, so the curves can show the last run dotted behind the new one.
"""

from __future__ import annotations

import json
import random
import uuid
from dataclasses import asdict

import numpy as np
import streamlit as st

import models
from app import ui
from primer import train_figures
from primer.text import plot_literal
from primer.train import TrainLab

JOB, PREVIOUS, SHOWN, OWN, CV_JOB = (
    "training.job",
    "training.previous",
    "training.shown",
    "training.own",
    "training.cv_job",
)
LEARNING_RATES = [1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0, 2.0]
PREVALENCES = [0.02, 0.05, 0.1, 0.2, 0.3, 0.5]  # screening-like rarity up to the balanced default
MIN_CLASS_PATIENTS = 20  # per class: fewer leave a validation or test set (15% each) with about 3 or none
WARMUP_EPOCHS = [0.0, 0.5, 1.0, 2.0, 3.0, 5.0]


# ---------------------------------------------------------------------------------------------
# Controls


def controls(page, lab) -> None:
    """All of TrainLab's fields as widgets, in four groups with one-line help each."""
    t = page.t
    with st.expander(t("group.data"), expanded=True, icon=":material/database:"):
        lab.selectbox("task", "task", options=["presence", "shape", "ske"], format_func=lambda v: t(f"task.{v}"))
        lab.select_slider("num_images", "num_images", options=[500, 1000, 2000, 4000])
        lab.slider("contrast", "contrast", min_value=0.5, max_value=5.0, step=0.25, keep=True)
        lab.slider("beta", "beta", min_value=0.0, max_value=4.0, step=0.5)
        lab.select_slider("images_per_patient", "images_per_patient", options=[1, 2, 3, 5, 10])
        lab.segmented("split_by", "split_by", options=["patient", "image"], format_func=lambda v: t(f"split.{v}"))
        lab.select_slider(
            "num_train",
            "num_train",
            options=[0, 50, 100, 150, 300, 600, 1000],
            format_func=lambda v: t("all") if v == 0 else str(v),
        )
        lab.select_slider("prevalence", "prevalence", options=PREVALENCES, format_func=lambda v: f"{v:.0%}")
    with st.expander(t("group.model"), expanded=False, icon=":material/account_tree:"):
        names = models.names("classifier")
        lab.selectbox("model", "model", options=names, format_func=lambda n: ui.bi(models.spec(n).title))
        lab.select_slider("width", "width", options=[4, 8, 16, 32])
        lab.segmented("init", "init", options=["scratch", "pretrained"], format_func=lambda v: t(f"init.{v}"))
    with st.expander(t("group.optimization"), expanded=True, icon=":material/speed:"):
        lab.segmented(
            "optimizer", "optimizer", options=["sgd", "momentum", "adam"], format_func=lambda v: t(f"optimizer.{v}")
        )
        lab.select_slider(
            "learning_rate", "learning_rate", options=LEARNING_RATES, format_func=lambda v: f"{v:g}", keep=True
        )
        lab.select_slider("batch_size", "batch_size", options=[8, 16, 32, 64, 128, 256])
        lab.slider("num_epochs", "num_epochs", min_value=1, max_value=40)
        lab.segmented(
            "lr_schedule",
            "lr_schedule",
            options=["constant", "step", "cosine"],
            format_func=lambda v: t(f"schedule.{v}"),
        )
        lab.select_slider(
            "warmup_epochs",
            "warmup_epochs",
            options=WARMUP_EPOCHS,
            format_func=lambda v: t("off") if v == 0 else f"{v:g}",
        )
        lab.segmented(
            "loss", "loss", options=["cross_entropy", "weighted", "focal"], format_func=lambda v: t(f"loss.{v}")
        )
    with st.expander(t("group.regularization"), expanded=False, icon=":material/tune:"):
        lab.select_slider(
            "weight_decay", "weight_decay", options=[0.0, 1e-4, 1e-3, 1e-2, 0.1], format_func=lambda v: f"{v:g}"
        )
        lab.slider("dropout", "dropout", min_value=0.0, max_value=0.7, step=0.1)
        lab.toggle("augment", "augment")
        lab.select_slider(
            "early_stopping_patience",
            "early_stopping",
            options=[0, 2, 3, 4, 6, 8, 10],
            format_func=lambda v: t("off") if v == 0 else str(v),
        )
    lab.number("seed", "seed", min_value=0, max_value=99_999, step=1)
    st.button(
        t("new_seed"),
        icon=":material/casino:",
        on_click=lambda: lab.set(seed=random.randint(0, 99_999)),
        help=t("new_seed.help"),
        width="stretch",
    )
    st.caption(t("seed_caption"))


# ---------------------------------------------------------------------------------------------
# Data


@st.cache_data(show_spinner=False, max_entries=16)
def phantom_split(lab_fields: tuple) -> tuple:
    """Data and split for a lab's settings (deterministic, so cached across sessions)."""
    from primer.train import phantom_data, split

    lab = TrainLab(**dict(lab_fields))
    splits = split(phantom_data(lab.phantom_config()), lab.split_config())
    return splits


def lab_fields(lab: TrainLab) -> tuple:
    return tuple(sorted(asdict(lab).items()))


def data_preview(page, lab: TrainLab) -> None:
    """Eight images of the current data set, lesions outlined, with the task's difficulty."""
    from primer.synth import generate

    own = own_data()
    if own is not None:
        data, _ = own
        picks = np.concatenate([np.flatnonzero(data.y.numpy() == c)[:4] for c in range(min(2, len(data.classes)))])
        images, masks = data.x[picks, 0].numpy(), None
        titles = [plot_literal(data.classes[int(data.y[i])]) for i in picks]  # folder names: shown as written
    else:
        preview = generate(lab.phantom_config().replace(n=8, prevalence=0.5))
        order = np.argsort(-preview.labels, kind="stable")
        images, masks = (
            preview.images[order],
            preview.masks[order] if st.session_state.get("training.outline", True) else None,
        )
        titles = [page.t(f"class.{lab.task}.{label}") for label in preview.labels[order]]
    ui.figure(train_figures.image_grid(images, titles, masks), key="training.preview", height=380)
    if own is None:
        st.toggle(page.t("outline"), value=True, key="training.outline")
        from primer.observer import ideal_observer

        if lab.task in ("presence", "ske"):
            st.caption(page.t("difficulty", auc=ideal_observer(lab.phantom_config()).auc))


# ---------------------------------------------------------------------------------------------
# Running


def own_data():
    """(TensorData, report) uploaded in this session and switched on, else None."""
    own = st.session_state.get(OWN)
    return own[1:] if own is not None and st.session_state.get("training.use_own") else None


def session_id() -> str:
    if "training.session" not in st.session_state:
        st.session_state["training.session"] = uuid.uuid4().hex
    return st.session_state["training.session"]


def start(lab: TrainLab) -> None:
    from primer.jobs import training_queue

    current = st.session_state.get(JOB)
    if current is not None and current.epochs:
        st.session_state[PREVIOUS] = current.epochs
    own = own_data()
    data_key = f"own:{session_id()}:{st.session_state[OWN][0]}" if own else "phantom"
    st.session_state[JOB] = training_queue().submit(lab, data=own[0] if own else None, data_key=data_key)


def stop() -> None:
    job = st.session_state.get(JOB)
    if job is not None:
        job.release()


def run_buttons(t, key: str, *, label: str, on_train, train_args: tuple, on_stop, stop_args: tuple, running: bool):
    """A lab's Train and Stop buttons in the first two of three columns; returns the columns (the
    third is for a caption). Every training lab of the app uses this one row."""
    cols = st.columns(3)
    cols[0].button(
        label,
        type="primary",
        icon=":material/play_arrow:",
        on_click=on_train,
        args=train_args,
        disabled=running,
        width="stretch",
        key=f"{key}.train",
    )
    cols[1].button(
        t("stop"),
        icon=":material/stop:",
        on_click=on_stop,
        args=stop_args,
        disabled=not running,
        width="stretch",
        key=f"{key}.stop",
    )
    return cols


def run_panel(page, lab: TrainLab) -> None:
    t = page.t
    job = st.session_state.get(JOB)
    running = job is not None and not job.finished
    cols = run_buttons(
        t, "training", label=t("train"), on_train=start, train_args=(lab,), on_stop=stop, stop_args=(), running=running
    )
    if job is not None and not running and asdict(job.lab) != asdict(lab):
        cols[2].caption(t("settings_changed"))
    live(page, lab, running)


def live(page, lab: TrainLab, running: bool) -> None:
    @st.fragment(run_every=ui.POLL_SECONDS if running else None)
    def panel():
        job = st.session_state.get(JOB)
        if job is None:
            st.info(page.t("press_train"))
            return
        st.markdown(status_line(page, job))
        st.progress(min(1.0, job.progress))
        labels = {
            k: page.t(f"curve.{k}")
            for k in (
                "loss",
                "performance",
                "train_loss",
                "val_loss",
                "train_accuracy",
                "val_accuracy",
                "val_auc",
                "epoch",
                "chance",
                "previous",
            )
        }
        previous = st.session_state.get(PREVIOUS)
        ui.figure(train_figures.curves(job.epochs, job.lab.num_epochs, labels, previous), key="training.curves")
        # a short strip under the curves, on the same epoch axis: the schedule as it ran
        words = {"learning_rate": page.t("curve.learning_rate"), "epoch": labels["epoch"]}
        ui.figure(
            train_figures.learning_rate_curve(job.epochs, job.lab.num_epochs, words, previous),
            key="training.lr_curve",
        )
        st.caption(page.t("curves_caption"))
        if job.finished and st.session_state.get(SHOWN) != job.key:
            st.session_state[SHOWN] = job.key
            if job.state == "done":
                st.session_state[ui.USER_RUN_KEY] = job.result
            st.rerun()

    panel()


def status_line(page, job) -> str:
    t = page.t
    if job.state == "queued":
        return t("status.queued", position=job.position())
    if job.state == "running":
        done = len(job.epochs)
        eta = job.elapsed() / max(job.progress, 1e-3) * (1 - job.progress) if job.progress > 0.02 else None
        return t(
            "status.running",
            epoch=min(done + 1, job.lab.num_epochs),
            total=job.lab.num_epochs,
            elapsed=f"{job.elapsed():.1f}",
        ) + (t("status.eta", eta=f"{eta:.0f}") if eta is not None else "")
    if job.state == "failed":
        return t("status.failed", error=job.error)
    return t(
        f"status.{job.state}", epochs=len(job.epochs), seconds=f"{job.elapsed():.1f}", waited=f"{job.waited():.1f}"
    )


def problem(lab: TrainLab) -> str | None:
    """A setting combination that cannot run, explained; None when it can."""
    if lab.init == "pretrained":
        from primer.default_model import DEFAULT_LAB

        if (lab.model, lab.width) != (DEFAULT_LAB.model, DEFAULT_LAB.width):
            return "problem.pretrained"
        own = own_data()
        if own is not None and len(own[0].classes) != 2:
            return "problem.pretrained_classes"
    patients = lab.num_images // lab.images_per_patient
    if lab.images_per_patient > 1 and patients < 40:
        return "problem.too_few_patients"
    if own_data() is None and min(lab.prevalence, 1 - lab.prevalence) * patients < MIN_CLASS_PATIENTS:
        return "problem.too_few_positives"
    return None


# ---------------------------------------------------------------------------------------------
# Results


def results(page) -> None:
    """The card shown once a run has finished: test metrics touched once, the confusion matrix,
    the split, right and wrong examples, and downloads."""
    job = st.session_state.get(JOB)
    if job is None or job.state != "done":
        if job is not None and job.state == "stopped":
            st.warning(page.t("stopped_note"))
        return
    t, run = page.t, job.result
    history = run.history
    st.subheader(t("results"))
    cols = st.columns(4)
    cols[0].metric(t("test_auc"), f"{run.test_auc:.3f}")
    cols[1].metric(t("test_accuracy"), f"{run.test_accuracy:.1%}")
    if run.fresh_auc is not None:
        cols[2].metric(t("fresh_auc"), f"{run.fresh_auc:.3f}", help=t("fresh_auc.help"))
    best = history.best_epoch or len(history.epochs)
    cols[3].metric(t("epochs_kept"), f"{best} / {len(history.epochs)}", help=t("epochs_kept.help"))
    if history.diverged:
        st.error(t("diverged"))
    if run.leaked_patients:
        st.error(t("leaked", patients=run.leaked_patients))
    if history.stopped_early:
        st.info(t("stopped_early", best=best))
    last = history.epochs[-1]
    if last.train_loss < 0.5 * last.val_loss and last.train_accuracy - last.val_accuracy > 0.1:
        st.warning(t("overfit_hint", train=last.train_accuracy, val=last.val_accuracy))

    left, right = st.columns(2)
    with left:
        matrix = np.zeros((run.num_classes, run.num_classes), dtype=int)
        np.add.at(matrix, (run.test_labels, run.test_probs.argmax(1)), 1)
        st.markdown(f"**{t('confusion')}**")
        ui.figure(
            train_figures.confusion(
                matrix, [plot_literal(c) for c in run.classes], {"called": t("called"), "truth": t("truth")}
            ),
            key="training.confusion",
            height=280,
        )
    with right:
        st.markdown(f"**{t('split_sizes')}**")
        rows = [
            {t("split"): t(f"split_name.{name}"), **{t(f"size.{k}"): v for k, v in size.items()}}
            for name, size in run.sizes.items()
        ]
        st.dataframe(rows, hide_index=True, width="stretch")
        st.caption(t("split_caption"))
    if run.num_classes == 2:
        operating_point(page, run)
    examples(page, job)
    downloads(page, run)


def operating_point(page, run) -> None:
    """Sensitivity and specificity at the 0.5 threshold, the mean predicted probability against
    the true share of positives, and a reliability diagram: what class imbalance and a weighted
    loss change, beyond the AUC."""
    from primer.metrics import reliability_bins
    from primer.train import operating_point as at_threshold

    t = page.t
    point = at_threshold(run.test_labels, run.test_probs)
    left, right = st.columns([1, 1.4])
    with left:
        st.markdown(f"**{t('operating_point')}**")
        st.metric(
            t("sensitivity"),
            percent(point["sensitivity"]),
            help=t("sensitivity.help", tp=point["tp"], positives=point["tp"] + point["fn"]),
        )
        st.metric(
            t("specificity"),
            percent(point["specificity"]),
            help=t("specificity.help", tn=point["tn"], negatives=point["tn"] + point["fp"]),
        )
        st.metric(
            t("mean_probability"),
            f"{point['mean_probability']:.1%}",
            delta=t(
                "mean_probability.delta",
                diff=f"{point['mean_probability'] - point['prevalence']:+.1%}",
                prevalence=f"{point['prevalence']:.1%}",
            ),
            delta_color="off",
            help=t("mean_probability.help", prevalence=point["prevalence"]),
        )
    with right:
        st.markdown(f"**{t('calibration')}**")
        words = {k: t(f"reliability.{k}") for k in ("perfect", "model", "predicted", "observed")}
        bins = reliability_bins(run.test_labels, run.test_probs[:, 1].astype(np.float64))
        ui.figure(train_figures.reliability(bins, words), key="training.reliability", height=280)
        st.caption(t("calibration_caption"))


def percent(value: float) -> str:
    return "—" if not np.isfinite(value) else f"{value:.1%}"


def examples(page, job) -> None:
    """Four confident hits and four misses from the test set."""
    run = job.result
    own = own_data()
    if own is not None:
        test_x = None  # own data: the split is rebuilt from the uploaded tensors
        from primer.train import split

        test_x = split(own[0], run.lab.split_config()).test.x[:, 0].numpy()
    else:
        test_x = phantom_split(lab_fields(run.lab)).test.x[:, 0].numpy()
    called = run.test_probs.argmax(1)
    confidence = run.test_probs.max(1)
    right = np.flatnonzero(called == run.test_labels)
    wrong = np.flatnonzero(called != run.test_labels)
    picks = list(right[np.argsort(-confidence[right])][:4]) + list(wrong[np.argsort(-confidence[wrong])][:4])
    if not picks:
        return
    titles = [
        page.t(
            "example_title",
            truth=plot_literal(run.classes[run.test_labels[i]]),
            p=float(run.test_probs[i, 1] if run.num_classes == 2 else confidence[i]),
            mark="✓" if called[i] == run.test_labels[i] else "✗",
        )
        for i in picks
    ]
    st.markdown(f"**{page.t('examples')}**")
    ui.figure(train_figures.image_grid(test_x[picks], titles), key="training.examples", height=380)
    st.caption(page.t("examples_caption"))


def downloads(page, run) -> None:
    from primer.default_model import checkpoint_bytes

    cols = st.columns(2)
    cols[0].download_button(
        page.t("download_weights"),
        checkpoint_bytes(run),
        file_name="primer-model.pt",
        icon=":material/download:",
        key="training.dl_weights",
    )
    config = json.dumps(
        {"lab": asdict(run.lab), "classes": list(run.classes), "test_auc": run.test_auc}, indent=1, ensure_ascii=False
    )
    cols[1].download_button(
        page.t("download_config"),
        config,
        file_name="primer-config.json",
        mime="application/json",
        icon=":material/data_object:",
        key="training.dl_config",
    )


# ---------------------------------------------------------------------------------------------
# Own data and cross-validation


def own_data_panel(page) -> None:
    from primer.owndata import OwnDataError, load_upload

    with st.expander(page.t("own.title"), icon=":material/upload_file:"):
        st.markdown(page.t("own.help"))
        upload = st.file_uploader(page.t("own.upload"), type=None, key="training.upload")
        if upload is not None and (st.session_state.get(OWN) or (None,))[0] != upload.file_id:
            try:
                data, report = load_upload(upload.name, upload.getvalue())
            except OwnDataError as exc:
                st.session_state.pop(OWN, None)
                st.error(ui.error_message("training", exc.code, **exc.detail))
            else:
                st.session_state[OWN] = (upload.file_id, data, report)
        if upload is None:
            st.session_state.pop(OWN, None)
        own = st.session_state.get(OWN)
        if own is not None:
            _, data, report = own
            classes = ", ".join(ui.literal(c, 64) for c in data.classes)  # folder names (≤ 64 characters), as written
            st.success(page.t("own.loaded", n=len(data), classes=classes))
            per_class = ", ".join(f"{name}: {count}" for name, count in report["per_class"].items())
            skipped = ", ".join(f"{why}: {count}" for why, count in report["skipped"].items()) or "—"
            st.text(page.t("own.report", per_class=per_class, skipped=skipped))
            st.toggle(page.t("own.use"), key="training.use_own", help=page.t("own.use.help"))


def cross_validation_panel(page, lab: TrainLab) -> None:
    from primer.jobs import training_queue

    with st.expander(page.t("cv.title"), icon=":material/view_week:"):
        st.markdown(page.t("cv.help"))
        own = own_data()
        if st.button(page.t("cv.run"), key="training.cv_run", icon=":material/play_arrow:"):
            data_key = f"own:{session_id()}:{st.session_state[OWN][0]}" if own else "phantom"
            st.session_state[CV_JOB] = training_queue().submit(
                lab, data=own[0] if own else None, data_key=data_key, kind="cv"
            )
        job = st.session_state.get(CV_JOB)
        if job is None:
            return

        @st.fragment(run_every=ui.POLL_SECONDS if not job.finished else None)
        def cv_status():
            if not job.finished:
                st.progress(job.progress, text=page.t("cv.running", position=job.position()))
                return
            if st.session_state.get("training.cv_shown") != job.key:
                st.session_state["training.cv_shown"] = job.key
                st.rerun()  # once, to stop polling
            if job.state != "done":
                st.warning(page.t("cv.failed", error=job.error or job.state))
                return
            result = job.result
            folds = " · ".join(f"{a:.3f}" for a in result["fold_aucs"])
            st.metric(page.t("cv.result"), f"{result['mean']:.3f} ± {result['sd']:.3f}")
            st.caption(page.t("cv.folds", k=result["k"], folds=folds))

        cv_status()
