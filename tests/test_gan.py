"""The GAN lab's core: training runs and is reproducible, the diversity and lesion measures
agree with hand computations and known answers, and the collapse preset really collapses."""

import dataclasses
import math

import numpy as np
import pytest
import torch

from primer import generative as gen
from primer import labstate
from primer.synth import PhantomConfig, generate

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def patches():
    return gen.lesion_patches()[0]


def short_run(patches, **changes):
    config = dataclasses.replace(gen.GanConfig(num_epochs=1, sample_every=2), **changes)
    return gen.train_gan(patches[:192], config, num_generated=32)


def test_a_few_steps_give_finite_losses_and_samples_from_the_fixed_noise(patches):
    seen = []
    generator, run = gen.train_gan(
        patches[:192],
        gen.GanConfig(num_epochs=1, sample_every=2),
        on_step=lambda s, p: seen.append((s, p)),
        num_generated=32,
    )
    assert len(run.steps) == 192 // 32 == len(seen)
    for step in run.steps:
        assert all(math.isfinite(v) for v in (step.d_loss, step.g_loss))
        assert 0 <= step.d_fake <= 1 and 0 <= step.d_real <= 1
    assert seen[0][1] is not None, "the first step already shows samples"
    assert [s for s, _ in run.samples] == [1, 2, 4, 6]
    assert run.samples[-1][1].shape == (32, 32, 32) and 0 <= run.samples[-1][1].min() <= run.samples[-1][1].max() <= 1
    assert run.generated.shape == (32, 32, 32) and generator.latent_dim == 16


def test_the_same_seed_gives_the_same_run_and_another_seed_does_not(patches):
    _, a = short_run(patches)
    _, b = short_run(patches)
    _, c = short_run(patches, seed=1)
    assert a.steps[-1].d_loss == b.steps[-1].d_loss and a.steps[-1].g_loss == b.steps[-1].g_loss
    assert np.array_equal(a.samples[-1][1], b.samples[-1][1]) and np.array_equal(a.generated, b.generated)
    assert not np.array_equal(a.generated, c.generated)


def test_losses_at_a_discriminator_that_cannot_tell_are_ln4_and_ln2():
    """The dotted reference lines of the curves: a D that says 0.5 to everything."""
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    zero = torch.zeros(8)
    assert bce(zero, torch.ones(8)).item() + bce(zero, torch.zeros(8)).item() == pytest.approx(math.log(4))
    assert bce(zero, torch.ones(8)).item() == pytest.approx(math.log(2))


def test_diversity_is_zero_for_identical_samples_and_matches_a_hand_computation():
    same = np.repeat(np.random.default_rng(0).random((1, 2, 2)), 5, axis=0)
    assert gen.mean_pairwise_distance(same) == 0.0
    assert gen.diversity_ratio(same, np.random.default_rng(1).random((5, 2, 2))) == 0.0
    a, b, c = np.zeros((2, 2)), np.ones((2, 2)), np.array([[1.0, 0.0], [0.0, 0.0]])
    # pairs: |a−b| = √4 = 2, |a−c| = 1, |b−c| = √3; mean over 3 pairs, then ÷ √(2·2) pixels
    expected = (2 + 1 + math.sqrt(3)) / 3 / 2
    assert gen.mean_pairwise_distance(np.stack([a, b, c])) == pytest.approx(expected)
    assert gen.diversity_ratio(np.stack([a, b, c]), np.stack([a, b, c])) == pytest.approx(1.0)


def test_lesion_rule_finds_every_real_lesion_none_in_lesion_free_phantoms_and_the_right_centre(patches):
    present, _ = gen.lesion_centres(patches)
    assert present.all()
    # The same phantom generator and window with no lesion at all (prevalence 0).
    empty = generate(
        PhantomConfig(
            n=200,
            size=32,
            task="presence",
            prevalence=0.0,
            profile="disk",
            beta=2.0,
            background_std=0.15,
            noise_std=0.08,
            contrast=20.0,
            radius=4.5,
            seed=0,
        )
    )
    lo, hi = gen.LESION_WINDOW
    assert not gen.lesion_centres(np.clip((empty.images - lo) / (hi - lo), 0, 1))[0].any()
    # Two disks on a flat background: centres where drawn, spread = RMS distance from their mean.
    rows, cols = np.indices((32, 32))
    flat = np.full((2, 32, 32), 0.2)
    for patch, (r, c) in zip(flat, [(10, 8), (10, 20)], strict=True):
        patch[(rows - r) ** 2 + (cols - c) ** 2 <= 9] = 0.8
    present, centre = gen.lesion_centres(flat)
    assert present.all() and np.allclose(centre, [[10, 8], [10, 20]], atol=1e-6)
    assert gen.centre_spread(flat) == pytest.approx(6.0)


def test_the_collapse_preset_gives_far_less_diversity_than_the_default(patches):
    """Two epochs (92 generator steps) each are enough to tell them apart."""
    collapse = next(p for p in labstate.load_presets("architectures")["gan"] if p.id == "collapse")
    results = {}
    for name, lab in (("default", gen.GanLab()), ("collapse", dataclasses.replace(gen.GanLab(), **collapse.values))):
        config = dataclasses.replace(lab.config(), num_epochs=2)
        results[name] = gen.train_gan(patches, config, num_generated=128)[1].report
    assert results["collapse"].diversity < 0.6 * results["default"].diversity
    assert results["collapse"].centre_spread < 0.5 * results["default"].centre_spread


def test_the_numbers_the_presets_state_follow_from_the_settings():
    """Step counts, learning-rate ratios and the real patches' lesion spread (preset commentary)."""
    presets = {p.id: p for p in labstate.load_presets("architectures")["gan"]}
    lab = gen.GanLab()
    assert gen.gan_rounds(1500, lab.config()) * lab.num_epochs == 230
    strong = dataclasses.replace(lab, **presets["strong_d"].values)
    assert gen.gan_rounds(1500, strong.config()) * strong.num_epochs == 75
    assert strong.d_learning_rate / lab.d_learning_rate == pytest.approx(10)
    collapse = dataclasses.replace(lab, **presets["collapse"].values)
    assert collapse.g_learning_rate / collapse.d_learning_rate == pytest.approx(25)
    assert lab.g_learning_rate / lab.d_learning_rate == pytest.approx(5)
    patches, _ = gen.lesion_patches()
    assert round(gen.centre_spread(gen.reference_patches(patches, 256, lab.seed)), 1) == 3.6
    assert round(gen.centre_spread(patches), 1) == 3.6
