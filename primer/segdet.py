"""Segmentation and detection metrics: Dice, IoU, Hausdorff, overlap maps, box matching, AP, FROC.

Conventions the page and the tests rely on:
- Masks are same-shape arrays (2-D or 3-D); anything non-zero is foreground.
- Two empty masks agree perfectly: Dice = IoU = 1.0 and Hausdorff = HD95 = 0.0. One empty and
  one not: Dice = IoU = 0.0 and Hausdorff = HD95 = inf (there is no contour to measure to).
- A boundary pixel is a foreground pixel with a face-neighbour in the background; the image
  border counts as background, so a mask touching the edge has a contour along it.
- Distances are in pixels unless ``spacing`` (one step size per axis, e.g. mm per row and per
  column) is given.
- Boxes are (x1, y1, x2, y2) with x2 >= x1 and y2 >= y1 (torchvision's convention); a zero-area
  box is allowed and has IoU 0 with everything.
- A prediction matches a true box when IoU >= iou_threshold. Predictions are taken from the
  highest score down; each takes the still-unmatched truth it overlaps most (COCO's greedy rule).
  A second hit on an already-matched truth is a false positive.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from primer.metrics import MetricsError

# The seven false-positive rates of the LUNA16 challenge; their mean sensitivity is its score (CPM).
LUNA16_FP_LEVELS = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)


# ---------------------------------------------------------------------------------------------
# Overlap
# ---------------------------------------------------------------------------------------------


def _mask_pair(truth, pred) -> tuple[np.ndarray, np.ndarray]:
    truth = np.asarray(truth).astype(bool)
    pred = np.asarray(pred).astype(bool)
    if truth.shape != pred.shape:
        raise MetricsError("shape_mismatch", {"truth": list(truth.shape), "pred": list(pred.shape)})
    return truth, pred


def dice(truth, pred) -> float:
    """2 |T ∩ P| / (|T| + |P|); 1.0 when both masks are empty."""
    truth, pred = _mask_pair(truth, pred)
    total = np.count_nonzero(truth) + np.count_nonzero(pred)
    if total == 0:
        return 1.0
    return 2.0 * np.count_nonzero(truth & pred) / total


def iou(truth, pred) -> float:
    """|T ∩ P| / |T ∪ P| (Jaccard); 1.0 when both masks are empty."""
    truth, pred = _mask_pair(truth, pred)
    union = np.count_nonzero(truth | pred)
    if union == 0:
        return 1.0
    return np.count_nonzero(truth & pred) / union


def overlap_map(truth, pred) -> np.ndarray:
    """uint8 map for drawing: 0 background, 1 true positive, 2 false positive, 3 false negative."""
    truth, pred = _mask_pair(truth, pred)
    # Index = 2 * truth + pred: (0,0) background, (0,1) FP, (1,0) FN, (1,1) TP.
    code_of_pair = np.array([0, 2, 3, 1], dtype=np.uint8)
    return code_of_pair[2 * truth.astype(np.uint8) + pred.astype(np.uint8)]


# ---------------------------------------------------------------------------------------------
# Boundary distances
# ---------------------------------------------------------------------------------------------


def boundary(mask) -> np.ndarray:
    """Foreground pixels with at least one face-neighbour in the background (or off the image)."""
    mask = np.asarray(mask).astype(bool)
    face_neighbours = ndimage.generate_binary_structure(mask.ndim, 1)
    return mask & ~ndimage.binary_erosion(mask, structure=face_neighbours, border_value=0)


def _spacing(spacing, ndim: int) -> tuple[float, ...]:
    if spacing is None:
        return (1.0,) * ndim
    steps = np.asarray(spacing, dtype=np.float64).reshape(-1)  # (1,) or (ndim,)
    if steps.size == 1:
        steps = np.repeat(steps, ndim)
    if steps.size != ndim or not (np.isfinite(steps).all() and (steps > 0).all()):
        raise MetricsError("bad_spacing", {"spacing": steps.tolist(), "ndim": ndim})
    return tuple(float(step) for step in steps)


def boundary_distances(truth, pred, spacing=None) -> tuple[np.ndarray, np.ndarray]:
    """(truth-to-pred, pred-to-truth): each boundary point's distance to the other contour.

    Arrays plot directly as histograms. A contour facing an empty mask gets inf at every point;
    an empty mask contributes an empty array.
    """
    truth, pred = _mask_pair(truth, pred)
    spacing = _spacing(spacing, truth.ndim)
    truth_edge, pred_edge = boundary(truth), boundary(pred)
    return _directed(truth_edge, pred_edge, spacing), _directed(pred_edge, truth_edge, spacing)


def _directed(from_edge: np.ndarray, to_edge: np.ndarray, spacing: tuple[float, ...]) -> np.ndarray:
    if not to_edge.any():
        return np.full(np.count_nonzero(from_edge), np.inf)
    # The Euclidean distance transform of "not on the target contour" gives, at every pixel, the
    # exact distance to the nearest contour pixel; reading it at the source contour is the answer.
    distance_to_target = ndimage.distance_transform_edt(~to_edge, sampling=spacing)
    return distance_to_target[from_edge]


def hausdorff(truth, pred, spacing=None, percentile: float = 100.0) -> float:
    """Symmetric Hausdorff distance; with ``percentile`` < 100, its robust version.

    Each direction's distances are summarized by their percentile (linear interpolation) and the
    larger direction is returned, as MONAI and DeepMind's surface-distance do. At 100 this is the
    classic max-min Hausdorff distance. 0.0 for two empty masks, inf when only one is empty.
    """
    if not 0.0 <= percentile <= 100.0:
        raise MetricsError("out_of_range", {"name": "percentile", "value": float(percentile)})
    truth_to_pred, pred_to_truth = boundary_distances(truth, pred, spacing)
    if truth_to_pred.size == 0 and pred_to_truth.size == 0:
        return 0.0
    if truth_to_pred.size == 0 or pred_to_truth.size == 0:
        return float("inf")
    return float(max(np.percentile(truth_to_pred, percentile), np.percentile(pred_to_truth, percentile)))


def hd95(truth, pred, spacing=None) -> float:
    """95th-percentile Hausdorff distance: ignores the worst 5% of contour points in each direction."""
    return hausdorff(truth, pred, spacing, percentile=95.0)


# ---------------------------------------------------------------------------------------------
# Mask perturbations for the segmentation lab (each returns a new mask)
# ---------------------------------------------------------------------------------------------


def _ball(radius: int, ndim: int) -> np.ndarray:
    """Boolean Euclidean ball of the given radius in pixels, shape (2r + 1,) * ndim."""
    offsets = np.indices((2 * radius + 1,) * ndim) - radius  # (ndim, 2r + 1, ..., 2r + 1)
    return (offsets**2).sum(axis=0) <= radius**2


def _check_radius(radius) -> int:
    if int(radius) != radius or radius < 0:
        raise MetricsError("out_of_range", {"name": "radius", "value": float(radius)})
    return int(radius)


def dilate(mask, radius: int) -> np.ndarray:
    """Grow the mask by ``radius`` pixels (a disk-shaped structuring element): over-segmentation."""
    mask = np.asarray(mask).astype(bool)
    radius = _check_radius(radius)
    if radius == 0:
        return mask.copy()
    return ndimage.binary_dilation(mask, structure=_ball(radius, mask.ndim))


def erode(mask, radius: int) -> np.ndarray:
    """Shrink the mask by ``radius`` pixels: under-segmentation. The image border counts as background."""
    mask = np.asarray(mask).astype(bool)
    radius = _check_radius(radius)
    if radius == 0:
        return mask.copy()
    return ndimage.binary_erosion(mask, structure=_ball(radius, mask.ndim), border_value=0)


def shift(mask, offset: Sequence[int]) -> np.ndarray:
    """Move the mask by whole pixels per axis, e.g. (rows, cols); what leaves the image is lost."""
    mask = np.asarray(mask).astype(bool)
    offset = tuple(int(step) for step in offset)
    if len(offset) != mask.ndim:
        raise MetricsError("shape_mismatch", {"mask": list(mask.shape), "offset": list(offset)})
    shifted = np.zeros_like(mask)
    source, target = [], []
    for step, size in zip(offset, mask.shape, strict=True):
        # Copy the overlapping window instead of np.roll, which would wrap the lesion around.
        source.append(slice(max(0, -step), max(0, size - step)))
        target.append(slice(max(0, step), max(0, size + step)))
    shifted[tuple(target)] = mask[tuple(source)]
    return shifted


def add_blob(mask, center: Sequence[float], radius: float) -> np.ndarray:
    """The mask plus a filled disk (ball in 3-D) at ``center``: a false-positive finding."""
    mask = np.asarray(mask).astype(bool)
    if len(center) != mask.ndim:
        raise MetricsError("shape_mismatch", {"mask": list(mask.shape), "center": list(center)})
    if not radius >= 0:
        raise MetricsError("out_of_range", {"name": "radius", "value": float(radius)})
    grid = np.indices(mask.shape)  # (ndim, *mask.shape)
    squared_distance = sum((axis_grid - c) ** 2 for axis_grid, c in zip(grid, center, strict=True))
    return mask | (squared_distance <= radius**2)


# ---------------------------------------------------------------------------------------------
# Detection: box IoU and greedy matching
# ---------------------------------------------------------------------------------------------


def _boxes(boxes, name: str) -> np.ndarray:
    boxes = np.asarray(boxes, dtype=np.float64)
    if boxes.size == 0:
        return boxes.reshape(0, 4)  # (0, 4): an image without boxes may arrive as [] or shape (0,)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise MetricsError("bad_boxes", {"name": name, "shape": list(boxes.shape)})
    if not np.isfinite(boxes).all() or (boxes[:, 2] < boxes[:, 0]).any() or (boxes[:, 3] < boxes[:, 1]).any():
        raise MetricsError("bad_boxes", {"name": name, "shape": list(boxes.shape)})
    return boxes


def box_iou(boxes_a, boxes_b) -> np.ndarray:
    """(N, M) IoU between every box of a (N, 4) and of b (M, 4), by torchvision.ops.box_iou."""
    # torch is imported here so that the segmentation metrics (and the home page) never load it.
    import torch
    from torchvision.ops import box_iou as torchvision_box_iou

    boxes_a, boxes_b = _boxes(boxes_a, "boxes_a"), _boxes(boxes_b, "boxes_b")
    ious = torchvision_box_iou(torch.from_numpy(boxes_a), torch.from_numpy(boxes_b)).numpy()
    # Two zero-area boxes give 0 / 0; they overlap nothing, and a NaN would win every argmax.
    return np.nan_to_num(ious, nan=0.0)


@dataclass(frozen=True)
class ImageMatch:
    """One image's predictions, in the order given: which ones hit a true box, and which box."""

    is_true_positive: np.ndarray  # (P,) bool
    matched_truth: np.ndarray  # (P,) int index into the true boxes, -1 for a false positive
    iou: np.ndarray  # (P,) IoU with the matched truth; for a false positive its best IoU with any truth


