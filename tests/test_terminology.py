"""The terminology chapter's core, against independent oracles: hand computations, brute force,
scikit-learn, scikit-image, primer.train's own split, and the stored curves recomputed."""

import numpy as np
import pytest
import torch
from skimage.feature import graycomatrix, graycoprops
from sklearn.linear_model import LinearRegression
from sklearn.metrics import confusion_matrix, roc_auc_score
from torch import nn

from primer import terminology as term
from primer.observer import ideal_observer, prewhitening_template
from primer.synth import PhantomConfig, generate, known_signal, ske_variant

# ---------------------------------------------------------------------------------------------
# Hand-engineered features


def test_glcm_contrast_matches_the_definition_computed_by_hand():
    """GLCM contrast = mean squared grey-level difference of neighbouring pixels, averaged over
    the horizontal and vertical direction (the symmetric, normalised matrix counts each pair in
    both orders, which leaves the mean of (i − j)² unchanged)."""
    images = np.random.default_rng(0).normal(size=(5, 20, 20)) * 1.5
    q = term.quantize(images).astype(float)
    horizontal = ((q[:, :, 1:] - q[:, :, :-1]) ** 2).mean(axis=(1, 2))
    vertical = ((q[:, 1:, :] - q[:, :-1, :]) ** 2).mean(axis=(1, 2))
    assert np.allclose(term.glcm_contrast(images), (horizontal + vertical) / 2)


def test_glcm_contrast_of_flat_and_checkerboard_images():
    flat = np.zeros((1, 8, 8))
    checker = (np.indices((8, 8)).sum(axis=0) % 2)[None] * 8.0 - 4.0  # levels 0 and 7 alternating
    assert term.glcm_contrast(flat)[0] == 0.0
    assert term.glcm_contrast(checker)[0] == pytest.approx(49.0)
    glcm = graycomatrix(term.quantize(checker)[0], [1], [0], levels=8, symmetric=True, normed=True)
    assert graycoprops(glcm, "contrast")[0, 0] == pytest.approx(49.0)


def test_local_variance_max_matches_brute_force():
    images = np.random.default_rng(1).normal(size=(2, 9, 9))
    best = np.zeros(2)
    for r in range(9):
        for c in range(9):
            rows, cols = np.arange(r - 2, r + 3) % 9, np.arange(c - 2, c + 3) % 9
            window = images[:, rows][:, :, cols]  # (2, 5, 5) with wrap-around
            best = np.maximum(best, window.reshape(2, -1).var(axis=1))
    assert np.allclose(term.local_variance_max(images), best)


@pytest.mark.parametrize("prewhiten", [False, True])
def test_matched_filter_scan_matches_brute_force_correlation(prewhiten):
    config = PhantomConfig(size=24, radius=3.0, radius_jitter=0.0)
    images = generate(config.replace(n=3, seed=4)).images.astype(np.float64)
    template = prewhitening_template(config) if prewhiten else known_signal(ske_variant(config))
    kernel = np.fft.ifftshift(template)  # template centre moved to pixel (0, 0)
    m = term.scan_margin(config)
    expected = np.full(3, -np.inf)
    for r in range(m, 24 - m):
        for c in range(m, 24 - m):
            shifted = np.roll(images, (-r, -c), axis=(1, 2))  # pixel (r, c) moves to (0, 0)
            expected = np.maximum(expected, np.einsum("nhw,hw->n", shifted, kernel))
    assert np.allclose(term.matched_filter_max(images, config, prewhiten=prewhiten), expected)


def test_hand_pipeline_uses_scikit_learn_auc_and_the_expert_feature_helps_in_texture():
    config = term.feat_config(2.0, 3.0)
    train, test = generate(config.replace(n=400, seed=1)), generate(config.replace(n=400, seed=2))
    generic = term.hand_pipeline(train, test, config, "generic")
    expert = term.hand_pipeline(train, test, config, "prewhitened")
    assert expert.test_auc == pytest.approx(roc_auc_score(test.labels, expert.test_scores))
    assert set(expert.coefficients) == set(term.feature_names("prewhitened"))
    assert expert.test_auc > generic.test_auc + 0.05
    assert expert.test_auc <= ideal_observer(config).auc + 0.02  # the ceiling, up to sampling error


def test_unknown_feature_set_is_a_coded_error():
    with pytest.raises(term.TerminologyError) as error:
        term.hand_features(np.zeros((1, 8, 8)), PhantomConfig(size=8), "magic")
    assert error.value.code == "feature_set"


# ---------------------------------------------------------------------------------------------
# Data recipes


