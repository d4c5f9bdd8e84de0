"""Terminology and data requirements: the words of the field, made concrete, and what data a
model needs. Numbers come from primer.terminology (trained curves from its stored data files),
figures from primer.terminology_figures; "recompute live" goes through the training queue.
Each lab is a fragment: moving one of its controls reruns only that lab."""

from functools import partial

import streamlit as st

from app import ui
from app.widgets import live_point
from primer import terminology as term
from primer import terminology_figures as tf
from primer.terminology import TerminologyError

page = ui.ChapterPage("terminology")
WORDS = {key: page.t(f"fig.{key}") for key in tf.EN}
cached = st.cache_data(show_spinner=False, max_entries=16)
task_example, feature_examples = cached(term.task_example), cached(term.feature_examples)
supervised, unsupervised = cached(term.supervised_example), cached(term.unsupervised_example)
self_supervised, split_assignment = cached(term.self_supervised_example), cached(term.split_assignment)
noisy_examples, leak_images = cached(term.noisy_label_examples), cached(term.leak_patient_images)
beta_backgrounds = cached(term.beta_backgrounds)
pct, f3 = "{:.0%}".format, "{:.3f}".format


def label(prefix: str):
    """format_func for option ids: the chapter string "<prefix>.<id>"."""
    return lambda value: page.t(f"{prefix}.{value}")


def show(fig, caption_key: str, **values) -> None:
    """A figure and the sentence saying what it shows."""
    ui.figure(fig, key=f"fig.{caption_key}")
    st.caption(page.t(caption_key, **values))


def metrics(values: dict[str, str]) -> None:
    for col, (label_key, text) in zip(st.columns(len(values)), values.items(), strict=True):
        col.metric(page.t(label_key), text)


def stored(kind: str) -> list[dict] | None:
    """A lab's stored points, or None with a message on the page."""
    try:
        return term.load_points(kind)["points"]
    except TerminologyError as error:
        st.error(ui.error_message("terminology", error.code, **error.detail))
        return None


@st.cache_data(show_spinner=False)
def weak_example():
    model = ui.default_model()
    return term.weak_localization(model.model, model.test.x, model.test.y.numpy(), model.test.mask.numpy())


@st.fragment
def tasks_lab() -> None:
    st.subheader(page.t("tasks.title"))
    lab = page.lab(term.TasksLab)
    lab.presets()
    left, right = st.columns(2)
    with left:
        lab.slider("example", "tasks.example", min_value=0, max_value=30, keep=True)
    with right:
        lab.slider("num_lesions", "tasks.num_lesions", min_value=1, max_value=4)
    state = lab.state()
    phantom = task_example(state.example, state.num_lesions)
    show(tf.task_families(phantom, WORDS), "tasks.caption", n=int(phantom.n_lesions[0]))
    columns = [page.t(k) for k in ("tasks.task", "tasks.label", "tasks.numbers")]
    rows = [(WORDS[t], page.t(f"tasks.label.{t}"), f"{n:,}") for t, n in term.label_sizes(phantom).items()]
    st.dataframe([dict(zip(columns, row, strict=True)) for row in rows], hide_index=True)


@st.fragment
def kinds_lab() -> None:
    st.subheader(page.t("kinds.title"))
    lab = page.lab(term.KindsLab)
    lab.presets()
    kind = lab.segmented("kind", "kinds.kind", options=term.KINDS, format_func=label("kinds"), keep=True)
    if kind in ("supervised", "self_supervised"):
        lab.select_slider("num_labels", "kinds.num_labels", options=term.KIND_LABELS)
    n = lab.state().num_labels
    if kind == "supervised":
        example = supervised(n)
        metrics({"kinds.labels_used": str(len(example.labels)), "kinds.test_auc": f3(example.test_auc)})
        show(tf.supervised_figure(example, WORDS), "kinds.supervised_caption", n=len(example.labels))
    elif kind == "unsupervised":
        example = unsupervised()
        metrics(
            {
                "kinds.ari_pixels": f"{round(example.agreement_pixels, 2) + 0.0:.2f}",
                "kinds.ari_features": f"{round(example.agreement_features, 2) + 0.0:.2f}",
            }
        )
        show(tf.unsupervised_figure(example, WORDS), "kinds.unsupervised_caption")
    elif kind == "self_supervised":
        example = self_supervised(n)
        metrics(
            {
                "kinds.explained": pct(example.explained),
                "kinds.auc_raw": f3(example.auc_raw),
                "kinds.auc_ssl": f3(example.auc_pretrained),
            }
        )
        show(tf.self_supervised_figure(example, WORDS), "kinds.self_supervised_caption", n=example.num_labels)
    else:
        with st.spinner(page.t("kinds.loading_model")):
            example = weak_example()
        metrics({"kinds.hit_rate": pct(example.hit_rate), "kinds.positives": str(example.num_positive)})
        show(tf.weak_figure(example, WORDS), "kinds.weak_caption")


