"""Reproduce the shipped two-stage model: torchvision's Mask R-CNN with a tiny backbone, trained
on the four-tasks lab's default phantoms, saved to models/checkpoints/two_stage.pt.

.venv/bin/python -m scripts.train_two_stage            # train (a few minutes on 2 cores) and write
.venv/bin/python -m scripts.train_two_stage --check    # retrain the first steps, compare the losses
.venv/bin/python -m scripts.train_two_stage --check --full   # retrain everything, compare metrics

The checkpoint records the losses of the first `CHECK_STEPS` steps; `--check` repeats those
steps from the same seed and fails when the mean loss of the last ten differs by more than 5%
(floating-point sums differ a little between CPUs, a changed recipe differs a lot).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import time

import numpy as np
import torch

import models
from primer import segdet
from primer.tasks import (
    TWO_STAGE_CHECKPOINT,
    load_two_stage,
    task_config,
    task_data,
    two_stage_predict,
    two_stage_targets,
)

SEED = 0
STEPS = 900  # ≈ 7 epochs of 1000 images in batches of 8
BATCH = 8
LEARNING_RATE = 2e-3
CHECK_STEPS = 30
MODEL_KWARGS = {"width": 16, "image_size": 64}


def train(steps: int, on_step=None):
    """Seeded training; returns the model and the loss of every step."""
    # torchvision's proposal samplers draw from the global generator: this script owns its
    # process, so seeding it is safe and makes the run repeatable.
    torch.manual_seed(SEED)
    train_data, _ = task_data(task_config(seed=SEED))
    model = models.build("mask_rcnn_small", seed=SEED, **MODEL_KWARGS).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=LEARNING_RATE, total_steps=STEPS, pct_start=0.1)
    g = torch.Generator().manual_seed(SEED)
    # Only images with lesions: torchvision's heads accept empty targets, but every step then
    # teaches the mask head nothing. Empty images still teach the RPN what background is,
    # through the negative anchors of the positive images.
    positives = np.flatnonzero(train_data.labels == 1)
    losses: list[float] = []
    order = torch.randperm(len(positives), generator=g)
    cursor = 0
    for step in range(steps):
        if cursor + BATCH > len(order):
            order, cursor = torch.randperm(len(positives), generator=g), 0
        index = positives[order[cursor : cursor + BATCH].numpy()]
        cursor += BATCH
        parts = model(list(train_data.x[torch.from_numpy(index)]), two_stage_targets(train_data, index))
        loss = sum(parts.values())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(float(loss.detach()))
        if on_step is not None:
            on_step(step, {k: float(v.detach()) for k, v in parts.items()})
    return model.eval(), losses


def evaluate(model) -> dict:
    """Box AP@0.5 on the test images, and the mean mask IoU of the lesions it found."""
    _, test = task_data(task_config(seed=SEED))
    found = two_stage_predict(model, test.x)
    matches = segdet.match_detections(
        [f.boxes for f in found], [f.scores for f in found], [b.astype(np.float64) for b in test.boxes], 0.5
    )
    ap = segdet.detection_pr(matches).average_precision
    ious = []
    for i, f in enumerate(found):
        predicted = f.instance_map(score_threshold=0.5)
        truth = test.instance_map[i]
        for t in range(1, int(truth.max()) + 1):
            hits = [segdet.iou(truth == t, predicted == p) for p in np.unique(predicted[truth == t]) if p]
            ious.append(max(hits, default=0.0))
    return {"box_ap50": float(ap), "mask_iou": float(np.mean(ious)) if ious else float("nan")}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--check", action="store_true", help="retrain and compare with the checkpoint; do not write")
    parser.add_argument("--full", action="store_true", help="with --check: retrain fully and compare the metrics")
    parser.add_argument("--steps", type=int, default=None, help="with --check: steps to repeat (default: recorded)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (1 is faster on a busy machine)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.check:
        _, shipped = load_two_stage()
        if args.full:
            model, _ = train(STEPS)
            metrics = evaluate(model)
            gap = abs(metrics["box_ap50"] - shipped["metrics"]["box_ap50"])
            print(
                f"AP@0.5 {metrics['box_ap50']:.3f} (shipped {shipped['metrics']['box_ap50']:.3f}), difference {gap:.3f}"
            )
            return 0 if gap <= 0.03 else 1
        recorded = shipped["check_losses"]
        steps = min(args.steps or len(recorded), len(recorded))
        _, losses = train_prefix(steps)
        window = slice(max(0, steps - 10), steps)
        new, old = float(np.mean(losses[window])), float(np.mean(recorded[window]))
        gap = abs(new - old) / max(old, 1e-9)
        print(f"mean loss of steps {window.start + 1}–{steps}: {new:.4f} (recorded {old:.4f}), {gap:.1%} apart")
        return 0 if gap <= 0.05 else 1

    start = time.perf_counter()

    def report(step, parts):
        if step % 50 == 0 or step == STEPS - 1:
            text = ", ".join(f"{k.removeprefix('loss_')} {v:.3f}" for k, v in parts.items())
            print(f"step {step + 1}/{STEPS} ({time.perf_counter() - start:.0f} s): {text}", flush=True)

    model, losses = train(STEPS, report)
    metrics = evaluate(model)
    print(f"test: box AP@0.5 {metrics['box_ap50']:.3f}, mask IoU {metrics['mask_iou']:.3f}")
    buffer = io.BytesIO()
    torch.save(
        {
            "model_kwargs": MODEL_KWARGS,
            "state_dict": {k: v.detach().clone() for k, v in model.state_dict().items()},
            "metrics": metrics,
            "recipe": {"seed": SEED, "steps": STEPS, "batch": BATCH, "learning_rate": LEARNING_RATE},
            "check_losses": losses[:CHECK_STEPS],
            "seconds": time.perf_counter() - start,
            "torch": str(torch.__version__),
        },
        buffer,
    )
    TWO_STAGE_CHECKPOINT.parent.mkdir(parents=True, exist_ok=True)
    TWO_STAGE_CHECKPOINT.write_bytes(buffer.getvalue())
    print(f"wrote {TWO_STAGE_CHECKPOINT} ({TWO_STAGE_CHECKPOINT.stat().st_size / 1024:.0f} KB)")
    return 0


def train_prefix(steps: int):
    """The first `steps` steps of the full recipe (the schedule is the full run's, so the
    learning rate at each step matches the recorded run)."""
    recorded: list[float] = []

    class Stop(Exception):
        pass

    def on_step(step, parts):
        recorded.append(sum(parts.values()))
        if step + 1 >= steps:
            raise Stop

    with contextlib.suppress(Stop):
        train(STEPS, on_step)
    return None, recorded


if __name__ == "__main__":
    sys.exit(main())
