"""Classification metrics against scikit-learn, SciPy, brute-force definitions and hand computations."""

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import special
from sklearn import calibration
from sklearn import metrics as sk_metrics

from primer import metrics as M


def _binormal(num_positive, num_negative, separation, seed, *, decimals=None):
    """Labels and scores with a known AUC of Phi(separation / sqrt 2); rounding makes ties."""
    rng = np.random.default_rng(seed)
    labels = np.r_[np.ones(num_positive, int), np.zeros(num_negative, int)]
    scores = rng.normal(size=labels.size) + separation * labels
    if decimals is not None:
        scores = np.round(scores, decimals)
    order = rng.permutation(labels.size)  # interleave the classes so nothing relies on order
    return labels[order], scores[order]


def _brute_force_components(labels, scores):
    """V10 and V01 from the definition: psi(x, y) = 1 if x > y, 1/2 if equal, 0 otherwise."""
    positives, negatives = scores[labels == 1], scores[labels == 0]
    psi = np.zeros((positives.size, negatives.size))
    for i, x in enumerate(positives):
        for j, y in enumerate(negatives):
            psi[i, j] = 1.0 if x > y else 0.5 if x == y else 0.0
    return psi.mean(axis=1), psi.mean(axis=0)


# --- confusion matrix, rates, threshold sweep -------------------------------------------------


def test_confusion_matches_sklearn_including_scores_on_the_threshold():
    labels, scores = _binormal(40, 60, 1.0, seed=1, decimals=1)  # many ties at one decimal
    for threshold in [-10.0, -0.5, 0.0, 0.3, float(scores[0]), 1.2, 10.0]:
        conf = M.confusion_at(labels, scores, threshold)
        expected = sk_metrics.confusion_matrix(labels, (scores >= threshold).astype(int), labels=[0, 1])
        np.testing.assert_array_equal(conf.as_matrix(), expected)


def test_rates_match_sklearn():
    labels, scores = _binormal(50, 70, 1.0, seed=2)
    called = (scores >= 0.4).astype(int)
    got = M.rates(M.confusion_at(labels, scores, 0.4))
    assert got.sensitivity == pytest.approx(sk_metrics.recall_score(labels, called))
    assert got.specificity == pytest.approx(sk_metrics.recall_score(labels, called, pos_label=0))
    assert got.ppv == pytest.approx(sk_metrics.precision_score(labels, called))
    assert got.npv == pytest.approx(sk_metrics.precision_score(labels, called, pos_label=0))
    assert got.accuracy == pytest.approx(sk_metrics.accuracy_score(labels, called))
    assert got.f1 == pytest.approx(sk_metrics.f1_score(labels, called))
    assert got.youden_j == pytest.approx(
        sk_metrics.balanced_accuracy_score(labels, called, adjusted=True)  # = sens + spec - 1
    )


def test_zero_denominators_give_nan_not_errors():
    # Threshold above every score: nothing called positive, so PPV is 0/0.
    at_top = M.rates(M.Confusion(tp=0, fp=0, tn=6, fn=4))
    assert math.isnan(at_top.ppv)
    assert at_top.sensitivity == 0.0 and at_top.specificity == 1.0 and at_top.npv == 0.6
    assert at_top.f1 == 0.0  # 2*0 / (0 + 0 + 4): defined, just zero
    # No positives at all: sensitivity and Youden's J are undefined.
    no_positives = M.rates(M.Confusion(tp=0, fp=2, tn=8, fn=0))
    assert math.isnan(no_positives.sensitivity) and math.isnan(no_positives.youden_j)
    assert no_positives.specificity == 0.8
    # Nothing at all: every rate undefined, nothing raised.
    empty = M.rates(M.Confusion(tp=0, fp=0, tn=0, fn=0))
    assert all(math.isnan(value) for value in vars(empty).values())


def test_threshold_sweep_equals_direct_counting_at_every_score_and_between():
    labels, scores = _binormal(300, 700, 1.2, seed=3, decimals=2)
    sweep = M.ThresholdSweep(labels, scores)
    thresholds = np.r_[np.unique(scores), np.unique(scores) + 0.005, -np.inf, np.inf]
    batch = sweep.confusion(thresholds)
    for k, threshold in enumerate(thresholds):
        direct = M.confusion_at(labels, scores, threshold)
        assert sweep.confusion(threshold) == direct
        assert (batch.tp[k], batch.fp[k], batch.tn[k], batch.fn[k]) == (direct.tp, direct.fp, direct.tn, direct.fn)


