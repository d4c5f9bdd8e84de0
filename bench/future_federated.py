"""Federated-learning lab, default run: FedAvg, each hospital alone and the centralized model end
to end (the hospitals' data generation included, two threads as the app's jobs use), the first
result (FedAvg's first round on the curve), FedAvg against the average local-only model on the
new hospital, and the redraw of the display-only "test set shown" control.

    PYTHONPATH=. .venv/bin/python -m bench.future_federated
"""

from __future__ import annotations

import os
import time

import numpy as np
import torch

from primer import future_federated as fl


class _Page:
    """Stands in for the page's translator (the redraw is timed without streamlit)."""

    @staticmethod
    def t(key: str, **kwargs) -> str:
        return key + "".join(f" {v}" for v in kwargs.values())


def main() -> None:
    torch.set_num_threads(2)
    fl._federation.cache_clear()
    fl.shared_preprocessing.cache_clear()
    lab = fl.FederatedLab()
    print(f"load average at start: {os.getloadavg()[0]:.1f} (measured once; the lead re-runs it quietly)")
    start = time.perf_counter()
    first: list[float] = []

    def on_step(step):
        if not first:
            first.append(time.perf_counter() - start)

    result = fl.run_comparison(lab, on_step=on_step)
    total = time.perf_counter() - start
    parts = ", ".join(f"{k} {v:.1f} s" for k, v in result.seconds.items())
    print(
        f"federated, default run: {total:.1f} s end to end ({parts}); first result {first[0]:.1f} s "
        "(budget <= 30 s, first <= 5 s)"
    )
    fed, local = result.auc["fedavg"]["new"].auc, result.local_mean_auc("new")
    central = result.auc["central"]["new"].auc
    print(
        f"federated, new hospital: FedAvg AUC {fed:.3f} vs average local-only {local:.3f}: {fed > local} "
        f"(budget FedAvg > local average); centralized {central:.3f} for reference"
    )

    from app.widgets import future_federated as widget  # the function the page calls on a redraw

    page = _Page()
    views = [f"h{k}" for k in range(lab.num_hospitals)] + ["new"]
    times = []
    for i in range(60):
        t = time.perf_counter()
        widget.results_figure(page, result, views[i % len(views)]).to_json()
        times.append((time.perf_counter() - t) * 1000)
    print(
        f"federated, redraw of 'test set shown': p95 {np.percentile(times, 95):.1f} ms, median "
        f"{np.median(times):.1f} ms (budget p95 <= 150 ms)"
    )


if __name__ == "__main__":
    main()
