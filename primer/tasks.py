"""The four vision tasks on one set of lesion phantoms: data, targets, losses, decoders, training.

    train, test = task_data(task_config(contrast=3.0, max_lesions=3))
    detector, history = train_detector(train, TaskTrainConfig())      # one-stage, live
    boxes, scores = detect(detector, test.x[:1], score_threshold=0.3, iou_threshold=0.5)[0]
    unet, history = train_segmenter(train, TaskTrainConfig(), skips=True)
    probs = segment(unet, test.x)                                     # (N, H, W) in [0, 1]

Classification asks "is there a lesion?" (one number per image); detection "where, as boxes?"
(a list of scored boxes); semantic segmentation "which pixels are lesion?" (one mask);
instance segmentation "which pixels belong to which lesion?" (one mask per lesion). Each is a
head and a loss on top of convolutional features:

- classification: global pooling → linear → cross-entropy (the registry's classifiers);
- detection: a centre heatmap trained with the focal loss, and four edge distances trained
  with a box loss (GIoU + L1) at the cells near each centre; decoded by thresholding the
  heatmap and non-maximum suppression;
- semantic segmentation: a per-pixel logit from a U-Net (pool, upsample, skips) or a dilated
  segmenter (no pooling, DeepLab-style dilations), trained with cross-entropy, Dice or both;
- instance segmentation: the semantic mask split into connected components (one colour per
  lesion), or a two-stage Mask R-CNN that draws a mask inside each detected box.

Metrics come from `primer.segdet` (Dice, detection AP); NMS from torchvision is the one used,
and `nms_trace` replays it step by step for the page (a test checks they agree).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from torch import nn
from torchvision.ops import batched_nms, box_iou, generalized_box_iou_loss

import models
from primer import segdet
from primer.labstate import register_lab
from primer.synth import PhantomConfig, generate
from primer.train import standardize

# ---------------------------------------------------------------------------------------------
# Data


def task_config(contrast: float = 3.0, max_lesions: int = 3, seed: int = 0, n: int = 1250) -> PhantomConfig:
    """The default segmentation and detection phantoms: 1–3 disk lesions of radius ≈ 5 px.

    Disks, not Gaussian blobs, because a segmentation needs a border: a disk's edge is where its
    brightness is half the peak, a blob fades out and its "edge" is a convention."""
    return PhantomConfig(
        n=n,
        size=64,
        profile="disk",
        radius=5.0,  # ≈ 10 px across: 2–3 cells of the detector's stride-4 grid
        contrast=contrast,
        min_lesions=1,
        max_lesions=max_lesions,
        prevalence=0.85,  # mostly positive images (detection needs lesions) but some empty ones
        seed=seed,
    )


@dataclass
class TaskData:
    """Images with every kind of label, for one split."""

    x: torch.Tensor  # (N, 1, H, W) standardised
    masks: np.ndarray  # (N, H, W) bool semantic masks
    instance_map: np.ndarray  # (N, H, W) uint8: 0 background, k = lesion k
    boxes: list[np.ndarray]  # per image (k, 4) x1, y1, x2, y2 inclusive pixel indices
    centers: list[np.ndarray]  # per image (k, 2) row, col
    labels: np.ndarray  # (N,) 1 when the image has a lesion

    def __len__(self) -> int:
        return len(self.labels)

    def instance_masks(self, i: int) -> np.ndarray:
        """(k, H, W) bool, one mask per lesion of image i."""
        k = len(self.boxes[i])
        return self.instance_map[i][None] == np.arange(1, k + 1)[:, None, None]


def task_data(config: PhantomConfig, test_fraction: float = 0.2) -> tuple[TaskData, TaskData]:
    """Generate, standardise and split (one image per patient, so a split by index is a split
    by patient). The test images are ordered from most lesions to none, so image 0 shows the
    most to look at."""
    phantoms = generate(config)
    x = standardize(phantoms.images)  # (N, 1, H, W)
    n_test = max(1, round(test_fraction * len(phantoms)))
    order = np.arange(len(phantoms))
    train_idx, test_idx = order[:-n_test], order[-n_test:]
    test_idx = test_idx[np.argsort(-phantoms.n_lesions[test_idx], kind="stable")]

    def part(idx: np.ndarray) -> TaskData:
        return TaskData(
            x=x[torch.from_numpy(idx)],
            masks=phantoms.masks[idx],
            instance_map=phantoms.instance_map[idx],
            boxes=[phantoms.image_boxes(i).astype(np.float32) for i in idx],
            centers=[phantoms.centers[i, : phantoms.n_lesions[i]] for i in idx],
            labels=phantoms.labels[idx],
        )

    return part(train_idx), part(test_idx)


# ---------------------------------------------------------------------------------------------
# Losses


def pixel_cross_entropy(logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy per pixel, averaged: the classification loss applied to every pixel."""
    return F.binary_cross_entropy_with_logits(logits, masks.float())