def test_sweep_rates_vectorized_equal_scalar_rates():
    labels, scores = _binormal(30, 30, 1.0, seed=4)
    sweep = M.ThresholdSweep(labels, scores)
    thresholds = np.linspace(-3, 4, 25)
    vector = sweep.rates(thresholds)
    for k, threshold in enumerate(thresholds):
        scalar = sweep.rates(threshold)
        for name, value in vars(scalar).items():
            np.testing.assert_equal(getattr(vector, name)[k], value)


def test_operating_point_lies_on_the_roc_curve():
    labels, scores = _binormal(80, 120, 1.0, seed=5, decimals=1)
    curve = M.roc(labels, scores)
    sweep = M.ThresholdSweep(labels, scores)
    for threshold in curve.thresholds[1:]:
        fpr, tpr = sweep.operating_point(threshold)
        k = int(np.flatnonzero(curve.thresholds == threshold)[0])
        assert (fpr, tpr) == pytest.approx((curve.fpr[k], curve.tpr[k]))


def test_youden_optimal_threshold_is_best_among_all_brute_force():
    labels, scores = _binormal(60, 90, 1.0, seed=6, decimals=1)
    best = M.ThresholdSweep(labels, scores).youden_optimal_threshold()
    youden = {t: M.rates(M.confusion_at(labels, scores, t)).youden_j for t in np.unique(scores)}
    assert youden[best] == pytest.approx(max(youden.values()))


# --- ROC, PR -------------------------------------------------------------------------------------


def test_roc_auc_equals_sklearn_and_the_mann_whitney_definition():
    labels, scores = _binormal(25, 35, 0.8, seed=7, decimals=1)
    curve = M.roc(labels, scores)
    assert curve.auc == pytest.approx(sk_metrics.roc_auc_score(labels, scores))
    v10, _ = _brute_force_components(labels, scores)
    assert curve.auc == pytest.approx(v10.mean())
    assert curve.auc == pytest.approx(np.trapezoid(curve.tpr, curve.fpr))


def test_average_precision_equals_step_sum_over_sweep_operating_points():
    labels, scores = _binormal(40, 160, 1.0, seed=8, decimals=1)
    curve = M.precision_recall(labels, scores)
    # The definition, walked with our own sweep: AP = sum over thresholds of (R_k - R_k-1) * P_k.
    thresholds = np.unique(scores)[::-1]
    at = M.ThresholdSweep(labels, scores).rates(thresholds)
    expected = np.sum(np.diff(np.r_[0.0, at.sensitivity]) * at.ppv)
    assert curve.average_precision == pytest.approx(expected)
    assert curve.prevalence == pytest.approx(0.2)


# --- DeLong and bootstrap ------------------------------------------------------------------------


def test_delong_components_and_variance_equal_the_double_loop_definition():
    labels, scores = _binormal(13, 17, 0.7, seed=9, decimals=1)  # ties exercise the midranks
    components = M.delong_components(labels, scores)
    v10, v01 = _brute_force_components(labels, scores)
    np.testing.assert_allclose(components.v10, v10)
    np.testing.assert_allclose(components.v01, v01)
    m, n = v10.size, v01.size
    variance = np.sum((v10 - v10.mean()) ** 2) / (m - 1) / m + np.sum((v01 - v01.mean()) ** 2) / (n - 1) / n
    assert components.variance == pytest.approx(variance, rel=1e-12)
    assert components.auc == pytest.approx(sk_metrics.roc_auc_score(labels, scores))


def test_delong_interval_is_close_to_the_bootstrap_interval():
    labels, scores = _binormal(250, 350, 1.0, seed=10)
    delong = M.delong_auc_ci(labels, scores)
    bootstrap = M.bootstrap_auc_ci(labels, scores, num_resamples=2000, seed=0)
    assert delong.auc == pytest.approx(bootstrap.auc)
    assert delong.low < delong.auc < delong.high
    assert abs(delong.low - bootstrap.low) < 0.01
    assert abs(delong.high - bootstrap.high) < 0.01
    assert delong.standard_error == pytest.approx(bootstrap.standard_error, rel=0.1)


