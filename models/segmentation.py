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
