"""The default model: the training lab's default run, shipped as a small checkpoint.

The metrics, saliency and convolution chapters use it without anyone visiting the training lab
first. `scripts/train_default.py` reproduces the checkpoint from the default settings, and a test
checks that it still does (same settings → same metrics, within floating-point noise across CPUs).

    default = load_default()
    default.model            # eval-mode nn.Module, (N, 1, 64, 64) → (N, 2) logits
    default.test             # TensorData: test images, labels, lesion masks
    default.test_probs       # (N_test, 2) probabilities, computed on load
"""

from __future__ import annotations

import io
import json
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import nn

from primer.train import RunResult, Splits, TensorData, TrainLab, build_model, phantom_data, predict, split

CHECKPOINT = Path(__file__).resolve().parent.parent / "models" / "checkpoints" / "default_classifier.pt"
DEFAULT_LAB = TrainLab()


@dataclass
class DefaultModel:
    lab: TrainLab
    model: nn.Module
    splits: Splits
    val_probs: np.ndarray  # (N_val, 2)
    test_probs: np.ndarray  # (N_test, 2)
    metrics: dict  # as recorded when the checkpoint was made

    @property
    def test(self) -> TensorData:
        return self.splits.test


def checkpoint_bytes(result: RunResult) -> bytes:
    """A run's weights, settings and headline metrics as one torch.save blob."""
    buffer = io.BytesIO()
    torch.save(
        {
            "lab": asdict(result.lab),
            "state_dict": {k: v.contiguous() for k, v in result.state_dict.items()},
            "num_classes": result.num_classes,
            "classes": list(result.classes),
            "metrics": {
                "test_auc": result.test_auc,
                "test_accuracy": result.test_accuracy,
                "epochs": len(result.history.epochs),
            },
            "torch": str(torch.__version__),
        },
        buffer,
    )
    return buffer.getvalue()


def load_checkpoint(data: bytes | Path) -> tuple[TrainLab, nn.Module, dict]:
    raw = torch.load(io.BytesIO(data) if isinstance(data, bytes) else data, map_location="cpu", weights_only=True)
    lab = TrainLab(**raw["lab"])
    model = build_model(lab, raw["num_classes"])
    model.load_state_dict(raw["state_dict"])
    return lab, model.eval(), raw["metrics"]


@lru_cache(maxsize=1)
def load_default() -> DefaultModel:
    """The shipped default model with its data regenerated (same seed, same images)."""
    lab, model, metrics = load_checkpoint(CHECKPOINT)
    splits = split(phantom_data(lab.phantom_config()), lab.split_config())
    return DefaultModel(
        lab=lab,
        model=model,
        splits=splits,
        val_probs=predict(model, splits.val.x).numpy(),
        test_probs=predict(model, splits.test.x).numpy(),
        metrics=metrics,
    )


def describe(metrics: dict) -> str:
    return json.dumps(metrics, indent=1)