def test_bootstrap_is_reproducible_and_stratified():
    labels, scores = _binormal(5, 200, 1.0, seed=11)  # few positives: an unstratified draw could miss them
    first = M.bootstrap_auc_ci(labels, scores, num_resamples=300, seed=3)
    again = M.bootstrap_auc_ci(labels, scores, num_resamples=300, seed=3)
    np.testing.assert_array_equal(first.resampled_aucs, again.resampled_aucs)
    assert np.isfinite(first.resampled_aucs).all() and first.resampled_aucs.size == 300


def test_paired_test_variance_matches_brute_force_and_is_symmetric():
    labels, scores_a = _binormal(15, 20, 1.0, seed=12, decimals=1)
    scores_b = np.round(scores_a + np.random.default_rng(0).normal(size=scores_a.size), 1)
    forward = M.delong_test(labels, scores_a, scores_b)
    backward = M.delong_test(labels, scores_b, scores_a)
    assert forward.p_value == pytest.approx(backward.p_value)
    assert forward.z == pytest.approx(-backward.z)
    # Var(AUC_a - AUC_b) from the definition: the components of the difference, double loops.
    v10_a, v01_a = _brute_force_components(labels, scores_a)
    v10_b, v01_b = _brute_force_components(labels, scores_b)
    variance = np.var(v10_a - v10_b, ddof=1) / v10_a.size + np.var(v01_a - v01_b, ddof=1) / v01_a.size
    assert forward.standard_error == pytest.approx(math.sqrt(variance))
    assert forward.difference == pytest.approx(v10_a.mean() - v10_b.mean())
    assert forward.p_value == pytest.approx(math.erfc(abs(forward.z) / math.sqrt(2)))


def test_paired_test_identical_scores_p_is_one_and_a_clear_winner_is_significant():
    labels, scores = _binormal(100, 100, 1.0, seed=13)
    same = M.delong_test(labels, scores, scores.copy())
    assert same.p_value == 1.0 and same.z == 0.0 and same.difference == 0.0
    noise = np.random.default_rng(1).normal(size=scores.size)
    assert M.delong_test(labels, scores, noise).p_value < 1e-4


# --- prevalence ----------------------------------------------------------------------------------


def test_reweighting_equals_replicating_the_positive_cases():
    labels, scores = _binormal(30, 90, 1.0, seed=14)
    conf = M.confusion_at(labels, scores, 0.5)
    # Brute force: a test set with every positive repeated 4 times has prevalence 120 / 210.
    replicated_labels = np.r_[np.repeat(labels[labels == 1], 4), labels[labels == 0]]
    replicated_scores = np.r_[np.repeat(scores[labels == 1], 4), scores[labels == 0]]
    direct = M.rates(M.confusion_at(replicated_labels, replicated_scores, 0.5))
    reweighted = M.rates(M.reweight_to_prevalence(conf, 120 / 210))
    for name in ("sensitivity", "specificity", "ppv", "npv", "accuracy", "f1", "youden_j"):
        assert getattr(reweighted, name) == pytest.approx(getattr(direct, name))


def test_bayes_by_hand():
    # Sens 0.9, spec 0.8, prevalence 1%: of 1000 people, 9 true and 198 false positives.
    ppv, npv = M.ppv_npv_at_prevalence(0.9, 0.8, 0.01)
    assert ppv == pytest.approx(9 / 207) and npv == pytest.approx(792 / 793)
    terms = M.bayes_terms(0.9, 0.8, 0.01, population=1000)
    assert (terms.true_positives, terms.false_positives) == pytest.approx((9, 198))
    assert (terms.true_negatives, terms.false_negatives) == pytest.approx((792, 1))
    assert terms.ppv == pytest.approx(
        terms.true_positive_share / (terms.true_positive_share + terms.false_positive_share)
    )
    curve_ppv, _ = M.ppv_npv_at_prevalence(0.9, 0.8, np.array([0.0, 0.01, 0.5, 1.0]))
    np.testing.assert_allclose(curve_ppv, [0.0, 9 / 207, 0.9 / 1.1, 1.0])