def match_boxes(pred_boxes, pred_scores, true_boxes, iou_threshold: float = 0.5) -> ImageMatch:
    """Greedy matching in one image (see the module docstring for the rule)."""
    pred_boxes, true_boxes = _boxes(pred_boxes, "pred_boxes"), _boxes(true_boxes, "true_boxes")
    pred_scores = np.asarray(pred_scores, dtype=np.float64).reshape(-1)  # (P,)
    if pred_scores.shape[0] != pred_boxes.shape[0]:
        raise MetricsError("shape_mismatch", {"boxes": pred_boxes.shape[0], "scores": pred_scores.shape[0]})
    if not 0.0 < iou_threshold <= 1.0:
        raise MetricsError("out_of_range", {"name": "iou_threshold", "value": float(iou_threshold)})
    num_preds, num_truths = pred_boxes.shape[0], true_boxes.shape[0]
    is_true_positive = np.zeros(num_preds, dtype=bool)
    matched_truth = np.full(num_preds, -1, dtype=np.intp)
    best_iou = np.zeros(num_preds)
    if num_preds == 0 or num_truths == 0:
        return ImageMatch(is_true_positive, matched_truth, best_iou)
    ious = box_iou(pred_boxes, true_boxes)  # (P, T)
    truth_taken = np.zeros(num_truths, dtype=bool)
    # Stable sort: equal scores keep their given order, so the result never depends on chance.
    for pred in np.argsort(-pred_scores, kind="stable"):
        available = np.where(truth_taken, -1.0, ious[pred])
        truth = int(np.argmax(available))
        if available[truth] >= iou_threshold:
            is_true_positive[pred] = True
            matched_truth[pred] = truth
            truth_taken[truth] = True
            best_iou[pred] = ious[pred, truth]
        else:
            best_iou[pred] = ious[pred].max()
    return ImageMatch(is_true_positive, matched_truth, best_iou)


