"""Architectures chapter budgets, measured in one run on this machine:

- the U-Net reaches Dice ≥ 0.8 on the default segmentation phantoms within 60 s of training;
- the live one-stage detector reaches AP@0.5 ≥ 0.8 within 60 s of training;
- the race of three classification models (the race lab's default) finishes within 60 s;
- the scaling lab: its FLOPs table (every mode × φ, counted by torch) and its default run (compound
  φ = 1, 500 phantoms resized to 37 px, 6 epochs) within 30 s;
- for the record: the generative models' training times, the shipped two-stage model's metrics,
  and the page's script time for a slider change (AppTest, server side; no browser).

Usage: .venv/bin/python -m bench.architectures [--threads 2] [--skip-page] [--only scaling]
Timings depend on what else the machine runs: the load average is printed with them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} (1 min), {five:.1f} (5 min) on {os.cpu_count()} cores"


def first_reaching(history, threshold: float) -> float | None:
    """Training seconds at the end of the first epoch whose score reaches the threshold."""
    return next((h.seconds for h in history if h.score >= threshold), None)


def bench_tasks() -> None:
    from primer import tasks

    config = tasks.task_config()
    start = time.perf_counter()
    train, test = tasks.task_data(config)
    print(f"data: {len(train)} training and {len(test)} test phantoms in {time.perf_counter() - start:.1f} s")
    train_config = tasks.TaskTrainConfig()
    for name, trainer, metric in (
        ("U-Net", lambda: tasks.train_segmenter(train, test, train_config), "Dice"),
        ("one-stage detector", lambda: tasks.train_detector(train, test, train_config), "AP@0.5"),
    ):
        _, history = trainer()
        reached = first_reaching(history, 0.8)
        scores = " ".join(f"{h.score:.3f}" for h in history)
        verdict = "within budget" if reached is not None and reached <= 60 else "OVER BUDGET"
        when = f"{reached:.1f} s" if reached is not None else "never"
        print(
            f"{name}: {metric} ≥ 0.8 after {when} of training ({verdict}, budget 60 s); "
            f"final {metric} {history[-1].score:.3f} after {history[-1].seconds:.1f} s; per epoch: {scores}"
        )


def bench_race() -> None:
    from primer.architectures import RaceLab
    from primer.train import run_experiment

    lab = RaceLab()
    start = time.perf_counter()
    for train_lab in lab.train_labs():
        result = run_experiment(train_lab)
        print(f"  {train_lab.model}: test AUC {result.test_auc:.3f}, training {result.seconds:.1f} s")
    total = time.perf_counter() - start
    verdict = "within budget" if total <= 60 else "OVER BUDGET"
    print(f"race of {len(lab.chosen())} ({', '.join(lab.chosen())}): {total:.1f} s end to end ({verdict}, budget 60 s)")


def bench_scaling() -> None:
    from primer import scaling

    start = time.perf_counter()
    table = scaling.scaling_table("resnet_small")
    print(
        f"scaling lab FLOPs table: {len(table)} variants built and counted by torch in {time.perf_counter() - start:.2f} s"
    )
    for mode in scaling.MODES:
        line = [v for v in table if v.mode == mode]
        steps = " ".join(f"{b.flops / a.flops:.2f}" for a, b in zip(line, line[1:], strict=False))
        mean = (line[-1].flops / line[0].flops) ** (1 / scaling.MAX_PHI)
        print(
            f"  {mode}: FLOPs ratio per φ step {steps}; mean {mean:.3f} (ideal {scaling.ideal_flops_ratio(mode):.3f})"
        )
    lab = scaling.ScaleLab()
    start = time.perf_counter()
    run = scaling.train_scaled(lab)
    total = time.perf_counter() - start
    verdict = "within budget" if total <= 30 else "OVER BUDGET"
    dims = run.variant.dims
    print(
        f"scaling lab default run ({lab.base}, {lab.mode} φ = {lab.phi}: {dims.depth} blocks/stage, {dims.width} channels, "
        f"{dims.resolution} px, {run.variant.flops / 1e6:.1f} MFLOPs): {total:.1f} s end to end, {run.seconds:.1f} s training "
        f"({verdict}, budget 30 s); val AUC per epoch {' '.join(f'{a:.3f}' for a in run.val_auc)}, test AUC {run.test_auc:.3f}"
    )


def bench_generative() -> None:
    from primer import generative as gen

    train, test = gen.ct_patches()
    _, history = gen.train_dae(train, test)
    print(
        f"denoising autoencoder: {history[-1].seconds:.1f} s for {len(history)} epochs, test PSNR at σ=0.1 {history[-1].score:.1f} dB"
    )
    patches, _ = gen.lesion_patches()
    _, run = gen.train_vae(patches)
    print(f"VAE: {run.history[-1].seconds:.1f} s for {len(run.history)} epochs, test loss {run.history[-1].score:.1f}")


def bench_two_stage() -> None:
    from primer.tasks import TWO_STAGE_CHECKPOINT, load_two_stage

    _, raw = load_two_stage()
    size = TWO_STAGE_CHECKPOINT.stat().st_size / 1024
    m = raw["metrics"]
    print(
        f"two-stage checkpoint: {size:.0f} KB, box AP@0.5 {m['box_ap50']:.3f}, mask IoU {m['mask_iou']:.3f}, "
        f"trained in {raw['seconds']:.0f} s ({raw['recipe']['steps']} steps)"
    )


def bench_page(repeats: int = 8) -> None:
    """Script time of the page for slider changes, measured through AppTest (server side)."""
    from tests.conftest import run_page

    at = run_page("views/architectures.py", timeout=600)
    for key, values in (("degrade.blocks_per_stage", [4, 5]), ("fourtask.nms_iou", [0.5, 0.6])):
        times = []
        for i in range(repeats):
            widget = at.slider(key=key)
            widget.set_value(values[i % 2])
            start = time.perf_counter()
            at.run()
            times.append(time.perf_counter() - start)
        print(
            f"page rerun after moving {key} (cached values): median {statistics.median(times) * 1000:.0f} ms, "
            f"max {max(times) * 1000:.0f} ms over {repeats} runs (AppTest, whole page script)"
        )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-page", action="store_true")
    parser.add_argument("--only", choices=["scaling"], help="run one part alone")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"torch threads {args.threads}; {load()}")
    if args.only == "scaling":
        bench_scaling()
        print(f"done; {load()}")
        return
    bench_tasks()
    bench_race()
    bench_scaling()
    bench_generative()
    bench_two_stage()
    if not args.skip_page:
        bench_page()
    print(f"done; {load()}")


if __name__ == "__main__":
    main()