@st.fragment
def features_lab() -> None:
    st.subheader(page.t("feat.title"))
    lab = page.lab(term.FeaturesLab)
    lab.presets()
    left, right = st.columns(2)
    with left:
        lab.select_slider("contrast", "feat.contrast", options=term.FEAT_CONTRASTS, keep=True)
    with right:
        lab.select_slider("beta", "feat.beta", options=term.FEAT_BETAS, keep=True)
    lab.segmented("features", "feat.features", options=term.FEATURE_SETS, format_func=label("feat.set"))
    state, points = lab.state(), stored("feat")
    point = term.find_point(points or [], contrast=state.contrast, beta=state.beta)
    if points is None:
        return
    if point is None:
        st.warning(page.t("not_computed"))
        return
    ideal, hand, cnn = point["ideal_auc"], point[f"hand_{state.features}_auc"], point["test_auc"]
    coefficients = point[f"hand_{state.features}_coefficients"]
    left, right = st.columns(2)
    with left:
        show(tf.features_bars(ideal, hand, cnn, WORDS), "feat.bars_caption", ideal=ideal, hand=hand, cnn=cnn)
        names = {name: page.t(f"feat.name.{name}") for name in coefficients}
        show(tf.feature_weights(coefficients, names, WORDS), "feat.weights_caption")
    with right:
        sweep = tf.features_sweep(points, state.beta, state.contrast, state.features, WORDS)
        show(sweep, "feat.sweep_caption", beta=state.beta)
        show(tf.feature_examples(feature_examples(state.contrast, state.beta), WORDS), "feat.examples_caption")
    params = {"contrast": state.contrast, "beta": state.beta}
    live_point.button(
        page,
        key="feat",
        make_setup=partial(term.feat_setup, state.contrast, state.beta),
        stored=point,
        fields={"test_auc": page.t("feat.cnn_auc")},
        params=params,
    )


@st.fragment
def curve_lab() -> None:
    st.subheader(page.t("curve.title"))
    lab = page.lab(term.CurveLab)
    lab.presets()
    left, right = st.columns([2, 1])
    with left:
        lab.select_slider(
            "num_train", "curve.num_train", options=term.CURVE_SIZES, format_func="{:,}".format, keep=True
        )
    with right:
        lab.toggle("show_hand", "curve.show_hand")
    state, points = lab.state(), stored("curve")
    if points is None:
        return
    summary = term.curve_summary(points)
    if state.num_train not in summary.sizes:
        st.warning(page.t("not_computed"))
        return
    i = summary.sizes.index(state.num_train)
    mean, sd = summary.mean, summary.sd
    metrics(
        {
            "curve.cnn": f"{mean['test_auc'][i]:.3f} ± {sd['test_auc'][i]:.3f}",
            "curve.hand": f"{mean['hand_prewhitened_auc'][i]:.3f} ± {sd['hand_prewhitened_auc'][i]:.3f}",
            "curve.val": f3(mean["val_auc"][i]),
        }
    )
    figure = tf.learning_curve(summary, state.num_train, state.show_hand, term.ideal_auc(2.5, 3.0), WORDS)
    show(figure, "curve.caption", seeds=summary.seeds, n=f"{state.num_train:,}")
    params = {"num_train": state.num_train, "seed": 0}
    live_point.button(
        page,
        key="curve",
        make_setup=partial(term.curve_setup, state.num_train, 0),
        stored=term.find_point(points, **params),
        fields={"test_auc": page.t("curve.test_auc"), "val_auc": page.t("curve.val_auc")},
        params=params,
    )