def test_bayes_at_the_test_set_prevalence_equals_the_counted_ppv():
    labels, scores = _binormal(45, 155, 1.0, seed=15)
    counted = M.rates(M.confusion_at(labels, scores, 0.6))
    ppv, npv = M.ppv_npv_at_prevalence(counted.sensitivity, counted.specificity, labels.mean())
    assert (ppv, npv) == pytest.approx((counted.ppv, counted.npv))


# --- calibration ---------------------------------------------------------------------------------


def _calibration_sample(seed, size=2000):
    rng = np.random.default_rng(seed)
    probabilities = rng.beta(2, 3, size=size)
    labels = (rng.random(size) < probabilities**1.3).astype(int)  # slightly over-confident model
    return labels, probabilities


def test_reliability_bins_match_sklearn_calibration_curve_and_histogram():
    labels, probabilities = _calibration_sample(16)
    probabilities[:4] = [0.0, 0.1, 0.5, 1.0]  # values on the edges too
    bins = M.reliability_bins(labels, probabilities, num_bins=10)
    np.testing.assert_array_equal(bins.counts, np.histogram(probabilities, bins=10, range=(0, 1))[0])
    smooth = probabilities.copy()
    smooth[:4] = [0.01, 0.11, 0.51, 0.99]  # sklearn closes its bins on the other side; stay off edges
    bins = M.reliability_bins(labels, smooth, num_bins=10)
    observed, predicted = calibration.calibration_curve(labels, smooth, n_bins=10, strategy="uniform")
    filled = bins.counts > 0
    np.testing.assert_allclose(bins.observed_frequency[filled], observed)
    np.testing.assert_allclose(bins.mean_predicted[filled], predicted)


def test_empty_bins_are_nan():
    bins = M.reliability_bins([0, 1, 1], [0.05, 0.95, 0.91], num_bins=5)
    np.testing.assert_array_equal(bins.counts, [1, 0, 0, 0, 2])
    assert np.isnan(bins.mean_predicted[1:4]).all() and np.isnan(bins.observed_frequency[1:4]).all()
    assert bins.observed_frequency[4] == 1.0 and bins.mean_predicted[4] == pytest.approx(0.93)


def test_ece_equals_a_brute_force_loop_and_brier_equals_sklearn():
    labels, probabilities = _calibration_sample(17)
    ece = 0.0
    for low in np.arange(10) / 10:
        high = low + 0.1
        inside = (probabilities >= low) & ((probabilities < high) if high < 0.99 else (probabilities <= 1))
        if inside.any():
            ece += inside.mean() * abs(labels[inside].mean() - probabilities[inside].mean())
    assert M.expected_calibration_error(labels, probabilities, num_bins=10) == pytest.approx(ece)
    assert M.brier_score(labels, probabilities) == pytest.approx(sk_metrics.brier_score_loss(labels, probabilities))


def test_temperature_scaling_recovers_a_known_binary_temperature():
    rng = np.random.default_rng(18)
    calibrated_logits = rng.normal(scale=2.0, size=20000)
    labels = (rng.random(calibrated_logits.size) < special.expit(calibrated_logits)).astype(int)
    for true_temperature in (0.5, 2.5):
        # An over- (T > 1) or under-confident model: its logits are the calibrated ones times T.
        fitted = M.fit_temperature(calibrated_logits * true_temperature, labels)
        assert fitted == pytest.approx(true_temperature, rel=0.06)
        logits = calibrated_logits * true_temperature
        best = M.temperature_nll(logits, labels, fitted)
        assert best <= M.temperature_nll(logits, labels, fitted * 1.05)
        assert best <= M.temperature_nll(logits, labels, fitted / 1.05)


def test_temperature_scaling_recovers_a_known_multiclass_temperature():
    rng = np.random.default_rng(19)
    calibrated_logits = rng.normal(scale=2.0, size=(8000, 3))  # (N, C)
    probabilities = special.softmax(calibrated_logits, axis=1)
    labels = (rng.random((8000, 1)) > np.cumsum(probabilities, axis=1)).sum(axis=1)  # sample a class
    fitted = M.fit_temperature(calibrated_logits * 3.0, labels)
    assert fitted == pytest.approx(3.0, rel=0.06)
    np.testing.assert_allclose(M.apply_temperature(calibrated_logits * 3.0, 3.0), probabilities)


