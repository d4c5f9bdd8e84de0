"""The CNN design trends as small 1-channel classifiers, one block type each.

Every model here has the shape of `models.classifiers`: a stem, `stages` stages that each end by
halving H and W, global pooling and a linear head, built by `Classifier`. Only the block inside a
stage changes, so a race between them measures what the block buys:

    dense_cnn       DenseNet: every layer sees the concatenation of all earlier ones (feature reuse)
    inception_cnn   Inception: 1×1, 3×3 and 5×5 branches side by side (several scales at once)
    separable_cnn   MobileNet: depthwise 3×3 then pointwise 1×1 (a fraction of the parameters)
    se_resnet       SENet: a residual block whose channels are re-weighted from global context
    plain_deep /    the same deep stack without and with shortcuts: the degradation problem
    resnet_deep

All builders share one skeleton, `models.classifiers.staged_classifier`, and differ only in the block they hand
it; they take the registry's shared keyword arguments (in_channels, num_classes, width, stages,
blocks_per_stage, dropout, pool), so the training lab lists them with no extra code.
"""

from __future__ import annotations

import torch
from torch import nn

from models import register
from models.classifiers import Classifier, ResidualBlock, conv_bn_relu, staged_classifier


def conv_k(c_in: int, c_out: int, k: int) -> nn.Sequential:
    """A k×k conv-BN-ReLU that keeps the size (1×1: a channel mixer)."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, k, padding=k // 2, bias=False), nn.BatchNorm2d(c_out), nn.ReLU())


# ---------------------------------------------------------------------------------------------
# Dense connections


class DenseBlock(nn.Module):
    """`layers` conv-BN-ReLU layers, each adding `growth` channels to a running concatenation.

    Layer k sees the input and the outputs of layers 1..k-1 (DenseNet). Features computed early
    are reused, not recomputed, and every layer has a short path to the loss."""

    def __init__(self, c_in: int, growth: int, layers: int = 3):
        super().__init__()
        self.layers = nn.ModuleList(conv_bn_relu(c_in + i * growth, growth) for i in range(layers))
        self.out_channels = c_in + layers * growth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for layer in self.layers:
            features.append(layer(torch.cat(features, dim=1)))  # (N, c_in + k·growth, H, W) in
        return torch.cat(features, dim=1)  # (N, c_in + layers·growth, H, W)


@register(
    "dense_cnn",
    family="classifier",
    title={"en": "Dense CNN (DenseNet-like)", "zh": "密集连接网络（DenseNet 式）"},
    description={
        "en": "Each layer receives the feature maps of all earlier layers in its block, so features are reused and gradients have short paths.",
        "zh": "模块内每一层都接收前面所有层的特征图（密集连接），特征得以复用，梯度回传路径也更短。",
    },
)
def dense_cnn(layers_per_block: int = 3, **common) -> Classifier:
    def dense_then_transition(c_in: int, c_out: int) -> list[nn.Module]:
        block = DenseBlock(c_in, growth=max(2, c_out // 2), layers=layers_per_block)
        # DenseNet's transition: a 1×1 convolution compresses the concatenation before pooling.
        return [block, conv_k(block.out_channels, c_out, 1)]

    return staged_classifier(dense_then_transition, **common)


# ---------------------------------------------------------------------------------------------
# Inception (multi-branch)


class InceptionBlock(nn.Module):
    """Four parallel branches whose outputs are concatenated along channels (GoogLeNet):
    1×1; 1×1 → 3×3; 1×1 → 5×5; 3×3 max pool → 1×1. The block looks at several scales at once
    and lets training decide which matters; the 1×1 "bottlenecks" keep the big kernels cheap."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        quarter = max(1, c_out // 4)
        reduce = max(1, c_out // 8)
        self.branch1 = conv_k(c_in, c_out - 3 * quarter, 1)
        self.branch3 = nn.Sequential(conv_k(c_in, reduce, 1), conv_k(reduce, quarter, 3))
        self.branch5 = nn.Sequential(conv_k(c_in, reduce, 1), conv_k(reduce, quarter, 5))
        self.branch_pool = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1), conv_k(c_in, quarter, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = [self.branch1(x), self.branch3(x), self.branch5(x), self.branch_pool(x)]
        return torch.cat(branches, dim=1)  # (N, c_out, H, W)


@register(
    "inception_cnn",
    family="classifier",
    title={"en": "Inception CNN (multi-branch)", "zh": "Inception 网络（多分支）"},
    description={
        "en": "Parallel 1×1, 3×3, 5×5 and pooling branches look at several scales at once; 1×1 bottlenecks keep them cheap.",
        "zh": "1×1、3×3、5×5 卷积和池化分支并行，同时捕捉多种尺度的特征；1×1 卷积降维使计算量保持较低。",
    },
)
def inception_cnn(blocks_per_stage: int = 2, **common) -> Classifier:
    return staged_classifier(InceptionBlock, blocks_per_stage=blocks_per_stage, **common)


# ---------------------------------------------------------------------------------------------
# Depthwise-separable convolutions


class SeparableConv(nn.Module):
    """A 3×3 convolution split in two: a depthwise 3×3 (one filter per channel, `groups=c_in`)
    finds spatial patterns, a pointwise 1×1 mixes channels. About 1/9 + 1/c_out of the
    multiply-adds and weights of a full 3×3 convolution (MobileNet, Xception)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.depthwise = nn.Sequential(
            nn.Conv2d(c_in, c_in, 3, padding=1, groups=c_in, bias=False), nn.BatchNorm2d(c_in), nn.ReLU()
        )
        self.pointwise = conv_k(c_in, c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


@register(
    "separable_cnn",
    family="classifier",
    title={"en": "Depthwise-separable CNN (MobileNet-like)", "zh": "深度可分离卷积网络（MobileNet 式）"},
    description={
        "en": "Each 3×3 convolution is split into a per-channel 3×3 and a 1×1 channel mixer: a fraction of the parameters and operations.",
        "zh": "把每个 3×3 卷积拆成逐通道 3×3 卷积和 1×1 通道混合卷积（深度可分离卷积）：参数和计算量只有原来的一小部分。",
    },
)
def separable_cnn(blocks_per_stage: int = 2, **common) -> Classifier:
    return staged_classifier(SeparableConv, blocks_per_stage=blocks_per_stage, **common)


# ---------------------------------------------------------------------------------------------
# Squeeze-and-excitation


class SqueezeExcitation(nn.Module):
    """Channel attention (SENet): squeeze each channel to its image-wide average, pass the
    vector through a small bottleneck MLP, and rescale every channel by a 0–1 gate. The gate
    is computed from the whole image, so every pixel's features are weighed by global context."""

    def __init__(self, channels: int, reduction: int = 4):
        super().__init__()
        hidden = max(2, channels // reduction)
        self.squeeze = nn.AdaptiveAvgPool2d(1)
        self.excite = nn.Sequential(
            nn.Conv2d(channels, hidden, 1), nn.ReLU(), nn.Conv2d(hidden, channels, 1), nn.Sigmoid()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = self.excite(self.squeeze(x))  # (N, C, 1, 1) in (0, 1)
        return x * gate


class SEResidualBlock(ResidualBlock):
    """A residual block whose residual branch is re-weighted channel by channel before the add."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1, reduction: int = 4):
        super().__init__(c_in, c_out, stride)
        self.se = SqueezeExcitation(c_out, reduction)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.shortcut(x) + self.se(self.body(x)))


@register(
    "se_resnet",
    family="classifier",
    title={"en": "Squeeze-and-excitation ResNet", "zh": "挤压-激励残差网络（SE-ResNet）"},
    description={
        "en": "A residual network whose blocks re-weight their channels from a summary of the whole image: channel attention for a few extra weights.",
        "zh": "在残差网络的每个模块中加入挤压-激励模块，根据整幅图像的概括信息重新分配各通道权重：只增加少量参数的通道注意力。",
    },
)
def se_resnet(**common) -> Classifier:
    return staged_classifier(SEResidualBlock, **common)


# ---------------------------------------------------------------------------------------------
# Deep plain vs deep residual: the degradation problem

DEEP_BLOCKS = 4  # blocks of two 3×3 convolutions per stage: 3 stages → 25 conv layers with the stem


class PlainPair(nn.Sequential):
    """Two conv-BN-ReLU layers: a residual block with its shortcut removed."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__(conv_bn_relu(c_in, c_out), conv_bn_relu(c_out, c_out))


@register(
    "plain_deep",
    family="classifier",
    title={"en": "Deep plain CNN (25 layers)", "zh": "深层普通卷积网络（25 层）"},
    description={
        "en": "Many conv layers stacked without shortcuts: deeper than it can train well in a short run, even its training error gets worse.",
        "zh": "大量卷积层直接堆叠、没有捷径连接：深到难以训练，连训练误差都会变差（退化问题）。",
    },
)
def plain_deep(blocks_per_stage: int = DEEP_BLOCKS, **common) -> Classifier:
    return staged_classifier(PlainPair, blocks_per_stage=blocks_per_stage, **common)


@register(
    "resnet_deep",
    family="classifier",
    title={"en": "Deep residual CNN (25 layers)", "zh": "深层残差网络（25 层）"},
    description={
        "en": "The same 25 conv layers as the deep plain CNN, with an identity shortcut around every pair: the depth trains again.",
        "zh": "与深层普通网络同样的 25 个卷积层，每两层加一条恒等捷径（残差连接）：这样的深度又能训练了。",
    },
)
def resnet_deep(blocks_per_stage: int = DEEP_BLOCKS, **common) -> Classifier:
    return staged_classifier(ResidualBlock, blocks_per_stage=blocks_per_stage, **common)
