"""Compound scaling (EfficientNet) on a small registered CNN, and accuracy against FLOPs.

    dims = scaled_dims("compound", 2)                 # Dims(depth=3, width=10, resolution=42)
    variant = scaled_variant("resnet_small", "compound", 2)   # + params and FLOPs (torch's counter)
    run = train_scaled(ScaleLab(), on_epoch=print)    # phantoms resized to the variant's resolution

One coefficient φ grows a base network along three axes at once (Tan & Le, 2019):
depth × α^φ, width × β^φ, input resolution × γ^φ. A convolution's FLOPs grow linearly with
depth and with the square of width and of resolution, so one φ step multiplies FLOPs by about
α·β²·γ²; EfficientNet's grid search gave α = 1.2, β = 1.1, γ = 1.15, whose product is 1.92 ≈ 2.

Here "depth" is the number of blocks per stage, "width" the first stage's channels (later stages
double it) and "resolution" the side of the input image: the base sees the 64 px phantoms
downsampled to 32 px, so scaling resolution up brings back detail that the downsampling took
away. All three are whole numbers, rounded to the nearest, so a small network's steps are
uneven (2.4 blocks is 2); the FLOPs are always counted by torch on the built model.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import nn

import models
from primer.architectures import flop_counts, model_size, parameter_count
from primer.labstate import register_lab

ALPHA, BETA, GAMMA = 1.2, 1.1, 1.15  # EfficientNet's depth, width and resolution bases
MODES: tuple[str, ...] = ("depth", "width", "resolution", "compound")
BASES: tuple[str, ...] = ("resnet_small", "se_resnet", "separable_cnn")  # take blocks_per_stage and width
BASE_DEPTH = 2  # blocks per stage: a base of 1 would not change until φ = 3 (1.2³ = 1.73 → 2)
BASE_WIDTH = 8  # the race's default width, so the base matches a design the race trains
BASE_RESOLUTION = 32  # half the phantoms' 64 px: room to scale up by γ^φ with real detail
NATIVE_RESOLUTION = 64  # the phantoms as generated; the resolution never exceeds it
MAX_PHI = 4  # 32 · 1.15⁴ = 56 px, still below the 64 px the phantoms have


@dataclass(frozen=True)
class Dims:
    depth: int  # blocks per stage
    width: int  # channels of the first stage
    resolution: int  # input side, pixels


def multipliers(mode: str, phi: int) -> tuple[float, float, float]:
    """(depth, width, resolution) multipliers for one scaling choice: α^φ, β^φ, γ^φ on the
    scaled axes, 1 on the others."""
    if mode not in MODES:
        raise ValueError(f"unknown scaling mode {mode!r}")
    return (
        ALPHA**phi if mode in ("depth", "compound") else 1.0,
        BETA**phi if mode in ("width", "compound") else 1.0,
        GAMMA**phi if mode in ("resolution", "compound") else 1.0,
    )


def ideal_flops_ratio(mode: str) -> float:
    """FLOPs multiplier of one φ step if layers and channels could be fractional: α, β², γ²
    or α·β²·γ²."""
    d, w, r = multipliers(mode, 1)
    return d * w**2 * r**2


def scaled_dims(
    mode: str, phi: int, depth: int = BASE_DEPTH, width: int = BASE_WIDTH, resolution: int = BASE_RESOLUTION
) -> Dims:
    """The base dimensions scaled by φ, each rounded to the nearest whole block, channel and pixel."""
    if not 0 <= phi <= MAX_PHI:
        raise ValueError(f"φ must be between 0 and {MAX_PHI}")
    d, w, r = multipliers(mode, phi)
    return Dims(round(depth * d), round(width * w), min(NATIVE_RESOLUTION, round(resolution * r)))


def build_scaled(base: str, dims: Dims, seed: int | None = 0, num_classes: int = 2) -> nn.Module:
    """The registered base design with the scaled depth and width (resolution is the input's)."""
    if base not in BASES:
        raise ValueError(f"{base!r} cannot be scaled here (choose one of {', '.join(BASES)})")
    return models.build(base, seed=seed, num_classes=num_classes, width=dims.width, blocks_per_stage=dims.depth)


@dataclass(frozen=True)
class Variant:
    base: str
    mode: str
    phi: int
    dims: Dims
    params: int
    flops: int  # forward, one image at dims.resolution, counted by torch


@lru_cache(maxsize=256)
def scaled_variant(base: str, mode: str, phi: int) -> Variant:
    dims = scaled_dims(mode, phi)
    model = build_scaled(base, dims)
    return Variant(base, mode, phi, dims, parameter_count(model), flop_counts(model, dims.resolution)[""])


def scaling_table(base: str) -> list[Variant]:
    """Every mode at every φ from 0 to MAX_PHI (φ = 0 is the base in every mode)."""
    return [scaled_variant(base, mode, phi) for mode in MODES for phi in range(MAX_PHI + 1)]


# ---------------------------------------------------------------------------------------------
# Accuracy against FLOPs: every registered classifier, with validation AUC where it was raced


@dataclass(frozen=True)
class FrontierPoint:
    model: str
    flops: int  # forward, one image
    params: int
    val_auc: float | None  # final validation AUC of this session's run; None: not trained yet
    resolution: int = NATIVE_RESOLUTION
    label: str = ""  # a scaled variant's description; "" for a registered design


def frontier_points(width: int, val_auc: dict[str, float], input_size: int = NATIVE_RESOLUTION) -> list[FrontierPoint]:
    """One point per registered classifier at `width` and `input_size`; `val_auc` holds the
    final validation AUC of the designs this session has raced (the others stay None)."""
    points = []
    for name in models.names("classifier"):
        params, flops = model_size(name, width, input_size)  # the race's own count
        points.append(FrontierPoint(name, flops, params, val_auc.get(name), input_size))
    return points


# ---------------------------------------------------------------------------------------------
# The lab: one scaled variant, trained on phantoms resized to its resolution


@register_lab("scale")
@dataclass
class ScaleLab:
    """Grow a base design by φ along one axis or all three, and train the result."""

    base: str = "resnet_small"  # the block the race introduces first
    mode: str = "compound"  # the EfficientNet choice; the others are what it is compared with
    phi: int = 1  # one step: width and resolution grow, depth (2.4 blocks) rounds back to 2
    # the race's data: with 500 no variant learns in 6 epochs (AUC ≈ 0.5–0.6); φ = 1 trains in ~15 s
    num_images: int = 2000
    num_epochs: int = 6  # the race's default
    seed: int = 0

    def dims(self) -> Dims:
        return scaled_dims(self.mode, self.phi)


def resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """(N, C, H, W) → (N, C, size, size), antialiased, as a scanner or PACS downsamples an image
    (each output pixel averages the input pixels it covers, so small lesions blur away rather
    than alias)."""
    if x.shape[-1] == size:
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


@dataclass(frozen=True)
class ScaleRun:
    lab: ScaleLab
    variant: Variant
    val_auc: tuple[float, ...]  # per epoch
    test_auc: float
    seconds: float


def train_scaled(
    lab: ScaleLab,
    *,
    on_epoch: Callable[[object], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> ScaleRun:
    """Generate the phantoms at 64 px, resize them to the variant's resolution, train the
    scaled model with the training engine (same split, optimiser and seed as every run)."""
    from primer.synth import PhantomConfig
    from primer.train import TrainConfig, auc_score, fit, phantom_data, predict, split

    variant = scaled_variant(lab.base, lab.mode, lab.phi)
    data = phantom_data(PhantomConfig(n=lab.num_images, seed=lab.seed))
    data = dataclasses.replace(data, x=resize(data.x, variant.dims.resolution), mask=None)  # (N, 1, r, r)
    splits = split(data)
    model = build_scaled(lab.base, variant.dims, seed=lab.seed)
    config = TrainConfig(model=lab.base, width=variant.dims.width, num_epochs=lab.num_epochs, seed=lab.seed)
    start = time.perf_counter()
    history = fit(
        model,
        splits,
        config,
        on_epoch=None if on_epoch is None else (lambda record, _history: on_epoch(record)),
        should_stop=should_stop,
    )
    seconds = time.perf_counter() - start
    test_auc = auc_score(splits.test.y, predict(model, splits.test.x))
    val = tuple(e.val_auc for e in history.epochs)
    return ScaleRun(lab, variant, val, test_auc, seconds)


def run_key(lab: ScaleLab) -> str:
    return f"scale:{lab.base}:{lab.mode}:{lab.phi}:{lab.num_images}:{lab.num_epochs}:{lab.seed}"
