"""Performance metrics: threshold, prevalence, ROC, calibration, overlap and detection labs.

Each lab is a fragment: moving one of its controls reruns only that lab. Numbers come from
primer.metrics, primer.segdet and primer.metrics_labs; figures from primer.metrics_figures.
"""

from dataclasses import asdict

import streamlit as st

from app import ui
from primer import metrics
from primer import metrics_figures as mf
from primer import metrics_labs as ml
from primer.metrics import MetricsError
from primer.observer import ideal_observer
from primer.train import TrainLab

page = ui.ChapterPage("metrics")
WORDS = {key: page.t(f"fig.{key}") for key in mf.EN}
pct = "{:.1%}".format


def tr(prefix: str):
    return lambda key: page.t(f"{prefix}.{key}")


def show(fig, caption_key: str, **values) -> None:
    """A figure and the plain-language sentence saying what it shows."""
    ui.figure(fig, key=f"fig.{caption_key}")
    st.caption(page.t(caption_key, **values))


def metric_row(values: dict, prefix: str) -> None:
    for col, (name, value) in zip(st.columns(len(values)), values.items(), strict=True):
        col.metric(page.t(f"{prefix}{name}"), value if isinstance(value, str) else mf._fmt(value, 3))


def controls(lab, specs: list, columns: int | list = 3) -> None:
    """Widgets laid out in columns: (widget, field, keep, keyword arguments); label key = field."""
    cols = st.columns(columns)
    for i, (widget, field, keep, kwargs) in enumerate(specs):
        with cols[i % len(cols)]:
            getattr(lab, widget)(field, field, keep=keep, **kwargs)


def table(columns: dict, prefix: str) -> None:
    st.dataframe({page.t(f"{prefix}{name}"): values for name, values in columns.items()}, hide_index=True)


def fail(error: MetricsError) -> None:
    st.error(ui.error_message("metrics", error.code, **error.detail))


@st.cache_data(show_spinner=False, max_entries=8)
def observers(lab_fields: dict) -> dict:
    return ml.handcrafted_sources(TrainLab(**lab_fields))


@st.cache_data(show_spinner=False, max_entries=8)
def ideal_estimate(lab_fields: dict):
    return ml.ideal_observer_estimate(TrainLab(**lab_fields).phantom_config())


@st.cache_data(show_spinner=False, max_entries=32)
def auc_interval(labels, scores, method: str, confidence: float, resamples: int):
    if method == "bootstrap":
        return metrics.bootstrap_auc_ci(labels, scores, confidence, num_resamples=resamples)
    return metrics.delong_auc_ci(labels, scores, confidence)


@st.cache_data(show_spinner=False, max_entries=16)
def fixed_curves(labels, scores):
    """What the threshold does not change: Youden's best threshold, the ROC and PR curves."""
    youden = metrics.ThresholdSweep(labels, scores).youden_optimal_threshold()
    return youden, metrics.roc(labels, scores), metrics.precision_recall(labels, scores)


@st.cache_data(show_spinner=False, max_entries=32)
def detections(jitter: float, fp_rate: float, miss_rate: float, seed: int) -> ml.DetectionSet:
    lab = ml.FrocLab(jitter=jitter, fp_rate=fp_rate, miss_rate=miss_rate, seed=seed)
    return ml.simulate_detections(ml.det_phantoms(), lab)


cached = st.cache_data(show_spinner=False, max_entries=32)
roc_band, fitted_temperature, seg_case = cached(ml.roc_band), cached(metrics.fit_temperature), cached(ml.seg_case)

# Which scores: the shipped model or the one trained in the training lab ---------------------

page.lesson("intro")
thr = page.lab(ml.ThresholdLab)
choice = thr.segmented("source", "source", options=["default", "user"], keep=True, format_func=tr("source"))
default, run = ui.default_model(), ui.user_run()
models = {"default": ml.default_source(default)}
try:
    models |= {"user": ml.run_source(run)} if run is not None else {}
except MetricsError as error:  # e.g. a model trained on three classes: say so, keep the default
    fail(error)
if choice == "user" and run is None:
    st.info(page.t("source.no_run"))
source = models.get(choice, models["default"])
model_lab = run.lab if source.key == "user" else default.lab
st.caption(page.t("source.cases", n=len(source.test_labels), positives=int(source.test_labels.sum())))
page.lesson("confusion")