def test_corrupt_labels_flips_exactly_the_asked_fraction():
    labels = np.array([1] * 40 + [0] * 60)
    flipped = term.corrupt_labels(labels, "random", 0.2, seed=0)
    assert (flipped != labels).sum() == 20
    missed = term.corrupt_labels(labels, "missed", 0.25, seed=0)
    assert (missed != labels).sum() == 10
    assert np.all(missed[labels == 0] == 0), "only positives are missed"
    assert np.array_equal(term.corrupt_labels(labels, "random", 0.0, seed=3), labels)
    with pytest.raises(term.TerminologyError):
        term.corrupt_labels(labels, "random", 1.5, seed=0)


def test_oversampling_balances_the_classes_and_keeps_every_image():
    labels = np.array([1] * 7 + [0] * 93)
    index = term.oversample_index(labels, seed=0)
    counts = np.bincount(labels[index])
    assert counts[0] == counts[1] == 93
    per_image = np.bincount(index, minlength=100)
    assert np.all(per_image[labels == 0] == 1)
    assert per_image[labels == 1].min() >= 93 // 7 and per_image[labels == 1].max() <= 93 // 7 + 1


def test_tensor_data_fixes_the_split_and_standardises_with_training_statistics():
    parts = term.make_parts(PhantomConfig(size=16, radius=2.0), 30, 10, 20, seed=0)
    noisy = 1 - parts.train.labels
    data = term.tensor_data(parts, train_labels=noisy)
    assert torch.bincount(data.split_index).tolist() == [30, 10, 20]
    train_x = data.x[data.split_index == 0]
    assert float(train_x.mean()) == pytest.approx(0.0, abs=1e-5)
    assert float(train_x.std(unbiased=False)) == pytest.approx(1.0, abs=1e-4)
    assert np.array_equal(data.y[:30].numpy(), noisy)
    assert np.array_equal(data.y[40:].numpy(), parts.test.labels), "test labels stay the truth"
    groups = [set(data.patient[data.split_index == i].tolist()) for i in range(3)]
    assert not (groups[0] & groups[1]) and not (groups[0] & groups[2]) and not (groups[1] & groups[2])


def test_validation_and_test_images_do_not_depend_on_the_seed_or_the_size():
    a = term.make_parts(PhantomConfig(size=16, radius=2.0), 10, 5, 5, seed=0)
    b = term.make_parts(PhantomConfig(size=16, radius=2.0), 20, 5, 5, seed=1)
    assert np.array_equal(a.test.images, b.test.images) and np.array_equal(a.val.images, b.val.images)
    assert not np.array_equal(a.train.images[:10], b.train.images[:10])


def test_curve_schedule_gives_every_size_enough_updates():
    for n in term.CURVE_SIZES:
        epochs, batch = term.curve_schedule(n)
        assert epochs * int(np.ceil(n / batch)) >= 132, n  # the training chapter's default run


@pytest.mark.parametrize("images_per_patient", [1, 5])
def test_split_assignment_follows_the_training_engines_rule(images_per_patient):
    """Same rule as primer.train.split on the same toy data: as many images in each part, and
    a patient split never puts one patient's images in two parts."""
    from primer.train import SplitConfig, TensorData, split

    n = 12 * images_per_patient
    toy = TensorData(
        x=torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1),
        y=torch.zeros(n, dtype=torch.long),
        patient=torch.arange(12).repeat_interleave(images_per_patient),
        classes=("a", "b"),
    )
    for split_by in ("patient", "image"):
        engine = split(toy, SplitConfig(val_fraction=0.25, test_fraction=0.25, by=split_by))
        ours = term.split_assignment(images_per_patient, split_by)
        assert np.bincount(ours.ravel(), minlength=3).tolist() == [len(engine.train), len(engine.val), len(engine.test)]
        if split_by == "patient":
            assert all(len(set(row)) == 1 for row in ours)
    if images_per_patient > 1:
        assert any(len(set(row)) > 1 for row in term.split_assignment(images_per_patient, "image"))


def test_label_sizes_count_what_an_annotator_produces():
    phantom = term.task_example(3, 3)
    sizes = term.label_sizes(phantom)
    assert sizes["class"] == 1 and sizes["boxes"] == 12
    assert sizes["semantic"] == sizes["instance"] == 96 * 96
    assert len(phantom.instance_masks(0)) == 3
    with pytest.raises(term.TerminologyError):
        term.task_example(0, 9)


# ---------------------------------------------------------------------------------------------
# Reports from stored points


