"""Saliency benchmarks: time per method on one 64×64 image with the default model, Grad-CAM
against the `grad-cam` package on the same model and layer, and pointing-game scores per method.

    .venv/bin/python -m bench.saliency                 # timings + grad-cam comparison + pointing game
    .venv/bin/python -m bench.saliency --quick         # timings and the comparison only
    .venv/bin/python -m bench.saliency --page          # also the page's script time per rerun (AppTest)
    .venv/bin/python -m bench.saliency --threads 1     # one thread (a machine whose other core is busy)

Budgets (design §5): Grad-CAM and Saliency ≤ 20 ms, Integrated Gradients (50 steps) ≤ 250 ms,
Occlusion ≤ 1 s, Grad-CAM no slower than pytorch-grad-cam. Times are medians (and minima) of
repeated calls after a warm-up, with torch limited to 2 threads by default; the machine's load
average is printed beside them, because other processes on a shared machine slow everything
down, two-thread runs most of all (one busy core stalls every parallel region).
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import time
import warnings

import numpy as np
import torch

from primer import explain
from primer.default_model import load_default

BUDGET_MS = {"gradcam": 20, "saliency": 20, "integrated_gradients": 250, "occlusion": 1000}


def timed(fn, repeats: int) -> tuple[float, float]:
    """(median, minimum) wall time of fn() in ms after two warm-up calls."""
    fn()
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), min(times)


def method_times(model, x, repeats: int) -> dict[str, tuple[float, float]]:
    settings = explain.MethodSettings()  # the explorer's defaults: IG 50 steps, occlusion 8 px / stride 4
    out = {}
    for method in explain.METHODS:
        n = max(3, repeats // 5) if method in ("occlusion", "integrated_gradients", "gradient_shap") else repeats
        out[method] = timed(lambda method=method: explain.attribute(model, x, method, 1, settings), n)
    return out


def compare_with_grad_cam_package(default, x, repeats: int) -> dict:
    """Our Grad-CAM and pytorch-grad-cam's GradCAM on the same model, layer and image."""
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    frozen = explain.private_copy(default.model)  # what the page explains
    live = copy.deepcopy(
        default.model
    ).eval()  # the package backpropagates to the activations: weights must not be frozen
    layer_name = explain.conv_blocks(live)[-1].name
    layer = live.get_submodule(layer_name)
    targets = [ClassifierOutputTarget(1)]
    cam = GradCAM(model=live, target_layers=[layer])
    theirs_map = cam(input_tensor=x, targets=targets)[0]  # (H, W), min-max scaled by the package
    ours_map = explain.gradcam(frozen, x, 1)[0, 0]
    ours = timed(lambda: explain.gradcam(frozen, x, 1), repeats)
    ours_live = timed(lambda: explain.gradcam(live, x, 1), repeats)
    theirs = timed(lambda: cam(input_tensor=x, targets=targets), repeats)
    theirs_fresh = timed(lambda: GradCAM(model=live, target_layers=[layer])(input_tensor=x, targets=targets), repeats)
    return {
        "layer": layer_name,
        "ours": ours,
        "ours_live": ours_live,
        "theirs": theirs,
        "theirs_fresh": theirs_fresh,
        "correlation": float(np.corrcoef(ours_map.ravel(), theirs_map.ravel())[0, 1]),
    }


def pointing_scores(default) -> tuple[list[dict], int, float]:
    ctx = explain.from_default(default)
    count = int((default.test.y == 1).sum())
    start = time.perf_counter()
    maps, masks, positions = explain.localization_for(ctx, "positives", count)
    seconds = time.perf_counter() - start
    return explain.score_maps(maps, masks, 0, positions).summary(), len(positions), seconds


def page_rerun_times(repeats: int) -> dict[str, float]:
    """Script time of one rerun of the saliency page after moving a control (AppTest, in process)."""
    from tests.conftest import run_page

    at = run_page("views/saliency.py", timeout=600)
    out = {}
    for key, values in {"attrib.opacity": [0.3, 0.7], "sanity.depth": [1, 4]}.items():
        times = []
        for k in range(repeats):
            at.slider(key=key).set_value(values[k % 2])
            start = time.perf_counter()
            at.run(timeout=600)
            times.append((time.perf_counter() - start) * 1000)
        out[key] = statistics.median(times)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--quick", action="store_true", help="skip the pointing game over the test set")
    parser.add_argument("--page", action="store_true", help="also time page reruns through AppTest")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (the design's budget: 2)")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)

    default = load_default()
    model = explain.private_copy(default.model)
    x = default.test.x[default.test.y == 1][:1].contiguous()  # (1, 1, 64, 64)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f}")
    print(f"input {tuple(x.shape)}, default model test AUC {default.metrics['test_auc']:.3f}\n")

    print(f"{'method':<22}{'median ms':>10}{'min ms':>9}{'budget':>9}")
    times = method_times(model, x, args.repeats)
    for method, (median, best) in times.items():
        budget = BUDGET_MS.get(method)
        verdict = "" if budget is None else f"{budget:>6} {'ok' if median <= budget else 'OVER'}"
        print(f"{method:<22}{median:>10.1f}{best:>9.1f}   {verdict}")
    print(
        "attribution latency (median): "
        + ", ".join(f"{m} {times[m][0]:.1f} ms" for m in BUDGET_MS)
        + " (budget "
        + " / ".join(f"{b:g}" for b in BUDGET_MS.values())
        + " ms)"
    )

    c = compare_with_grad_cam_package(default, x, args.repeats)
    print(f"\nGrad-CAM on {c['layer']} vs pytorch-grad-cam GradCAM (median / min ms)")
    print(f"  ours (frozen copy, as the page runs it)  {c['ours'][0]:7.2f} / {c['ours'][1]:.2f}")
    print(f"  ours (same live model as the package)    {c['ours_live'][0]:7.2f} / {c['ours_live'][1]:.2f}")
    print(f"  grad-cam, object reused                  {c['theirs'][0]:7.2f} / {c['theirs'][1]:.2f}")
    print(f"  grad-cam, object built per call          {c['theirs_fresh'][0]:7.2f} / {c['theirs_fresh'][1]:.2f}")
    print(f"  ratio ours / grad-cam (median)           {c['ours'][0] / c['theirs'][0]:7.2f}  (budget <= 1.0)")
    print(f"  correlation of the two maps              {c['correlation']:7.4f}")

    if not args.quick:
        rows, n, seconds = pointing_scores(default)
        print(f"\nPointing game on {n} test lesions (explain.BATCH_SETTINGS; {seconds:.1f} s for all maps)")
        print(f"{'method':<22}{'pointing':>9}  {'95% CI':<13}{'energy in mask':>15}")
        for r in sorted(rows, key=lambda r: -r["pointing"]):
            ci = f"{r['pointing_low']:.2f}–{r['pointing_high']:.2f}"
            print(f"{r['method']:<22}{r['pointing']:>9.2f}  {ci:<13}{r['energy']:>15.3f}")

    if args.page:
        print("\nPage script time per rerun (AppTest, median ms):")
        for key, ms in page_rerun_times(5).items():
            print(f"  {key:<18}{ms:8.0f}")
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
