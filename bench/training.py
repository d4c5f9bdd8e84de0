"""Training lab budgets, measured in one run on this machine:

- time for the default setup to reach validation AUC ≥ 0.95 (budget ≤ 10 s of training);
- training throughput (FLOPs from torch.utils.flop_counter) as a fraction of this machine's
  float32 matrix-multiply peak measured in the same run (budget ≥ 35%);
- the CNN's test AUC over the exact ideal observer's AUC on the signal-known-exactly variant of
  the task (goal ≥ 0.97), at the default contrast and at a harder one;
- the default run of the external-validation and the ensemble labs, end to end (budget ≤ 30 s
  each), and how long a site-B control takes to answer once site A has trained.
- the cost of a learning-rate schedule (warm-up + cosine) per optimizer step, against the
  training step it rides on (should be ~0), and the default run trained with the focal loss.

Usage: .venv/bin/python -m bench.training [--threads 2] [--labs-only]
"""

from __future__ import annotations

import argparse
import dataclasses
import time
import warnings

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

import models
from primer.observer import ideal_observer
from primer.train import TrainLab, fit, make_scheduler, phantom_data, run_experiment, split, steps_per_epoch


def matmul_peak(seconds: float = 3.0) -> float:
    """Best float32 GFLOP/s of square matrix products (the machine's practical peak)."""
    best = 0.0
    for n in (1024, 2048, 3072):
        a, b = torch.randn(n, n), torch.randn(n, n)
        a @ b
        deadline = time.perf_counter() + seconds / 3
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            a @ b
            best = max(best, 2 * n**3 / (time.perf_counter() - start) / 1e9)
    return best


def step_throughput(lab: TrainLab, steps: int = 40) -> tuple[float, float]:
    """(GFLOP/s, images/s) of the default model's training steps, counted by torch."""
    model = models.build(lab.model, seed=0, width=lab.width).to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lab.learning_rate)
    x = torch.randn(lab.batch_size, 1, 64, 64).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 2, (lab.batch_size,))

    def step():
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    with FlopCounterMode(display=False) as counter:
        step()
    flops = counter.get_total_flops()
    for _ in range(5):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    elapsed = time.perf_counter() - start
    return flops * steps / elapsed / 1e9, lab.batch_size * steps / elapsed


def time_to_auc(lab: TrainLab, target: float = 0.95) -> tuple[float | None, list]:
    data = phantom_data(lab.phantom_config())
    splits = split(data, lab.split_config())
    model = models.build(lab.model, seed=lab.seed, width=lab.width)
    reached: list[float] = []

    def on_epoch(record, _history):
        if record.val_auc >= target and not reached:
            reached.append(record.seconds)

    history = fit(model, splits, lab.train_config(), on_epoch=on_epoch)
    return (reached[0] if reached else None), history.epochs