def test_imbalance_report_matches_scikit_learn():
    rng = np.random.default_rng(5)
    labels = (rng.random(400) < 0.1).astype(int)
    logits = rng.normal(size=400) + 2.0 * labels - 2.0
    point = {"prevalence": 0.1, "test_logits": logits.tolist(), "test_labels": "".join(map(str, labels))}
    plain = term.imbalance_report(point, "none")
    tn, fp, fn, tp = confusion_matrix(labels, logits >= 0).ravel()
    assert plain["sensitivity"] == pytest.approx(tp / (tp + fn))
    assert plain["specificity"] == pytest.approx(tn / (tn + fp))
    assert plain["accuracy"] == pytest.approx((tp + tn) / 400)
    assert plain["auc"] == pytest.approx(roc_auc_score(labels, logits))
    assert plain["all_normal_accuracy"] == pytest.approx(1 - labels.mean())
    moved = term.imbalance_report(point, "threshold")
    tn, fp, fn, tp = confusion_matrix(labels, 1 / (1 + np.exp(-logits)) >= 0.1).ravel()
    assert moved["sensitivity"] == pytest.approx(tp / (tp + fn))
    assert moved["threshold_probability"] == pytest.approx(0.1)
    assert moved["auc"] == plain["auc"]


def test_curve_summary_averages_over_seeds():
    points = [
        {"num_train": n, "seed": s, "test_auc": a, "val_auc": a, "hand_generic_auc": 0.5, "hand_prewhitened_auc": 0.9}
        for n, s, a in [(50, 0, 0.5), (50, 1, 0.7), (100, 0, 0.8), (100, 1, 0.8)]
    ]
    summary = term.curve_summary(points)
    assert summary.sizes == [50, 100] and summary.seeds == 2
    assert summary.mean["test_auc"] == pytest.approx([0.6, 0.8])
    assert summary.sd["test_auc"] == pytest.approx([np.std([0.5, 0.7], ddof=1), 0.0])
    assert term.size_for_auc(summary, 0.75) == 100


# ---------------------------------------------------------------------------------------------
# Kinds of learning


def test_pixel_predictor_is_the_least_squares_fit():
    images = generate(PhantomConfig(n=20, size=32, seed=2)).images.astype(np.float64)
    kernel = term.fit_pixel_predictor(images, num_samples=3000, seed=1)
    k = term.PREDICTOR_WINDOW
    windows = np.lib.stride_tricks.sliding_window_view(images, (k, k), axis=(1, 2))
    rng = np.random.default_rng(1)
    pick = tuple(rng.integers(0, m, 3000) for m in windows.shape[:3])
    patches = windows[pick].reshape(3000, -1)
    centre = k * k // 2
    reference = LinearRegression(fit_intercept=False).fit(np.delete(patches, centre, axis=1), patches[:, centre])
    assert kernel.reshape(-1)[centre] == 0.0
    assert np.allclose(np.delete(kernel.reshape(-1), centre), reference.coef_, atol=1e-8)
    # The residual at one pixel, by hand.
    residual = term.prediction_residual(images[:1], kernel)
    r, c = 10, 12
    window = images[0, r - 3 : r + 4, c - 3 : c + 4]
    assert residual[0, r, c] == pytest.approx(images[0, r, c] - (window * kernel).sum())


