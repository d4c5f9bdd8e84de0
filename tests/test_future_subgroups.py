"""The subgroups lab's core against independent computations, the lesson's numbers, and its page."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import confusion_matrix, roc_auc_score

from primer import future_subgroups as fsg
from primer.explain import wilson_interval


def fake_model(n: int = 600, seed: int = 0) -> fsg.MixtureModel:
    """Random labels, groups and scores, as the trained model would leave them (no training)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    hospital = rng.choice(["h1", "h2", "h3"], n)
    radius = np.where(labels == 1, rng.uniform(2, 6, n), 0.0)
    probs = np.clip(0.3 * labels + rng.random(n) * 0.7, 0, 1)
    pool = fsg.TestPool(torch.zeros(n, 1, 2, 2), labels, hospital, hospital == "h3", radius)
    val_labels = rng.integers(0, 2, 200)
    val_probs = np.clip(0.3 * val_labels + rng.random(200) * 0.7, 0, 1)
    return fsg.MixtureModel({}, None, [], 0.05, val_labels, val_probs, pool, probs, 0.0)


@pytest.mark.parametrize("grouping", fsg.GROUPINGS)
@pytest.mark.parametrize("rule", fsg.RULES)
def test_subgroup_rates_and_auc_match_sklearn_on_each_subset(grouping, rule):
    model = fake_model()
    report = fsg.subgroup_report(model, grouping, rule)
    labels, probs, pool = model.test.labels, model.test_probs, model.test
    # Subsets by hand, independently of subgroup_masks.
    size_bin = np.select([pool.radius < 3.33, pool.radius < 4.67], [0, 1], 2)
    by_hand = {
        "scanner": {"a": pool.hospital != "h3", "b": pool.hospital == "h3"},
        "hospital": {h: pool.hospital == h for h in ("h1", "h2", "h3")},
        "size": {s: (labels == 0) | ((labels == 1) & (size_bin == k)) for k, s in enumerate(fsg.SIZES)},
    }[grouping]
    assert [r.name for r in report.rows] == list(by_hand)
    for r in report.rows:
        m = by_hand[r.name]
        called = (probs[m] >= report.threshold).astype(int)
        tn, fp, fn, tp = confusion_matrix(labels[m], called, labels=[0, 1]).ravel()
        assert r.n == m.sum() and r.positives == tp + fn
        assert r.sensitivity == pytest.approx(tp / (tp + fn))
        assert r.specificity == pytest.approx(tn / (tn + fp))
        assert r.ppv == pytest.approx(tp / (tp + fp))
        assert r.auc.auc == pytest.approx(roc_auc_score(labels[m], probs[m]))
        assert r.auc.low < r.auc.auc < r.auc.high
        assert r.observed == pytest.approx(labels[m].mean())
    if grouping == "size":  # a shared control group: specificity equals the overall one
        for r in report.rows:
            assert r.specificity == pytest.approx(report.overall.specificity)


def test_wilson_interval_by_hand():
    # Hand computation, z = 1.96: 34 of 50 (hospital 2's lesions at the lab's defaults).
    z, k, n = 1.959963984540054, 34, 50
    p = k / n
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z / (1 + z**2 / n) * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
    low, high = wilson_interval(k, n)
    assert (low, high) == pytest.approx((centre - half, centre + half))
    assert (round(low, 3), round(high, 3)) == (0.542, 0.792)  # the 54.2-79.2% in the lesson and preset
    row = fsg.row("x", np.array([1] * 50 + [0] * 10), np.array([0.9] * 34 + [0.1] * 16 + [0.1] * 10), 0.5)
    assert row.sensitivity_ci == pytest.approx((low, high))


def test_thresholds_are_chosen_on_validation():
    model = fake_model()
    labels, probs = model.val_labels, model.val_probs
    t90 = fsg.choose_threshold(labels, probs, "sens90")
    sens = lambda t: (probs[labels == 1] >= t).mean()  # noqa: E731
    assert sens(t90) >= 0.9
    assert sens(np.nextafter(t90, 1)) < 0.9  # the highest such threshold
    youden = fsg.choose_threshold(labels, probs, "youden")
    j = lambda t: sens(t) + (probs[labels == 0] < t).mean() - 1  # noqa: E731
    assert j(youden) == pytest.approx(max(j(t) for t in np.unique(probs)))


