"""Segmentation and detection metrics against scikit-learn, SciPy, brute force and hand computations."""

import itertools

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist, directed_hausdorff
from sklearn import metrics as sk_metrics
from torchvision.ops import box_iou as torchvision_box_iou

from primer import segdet as S
from primer.metrics import MetricsError


def _disk(shape, center, radius):
    rows, cols = np.indices(shape)
    return (rows - center[0]) ** 2 + (cols - center[1]) ** 2 <= radius**2


def _blobby_pair(seed, shape=(48, 40)):
    """Two overlapping irregular masks: unions of random disks."""
    rng = np.random.default_rng(seed)
    truth, pred = np.zeros(shape, bool), np.zeros(shape, bool)
    for _ in range(3):
        center = rng.uniform(12, 30, size=2)
        truth |= _disk(shape, center, rng.uniform(3, 8))
        pred |= _disk(shape, center + rng.normal(scale=2.5, size=2), rng.uniform(3, 8))
    return truth, pred


def _brute_force_boundary(mask):
    """Foreground pixels with a 4-neighbour that is background or outside the image."""
    edge = np.zeros_like(mask)
    for r, c in zip(*np.nonzero(mask), strict=True):
        for dr, dc in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            rr, cc = r + dr, c + dc
            if not (0 <= rr < mask.shape[0] and 0 <= cc < mask.shape[1]) or not mask[rr, cc]:
                edge[r, c] = True
    return edge


# --- overlap -------------------------------------------------------------------------------------


def test_dice_and_iou_equal_sklearn_f1_and_jaccard_on_pixels():
    for seed in range(3):
        truth, pred = _blobby_pair(seed)
        assert S.dice(truth, pred) == pytest.approx(sk_metrics.f1_score(truth.ravel(), pred.ravel()))
        assert S.iou(truth, pred) == pytest.approx(sk_metrics.jaccard_score(truth.ravel(), pred.ravel()))


def test_empty_masks():
    empty, lesion = np.zeros((8, 8), bool), _disk((8, 8), (4, 4), 2)
    assert S.dice(empty, empty) == 1.0 and S.iou(empty, empty) == 1.0
    assert S.dice(empty, lesion) == 0.0 and S.iou(lesion, empty) == 0.0
    assert S.hausdorff(empty, empty) == 0.0 and S.hd95(empty, empty) == 0.0
    assert S.hausdorff(empty, lesion) == np.inf and S.hd95(lesion, empty) == np.inf
    truth_to_pred, pred_to_truth = S.boundary_distances(lesion, empty)
    assert np.isinf(truth_to_pred).all() and truth_to_pred.size > 0 and pred_to_truth.size == 0


def test_overlap_map_codes():
    truth = np.array([[0, 0, 1, 1]], bool)
    pred = np.array([[0, 1, 0, 1]], bool)
    np.testing.assert_array_equal(S.overlap_map(truth, pred), [[0, 2, 3, 1]])
    truth, pred = _blobby_pair(4)
    codes = S.overlap_map(truth, pred)
    tn, fp, fn, tp = sk_metrics.confusion_matrix(truth.ravel(), pred.ravel()).ravel()
    assert [np.sum(codes == k) for k in range(4)] == [tn, tp, fp, fn]


# --- boundaries and Hausdorff --------------------------------------------------------------------


def test_boundary_matches_the_definition_including_the_image_border():
    truth, _ = _blobby_pair(5)
    truth[:6, :10] = True  # touches the top and left edges of the image
    np.testing.assert_array_equal(S.boundary(truth), _brute_force_boundary(truth))


@pytest.mark.parametrize("spacing", [None, (0.7, 1.9)])
def test_max_hausdorff_equals_scipy_directed_hausdorff(spacing):
    steps = np.array(spacing or (1.0, 1.0))
    for seed in range(4):
        truth, pred = _blobby_pair(seed)
        truth_points = np.argwhere(S.boundary(truth)) * steps  # (K, 2) in physical units
        pred_points = np.argwhere(S.boundary(pred)) * steps
        expected = max(
            directed_hausdorff(truth_points, pred_points)[0], directed_hausdorff(pred_points, truth_points)[0]
        )
        assert S.hausdorff(truth, pred, spacing=spacing) == pytest.approx(expected)


