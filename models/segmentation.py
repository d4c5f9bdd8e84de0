"""A small U-Net: an encoder that halves the image three times, a decoder that doubles it back,
and skip connections that hand each decoder level the encoder's feature maps of the same size.

    net = models.build("unet_small", width=8)        # (N, 1, H, W) → (N, 1, H, W) lesion logits
    net = models.build("unet_small", skips=False)    # the same encoder–decoder without skips

Why the skips: every pooling step throws away where exactly things were, to gain context. The
decoder can only guess the fine outline back from the coarse bottleneck; the skip connections
give it the sharp, full-resolution features directly, so the mask follows the lesion border.
Switching them off (`skips=False`) keeps every layer and only drops the concatenation, which is
how the lab shows what they buy.
"""

from __future__ import annotations

import torch
from torch import nn

from models import register
from models.classifiers import conv_bn_relu


def double_conv(c_in: int, c_out: int) -> nn.Sequential:
    """Two 3×3 conv-BN-ReLU layers: the unit of every U-Net level."""
    return nn.Sequential(conv_bn_relu(c_in, c_out), conv_bn_relu(c_out, c_out))


class UNet(nn.Module):
    """Encoder (levels × [double conv, max pool]) → bottleneck → decoder (levels × [2× up-
    convolution, concatenate the skip, double conv]) → 1×1 conv to one logit per pixel."""

    def __init__(
        self, in_channels: int = 1, out_channels: int = 1, width: int = 8, levels: int = 3, skips: bool = True
    ):
        super().__init__()
        self.skips = skips
        channels = [width * 2**i for i in range(levels + 1)]  # e.g. 8, 16, 32 and 64 in the bottleneck
        self.down = nn.ModuleList()
        c = in_channels
        for c_out in channels[:-1]:
            self.down.append(double_conv(c, c_out))
            c = c_out
        self.pool = nn.MaxPool2d(2)
        self.bottleneck = double_conv(channels[-2], channels[-1])
        self.up = nn.ModuleList()
        self.decode = nn.ModuleList()
        for c_skip, c_low in zip(channels[-2::-1], channels[:0:-1], strict=True):
            self.up.append(nn.ConvTranspose2d(c_low, c_skip, 2, stride=2))
            self.decode.append(double_conv(c_skip * (2 if skips else 1), c_skip))
        self.out = nn.Conv2d(channels[0], out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skipped = []
        for block in self.down:
            x = block(x)
            skipped.append(x)  # (N, c, H/2^i, W/2^i): the sharp features of this level
            x = self.pool(x)
        x = self.bottleneck(x)  # (N, 8·width, H/8, W/8): context, little position
        for up, block, skip in zip(self.up, self.decode, reversed(skipped), strict=True):
            x = up(x)  # (N, c, 2h, 2w)
            if self.skips:
                x = torch.cat([skip, x], dim=1)  # (N, 2c, 2h, 2w)
            x = block(x)
        return self.out(x)  # (N, out_channels, H, W) logits


@register(
    "unet_small",
    family="segmenter",
    title={"en": "U-Net (small)", "zh": "U-Net（小型）"},
    description={
        "en": "An encoder–decoder whose skip connections carry full-resolution features across, so masks keep sharp borders.",
        "zh": "编码器-解码器结构，跳跃连接把高分辨率特征直接传给解码器，使分割掩膜边界清晰。",
    },
)
def unet_small(
    in_channels: int = 1, out_channels: int = 1, width: int = 8, levels: int = 3, skips: bool = True
) -> UNet:
    return UNet(in_channels, out_channels, width, levels, skips)


# ---------------------------------------------------------------------------------------------
# A dilated (atrous) segmenter: context without pooling, DeepLab's idea at lab size


class DilatedSegmenter(nn.Module):
    """Full resolution throughout: a 3×3 stem, then 3×3 convolutions whose dilation doubles
    (1, 2, 4, 8: a 3×3 kernel with gaps of d − 1 pixels between its taps), then a small
    atrous spatial pyramid (ASPP): parallel 1×1 and dilated 3×3 branches whose outputs are
    concatenated and mixed by a 1×1 convolution into one logit per pixel.

    No layer pools or strides, so nothing needs to be upsampled and no position is thrown away;
    the receptive field still grows quickly, because each dilated layer adds 2·d pixels:
    3 (stem) + 2·(1 + 2 + 4 + 8) = 33 px after the body, + 2·max(rates) in the pyramid."""

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        width: int = 16,
        dilations: tuple[int, ...] = (1, 2, 4, 8),
        aspp_rates: tuple[int, ...] = (2, 4),
    ):
        super().__init__()
        self.dilations = tuple(dilations)
        self.aspp_rates = tuple(aspp_rates)
        self.stem = atrous_conv_bn_relu(in_channels, width)
        self.body = nn.Sequential(*(atrous_conv_bn_relu(width, width, dilation=d) for d in self.dilations))
        branches = [atrous_conv_bn_relu(width, width, kernel=1)]
        branches += [atrous_conv_bn_relu(width, width, dilation=r) for r in self.aspp_rates]
        self.aspp = nn.ModuleList(branches)
        self.project = atrous_conv_bn_relu(width * len(branches), width, kernel=1)
        self.out = nn.Conv2d(width, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.body(self.stem(x))  # (N, width, H, W): never smaller than the input
        x = torch.cat([branch(x) for branch in self.aspp], dim=1)  # (N, width·branches, H, W)
        return self.out(self.project(x))  # (N, out_channels, H, W) logits

    def layer_geometry(self) -> list[tuple]:
        """The path that reaches farthest, as (kind, kernel, stride, dilation, padding) rows for
        `primer.conv.receptive_field`: stem, body, the widest pyramid branch, the 1×1 layers."""
        widest = max(self.aspp_rates, default=0)
        rows = [("conv", 3, 1, 1, 1)] + [("conv", 3, 1, d, d) for d in self.dilations]
        rows += [("conv", 3, 1, widest, widest)] if widest else [("conv", 1, 1, 1, 0)]
        return rows + [("conv", 1, 1, 1, 0), ("conv", 1, 1, 1, 0)]


def atrous_conv_bn_relu(c_in: int, c_out: int, kernel: int = 3, dilation: int = 1) -> nn.Sequential:
    """A k×k conv with dilation d (padding d·(k − 1)/2 keeps the size), BatchNorm, ReLU."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, padding=dilation * (kernel - 1) // 2, dilation=dilation, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(),
    )


@register(
    "dilated_segmenter",
    family="segmenter",
    title={"en": "Dilated-convolution segmenter (DeepLab-like)", "zh": "空洞卷积分割网络（DeepLab 式）"},
    description={
        "en": "No pooling: 3×3 convolutions with dilation 1, 2, 4, 8 and a small atrous spatial pyramid widen the view while every layer keeps the full resolution.",
        "zh": "不做池化：扩张率为 1、2、4、8 的 3×3 空洞卷积和一个小型空洞空间金字塔池化模块扩大视野，同时每一层都保持全分辨率。",
    },
)
def dilated_segmenter(
    in_channels: int = 1,
    out_channels: int = 1,
    width: int = 16,
    dilations: tuple[int, ...] = (1, 2, 4, 8),
    aspp_rates: tuple[int, ...] = (2, 4),
) -> DilatedSegmenter:
    return DilatedSegmenter(in_channels, out_channels, width, tuple(dilations), tuple(aspp_rates))
