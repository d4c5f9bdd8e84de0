"""Reproduce the shipped default model: train the training lab's default settings and save.

.venv/bin/python -m scripts.train_default            # writes models/checkpoints/default_classifier.pt
.venv/bin/python -m scripts.train_default --check    # retrain and compare with the shipped metrics
"""

from __future__ import annotations

import argparse
import sys

import torch

from primer.default_model import CHECKPOINT, DEFAULT_LAB, checkpoint_bytes, load_checkpoint
from primer.train import run_experiment


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--check", action="store_true", help="retrain and compare; do not write")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    result = run_experiment(DEFAULT_LAB)
    print(f"test AUC {result.test_auc:.4f}, accuracy {result.test_accuracy:.4f}, {result.seconds:.1f} s")
    if args.check:
        _, _, shipped = load_checkpoint(CHECKPOINT)
        gap = abs(shipped["test_auc"] - result.test_auc)
        print(f"shipped test AUC {shipped['test_auc']:.4f}; difference {gap:.4f}")
        return 0 if gap <= 0.01 else 1
    CHECKPOINT.parent.mkdir(parents=True, exist_ok=True)
    CHECKPOINT.write_bytes(checkpoint_bytes(result))
    print(f"wrote {CHECKPOINT} ({CHECKPOINT.stat().st_size / 1024:.0f} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
