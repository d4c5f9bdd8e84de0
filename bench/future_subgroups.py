"""Subgroups lab, default run end to end (data generation included, two threads as the app's
jobs use), the first result, the gap between the rare scanner B and the common scanner A at the
defaults, and the redraw of the display-only controls (grouping, threshold rule).

    PYTHONPATH=. .venv/bin/python -m bench.future_subgroups
"""

from __future__ import annotations

import itertools
import time

import numpy as np
import torch

from primer import future_subgroups as fsg


def main() -> None:
    torch.set_num_threads(2)
    lab = fsg.SubgroupLab()
    first: list[float] = []
    start = time.perf_counter()

    def on_epoch(record, _history):
        if not first:
            first.append(time.perf_counter() - start)

    model = fsg.train_mixture(lab, on_epoch=on_epoch)
    total = time.perf_counter() - start
    print(f"subgroups, default run: {total:.1f} s end to end; first result {first[0]:.1f} s "
          f"(budget <= 30 s, first <= 5 s)")  # fmt: skip
    report = fsg.subgroup_report(model, "scanner", "youden")
    a, b = report.rows
    print(f"rare scanner B ({lab.b_share:.0%} of training) vs A at one threshold {report.threshold:.2f}: "
          f"sensitivity {a.sensitivity:.3f} vs {b.sensitivity:.3f} (gap {a.sensitivity - b.sensitivity:.3f}), "
          f"AUC {a.auc.auc:.3f} vs {b.auc.auc:.3f} (gap {a.auc.auc - b.auc.auc:.3f}) "
          f"(budget: sensitivity gap >= 0.10, AUC gap > 0)")  # fmt: skip
    names = {}
    words = {p: p for p in fsg.PANELS}
    times = []
    for grouping, rule in list(itertools.product(fsg.GROUPINGS, fsg.RULES)) * 5:
        t = time.perf_counter()
        fsg.forest_figure(fsg.subgroup_report(model, grouping, rule), names, words).to_dict()
        times.append(time.perf_counter() - t)
    print(f"subgroup redraw (grouping, threshold rule): p95 {np.percentile(times, 95) * 1000:.0f} ms "
          f"(budget p95 <= 150 ms)")  # fmt: skip


if __name__ == "__main__":
    main()
