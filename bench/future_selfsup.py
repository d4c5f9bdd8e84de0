"""Self-supervised pretraining lab, default run: contrastive pretraining, supervised pretraining
on the other task and every reader at every label budget, end to end (data generation included,
two threads as the app's jobs use); the first result; the gain over scratch at the smallest
budget; and the redraw of the display-only controls (the budget shown, the projection).

    PYTHONPATH=. .venv/bin/python -m bench.future_selfsup
"""

from __future__ import annotations

import time

import numpy as np
import torch

from primer import future_selfsup as fss


def main() -> None:
    torch.set_num_threads(2)
    fss.data.cache_clear()
    lab = fss.SelfSupLab()
    start = time.perf_counter()
    first: list[float] = []

    def on_step(record):
        if not first:
            first.append(time.perf_counter() - start)

    result = fss.run(lab, on_step=on_step)
    total = time.perf_counter() - start
    stages = ", ".join(f"{k} {v:.1f} s" for k, v in result.seconds.items() if k != "total")
    print(f"self-supervised, default run: {total:.1f} s end to end ({stages}); first result {first[0]:.1f} s "
          f"(budget <= 30 s, first <= 5 s)")  # fmt: skip
    print(f"  contrastive loss: {result.losses[0]:.3f} at the first step, {np.mean(result.losses[-5:]):.3f} "
          f"over the last five (chance level ln(2B - 1) = {np.log(2 * lab.batch_size - 1):.3f})")  # fmt: skip
    for reader in fss.READERS:
        labels, aucs = result.curve(reader)
        print(f"  {reader:10s} " + "  ".join(f"{n}: {a:.3f}" for n, a in zip(labels, aucs, strict=True)))
    smallest = fss.BUDGETS[0]
    gain = fss.smallest_budget_gain(result)
    print(f"self-supervised, smallest budget ({smallest} labels): AUC {result.auc('selfsup', smallest):.3f} vs "
          f"scratch {result.auc('scratch', smallest):.3f}, gain {gain:+.3f}: {gain > 0} (budget: beats scratch)")  # fmt: skip
    words = {k: k for k in (*fss.READERS, "labels", "auc", "chance", "loss", "step", "emb_random", "emb_selfsup",
                            "class0", "class1")}  # fmt: skip
    t = time.perf_counter()
    fss.embedding_figure(result, "pca", words).to_json()
    print(f"  first PCA embedding (computed, then cached): {(time.perf_counter() - t) * 1000:.0f} ms")
    from sklearn.metrics import roc_auc_score

    for encoder in fss.EMBEDDINGS:  # how well each of the first two principal components alone sorts the classes
        xy = fss.embedding(result, encoder, "pca")
        aucs = [roc_auc_score(result.test_labels, xy[:, k]) for k in (0, 1)]
        print(f"  PCA of the {encoder} features: class AUC of PC1 {max(aucs[0], 1 - aucs[0]):.3f}, "
              f"PC2 {max(aucs[1], 1 - aucs[1]):.3f}")  # fmt: skip
    t = time.perf_counter()
    fss.embedding_figure(result, "tsne", words).to_json()
    print(f"  first t-SNE embedding (computed, then cached): {(time.perf_counter() - t) * 1000:.0f} ms")
    times = []
    for i in range(40):  # what the page redraws when the budget shown or the projection changes
        t = time.perf_counter()
        fss.budget_figure(result, fss.BUDGETS[i % len(fss.BUDGETS)], words).to_json()
        fss.loss_figure(result.losses, words).to_json()
        fss.embedding_figure(result, ("pca", "tsne")[i % 2], words).to_json()
        times.append((time.perf_counter() - t) * 1000)
    print(f"self-supervised, change the budget shown or the projection: p95 {np.percentile(times, 95):.0f} ms "
          f"server time (budget p95 <= 150 ms)")  # fmt: skip


if __name__ == "__main__":
    main()