@st.fragment
def threshold_and_prevalence() -> None:
    labels, scores = source.test_labels, source.test_scores
    try:
        sweep = metrics.ThresholdSweep(labels, scores)
        youden, roc, pr = fixed_curves(labels, scores)
    except MetricsError as error:
        return fail(error)
    st.subheader(page.t("thr.title"))
    thr.presets()
    slider, button = st.columns([5, 2], vertical_alignment="bottom")
    with slider:
        threshold = thr.slider("threshold", "threshold", min_value=0.0, max_value=1.0, step=0.01, keep=True)
    button.button(
        page.t("youden_button", value=youden), on_click=lambda: thr.set(threshold=round(youden, 2)), key="youden"
    )
    conf, rates = sweep.confusion(threshold), sweep.rates(threshold)
    metric_row(asdict(rates), "rate.")
    curve = {"name": f"AUC = {roc.auc:.3f}", "fpr": roc.fpr, "tpr": roc.tpr}
    left, right = st.columns(2)
    with left:
        show(mf.confusion_figure(conf, WORDS), "thr.confusion_caption", **asdict(conf))
        show(mf.roc_figure([curve], operating_point=sweep.operating_point(threshold), words=WORDS), "thr.roc_caption")
    with right:
        show(mf.score_histogram(scores, labels, threshold, words=WORDS), "thr.hist_caption")
        point = (rates.sensitivity, rates.ppv)
        show(mf.pr_figure(pr, operating_point=point, words=WORDS), "thr.pr_caption", prevalence=pct(pr.prevalence))

    page.lesson("prevalence")
    st.subheader(page.t("prev.title"))
    prev = page.lab(ml.PrevalenceLab)
    prev.presets()
    levels = ml.PREVALENCE_LEVELS_PCT
    prevalence = prev.select_slider(
        "prevalence_pct", "prevalence", options=levels, keep=True, format_func="{:g}%".format
    )
    try:
        bayes = metrics.bayes_terms(rates.sensitivity, rates.specificity, prevalence / 100)
        expected = ml.per_1000(metrics.reweight_to_prevalence(conf, prevalence / 100))
    except MetricsError as error:
        return fail(error)
    st.markdown(page.t("prev.story", **ml.bayes_story(bayes, rates.ppv)))
    st.latex(ml.bayes_latex(bayes))
    left, right = st.columns(2)
    with left:
        show(mf.confusion_figure(expected, WORDS, decimals=1), "prev.confusion_caption")
    with right:
        curves = mf.prevalence_figure(
            rates.sensitivity, rates.specificity, prevalence / 100, labels.mean(), words=WORDS
        )
        show(curves, "prev.curve_caption")


threshold_and_prevalence()
page.lesson("roc")


@st.fragment
def roc_lab() -> None:
    st.subheader(page.t("roc.title"))
    lab = page.lab(ml.RocLab)
    lab.presets()
    bootstrap = lab.state().ci_method == "bootstrap"
    controls(
        lab,
        [
            ("selectbox", "comparator", True, dict(options=ml.COMPARATORS, format_func=tr("reader"))),
            ("segmented", "ci_method", False, dict(options=["delong", "bootstrap"], format_func=tr("ci"))),
            ("select_slider", "confidence", False, dict(options=ml.CONFIDENCE_LEVELS, format_func=pct)),
            (
                "select_slider",
                "num_resamples",
                False,
                dict(options=[200, 500, 1000, 2000, 5000], disabled=not bootstrap),
            ),
        ],
        columns=[3, 2, 2, 2],
    )
    s = lab.state()
    labels, scores, level = source.test_labels, source.test_scores, pct(s.confidence)
    try:
        interval = auc_interval(labels, scores, s.ci_method, s.confidence, s.num_resamples)
        band = roc_band(labels, scores, s.confidence)
        other, reason = ml.choose_comparator(s.comparator, source, models, observers(asdict(model_lab)))
        readers = [source] + ([other] if other is not None else [])
        curves = [
            {"name": page.t(f"reader.{r.key}"), **asdict(metrics.roc(r.test_labels, r.test_scores))} for r in readers
        ]
        test = other and metrics.delong_test(labels, scores, other.test_scores, s.confidence)
    except MetricsError as error:
        return fail(error)
    numbers = {name: getattr(interval, name) for name in ("auc", "low", "high", "standard_error")}
    st.markdown(page.t("roc.interval", **numbers, level=level, method=page.t(f"ci.{s.ci_method}")))
    left, right = st.columns(2)
    with left:
        band_words = {**WORDS, "band": page.t("fig.band_level", level=level)}
        show(mf.roc_figure(curves, band=band, words=band_words), "roc.curve_caption")
    with right:
        if other is None:
            st.info(page.t(f"roc.{reason}"))
        else:
            names = {"a": page.t(f"reader.{source.key}"), "b": page.t(f"reader.{other.key}")}
            st.markdown(page.t("roc.paired", **asdict(test), **names, n=len(labels), level=level))
            st.caption(page.t("roc.paired_note"))
        if s.ci_method == "bootstrap":
            delong = auc_interval(labels, scores, "delong", s.confidence, 0)
            show(mf.bootstrap_figure(interval, delong, words=WORDS), "roc.bootstrap_caption")
    ideal_panel(interval)


