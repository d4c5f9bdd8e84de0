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


# ---------------------------------------------------------------------------------------------
# Segmentation: losses, the dilated segmenter, what a loss changes


def test_soft_dice_loss_by_hand_with_probabilities():
    probs = torch.tensor([0.8, 0.6, 0.3, 0.1])
    logits = torch.log(probs / (1 - probs)).reshape(1, 1, 2, 2)
    masks = torch.tensor([1, 1, 0, 0]).reshape(1, 1, 2, 2)
    overlap, predicted, true = 0.8 + 0.6, 0.8 + 0.6 + 0.3 + 0.1, 2.0
    assert tasks.dice_loss(logits, masks).item() == pytest.approx(
        1 - (2 * overlap + 1) / (predicted + true + 1), rel=1e-5
    )
    assert tasks.dice_loss(logits, masks, smooth=0).item() == pytest.approx(
        1 - 2 * overlap / (predicted + true), rel=1e-5
    )


@pytest.mark.parametrize("seed", range(4))
def test_soft_dice_equals_hard_dice_on_binary_inputs(seed):
    rng = np.random.default_rng(seed)
    truth = rng.random((3, 1, 16, 16)) > 0.7
    pred = rng.random((3, 1, 16, 16)) > 0.6
    logits = torch.from_numpy(np.where(pred, 60.0, -60.0)).float()  # sigmoid: exactly 0 or 1 in float32
    soft = 1 - tasks.dice_loss(logits, torch.from_numpy(truth), smooth=0).item()
    assert soft == pytest.approx(tasks.segdet.dice(truth, pred), abs=1e-6)


def test_segmentation_loss_choices_are_the_named_losses():
    logits, masks = torch.randn(2, 1, 8, 8), torch.rand(2, 1, 8, 8) > 0.8
    ce, dice = tasks.pixel_cross_entropy(logits, masks), tasks.dice_loss(logits, masks)
    assert tasks.segmentation_loss("ce", logits, masks).item() == pytest.approx(ce.item())
    assert tasks.segmentation_loss("dice", logits, masks).item() == pytest.approx(dice.item())
    assert tasks.segmentation_loss("dice_ce", logits, masks).item() == pytest.approx((ce + dice).item())
    with pytest.raises(ValueError):
        tasks.segmentation_loss("focal", logits, masks)


def test_dice_loss_ignores_background_that_cross_entropy_counts():
    """Adding rightly dark background pixels leaves the Dice loss unchanged but dilutes
    cross-entropy: the imbalance the lesson describes."""
    lesion_logits = torch.tensor([[[[2.0, -1.0]]]])  # one lesion pixel found, one missed
    lesion_masks = torch.tensor([[[[1, 1]]]])
    background = torch.full((1, 1, 1, 98), -16.0)  # 98 confident, correct background pixels
    logits = torch.cat([lesion_logits, background], dim=-1)
    masks = torch.cat([lesion_masks, torch.zeros(1, 1, 1, 98, dtype=torch.int64)], dim=-1)
    small = tasks.dice_loss(lesion_logits, lesion_masks, smooth=0).item()
    assert tasks.dice_loss(logits, masks, smooth=0).item() == pytest.approx(small, rel=1e-3)
    ce_small = tasks.pixel_cross_entropy(lesion_logits, lesion_masks).item()
    assert tasks.pixel_cross_entropy(logits, masks).item() < ce_small / 20


