"""A live class: join code, instructor key, polls, "follow me", and the class overview.

The instructor creates a class and gets two secrets: a short join code for the students (read
aloud or written on the board) and a separate instructor key, stored only as a salted scrypt
hash. Every instructor action takes the key; wrong keys are counted in the database (so every
replica sees them) and a class refuses keys for a minute after five wrong ones.

    room = Classroom(store)
    made = room.create_class("Workshop")                 # made.join_code, made.instructor_key
    member = room.join(made.join_code, "Dr. Li")         # a student: an opaque member id
    poll = room.open_poll(made.class_id, made.instructor_key, "training", "chance_loss")
    room.answer(member, poll, answer="0", correct=True)  # one answer per student (latest kept)
    room.poll_counts(made.class_id, made.instructor_key, poll)   # {"0": 1}; no names
    room.push(made.class_id, made.instructor_key, "/training?train.num_epochs=3")
    room.following(member)                               # what the student's page opens

A student holds only a member id: it reads its own class's open poll and pushed lab, never
another class's, and never anyone's answers. Nicknames are plain text, cut to 40 characters;
the page shows them as text. Nothing here imports streamlit.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import time
from dataclasses import dataclass

import sqlalchemy as sa

from primer import storage
from primer.storage import StorageError, metadata

JOIN_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I/L: read aloud, typed on a phone
JOIN_LENGTH = 6  # 31⁶ ≈ 8.9 × 10⁸ codes
MAX_NICKNAME = 40
MAX_ANSWER = 200
MAX_URL = 4000
KEY_TRIES, KEY_WINDOW_S = 5, 60.0  # five wrong instructor keys a minute, then the class waits
SCRYPT = dict(n=2**14, r=8, p=1, dklen=32)  # ~16 MB and ~50 ms per check: cheap for us, dear for a guesser

classes = sa.Table(
    "classes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("join_code", sa.String(JOIN_LENGTH), nullable=False, unique=True),
    sa.Column("key_salt", sa.LargeBinary(16), nullable=False),
    sa.Column("key_hash", sa.LargeBinary(32), nullable=False),
    sa.Column("title", sa.String(120), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("follow_url", sa.String(MAX_URL)),  # the lab setup pushed by "follow me"
    sa.Column("follow_at", sa.Float),
)
members = sa.Table(
    "members",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),  # an opaque random token, the student's only credential
    sa.Column("class_id", sa.Integer, sa.ForeignKey("classes.id", ondelete="CASCADE"), nullable=False, index=True),
    sa.Column("nickname", sa.String(MAX_NICKNAME), nullable=False),
    sa.Column("learner", sa.String(storage.MAX_CODE)),  # the student's learner code, for the overview
    sa.Column("joined_at", sa.Float, nullable=False),
)
polls = sa.Table(
    "polls",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("class_id", sa.Integer, sa.ForeignKey("classes.id", ondelete="CASCADE"), nullable=False, index=True),
    sa.Column("chapter", sa.String(100), nullable=False),
    sa.Column("question", sa.String(100), nullable=False),
    sa.Column("opened_at", sa.Float, nullable=False),
    sa.Column("revealed", sa.Boolean, nullable=False, default=False),
)
poll_answers = sa.Table(
    "poll_answers",
    metadata,
    sa.Column("poll_id", sa.Integer, sa.ForeignKey("polls.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("member_id", sa.String(32), sa.ForeignKey("members.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("answer", sa.String(MAX_ANSWER), nullable=False),
    sa.Column("correct", sa.Boolean, nullable=False),
    sa.Column("answered_at", sa.Float, nullable=False),
)
key_failures = sa.Table(
    "key_failures",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("class_id", sa.Integer, sa.ForeignKey("classes.id", ondelete="CASCADE"), nullable=False, index=True),
    sa.Column("at", sa.Float, nullable=False),
)


class ClassError(ValueError):
    """A refused class action; `code` is for the page: unknown_class, bad_key, too_many_tries,
    not_a_member, no_poll, closed_poll."""

    def __init__(self, code: str):
        super().__init__(code)
        self.code = code


@dataclass(frozen=True)
class NewClass:
    class_id: int
    join_code: str
    instructor_key: str  # shown once to the instructor; only its hash is stored


@dataclass(frozen=True)
class OpenPoll:
    poll_id: int
    chapter: str
    question: str
    revealed: bool


# ---------------------------------------------------------------------------------------------
# Poll answers of every kind of quiz question, as the strings the database keeps

POLL_KINDS = ("single", "multiple", "numeric")  # figure questions draw a new figure per student: not polled


def encode_answer(kind: str, response) -> str:
    """A student's response as stored: "2" (single), "0,3" (multiple, sorted), "12.5" (numeric;
    repr round-trips the float). A response that cannot be one of these is refused."""
    if kind == "single":
        return str(int(response))
    if kind == "multiple":
        picked = sorted({int(r) for r in response})
        if not picked:
            raise ClassError("bad_answer")
        return ",".join(map(str, picked))
    value = float(response)
    if not math.isfinite(value):
        raise ClassError("bad_answer")
    return repr(value)


def decode_answer(kind: str, text: str):
    """The stored string back as a response (int, list of ints, float), or None if it is not one."""
    try:
        if kind == "single":
            return int(text)
        if kind == "multiple":
            return [int(part) for part in text.split(",")]
        value = float(text)
        return value if math.isfinite(value) else None
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class PollSummary:
    n: int  # answers
    option_counts: tuple[int, ...]  # single and multiple: students who chose each option
    values: tuple[float, ...]  # numeric: every answer, sorted
    right: int  # answers that grade as right (primer.quiz.grade)


def summarize(question, counts: dict[str, int]) -> PollSummary:
    """What the instructor's chart shows, from poll_counts' {answer: students}."""
    from primer import quiz

    kind = question.graded_as
    options = [0] * len(question.options)
    values: list[float] = []
    n = right = 0
    for text, students in counts.items():
        response = decode_answer(kind, text)
        if response is None:
            continue  # not an answer to this kind of question
        n += students
        right += students * quiz.grade(question, response)
        if kind == "numeric":
            values += [response] * students
        else:
            for index in [response] if kind == "single" else response:
                if 0 <= index < len(options):
                    options[index] += students
    return PollSummary(n=n, option_counts=tuple(options), values=tuple(sorted(values)), right=right)


def hash_key(key: str, salt: bytes) -> bytes:
    return hashlib.scrypt(key.encode(), salt=salt, **SCRYPT)


def normalise_join_code(text: str) -> str | None:
    code = "".join(ch for ch in str(text)[:40].upper() if ch.isalnum())
    return code if len(code) == JOIN_LENGTH and all(ch in JOIN_ALPHABET for ch in code) else None


def clean_nickname(text: str) -> str:
    """Plain text of at most MAX_NICKNAME characters, control characters removed (shown as text)."""
    kept = "".join(ch for ch in str(text)[: MAX_NICKNAME * 4] if ch.isprintable()).strip()
    return kept[:MAX_NICKNAME]


def _delete_class_rows(conn, class_id: int) -> None:
    """Every row of one class, children first (SQLite enforces no cascade without the pragma)."""
    poll_ids = sa.select(polls.c.id).where(polls.c.class_id == class_id)
    conn.execute(poll_answers.delete().where(poll_answers.c.poll_id.in_(poll_ids)))
    conn.execute(polls.delete().where(polls.c.class_id == class_id))
    conn.execute(members.delete().where(members.c.class_id == class_id))
    conn.execute(key_failures.delete().where(key_failures.c.class_id == class_id))
    conn.execute(classes.delete().where(classes.c.id == class_id))


class Classroom:
    def __init__(self, store: storage.Store):
        self.store = store

    # The instructor --------------------------------------------------------------------------

    def create_class(self, title: str) -> NewClass:
        key = secrets.token_urlsafe(12)  # 16 characters, 96 bits
        salt = secrets.token_bytes(16)
        digest = hash_key(key, salt)
        for _ in range(20):
            join = "".join(secrets.choice(JOIN_ALPHABET) for _ in range(JOIN_LENGTH))
            try:
                with self.store._tx() as conn:
                    class_id = conn.execute(
                        classes.insert().values(
                            join_code=join,
                            key_salt=salt,
                            key_hash=digest,
                            title=clean_nickname(title)[:120] or "Class",
                            created_at=time.time(),
                        )
                    ).inserted_primary_key[0]
                return NewClass(int(class_id), join, key)
            except StorageError as exc:
                if not isinstance(exc.__cause__, sa.exc.IntegrityError):
                    raise
        raise StorageError("unavailable", "no free join code")

    def check_key(self, class_id: int, key: str) -> None:
        """Raise ClassError unless `key` is this class's instructor key (rate-limited per class)."""
        now = time.time()
        with self.store._tx() as conn:
            row = conn.execute(
                sa.select(classes.c.key_salt, classes.c.key_hash).where(classes.c.id == class_id)
            ).first()
            if row is None:
                raise ClassError("unknown_class")
            recent = conn.execute(
                sa.select(sa.func.count())
                .select_from(key_failures)
                .where((key_failures.c.class_id == class_id) & (key_failures.c.at > now - KEY_WINDOW_S))
            ).scalar()
            if recent >= KEY_TRIES:
                raise ClassError("too_many_tries")
            if hmac.compare_digest(hash_key(str(key)[:200], bytes(row.key_salt)), bytes(row.key_hash)):
                return
            conn.execute(key_failures.insert().values(class_id=class_id, at=now))
        raise ClassError("bad_key")

    def open_poll(self, class_id: int, key: str, chapter: str, question: str) -> int:
        self.check_key(class_id, key)
        with self.store._tx() as conn:
            return int(
                conn.execute(
                    polls.insert().values(
                        class_id=class_id, chapter=chapter, question=question, opened_at=time.time(), revealed=False
                    )
                ).inserted_primary_key[0]
            )

    def reveal(self, class_id: int, key: str, poll_id: int) -> None:
        self.check_key(class_id, key)
        with self.store._tx() as conn:
            done = conn.execute(
                polls.update().where((polls.c.id == poll_id) & (polls.c.class_id == class_id)).values(revealed=True)
            )
            if done.rowcount == 0:
                raise ClassError("no_poll")

    def poll_counts(self, class_id: int, key: str, poll_id: int) -> dict[str, int]:
        """How many students gave each answer (no names)."""
        self.check_key(class_id, key)
        with self.store._tx() as conn:
            rows = conn.execute(
                sa.select(poll_answers.c.answer, sa.func.count())
                .select_from(poll_answers.join(polls, polls.c.id == poll_answers.c.poll_id))
                .where((polls.c.id == poll_id) & (polls.c.class_id == class_id))
                .group_by(poll_answers.c.answer)
            )
            return {answer: int(n) for answer, n in rows}

    def push(self, class_id: int, key: str, lab_url: str) -> None:
        """Follow me: every student's page opens this lab setup (a path with its query string)."""
        self.check_key(class_id, key)
        if not lab_url.startswith("/") or lab_url.startswith("//") or len(lab_url) > MAX_URL:
            raise ClassError("bad_url")  # only a path on this app, never another site
        with self.store._tx() as conn:
            conn.execute(
                classes.update().where(classes.c.id == class_id).values(follow_url=lab_url, follow_at=time.time())
            )

    def overview(self, class_id: int, key: str) -> dict:
        """Per chapter: lessons read (lesson → number of students) and each student's quiz score
        (a list of (right, answered), in no particular order, without names)."""
        self.check_key(class_id, key)
        with self.store._tx() as conn:
            codes = [
                r.learner for r in conn.execute(sa.select(members.c.learner).where(members.c.class_id == class_id))
            ]
            codes = [c for c in codes if c]
            out: dict = {"students": len(codes), "lessons": {}, "scores": {}}
            if not codes:
                return out
            read = conn.execute(
                sa.select(storage.lessons_read.c.chapter, storage.lessons_read.c.lesson, sa.func.count())
                .where(storage.lessons_read.c.learner.in_(codes))
                .group_by(storage.lessons_read.c.chapter, storage.lessons_read.c.lesson)
            )
            for chapter, lesson, n in read:
                out["lessons"].setdefault(chapter, {})[lesson] = int(n)
            right = sa.func.sum(sa.case((storage.answers.c.correct, 1), else_=0))
            scores = conn.execute(
                sa.select(storage.answers.c.chapter, storage.answers.c.learner, right, sa.func.count())
                .where(storage.answers.c.learner.in_(codes))
                .group_by(storage.answers.c.chapter, storage.answers.c.learner)
            )
            for chapter, _learner, n_right, n in scores:
                out["scores"].setdefault(chapter, []).append((int(n_right), int(n)))
            return out

    def delete_class(self, class_id: int, key: str) -> None:
        """The class and everything in it: members, polls, answers, key failures."""
        self.check_key(class_id, key)
        with self.store._tx() as conn:
            _delete_class_rows(conn, class_id)

    def delete_old(self, older_than_s: float) -> int:
        """Retention: delete classes created more than `older_than_s` seconds ago."""
        cutoff = time.time() - older_than_s
        with self.store._tx() as conn:
            old = [r.id for r in conn.execute(sa.select(classes.c.id).where(classes.c.created_at < cutoff))]
            for class_id in old:
                _delete_class_rows(conn, class_id)
            return len(old)

    def class_for(self, join_code: str) -> int:
        """The class a join code opens (for an instructor reopening the console elsewhere)."""
        code = normalise_join_code(join_code)
        with self.store._tx() as conn:
            row = (
                None
                if code is None
                else conn.execute(sa.select(classes.c.id).where(classes.c.join_code == code)).first()
            )
        if row is None:
            raise ClassError("unknown_class")
        return int(row.id)

    # A student -------------------------------------------------------------------------------

    def join(self, join_code: str, nickname: str = "", learner: str | None = None) -> str:
        code = normalise_join_code(join_code)
        if code is None:
            raise ClassError("unknown_class")
        with self.store._tx() as conn:
            row = conn.execute(sa.select(classes.c.id).where(classes.c.join_code == code)).first()
            if row is None:
                raise ClassError("unknown_class")
            member_id = secrets.token_hex(16)
            conn.execute(
                members.insert().values(
                    id=member_id,
                    class_id=row.id,
                    nickname=clean_nickname(nickname),
                    learner=learner,
                    joined_at=time.time(),
                )
            )
            return member_id

    def _member_class(self, conn, member_id: str) -> int:
        row = conn.execute(sa.select(members.c.class_id).where(members.c.id == str(member_id)[:32])).first()
        if row is None:
            raise ClassError("not_a_member")
        return int(row.class_id)

    def current_poll(self, member_id: str) -> OpenPoll | None:
        """The newest poll of the student's own class, if any."""
        with self.store._tx() as conn:
            class_id = self._member_class(conn, member_id)
            row = conn.execute(
                sa.select(polls).where(polls.c.class_id == class_id).order_by(polls.c.id.desc()).limit(1)
            ).first()
            return None if row is None else OpenPoll(int(row.id), row.chapter, row.question, bool(row.revealed))

    def answer(self, member_id: str, poll_id: int, answer: str, correct: bool) -> None:
        """The student's answer to a poll of their own class (a second answer replaces the first)."""
        with self.store._tx() as conn:
            class_id = self._member_class(conn, member_id)
            poll = conn.execute(sa.select(polls.c.class_id).where(polls.c.id == poll_id)).first()
            if poll is None or int(poll.class_id) != class_id:
                raise ClassError("no_poll")
            key = (poll_answers.c.poll_id == poll_id) & (poll_answers.c.member_id == member_id)
            conn.execute(poll_answers.delete().where(key))
            conn.execute(
                poll_answers.insert().values(
                    poll_id=poll_id,
                    member_id=member_id,
                    answer=str(answer)[:MAX_ANSWER],
                    correct=bool(correct),
                    answered_at=time.time(),
                )
            )

    def following(self, member_id: str) -> tuple[str, float] | None:
        """The lab setup the instructor pushed last (path with query, when), or None."""
        with self.store._tx() as conn:
            class_id = self._member_class(conn, member_id)
            row = conn.execute(
                sa.select(classes.c.follow_url, classes.c.follow_at).where(classes.c.id == class_id)
            ).first()
            return None if row is None or row.follow_url is None else (row.follow_url, float(row.follow_at))

    def nicknames(self, class_id: int, key: str) -> list[str]:
        self.check_key(class_id, key)
        with self.store._tx() as conn:
            return [
                r.nickname for r in conn.execute(sa.select(members.c.nickname).where(members.c.class_id == class_id))
            ]
