"""The training engine: reproducible, honest splits, working regularisers, known-answer learning."""

import dataclasses

import pytest
import torch
from torchvision.transforms.v2 import functional as TF

import models
from primer.default_model import CHECKPOINT, load_checkpoint
from primer.synth import PhantomConfig
from primer.train import (
    AugmentConfig,
    SplitConfig,
    TrainConfig,
    TrainError,
    TrainLab,
    augment,
    evaluate,
    fit,
    patient_folds,
    phantom_data,
    pretrained_state,
    rotate,
    run_experiment,
    split,
)

SMALL = TrainLab(num_images=400, num_epochs=2)


def without_times(history):
    return [dataclasses.replace(e, seconds=0.0) for e in history.epochs]


def test_same_config_and_seed_give_bit_identical_runs():
    lab = dataclasses.replace(SMALL, augment=True, dropout=0.3, weight_decay=1e-3)
    torch.manual_seed(1)  # the global random state must not matter
    a = run_experiment(lab)
    torch.manual_seed(2)
    b = run_experiment(lab)
    assert without_times(a.history) == without_times(b.history)
    assert all(torch.equal(a.state_dict[k], b.state_dict[k]) for k in a.state_dict)
    assert (a.test_probs == b.test_probs).all()
    c = run_experiment(dataclasses.replace(lab, seed=1))
    assert without_times(c.history) != without_times(a.history)


def test_patient_split_keeps_patients_together_and_image_split_leaks():
    data = phantom_data(PhantomConfig(n=600, images_per_patient=4, seed=3))
    by_patient = split(data, SplitConfig(by="patient", seed=0))
    assert by_patient.leaked_patients() == 0
    assert sum(s["images"] for s in by_patient.sizes().values()) == 600
    by_image = split(data, SplitConfig(by="image", seed=0))
    assert by_image.leaked_patients() > 20
    sizes = by_patient.sizes()
    assert sizes["train"]["positives"] == int((by_patient.train.y == 1).sum())
    assert sizes["val"]["patients"] == len(set(by_patient.val.patient.tolist()))


def test_split_caps_training_set_only():
    data = phantom_data(PhantomConfig(n=400, seed=0))
    full, capped = split(data, SplitConfig(seed=0)), split(data, SplitConfig(seed=0, num_train=50))
    assert len(capped.train) == 50
    assert torch.equal(full.val.x, capped.val.x) and torch.equal(full.test.x, capped.test.x)


def test_patient_folds_partition_the_patients():
    data = phantom_data(PhantomConfig(n=300, images_per_patient=3, seed=0))
    folds = patient_folds(data, 5, seed=0)
    together = torch.cat(folds)
    assert sorted(together.tolist()) == sorted(torch.unique(data.patient).tolist())
    assert len(set(together.tolist())) == len(together)


def test_rotation_matches_torchvision():
    x = torch.rand(3, 1, 31, 31)
    angles = torch.tensor([10.0, -15.0, 4.0])
    ours = rotate(x, angles)
    for i, a in enumerate(angles.tolist()):
        theirs = TF.rotate(x[i : i + 1], a, interpolation=TF.InterpolationMode.BILINEAR)
        centre = (slice(None), slice(None), slice(8, 23), slice(8, 23))  # away from border handling
        torch.testing.assert_close(ours[i : i + 1][centre], theirs[centre], atol=1e-4, rtol=1e-4)


def test_augmentation_is_per_image():
    x = torch.randn(64, 1, 16, 16)
    g = torch.Generator().manual_seed(0)
    flips_only = augment(x, AugmentConfig(max_rotation_deg=0, intensity=0, noise=0), g)
    kinds = []
    for original, out in zip(x, flips_only, strict=True):
        candidates = [original, original.flip(2), original.flip(1), original.flip(1).flip(2)]
        match = [torch.equal(out, c) for c in candidates]
        assert any(match)
        kinds.append(match.index(True))
    assert len(set(kinds)) == 4, "every image draws its own flips"
    gains = augment(torch.ones(64, 1, 4, 4), AugmentConfig(flip=False, max_rotation_deg=0, noise=0, intensity=0.1), g)
    per_image = gains.mean(dim=(1, 2, 3))
    assert per_image.std() > 0.01 and (per_image - 1).abs().max() <= 0.2 + 1e-6


def test_early_stopping_restores_the_best_weights():
    lab = TrainLab(num_images=400, num_train=60, width=16, num_epochs=12, learning_rate=0.01, seed=1)
    splits = split(phantom_data(lab.phantom_config()), lab.split_config())
    model = models.build("plain_cnn", seed=1, width=16)
    history = fit(model, splits, dataclasses.replace(lab.train_config(), early_stopping_patience=2))
    best = min(history.epochs, key=lambda e: e.val_loss)
    assert history.best_epoch == best.epoch
    assert evaluate(model, splits.val)[0] == pytest.approx(best.val_loss, rel=1e-5)


def test_too_high_learning_rate_is_flagged_or_fails_to_learn():
    result = run_experiment(dataclasses.replace(SMALL, optimizer="sgd", learning_rate=1e4, contrast=5.0))
    assert result.history.diverged or result.test_auc < 0.7


def test_learns_an_easy_task_and_fresh_patients_agree():
    """Known answer: a lesion at 5 background SDs is obvious; a working loop must find it."""
    result = run_experiment(TrainLab(num_images=600, contrast=5.0, num_epochs=4))
    assert result.test_auc > 0.95
    assert result.fresh_auc > 0.95
    assert result.history.epochs[-1].train_loss < result.history.epochs[0].train_loss


def test_user_stop_ends_training():
    calls = []
    model = models.build("plain_cnn", seed=0, width=4)
    splits = split(phantom_data(PhantomConfig(n=300)), SplitConfig())
    history = fit(
        model, splits, TrainConfig(width=4, num_epochs=5), should_stop=lambda: calls.append(1) or len(calls) >= 3
    )
    assert history.stopped_by_user and len(history.epochs) == 1


def test_pretrained_start_is_the_shipped_model():
    lab = TrainLab(init="pretrained", task="shape")
    _, shipped, _ = load_checkpoint(CHECKPOINT)
    state = pretrained_state(lab, 2)
    assert all(torch.equal(state[k], v) for k, v in shipped.state_dict().items())
    with pytest.raises(TrainError) as info:
        pretrained_state(dataclasses.replace(lab, width=16), 2)
    assert info.value.code == "pretrained_mismatch"