def test_dilated_segmenter_receptive_field_is_the_hand_formula_and_the_gradient():
    from primer.conv import receptive_field

    net = models.build("dilated_segmenter", seed=0, width=4)
    by_formula = receptive_field(net.layer_geometry())[-1].size
    assert by_formula == 3 + 2 * (1 + 2 + 4 + 8) + 2 * 4 == 41
    assert tasks.segmenter_receptive_field(net) == by_formula
    # the gradient of one output pixel of the real (trained-mode) network reaches exactly as far
    x = torch.randn(1, 1, 96, 96, requires_grad=True)
    net.eval()(x)[0, 0, 48, 48].backward()
    rows = np.flatnonzero(x.grad[0, 0].abs().sum(1).numpy() > 0)
    assert rows[-1] - rows[0] + 1 <= by_formula and rows[0] >= 48 - 20
    # the quiz: four dilated 3×3 layers, 1 + 2·(1 + 2 + 4 + 8)
    assert receptive_field([("conv", 3, 1, d, d) for d in (1, 2, 4, 8)])[-1].size == 31


def test_dilated_segmenter_never_pools_and_keeps_every_map_full_size():
    net = models.build("dilated_segmenter", seed=0, width=4).eval()
    assert not any(isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)) for m in net.modules())
    sizes = []
    hooks = [
        m.register_forward_hook(lambda _m, _i, out: sizes.append(out.shape[-2:]))
        for m in net.modules()
        if isinstance(m, nn.Conv2d)
    ]
    net(torch.randn(2, 1, 40, 40))
    for h in hooks:
        h.remove()
    assert sizes and all(tuple(s) == (40, 40) for s in sizes)
    assert [m.dilation[0] for m in net.body.modules() if isinstance(m, nn.Conv2d)] == [1, 2, 4, 8]


def test_unet_receptive_field_covers_the_whole_lab_image():
    unet = models.build("unet_small", seed=0, width=4)
    assert tasks.segmenter_receptive_field(unet) > 64


class ConstantSegmenter(nn.Module):
    """Logits given in advance for the test images (a known-answer model)."""

    def __init__(self, logits):
        super().__init__()
        self.logits = logits

    def forward(self, x):
        index = x[:, 0, 0, 0].long()
        return self.logits[index]


def test_segmentation_report_on_known_answers(small_data):
    _, test = small_data
    x = torch.zeros(len(test), 1, 64, 64)
    x[:, 0, 0, 0] = torch.arange(len(test)).float()
    data = tasks.TaskData(x, test.masks, test.instance_map, test.boxes, test.centers, test.labels)
    perfect = torch.from_numpy(np.where(test.masks, 9.0, -9.0)).float().unsqueeze(1)
    report = tasks.segmentation_report(ConstantSegmenter(perfect), data)
    assert report.dice == report.image_dice == report.small_dice == report.large_dice == 1.0
    assert report.uncertain == 0.0 and report.lesion_uncertain == 0.0
    unsure = tasks.segmentation_report(ConstantSegmenter(torch.zeros_like(perfect)), data)  # p = 0.5 everywhere
    assert unsure.uncertain == 1.0 and unsure.dice == pytest.approx(
        tasks.segdet.dice(test.masks, np.ones_like(test.masks))
    )


def test_lesion_dices_by_hand():
    truth = np.zeros((12, 12), np.uint8)
    truth[1:3, 1:3] = 1  # 4 px
    truth[6:10, 6:10] = 2  # 16 px
    pred = np.zeros((12, 12), bool)
    pred[1:3, 1:2] = True  # half of lesion 1
    pred[6:10, 6:10] = True  # all of lesion 2 ...
    pred[10, 6:10] = True  # ... plus a 4 px rim
    assert tasks.lesion_dices(truth, pred) == [(4, pytest.approx(2 * 2 / (4 + 2))), (16, pytest.approx(2 * 16 / 36))]


@pytest.mark.parametrize(("segmenter", "loss"), [("dilated", "dice_ce"), ("unet", "ce"), ("unet", "dice")])
def test_one_epoch_of_each_new_segmenter_option(small_data, segmenter, loss):
    train, test = small_data
    config = tasks.TaskTrainConfig(num_epochs=1, width=4, dilated_width=4)
    model, history = tasks.train_segmenter(train, test, config, segmenter=segmenter, loss=loss)
    assert len(history) == 1 and 0.0 <= history[0].score <= 1.0 and np.isfinite(history[0].loss)
    assert isinstance(
        model, models.segmentation.DilatedSegmenter if segmenter == "dilated" else models.segmentation.UNet
    )
    with pytest.raises(ValueError):
        tasks.train_segmenter(train, test, config, loss="hinge")


