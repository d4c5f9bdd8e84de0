"""A learner's progress: lessons marked read and quiz answers, per chapter.

It lives in the browser session only; the learner can download it as a small JSON file and load
it again another day. Nothing is stored on the server.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

FORMAT = "dl-primer-progress"
VERSION = 1
MAX_BYTES = 256 * 1024  # a real progress file is a few kilobytes


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

    def quiz_score(self, chapter: str) -> tuple[int, int]:
        """(right, answered) for one chapter."""
        given = self.answers.get(chapter, {})
        return sum(given.values()), len(given)

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
        try:
            raw = json.loads(data)
        except json.JSONDecodeError as exc:
            raise ProgressError("not_json", str(exc)) from exc
        if not isinstance(raw, dict) or raw.get("format") != FORMAT:
            raise ProgressError("wrong_format", "not a progress file from this app")
        if raw.get("version") != VERSION:
            raise ProgressError("wrong_version", str(raw.get("version")))
        lessons, answers = raw.get("lessons_read", {}), raw.get("answers", {})
        ok = (
            isinstance(lessons, dict)
            and isinstance(answers, dict)
            and all(isinstance(v, list) and all(isinstance(i, str) for i in v) for v in lessons.values())
            and all(isinstance(v, dict) and all(isinstance(b, bool) for b in v.values()) for v in answers.values())
        )
        if not ok:
            raise ProgressError("wrong_format", "unexpected structure")
        return cls(
            lessons_read={str(c): set(ids) for c, ids in lessons.items()},
            answers={str(c): {str(q): b for q, b in a.items()} for c, a in answers.items()},
        )
