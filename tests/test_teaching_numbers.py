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


def test_terminology_parameter_counts():
    """The features lab's CNN counted by hand, layer by layer; DenseNet-121 with CheXNet's 14
    outputs counted by torchvision."""
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


def test_missed_lesions_preset_sensitivity():
    """40% of lesions labelled normal: the stored runs' sensitivity at 0.5 is about four in ten."""
    from primer import terminology as term

    missed = term.noise_summary(term.load_points("noise")["points"], "missed")
    sensitivity = missed["sensitivity"][missed["rate"].index(0.4)]
    assert round(sensitivity, 1) == 0.4
    note = preset("terminology", "noise", "missed40").commentary
    assert "about four lesions in ten" in note["en"] and "十分之四" in note["zh"]
