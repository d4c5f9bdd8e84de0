"""Architectures chapter budgets, measured in one run on this machine:

- the U-Net reaches Dice ≥ 0.8 on the default segmentation phantoms within 60 s of training;
- the live one-stage detector reaches AP@0.5 ≥ 0.8 within 60 s of training;
- the race of three classification models (the race lab's default) finishes within 60 s;
- the scaling lab: its FLOPs table (every mode × φ, counted by torch) and its default run (compound
  φ = 1, 2,000 phantoms resized to 37 px, 6 epochs) within 30 s;
- for the record: the generative models' training times, the shipped two-stage model's metrics,
  and the page's script time for a slider change (AppTest, server side; no browser);
- the four-tasks lab's segmenter choices: the dilated segmenter's default run beside the
  U-Net's, each loss's Dice and unsure share, and the time to evaluate the two-stage model's
  box AP on the whole test set (what the page computes, once per setting, without training).

Usage: .venv/bin/python -m bench.architectures [--threads 2] [--skip-page] [--only scaling] [--gan-only] [--only-tasks]
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


SEGMENTER_RUNS = ("unet:dice_ce", "dilated:dice_ce", "unet:ce", "unet:dice")


def bench_segmenters(runs=SEGMENTER_RUNS) -> None:
    """The lab's segmenter options on the default data: default run time, Dice, what the loss does."""
    from primer import tasks

    train, test = tasks.task_data(tasks.task_config())
    config = tasks.TaskTrainConfig()
    for segmenter, loss in (run.split(":") for run in runs):
        model, history = tasks.train_segmenter(train, test, config, segmenter=segmenter, loss=loss)
        r = tasks.segmentation_report(model, test)
        print(
            f"segmenter {segmenter} + {loss}: {history[-1].seconds:.1f} s for {len(history)} epochs; "
            f"Dice {r.dice:.3f}, per image {r.image_dice:.3f}, smallest third {r.small_dice:.3f}, "
            f"largest third {r.large_dice:.3f}; unsure (0.1<p<0.9) {r.uncertain:.1%} of all pixels, "
            f"{r.lesion_uncertain:.1%} on lesions + border; receptive field {tasks.segmenter_receptive_field(model)} px"
        )


def bench_two_stage_ap() -> None:
    from primer import tasks

    model, _ = tasks.load_two_stage()
    _, test = tasks.task_data(tasks.task_config())
    start = time.perf_counter()
    pr = tasks.two_stage_pr(model, test)
    seconds = time.perf_counter() - start
    shape = tasks.two_stage_anatomy(model)
    print(
        f"two-stage box AP@0.5 on the {len(test)} default test images: {pr.average_precision:.3f} in {seconds:.1f} s "
        f"(page: once per setting, cached); RPN: {shape.anchors_per_image} anchors per image, "
        f"{shape.post_nms_top_n} proposals, feature pyramid: {shape.has_fpn}"
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


def bench_gan() -> None:
    """The GAN lab's default run and its presets: time to the first step and the first picture,
    total time, and what the preset commentaries state (mode figures, the curves at the end)."""
    import dataclasses

    import numpy as np

    from primer import generative as gen
    from primer import labstate

    patches, _ = gen.lesion_patches()
    for preset in labstate.load_presets("architectures")["gan"]:
        lab = dataclasses.replace(gen.GanLab(), **preset.values)
        start, first = time.perf_counter(), {}

        def on_step(record, picture, first=first, start=start):
            first.setdefault("step", time.perf_counter() - start)
            if picture is not None:
                first.setdefault("picture", time.perf_counter() - start)

        _, run = gen.train_gan(patches, lab.config(), on_step)
        seconds = time.perf_counter() - start
        last = run.steps[-20:]
        mean = {k: np.mean([getattr(s, k) for s in last]) for k in ("d_loss", "g_loss", "d_real", "d_fake")}
        low_d = np.mean([s.d_loss < 0.1 for s in run.steps])
        r = run.report
        print(
            f"GAN {preset.id}: {seconds:.1f} s for {len(run.steps)} generator steps ({len(run.history)} epochs), "
            f"first step after {first['step']:.2f} s, first samples after {first['picture']:.2f} s; "
            f"diversity {r.diversity:.2f} (per epoch {', '.join(f'{h.score:.2f}' for h in run.history)}), "
            f"lesion in {r.lesion_share:.0%} (real {r.real_lesion_share:.0%}), centres spread {r.centre_spread:.2f} px "
            f"(real {r.real_centre_spread:.2f}); last 20 steps: D loss {mean['d_loss']:.2f}, G loss {mean['g_loss']:.2f}, "
            f"D(real) {mean['d_real']:.2f}, D(fake) {mean['d_fake']:.2f}; steps with D loss < 0.1: {low_d:.0%}; "
            f"max G loss {max(s.g_loss for s in run.steps):.1f}"
        )


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
    parser.add_argument("--only-tasks", action="store_true", help="the four-tasks lab's figures only")
    parser.add_argument("--runs", nargs="*", default=SEGMENTER_RUNS, help="segmenter:loss runs, e.g. dilated:dice_ce")
    parser.add_argument("--skip-two-stage-ap", action="store_true")
    parser.add_argument("--gan-only", action="store_true", help="only the GAN lab's runs")
    parser.add_argument("--only", choices=["scaling"], help="run one part alone")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"torch threads {args.threads}; {load()}")
    if args.only_tasks or args.gan_only or args.only:
        if args.only_tasks:
            bench_segmenters(args.runs)
            if not args.skip_two_stage_ap:
                bench_two_stage_ap()
        if args.gan_only:
            bench_gan()
        if args.only == "scaling":
            bench_scaling()
        print(f"done; {load()}")
        return
    bench_tasks()
    bench_segmenters()
    bench_two_stage_ap()
    bench_race()
    bench_scaling()
    bench_generative()
    bench_gan()
    bench_two_stage()
    if not args.skip_page:
        bench_page()
    print(f"done; {load()}")


if __name__ == "__main__":
    main()
