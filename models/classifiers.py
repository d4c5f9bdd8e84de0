"""Small 1-channel image classifiers for 32–64 px inputs.

Each is a few blocks of 3×3 convolutions that halve the resolution stage by stage, global max
pooling (the most lesion-like location decides), and a linear layer to class logits. They
differ only in the block, so a head-to-head race shows what the block buys. Every ReLU is non-inplace: Captum's attribution
hooks need the pre-activation values intact.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from models import SeededDropout, register


def conv_bn_relu(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(),
    )


class Classifier(nn.Module):
    """stem → stages (each ends by halving H and W) → global max (or average) pool → dropout → linear."""

    def __init__(self, features: nn.Sequential, channels: int, num_classes: int, dropout: float, pool: str = "max"):
        super().__init__()
        self.features = features
        # Global max pooling: "is there a lesion anywhere?" is decided by the most suspicious
        # location, where averaging would dilute one small lesion over the whole image.
        self.pool = nn.AdaptiveMaxPool2d(1) if pool == "max" else nn.AdaptiveAvgPool2d(1)
        self.dropout = SeededDropout(dropout)
        self.head = nn.Linear(channels, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The penultimate layer: one feature vector per image, (N, C)."""
        return self.pool(self.features(x)).flatten(1)  # (N, C, 1, 1) -> (N, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.embed(x)))  # (N, num_classes)


# A stage's block: (channels in, channels out) → one module, or a few that run in sequence.
BlockMaker = Callable[[int, int], nn.Module | list[nn.Module]]


def staged_classifier(
    block: BlockMaker,
    in_channels: int = 1,
    num_classes: int = 2,
    width: int = 16,
    stages: int = 3,
    blocks_per_stage: int = 1,
    dropout: float = 0.0,
    pool: str = "max",
) -> Classifier:
    """The skeleton every design shares: a full 3×3 conv stem; per stage `blocks_per_stage`
    blocks to width·2^stage channels, then 2×2 max pooling; global pooling and a linear head.

    The stem stays a full convolution for every design: one input channel leaves nothing to
    mix, split or re-weight, so the designs only start to differ from the first stage on."""
    layers: list[nn.Module] = [conv_bn_relu(in_channels, width)]
    c = width
    for stage in range(stages):
        c_out = width * 2**stage  # the same channels per stage in every design
        for _ in range(blocks_per_stage):
            made = block(c, c_out)
            layers += made if isinstance(made, list) else [made]
            c = c_out
        layers.append(nn.MaxPool2d(2))
    return Classifier(nn.Sequential(*layers), c, num_classes, dropout, pool)


@register(
    "plain_cnn",
    family="classifier",
    title={"en": "Plain CNN (VGG-like)", "zh": "普通卷积网络（VGG 式）"},
    description={
        "en": "Stacks of 3×3 convolutions and max pooling, as in VGG: simple, and the baseline every later design improves on.",
        "zh": "像 VGG 一样堆叠 3×3 卷积和最大池化：结构简单，是后来各种改进设计的比较基准。",
    },
)
def plain_cnn(
    in_channels: int = 1,
    num_classes: int = 2,
    width: int = 16,
    stages: int = 3,
    dropout: float = 0.0,
    pool: str = "max",
) -> Classifier:
    layers: list[nn.Module] = []
    c_in, c_out = in_channels, width
    for _ in range(stages):
        layers += [conv_bn_relu(c_in, c_out), conv_bn_relu(c_out, c_out), nn.MaxPool2d(2)]
        c_in, c_out = c_out, c_out * 2
    return Classifier(nn.Sequential(*layers), c_in, num_classes, dropout, pool)


class ResidualBlock(nn.Module):
    """Two 3×3 convolutions whose output is added to the input: y = relu(x + F(x)).

    The identity path lets gradients reach early layers undiminished, which is what made very
    deep networks trainable. A 1×1 convolution matches shapes when the block changes them."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(),
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
        )
        self.shortcut = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.shortcut(x) + self.body(x))


@register(
    "resnet_small",
    family="classifier",
    title={"en": "Residual CNN (ResNet-like)", "zh": "残差卷积网络（ResNet 式）"},
    description={
        "en": "Each block adds its input to its output, so gradients flow through shortcuts and much deeper networks still train.",
        "zh": "每个模块把输入直接加到输出上，梯度可以经捷径回传，因此更深的网络也能训练。",
    },
)
def resnet_small(blocks_per_stage: int = 1, **common) -> Classifier:
    return staged_classifier(ResidualBlock, blocks_per_stage=blocks_per_stage, **common)