def schedule_cost(lab: TrainLab, repeats: int = 20) -> float:
    """Microseconds per scheduler.step() of warm-up + cosine (SequentialLR) on the default model's
    optimizer, over the whole default run's steps, best of `repeats`."""
    model = models.build(lab.model, seed=0, width=lab.width)
    config = dataclasses.replace(lab, lr_schedule="cosine", warmup_epochs=1.0).train_config()
    per_epoch = steps_per_epoch(1400, lab.batch_size)
    total = per_epoch * lab.num_epochs
    best = float("inf")
    for _ in range(repeats):
        optimizer = torch.optim.AdamW(model.parameters(), lr=lab.learning_rate)
        scheduler = make_scheduler(optimizer, config, per_epoch)
        start = time.perf_counter()
        with warnings.catch_warnings():  # "scheduler.step() before optimizer.step()": no optimizer steps here
            warnings.simplefilter("ignore", UserWarning)
            for _ in range(total):
                scheduler.step()
        best = min(best, (time.perf_counter() - start) / total)
    return best * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--labs-only", action="store_true", help="only the validation labs' default runs")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.labs_only:
        validation_labs()
        return
    lab = TrainLab()

    peak = matmul_peak()
    gflops, images_per_s = step_throughput(lab)
    print(f"float32 matmul peak: {peak:.1f} GFLOP/s ({args.threads} threads)")
    print(
        f"training steps: {gflops:.1f} GFLOP/s = {gflops / peak:.0%} of peak, {images_per_s:.0f} images/s  (budget >= 35%)"
    )

    seconds, epochs = time_to_auc(lab)
    curve = ", ".join(f"{e.val_auc:.3f}@{e.seconds:.1f}s" for e in epochs)
    print(f"default setup: validation AUC per epoch: {curve}")
    print(
        f"time to validation AUC >= 0.95: {seconds:.1f} s  (budget <= 10 s)"
        if seconds
        else "validation AUC never reached 0.95"
    )

    schedule_us = schedule_cost(lab)
    step_us = lab.batch_size / images_per_s * 1e6
    print(
        f"learning-rate schedule (warm-up + cosine): {schedule_us:.1f} µs per step = "
        f"{schedule_us / step_us:.4%} of a {step_us / 1000:.1f} ms training step  (should be ~0)"
    )
    focal_seconds, focal_epochs = time_to_auc(dataclasses.replace(lab, loss="focal"))
    curve = ", ".join(f"{e.val_auc:.3f}@{e.seconds:.1f}s" for e in focal_epochs)
    print(f"default setup with focal loss: validation AUC per epoch: {curve}")
    print(
        f"focal loss: time to validation AUC >= 0.95: {focal_seconds:.1f} s, whole run {focal_epochs[-1].seconds:.1f} s"
        if focal_seconds
        else f"focal loss: validation AUC never reached 0.95; whole run {focal_epochs[-1].seconds:.1f} s"
    )

    for contrast, epochs_needed in ((lab.contrast, lab.num_epochs), (1.0, 20)):
        ske = dataclasses.replace(lab, task="ske", contrast=contrast, num_epochs=epochs_needed, num_images=4000)
        result = run_experiment(ske)
        io = ideal_observer(ske.phantom_config()).auc
        print(
            f"SKE variant, contrast {contrast}: CNN test AUC {result.test_auc:.4f}, ideal observer {io:.4f}, ratio {result.test_auc / io:.3f}  (goal >= 0.97)"
        )
    validation_labs()


def validation_labs() -> None:
    """The default runs of the external-validation and ensemble labs, data generation included."""
    from primer import validation as val

    lab = val.ExternalValidationLab()
    start = time.perf_counter()
    site_a = val.train_site_a(lab)
    report = val.compare_sites(site_a, val.site_b_data(lab, site_a), lab.site_b())
    total = time.perf_counter() - start
    moved = dataclasses.replace(lab, b_prevalence=0.1)
    start = time.perf_counter()
    val.compare_sites(site_a, val.site_b_data(moved, site_a), moved.site_b())
    answer = time.perf_counter() - start
    i, e = report.internal, report.external
    print(
        f"external validation, default run: {total:.1f} s end to end ({site_a.seconds:.1f} s training)  (budget <= 30 s);"
        f" internal AUC {i.auc.auc:.3f}, external {e.auc.auc:.3f}"
    )
    print(f"external validation, a site-B control moved after training: {answer:.2f} s (no retraining)")

    ens = val.EnsembleLab()
    start = time.perf_counter()
    members = [val.train_member(ens, k) for k in range(ens.num_models)]
    result = val.ensemble_report(members, val.ensemble_splits(ens.num_images, ens.seed).test.y.numpy())
    total = time.perf_counter() - start
    each = ", ".join(f"{m.seconds:.1f}" for m in members)
    print(
        f"ensemble, default run ({ens.num_models} members): {total:.1f} s end to end (training per member: {each} s)"
        f"  (budget <= 30 s); members' AUC {min(result.member_aucs):.3f}-{max(result.member_aucs):.3f},"
        f" ensemble {result.ensemble_auc:.3f}, with TTA {result.ensemble_tta_auc:.3f}"
    )


if __name__ == "__main__":
    main()
