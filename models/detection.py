"""Two detector families for small lesions on 64 px images.

One-stage, anchor-free (`center_detector`, CenterNet / FCOS style): a small fully convolutional
network looks at the image once and, at every cell of a 16×16 grid (stride 4), answers two
questions: "is a lesion centred here?" (a heatmap logit) and "if so, how far are its left, top,
right and bottom edges?" (four distances in pixels). Every confident cell proposes a box;
non-maximum suppression keeps one per lesion.

Two-stage (`mask_rcnn_small`, torchvision's Mask R-CNN with a tiny backbone): a region proposal
network first scores anchor boxes of a few fixed sizes at every cell, then a second stage crops
each proposal's features (RoIAlign) and classifies it, refines its box and draws its mask.
Slower and more complex, but each object gets its own mask: instance segmentation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models import register
from models.classifiers import conv_bn_relu


def stride4_trunk(in_channels: int, width: int) -> list[nn.Module]:
    """Two levels of two 3×3 conv-BN-ReLU and a 2×2 pooling: features at 1/4 of the image size,
    where one cell (4 px) is about half a lesion. Both detector families start with it."""
    return [
        conv_bn_relu(in_channels, width),
        conv_bn_relu(width, width),
        nn.MaxPool2d(2),
        conv_bn_relu(width, 2 * width),
        conv_bn_relu(2 * width, 2 * width),
        nn.MaxPool2d(2),
    ]


def head(c: int, outputs: int) -> nn.Sequential:
    """A dense prediction head: 3×3 conv → ReLU → 1×1 conv to `outputs` numbers per cell."""
    return nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.ReLU(), nn.Conv2d(c, outputs, 1))


class CenterDetector(nn.Module):
    """Backbone to stride 4, then two heads: a centre heatmap and four edge distances."""

    stride = 4  # each output cell covers 4×4 input pixels: a 16×16 grid on 64 px images

    def __init__(self, in_channels: int = 1, width: int = 16):
        super().__init__()
        c = 4 * width
        self.backbone = nn.Sequential(
            *stride4_trunk(in_channels, width), conv_bn_relu(2 * width, c), conv_bn_relu(c, c)
        )
        self.heatmap = head(c, 1)
        self.box = head(c, 4)

    def set_prior(self, probability: float = 0.01) -> None:
        """Start every cell at a low lesion probability (RetinaNet's prior): most cells are
        background, and a 50% start would flood the focal loss with false positives."""
        with torch.no_grad():
            self.heatmap[-1].bias.fill_(-torch.log(torch.tensor((1 - probability) / probability)).item())

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.backbone(x)  # (N, 4·width, H/4, W/4)
        heat_logits = self.heatmap(features)  # (N, 1, H/4, W/4)
        # Distances are positive and a few cells long: softplus keeps them positive and smooth.
        ltrb = F.softplus(self.box(features)) * self.stride  # (N, 4, H/4, W/4) pixels
        return heat_logits, ltrb


@register(
    "center_detector",
    family="detector",
    title={"en": "One-stage detector (CenterNet/FCOS-style)", "zh": "单阶段检测器（CenterNet/FCOS 式）"},
    description={
        "en": "One pass over the image: every grid cell scores 'a lesion is centred here' and regresses the box edges; NMS keeps one box per lesion.",
        "zh": "只看一遍图像：每个网格单元给出“此处是病灶中心”的得分并回归边框位置，再用非极大值抑制为每个病灶保留一个框。",
    },
)
def center_detector(in_channels: int = 1, width: int = 16) -> CenterDetector:
    return CenterDetector(in_channels, width)


# ---------------------------------------------------------------------------------------------
# Two-stage: torchvision's Mask R-CNN with a backbone small enough to train on a CPU


class TinyBackbone(nn.Sequential):
    """Five conv layers to stride 4; torchvision's detectors read `out_channels`."""

    def __init__(self, in_channels: int = 1, width: int = 16):
        super().__init__(*stride4_trunk(in_channels, width), conv_bn_relu(2 * width, 2 * width))
        self.out_channels = 2 * width


@register(
    "mask_rcnn_small",
    family="detector",
    title={"en": "Two-stage detector (Mask R-CNN, tiny backbone)", "zh": "两阶段检测器（Mask R-CNN，小型骨干网络）"},
    description={
        "en": "A region proposal network scores anchor boxes; a second stage classifies each proposal, refines its box and draws its own mask.",
        "zh": "区域候选网络先为锚框打分，第二阶段再对每个候选区域分类、精修边框并单独画出掩膜（实例分割）。",
    },
)
def mask_rcnn_small(in_channels: int = 1, width: int = 16, image_size: int = 64, num_classes: int = 2) -> nn.Module:
    """Mask R-CNN for `image_size` px single-channel images, two classes (background, lesion).

    Anchors of 8, 12 and 16 px cover the phantoms' lesions (about 8 to 15 px across); the box
    and mask heads are shrunk from torchvision's 1024-unit MLP and 256-channel convolutions so
    the whole model is a few hundred kilobytes."""
    from torchvision.models.detection import MaskRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
    from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
    from torchvision.ops import MultiScaleRoIAlign

    backbone = TinyBackbone(in_channels, width)
    c = backbone.out_channels
    return MaskRCNN(
        backbone,
        num_classes=None,
        min_size=image_size,
        max_size=image_size,
        image_mean=[0.0] * in_channels,  # the images arrive standardised already
        image_std=[1.0] * in_channels,
        rpn_anchor_generator=AnchorGenerator(sizes=((8, 12, 16),), aspect_ratios=((1.0,),)),
        rpn_pre_nms_top_n_train=300,
        rpn_post_nms_top_n_train=100,
        rpn_pre_nms_top_n_test=150,
        rpn_post_nms_top_n_test=50,
        rpn_batch_size_per_image=64,
        box_roi_pool=MultiScaleRoIAlign(["0"], output_size=7, sampling_ratio=2),
        box_head=TwoMLPHead(c * 7 * 7, 128),
        box_predictor=FastRCNNPredictor(128, num_classes),
        box_batch_size_per_image=64,
        box_detections_per_img=10,
        mask_roi_pool=MultiScaleRoIAlign(["0"], output_size=14, sampling_ratio=2),
        mask_head=MaskRCNNHeads(c, (c, c), 1),
        mask_predictor=MaskRCNNPredictor(c, c, num_classes),
    )
