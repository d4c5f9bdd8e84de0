"""A learner's progress: lessons marked read and quiz answers, per chapter.

It lives in the browser session only; the learner can download it as a small JSON file and load
it again another day. Nothing is stored on the server.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

FORMAT = "dl-primer-progress"
VERSION = 1
MAX_BYTES = 256 * 1024  # a real progress file is a few kilobytes
MAX_DEPTH = 4  # {"answers": {chapter: {question: true}}} is three levels deep
MAX_ENTRIES = 5000  # lesson and question ids in all: the app has a few hundred
MAX_ID = 100  # characters in a chapter, lesson or question id


class ProgressError(ValueError):
    def __init__(self, code: str, detail: str = ""):
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


@dataclass
class Progress:
    lessons_read: dict[str, set[str]] = field(default_factory=dict)  # chapter → lesson ids
    answers: dict[str, dict[str, bool]] = field(default_factory=dict)  # chapter → question id → right?

    def mark_read(self, chapter: str, lesson: str, read: bool = True) -> None:
        done = self.lessons_read.setdefault(chapter, set())
        if read:
            done.add(lesson)
        else:
            done.discard(lesson)

    def record_answer(self, chapter: str, question: str, correct: bool) -> None:
        self.answers.setdefault(chapter, {})[question] = bool(correct)

    def quiz_score(self, chapter: str, question_ids: Iterable[str] | None = None) -> tuple[int, int]:
        """(right, answered) for one chapter, counting only `question_ids` when given."""
        given = self.answers.get(chapter, {})
        if question_ids is not None:
            given = {q: given[q] for q in question_ids if q in given}
        return sum(given.values()), len(given)

    def lessons_done(self, chapter: str, lesson_ids: Iterable[str]) -> int:
        """How many of a chapter's lessons are marked read (ids the chapter no longer has not counted)."""
        done = self.lessons_read.get(chapter, set())
        return sum(lesson in done for lesson in set(lesson_ids))

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": FORMAT,
                "version": VERSION,
                "lessons_read": {c: sorted(ids) for c, ids in sorted(self.lessons_read.items())},
                "answers": {c: dict(sorted(a.items())) for c, a in sorted(self.answers.items())},
            },
            ensure_ascii=False,
            indent=1,
        )

    @classmethod
    def from_json(cls, data: bytes | str) -> Progress:
        """Parse an uploaded progress file; anything else raises ProgressError with a code."""
        if isinstance(data, bytes):
            if len(data) > MAX_BYTES:
                raise ProgressError("too_large", f"{len(data)} bytes")
            try:
                data = data.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ProgressError("not_json", str(exc)) from exc
        if len(data) > MAX_BYTES:
            raise ProgressError("too_large", f"{len(data)} characters")
        depth = _nesting(data)
        if depth > MAX_DEPTH:  # refused before parsing: json's parser recurses once per level
            raise ProgressError("wrong_format", f"nested {depth} levels deep")
        try:
            raw = json.loads(data)
        except (json.JSONDecodeError, RecursionError) as exc:
            raise ProgressError("not_json", str(exc)[:200]) from exc
        if not isinstance(raw, dict) or raw.get("format") != FORMAT:
            raise ProgressError("wrong_format", "not a progress file from this app")
        if raw.get("version") != VERSION:
            raise ProgressError("wrong_version", str(raw.get("version")))
        lessons, answers = raw.get("lessons_read", {}), raw.get("answers", {})
        ok = (
            isinstance(lessons, dict)
            and isinstance(answers, dict)
            and all(isinstance(v, list) and all(_is_id(i) for i in v) for v in lessons.values())
            and all(isinstance(v, dict) and all(isinstance(b, bool) for b in v.values()) for v in answers.values())
            and all(_is_id(k) for k in [*lessons, *answers, *(q for a in answers.values() for q in a)])
        )
        if not ok:
            raise ProgressError("wrong_format", "unexpected structure")
        if sum(map(len, lessons.values())) + sum(map(len, answers.values())) > MAX_ENTRIES:
            raise ProgressError("too_large", "too many entries")
        return cls(
            lessons_read={str(c): set(ids) for c, ids in lessons.items()},
            answers={str(c): {str(q): b for q, b in a.items()} for c, a in answers.items()},
        )


def _is_id(value) -> bool:
    return isinstance(value, str) and 0 < len(value) <= MAX_ID


def _nesting(text: str) -> int:
    """How deep JSON arrays and objects nest in `text` (brackets inside strings not counted)."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest
