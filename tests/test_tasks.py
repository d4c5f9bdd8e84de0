"""Task heads, losses and decoders against torchvision and hand computations; losses that go
down on a tiny batch; the shipped two-stage checkpoint and the script that reproduces it."""

import subprocess
import sys

import numpy as np
import pytest
import torch
from scipy import ndimage
from torch import nn
from torchvision.ops import masks_to_boxes, nms, sigmoid_focal_loss

import models
from primer import tasks
from tests.conftest import ROOT

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def small_data():
    return tasks.task_data(tasks.task_config(n=80, seed=1))


def random_boxes(rng, n, size=64.0):
    xy = rng.uniform(0, size - 12, (n, 2))
    wh = rng.uniform(2, 12, (n, 2))
    return np.concatenate([xy, xy + wh], axis=1)


# ---------------------------------------------------------------------------------------------
# NMS and boxes


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("threshold", [0.2, 0.5, 0.8])
def test_nms_trace_keeps_exactly_what_torchvision_keeps(seed, threshold):
    rng = np.random.default_rng(seed)
    boxes = random_boxes(rng, 40)
    boxes = np.concatenate([boxes, boxes[:10] + rng.normal(0, 1, (10, 4)).clip(-0.9, 0.9)])  # near-duplicates
    scores = rng.random(len(boxes))
    expected = nms(torch.from_numpy(boxes), torch.from_numpy(scores), threshold).tolist()
    trace = tasks.nms_trace(boxes, scores, threshold)
    assert trace.kept == expected
    assert tasks.nms(boxes, scores, threshold).tolist() == expected
    # every box is either kept or removed by exactly one step, for an overlap above the threshold
    removed = [j for step in trace.steps for j in step.suppressed]
    assert sorted(removed + trace.kept) == list(range(len(boxes)))
    assert all(iou > threshold for step in trace.steps for iou in step.ious)


def test_boxes_from_masks_match_torchvision():
    rng = np.random.default_rng(0)
    masks = rng.random((6, 20, 30)) > 0.97
    masks[0] = False
    masks[0, 3:7, 10:12] = True
    ours = tasks.boxes_from_masks(masks[1:])
    assert np.array_equal(ours, masks_to_boxes(torch.from_numpy(masks[1:])).numpy())
    assert np.array_equal(tasks.boxes_from_masks(masks[:1])[0], [10, 3, 11, 6])
    assert np.isnan(tasks.boxes_from_masks(np.zeros((1, 5, 5), bool))).all()


def test_instances_are_connected_components_largest_first():
    mask = np.zeros((40, 40), bool)
    mask[2:6, 2:6] = True  # 16 px
    mask[20:30, 20:30] = True  # 100 px
    mask[35, 35] = True  # a 1 px speck
    instances = tasks.instances_from_mask(mask, min_pixels=4)
    _, count = ndimage.label(mask, structure=np.ones((3, 3)))
    assert count == 3 and instances.max() == 2
    assert (instances == 1).sum() == 100 and (instances == 2).sum() == 16 and instances[35, 35] == 0
    assert tasks.instance_ious(instances, instances) == [1.0, 1.0]


# ---------------------------------------------------------------------------------------------
# Losses


def test_focal_loss_with_binary_targets_is_torchvision_focal_loss_per_object():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 1, 8, 8, generator=g)
    target = (torch.rand(2, 1, 8, 8, generator=g) > 0.9).float()
    # CenterNet's loss reduces to RetinaNet's (γ = 2, no α) when targets are exactly 0 or 1,
    # divided by the number of positives.
    expected = sigmoid_focal_loss(logits, target, alpha=-1, gamma=2, reduction="sum") / target.sum()
    assert tasks.focal_loss(logits, target).item() == pytest.approx(expected.item(), rel=1e-5)


def test_focal_loss_spares_cells_next_to_a_centre():
    logits = torch.full((1, 1, 1, 2), 0.0)
    target = torch.tensor([[[[0.0, 0.9]]]])  # same prediction on plain background and near a centre
    per_cell = -((1 - target) ** 4) * 0.5**2 * np.log(0.5)  # hand computation, p = 0.5
    assert tasks.focal_loss(logits, target).item() == pytest.approx(per_cell.sum().item(), rel=1e-5)
    assert per_cell[0, 0, 0, 1] < per_cell[0, 0, 0, 0] / 1000


def test_dice_loss_by_hand():
    logits = torch.tensor([[[[10.0, 10.0], [-10.0, -10.0]]]])  # p ≈ 1, 1, 0, 0
    masks = torch.tensor([[[[1, 0], [1, 0]]]])
    overlap, total = 1.0, 2.0 + 2.0
    expected = 1 - (2 * overlap + 1) / (total + 1)
    assert tasks.dice_loss(logits, masks).item() == pytest.approx(expected, abs=1e-4)
    assert tasks.dice_loss(torch.where(masks.bool(), 20.0, -20.0), masks).item() == pytest.approx(0, abs=1e-6)


def test_box_loss_is_zero_for_perfect_boxes_and_grows_with_error():
    boxes = torch.tensor([[10.0, 10.0, 20.0, 20.0], [30.0, 5.0, 40.0, 12.0]])
    assert tasks.box_loss(boxes, boxes).item() == pytest.approx(0, abs=1e-6)
    shifted = boxes + torch.tensor([2.0, 0.0, 2.0, 0.0])
    assert 0 < tasks.box_loss(shifted, boxes).item() < tasks.box_loss(shifted + 3, boxes).item()


