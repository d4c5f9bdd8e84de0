"""External validation, ensembles and test-time augmentation (primer.validation), checked against
NumPy's own array ops, scikit-learn's metrics and hand computations."""

import dataclasses

import numpy as np
import pytest
import torch
from sklearn.metrics import confusion_matrix, roc_auc_score

from primer import validation as val
from primer.synth import PhantomConfig, background_filter, generate
from primer.train import TrainConfig, predict

# A value for each site-B field that differs from site A's.
CHANGES = {
    "noise_std": 0.6,
    "beta": 2.0,
    "contrast": 1.5,
    "intensity_scale": 1.3,
    "intensity_offset": 0.4,
    "prevalence": 0.2,
}
CONFIG_FIELD = {"noise_std": "noise_std", "beta": "beta", "contrast": "contrast", "prevalence": "prevalence"}


@pytest.mark.parametrize("name", val.SITE_FIELDS)
def test_site_b_differs_from_site_a_in_exactly_the_chosen_parameter(name):
    site_b = dataclasses.replace(val.SITE_A, **{name: CHANGES[name]})
    assert site_b.differences(val.SITE_A) == [name]
    a_config, b_config = val.SITE_A.phantom_config(64, 7), site_b.phantom_config(64, 7)
    changed = {f for f in a_config.to_dict() if getattr(a_config, f) != getattr(b_config, f)}
    assert changed == ({CONFIG_FIELD[name]} if name in CONFIG_FIELD else set())
    # same seed: everything the parameter does not touch comes out identical
    a_images, a = val.site_images(val.SITE_A, 64, 7)
    b_images, b = val.site_images(site_b, 64, 7)
    if name != "prevalence":
        np.testing.assert_array_equal(a.labels, b.labels)
        np.testing.assert_array_equal(a.masks, b.masks)
        assert not np.array_equal(a_images, b_images)
    if name == "intensity_scale" or name == "intensity_offset":
        np.testing.assert_allclose(b_images, a.images * site_b.intensity_scale + site_b.intensity_offset, rtol=1e-6)
    if name == "noise_std":
        # the same white-noise draw, scaled: the difference is white noise of std 0.6 - 0.25
        assert np.std(b_images - a_images) == pytest.approx(0.35, rel=0.02)
    if name == "contrast":
        # only lesion pixels change (the Gaussian blob's tail reaches a little past the mask)
        assert np.abs(b_images - a_images)[a.labels == 0].max() == 0
    if name == "prevalence":
        assert b.labels.mean() == round(0.2 * 64) / 64  # exactly round(prevalence × patients) positives
        assert a.labels.mean() == pytest.approx(0.5)


def trained_nowhere(lab: val.ExternalValidationLab) -> val.SiteModel:
    """A SiteModel with untrained weights and site A's real splits (no training needed to test
    the bookkeeping)."""
    splits, prep, patients = val.site_a_splits(lab.num_images, lab.seed)
    config = TrainConfig(width=4, seed=lab.seed)
    model = val.build(config).eval()
    return val.SiteModel(
        state_dict=model.state_dict(),
        config=config,
        prep=prep,
        epochs=[],
        val_labels=splits.val.y.numpy(),
        val_probs=predict(model, splits.val.x)[:, 1].numpy(),
        test_labels=splits.test.y.numpy(),
        test_probs=predict(model, splits.test.x)[:, 1].numpy(),
        num_site_a_patients=patients,
        seconds=0.0,
    )


def test_site_b_is_new_patients_through_site_a_preprocessing():
    lab = val.ExternalValidationLab(num_images=300, b_images=200, b_noise=0.25, b_scale=1.5)
    site_a = trained_nowhere(lab)
    site_b = val.site_b_data(lab, site_a)
    splits, prep, _ = val.site_a_splits(lab.num_images, lab.seed)
    all_a = torch.cat([splits.train.patient, splits.val.patient, splits.test.patient])
    assert not set(site_b.patient.tolist()) & set(all_a.tolist())
    raw, phantoms = val.site_images(lab.site_b(), lab.b_images, lab.seed + val.SITE_B_SEED_OFFSET)
    expected = (raw - prep.mean) / prep.std  # site A's mean and std, not site B's own
    np.testing.assert_allclose(site_b.x[:, 0].numpy(), expected, rtol=1e-5, atol=1e-5)
    a_raw = generate(PhantomConfig(n=lab.b_images, seed=lab.seed)).images
    assert not np.array_equal(a_raw, phantoms.images), "site B is another random stream"