@dataclass(frozen=True)
class DetectionMatches:
    """All predictions of a test set, sorted by descending score, with their verdicts."""

    scores: np.ndarray  # (P,)
    is_true_positive: np.ndarray  # (P,) bool
    image_index: np.ndarray  # (P,) which image each prediction came from
    num_truths: int
    num_images: int  # images with neither predictions nor truths count here (FP per image)


def match_detections(
    pred_boxes: Sequence, pred_scores: Sequence, true_boxes: Sequence, iou_threshold: float = 0.5
) -> DetectionMatches:
    """Match every image's predictions (lists with one entry per image) and pool them."""
    if not len(pred_boxes) == len(pred_scores) == len(true_boxes):
        raise MetricsError(
            "shape_mismatch",
            {"pred_boxes": len(pred_boxes), "pred_scores": len(pred_scores), "true_boxes": len(true_boxes)},
        )
    if len(true_boxes) == 0:
        raise MetricsError("empty_input")
    scores, verdicts, image_index, num_truths = [], [], [], 0
    for image, (boxes, image_scores, truths) in enumerate(zip(pred_boxes, pred_scores, true_boxes, strict=True)):
        match = match_boxes(boxes, image_scores, truths, iou_threshold)
        scores.append(np.asarray(image_scores, dtype=np.float64).reshape(-1))  # (P_image,)
        verdicts.append(match.is_true_positive)
        image_index.append(np.full(match.is_true_positive.size, image, dtype=np.intp))
        num_truths += _boxes(truths, "true_boxes").shape[0]
    scores = np.concatenate(scores)
    order = np.argsort(-scores, kind="stable")
    return DetectionMatches(
        scores=scores[order],
        is_true_positive=np.concatenate(verdicts)[order],
        image_index=np.concatenate(image_index)[order],
        num_truths=num_truths,
        num_images=len(true_boxes),
    )