@pytest.mark.parametrize("spacing", [None, (2.0, 0.5)])
def test_hd95_equals_brute_force_percentiles_of_all_boundary_distances(spacing):
    steps = np.array(spacing or (1.0, 1.0))
    for seed in range(4):
        truth, pred = _blobby_pair(seed + 10)
        distances = cdist(np.argwhere(S.boundary(truth)) * steps, np.argwhere(S.boundary(pred)) * steps)
        truth_to_pred, pred_to_truth = distances.min(axis=1), distances.min(axis=0)
        expected = max(np.percentile(truth_to_pred, 95), np.percentile(pred_to_truth, 95))
        assert S.hd95(truth, pred, spacing=spacing) == pytest.approx(expected)
        got_truth_to_pred, got_pred_to_truth = S.boundary_distances(truth, pred, spacing=spacing)
        np.testing.assert_allclose(np.sort(got_truth_to_pred), np.sort(truth_to_pred))
        np.testing.assert_allclose(np.sort(got_pred_to_truth), np.sort(pred_to_truth))


def test_hausdorff_of_a_shifted_square_is_the_shift_in_mm():
    truth = np.zeros((30, 30), bool)
    truth[8:18, 8:18] = True
    pred = S.shift(truth, (0, 3))
    assert S.hausdorff(truth, pred) == 3.0
    assert S.hausdorff(truth, pred, spacing=(1.0, 0.5)) == 1.5
    assert S.hd95(truth, truth) == 0.0


def test_hausdorff_works_in_3d_against_scipy():
    rng = np.random.default_rng(0)
    truth = rng.random((10, 12, 9)) > 0.7
    pred = rng.random((10, 12, 9)) > 0.7
    spacing = (2.5, 0.8, 0.8)  # thick slices, fine in-plane pixels
    truth_points = np.argwhere(S.boundary(truth)) * spacing
    pred_points = np.argwhere(S.boundary(pred)) * spacing
    expected = max(directed_hausdorff(truth_points, pred_points)[0], directed_hausdorff(pred_points, truth_points)[0])
    assert S.hausdorff(truth, pred, spacing=spacing) == pytest.approx(expected)


# --- perturbations -------------------------------------------------------------------------------


def _brute_force_erode(mask, radius):
    """A pixel survives when every pixel within the radius lies inside the mask and the image."""
    out = np.zeros_like(mask)
    for r, c in itertools.product(range(mask.shape[0]), range(mask.shape[1])):
        inside = True
        for dr, dc in itertools.product(range(-radius, radius + 1), repeat=2):
            if dr * dr + dc * dc <= radius * radius:
                rr, cc = r + dr, c + dc
                if not (0 <= rr < mask.shape[0] and 0 <= cc < mask.shape[1]) or not mask[rr, cc]:
                    inside = False
        out[r, c] = inside
    return out


def test_dilating_a_point_gives_the_euclidean_disk():
    point = np.zeros((21, 21), bool)
    point[10, 10] = True
    np.testing.assert_array_equal(S.dilate(point, 4), _disk((21, 21), (10, 10), 4))


def test_erode_matches_brute_force_and_dilate_is_its_dual():
    truth, _ = _blobby_pair(6, shape=(24, 22))
    truth[:5, :7] = True  # the border counts as background
    np.testing.assert_array_equal(S.erode(truth, 2), _brute_force_erode(truth, 2))
    # Dilation is the complement of eroding the complement; the padding keeps the border out of it.
    padded = np.pad(truth, 4)
    np.testing.assert_array_equal(S.dilate(padded, 2)[4:-4, 4:-4], ~S.erode(~padded, 2)[4:-4, 4:-4])
    np.testing.assert_array_equal(S.erode(truth, 0), truth)


