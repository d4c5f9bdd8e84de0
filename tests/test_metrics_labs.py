"""The metrics chapter's core: observers, score sources, bands, overlap and detection simulation,
each checked against an independent computation (explicit covariance algebra, scikit-learn,
SciPy, brute-force loops, hand arithmetic)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage, special
from scipy.spatial.distance import cdist
from sklearn.metrics import roc_auc_score, roc_curve

from primer import metrics, segdet
from primer import metrics_labs as ml
from primer.metrics import MetricsError
from primer.observer import ideal_observer, prewhitening_scores
from primer.synth import PhantomConfig, background_filter, generate, ske_variant


def explicit_covariance(cfg: PhantomConfig) -> np.ndarray:
    """K = A Aᵀ + σ² I, built by pushing every unit impulse through the background filter."""
    size = cfg.size
    h = background_filter(size, cfg.beta, cfg.background_std)
    impulses = np.eye(size * size).reshape(-1, size, size)  # (P, H, W)
    columns = np.fft.ifft2(np.fft.fft2(impulses) * h).real.reshape(size * size, -1)  # (P, P)
    return columns @ columns.T + cfg.noise_std**2 * np.eye(size * size)


SMALL = PhantomConfig(size=24, radius=2.0, contrast=1.5, noise_std=0.3)


def test_lesion_prior_covers_every_centre_and_radius_the_generator_draws():
    cfg = PhantomConfig()
    prior = ml.lesion_prior(cfg)
    data = generate(cfg.replace(n=3000, seed=11))
    centres = data.centers[data.labels == 1, 0].astype(np.float64)  # (M, 2)
    # Every drawn centre lies within half a grid step (per axis) of a grid point of the prior.
    nearest = cdist(centres, prior.centers, metric="chebyshev").min(axis=1)
    assert nearest.max() <= ml.GRID_STEP / 2 + 1e-6
    # And the prior has no grid point in a region the generator never uses.
    used = cdist(prior.centers, centres, metric="chebyshev").min(axis=1)
    assert used.max() <= 1.5
    assert prior.radii.min() > cfg.radius * (1 - cfg.radius_jitter)
    assert prior.radii.max() < cfg.radius * (1 + cfg.radius_jitter)


def test_observer_equals_the_likelihood_ratio_from_explicit_covariance():
    images = generate(SMALL.replace(n=6, seed=3)).images.astype(np.float64)
    prior = ml.lesion_prior(SMALL)
    inverse = np.linalg.inv(explicit_covariance(SMALL))
    expected = []
    for image in images:
        log_ratios = []
        for radius in prior.radii:
            for centre in prior.centers:
                s = ml.lesion_signal(SMALL, centre, radius).ravel()
                w = inverse @ s
                log_ratios.append(image.ravel() @ w - 0.5 * s @ w)
        expected.append((special.logsumexp(log_ratios) - np.log(len(log_ratios)), max(log_ratios)))
    got = ml.observer_scores(images, SMALL)
    # The observer's FFTs run in float32 (~1e-6 here); the explicit inverse of the ill-conditioned
    # 1/f³ covariance carries ~1e-7 of its own.
    np.testing.assert_allclose(got.log_likelihood_ratio, [e[0] for e in expected], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(got.scan_max, [e[1] for e in expected], rtol=1e-4, atol=1e-4)


def test_with_the_signal_known_the_observer_is_the_prewhitening_matched_filter():
    cfg = ske_variant(PhantomConfig(contrast=0.8))
    data = generate(cfg.replace(n=400, seed=5))
    log_lr = ml.observer_scores(data.images, cfg).log_likelihood_ratio
    template = prewhitening_scores(data.images, cfg)
    # One template: log LR = t - d'^2 / 2, the matched filter's score shifted by a constant.
    shift = log_lr - template
    np.testing.assert_allclose(shift, shift[0], atol=1e-4)  # the observer's FFTs run in float32
    assert np.isclose(-2 * shift[0], ideal_observer(cfg).d_prime ** 2, rtol=1e-6)


def test_location_unknown_is_harder_than_the_known_location_ceiling():
    cfg = PhantomConfig(contrast=1.5)
    estimate = ml.ideal_observer_estimate(cfg, num_images=600)
    assert estimate.interval.auc < ideal_observer(cfg).auc
    data = generate(cfg.replace(n=600, seed=21))
    scores = ml.observer_scores(data.images, cfg)
    ideal = roc_auc_score(data.labels, scores.log_likelihood_ratio)
    assert ideal >= roc_auc_score(data.labels, ml.max_pixel_scores(data.images)) + 0.05
    assert ideal >= roc_auc_score(data.labels, scores.scan_max) - 0.02


def test_shape_task_has_no_observer():
    with pytest.raises(MetricsError) as info:
        ml.lesion_prior(PhantomConfig(task="shape", profile="disk"))
    assert info.value.code == "observer_unavailable"


def test_binary_logits_recover_the_logit_difference_from_float32_softmax():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 12, size=(500, 2))  # differences up to ~50: p1 rounds to 1 in float32
    probs = special.softmax(logits.astype(np.float32), axis=1)
    np.testing.assert_allclose(ml.binary_logits(probs), logits[:, 1] - logits[:, 0], rtol=1e-4, atol=1e-4)
    with pytest.raises(MetricsError) as info:
        ml.binary_logits(np.ones((4, 3)) / 3)
    assert info.value.code == "not_two_class"


def test_sensitivity_at_fpr_is_the_best_sklearn_roc_point_within_the_rate():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 200)
    scores = np.round(rng.normal(labels, 1.0), 1)  # rounding makes ties
    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    grid = np.linspace(0, 1, 41)
    expected = [tpr[fpr <= f + 1e-12].max() for f in grid]
    got = ml.sensitivity_at_fpr(scores[labels == 1], scores[labels == 0], grid)[0]
    np.testing.assert_allclose(got, expected)


def test_roc_band_is_reproducible_and_holds_the_curve():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 2, 300)
    scores = rng.normal(labels * 1.5, 1.0)
    band = ml.roc_band(labels, scores, 0.95, seed=4)
    again = ml.roc_band(labels, scores, 0.95, seed=4)
    np.testing.assert_array_equal(band.low, again.low)
    curve = ml.sensitivity_at_fpr(scores[labels == 1], scores[labels == 0], band.fpr)[0]
    inside = (band.low - 1e-9 <= curve) & (curve <= band.high + 1e-9)
    assert inside.mean() > 0.9 and np.all(band.low <= band.high)


def _source(key, labels, scores, cases="a"):
    return ml.ScoreSource(key, np.asarray(labels), np.asarray(scores, dtype=float), cases)


def test_pairing_and_comparator_choice():
    a = _source("default", [0, 1, 1, 0], [0.1, 0.8, 0.6, 0.3])
    same = _source("user", [0, 1, 1, 0], [0.2, 0.9, 0.4, 0.1])
    other_cases = _source("user", [0, 1, 1, 0], [0.2, 0.9, 0.4, 0.1], cases="b")
    other_labels = _source("user", [1, 1, 0, 0], [0.2, 0.9, 0.4, 0.1])
    assert ml.pairing(a, same) is None
    assert ml.pairing(a, other_cases) == ml.pairing(a, other_labels) == "different_cases"
    observers = {"max_pixel": _source("max_pixel", [0, 1, 1, 0], [1, 2, 3, 4])}
    assert ml.choose_comparator("other_model", a, {"default": a}, observers) == (None, "no_other_model")
    assert ml.choose_comparator("other_model", a, {"default": a, "user": same}, observers)[0] is same
    assert ml.choose_comparator("other_model", a, {"default": a, "user": other_labels}, {})[1] == "not_paired"
    assert ml.choose_comparator("ideal", a, {}, observers) == (None, "no_observer")
    assert ml.choose_comparator("max_pixel", a, {}, observers)[0] is observers["max_pixel"]


def test_handcrafted_readers_score_the_default_test_split():
    from primer.train import TrainLab, phantom_data, split

    lab = TrainLab(num_images=400)
    found = ml.handcrafted_sources(lab)
    reference = split(phantom_data(lab.phantom_config()), lab.split_config()).test
    assert set(found) == {"ideal", "scan", "max_pixel"}
    for source in found.values():
        np.testing.assert_array_equal(source.test_labels, reference.y.numpy())
        assert source.cases == ml.case_identity(lab)
    # The raw test images are the standardized ones up to one global affine map.
    images, _ = ml.phantom_test_set(lab)
    x = reference.x[:, 0].numpy().ravel()
    assert np.corrcoef(images.ravel(), x)[0, 1] > 0.999999


def test_bayes_story_by_hand():
    bayes = metrics.bayes_terms(0.9, 0.9, 0.01)
    people = ml.natural_frequencies(bayes)
    assert people["diseased"] == pytest.approx(10) and people["tp"] == pytest.approx(9)
    assert people["fp"] == pytest.approx(99) and people["called"] == pytest.approx(108)
    story = ml.bayes_story(bayes, test_ppv=0.5)
    assert story["tp"] == "9" and story["fp"] == "99" and story["ppv"] == f"{9 / 108:.1%}"
    assert "0.900" in ml.bayes_latex(bayes) and f"{9 / 108:.3f}" in ml.bayes_latex(bayes)
    scaled = ml.per_1000(metrics.Confusion(tp=3, fp=1, tn=15, fn=1))
    assert scaled.tp == pytest.approx(150) and scaled.n == pytest.approx(1000)


def test_calibration_summary_auc_ignores_temperature_and_ece_matches():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 400)
    logits = rng.normal((labels - 0.5) * 3, 1.5)
    for t in (0.5, 1.0, 2.0):
        summary = ml.calibration_summary(labels, logits, t, 10)
        probs = special.expit(logits / t)
        assert summary["auc"] == pytest.approx(roc_auc_score(labels, logits))
        assert summary["ece"] == pytest.approx(metrics.expected_calibration_error(labels, probs, 10))
        assert summary["brier"] == pytest.approx(np.mean((probs - labels) ** 2))
    assert [ml.temperature_verdict(t) for t in (1.6, 0.6, 1.02)] == ["over", "under", "fine"]


# Segmentation ---------------------------------------------------------------------------------


def test_perturbations_match_scipy_morphology_and_the_blob_lands_far_away():
    _, instances = ml.seg_case(0)
    truth = instances > 0
    disk = np.hypot(*np.mgrid[-2:3, -2:3]) <= 2
    grown = ml.perturbed_prediction(truth, ml.OverlapLab(grow=2))
    np.testing.assert_array_equal(grown, ndimage.binary_dilation(truth, structure=disk))
    shrunk = ml.perturbed_prediction(truth, ml.OverlapLab(grow=-2))
    np.testing.assert_array_equal(shrunk, ndimage.binary_erosion(truth, structure=disk, border_value=0))
    with_blob = ml.perturbed_prediction(truth, ml.OverlapLab(blob=True, blob_radius=3))
    blob = with_blob & ~truth
    assert 20 <= blob.sum() <= 40  # a radius-3 disk
    distance_to_lesion = ndimage.distance_transform_edt(~truth)
    assert distance_to_lesion[blob].min() > 10


def test_overlap_report_per_lesion_equals_brute_force_nearest_lesion_assignment():
    _, instances = ml.seg_case(1)
    truth = instances > 0
    pred = ml.perturbed_prediction(truth, ml.OverlapLab(grow=1, shift_x=2, blob=True))
    report = ml.overlap_report(instances, pred)
    assert report.dice == pytest.approx(segdet.dice(truth, pred))
    assert report.true_positive == np.sum(truth & pred) and report.false_positive == np.sum(~truth & pred)
    lesion_pixels = np.argwhere(truth)
    owners = instances[truth]
    for row in report.lesions:
        mine = np.zeros_like(truth)
        candidates = np.argwhere(pred)
        nearest = owners[cdist(candidates, lesion_pixels).argmin(axis=1)]
        mine[tuple(candidates[nearest == row.lesion].T)] = True
        assert row.dice == pytest.approx(segdet.dice(instances == row.lesion, mine))
        assert row.hd95 == pytest.approx(segdet.hd95(instances == row.lesion, mine))
    assert [r.area for r in report.lesions] == sorted(r.area for r in report.lesions)
    assert ml.lesion_table(report)["area"] == [r.area for r in report.lesions]


def test_the_same_one_pixel_error_costs_small_disks_more_dice():
    radii, dice = ml.dice_by_radius(ml.OverlapLab(grow=1))
    assert np.all(np.diff(dice) > 0)
    # A disk of radius r grown by one pixel is about a disk of radius r + 1: Dice ≈ 2r² / (r² + (r+1)²).
    r = radii[-1]
    assert dice[-1] == pytest.approx(2 * r**2 / (r**2 + (r + 1) ** 2), abs=0.02)


# Detection ------------------------------------------------------------------------------------


def test_a_perfect_simulated_detector_has_ap_one():
    phantoms = ml.det_phantoms()
    perfect = ml.simulate_detections(phantoms, ml.FrocLab(jitter=0.0, fp_rate=0.0, miss_rate=0.0))
    report = ml.detection_report(perfect, 0.5, 0.0)
    assert report.pr.average_precision == pytest.approx(1.0)
    assert report.recall_at == 1.0 and report.fp_per_image_at == 0.0
    assert sum(len(b) for b in perfect.true_boxes) == phantoms.n_lesions.sum()


def test_simulation_is_reproducible_and_each_slider_changes_only_its_own_part():
    phantoms = ml.det_phantoms()
    base = ml.simulate_detections(phantoms, ml.FrocLab())
    again = ml.simulate_detections(phantoms, ml.FrocLab())
    for a, b in zip(base.pred_boxes, again.pred_boxes, strict=True):
        np.testing.assert_array_equal(a, b)
    more_fp = ml.simulate_detections(phantoms, ml.FrocLab(fp_rate=3.0))
    for a, b in zip(base.pred_scores, more_fp.pred_scores, strict=True):
        assert len(b) >= len(a) and np.array_equal(b[: len(a)], a)  # the same marks, plus new ones
    shifted = ml.simulate_detections(phantoms, ml.FrocLab(jitter=0.3))
    for a, b in zip(base.pred_scores, shifted.pred_scores, strict=True):
        np.testing.assert_array_equal(a, b)  # same scores, only the boxes moved


def test_operating_point_counts_equal_counting_matches_by_hand():
    dets = ml.simulate_detections(ml.det_phantoms(), ml.FrocLab(fp_rate=2.0, jitter=0.15))
    report = ml.detection_report(dets, 0.4, 0.6)
    tp = fp = 0
    for boxes, scores, truths in zip(dets.pred_boxes, dets.pred_scores, dets.true_boxes, strict=True):
        match = segdet.match_boxes(boxes, scores, truths, 0.4)
        kept = scores >= 0.6
        tp += np.sum(match.is_true_positive & kept)
        fp += np.sum(~match.is_true_positive & kept)
    truths = sum(len(t) for t in dets.true_boxes)
    assert report.recall_at == pytest.approx(tp / truths)
    assert report.precision_at == pytest.approx(tp / (tp + fp))
    assert report.fp_per_image_at == pytest.approx(fp / len(dets.images))