# ---------------------------------------------------------------------------------------------
# Detection: precision-recall, AP and FROC
# ---------------------------------------------------------------------------------------------


def _cumulative_counts(matches: DetectionMatches):
    """(thresholds, cumulative TP, cumulative FP) at each distinct score, highest first.

    Tied scores form one operating point: no threshold can keep one of them and drop the other.
    """
    if matches.num_truths == 0:
        raise MetricsError("no_truths", {"num_images": matches.num_images})
    true_positives = np.cumsum(matches.is_true_positive)
    false_positives = np.cumsum(~matches.is_true_positive)
    # The last prediction of each run of equal scores closes that operating point.
    last_of_tie = np.zeros(matches.scores.size, dtype=bool)
    if matches.scores.size:
        last_of_tie[:-1] = matches.scores[1:] != matches.scores[:-1]
        last_of_tie[-1] = True
    return matches.scores[last_of_tie], true_positives[last_of_tie], false_positives[last_of_tie]


def average_precision(recall, precision, interpolated: bool = True) -> float:
    """Area under a precision-recall curve whose points go from high threshold to low.

    Interpolated (VOC 2010+ "all-point"): each recall step is weighted by the best precision
    reached at that recall or beyond, which removes the saw-tooth. Not interpolated: each step is
    weighted by its own precision, scikit-learn's ``average_precision_score``. COCO instead samples
    the interpolated curve at 101 recall values.
    """
    recall = np.asarray(recall, dtype=np.float64)
    precision = np.asarray(precision, dtype=np.float64)
    if recall.size == 0:
        return 0.0
    if interpolated:
        precision = np.maximum.accumulate(precision[::-1])[::-1]  # best precision at this recall or more
    recall_steps = np.diff(recall, prepend=0.0)
    return float(np.sum(recall_steps * precision))