def test_cam_adds_up_to_the_logit_difference_with_average_pooling():
    """With global average pooling, the mean of the CAM plus the bias difference is exactly the
    difference of the two logits (Zhou et al.'s identity)."""
    import models

    model = models.build("plain_cnn", seed=0, width=4, pool="avg").eval()
    x = torch.randn(3, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    cam = term.class_activation_maps(model, x, upsample=False)
    with torch.no_grad():
        logits = model(x)
    bias = float((model.head.bias[1] - model.head.bias[0]).detach())
    assert np.allclose(cam.mean(axis=(1, 2)) + bias, (logits[:, 1] - logits[:, 0]).numpy(), atol=1e-5)
    assert term.class_activation_maps(model, x).shape == (3, 32, 32)


class PixelModel(nn.Module):
    """A 'classifier' whose one feature map is the image itself: its CAM is ± the image."""

    def __init__(self, sign: float):
        super().__init__()
        self.features = nn.Identity()
        self.head = nn.Linear(1, 2)
        with torch.no_grad():
            self.head.weight.copy_(torch.tensor([[0.0], [sign]]))


def test_weak_localization_scores_against_the_masks():
    phantoms = generate(PhantomConfig(n=12, prevalence=1.0, contrast=8.0, noise_std=0.05, beta=0.0, seed=3))
    args = (phantoms.images, phantoms.labels, phantoms.masks)
    assert term.weak_localization(PixelModel(1.0), *args).hit_rate == 1.0  # peak = brightest pixel
    assert term.weak_localization(PixelModel(-1.0), *args).hit_rate < 0.2  # peak = darkest pixel


# ---------------------------------------------------------------------------------------------
# The stored curves can be reproduced


def test_learning_curve_script_reproduces_a_stored_point():
    """Retrain the cheapest stored point through primer.train (as scripts/learning_curve.py
    does) and compare it with the data file the page reads."""
    from scripts.learning_curve import compute_point

    params = {"num_train": 50, "seed": 0}
    stored = term.find_point(term.load_points("curve")["points"], **params)
    assert stored is not None, "run python -m scripts.learning_curve first"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the script ran
    try:
        fresh = compute_point("curve", params)
    finally:
        torch.set_num_threads(threads)
    for key in ("test_auc", "val_auc", "hand_generic_auc", "hand_prewhitened_auc"):
        assert fresh[key] == pytest.approx(stored[key], abs=0.03), key


def test_stored_curves_say_what_the_lessons_say():
    """The lessons quote the stored numbers; if the data files are recomputed and the story
    changes, this fails before a learner reads a claim the page contradicts."""
    curve = term.curve_summary(term.load_points("curve")["points"])
    cnn = dict(zip(curve.sizes, curve.mean["test_auc"], strict=True))
    assert cnn[50] < 0.6 < 0.8 < cnn[500] < cnn[1000] < cnn[5000], "the CNN's curve climbs with data"
    assert cnn[5000] > curve.mean["hand_generic_auc"][-1], "learned features overtake the generic ones"

    noise = term.load_points("noise")["points"]
    for kind in term.NOISE_KINDS:
        summary = term.noise_summary(noise, kind)
        assert summary["test_auc"] == sorted(summary["test_auc"], reverse=True), f"{kind} noise lowers AUC"
        assert all(n <= c for n, c in zip(summary["noisy_reference_auc"], summary["test_auc"], strict=True))
    missed = term.noise_summary(noise, "missed")
    i = missed["rate"].index(0.4)
    assert missed["sensitivity"][i] < 0.5 and missed["test_auc"][i] > 0.8, "missed lesions: timid, not blind"

    leak = term.load_points("leak")["points"]
    for k in term.LEAK_IMAGES_PER_PATIENT[1:]:
        by_image = term.find_point(leak, images_per_patient=k, split_by="image")
        assert by_image["val_auc"] > by_image["fresh_auc"] + 0.05, f"the leaky split is optimistic at k={k}"
        assert by_image["leaked_patients"] > 0
    assert term.find_point(leak, images_per_patient=1, split_by="patient")["leaked_patients"] == 0

    imbal = term.load_points("imbal")["points"]
    plain = {r["prevalence"]: r for r in term.imbalance_reports(imbal, "none")}
    fixed = {r["prevalence"]: r for r in term.imbalance_reports(imbal, "oversample")}
    moved = {r["prevalence"]: r for r in term.imbalance_reports(imbal, "threshold")}
    assert plain[0.02]["sensitivity"] < 0.1 and plain[0.02]["accuracy"] >= plain[0.02]["all_normal_accuracy"] - 0.01
    assert fixed[0.02]["auc"] > 0.95 and fixed[0.02]["sensitivity"] > 0.9, "oversampling rescues the rare class"
    assert moved[0.05]["sensitivity"] > plain[0.05]["sensitivity"] and moved[0.05]["specificity"] < 0.9


def test_image_grid_keeps_square_pixels_in_every_cell():
    from primer import terminology_figures as tf

    images = np.zeros((6, 8, 8))
    fig = tf.image_grid(images, [str(i) for i in range(6)], columns=3)
    anchors = [fig.layout[f"yaxis{i if i > 1 else ''}"].scaleanchor for i in range(1, 7)]
    assert anchors == ["x", "x2", "x3", "x4", "x5", "x6"]


@pytest.mark.parametrize("beta", term.BETA_PICTURE)
def test_beta_backgrounds_have_a_power_spectrum_falling_as_one_over_f_to_the_beta(beta):
    """The β picture's textures, checked from the outside: the radially averaged power spectrum
    (numpy's FFT, averaged over 16 seeds) fitted on log-log axes has slope −β."""
    size = 128
    images = np.concatenate([term.beta_backgrounds((beta,), seed=seed, size=size) for seed in range(16)])
    power = (np.abs(np.fft.fft2(images)) ** 2).mean(axis=0)  # (size, size)
    k = np.fft.fftfreq(size) * size  # integer frequency indices
    radius = np.rint(np.hypot(k[:, None], k[None, :])).astype(int)  # (size, size)
    rings = np.arange(2, int(0.4 * size))  # skip DC and the lowest ring; stay below Nyquist corners
    ring_power = np.array([power[radius == r].mean() for r in rings])
    slope = np.polyfit(np.log(rings / size), np.log(ring_power), 1)[0]
    assert slope == pytest.approx(-beta, abs=0.1)


def test_beta_backgrounds_filter_the_same_white_noise():
    """Same seed, different β: the panels differ only in their spectrum's exponent, so their
    Fourier phases are identical."""
    images = term.beta_backgrounds()
    phases = np.angle(np.fft.fft2(images))  # (4, H, W)
    assert np.allclose(np.exp(1j * phases[1:]), np.exp(1j * phases[0]), atol=1e-3)