def test_lab_defaults_keep_old_links_and_fall_back_on_bad_values():
    lab = tasks.FourTaskLab()
    assert (lab.segmenter, lab.seg_loss) == ("unet", "dice_ce")  # what the lab trained before
    assert tasks.FourTaskLab(segmenter="vit", seg_loss="x").segmenter_choice() == "unet"
    assert tasks.FourTaskLab(seg_loss="x").loss_choice() == "dice_ce"


# ---------------------------------------------------------------------------------------------
# The two-stage model, inside: anchors, proposals, AP


@pytest.fixture(scope="module")
def two_stage():
    return tasks.load_two_stage()[0]


def test_anatomy_is_read_from_the_model(two_stage):
    shape = tasks.two_stage_anatomy(two_stage)
    assert shape.anchor_sizes == (8, 12, 16) and shape.aspect_ratios == (1.0,)
    assert shape.feature_maps == [("0", 16, 4)] and not shape.has_fpn
    assert shape.anchors_per_image == 16 * 16 * 3 == 768  # the quiz's count
    assert shape.post_nms_top_n == 50
    anchors = tasks.anchors_at(two_stage, 5, 7)
    side = anchors[:, 2] - anchors[:, 0] + 1
    assert sorted(side.tolist()) == [8, 12, 16]
    centre = (anchors[:, :2] + anchors[:, 2:] + 1) / 2  # continuous centre of an inclusive box
    assert np.allclose(centre, [[7 * 4, 5 * 4]] * 3)


def test_a_model_with_a_feature_pyramid_says_so():
    from collections import OrderedDict

    from torchvision.models.detection import FasterRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.backbone_utils import BackboneWithFPN

    trunk = nn.Sequential(
        OrderedDict(a=nn.Conv2d(3, 4, 3, stride=2, padding=1), b=nn.Conv2d(4, 8, 3, stride=2, padding=1))
    )
    backbone = BackboneWithFPN(trunk, {"a": "0", "b": "1"}, [4, 8], out_channels=8)
    anchors = AnchorGenerator(sizes=((8,), (16,), (32,)), aspect_ratios=((0.5, 1.0, 2.0),) * 3)
    model = FasterRCNN(backbone, num_classes=2, min_size=64, max_size=64, rpn_anchor_generator=anchors)
    shape = tasks.two_stage_anatomy(model)
    assert shape.has_fpn and len(shape.feature_maps) == 3  # two levels and FPN's extra pooled one
    assert shape.anchor_sizes == (8, 16, 32) and shape.aspect_ratios == (0.5, 1.0, 2.0)


def test_rpn_proposals_are_the_boxes_torchvisions_rpn_returns(two_stage, small_data):
    _, test = small_data
    x = test.x[:3]
    ours = tasks.rpn_proposals(two_stage, x)
    with torch.no_grad():
        images, _ = two_stage.transform(list(x))
        features = {"0": two_stage.backbone(images.tensors)}
        theirs, _ = two_stage.rpn(images, features)
    for mine, boxes in zip(ours, theirs, strict=True):
        expected = boxes.numpy().astype(np.float64)
        expected[:, 2:] = np.maximum(expected[:, 2:] - 1, expected[:, :2])
        assert np.allclose(mine.boxes, expected, atol=1e-4)
        assert len(mine.boxes) <= 50 and np.all(np.diff(mine.scores) <= 1e-7)  # best first
        assert ((mine.scores >= 0) & (mine.scores <= 1)).all()