def dice_loss(logits: torch.Tensor, masks: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """1 − soft Dice over the batch: the probabilities stand in for the binary mask. Unlike
    per-pixel cross-entropy it counts only the overlap and the two areas, never the background
    pixels that are rightly dark, so a few lesion pixels are not outvoted by thousands of
    background ones. `smooth` keeps an empty image (no lesion, no prediction) at a loss of 0."""
    probs = torch.sigmoid(logits)
    target = masks.float()
    overlap = (probs * target).sum()
    return 1 - (2 * overlap + smooth) / (probs.sum() + target.sum() + smooth)


def focal_loss(logits: torch.Tensor, target: torch.Tensor, alpha: float = 2.0, beta: float = 4.0) -> torch.Tensor:
    """CenterNet's focal loss on a heatmap whose peaks are exactly 1.

    At a peak: −(1 − p)^α log p. Elsewhere: −(1 − y)^β p^α log(1 − p), where y is the Gaussian
    target: confident, easy background cells (p ≈ 0) cost almost nothing, and cells right next
    to a centre (y near 1) are barely punished for firing. Summed and divided by the number of
    lesions, so the loss does not depend on how much empty background an image has."""
    p = torch.sigmoid(logits).clamp(1e-6, 1 - 1e-6)
    positive = target.eq(1).float()
    log_p = F.logsigmoid(logits)
    log_not_p = F.logsigmoid(-logits)
    pos_loss = -((1 - p) ** alpha) * log_p * positive
    neg_loss = -((1 - target) ** beta) * p**alpha * log_not_p * (1 - positive)
    return (pos_loss.sum() + neg_loss.sum()) / positive.sum().clamp_min(1.0)


def box_loss(pred: torch.Tensor, target: torch.Tensor, stride: int = 4) -> torch.Tensor:
    """GIoU loss (torchvision) plus L1 on the box corners in units of grid cells, averaged over
    boxes (K, 4). GIoU cares about overlap whatever the box size; L1 pins the exact edges."""
    if len(pred) == 0:
        return pred.sum() * 0.0
    giou = generalized_box_iou_loss(pred, target, reduction="mean")
    return giou + F.l1_loss(pred / stride, target / stride)


# ---------------------------------------------------------------------------------------------
# Detection targets and decoding


def cell_centers(grid: int, stride: int) -> torch.Tensor:
    """Pixel coordinate of each cell's centre along one axis, (grid,). Pixel centres are at
    integer coordinates, so a stride-4 cell covering pixels 0–3 is centred at 1.5."""
    return torch.arange(grid, dtype=torch.float32) * stride + (stride - 1) / 2


@dataclass
class CenterTargets:
    heatmap: torch.Tensor  # (N, 1, G, G) Gaussian bumps, exactly 1 at each lesion's cell
    boxes: torch.Tensor  # (N, 4, G, G) x1, y1, x2, y2 of the lesion a cell belongs to
    weight: torch.Tensor  # (N, 1, G, G) 1 where the box is regressed (cells near a centre)


def center_targets(data: TaskData, stride: int = 4, sigma_cells: float = 0.8, near: float = 0.5) -> CenterTargets:
    """Training targets of the one-stage detector: where centres are, and each box."""
    n, size = len(data), data.x.shape[-1]
    grid = size // stride
    heatmap = torch.zeros(n, 1, grid, grid)
    boxes = torch.zeros(n, 4, grid, grid)
    weight = torch.zeros(n, 1, grid, grid)
    centre_px = cell_centers(grid, stride)
    for i in range(n):  # a handful of lesions per image; the images are few thousand at most
        for (row, col), box in zip(data.centers[i], data.boxes[i], strict=True):
            cy, cx = (row - (stride - 1) / 2) / stride, (col - (stride - 1) / 2) / stride  # cell units
            ys, xs = torch.arange(grid).float()[:, None], torch.arange(grid).float()[None, :]
            bump = torch.exp(-((ys - cy) ** 2 + (xs - cx) ** 2) / (2 * sigma_cells**2))  # (G, G)
            peak_r = int(np.clip(round(cy), 0, grid - 1))
            peak_c = int(np.clip(round(cx), 0, grid - 1))
            bump[peak_r, peak_c] = 1.0
            heatmap[i, 0] = torch.maximum(heatmap[i, 0], bump)
            # Regress the box from cells near the centre whose centre lies inside the box.
            inside = (centre_px[None, :] >= box[0]) & (centre_px[None, :] <= box[2])
            inside = inside & (centre_px[:, None] >= box[1]) & (centre_px[:, None] <= box[3])
            chosen = (bump >= near) & inside
            chosen[peak_r, peak_c] = True
            boxes[i, :, chosen] = torch.as_tensor(box, dtype=torch.float32)[:, None]
            weight[i, 0, chosen] = 1.0
    return CenterTargets(heatmap, boxes, weight)


def boxes_from_distances(ltrb: torch.Tensor, stride: int) -> torch.Tensor:
    """(N, 4, G, G) distances to left, top, right, bottom edges → (N, 4, G, G) x1, y1, x2, y2."""
    grid = ltrb.shape[-1]
    c = cell_centers(grid, stride).to(ltrb)
    cx, cy = c[None, None, :], c[None, :, None]  # (1, 1, G) and (1, G, 1)
    return torch.stack([cx - ltrb[:, 0], cy - ltrb[:, 1], cx + ltrb[:, 2], cy + ltrb[:, 3]], dim=1)  # (N, 4, G, G)


@dataclass
class Candidates:
    """One image's boxes before NMS: every cell whose heatmap score passes the threshold."""

    boxes: np.ndarray  # (K, 4) float, sorted by score, highest first
    scores: np.ndarray  # (K,)


@torch.no_grad()
def candidates(
    model: nn.Module, x: torch.Tensor, score_threshold: float = 0.3, max_candidates: int = 100
) -> list[Candidates]:
    """Decode the one-stage detector: threshold the heatmap, one box per passing cell."""
    model.eval()
    heat_logits, ltrb = model(x)
    scores = torch.sigmoid(heat_logits)[:, 0]  # (N, G, G)
    boxes = boxes_from_distances(ltrb, model.stride).permute(0, 2, 3, 1)  # (N, G, G, 4)
    size = x.shape[-1]
    out = []
    for s, b in zip(scores.flatten(1), boxes.flatten(1, 2), strict=True):  # (G·G,), (G·G, 4)
        keep = torch.nonzero(s >= score_threshold).squeeze(1)
        keep = keep[torch.argsort(-s[keep], stable=True)][:max_candidates]
        clipped = b[keep].clamp(0, size - 1)
        out.append(Candidates(clipped.numpy().astype(np.float64), s[keep].numpy().astype(np.float64)))
    return out


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Indices kept by non-maximum suppression (torchvision.ops.nms), highest score first."""
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.int64)
    kept = batched_nms(
        torch.from_numpy(np.asarray(boxes, dtype=np.float64)),
        torch.from_numpy(np.asarray(scores, dtype=np.float64)),
        torch.zeros(len(boxes), dtype=torch.int64),
        iou_threshold,
    )
    return kept.numpy()


@dataclass
class NmsStep:
    kept: int  # index of the box kept at this step (the best one still in play)
    suppressed: list[int]  # indices it removes: overlap above the threshold
    ious: list[float]  # their IoU with the kept box


@dataclass
class NmsTrace:
    steps: list[NmsStep] = field(default_factory=list)

    @property
    def kept(self) -> list[int]:
        return [s.kept for s in self.steps]


def nms_trace(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> NmsTrace:
    """Greedy NMS written out, to show each step: take the best remaining box, remove every
    box that overlaps it by more than `iou_threshold` (IoU), repeat until none remain."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    order = list(np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable"))
    ious = box_iou(torch.from_numpy(boxes), torch.from_numpy(boxes)).numpy() if len(boxes) else np.zeros((0, 0))
    trace = NmsTrace()
    while order:
        best, rest = order[0], order[1:]
        gone = [j for j in rest if ious[best, j] > iou_threshold]
        trace.steps.append(NmsStep(int(best), [int(j) for j in gone], [float(ious[best, j]) for j in gone]))
        order = [j for j in rest if ious[best, j] <= iou_threshold]
    return trace