def test_compare_sites_scores_match_scikit_learn():
    lab = val.ExternalValidationLab(num_images=300, b_images=300, b_noise=0.5)
    site_a = trained_nowhere(lab)
    site_b = val.site_b_data(lab, site_a)
    report = val.compare_sites(site_a, site_b, lab.site_b())
    probs = predict(site_a.model(), site_b.x)[:, 1].numpy()
    y = site_b.y.numpy()
    assert report.external.auc.auc == pytest.approx(roc_auc_score(y, probs))
    assert report.internal.auc.auc == pytest.approx(roc_auc_score(site_a.test_labels, site_a.test_probs))
    tn, fp, fn, tp = confusion_matrix(y, probs >= site_a.threshold, labels=[0, 1]).ravel()
    assert report.external.sensitivity == pytest.approx(tp / (tp + fn))
    assert report.external.specificity == pytest.approx(tn / (tn + fp))
    assert report.external.mean_predicted == pytest.approx(probs.mean())
    assert report.external.observed == pytest.approx(y.mean())
    assert report.auc_drop == pytest.approx(report.internal.auc.auc - report.external.auc.auc)
    assert report.changed == ["noise_std"]
    # the threshold maximises Youden's J on site A's validation set, by brute force
    v_y, v_p = site_a.val_labels, site_a.val_probs
    j = [((v_p >= t) & (v_y == 1)).sum() / (v_y == 1).sum() - ((v_p >= t) & (v_y == 0)).sum() / (v_y == 0).sum()
         for t in v_p]  # fmt: skip
    assert max(j) == pytest.approx(
        ((v_p >= site_a.threshold) & (v_y == 1)).mean() / (v_y == 1).mean()
        - ((v_p >= site_a.threshold) & (v_y == 0)).mean() / (v_y == 0).mean()
    )


def site_result(auc, se, sens=0.9, spec=0.9, predicted=0.5, observed=0.5):
    from primer.metrics import AucInterval

    interval = AucInterval(auc, auc - 1.96 * se, auc + 1.96 * se, se, 0.95, "delong")
    return val.SiteResult(100, 50, interval, 0.5, sens, spec, 0.9, predicted, observed, 0.0, None)


def test_the_caption_follows_the_numbers():
    def report(internal, external, changed=()):
        drop = internal.auc.auc - external.auc.auc
        se = np.hypot(internal.auc.standard_error, external.auc.standard_error)
        return val.ValidationReport(internal, external, drop, drop - 1.96 * se, drop + 1.96 * se, list(changed))

    keys = [k for k, _ in val.explain(report(site_result(0.96, 0.01), site_result(0.80, 0.01), ["noise_std"]))]
    assert keys == ["extval.why.auc_dropped", "extval.why.noise_std", "extval.why.calibrated"]
    held = report(site_result(0.96, 0.01), site_result(0.95, 0.01, spec=0.3, predicted=0.85), ["intensity_scale"])
    keys = [k for k, _ in val.explain(held)]
    assert keys == [
        "extval.why.auc_held",
        "extval.why.intensity_scale",
        "extval.why.threshold_specificity",
        "extval.why.overestimates",
    ]
    rose = report(site_result(0.90, 0.01), site_result(0.99, 0.002, sens=0.7, predicted=0.3))
    assert [k for k, _ in val.explain(rose)] == [
        "extval.why.auc_rose",
        "extval.why.threshold_sensitivity",
        "extval.why.underestimates",
    ]


def test_calibration_example_of_the_lesson():
    """A model calibrated at 50% prevalence says 50% for an image with likelihood ratio 1; at 10%
    prevalence that image's risk is the prior, 10% (Bayes: posterior odds = LR × prior odds)."""
    probability_at_a = 0.5
    likelihood_ratio = (probability_at_a / (1 - probability_at_a)) / (0.5 / 0.5)
    odds_at_b = likelihood_ratio * 0.1 / 0.9
    assert odds_at_b / (1 + odds_at_b) == pytest.approx(0.10)


# ---------------------------------------------------------------------------------------------
# Test-time augmentation


def test_transforms_match_numpy_and_invert_exactly():
    x = torch.arange(2 * 5 * 5, dtype=torch.float32).reshape(2, 1, 5, 5)
    a = x[0, 0].numpy()
    n = a.shape[0]
    anti = np.empty_like(a)
    for i in range(n):
        for j in range(n):
            anti[n - 1 - j, n - 1 - i] = a[i, j]  # reflection in the anti-diagonal, by its definition
    expected = {
        "identity": a,
        "rot90": np.rot90(a, 1),
        "rot180": np.rot90(a, 2),
        "rot270": np.rot90(a, 3),
        "flip_lr": np.fliplr(a),
        "flip_ud": np.flipud(a),
        "transpose": a.T,
        "antitranspose": anti,
    }
    assert set(expected) == set(val.TRANSFORMS)
    outputs = []
    for name in val.TRANSFORMS:
        y = val.transform(x, name)
        np.testing.assert_array_equal(y[0, 0].numpy(), expected[name])
        assert torch.equal(val.transform(y, val.inverse(name)), x), name
        outputs.append(tuple(y[0, 0].flatten().tolist()))
    assert len(set(outputs)) == 8, "eight different symmetries"


