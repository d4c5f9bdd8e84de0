"""One quiz engine for every chapter: load, validate and grade `lessons/<chapter>/quiz.yaml`.

A question is one of four kinds:

    single    options + answer: index of the right option
    multiple  options + answer: list of indices (all and only those must be ticked)
    numeric   answer: number, tolerance: absolute tolerance (default 1% of the answer)
    figure    "read the figure": a generated chart with a single or numeric question about it.
              `figure: {builder: "module:function", params: {...}}` names a function that returns
              a FigureQuestion; when it returns an answer, that computed answer is the key, so
              the number asked about always matches the picture.

Every question carries an explanation in both languages, shown after any answer, right or
wrong, and may name the lab that shows the answer (`lab: <lab id>`).
"""

from __future__ import annotations

import importlib
import inspect
import math
import random
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from primer.i18n import LANGUAGES, LESSONS_DIR, read_yaml

KINDS = ("single", "multiple", "numeric", "figure")


class QuizError(ValueError):
    """A quiz file that does not follow the schema."""


@dataclass(frozen=True)
class Question:
    chapter: str
    id: str
    kind: str
    prompt: dict
    explanation: dict
    options: tuple[dict, ...] = ()
    answer: Any = None
    tolerance: float | None = None
    lab: str | None = None
    figure: dict | None = None
    answer_kind: str = ""  # for figure questions: "single" or "numeric"

    @property
    def key(self) -> str:
        return f"{self.chapter}.{self.id}"

    @property
    def graded_as(self) -> str:
        return self.answer_kind if self.kind == "figure" else self.kind


@dataclass
class FigureQuestion:
    """What a figure builder returns: the figure (Plotly figure or image array) and, when the
    answer is computed from the same data, that answer."""

    figure: Any
    answer: Any = None
    extra: dict = field(default_factory=dict)


def _bilingual(value, where: str) -> dict:
    if not isinstance(value, dict) or any(not str(value.get(lang, "")).strip() for lang in LANGUAGES):
        raise QuizError(f"{where}: needs non-empty text in {', '.join(LANGUAGES)}")
    return value


def parse_question(chapter: str, raw: dict) -> Question:
    where = f"{chapter}/{raw.get('id', '?')}"
    kind = raw.get("kind")
    if kind not in KINDS:
        raise QuizError(f"{where}: kind must be one of {KINDS}")
    options = tuple(_bilingual(o, f"{where} option") for o in raw.get("options", []))
    answer = raw.get("answer")
    answer_kind = raw.get("answer_kind", "")
    graded_as = answer_kind if kind == "figure" else kind
    if kind == "figure":
        spec = raw.get("figure")
        if not isinstance(spec, dict) or ":" not in str(spec.get("builder", "")):
            raise QuizError(f"{where}: figure questions need figure.builder 'module:function'")
        if answer_kind not in ("single", "numeric"):
            raise QuizError(f"{where}: figure questions need answer_kind single or numeric")
    if graded_as in ("single", "multiple") and len(options) < 2:
        raise QuizError(f"{where}: needs at least two options")
    if graded_as == "single" and answer is not None and not (isinstance(answer, int) and 0 <= answer < len(options)):
        raise QuizError(f"{where}: answer must be an option index")
    valid_multiple = (
        isinstance(answer, list) and answer and all(isinstance(a, int) and 0 <= a < len(options) for a in answer)
    )
    if graded_as == "multiple" and not valid_multiple:
        raise QuizError(f"{where}: answer must be a non-empty list of option indices")
    if graded_as == "numeric" and answer is not None and not isinstance(answer, (int, float)):
        raise QuizError(f"{where}: numeric answer must be a number")
    if answer is None and kind != "figure":
        raise QuizError(f"{where}: missing answer")
    return Question(
        chapter=chapter,
        id=str(raw["id"]),
        kind=kind,
        prompt=_bilingual(raw.get("prompt"), f"{where} prompt"),
        explanation=_bilingual(raw.get("explanation"), f"{where} explanation"),
        options=options,
        answer=answer,
        tolerance=raw.get("tolerance"),
        lab=raw.get("lab"),
        figure=raw.get("figure"),
        answer_kind=answer_kind,
    )


@lru_cache(maxsize=32)
def load_quiz(chapter: str) -> tuple[Question, ...]:
    path = LESSONS_DIR / chapter / "quiz.yaml"
    if not path.exists():
        return ()
    raw = read_yaml(path) or []
    questions = tuple(parse_question(chapter, q) for q in raw)
    ids = [q.id for q in questions]
    if len(ids) != len(set(ids)):
        raise QuizError(f"{chapter}: duplicate question ids")
    return questions


def build_figure(question: Question, lang: str | None = None) -> FigureQuestion:
    """Run the question's figure builder (deterministic: same params, same figure). A builder
    that takes a `lang` argument labels its figure in the reader's language; one that does not
    must label it in both."""
    module_name, func_name = question.figure["builder"].split(":")
    builder = getattr(importlib.import_module(module_name), func_name)
    params = dict(question.figure.get("params", {}))
    if lang is not None and "lang" in inspect.signature(builder).parameters:
        params["lang"] = lang
    return builder(**params)


def answer_key(question: Question, figure: FigureQuestion | None = None) -> Any:
    if figure is not None and figure.answer is not None:
        return figure.answer
    return question.answer


def grade(question: Question, response: Any, key: Any = None) -> bool:
    """Is `response` right? `key` overrides the stored answer (figure questions)."""
    key = question.answer if key is None else key
    kind = question.graded_as
    if response is None:
        return False
    if kind == "single":
        return int(response) == int(key)
    if kind == "multiple":
        return sorted(set(int(r) for r in response)) == sorted(set(int(k) for k in key))
    value = float(response)
    tolerance = question.tolerance if question.tolerance is not None else 0.01 * abs(float(key))
    return math.isfinite(value) and abs(value - float(key)) <= tolerance + 1e-12


def self_assessment(chapter_ids: list[str], per_chapter: int = 2, seed: int = 0) -> list[Question]:
    """A final test drawing `per_chapter` questions from every chapter, reproducibly."""
    rng = random.Random(seed)
    picked: list[Question] = []
    for chapter in chapter_ids:
        questions = list(load_quiz(chapter))
        picked.extend(rng.sample(questions, min(per_chapter, len(questions))))
    return picked