@dataclass(frozen=True)
class DetectionPR:
    thresholds: np.ndarray  # (K,) distinct scores, highest first
    recall: np.ndarray  # (K,) x of the plot: matched truths / all truths
    precision: np.ndarray  # (K,) y of the plot
    average_precision: float  # 0.0 when there are no predictions


@dataclass(frozen=True)
class Froc:
    thresholds: np.ndarray  # (K + 1,) starting at +inf, the origin where nothing is kept
    fp_per_image: np.ndarray  # (K + 1,) x of the plot (often drawn on a log axis)
    sensitivity: np.ndarray  # (K + 1,) y of the plot
    fp_levels: np.ndarray  # the requested false positives per image
    sensitivity_at_levels: np.ndarray  # best sensitivity reached without exceeding each level
    cpm: float  # mean of sensitivity_at_levels (LUNA16's competition performance metric)


def detection_pr(matches: DetectionMatches, interpolated: bool = True) -> DetectionPR:
    """Precision-recall over all images and AP; truths never found keep recall below 1."""
    thresholds, true_positives, false_positives = _cumulative_counts(matches)
    recall = true_positives / matches.num_truths
    precision = true_positives / (true_positives + false_positives)
    return DetectionPR(
        thresholds=thresholds,
        recall=recall,
        precision=precision,
        average_precision=average_precision(recall, precision, interpolated),
    )


def froc(matches: DetectionMatches, fp_levels: Sequence[float] = LUNA16_FP_LEVELS) -> Froc:
    """Sensitivity against mean false positives per image, and sensitivity at chosen FP rates.

    The sensitivity at a level is the best one reached by a threshold whose FP rate does not
    exceed it (a step read, no interpolation between thresholds; LUNA16's script interpolates
    linearly, which can read slightly higher).
    """
    thresholds, true_positives, false_positives = _cumulative_counts(matches)
    fp_per_image = np.r_[0.0, false_positives / matches.num_images]
    sensitivity = np.r_[0.0, true_positives / matches.num_truths]
    fp_levels = np.asarray(fp_levels, dtype=np.float64).reshape(-1)  # (L,)
    if not (np.isfinite(fp_levels).all() and (fp_levels >= 0).all()):
        raise MetricsError("out_of_range", {"name": "fp_levels", "value": fp_levels.tolist()})
    # Both curves only rise as the threshold falls, so the last point at or under a level is the best.
    last_within = np.searchsorted(fp_per_image, fp_levels, side="right") - 1
    sensitivity_at_levels = sensitivity[last_within]
    return Froc(
        thresholds=np.r_[np.inf, thresholds],
        fp_per_image=fp_per_image,
        sensitivity=sensitivity,
        fp_levels=fp_levels,
        sensitivity_at_levels=sensitivity_at_levels,
        cpm=float(sensitivity_at_levels.mean()) if sensitivity_at_levels.size else float("nan"),
    )