def test_shift_equals_roll_away_from_edges_and_drops_what_leaves():
    mask = _disk((20, 20), (10, 10), 3)
    np.testing.assert_array_equal(S.shift(mask, (2, -3)), np.roll(mask, (2, -3), axis=(0, 1)))
    assert not S.shift(mask, (0, 25)).any()
    assert S.shift(mask, (0, 8)).sum() < mask.sum()  # partly pushed off the right edge


def test_add_blob_adds_a_disk_and_keeps_the_mask():
    mask = _disk((30, 30), (8, 8), 3)
    perturbed = S.add_blob(mask, (20, 22), 4)
    np.testing.assert_array_equal(perturbed, mask | _disk((30, 30), (20, 22), 4))
    assert not mask[20, 22]  # the input was not modified


# --- detection -----------------------------------------------------------------------------------


def test_box_iou_by_hand_and_zero_area_boxes():
    truth = np.array([[0, 0, 10, 10]])
    preds = np.array([[0, 0, 10, 5], [5, 5, 15, 15], [20, 20, 30, 30], [3, 3, 3, 3]])
    np.testing.assert_allclose(S.box_iou(preds, truth)[:, 0], [0.5, 25 / 175, 0.0, 0.0])
    assert S.box_iou(np.zeros((0, 4)), truth).shape == (0, 1)
    assert S.box_iou([[1, 1, 1, 1]], [[1, 1, 1, 1]])[0, 0] == 0.0  # 0 / 0 becomes 0
    rng = np.random.default_rng(0)
    corners = rng.uniform(0, 50, size=(7, 2))
    boxes = np.c_[corners, corners + rng.uniform(1, 20, size=(7, 2))]
    expected = torchvision_box_iou(torch.from_numpy(boxes), torch.from_numpy(boxes[:3])).numpy()
    np.testing.assert_allclose(S.box_iou(boxes, boxes[:3]), expected)


def test_matching_threshold_is_inclusive_duplicates_are_false_positives():
    truth = [[0, 0, 10, 10]]
    half = [[0, 0, 10, 5]]  # IoU exactly 0.5
    assert S.match_boxes(half, [0.9], truth, iou_threshold=0.5).is_true_positive.tolist() == [True]
    assert S.match_boxes(half, [0.9], truth, iou_threshold=0.51).is_true_positive.tolist() == [False]
    duplicates = S.match_boxes([[0, 0, 10, 9], [0, 0, 10, 10]], [0.6, 0.8], truth)
    # The higher score claims the truth even though the other box overlaps it too.
    assert duplicates.is_true_positive.tolist() == [False, True]
    assert duplicates.matched_truth.tolist() == [-1, 0]
    assert duplicates.iou == pytest.approx([0.9, 1.0])


def test_matching_takes_the_best_still_unmatched_truth():
    truths = [[0, 0, 10, 10], [0, 4, 10, 14]]
    # The first prediction overlaps truth 0 best; the second also prefers truth 0 (IoU 0.82 vs 0.54)
    # but finds it taken, and falls back to truth 1 (VOC's rule would call it a false positive).
    match = S.match_boxes([[0, 0, 10, 10], [0, 1, 10, 11]], [0.9, 0.8], truths)
    assert match.matched_truth.tolist() == [0, 1]


