"""Numbers the lessons, quizzes and preset commentaries state, computed again here.

Each test takes the figure from an independent computation (scikit-learn, torchvision, a hand
formula, the core's own training split) and checks that the text says it, in both languages.
A reviewer found these wrong once; this keeps them right when the text is edited.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_curve
from torchvision.ops import box_iou

from primer import content, dicom, quiz
from primer.labstate import load_presets

LESSONS = Path(__file__).resolve().parent.parent / "lessons"


def question(chapter: str, qid: str) -> quiz.Question:
    return next(q for q in quiz.load_quiz(chapter) if q.id == qid)


def preset(chapter: str, lab: str, pid: str):
    return next(p for p in load_presets(chapter)[lab] if p.id == pid)


def both(text: dict, *needles: str) -> None:
    for needle in needles:
        assert needle in text["en"] and needle in text["zh"], (needle, text)


def test_referral_preset_ppv_falls_and_npv_rises():
    sens = spec = 0.9

    def ppv_npv(p):  # Bayes by hand
        tp, fp = sens * p, (1 - spec) * (1 - p)
        tn, fn = spec * (1 - p), (1 - sens) * p
        return tp / (tp + fp), tn / (tn + fn)

    (ppv50, npv50), (ppv30, npv30) = ppv_npv(0.5), ppv_npv(0.3)
    assert ppv30 < ppv50 and npv30 > npv50
    note = preset("metrics", "prev", "referral").commentary
    both(note, f"{ppv50:.2f}", f"{ppv30:.2f}", f"{npv30:.2f}")  # 0.90, 0.79, 0.95
    assert "PPV falls" in note["en"] and "NPV rises" in note["en"]
    assert "阳性预测值下降" in note["zh"] and "阴性预测值上升" in note["zh"]


def test_youden_equals_a_miss_costing_one_minus_p_over_p_false_alarms():
    """Max J = min expected cost when a miss costs (1 − p)/p false alarms; max accuracy (equal
    costs) picks another threshold unless p = 0.5."""
    rng = np.random.default_rng(0)
    p = 0.2
    y = np.r_[np.ones(200), np.zeros(800)]
    scores = np.r_[rng.normal(1.2, 1, 200), rng.normal(0, 1, 800)]
    fpr, tpr, thresholds = roc_curve(y, scores)
    youden = np.argmax(tpr - fpr)
    miss_cost = (1 - p) / p
    cost = p * (1 - tpr) * miss_cost + (1 - p) * fpr
    accuracy = p * tpr + (1 - p) * (1 - fpr)
    assert np.argmin(cost) == youden
    assert np.argmax(accuracy) != youden
    lesson = content.lessons("metrics", "en")
    text = "\n".join(lesson_text.body for lesson_text in lesson)
    assert "(1 − p)/p" in text and "equally bad" in text
    assert "(1 − p)/p" in "\n".join(lesson_text.body for lesson_text in content.lessons("metrics", "zh"))


def test_window_mismatch_ratio():
    ratio = 80 / 400  # grey levels per HU at 40/400 against 40/80
    assert ratio == 1 / 5
    q = question("imaging", "window_mismatch").explanation
    assert "a fifth" in q["en"] and "五分之一" in q["zh"]
    assert "tenth" not in q["en"] and "十分之一" not in q["zh"]


def test_iou_rule_question():
    nodule = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    three_times = torch.tensor([[0.0, 0.0, 30.0, 10.0]])
    twice = torch.tensor([[0.0, 0.0, 20.0, 10.0]])
    assert box_iou(nodule, three_times).item() == np.float32(1 / 3)
    assert box_iou(nodule, twice).item() == 0.5  # would count as a hit under IoU ≥ 0.5
    q = question("metrics", "iou_rule")
    both(q.prompt, "1/3", "0.33")
    both(q.explanation, "0.5")


def test_batch_size_steps_match_the_default_training_split():
    from primer.train import TrainLab, phantom_data, split

    lab = TrainLab()
    n_train = len(split(phantom_data(lab.phantom_config()), lab.split_config()).train)
    assert n_train == 1400
    steps = {b: math.ceil(n_train / b) for b in (8, 64, 256)}
    assert steps == {8: 175, 64: 22, 256: 6}
    en = (LESSONS / "training" / "en.md").read_text()
    zh = (LESSONS / "training" / "zh.md").read_text()
    assert "batches of 64 that is 22 steps" in en
    assert "At batch size 256 the default\nrun makes only 6 steps per epoch" in en and "36 in all" in en
    assert "批量设为 256 时，默认任务每个轮次只走 6 步" in zh and "总共 36 步" in zh
    small = preset("training", "train", "batch_small")
    assert small.values == {"batch_size": 8}  # one change against the default, as the text says
    both(small.commentary, "175", "22")


def test_lung_window_export_numbers():
    low, high = dicom.window_edges(-600, 1500)  # DICOM's linear window: edges within 1 HU of c ± w/2
    assert abs(low - (-600 - 750)) <= 1 and abs(high - (-600 + 750)) <= 1
    assert round(1500 / 256) == 6
    q = question("imaging", "eight_bit_export")
    both(q.explanation, "−1350", "+150", "6 HU")
    clipped_part, rest = q.options[1]["en"].split("and the rest")
    assert "for good" in clipped_part and "for good" not in rest  # only what was clipped is gone


def lesson(chapter: str, section: str) -> dict:
    """One lesson section's text in both languages, line breaks folded into spaces."""
    return {lang: " ".join(content.lesson(chapter, section, lang).body.split()) for lang in ("en", "zh")}


