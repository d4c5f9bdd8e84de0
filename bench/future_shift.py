"""Domain-shift lab at its defaults: the two training runs end to end (data generation included),
B scored four ways, and the display-only redraw. Prints one line per figure with its budget.

    PYTHONPATH=. .venv/bin/python -m bench.future_shift
"""

from __future__ import annotations

import statistics
import time

import torch

from primer import future_shift as fs
from primer import i18n
from primer import validation as val


class Page:
    """What the widget's figure function needs from a page: English strings of the chapter."""

    def t(self, key: str, **values) -> str:
        return i18n.translate(f"future.{key}", "en", **values)


def main() -> None:
    torch.set_num_threads(2)  # as the app's jobs run
    val.site_a_splits.cache_clear()  # data generation counts
    lab = fs.ShiftLab()
    start = time.perf_counter()
    first = []

    def on_epoch(_record, _history):
        if not first:
            first.append(time.perf_counter() - start)

    base = fs.train_base(lab, on_epoch=on_epoch)
    aug = fs.train_augmented(lab)
    report = fs.shift_report(lab, base, aug)
    total = time.perf_counter() - start
    print(f"domain shift, default run (two models + B four ways): {total:.1f} s end to end; "
          f"first result {first[0]:.1f} s (budget <= 30 s, first <= 5 s)")  # fmt: skip
    best = fs.best_remedy(report)
    print(f"domain shift, AUC at A {report.internal.auc.auc:.3f}, at B {report.arms['none'].auc.auc:.3f}: "
          f"AUC drop {report.drop:.3f} (budget >= 0.10)")  # fmt: skip
    arms = ", ".join(f"{name} {report.arms[name].auc.auc:.3f} ({report.recovered[name]:.0%})" for name in fs.ARMS[1:])
    print(f"domain shift, remedies (share of the drop recovered): {arms}; best {best} "
          f"{report.recovered[best]:.0%} (budget >= 50%)")  # fmt: skip
    print(f"domain shift, ECE at A {report.internal.ece:.3f}, at B {report.arms['none'].ece:.3f} (calibration drift)")
    print(f"domain shift, re-scoring B after moving its level: {report.seconds:.2f} s")
    from app.widgets import future_shift as widget  # the function the page calls on a display-only change

    page, times = Page(), []
    for i in range(40):
        t0 = time.perf_counter()
        for fig in widget.figures(page, report, fs.ARMS[i % len(fs.ARMS)]):
            fig.to_json()  # what Streamlit serialises
        times.append(time.perf_counter() - t0)
    p95 = statistics.quantiles(times, n=20)[-1] * 1000
    print(f"domain shift, display-only redraw (reliability diagram of another arm): p95 {p95:.0f} ms "
          f"(budget p95 <= 150 ms server time)")  # fmt: skip


if __name__ == "__main__":
    main()