def detect(
    model: nn.Module, x: torch.Tensor, score_threshold: float = 0.3, iou_threshold: float = 0.5
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Boxes and scores after NMS, per image."""
    out = []
    for cand in candidates(model, x, score_threshold):
        keep = nms(cand.boxes, cand.scores, iou_threshold)
        out.append((cand.boxes[keep], cand.scores[keep]))
    return out


def detection_pr(model: nn.Module, data: TaskData, iou_threshold: float = 0.5) -> segdet.DetectionPR:
    """Precision–recall and AP over the test set at a match IoU (VOC-style interpolated AP)."""
    found = detect(model, data.x, score_threshold=0.05, iou_threshold=0.5)
    matches = segdet.match_detections(
        [b for b, _ in found], [s for _, s in found], [b.astype(np.float64) for b in data.boxes], iou_threshold
    )
    return segdet.detection_pr(matches)


# ---------------------------------------------------------------------------------------------
# Segmentation decoding: semantic → instances


@torch.no_grad()
def segment(model: nn.Module, x: torch.Tensor, batch_size: int = 256) -> np.ndarray:
    """Lesion probability per pixel, (N, H, W)."""
    model.eval()
    probs = [torch.sigmoid(model(x[i : i + batch_size]))[:, 0] for i in range(0, len(x), batch_size)]
    return torch.cat(probs).numpy()


def instances_from_mask(mask: np.ndarray, min_pixels: int = 4) -> np.ndarray:
    """Split a semantic mask (H, W) into lesions: each 8-connected blob is one instance.
    Returns an int map, 0 background, 1..k the blobs largest first; specks below `min_pixels`
    are dropped. Touching lesions would merge: that is what instance-aware models fix."""
    labelled, count = ndimage.label(mask, structure=np.ones((3, 3), bool))
    if count == 0:
        return labelled
    sizes = ndimage.sum_labels(np.ones_like(labelled), labelled, index=np.arange(1, count + 1))
    order = np.argsort(-sizes, kind="stable")
    remap = np.zeros(count + 1, dtype=np.int64)
    new_id = 0
    for old in order:
        if sizes[old] >= min_pixels:
            new_id += 1
            remap[old + 1] = new_id
    return remap[labelled]


def boxes_from_masks(masks: np.ndarray) -> np.ndarray:
    """Tight boxes (x1, y1, x2, y2, inclusive pixel indices) of boolean masks (k, H, W) → (k, 4),
    torchvision.ops.masks_to_boxes' convention. An empty mask gives a NaN row."""
    masks = np.asarray(masks, dtype=bool).reshape(-1, *np.shape(masks)[-2:])  # (k, H, W)
    out = np.full((len(masks), 4), np.nan)
    for i, mask in enumerate(masks):
        rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
        if rows.size:
            out[i] = (cols[0], rows[0], cols[-1], rows[-1])
    return out


def instance_ious(truth_map: np.ndarray, pred_map: np.ndarray) -> list[float]:
    """For each true lesion, the best mask IoU with any predicted instance (0 if none)."""
    out = []
    for t in range(1, int(truth_map.max()) + 1):
        truth = truth_map == t
        best = 0.0
        for p in np.unique(pred_map[truth]):
            if p:
                best = max(best, segdet.iou(truth, pred_map == p))
        out.append(best)
    return out


# ---------------------------------------------------------------------------------------------
# Training


@dataclass(frozen=True)
class TaskTrainConfig:
    num_epochs: int = 6  # both pass the chapter's budget (Dice, AP ≥ 0.8) by epoch 3 or so
    batch_size: int = 32  # ~31 steps per epoch on 1000 images: many small steps learn faster here
    learning_rate: float = 3e-3  # AdamW, as in the training lab
    width: int = 8  # U-Net first-level channels: Dice passes 0.8 by the third epoch
    detector_width: int = 8  # detector backbone 8-16-32 channels: AP passes 0.8 in one or two epochs
    dilated_width: int = (
        8  # dilated segmenter channels: every layer is full size, so narrow keeps it as fast as the U-Net
    )
    seed: int = 0


@dataclass
class TaskEpoch:
    """One epoch of any of the chapter's own training loops (tasks and generative models)."""

    epoch: int
    loss: float  # mean training loss per image
    score: float  # what the model is for, on held-out data: Dice, AP@0.5, PSNR (dB), test loss
    seconds: float


Callback = Callable[[TaskEpoch], None]


def fit_batches(
    model: nn.Module,
    n: int,
    loss_fn: Callable[[torch.Tensor, torch.Generator], torch.Tensor],
    config,
    score_fn: Callable[[], float],
    on_epoch: Callback | None = None,
    should_stop: Callable[[], bool] | None = None,
    one_cycle: bool = True,
) -> list[TaskEpoch]:
    """A seeded AdamW loop over shuffled index batches; `loss_fn(index, generator)` computes
    one batch's loss (the generator is the loop's own, for any noise or augmentation the batch
    needs, so the whole run follows from `config.seed`). `config` needs num_epochs,
    batch_size, learning_rate and seed. `score_fn` scores held-out data after every epoch."""
    g = torch.Generator().manual_seed(config.seed)
    # channels-last layout: oneDNN's CPU convolutions run ~1.7× faster on it for these nets
    model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate)
    steps = max(1, math.ceil(n / config.batch_size))
    # One-cycle cosine schedule: fast early progress, then settle (matters in a few epochs).
    schedule = (
        torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=config.learning_rate, total_steps=steps * config.num_epochs, pct_start=0.2
        )
        if one_cycle
        else None
    )
    history: list[TaskEpoch] = []
    start = time.perf_counter()
    for epoch in range(1, config.num_epochs + 1):
        model.train()
        order = torch.randperm(n, generator=g)
        total = 0.0
        for b in range(steps):
            index = order[b * config.batch_size : (b + 1) * config.batch_size]
            if len(index) < 2:  # BatchNorm needs two images
                continue
            loss = loss_fn(index, g)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if schedule is not None:
                schedule.step()
            total += loss.item() * len(index)
            if should_stop is not None and should_stop():
                break
        record = TaskEpoch(epoch, total / n, score_fn(), time.perf_counter() - start)
        history.append(record)
        if on_epoch is not None:
            on_epoch(record)
        if should_stop is not None and should_stop():
            break
    model.eval()
    return history


