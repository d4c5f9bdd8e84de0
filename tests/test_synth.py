"""Synthetic phantoms: reproducible, with ground truth that agrees with independent computations."""

import numpy as np
import pytest
import torch
from skimage.measure import perimeter, regionprops
from torchvision.ops import masks_to_boxes

from primer.synth import PhantomConfig, generate, noise_power_spectrum


def test_same_seed_same_bytes_and_different_seed_differs():
    a, b = generate(PhantomConfig(n=64, seed=3)), generate(PhantomConfig(n=64, seed=3))
    for name in ("images", "labels", "instance_map", "boxes", "patient_id"):
        assert getattr(a, name).tobytes() == getattr(b, name).tobytes()
    c = generate(PhantomConfig(n=64, seed=4))
    assert a.images.tobytes() != c.images.tobytes()


def test_prevalence_is_exact_and_lesions_only_in_positives():
    data = generate(PhantomConfig(n=400, prevalence=0.2, seed=1))
    assert data.labels.sum() == 80
    assert (data.n_lesions[data.labels == 0] == 0).all()
    assert (data.n_lesions[data.labels == 1] == 1).all()
    assert not data.masks[data.labels == 0].any()
    assert data.masks[data.labels == 1].any(axis=(1, 2)).all()


def test_boxes_agree_with_torchvision_masks_to_boxes():
    data = generate(PhantomConfig(n=40, min_lesions=1, max_lesions=3, prevalence=1.0, seed=2))
    for i in range(len(data)):
        instances = data.instance_masks(i)
        assert len(instances) == data.n_lesions[i] >= 1
        expected = masks_to_boxes(torch.from_numpy(instances)).numpy()
        np.testing.assert_array_equal(data.image_boxes(i), expected)
        # instances never overlap: the semantic mask is their disjoint union
        assert instances.sum(axis=0).max() == 1


def test_background_spectrum_matches_the_model():
    """The averaged periodogram of lesion-free images estimates the noise power spectrum."""
    cfg = PhantomConfig(n=3000, prevalence=0.0, seed=5, size=32)
    images = generate(cfg).images.astype(np.float64)
    periodogram = (np.abs(np.fft.fft2(images)) ** 2).mean(axis=0) / images[0].size
    ratio = periodogram / noise_power_spectrum(cfg)
    # each frequency is an average of ~3000 exponential variables: ~2% standard error
    assert abs(ratio.mean() - 1) < 0.01
    assert np.abs(ratio - 1).max() < 0.12
    # pixel variance = background² + quantum noise²
    assert images.var() == pytest.approx(cfg.background_std**2 + cfg.noise_std**2, rel=0.03)


def test_lesion_contrast_adds_to_background():
    """Positives and negatives share the background statistics; the difference at lesion
    centres is the programmed contrast (Gaussian profile peak = contrast)."""
    cfg = PhantomConfig(n=4000, seed=6, fixed_position=True, radius_jitter=0.0)
    data = generate(cfg)
    centre = cfg.size // 2
    # centre of the 2x2 pixels around (31.5, 31.5): profile value exp(-2 * (0.707/4)^2)
    peak = np.exp(-2.0 * (np.hypot(0.5, 0.5) / cfg.radius) ** 2)
    pos = data.images[data.labels == 1, centre, centre].mean()
    neg = data.images[data.labels == 0, centre, centre].mean()
    se = np.sqrt(2 * data.images[:, centre, centre].var() / 2000)
    assert abs((pos - neg) - cfg.contrast * peak) < 4 * se


def test_spiculated_lesions_are_less_compact_than_round_ones():
    data = generate(PhantomConfig(n=200, task="shape", profile="disk", seed=7))
    compactness = []
    for i in range(len(data)):
        mask = data.masks[i]
        compactness.append(4 * np.pi * mask.sum() / perimeter(mask) ** 2)
        assert len(regionprops(mask.astype(int))) == 1
    compactness = np.array(compactness)
    round_c, spiky_c = compactness[data.labels == 0], compactness[data.labels == 1]
    assert round_c.mean() > spiky_c.mean() + 0.15
    # every image has a lesion in the shape task
    assert (data.n_lesions == 1).all()


def test_images_of_one_patient_are_near_duplicates():
    data = generate(PhantomConfig(n=300, images_per_patient=3, seed=8))
    assert np.array_equal(data.patient_id, np.repeat(np.arange(100), 3))
    a, b, c = data.images[0].ravel(), data.images[1].ravel(), data.images[3].ravel()
    assert np.corrcoef(a, b)[0, 1] > 0.8  # same patient
    assert abs(np.corrcoef(a, c)[0, 1]) < 0.3  # different patients
    assert (data.labels[0::3] == data.labels[1::3]).all()


def test_impossible_configs_are_refused():
    with pytest.raises(ValueError):
        generate(PhantomConfig(prevalence=1.5))
    with pytest.raises(ValueError):
        generate(PhantomConfig(min_lesions=3, max_lesions=2))