def ideal_panel(interval: metrics.AucInterval) -> None:
    """The model's AUC beside the ideal observer's (Monte Carlo, location unknown) and the exact
    known-location ceiling, with the two simpler hand-crafted readers for scale."""
    st.markdown(f"**{page.t('ideal.title')}**")
    found = observers(asdict(model_lab))
    if "ideal" not in found or ml.pairing(source, found["ideal"]) is not None:
        return st.info(page.t("ideal.unavailable"))
    with st.spinner(page.t("ideal.computing")):
        estimate = ideal_estimate(asdict(model_lab))
    ske = ideal_observer(model_lab.phantom_config())
    items = [{"name": page.t(f"reader.{source.key}"), **asdict(interval)}]
    items.append(
        {"name": page.t("reader.ideal_fresh", n=estimate.num_images), **asdict(estimate.interval), "color": mf.TP_COLOR}
    )
    for key in ("scan", "max_pixel"):
        ci = metrics.delong_auc_ci(found[key].test_labels, found[key].test_scores)
        items.append({"name": page.t(f"reader.{key}"), **asdict(ci), "color": mf.OTHER_COLOR})
    left, right = st.columns([3, 2])
    with left:
        fig = mf.auc_comparison_figure(items, ceiling=ske.auc, ceiling_label=page.t("ideal.ske_label"), words=WORDS)
        show(fig, "ideal.caption")
    right.markdown(
        page.t(
            "ideal.text",
            model=interval.auc,
            ideal=estimate.interval.auc,
            low=estimate.interval.low,
            high=estimate.interval.high,
            ske=ske.auc,
            d=ske.d_prime,
            n=estimate.num_images,
        )
    )


roc_lab()
page.lesson("calibration")


@st.fragment
def calibration_lab() -> None:
    st.subheader(page.t("calib.title"))
    lab = page.lab(ml.CalibrationLab)
    lab.presets()
    manual = lab.state().temperature_mode == "manual"
    modes = ["none", "fitted", "manual"]
    controls(
        lab,
        [
            ("segmented", "temperature_mode", True, dict(options=modes, format_func=tr("temperature_mode"))),
            ("select_slider", "temperature", False, dict(options=ml.TEMPERATURES, disabled=not manual)),
            ("select_slider", "num_bins", False, dict(options=[5, 10, 15, 20])),
        ],
    )
    s = lab.state()
    labels, logits = source.test_labels, source.test_logits
    try:
        fitted = fitted_temperature(source.val_logits, source.val_labels)
        temperature = {"none": 1.0, "fitted": fitted, "manual": s.temperature}[s.temperature_mode]
        before, after = (ml.calibration_summary(labels, logits, t, s.num_bins) for t in (1.0, temperature))
        bins = [
            metrics.reliability_bins(labels, metrics.apply_temperature(logits, t), s.num_bins)
            for t in (1.0, temperature)
        ]
    except MetricsError as error:
        return fail(error)
    st.markdown(page.t("calib.temperature", fitted=fitted, used=temperature))
    st.caption(page.t(f"calib.verdict.{ml.temperature_verdict(fitted)}"))
    left, right = st.columns([3, 2])
    with left:
        after_bins = bins[1] if s.temperature_mode != "none" else None
        show(mf.reliability_figure(bins[0], after_bins, words=WORDS), "calib.caption")
    with right:
        table(
            {
                "metric": [page.t(f"calib.{k}") for k in before],
                "before": [f"{v:.4f}" for v in before.values()],
                "after": [f"{v:.4f}" for v in after.values()],
            },
            "calib.col.",
        )
        st.caption(page.t("calib.table_caption"))