class FixedDetector(nn.Module):
    """Returns given boxes (continuous coordinates, torchvision's convention) and scores."""

    def __init__(self, outputs):
        super().__init__()
        self.outputs = outputs

    def forward(self, images):
        out = []
        for image in images:
            boxes, scores = self.outputs[int(image[0, 0, 0])]  # the image index is in its first pixel
            out.append(
                {
                    "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                    "scores": torch.tensor(scores),
                    "masks": torch.zeros(len(scores), 1, 64, 64),
                }
            )
        return out


def test_two_stage_ap_on_a_known_answer_case():
    """Two lesions on image 0, one on image 1. Detections by score: 0.9 hits lesion A, 0.8 is
    a false positive, 0.7 hits lesion C, 0.6 a duplicate of A (a false positive), lesion B is
    missed. Precision/recall: 1/1 at 1/3, 1/2 at 1/3, 2/3 at 2/3, 2/4 at 2/3: interpolated AP =
    1/3 · 1 + 1/3 · 2/3 = 5/9."""
    truth = [np.array([[10, 10, 19, 19], [40, 40, 49, 49]], float), np.array([[5, 30, 14, 39]], float)]
    outputs = [
        ([[10, 10, 20, 20], [30, 0, 36, 6], [10, 11, 20, 21]], [0.9, 0.8, 0.6]),  # + 1: continuous boxes
        ([[5, 30, 15, 40]], [0.7]),
    ]
    x = torch.zeros(2, 1, 64, 64)
    x[1, 0, 0, 0] = 1.0
    data = tasks.TaskData(
        x,
        np.zeros((2, 64, 64), bool),
        np.zeros((2, 64, 64), np.uint8),
        truth,
        [np.zeros((2, 2)), np.zeros((1, 2))],
        np.ones(2),
    )
    pr = tasks.two_stage_pr(FixedDetector(outputs), data, batch=1)
    assert pr.average_precision == pytest.approx(5 / 9)


def voc_ap_by_hand(found, truths, threshold=0.5):
    """An independent VOC AP: greedy matching by score with torchvision's IoU, all-point envelope."""
    from torchvision.ops import box_iou

    records = []
    for (boxes, scores), truth in zip(found, truths, strict=True):
        taken = set()
        for j in np.argsort(-scores, kind="stable"):
            hit = False
            if len(truth):
                # inclusive pixel boxes → continuous for torchvision
                ious = box_iou(torch.tensor(boxes[j : j + 1] + [0, 0, 1, 1]), torch.tensor(truth + [0, 0, 1, 1]))[
                    0
                ].numpy()
                for t in np.argsort(-ious, kind="stable"):
                    if ious[t] >= threshold and t not in taken:
                        taken.add(t)
                        hit = True
                        break
            records.append((scores[j], hit))
    records.sort(key=lambda r: -r[0])
    n_truth = sum(len(t) for t in truths)
    hits = np.cumsum([h for _, h in records])
    recall = hits / n_truth
    precision = hits / np.arange(1, len(records) + 1)
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    return float(np.sum(np.diff(np.concatenate([[0], recall])) * envelope))


def test_two_stage_ap_equals_an_independent_computation(two_stage, small_data):
    _, test = small_data
    part = tasks.TaskData(
        test.x[:12], test.masks[:12], test.instance_map[:12], test.boxes[:12], test.centers[:12], test.labels[:12]
    )
    found = tasks.two_stage_predict(two_stage, part.x)
    expected = voc_ap_by_hand([(f.boxes, f.scores) for f in found], [b.astype(np.float64) for b in part.boxes])
    assert tasks.two_stage_pr(two_stage, part, batch=5).average_precision == pytest.approx(expected, abs=1e-9)


def test_two_stage_ap_on_the_default_test_set_is_the_recorded_one(two_stage):
    """The page shows the checkpoint's recorded AP for the default setting: the same figure."""
    _, test = tasks.cached_task_data(tasks.task_config())
    _, raw = tasks.load_two_stage()
    assert tasks.two_stage_pr(two_stage, test).average_precision == pytest.approx(raw["metrics"]["box_ap50"], abs=0.005)