def test_transforms_keep_the_phantom_label():
    """A lesion moves with the image and stays whole inside it; the background's spectrum is the
    same in every orientation, so a transformed phantom is a phantom of the same class."""
    phantoms = generate(PhantomConfig(n=40, seed=3))
    masks = torch.from_numpy(phantoms.masks)
    for name in val.TRANSFORMS:
        moved = val.transform(masks, name)
        assert torch.equal(moved.flatten(1).sum(1), masks.flatten(1).sum(1))  # no lesion pixel lost
        assert torch.equal(moved.flatten(1).any(1), torch.from_numpy(phantoms.labels == 1))
    h = background_filter(64, 3.0, 1.0)
    # on the FFT grid, flipping the image maps frequency k to -k (index (n - k) mod n)
    minus = (-np.arange(64)) % 64
    np.testing.assert_allclose(h[minus][:, minus], h)
    np.testing.assert_allclose(h[minus], h)
    np.testing.assert_allclose(h.T, h)


def test_tta_is_the_mean_over_the_transformed_copies():
    torch.manual_seed(0)
    model = val.build(TrainConfig(width=4)).eval()
    x = torch.randn(6, 1, 64, 64)
    by_hand = sum(predict(model, val.transform(x, name)) for name in val.TRANSFORMS) / 8
    torch.testing.assert_close(val.predict_tta(model, x), by_hand)


# ---------------------------------------------------------------------------------------------
# Ensembles


def member(k, probs, tta):
    return val.Member(member=k, epochs=[], test_probs=np.array(probs), tta_probs=np.array(tta), seconds=1.0)


def test_ensemble_is_the_mean_of_its_members():
    labels = np.array([0, 0, 1, 1, 1, 0])
    members = [
        member(0, [0.2, 0.6, 0.7, 0.4, 0.9, 0.1], [0.3, 0.5, 0.8, 0.5, 0.9, 0.2]),
        member(1, [0.4, 0.2, 0.5, 0.8, 0.7, 0.5], [0.4, 0.3, 0.6, 0.7, 0.7, 0.4]),
        member(2, [0.0, 0.4, 0.9, 0.6, 0.2, 0.3], [0.1, 0.4, 0.8, 0.6, 0.4, 0.3]),
    ]
    # by hand: (0.2 + 0.4 + 0.0) / 3 = 0.2, (0.6 + 0.2 + 0.4) / 3 = 0.4, ...
    expected = np.array([0.2, 0.4, 0.7, 0.6, 0.6, 0.3])
    report = val.ensemble_report(members, labels)
    np.testing.assert_allclose(report.probs, expected)
    np.testing.assert_allclose(val.ensemble_probs([m.test_probs for m in members]), expected)
    # spread: population SD of the three members, first image: values 0.2, 0.4, 0.0 around 0.2
    assert report.spread[0] == pytest.approx(np.sqrt((0.0**2 + 0.2**2 + 0.2**2) / 3))
    assert report.ensemble_auc == pytest.approx(roc_auc_score(labels, expected))
    assert report.member_aucs == pytest.approx([roc_auc_score(labels, m.test_probs) for m in members])
    assert report.member_tta_aucs[0] == pytest.approx(roc_auc_score(labels, members[0].tta_probs))
    tta_mean = np.mean([m.tta_probs for m in members], axis=0)
    assert report.ensemble_tta_auc == pytest.approx(roc_auc_score(labels, tta_mean))
    assert report.auc_by_size[0] == pytest.approx(report.member_aucs[0])
    assert report.auc_by_size[-1] == pytest.approx(report.ensemble_auc)
    # calls at 0.5: 0.2 no, 0.4 no, 0.7 yes, 0.6 yes, 0.6 yes, 0.3 no: all six right
    assert report.correct.all()
    assert np.isnan(report.spread_wrong) and np.isnan(report.spread_auc)


def test_member_keys_depend_on_the_member_not_on_k():
    three, five = val.EnsembleLab(num_models=3), val.EnsembleLab(num_models=5)
    assert [three.member_key(k) for k in range(3)] == [five.member_key(k) for k in range(3)]
    assert len({five.member_key(k) for k in range(5)}) == 5
    assert [five.member_config(k).seed for k in range(5)] == [0, 1, 2, 3, 4]


def test_site_b_settings_do_not_retrain():
    a, b = val.ExternalValidationLab(), val.ExternalValidationLab(b_noise=0.9, b_prevalence=0.1)
    assert a.training_key() == b.training_key()
    assert a.training_key() != val.ExternalValidationLab(seed=1).training_key()