def test_pixel_cross_entropy_is_torch_bce():
    logits, masks = torch.randn(2, 1, 4, 4), torch.rand(2, 1, 4, 4) > 0.5
    p = torch.sigmoid(logits)
    by_hand = -(masks * torch.log(p) + (~masks) * torch.log(1 - p)).mean()
    assert tasks.pixel_cross_entropy(logits, masks).item() == pytest.approx(by_hand.item(), rel=1e-5)


# ---------------------------------------------------------------------------------------------
# Targets and decoding: a detector that outputs the targets finds every lesion


class Oracle(nn.Module):
    """Returns the training targets as predictions (logits of the heatmap, edge distances)."""

    stride = 4

    def __init__(self, targets: tasks.CenterTargets):
        super().__init__()
        self.targets = targets

    def forward(self, x):
        index = x[:, 0, 0, 0].long()  # the image index is smuggled in the first pixel
        heat = self.targets.heatmap[index].clamp(1e-4, 1 - 1e-4)
        boxes = self.targets.boxes[index]  # (N, 4, G, G)
        c = tasks.cell_centers(boxes.shape[-1], self.stride)
        cx, cy = c[None, :], c[:, None]
        ltrb = torch.stack([cx - boxes[:, 0], cy - boxes[:, 1], boxes[:, 2] - cx, boxes[:, 3] - cy], 1)
        return torch.log(heat / (1 - heat)), ltrb


def test_center_targets_decode_back_to_the_true_boxes(small_data):
    train, _ = small_data
    targets = tasks.center_targets(train)
    assert (targets.heatmap.amax(dim=(1, 2, 3)) == torch.from_numpy(train.labels).float()).all()
    x = torch.zeros(len(train), 1, 64, 64)
    x[:, 0, 0, 0] = torch.arange(len(train)).float()
    found = tasks.detect(Oracle(targets), x, score_threshold=0.99, iou_threshold=0.5)
    for (boxes, _), truth in zip(found, train.boxes, strict=True):
        assert len(boxes) == len(truth)
        assert np.allclose(np.sort(boxes, axis=0), np.sort(truth, axis=0), atol=1e-4)


def test_losses_go_down_on_a_tiny_batch(small_data):
    train, _ = small_data
    index = torch.arange(8)
    config = tasks.TaskTrainConfig(width=4)
    targets = tasks.center_targets(train)
    det = models.build("center_detector", seed=0, width=4)
    det.set_prior(0.01)
    unet = models.build("unet_small", seed=0, width=4)
    masks = torch.from_numpy(train.masks).unsqueeze(1)

    def det_loss():
        heat, ltrb = det(train.x[index])
        pred = tasks.boxes_from_distances(ltrb, 4).permute(0, 2, 3, 1)
        goal = targets.boxes[index].permute(0, 2, 3, 1)
        chosen = targets.weight[index, 0] > 0
        return tasks.focal_loss(heat, targets.heatmap[index]) + tasks.box_loss(pred[chosen], goal[chosen])

    def seg_loss():
        logits = unet(train.x[index])
        return tasks.pixel_cross_entropy(logits, masks[index]) + tasks.dice_loss(logits, masks[index])

    for model, loss_fn in ((det, det_loss), (unet, seg_loss)):
        optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
        model.train()
        first = loss_fn().item()
        for _ in range(20):
            loss = loss_fn()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        assert loss_fn().item() < 0.85 * first


def test_one_epoch_of_the_live_trainers_reports_scores(small_data):
    train, test = small_data
    config = tasks.TaskTrainConfig(num_epochs=1, width=4, detector_width=4)
    seen = []
    _, history = tasks.train_segmenter(train, test, config, skips=True, on_epoch=seen.append)
    assert len(history) == 1 and seen == history and 0.0 <= history[0].score <= 1.0
    _, history = tasks.train_detector(train, test, config)
    assert 0.0 <= history[0].score <= 1.0


# ---------------------------------------------------------------------------------------------
# The shipped two-stage model


def test_two_stage_checkpoint_is_small_and_finds_lesions():
    assert tasks.TWO_STAGE_CHECKPOINT.stat().st_size < 3 * 1024**2
    model, raw = tasks.load_two_stage()
    assert raw["metrics"]["box_ap50"] >= 0.8
    _, test = tasks.cached_task_data(tasks.task_config())
    found = tasks.two_stage_predict(model, test.x[:4])
    for f, truth in zip(found, test.boxes[:4], strict=True):
        kept = f.boxes[f.scores >= 0.5]
        assert len(kept) == len(truth)
        assert f.masks.shape[1:] == (64, 64)
        instances = f.instance_map()
        assert instances.max() == len(kept)


def test_the_script_still_reproduces_the_recorded_training():
    """Repeat the first steps of the recipe from the same seed: the losses must match the ones
    recorded in the checkpoint (a few percent, for floating-point differences between CPUs)."""
    out = subprocess.run(
        [sys.executable, "-m", "scripts.train_two_stage", "--check", "--steps", "6", "--threads", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
