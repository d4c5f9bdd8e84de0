"""The performance-metrics page in AppTest: every lab's controls move the numbers they should.

Expected values come from independent computations (scikit-learn, NumPy counting, Bayes by
hand), never from the page's own output.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from sklearn.metrics import confusion_matrix, roc_auc_score

from app.ui import USER_RUN_KEY
from primer.default_model import load_default
from tests.conftest import assert_no_exception, run_page

PAGE = "views/metrics.py"


@pytest.fixture(scope="module")
def default():
    return load_default()


@pytest.fixture(scope="module")
def page():
    at = run_page(PAGE)
    assert_no_exception(at)
    return at


def metric(at, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def markdown_with(at, text: str) -> str:
    """The first markdown block of a lab (not a lesson) that contains `text`."""
    return next(m.value for m in at.markdown if text in m.value and "glossary?term" not in m.value)


def fake_run(default, *, probs=None, labels=None, seed=None):
    """A stand-in for a training-lab RunResult: only the fields the metrics page reads."""
    lab = default.lab if seed is None else type(default.lab)(**{**default.lab.__dict__, "seed": seed})
    return SimpleNamespace(
        lab=lab,
        test_labels=default.test.y.numpy() if labels is None else labels,
        test_probs=default.test_probs if probs is None else probs,
        val_labels=default.splits.val.y.numpy(),
        val_probs=default.val_probs,
    )


def test_threshold_moves_every_rate_like_counting_by_hand(page, default):
    y, p = default.test.y.numpy(), default.test_probs[:, 1]
    for threshold in (0.5, 0.9):
        page.slider(key="thr.threshold").set_value(threshold).run()
        assert_no_exception(page)
        tn, fp, fn, tp = confusion_matrix(y, p >= threshold).ravel()
        assert metric(page, "Sensitivity") == f"{tp / (tp + fn):.3f}"
        assert metric(page, "Specificity") == f"{tn / (tn + fp):.3f}"
        assert metric(page, "PPV") == f"{tp / (tp + fp):.3f}"
        assert metric(page, "F1") == f"{2 * tp / (2 * tp + fp + fn):.3f}"
        assert any(f"{tp} lesions found, {fn} missed" in c.value for c in page.caption)


def test_youden_button_sets_the_best_threshold(default):
    at = run_page(PAGE)
    at.button(key="youden").click().run()
    y, p = default.test.y.numpy(), default.test_probs[:, 1]
    candidates = np.unique(p)
    j = [((p >= c) & (y == 1)).sum() / (y == 1).sum() + ((p < c) & (y == 0)).sum() / (y == 0).sum() for c in candidates]
    best = candidates[::-1][int(np.argmax(j[::-1]))]  # the highest threshold among ties
    assert at.slider(key="thr.threshold").value == pytest.approx(round(float(best), 2))


def test_prevalence_slider_changes_ppv_by_bayes_but_not_sensitivity(page, default):
    page.slider(key="thr.threshold").set_value(0.5).run()
    y, p = default.test.y.numpy(), default.test_probs[:, 1]
    sens = ((p >= 0.5) & (y == 1)).sum() / (y == 1).sum()
    spec = ((p < 0.5) & (y == 0)).sum() / (y == 0).sum()
    for prevalence in (1.0, 30.0):
        page.select_slider(key="prev.prevalence_pct").set_value(prevalence).run()
        assert_no_exception(page)
        prev = prevalence / 100
        ppv = sens * prev / (sens * prev + (1 - spec) * (1 - prev))
        story = markdown_with(page, "1,000 people")
        assert "PPV = " in story and f"{ppv:.1%}" in story
        assert metric(page, "Sensitivity") == f"{sens:.3f}"


def test_roc_lab_interval_comparators_and_bootstrap(default):
    at = run_page(PAGE)
    y, p = default.test.y.numpy(), default.test_probs[:, 1]
    assert f"AUC {roc_auc_score(y, p):.3f}" in markdown_with(at, "confidence interval **")
    assert "Paired DeLong test" in markdown_with(at, "Ideal observer")  # the default comparator
    charts = len(at.get("plotly_chart"))
    at.selectbox(key="roc.comparator").set_value("max_pixel").run()
    assert "Brightest pixel" in markdown_with(at, "Paired DeLong test")
    at.button_group(key="roc.ci_method").set_value("bootstrap").run()
    assert_no_exception(at)
    assert "Bootstrap" in markdown_with(at, "confidence interval **")
    assert len(at.get("plotly_chart")) == charts + 1, "the bootstrap histogram appears"
    at.selectbox(key="roc.comparator").set_value("other_model").run()
    assert any("no second model" in i.value for i in at.info)


def test_user_run_on_the_same_cases_is_paired_and_a_different_one_is_not(default):
    rng = np.random.default_rng(0)
    noisy = np.clip(default.test_probs[:, 1] + rng.normal(0, 0.2, len(default.test_probs)), 0.001, 0.999)
    probs = np.stack([1 - noisy, noisy], axis=1)
    same = run_page(
        PAGE,
        state={USER_RUN_KEY: fake_run(default, probs=probs), "thr.source": "user", "roc.comparator": "other_model"},
    )
    assert_no_exception(same)
    paired = markdown_with(same, "Paired DeLong test")
    assert "Your model" in paired and "Default model" in paired
    assert f"AUC {roc_auc_score(default.test.y.numpy(), noisy):.3f}" in markdown_with(same, "confidence interval **")
    other = run_page(
        PAGE,
        state={
            USER_RUN_KEY: fake_run(default, labels=default.test.y.numpy()[::-1].copy(), seed=3),
            "roc.comparator": "other_model",
        },
    )
    assert any("not tested on the same cases" in i.value for i in other.info)


def test_no_run_yet_shows_the_default_model_with_a_note(default):
    at = run_page(PAGE, state={"thr.source": "user"})
    assert_no_exception(at)
    assert any("not trained a model" in i.value for i in at.info)
    assert f"AUC {roc_auc_score(default.test.y.numpy(), default.test_probs[:, 1]):.3f}" in markdown_with(
        at, "confidence interval **"
    )


def test_bad_runs_get_translated_messages_and_the_rest_keeps_working(default):
    broken = default.test_probs.copy()
    broken[0] = np.nan
    at = run_page(PAGE, state={USER_RUN_KEY: fake_run(default, probs=broken), "thr.source": "user"})
    assert_no_exception(at)
    assert any("not numbers" in e.value for e in at.error)
    assert metric(at, "Dice") == "1.000", "the segmentation lab still works"
    three_classes = fake_run(default, probs=np.full((len(default.test_probs), 3), 1 / 3))
    at = run_page(PAGE, state={USER_RUN_KEY: three_classes, "thr.source": "user"})
    assert_no_exception(at)
    assert any("more than two classes" in e.value for e in at.error)
    assert metric(at, "Sensitivity"), "the default model's numbers are shown instead"
    one_class = fake_run(default, labels=np.ones_like(default.test.y.numpy()))
    at = run_page(PAGE, query={"lang": "中文"}, state={USER_RUN_KEY: one_class, "thr.source": "user"})
    assert_no_exception(at)
    assert any("两类病例" in e.value for e in at.error)


def test_calibration_temperature_changes_ece_but_never_auc():
    at = run_page(PAGE)
    at.button_group(key="calib.temperature_mode").set_value("manual").run()
    at.select_slider(key="calib.temperature").set_value(0.33).run()
    assert_no_exception(at)
    table = next(df.value for df in at.dataframe if "Measure" in df.value.columns)
    rows = dict(zip(table["Measure"], zip(table["Before scaling"], table["After scaling"], strict=True), strict=True))
    assert float(rows["Expected calibration error"][1]) > float(rows["Expected calibration error"][0])
    assert rows["AUC"][0] == rows["AUC"][1]
    assert "T = 0.33" in markdown_with(at, "Applied now")


def test_overlap_lab_grow_and_stray_blob():
    at = run_page(PAGE)
    at.slider(key="ovl.grow").set_value(1).run()
    dice_grown = float(metric(at, "Dice"))
    assert 0.5 < dice_grown < 1.0
    at.slider(key="ovl.grow").set_value(0).run()
    at.toggle(key="ovl.blob").set_value(True).run()
    assert_no_exception(at)
    assert float(metric(at, "Dice")) > 0.95, "a small blob barely moves Dice"
    assert float(metric(at, "Hausdorff (pixels)")) > 15, "but the Hausdorff distance jumps"
    table = next(df.value for df in at.dataframe if "Lesion" in df.value.columns)
    assert list(table["Area (px)"]) == sorted(table["Area (px)"]), "smallest lesion first"


def test_detection_lab_stricter_iou_lowers_ap():
    at = run_page(PAGE)
    ap_loose = float(metric(at, "Average precision"))
    at.slider(key="froc.iou_threshold").set_value(0.8).run()
    assert_no_exception(at)
    assert float(metric(at, "Average precision")) < ap_loose
    at.slider(key="froc.fp_rate").set_value(3.0).run()
    at.slider(key="froc.image").set_value(5).run()
    assert_no_exception(at)
    assert float(metric(at, "False positives / image")) > 0


def test_presets_apply(page):
    page.selectbox(key="presetpick.ovl").set_value("stray_blob").run()
    page.button(key="presetapply.ovl").click().run()
    assert page.toggle(key="ovl.blob").value is True
    page.selectbox(key="presetpick.froc").set_value("strict").run()
    page.button(key="presetapply.froc").click().run()
    assert page.slider(key="froc.iou_threshold").value == pytest.approx(0.7)