@st.fragment
def noise_lab() -> None:
    st.subheader(page.t("noise.title"))
    lab = page.lab(term.NoiseLab)
    lab.presets()
    left, right = st.columns([1, 2])
    with left:
        kind = lab.segmented("kind", "noise.kind", options=term.NOISE_KINDS, format_func=label("noise.kind"))
    rates = term.NOISE_RATES[kind]
    current = st.session_state.get(lab.key("rate"))
    if current is not None and current not in rates:  # the two kinds offer different rates
        lab.set(rate=min(rates, key=lambda r: abs(r - current)))
    with right:
        lab.select_slider("rate", "noise.rate", options=rates, format_func=pct, keep=True)
    rate, points = lab.state().rate, stored("noise")
    if points is None:
        return
    summary = term.noise_summary(points, kind)
    if rate not in summary["rate"]:
        st.warning(page.t("not_computed"))
        return
    i = summary["rate"].index(rate)
    shown = {
        "clean": "test_auc",
        "noisy": "noisy_reference_auc",
        "sensitivity": "sensitivity",
        "specificity": "specificity",
    }
    metrics({f"noise.{label}": f3(summary[name][i]) for label, name in shown.items()})
    show(tf.noise_curve(summary, kind, rate, WORDS), f"noise.caption.{kind}")
    show(tf.noisy_examples(*noisy_examples(kind, rate), WORDS), "noise.examples_caption")
    params = {"kind": kind, "rate": float(rate), "seed": 0}
    live_point.button(
        page,
        key="noise",
        make_setup=partial(term.noise_setup, kind, rate, 0),
        stored=term.find_point(points, **{**params, "kind": "random" if rate == 0 else kind}),
        fields={name: page.t(f"noise.{label}") for label, name in shown.items() if label != "specificity"},
        params=params,
    )


@st.fragment
def imbalance_lab() -> None:
    st.subheader(page.t("imbal.title"))
    lab = page.lab(term.ImbalanceLab)
    lab.presets()
    left, right = st.columns([2, 1])
    with left:
        lab.select_slider("prevalence", "imbal.prevalence", options=term.IMBAL_PREVALENCES, format_func=pct, keep=True)
    with right:
        lab.segmented("fix", "imbal.fix", options=term.IMBAL_FIXES, format_func=label("imbal.fix"), keep=True)
    state, points = lab.state(), stored("imbal")
    if points is None:
        return
    reports = term.imbalance_reports(points, state.fix)
    current = next((r for r in reports if r["prevalence"] == state.prevalence), None)
    if current is None:
        st.warning(page.t("not_computed"))
        return
    shown = {"accuracy": pct, "all_normal_accuracy": pct, "auc": f3, "sensitivity": pct, "specificity": pct}
    metrics({f"imbal.{name.replace('_accuracy', '')}": fmt(current[name]) for name, fmt in shown.items()})
    threshold = f"{current['threshold_probability']:.2f}"
    show(
        tf.imbalance_curve(reports, state.prevalence, WORDS),
        f"imbal.caption.{state.fix}",
        positives=current["positives"],
        threshold=threshold,
    )


@st.fragment
def leakage_lab() -> None:
    st.subheader(page.t("leak.title"))
    lab = page.lab(term.LeakageLab)
    lab.presets()
    options = term.LEAK_IMAGES_PER_PATIENT
    k = lab.select_slider("images_per_patient", "leak.images_per_patient", options=options, keep=True)
    show(tf.patient_images(leak_images(k), WORDS), "leak.patient_caption", k=k)
    for col, split_by in zip(st.columns(2), term.LEAK_SPLITS, strict=True):
        with col:
            st.markdown(f"**{page.t(f'leak.by.{split_by}')}**")
            show(tf.split_assignment(split_assignment(k, split_by), WORDS), f"leak.assign_caption.{split_by}")
    points = stored("leak")
    if points is None:
        return
    by_image, by_patient = (term.find_point(points, images_per_patient=k, split_by=s) for s in term.LEAK_SPLITS)
    if by_image is None or by_patient is None:
        st.warning(page.t("not_computed"))
        return
    values = {"val": by_image["val_auc"], "fresh": by_image["fresh_auc"], "leaked": by_image["leaked_patients"]}
    values["patients"] = term.leak_validation_patients(k)
    show(tf.leak_bars(by_image, by_patient, WORDS), "leak.bars_caption", **values)
    live_point.button(
        page,
        key="leak",
        make_setup=partial(term.leak_setup, k, "image"),
        stored=by_image,
        fields={"val_auc": page.t("leak.val_auc"), "fresh_auc": page.t("leak.fresh_auc")},
        params={"images_per_patient": k, "split_by": "image", "seed": 0},
    )


page.lesson("intro")
show(tf.ai_ml_dl_diagram(WORDS), "diagram_caption")
page.lesson("tasks")
tasks_lab()
page.lesson("kinds")
kinds_lab()
page.lesson("learning")
show(tf.beta_backgrounds(beta_backgrounds(), term.BETA_PICTURE, WORDS), "beta_caption")
features_lab()
page.lesson("parameters")
page.lesson("data_size")
curve_lab()
page.lesson("labels")
noise_lab()
page.lesson("imbalance")
imbalance_lab()
page.lesson("curation")
page.lesson("splits")
leakage_lab()
page.quiz()