def test_parameter_counts_in_the_lessons():
    """The features lab's CNN counted by hand, layer by layer; DenseNet-121 with CheXNet's 14
    outputs (quoted in the terminology and training chapters) counted by torchvision."""
    import torchvision

    import models

    channels = [(1, 8), (8, 8), (8, 16), (16, 16), (16, 32), (32, 32)]  # 3×3 convs, no bias, then BN
    by_hand = sum(9 * c_in * c_out + 2 * c_out for c_in, c_out in channels) + 32 * 2 + 2  # + linear head
    built = models.build("plain_cnn", seed=0, in_channels=1, num_classes=2, width=8, dropout=0.0)
    assert by_hand == sum(p.numel() for p in built.parameters()) == 18_218
    text = lesson("terminology", "parameters")
    both(text, "18,218")
    densenet = sum(p.numel() for p in torchvision.models.densenet121(weights=None, num_classes=14).parameters())
    assert round(densenet / 1e6) == 7  # 6,968,206
    assert "about 7 million" in text["en"] and "约有 700 万" in text["zh"]
    text = lesson("training", "gradient_descent")
    assert "7 million weights" in text["en"] and "约 700 万个权重" in text["zh"]


def test_missed_lesions_preset_sensitivity():
    """40% of lesions labelled normal: the stored runs' sensitivity at 0.5 is about four in ten."""
    from primer import terminology as term

    missed = term.noise_summary(term.load_points("noise")["points"], "missed")
    sensitivity = missed["sensitivity"][missed["rate"].index(0.4)]
    assert round(sensitivity, 1) == 0.4
    note = preset("terminology", "noise", "missed40").commentary
    assert "about four lesions in ten" in note["en"] and "十分之四" in note["zh"]


def test_ct_slice_output_sizes_in_the_geometry_lesson():
    """512×512 through a 3×3 kernel: torch's own convolution gives 510, 512 and 256."""
    slice_ = torch.zeros(1, 1, 512, 512)
    kernel = torch.ones(1, 1, 3, 3)
    widths = [
        torch.nn.functional.conv2d(slice_, kernel, padding=p, stride=s).shape[-1] for p, s in ((0, 1), (1, 1), (1, 2))
    ]
    assert widths == [510, 512, 256]
    text = lesson("convolutions", "geometry")
    assert "510 pixels wide without padding, 512 with padding 1, and 256 with padding 1 and stride 2" in text["en"]
    assert "不填充时输出宽 510 个像素，填充 1 时为 512，填充 1 且步幅为 2 时为 256" in text["zh"]


def test_four_poolings_make_one_pixel_sixteen_wide():
    """Four 2×2 max pools: 512 → 32, so one map pixel covers 16 input pixels (1.6 mm at 0.1 mm)."""
    x = torch.zeros(1, 1, 512, 512)
    for _ in range(4):
        x = torch.nn.functional.max_pool2d(x, 2)
    assert 512 // x.shape[-1] == 16
    text = lesson("convolutions", "pooling")
    both(text, "16×16", f"{16 * 0.1:.1f} mm")