SEGMENTERS = {"unet": "unet_small", "dilated": "dilated_segmenter"}  # lab choice → registry name
SEG_LOSSES = ("dice_ce", "ce", "dice")  # Dice + cross-entropy (nnU-Net's default), each alone


def segmentation_loss(name: str, logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """The lab's three segmentation losses: per-pixel cross-entropy, Dice loss, or their sum."""
    if name == "ce":
        return pixel_cross_entropy(logits, masks)
    if name == "dice":
        return dice_loss(logits, masks)
    if name == "dice_ce":
        return pixel_cross_entropy(logits, masks) + dice_loss(logits, masks)
    raise ValueError(f"unknown segmentation loss {name!r}; choose one of {SEG_LOSSES}")


def build_segmenter(segmenter: str, config: TaskTrainConfig, skips: bool = True) -> nn.Module:
    """The chosen segmenter at the lab's size (skips only exist in the U-Net)."""
    if segmenter not in SEGMENTERS:
        raise ValueError(f"unknown segmenter {segmenter!r}; choose one of {tuple(SEGMENTERS)}")
    if segmenter == "unet":
        return models.build("unet_small", seed=config.seed, width=config.width, skips=skips)
    return models.build("dilated_segmenter", seed=config.seed, width=config.dilated_width)


def train_segmenter(
    train: TaskData,
    test: TaskData,
    config: TaskTrainConfig = TaskTrainConfig(),
    skips: bool = True,
    on_epoch: Callback | None = None,
    should_stop: Callable[[], bool] | None = None,
    segmenter: str = "unet",
    loss: str = "dice_ce",
) -> tuple[nn.Module, list[TaskEpoch]]:
    """Train the small U-Net (or, with skips=False, the same encoder–decoder without skip
    connections; or the dilated segmenter) with the chosen loss (default cross-entropy + Dice);
    the score each epoch is the test Dice."""
    if loss not in SEG_LOSSES:
        raise ValueError(f"unknown segmentation loss {loss!r}; choose one of {SEG_LOSSES}")
    model = build_segmenter(segmenter, config, skips)
    masks = torch.from_numpy(train.masks).unsqueeze(1)  # (N, 1, H, W)
    # Start every pixel at the share of lesion pixels (RetinaNet's prior, as for the detector):
    # from a 50% start the background, 97% of the pixels, spends the short run climbing down
    # from p = 0.5 and ends near p = 0.2, a map that is unsure everywhere whatever the loss.
    prior = float(train.masks.mean()) if train.masks.any() else 0.01
    with torch.no_grad():
        model.out.bias.fill_(math.log(prior / (1 - prior)))

    def loss_fn(index: torch.Tensor, _g) -> torch.Tensor:
        logits = model(train.x[index].contiguous(memory_format=torch.channels_last))
        return segmentation_loss(loss, logits, masks[index])

    history = fit_batches(
        model, len(train), loss_fn, config, lambda: segmentation_dice(model, test), on_epoch, should_stop
    )
    return model, history


def segmentation_dice(model: nn.Module, data: TaskData, threshold: float = 0.5) -> float:
    """Dice of all test masks pooled (every lesion pixel of the test set counts once)."""
    return float(segdet.dice(data.masks, segment(model, data.x) >= threshold))


@dataclass
class SegmentationReport:
    """What a segmentation loss changes, on the test set (mask = probability ≥ 0.5)."""

    dice: float  # all test masks pooled
    image_dice: float  # mean Dice per image, over the images that have a lesion
    small_dice: float  # mean per-lesion Dice of the smallest third of the lesions (by area)
    large_dice: float  # the same for the largest third
    uncertain: float  # share of all pixels with 0.1 < p < 0.9: how often the map is unsure
    lesion_uncertain: float  # the same share among lesion and border pixels only


def lesion_dices(truth_map: np.ndarray, pred: np.ndarray, margin: int = 3) -> list[tuple[int, float]]:
    """(area, Dice) of each true lesion with the predicted mask near it: within `margin` pixels of
    the lesion and outside the other lesions, so a neighbour's pixels do not count against it."""
    out = []
    for t in range(1, int(truth_map.max()) + 1):
        truth = truth_map == t
        near = segdet.dilate(truth, margin) & ((truth_map == 0) | truth)
        out.append((int(truth.sum()), segdet.dice(truth, pred & near)))
    return out


def segmentation_report(model: nn.Module, data: TaskData, threshold: float = 0.5) -> SegmentationReport:
    probs = segment(model, data.x)  # (N, H, W)
    pred = probs >= threshold
    per_image = [segdet.dice(data.masks[i], pred[i]) for i in range(len(data)) if data.masks[i].any()]
    lesions = sorted(a for i in range(len(data)) for a in lesion_dices(data.instance_map[i], pred[i]))
    third = max(1, len(lesions) // 3)
    unsure = (probs > 0.1) & (probs < 0.9)
    near_lesions = np.stack([segdet.dilate(m, 2) for m in data.masks])  # lesions and their borders
    return SegmentationReport(
        dice=float(segdet.dice(data.masks, pred)),
        image_dice=float(np.mean(per_image)) if per_image else float("nan"),
        small_dice=float(np.mean([d for _, d in lesions[:third]])) if lesions else float("nan"),
        large_dice=float(np.mean([d for _, d in lesions[-third:]])) if lesions else float("nan"),
        uncertain=float(unsure.mean()),
        lesion_uncertain=float(unsure[near_lesions].mean()) if near_lesions.any() else float("nan"),
    )


def segmenter_receptive_field(model: nn.Module) -> int | None:
    """Input pixels (along one side) that can change one output pixel, measured by a gradient
    through a linear, positive copy of the network (primer.architectures); None: the whole image."""
    from primer.architectures import receptive_fields

    return receptive_fields(model, [model.out])[0]


def train_detector(
    train: TaskData,
    test: TaskData,
    config: TaskTrainConfig = TaskTrainConfig(),
    on_epoch: Callback | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> tuple[nn.Module, list[TaskEpoch]]:
    """Train the one-stage detector: focal loss on the heatmap + box loss near the centres;
    the score each epoch is the test AP at IoU 0.5."""
    model = models.build("center_detector", seed=config.seed, width=config.detector_width)
    model.set_prior(0.01)
    targets = center_targets(train, model.stride)

    def loss_fn(index: torch.Tensor, _g) -> torch.Tensor:
        heat_logits, ltrb = model(train.x[index].contiguous(memory_format=torch.channels_last))
        pred = boxes_from_distances(ltrb, model.stride).permute(0, 2, 3, 1)  # (B, G, G, 4)
        goal = targets.boxes[index].permute(0, 2, 3, 1)  # (B, G, G, 4)
        chosen = targets.weight[index, 0] > 0  # (B, G, G)
        return focal_loss(heat_logits, targets.heatmap[index]) + box_loss(pred[chosen], goal[chosen], model.stride)

    history = fit_batches(
        model,
        len(train),
        loss_fn,
        config,
        lambda: detection_pr(model, test).average_precision,
        on_epoch,
        should_stop,
    )
    return model, history


# ---------------------------------------------------------------------------------------------
# The lab


@register_lab("fourtask")
@dataclass
class FourTaskLab:
    """Settings of the four-tasks lab; the first four define the training, the rest the view."""

    contrast: float = 3.0  # lesion peak in background-std units: visible, still not trivial
    max_lesions: int = 3
    skips: bool = True  # U-Net skip connections (off: a plain encoder–decoder)
    seed: int = 0
    segmenter: str = "unet"  # "unet" or "dilated": the U-Net stays the default (old links open as before)
    seg_loss: str = "dice_ce"  # "dice_ce", "ce" or "dice": Dice + CE is what the lab always trained with
    image: int = 0  # test image shown (ordered from most lesions to none)
    score_threshold: float = 0.3  # heatmap score a cell needs to propose a box
    nms_iou: float = 0.5  # overlap above which NMS removes the weaker box
    proposals: int = 10  # RPN proposals drawn: enough to see them crowd each lesion, few enough to read

    def phantom_config(self) -> PhantomConfig:
        return task_config(self.contrast, self.max_lesions, self.seed)

    def train_config(self) -> TaskTrainConfig:
        return TaskTrainConfig(seed=self.seed)

    def segmenter_choice(self) -> str:
        """The segmenter to train; an unknown value from an edited link falls back to the U-Net."""
        return self.segmenter if self.segmenter in SEGMENTERS else "unet"

    def loss_choice(self) -> str:
        return self.seg_loss if self.seg_loss in SEG_LOSSES else "dice_ce"


# ---------------------------------------------------------------------------------------------
# The two-stage model (Mask R-CNN), shipped as a checkpoint by scripts/train_two_stage.py

TWO_STAGE_CHECKPOINT = Path(__file__).resolve().parent.parent / "models" / "checkpoints" / "two_stage.pt"


def two_stage_targets(data: TaskData, index) -> list[dict[str, torch.Tensor]]:
    """torchvision's detection targets for images `index`: boxes, labels (1 = lesion), masks."""
    out = []
    for i in np.asarray(index).reshape(-1):
        boxes = torch.tensor(data.boxes[i], dtype=torch.float32).reshape(-1, 4)  # a copy: edited below
        # torchvision boxes are continuous coordinates: an inclusive pixel box x1..x2 spans
        # x1 .. x2 + 1, so a one-pixel lesion still has a positive width.
        boxes[:, 2:] += 1
        out.append(
            {
                "boxes": boxes,
                "labels": torch.ones(len(boxes), dtype=torch.int64),
                "masks": torch.from_numpy(data.instance_masks(i)).to(torch.uint8),
            }
        )
    return out


@dataclass
class TwoStageOutput:
    boxes: np.ndarray  # (k, 4) inclusive pixel convention, like the phantoms' boxes
    scores: np.ndarray  # (k,)
    masks: np.ndarray  # (k, H, W) float in [0, 1]: each detection's own soft mask

    def instance_map(self, score_threshold: float = 0.5, mask_threshold: float = 0.5) -> np.ndarray:
        """One int map, instances numbered by score; where masks overlap the higher score wins."""
        keep = np.flatnonzero(self.scores >= score_threshold)
        out = np.zeros(self.masks.shape[1:], dtype=np.int64)
        for k, j in enumerate(keep[::-1]):  # lowest score first, so the best paints last
            out[self.masks[j] >= mask_threshold] = len(keep) - k
        return out


@torch.no_grad()
def two_stage_predict(model: nn.Module, x: torch.Tensor) -> list[TwoStageOutput]:
    """Run Mask R-CNN on (N, 1, H, W) standardised images."""
    model.eval()
    out = []
    for found in model(list(x)):
        boxes = found["boxes"].numpy().astype(np.float64)
        boxes[:, 2:] = np.maximum(boxes[:, 2:] - 1, boxes[:, :2])  # back to inclusive pixel indices
        out.append(TwoStageOutput(boxes, found["scores"].numpy().astype(np.float64), found["masks"][:, 0].numpy()))
    return out


def load_two_stage(path=None) -> tuple[nn.Module, dict]:
    """The shipped two-stage model and what its checkpoint records (settings, metrics)."""
    raw = torch.load(path or TWO_STAGE_CHECKPOINT, map_location="cpu", weights_only=True)
    model = models.build("mask_rcnn_small", **raw["model_kwargs"])
    model.load_state_dict({k: v.float() for k, v in raw["state_dict"].items()})
    return model.eval(), raw


# ---------------------------------------------------------------------------------------------
# Inside the two-stage model: the anchors its RPN scores, its proposals, its AP


@dataclass
class TwoStageAnatomy:
    """What the shipped Mask R-CNN is made of, read from the model itself."""

    anchor_sizes: tuple[int, ...]  # px, over all feature maps
    aspect_ratios: tuple[float, ...]  # height / width, over all feature maps
    anchors_per_position: int
    feature_maps: list[tuple[str, int, int]]  # (name, grid side, stride in px)
    has_fpn: bool  # a feature pyramid (torchvision's BackboneWithFPN) in the backbone
    anchors_per_image: int  # anchors the RPN scores on one image
    pre_nms_top_n: int  # best-scoring anchors kept before the RPN's NMS (test time)
    post_nms_top_n: int  # proposals handed to the second stage (test time)
    rpn_nms_iou: float


def _rpn_inputs(model: nn.Module, x: torch.Tensor):
    """The model's own preprocessing and backbone: (image list, [feature maps])."""
    images, _ = model.transform(list(x))
    features = model.backbone(images.tensors)
    if isinstance(features, torch.Tensor):  # a single map, as GeneralizedRCNN wraps it
        features = {"0": features}
    return images, list(features.values()), list(features)


@torch.no_grad()
def two_stage_anatomy(model: nn.Module, image_size: int = 64) -> TwoStageAnatomy:
    model.eval()
    generator = model.rpn.anchor_generator
    images, features, names = _rpn_inputs(model, torch.zeros(1, 1, image_size, image_size))
    maps = [(n, int(f.shape[-1]), image_size // int(f.shape[-1])) for n, f in zip(names, features, strict=True)]
    per_position = generator.num_anchors_per_location()
    return TwoStageAnatomy(
        anchor_sizes=tuple(sorted({int(s) for level in generator.sizes for s in level})),
        aspect_ratios=tuple(sorted({float(r) for level in generator.aspect_ratios for r in level})),
        anchors_per_position=int(per_position[0]),
        feature_maps=maps,
        has_fpn=getattr(model.backbone, "fpn", None) is not None,
        anchors_per_image=int(len(generator(images, features)[0])),
        pre_nms_top_n=int(model.rpn._pre_nms_top_n["testing"]),
        post_nms_top_n=int(model.rpn._post_nms_top_n["testing"]),
        rpn_nms_iou=float(model.rpn.nms_thresh),
    )


@torch.no_grad()
def anchors_at(model: nn.Module, row: int, col: int, image_size: int = 64) -> np.ndarray:
    """The anchor boxes (A, 4) the RPN scores at one position of its (first) feature map,
    taken from the model's anchor generator, in the inclusive pixel convention."""
    generator = model.rpn.anchor_generator
    images, features, _ = _rpn_inputs(model, torch.zeros(1, 1, image_size, image_size))
    per_position = generator.num_anchors_per_location()[0]
    grid = features[0].shape[-1]
    anchors = generator(images, features)[0]  # (positions · A, 4), positions row by row
    start = (int(row) * grid + int(col)) * per_position
    boxes = anchors[start : start + per_position].numpy().astype(np.float64)
    boxes[:, 2:] -= 1  # continuous → inclusive pixel indices
    return boxes


@dataclass
class Proposals:
    boxes: np.ndarray  # (k, 4) inclusive pixel convention, best objectness first
    scores: np.ndarray  # (k,) objectness probability


@torch.no_grad()
def rpn_proposals(model: nn.Module, x: torch.Tensor) -> list[Proposals]:
    """The first stage alone: the proposals the RPN hands to the second stage, with the
    objectness scores torchvision computes for them (the same steps as RegionProposalNetwork's
    forward; a test checks the boxes are the ones it returns)."""
    from torchvision.models.detection.rpn import concat_box_prediction_layers

    model.eval()
    rpn = model.rpn
    images, features, _ = _rpn_inputs(model, x)
    objectness, deltas = rpn.head(features)
    anchors = rpn.anchor_generator(images, features)
    per_level = [o[0].numel() for o in objectness]  # A · H · W anchors per feature map
    objectness, deltas = concat_box_prediction_layers(objectness, deltas)
    decoded = rpn.box_coder.decode(deltas, anchors).view(len(anchors), -1, 4)  # (N, anchors, 4)
    boxes, scores = rpn.filter_proposals(decoded, objectness, images.image_sizes, per_level)
    out = []
    for b, s in zip(boxes, scores, strict=True):
        b = b.numpy().astype(np.float64)
        b[:, 2:] = np.maximum(b[:, 2:] - 1, b[:, :2])
        out.append(Proposals(b, s.numpy().astype(np.float64)))
    return out


def two_stage_pr(model: nn.Module, data: TaskData, iou_threshold: float = 0.5, batch: int = 50) -> segdet.DetectionPR:
    """Box precision–recall and AP of the two-stage model over a test set, matched exactly as
    the one-stage detector's (`detection_pr`): primer.segdet, VOC-style interpolated AP."""
    found = [f for i in range(0, len(data), batch) for f in two_stage_predict(model, data.x[i : i + batch])]
    matches = segdet.match_detections(
        [f.boxes for f in found], [f.scores for f in found], [b.astype(np.float64) for b in data.boxes], iou_threshold
    )
    return segdet.detection_pr(matches)


@lru_cache(maxsize=6)
def cached_task_data(config: PhantomConfig) -> tuple[TaskData, TaskData]:
    """task_data, kept for the few configs in use (the page and the training threads share it;
    nobody writes to it)."""
    return task_data(config)


@torch.no_grad()
def heatmap(model: nn.Module, x: torch.Tensor) -> np.ndarray:
    """The detector's centre probabilities for one image, (G, G)."""
    model.eval()
    return torch.sigmoid(model(x)[0])[0, 0].numpy()
