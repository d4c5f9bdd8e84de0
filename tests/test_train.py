"""The training engine: reproducible, honest splits, working regularisers, known-answer learning."""

import dataclasses
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
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
    class_weights,
    evaluate,
    fit,
    focal_loss,
    loss_function,
    make_scheduler,
    operating_point,
    patient_folds,
    phantom_data,
    pretrained_state,
    rotate,
    run_experiment,
    split,
    steps_per_epoch,
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


# ---------------------------------------------------------------------------------------------
# Learning-rate schedules, losses for imbalanced classes, prevalence


def scheduled_rates(config: TrainConfig, steps: int) -> list[float]:
    """The rate each of num_epochs × steps optimizer steps uses, from make_scheduler alone."""
    weight = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.AdamW([weight], lr=config.learning_rate)
    scheduler = make_scheduler(optimizer, config, steps)
    rates = []
    for _ in range(config.num_epochs * steps):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
    return rates


def test_a_run_records_cosine_after_linear_warmup_as_the_hand_formula_says():
    splits = split(phantom_data(PhantomConfig(n=160, seed=0)), SplitConfig())
    config = TrainConfig(width=4, batch_size=16, num_epochs=3, lr_schedule="cosine", warmup_epochs=1.0)
    history = fit(models.build("plain_cnn", seed=0, width=4), splits, config)
    per_epoch = steps_per_epoch(len(splits.train), 16)
    total, warm, base = 3 * per_epoch, per_epoch, config.learning_rate
    # warm-up: linear from 1% to 100% over `warm` steps; then half a cosine over the rest
    expected = [base * (0.01 + 0.99 * k / warm) for k in range(warm)]
    expected += [base * (1 + math.cos(math.pi * k / (total - warm))) / 2 for k in range(total - warm)]
    assert len(history.learning_rates) == total
    assert history.learning_rates == pytest.approx(expected, rel=1e-12, abs=1e-15)
    assert [len(e.learning_rates) for e in history.epochs] == [per_epoch] * 3


def test_step_schedule_and_warmup_alone_follow_their_formulas():
    step = scheduled_rates(TrainConfig(lr_schedule="step", num_epochs=4, learning_rate=0.1), 10)  # 40 steps
    assert step == pytest.approx([0.1] * 20 + [0.01] * 10 + [0.001] * 10)
    warm = scheduled_rates(TrainConfig(warmup_epochs=0.5, num_epochs=2, learning_rate=0.1), 10)  # 5 warm-up steps
    assert warm == pytest.approx([0.1 * (0.01 + 0.99 * k / 5) for k in range(5)] + [0.1] * 15)
    assert scheduled_rates(TrainConfig(num_epochs=2), 7) == [TrainConfig().learning_rate] * 14


def test_steps_per_epoch_skips_only_a_last_batch_of_one():
    assert steps_per_epoch(1400, 64) == 22  # 21 full batches and one of 56
    assert steps_per_epoch(129, 64) == 2  # the last batch of 1 is skipped (BatchNorm)
    assert steps_per_epoch(130, 64) == 3


def test_class_weights_are_scikit_learns_balanced_weights():
    from sklearn.utils.class_weight import compute_class_weight

    labels = torch.tensor([0] * 90 + [1] * 10)
    ours = class_weights(labels, 2)
    theirs = compute_class_weight("balanced", classes=np.array([0, 1]), y=labels.numpy())
    torch.testing.assert_close(ours, torch.tensor(theirs, dtype=torch.float32))


def test_weighted_and_focal_losses_against_torch_and_torchvision():
    from torchvision.ops import sigmoid_focal_loss

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(50, 2, generator=g) * 3
    y = (torch.rand(50, generator=g) < 0.2).long()
    log_probs = F.log_softmax(logits, 1)
    weighted = loss_function(TrainConfig(loss="weighted"), y, 2)
    torch.testing.assert_close(weighted(log_probs, y), F.cross_entropy(logits, y, weight=class_weights(y, 2)))
    # two-class softmax focal loss = sigmoid focal loss on the logit difference (no α)
    focal = loss_function(TrainConfig(loss="focal"), y, 2)
    theirs = sigmoid_focal_loss(logits[:, 1] - logits[:, 0], y.float(), alpha=-1, gamma=2.0, reduction="mean")
    torch.testing.assert_close(focal(log_probs, y), theirs)
    torch.testing.assert_close(focal_loss(log_probs, y, gamma=0.0), F.cross_entropy(logits, y))
    assert loss_function(TrainConfig(), y, 2) is None  # plain cross-entropy keeps its own code path


def test_prevalence_sets_the_exact_share_of_positive_images():
    data = phantom_data(TrainLab(num_images=1000, prevalence=0.1).phantom_config())
    assert int(data.y.sum()) == 100
    balanced = phantom_data(TrainLab(num_images=1000).phantom_config())
    assert int(balanced.y.sum()) == 500


def test_default_lab_builds_the_same_data_and_trains_the_plain_loop():
    """Links made before schedules, losses and prevalence existed: the same phantoms as
    PhantomConfig had always been given, and a trainer step for step equal to the plain
    textbook loop (AdamW, unweighted cross-entropy, constant rate)."""
    lab = TrainLab()
    before = PhantomConfig(n=2000, contrast=2.5, beta=3.0, images_per_patient=1, seed=0)
    assert lab.phantom_config() == before
    small = dataclasses.replace(lab, num_images=300, width=4, num_epochs=2)
    splits = split(phantom_data(small.phantom_config()), small.split_config())
    config = small.train_config()
    ours = models.build("plain_cnn", seed=0, width=4)
    history = fit(ours, splits, config)
    assert history.learning_rates == [config.learning_rate] * (2 * steps_per_epoch(len(splits.train), 64))

    plain = models.build("plain_cnn", seed=0, width=4)
    g = torch.Generator().manual_seed(0)
    models.set_generator(plain, g)
    plain.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(plain.parameters(), lr=config.learning_rate, weight_decay=0.0)
    n = len(splits.train)
    for _ in range(config.num_epochs):
        plain.train()
        order = torch.randperm(n, generator=g)
        for b in range(math.ceil(n / config.batch_size)):
            idx = order[b * config.batch_size : (b + 1) * config.batch_size]
            x = splits.train.x[idx].contiguous(memory_format=torch.channels_last)
            loss = F.cross_entropy(plain(x), splits.train.y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    theirs = plain.state_dict()
    assert all(torch.equal(v, theirs[k]) for k, v in ours.state_dict().items())


def test_operating_point_matches_scikit_learn():
    from sklearn.metrics import recall_score

    rng = np.random.default_rng(0)
    labels = (rng.random(200) < 0.15).astype(int)
    p1 = np.clip(0.3 * labels + rng.random(200) * 0.7, 0, 1)
    point = operating_point(labels, np.stack([1 - p1, p1], 1))
    called = (p1 >= 0.5).astype(int)
    assert point["sensitivity"] == pytest.approx(recall_score(labels, called))
    assert point["specificity"] == pytest.approx(recall_score(labels, called, pos_label=0))
    assert point["mean_probability"] == pytest.approx(p1.mean())
    assert point["prevalence"] == pytest.approx(labels.mean())