calibration_lab()
page.lesson("segmentation")


@st.fragment
def overlap_lab() -> None:
    st.subheader(page.t("ovl.title"))
    lab = page.lab(ml.OverlapLab)
    lab.presets()
    controls(
        lab,
        [
            ("slider", "grow", True, dict(min_value=-3, max_value=3)),
            ("slider", "shift_x", False, dict(min_value=-4, max_value=4)),
            ("slider", "shift_y", False, dict(min_value=-4, max_value=4)),
            ("toggle", "blob", True, {}),
            ("slider", "blob_radius", False, dict(min_value=1, max_value=8)),
            ("slider", "case", False, dict(min_value=0, max_value=19)),
        ],
    )
    s = lab.state()
    image, instances = seg_case(s.case)
    report = ml.overlap_report(instances, ml.perturbed_prediction(instances > 0, s))
    pixels = f"{report.true_positive} / {report.false_positive} / {report.false_negative}"
    values = {"dice": report.dice, "iou": report.iou, "hd95": report.hd95, "hausdorff": report.hausdorff}
    metric_row(values | {"pixels": pixels}, "ovl.")
    left, right = st.columns(2)
    with left:
        show(mf.overlap_figure(image, report.overlap, words=WORDS), "ovl.map_caption")
    with right:
        table(ml.lesion_table(report), "ovl.col.")
        st.caption(page.t("ovl.table_caption"))
        radii, dice_values = ml.dice_by_radius(s)
        lesion_radii = [r.radius for r in report.lesions]
        show(mf.dice_radius_figure(radii, dice_values, lesion_radii, words=WORDS), "ovl.radius_caption")


overlap_lab()
page.lesson("detection")


@st.fragment
def froc_lab() -> None:
    st.subheader(page.t("froc.title"))
    lab = page.lab(ml.FrocLab)
    lab.presets()
    controls(
        lab,
        [
            ("slider", "iou_threshold", True, dict(min_value=0.1, max_value=0.9, step=0.05)),
            ("slider", "jitter", False, dict(min_value=0.0, max_value=0.5, step=0.01)),
            ("slider", "fp_rate", False, dict(min_value=0.0, max_value=4.0, step=0.25)),
            ("slider", "score_threshold", True, dict(min_value=0.0, max_value=1.0, step=0.01)),
            ("slider", "miss_rate", False, dict(min_value=0.0, max_value=0.5, step=0.05)),
            ("slider", "seed", False, dict(min_value=0, max_value=20)),
        ],
    )
    s = lab.state()
    dets = detections(s.jitter, s.fp_rate, s.miss_rate, s.seed)
    report = ml.detection_report(dets, s.iou_threshold, s.score_threshold)
    metric_row(
        {
            "ap": report.pr.average_precision,
            "cpm": report.froc.cpm,
            "recall": report.recall_at,
            "precision": report.precision_at,
            "fppi": report.fp_per_image_at,
        },
        "froc.",
    )
    at_point = (report.recall_at, report.precision_at)
    left, right = st.columns(2)
    with left:
        i = lab.slider("image", "image", min_value=0, max_value=len(dets.images) - 1)
        hits = ml.image_verdicts(dets, i, s.iou_threshold).is_true_positive
        boxes = (dets.true_boxes[i], dets.pred_boxes[i], dets.pred_scores[i], hits)
        show(mf.boxes_figure(dets.images[i], *boxes, s.score_threshold, words=WORDS), "froc.boxes_caption")
    with right:
        froc_point = (report.fp_per_image_at, report.recall_at)
        show(mf.froc_figure(report.froc, operating_point=froc_point, words=WORDS), "froc.froc_caption")
        table(
            {
                "level": [f"{v:g}" for v in report.froc.fp_levels],
                "sensitivity": [f"{v:.3f}" for v in report.froc.sensitivity_at_levels],
            },
            "froc.col.",
        )
    show(mf.detection_pr_figure(report.pr, operating_point=at_point, words=WORDS), "froc.pr_caption")


froc_lab()
page.lesson("reporting")
page.lesson("exam")
page.quiz()
