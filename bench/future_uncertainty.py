"""Uncertainty lab, default run end to end (data included), referral curve, OOD means, and the
redraw time of the display-only control X (the function the page calls)."""

from __future__ import annotations

import time

import numpy as np
import torch


def main() -> None:
    torch.set_num_threads(2)
    # the modules are imported before the clock starts: the app has them loaded before anyone presses Train
    from app.widgets.future_uncertainty import referral_figure, referral_view
    from primer import future_uncertainty as fu

    fu.group_images.cache_clear()  # the data generation is part of the run
    start = time.perf_counter()

    lab = fu.UncertaintyLab()
    first = []
    members = []
    for k in range(lab.num_models):
        cb = (lambda r, h: first.append(time.perf_counter() - start)) if k == 0 else None
        members.append(fu.train_member(lab, k, on_epoch=cb))
    answers = fu.score_groups(lab, members)
    total = time.perf_counter() - start
    print(f"uncertainty, default run: {total:.1f} s end to end; first result {first[0]:.1f} s "
          f"(budget <= 30 s, first <= 5 s)")  # fmt: skip
    labels = fu.group_images(lab.num_images, lab.seed)["test"][1]
    for method in fu.METHODS:
        test = answers[method]["test"]
        c = fu.coverage_curve(labels, test.probs, test.uncertainty(lab.measure), fu.COVERAGES)
        print(f"referral curve ({method}, {lab.measure}): error {c.error[0]:.3f} at 100% coverage -> "
              f"{c.error[-1]:.3f} at 50% (budget: falls)")  # fmt: skip
        for measure in fu.MEASURES:
            means = {g: float(answers[method][g].uncertainty(measure).mean()) for g in fu.GROUPS}
            ok = all(means[g] > means["test"] for g in fu.GROUPS[1:])
            text = ", ".join(f"{g} {v:.3f}" for g, v in means.items())
            aucs = " ".join(f"{g} {fu.ood_auc(answers[method]['test'].uncertainty(measure), answers[method][g].uncertainty(measure)):.2f}"
                            for g in fu.GROUPS[1:])  # fmt: skip
            print(f"OOD mean {measure} ({method}): {text}; every OOD group > test: {ok}; OOD AUC {aucs}")
            if measure == "distance":  # the measure meant for OOD: the budget is read here
                print(f"OOD budget ({method}, feature distance): every OOD group > test: {ok} (budget: True)")
        for measure in fu.MEASURES:
            k = fu.coverage_curve(labels, test.probs, test.uncertainty(measure), fu.COVERAGES)
            print(f"referral by {measure} ({method}): error {k.error[0]:.3f} -> {k.error[10]:.3f} at 90% kept, "
                  f"{k.error[30]:.3f} at 70%, {k.error[-1]:.3f} at 50%")  # fmt: skip
    times = []
    for x in list(range(0, 51, 5)) * 3:
        t = time.perf_counter()
        view = referral_view(fu.UncertaintyLab(refer_percent=x), answers, labels)
        referral_figure(view["curve"], x, {"error": "e", "auc": "a", "coverage": "c"}).to_dict()
        times.append(time.perf_counter() - t)
    print(f"referral redraw (moving X): p95 {np.percentile(times, 95) * 1000:.0f} ms (budget p95 <= 150 ms)")


if __name__ == "__main__":
    main()
