"""Vision transformer vs CNN lab, default run: both models at all three sizes end to end (data
generation included, two threads as the app's jobs use), the first result, the AUC ordering at
the smallest size, the pointing game at every size, and the redraw of a display-only control
(picking another test lesion).

    PYTHONPATH=. .venv/bin/python -m bench.future_vit
    PYTHONPATH=. .venv/bin/python -m bench.future_vit largest=1400 steps=200   # a preset's values
"""

from __future__ import annotations

import sys
import time

import numpy as np
import torch

from primer import future_vit as fv


def main(overrides: list[str]) -> None:
    torch.set_num_threads(2)
    fv.base_splits.cache_clear()
    lab = fv.VitLab(**{k: int(v) for k, v in (item.split("=", 1) for item in overrides)})
    if overrides:
        print(f"vit vs cnn with {' '.join(overrides)}")
    start = time.perf_counter()
    first: list[float] = []
    first_epoch: list[float] = []

    def on_epoch(live):
        if not first_epoch:
            first_epoch.append(time.perf_counter() - start)

    def on_run(run):
        if not first:
            first.append(time.perf_counter() - start)
        print(f"  {run.model} on {run.size:4d} images: test AUC {run.test_auc:.3f} ({run.seconds:.1f} s)", flush=True)

    result = fv.run_sweep(lab, on_run=on_run, on_epoch=on_epoch)
    total = time.perf_counter() - start
    print(
        f"vit vs cnn, default run: {total:.1f} s end to end; first result {first_epoch[0]:.1f} s (first epoch on the "
        f"live curve), first finished run {first[0]:.1f} s (budget <= 30 s, first <= 5 s)"
    )
    small = result.sizes[0]
    vit, cnn = result.auc("vit", small), result.auc("cnn", small)
    print(
        f"vit vs cnn, smallest size ({small} images): ViT AUC {vit:.3f} < CNN AUC {cnn:.3f}: {vit < cnn} (budget: ViT below CNN)"
    )
    for size in result.sizes:
        v = fv.view(result, fv.VitLab(explain_size=len(result.sizes) - 1 - result.sizes.index(size)))
        print(f"  pointing game at {size} images: ViT {v.vit_hits:.2f} [{v.vit_ci[0]:.2f}, {v.vit_ci[1]:.2f}], "
              f"CNN {v.cnn_hits:.2f} [{v.cnn_ci[0]:.2f}, {v.cnn_ci[1]:.2f}], random point {v.chance:.3f}")  # fmt: skip
    words = {k: k for k in ("cnn", "vit", "size", "auc", "chance", "image", "rollout", "gradcam", "pointing", "random")}
    times = []
    for i in range(40):  # what the page runs when another image is picked: the view and its two figures
        t = time.perf_counter()
        v = fv.view(result, fv.VitLab(image=i))
        fv.maps_figure(v, words).to_json()
        fv.pointing_figure(v, words).to_json()
        times.append((time.perf_counter() - t) * 1000)
    print(f"vit vs cnn, pick another image: p95 {np.percentile(times, 95):.0f} ms server time (budget p95 <= 150 ms)")


if __name__ == "__main__":
    main(sys.argv[1:])
