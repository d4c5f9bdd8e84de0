"""One Chinese term per concept, across every lesson, quiz, glossary entry, preset and string.

The agreed terms: 灵敏度 for the metric (敏感度 only in 遮挡敏感度 and for a gradient's
sensitivity), 体模 (not 模体), 参考标准 as the main term for ground truth (金标准 only as the
alias beside it), 平均精度（AP）, 泛化能力, 实验 (not 实验室), Chinese quotation marks “” in
Chinese text, and windows as 窗位 −600、窗宽 1500 rather than a bare −600/1500.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

LESSONS = Path(__file__).resolve().parent.parent / "lessons"
CJK = re.compile(r"[\u4e00-\u9fff]")

BANNED = {
    "模体": "体模",
    "实验室": "实验",
    "推广能力": "泛化能力",
    "平均精确率": "平均精度（AP）",
    "平均准确率": "平均精度（AP）",
    "真值": "参考标准",
}
ALLOWED_SENSITIVITY = (
    "遮挡敏感度",
    "衡量的是敏感度",
    "反映的是敏感度（梯度大小）",
)  # the method's name; a gradient's sensitivity
BARE_WINDOW = re.compile(r"(?<![\d/.])[−-]?\d{2,4}/\d{2,4}(?![\d/])")


def chinese_texts() -> list[tuple[str, str]]:
    """(where, text) for every Chinese text the app shows: zh.md files and every `zh` value."""
    out = [(str(p.relative_to(LESSONS)), p.read_text(encoding="utf-8")) for p in LESSONS.rglob("zh.md")]

    def walk(node, where):
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "zh" and isinstance(value, str):
                    out.append((where, value))
                else:
                    walk(value, f"{where}.{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{where}[{i}]")

    for path in LESSONS.rglob("*.yaml"):
        walk(yaml.safe_load(path.read_text(encoding="utf-8")), str(path.relative_to(LESSONS)))
    return out


TEXTS = chinese_texts()


def test_the_walk_finds_the_chinese_text():
    assert len(TEXTS) > 500 and sum(len(t) for _, t in TEXTS) > 50_000


@pytest.mark.parametrize("banned, use", BANNED.items())
def test_banned_variants(banned, use):
    hits = [where for where, text in TEXTS if banned in text]
    assert not hits, f"{banned} → {use} in {hits}"


def test_sensitivity_is_lingmindu():
    hits = []
    for where, text in TEXTS:
        rest = text
        for allowed in ALLOWED_SENSITIVITY:
            rest = rest.replace(allowed, "")
        if "敏感度" in rest:
            hits.append(where)
    assert not hits, f"敏感度 → 灵敏度 in {hits}"


def test_ground_truth_is_the_reference_standard():
    glossary = yaml.safe_load((LESSONS / "terminology" / "glossary.yaml").read_text(encoding="utf-8"))
    assert glossary["ground_truth"]["term"]["zh"].startswith("参考标准")
    for where, text in TEXTS:
        for match in re.finditer("金标准", text):
            assert "参考标准" in text[max(0, match.start() - 12) : match.start()], f"金标准 stands alone in {where}"


def test_chinese_quotation_marks():
    straight = re.compile(r'"[^"\n]*[\u4e00-\u9fff][^"\n]*"')
    hits = [(where, m.group()) for where, text in TEXTS for m in straight.finditer(text)]
    assert not hits, f"use “” in Chinese text: {hits[:5]}"


def test_windows_are_written_as_level_and_width():
    hits = [(where, m.group()) for where, text in TEXTS for m in BARE_WINDOW.finditer(text) if CJK.search(text)]
    assert not hits, f"write 窗位 …、窗宽 … : {hits}"