def _detection_set(seed, num_images=12):
    """Truths on a grid (no two overlap); each found by at most one jittered box, plus stray boxes."""
    rng = np.random.default_rng(seed)
    pred_boxes, pred_scores, true_boxes = [], [], []
    for _ in range(num_images):
        cells = rng.choice(16, size=rng.integers(0, 4), replace=False)
        truths = np.array([[30 * (c % 4), 30 * (c // 4), 30 * (c % 4) + 16, 30 * (c // 4) + 16] for c in cells])
        found = truths[rng.random(len(truths)) < 0.7]
        hits = found + rng.uniform(-2, 2, size=found.shape)
        strays = np.array([[200 + k * 20, 200, 210 + k * 20, 210] for k in range(rng.integers(0, 3))])
        boxes = np.concatenate([hits.reshape(-1, 4), strays.reshape(-1, 4)])
        scores = np.r_[rng.uniform(0.3, 1.0, size=len(hits)), rng.uniform(0.0, 0.8, size=len(strays))]
        pred_boxes.append(boxes)
        pred_scores.append(scores)
        true_boxes.append(truths.reshape(-1, 4))
    return pred_boxes, pred_scores, true_boxes


def test_ap_by_hand_with_and_without_interpolation():
    # Image 1: a stray box (0.9) and a hit (0.8); image 2: a hit (0.7). Order FP, TP, TP.
    pred_boxes = [[[50, 50, 60, 60], [0, 0, 10, 10]], [[0, 0, 10, 10]]]
    pred_scores = [[0.9, 0.8], [0.7]]
    true_boxes = [[[0, 0, 10, 10]], [[0, 0, 10, 10]]]
    matches = S.match_detections(pred_boxes, pred_scores, true_boxes)
    interpolated = S.detection_pr(matches)
    np.testing.assert_allclose(interpolated.recall, [0, 0.5, 1.0])
    np.testing.assert_allclose(interpolated.precision, [0, 1 / 2, 2 / 3])
    assert interpolated.average_precision == pytest.approx(0.5 * 2 / 3 + 0.5 * 2 / 3)
    assert S.detection_pr(matches, interpolated=False).average_precision == pytest.approx(0.5 * 1 / 2 + 0.5 * 2 / 3)


@pytest.mark.parametrize("seed", range(4))
def test_uninterpolated_ap_equals_sklearn_scaled_by_the_truths_found(seed):
    matches = S.match_detections(*_detection_set(seed))
    ours = S.detection_pr(matches, interpolated=False).average_precision
    # sklearn's recall counts only the truths some prediction found; ours divides by all truths.
    found = matches.is_true_positive.sum()
    expected = sk_metrics.average_precision_score(matches.is_true_positive, matches.scores) * found / matches.num_truths
    assert ours == pytest.approx(expected)


@pytest.mark.parametrize("seed", range(4))
def test_interpolated_ap_equals_the_envelope_definition(seed):
    matches = S.match_detections(*_detection_set(seed + 20))
    curve = S.detection_pr(matches)
    # Brute force: at each recall level reached, the best precision at that recall or higher.
    expected, previous_recall = 0.0, 0.0
    for level in np.unique(curve.recall):
        expected += (level - previous_recall) * curve.precision[curve.recall >= level].max()
        previous_recall = level
    assert curve.average_precision == pytest.approx(expected)


def test_interpolated_ap_equals_sklearn_when_precision_never_rises():
    # Hits first, strays last: precision only falls, so the envelope changes nothing.
    pred_boxes = [[[0, 0, 10, 10], [40, 40, 50, 50]], [[0, 0, 10, 10], [60, 60, 70, 70]]]
    pred_scores = [[0.9, 0.4], [0.8, 0.3]]
    true_boxes = [[[0, 0, 10, 10]], [[0, 0, 10, 10]]]
    matches = S.match_detections(pred_boxes, pred_scores, true_boxes)
    expected = sk_metrics.average_precision_score(matches.is_true_positive, matches.scores)
    assert S.detection_pr(matches).average_precision == pytest.approx(expected) == pytest.approx(1.0)


def test_tied_scores_form_one_operating_point():
    pred_boxes = [[[50, 50, 60, 60], [0, 0, 10, 10]]]
    matches = S.match_detections(pred_boxes, [[0.5, 0.5]], [[[0, 0, 10, 10]]])
    curve = S.detection_pr(matches, interpolated=False)
    assert curve.precision.tolist() == [0.5] and curve.recall.tolist() == [1.0]
    assert curve.average_precision == pytest.approx(sk_metrics.average_precision_score([0, 1], [0.5, 0.5]))


def test_froc_by_hand():
    # Two images, three truths. Scores: TP .9, FP .8, TP .7, FP .6, FP .5; one truth never found.
    pred_boxes = [[[0, 0, 10, 10], [50, 50, 60, 60], [70, 70, 80, 80]], [[0, 0, 10, 10], [50, 50, 60, 60]]]
    pred_scores = [[0.9, 0.8, 0.5], [0.7, 0.6]]
    true_boxes = [[[0, 0, 10, 10], [20, 20, 30, 30]], [[0, 0, 10, 10]]]
    result = S.froc(S.match_detections(pred_boxes, pred_scores, true_boxes), fp_levels=[0.25, 0.5, 1.0, 1.5, 2.0])
    np.testing.assert_allclose(result.fp_per_image, [0, 0, 0.5, 0.5, 1.0, 1.5])
    np.testing.assert_allclose(result.sensitivity, [0, 1 / 3, 1 / 3, 2 / 3, 2 / 3, 2 / 3])
    np.testing.assert_allclose(result.sensitivity_at_levels, [1 / 3, 2 / 3, 2 / 3, 2 / 3, 2 / 3])
    assert result.cpm == pytest.approx(np.mean([1 / 3, 2 / 3, 2 / 3, 2 / 3, 2 / 3]))
    assert result.thresholds[0] == np.inf


@pytest.mark.parametrize("seed", range(3))
def test_froc_levels_equal_brute_force_over_all_thresholds(seed):
    pred_boxes, pred_scores, true_boxes = _detection_set(seed + 40, num_images=8)
    matches = S.match_detections(pred_boxes, pred_scores, true_boxes)
    result = S.froc(matches)
    for level, got in zip(S.LUNA16_FP_LEVELS, result.sensitivity_at_levels, strict=True):
        best = 0.0
        for threshold in np.unique(matches.scores):
            kept = matches.scores >= threshold
            if (kept & ~matches.is_true_positive).sum() / len(true_boxes) <= level:
                best = max(best, (kept & matches.is_true_positive).sum() / matches.num_truths)
        assert got == pytest.approx(best)


def test_detection_edge_cases():
    truth = [[0, 0, 10, 10]]
    # No predictions anywhere: AP 0, FROC flat at zero sensitivity.
    silent = S.match_detections([[], []], [[], []], [truth, []])
    assert S.detection_pr(silent).average_precision == 0.0
    assert (S.froc(silent).sensitivity_at_levels == 0).all()
    # No truths anywhere: recall is undefined.
    with pytest.raises(MetricsError) as error:
        S.detection_pr(S.match_detections([truth], [[0.9]], [[]]))
    assert error.value.code == "no_truths"
    # An image with neither boxes nor truths still counts in false positives per image.
    one_fp = ([[[50, 50, 60, 60]]], [[0.9]], [truth])
    with_blank = ([[[50, 50, 60, 60]], []], [[0.9], []], [truth, []])
    assert S.froc(S.match_detections(*one_fp)).fp_per_image[-1] == 1.0
    assert S.froc(S.match_detections(*with_blank)).fp_per_image[-1] == 0.5
    with pytest.raises(MetricsError) as error:
        S.match_detections([], [], [])
    assert error.value.code == "empty_input"


@pytest.mark.parametrize(
    ("call", "code"),
    [
        (lambda: S.dice(np.zeros((3, 3)), np.zeros((3, 4))), "shape_mismatch"),
        (lambda: S.hausdorff(np.ones((3, 3)), np.ones((3, 3)), spacing=(1, 2, 3)), "bad_spacing"),
        (lambda: S.box_iou([[0, 0, 1]], [[0, 0, 1, 1]]), "bad_boxes"),
        (lambda: S.box_iou([[5, 0, 1, 1]], [[0, 0, 1, 1]]), "bad_boxes"),
        (lambda: S.match_boxes([[0, 0, 1, 1]], [0.5, 0.4], [[0, 0, 1, 1]]), "shape_mismatch"),
        (lambda: S.dilate(np.ones((3, 3)), -1), "out_of_range"),
    ],
)
def test_bad_input_raises_a_coded_error(call, code):
    with pytest.raises(MetricsError) as error:
        call()
    assert error.value.code == code
