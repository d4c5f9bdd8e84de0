"""Quiz grading and the progress file, by hand-worked cases."""

import json

import pytest

from primer import quiz
from primer.progress import Progress, ProgressError

BI = {"en": "x", "zh": "x"}


def q(kind, answer, **extra):
    raw = {"id": "q1", "kind": kind, "prompt": BI, "explanation": BI, "answer": answer, **extra}
    if kind in ("single", "multiple"):
        raw["options"] = [BI, BI, BI]
    return quiz.parse_question("ch", raw)


def test_single_and_multiple_choice():
    assert quiz.grade(q("single", 2), 2)
    assert not quiz.grade(q("single", 2), 0)
    assert not quiz.grade(q("single", 2), None)
    multi = q("multiple", [0, 2])
    assert quiz.grade(multi, [2, 0])
    assert not quiz.grade(multi, [0])
    assert not quiz.grade(multi, [0, 1, 2])


def test_numeric_tolerance():
    exact = q("numeric", 0.25, tolerance=0.01)
    assert quiz.grade(exact, 0.26)
    assert not quiz.grade(exact, 0.27)
    default_tol = q("numeric", 200)  # 1% of the answer
    assert quiz.grade(default_tol, 201.9)
    assert not quiz.grade(default_tol, 202.5)
    assert not quiz.grade(default_tol, float("nan"))


def test_computed_key_overrides_the_file():
    question = q("numeric", 1.0, tolerance=0.001)
    assert quiz.grade(question, 3.0, key=3.0)
    assert not quiz.grade(question, 1.0, key=3.0)


def test_progress_round_trip():
    p = Progress()
    p.mark_read("training", "loss")
    p.mark_read("training", "lr")
    p.mark_read("training", "lr", read=False)
    p.record_answer("training", "q1", True)
    p.record_answer("training", "q2", False)
    again = Progress.from_json(p.to_json().encode())
    assert again.lessons_read == {"training": {"loss"}}
    assert again.quiz_score("training") == (1, 2)


@pytest.mark.parametrize(
    "payload, code",
    [
        (b"\x89PNG\r\n\x1a\n", "not_json"),
        (b"{not json", "not_json"),
        (json.dumps({"format": "other"}).encode(), "wrong_format"),
        (json.dumps({"format": "dl-primer-progress", "version": 99}).encode(), "wrong_version"),
        (
            json.dumps({"format": "dl-primer-progress", "version": 1, "answers": {"c": {"q": "yes"}}}).encode(),
            "wrong_format",
        ),
        (b" " * 300_000, "too_large"),
    ],
)
def test_bad_progress_files_get_a_code(payload, code):
    with pytest.raises(ProgressError) as info:
        Progress.from_json(payload)
    assert info.value.code == code


def test_deep_or_huge_progress_files_are_refused_before_parsing():
    header = '{"format": "dl-primer-progress", "version": 1, "lessons_read": '
    for payload, code in [
        (header + "[" * 100_000 + "]" * 100_000 + "}", "wrong_format"),  # json would recurse 100,000 deep
        (header + '{"a": [[["x"]]]}}', "wrong_format"),  # one level more than a progress file has
        (header + '{"a": ["' + "x" * 101 + '"]}}', "wrong_format"),  # an id of 101 characters
        (header + json.dumps({"a": [f"l{i}" for i in range(6000)]}) + "}", "too_large"),
    ]:
        with pytest.raises(ProgressError) as info:
            Progress.from_json(payload.encode())
        assert info.value.code == code, payload[:80]
    # brackets inside strings are text, not nesting
    ok = Progress.from_json((header + '{"imaging": ["[[[[[[[[{{{{"]}, "answers": {}}').encode())
    assert ok.lessons_read == {"imaging": {"[[[[[[[[{{{{"}}


def test_scores_count_only_the_ids_the_app_has():
    p = Progress()
    p.mark_read("imaging", "hounsfield")
    p.mark_read("imaging", "no_such_lesson")
    p.record_answer("imaging", "q1", True)
    p.record_answer("imaging", "gone", True)
    assert p.lessons_done("imaging", ["hounsfield", "windowing"]) == 1
    assert p.quiz_score("imaging", ["q1", "q2"]) == (1, 1)
    assert p.quiz_score("imaging") == (2, 2)