def test_lesson_ppv_numbers_by_bayes():
    def bayes(sens, spec, prev):  # per 1000 patients, as the lesson counts them
        tp, fp = 1000 * prev * sens, 1000 * (1 - prev) * (1 - spec)
        return tp / (tp + fp)

    for prev, expected in ((0.5, 0.90), (0.1, 0.50), (0.02, 0.155)):
        assert fsg.ppv(0.9, 0.9, prev) == pytest.approx(bayes(0.9, 0.9, prev))
        assert round(fsg.ppv(0.9, 0.9, prev), 3) == expected
    assert round(100 * fsg.ppv(0.8, 0.95, 0.05), 1) == 45.7  # the quiz's answer
    assert round(100 * fsg.ppv(0.8, 0.95, 0.5), 1) == 94.1  # its explanation


@pytest.mark.parametrize("share", [0.05, 0.2, 0.5])
def test_mixture_has_the_requested_share(share):
    lab = fsg.SubgroupLab(b_share=share, num_images=300)
    mixture = fsg.development_mixture(lab)
    assert len(mixture.data) == 300
    assert mixture.scanner_b.sum() == round(share * 300)
    # Scanner is recoverable from the patient id (what the training split uses).
    np.testing.assert_array_equal(mixture.data.patient.numpy() >= mixture.num_a_patients, mixture.scanner_b)
    # Scanner B's raw pixels are A's times 0.6: standardised together, its images have less contrast.
    x = mixture.data.x.std(dim=(1, 2, 3)).numpy()
    assert x[mixture.scanner_b].mean() < 0.7 * x[~mixture.scanner_b].mean()


def test_test_pool_is_balanced_per_scanner():
    lab = fsg.SubgroupLab(test_images=400)
    prep = fsg.val.Preprocessing(0.0, 1.0)
    pool = fsg.test_pool(lab, prep)
    assert pool.scanner_b.sum() == (~pool.scanner_b).sum() == 200
    assert pool.labels[pool.hospital == "h2"].mean() == pytest.approx(0.1)
    assert pool.labels[pool.hospital == "h3"].mean() == pytest.approx(0.5)
    assert (pool.radius[pool.labels == 1] > 1.5).all() and (pool.radius[pool.labels == 0] == 0).all()


def test_check_flags_too_few_scanner_b_images():
    assert fsg.check(fsg.SubgroupLab()) is None
    assert fsg.check(fsg.SubgroupLab(b_share=0.01, num_images=500)) == "subgroups.error.too_few_b"


def test_forest_figure_has_a_row_per_subgroup():
    report = fsg.subgroup_report(fake_model(), "hospital", "youden")
    fig = fsg.forest_figure(report, {}, {p: p for p in fsg.PANELS}).to_dict()
    assert len(fig["data"]) == 3 and all(len(trace["y"]) == 4 for trace in fig["data"])


# ---------------------------------------------------------------------------------------------
# Page

PAGE = "views/future.py"
QUERY = {"subgroups.num_images": "500", "subgroups.num_epochs": "1", "subgroups.test_images": "400"}


def _texts(at) -> str:
    return " ".join(str(e.value) for e in (*at.markdown, *at.caption, *at.subheader, *at.info, *at.error))


def test_page_controls_preset_run_and_message():

    from tests.conftest import assert_no_exception, run_page, wait_until_done

    at = run_page(PAGE, query={**QUERY, "subgroups.b_share": "0.01"})
    assert_no_exception(at)
    keys = {w.key for w in (*at.slider, *at.select_slider, *at.number_input) if w.key}
    assert {"subgroups.b_share", "subgroups.num_images", "subgroups.test_images"} <= keys
    assert "fewer than ten scanner-B images" in _texts(at)  # 1% of 500 images: a clear message
    at.selectbox(key="presetpick.subgroups").set_value("by_hospital")
    at.button(key="presetapply.subgroups").click().run()
    assert at.session_state["subgroups.grouping"] == "hospital"
    at.select_slider(key="subgroups.num_images").set_value(500)
    at.slider(key="subgroups.num_epochs").set_value(1)
    at.select_slider(key="subgroups.test_images").set_value(400).run()
    at.button(key="future.subgroups.train").click().run()
    job = at.session_state["future.subgroups.job"]
    wait_until_done(job, 240)
    at.run()
    assert_no_exception(at)
    assert "Hospital 1" in " ".join(str(d.value) for d in at.dataframe) or "PPV" in _texts(at)
    assert len(at.get("plotly_chart")) >= 1
    at.session_state["subgroups.grouping"] = "size"  # display only: the same job, no retraining
    at.run()
    assert_no_exception(at)
    assert at.session_state["future.subgroups.job"] is job
    assert "each size row" in _texts(at)