def test_nll_equals_sklearn_log_loss():
    labels, probabilities = _calibration_sample(20, size=300)
    logits = special.logit(np.clip(probabilities, 1e-6, 1 - 1e-6))
    assert M.temperature_nll(logits, labels, 1.7) == pytest.approx(
        sk_metrics.log_loss(labels, special.expit(logits / 1.7))
    )


# --- edge cases ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "compute",
    [
        M.roc,
        M.precision_recall,
        M.delong_auc_ci,
        M.delong_components,
        lambda y, s: M.bootstrap_auc_ci(y, s, num_resamples=10),
        lambda y, s: M.delong_test(y, s, s),
        lambda y, s: M.ThresholdSweep(y, s).youden_optimal_threshold(),
    ],
)
def test_one_class_and_empty_input_raise_coded_errors(compute):
    with pytest.raises(M.MetricsError) as one_class:
        compute(np.ones(5, int), np.linspace(0, 1, 5))
    assert one_class.value.code == "one_class" and one_class.value.detail["n_negative"] == 0
    with pytest.raises(M.MetricsError) as empty:
        compute(np.zeros(0, int), np.zeros(0))
    assert empty.value.code in {"empty_input"}


def test_counting_on_empty_input_is_all_zeros():
    assert M.confusion_at([], [], 0.5) == M.Confusion(0, 0, 0, 0)
    sweep = M.ThresholdSweep([], [])
    assert sweep.confusion(0.5) == M.Confusion(0, 0, 0, 0)
    assert np.isnan(sweep.rates(np.array([0.0, 1.0])).accuracy).all()


def test_all_equal_scores():
    labels = np.array([0, 1, 0, 1, 1, 0, 0])
    scores = np.full(labels.size, 0.3)
    assert M.roc(labels, scores).auc == 0.5
    interval = M.delong_auc_ci(labels, scores)
    assert (interval.auc, interval.low, interval.high, interval.standard_error) == (0.5, 0.5, 0.5, 0.0)
    assert (M.bootstrap_auc_ci(labels, scores, num_resamples=20).resampled_aucs == 0.5).all()
    assert M.ThresholdSweep(labels, scores).confusion(0.3) == M.Confusion(tp=3, fp=4, tn=0, fn=0)
    assert M.ThresholdSweep(labels, scores).youden_optimal_threshold() == 0.3


def test_delong_needs_two_cases_per_class():
    with pytest.raises(M.MetricsError) as error:
        M.delong_auc_ci([1, 0, 0, 0], [0.9, 0.1, 0.2, 0.3])
    assert error.value.code == "too_few_cases"


@pytest.mark.parametrize(
    ("call", "code"),
    [
        (lambda: M.confusion_at([0, 1, 2], [0.1, 0.2, 0.3], 0.5), "labels_not_binary"),
        (lambda: M.confusion_at([0, 1], [0.1, 0.2, 0.3], 0.5), "shape_mismatch"),
        (lambda: M.roc([0, 1], [0.1, np.nan]), "scores_not_finite"),
        (lambda: M.brier_score([0, 1], [0.1, 1.2]), "not_probabilities"),
        (lambda: M.ppv_npv_at_prevalence(0.9, 0.8, 1.5), "out_of_range"),
        (lambda: M.delong_auc_ci([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4], confidence=1.0), "out_of_range"),
        (lambda: M.fit_temperature(np.zeros((3, 2)), [0, 1, 2]), "labels_not_binary"),
        (lambda: M.reweight_to_prevalence(M.Confusion(0, 1, 1, 0), 0.3), "one_class"),
    ],
)
def test_bad_input_raises_a_coded_error(call, code):
    with pytest.raises(M.MetricsError) as error:
        call()
    assert error.value.code == code


def test_core_metrics_do_not_import_torch():
    # The metrics page must paint without loading torch (design: heavy imports stay off first paint).
    probe = "import sys, primer.metrics, primer.segdet; print('torch' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=Path(__file__).parents[1]
    )
    assert result.stdout.strip() == "False"