def gradient_receptive_field(layers: str, size: int) -> int:
    """Width of the input region that reaches the centre output pixel, found by backpropagation
    through real torch layers (average pooling stands in for max pooling: same geometry, and every
    input under the window gets a gradient)."""
    import re

    stack = []
    for token in layers.split(","):
        kind, k, s, d = re.fullmatch(r"([cp])(\d+)(?:s(\d+))?(?:d(\d+))?", token).groups()
        k, d = int(k), int(d or 1)
        if kind == "c":
            conv = torch.nn.Conv2d(1, 1, k, stride=int(s or 1), padding=d * (k - 1) // 2, dilation=d, bias=False)
            torch.nn.init.ones_(conv.weight)
            stack.append(conv)
        else:
            stack.append(torch.nn.AvgPool2d(k, stride=int(s or k)))
    x = torch.ones(1, 1, size, size, requires_grad=True)
    out = torch.nn.Sequential(*stack)(x)
    out[0, 0, out.shape[-2] // 2, out.shape[-1] // 2].backward()
    columns = np.flatnonzero(x.grad[0, 0].abs().sum(0).numpy() > 0)
    return int(columns[-1] - columns[0] + 1)


def test_receptive_field_presets_match_backpropagation():
    rf = {p.id: p for p in load_presets("convolutions")["rf"]}
    expected = {"default_model": "36×36", "plain_stack": "13×13", "dilated_stack": "31×31", "alexnet_like": "195"}
    for pid, needle in expected.items():
        width = gradient_receptive_field(rf[pid].values["layers"], size=512)
        assert needle.startswith(str(width)), (pid, width)
        both(rf[pid].commentary, needle)
    assert 36 / 64 > 0.5 and "more than half the width" in rf["default_model"].commentary["en"]


def test_architecture_chapter_counts():
    """Weights, FLOPs, conv layers and gradient spreads the architectures chapter quotes, from the
    registered models (torch's parameter and FLOP counters) and SE blocks counted by hand."""
    import models
    from primer import architectures as arch

    se_net = models.build("se_resnet", seed=0, width=8)
    se_blocks = [m for m in se_net.modules() if type(m).__name__ == "SqueezeExcitation"]
    by_hand = [2 * c * (c // 4) + c // 4 + c for c in (8, 16, 32)]  # C → C/4 → C, with biases
    assert [sum(p.numel() for p in m.parameters()) for m in se_blocks] == by_hand == [42, 148, 552]
    both(lesson("architectures", "efficiency_attention"), "42", "552")

    (plain_params, plain_flops), (sep_params, sep_flops) = (
        arch.model_size(n, 8) for n in ("plain_cnn", "separable_cnn")
    )
    assert round(plain_params / sep_params) == 5 and round(plain_flops / sep_flops) == 4
    note = preset("architectures", "blocks", "separable").commentary
    assert "a fifth of its parameters and a quarter of its FLOPs" in note["en"] and "五分之一" in note["zh"]
    deep_flops = arch.model_size("plain_deep", 8)[1]
    assert 5 < deep_flops / plain_flops < 6
    note = preset("architectures", "blocks", "deep_plain").commentary
    assert "more than five times the FLOPs" in note["en"] and "五倍多" in note["zh"]
    assert arch.receptive_field(models.build("plain_deep", seed=0, width=8)) == 122
    both(note, "122")

    shallow = arch.conv_layer_count(models.build("plain_cnn", seed=0, width=8))
    assert shallow == 6 and arch.conv_layer_count(models.build("plain_deep", seed=0, width=8)) == 25
    strings = content_strings("architectures")
    assert "The plain CNN (6 conv layers)" in strings["degrade.train_help"]["en"]
    assert "6 个卷积层" in strings["degrade.train_help"]["zh"]

    spread = {}
    for blocks in (4, 8):
        for name in arch.DEEP:
            grads = np.array(arch.gradient_flow(name, blocks).grad_norm)
            spread[name, blocks] = grads.max() / grads.min()
    assert round(spread["plain_deep", 4], -1) == 180 and round(spread["plain_deep", 8], -2) == 7600
    assert round(spread["resnet_deep", 4], -1) == round(spread["resnet_deep", 8], -1) == 60
    text = lesson("architectures", "degradation")
    assert "about 60-fold at both 25 and 49 layers, against about 180-fold and 7,600-fold" in text["en"]
    assert "约为 60 倍" in text["zh"] and "180 倍和 7,600 倍" in text["zh"]


def content_strings(chapter: str) -> dict:
    import yaml

    return yaml.safe_load((LESSONS / chapter / "strings.yaml").read_text(encoding="utf-8"))
