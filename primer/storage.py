"""Where a learner's progress is kept between visits: one small relational database.

SQLite, embedded, by default (nothing to set up: one file in the data folder); PostgreSQL when
several app processes serve one class (`PRIMER_DATABASE_URL=postgresql+psycopg://...`). The
same SQLAlchemy Core statements run on both; the schema is created and migrated here, on first
use, so a deployment never runs a separate migration step.

No account and no personal data: a learner is an anonymous, readable code ("amber-heron-delta-4821")
that the page keeps in its address. Whoever holds the code can read and extend that progress,
which is all it protects; "Forget me" deletes every row of it.

    store = Store("sqlite:///primer.db")
    code = store.new_learner()
    store.mark_read(code, "training", "loss")
    store.record_answer(code, "training", "chance_loss", True)
    store.load(code)            # Progress(lessons_read={"training": {"loss"}}, answers={...})
    store.forget(code)

Nothing here imports streamlit. Every call may raise `StorageError` (database down, full, locked):
the page keeps the progress in the session and says it is not being saved.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import time
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from primer.progress import MAX_ID, Progress

SCHEMA_VERSION = 3  # 1: learners and progress; 2: classes (primer.classroom); 3: accounts (login)
# 169 short, distinct nature words: easy to read aloud and to type on another device
CODE_WORDS = tuple(
    (  # noqa: SIM905 - a word list reads better as one text
        "amber acorn alder anchor apple arch aspen aster atlas autumn badger bamboo basil beacon beech "
        "berry birch bison bloom bluebell bramble breeze brook cactus calm canyon cedar cherry cinder "
        "clover cobalt comet copper coral cotton crane creek crest crystal cypress daisy dawn delta "
        "desert dune eagle ember falcon fern field fig finch fjord flame flint forest fox frost garnet "
        "glacier glade granite grove harbor hawk hazel heath heron hill holly honey horizon iris island "
        "ivory ivy jade jasmine juniper kelp kestrel lagoon lake larch lark laurel lava lemon lilac lily "
        "linden lotus lynx magnet maple marble marsh meadow mesa mint mist moon moss nectar nova oak "
        "oasis ocean olive onyx orbit orchid otter owl palm pearl pebble pepper pine planet plum pollen "
        "poppy prairie quartz rain raven reed ridge river robin rose ruby sage salmon sand sapphire "
        "sequoia shore silver sky slate snow sparrow spruce star stone storm summit sun swan thistle "
        "thunder tide tiger topaz tulip tundra valley velvet violet walnut wave willow wind wolf wren "
        "yarrow zephyr"
    ).split()
)
CODE_PATTERN = re.compile(r"^[a-z]+-[a-z]+-[a-z]+-\d{4}$")  # what new_learner() makes
CODE_SPACE = len(CODE_WORDS) ** 3 * 9000  # 4.3e10 codes: guessing one at random is hopeless
MAX_CODE = 60


class StorageError(RuntimeError):
    """The database could not be reached or refused the write; `code` says which, for the page."""

    def __init__(self, code: str, detail: str = ""):
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


metadata = sa.MetaData()
schema_table = sa.Table("primer_schema", metadata, sa.Column("version", sa.Integer, nullable=False))
learners = sa.Table(
    "learners",
    metadata,
    sa.Column("code", sa.String(MAX_CODE), primary_key=True),
    sa.Column("created_at", sa.Float, nullable=False),  # seconds since the epoch (UTC)
    sa.Column("seen_at", sa.Float, nullable=False),
)
lessons_read = sa.Table(
    "lessons_read",
    metadata,
    sa.Column("learner", sa.String(MAX_CODE), sa.ForeignKey("learners.code", ondelete="CASCADE"), primary_key=True),
    sa.Column("chapter", sa.String(MAX_ID), primary_key=True),
    sa.Column("lesson", sa.String(MAX_ID), primary_key=True),
    sa.Column("read_at", sa.Float, nullable=False),
)
answers = sa.Table(
    "answers",
    metadata,
    sa.Column("learner", sa.String(MAX_CODE), sa.ForeignKey("learners.code", ondelete="CASCADE"), primary_key=True),
    sa.Column("chapter", sa.String(MAX_ID), primary_key=True),
    sa.Column("question", sa.String(MAX_ID), primary_key=True),
    sa.Column("correct", sa.Boolean, nullable=False),
    sa.Column("answered_at", sa.Float, nullable=False),
)

# Where an institution turns on login (Streamlit's st.login, OpenID Connect), an account is a
# learner code that follows the person instead of the browser. Only a hash of the identity
# provider and the subject id is kept: no name, no e-mail.
accounts = sa.Table(
    "accounts",
    metadata,
    sa.Column("identity", sa.String(64), primary_key=True),  # account_identity(): sha256 hex
    sa.Column("learner", sa.String(MAX_CODE), sa.ForeignKey("learners.code", ondelete="CASCADE"), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)


def account_identity(issuer: str, subject: str) -> str:
    """One stable key per person and identity provider (OpenID Connect's `iss` and `sub`)."""
    return hashlib.sha256(f"{issuer}\n{subject}".encode()).hexdigest()


def default_url() -> str:
    """PRIMER_DATABASE_URL, else an SQLite file in PRIMER_DATA_DIR (default: ./data)."""
    url = os.environ.get("PRIMER_DATABASE_URL", "").strip()
    if url:
        return url
    folder = Path(os.environ.get("PRIMER_DATA_DIR", "data"))
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'primer.db'}"


def normalise_code(text: str) -> str | None:
    """A learner code as typed (any case, spaces, stray punctuation) → its canonical form, or None."""
    words = re.findall(r"[a-z]+|\d+", str(text)[: MAX_CODE * 2].lower())
    code = "-".join(words)
    return code if CODE_PATTERN.match(code) and all(w in CODE_WORDS for w in words[:3]) else None


class Store:
    def __init__(self, url: str | None = None, *, connect_timeout: float = 3.0):
        url = url or default_url()
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            # A waiting writer gives up after `timeout` seconds instead of hanging the page.
            args = {"timeout": connect_timeout, "check_same_thread": False}
            self.engine = sa.create_engine(url, connect_args=args)

            @sa.event.listens_for(self.engine, "connect")
            def _sqlite_pragmas(dbapi_connection, _record):
                cursor = dbapi_connection.cursor()
                cursor.execute("PRAGMA foreign_keys=ON")  # ON DELETE CASCADE needs it in SQLite
                cursor.execute("PRAGMA journal_mode=WAL")  # readers do not block the writer
                cursor.close()
        else:
            self.engine = sa.create_engine(
                url,
                pool_pre_ping=True,
                pool_size=5,
                max_overflow=5,
                connect_args={"connect_timeout": int(connect_timeout)},
            )
        self._migrated = False

    # Schema ------------------------------------------------------------------------------------

    def migrate(self) -> int:
        """Create the tables (first run) or bring an older schema up to SCHEMA_VERSION."""
        from primer import classroom  # noqa: F401 - its tables belong to the same schema

        with self._begin() as conn:
            metadata.create_all(conn, checkfirst=True)  # creates only the tables that are missing
            version = conn.execute(sa.select(schema_table.c.version)).scalar()
            if version is None:
                conn.execute(schema_table.insert().values(version=SCHEMA_VERSION))
                version = SCHEMA_VERSION
            if version < 3:  # versions 2 and 3 only added tables, which create_all has just made
                conn.execute(schema_table.update().values(version=3))
                version = 3
            if version > SCHEMA_VERSION:
                raise StorageError("schema_newer", f"database has schema {version}, this app knows {SCHEMA_VERSION}")
        self._migrated = True
        return version

    def _begin(self):
        return _Guarded(self.engine.begin)

    def _tx(self):
        if not self._migrated:
            self.migrate()
        return self._begin()

    # Learners ----------------------------------------------------------------------------------

    def new_learner(self) -> str:
        """Make and register a fresh anonymous code (three words and a number)."""
        for _ in range(20):
            words = [secrets.choice(CODE_WORDS) for _ in range(3)]
            code = f"{'-'.join(words)}-{secrets.randbelow(9000) + 1000}"
            now = time.time()
            try:
                with self._tx() as conn:
                    conn.execute(learners.insert().values(code=code, created_at=now, seen_at=now))
                return code
            except StorageError as exc:
                if not isinstance(exc.__cause__, IntegrityError):
                    raise
        raise StorageError("unavailable", "could not find a free learner code")

    def account_learner(self, identity: str) -> str:
        """The learner code of a signed-in person, made on their first login. Two replicas
        logging the same person in at once agree: the second insert fails and reads the first."""
        with self._tx() as conn:
            row = conn.execute(sa.select(accounts.c.learner).where(accounts.c.identity == identity)).first()
        if row is not None:
            return row.learner
        code = self.new_learner()
        try:
            with self._tx() as conn:
                conn.execute(accounts.insert().values(identity=identity, learner=code, created_at=time.time()))
            return code
        except StorageError as exc:
            if not isinstance(exc.__cause__, IntegrityError):
                raise
            self.forget(code)
            with self._tx() as conn:
                return conn.execute(sa.select(accounts.c.learner).where(accounts.c.identity == identity)).scalar_one()

    def exists(self, code: str) -> bool:
        with self._tx() as conn:
            return conn.execute(sa.select(learners.c.code).where(learners.c.code == code)).first() is not None

    def load(self, code: str) -> Progress | None:
        """The learner's progress, or None when the code is unknown (never made, or forgotten)."""
        with self._tx() as conn:
            if conn.execute(sa.select(learners.c.code).where(learners.c.code == code)).first() is None:
                return None
            conn.execute(learners.update().where(learners.c.code == code).values(seen_at=time.time()))
            progress = Progress()
            for chapter, lesson in conn.execute(
                sa.select(lessons_read.c.chapter, lessons_read.c.lesson).where(lessons_read.c.learner == code)
            ):
                progress.mark_read(chapter, lesson)
            for chapter, question, correct in conn.execute(
                sa.select(answers.c.chapter, answers.c.question, answers.c.correct).where(answers.c.learner == code)
            ):
                progress.record_answer(chapter, question, bool(correct))
            return progress

    def forget(self, code: str) -> bool:
        """Delete the learner and every row of their progress; True when there was something to delete."""
        from primer.classroom import members

        with self._tx() as conn:
            conn.execute(lessons_read.delete().where(lessons_read.c.learner == code))
            conn.execute(answers.delete().where(answers.c.learner == code))
            conn.execute(members.update().where(members.c.learner == code).values(learner=None))
            conn.execute(accounts.delete().where(accounts.c.learner == code))  # the next login starts afresh
            return conn.execute(learners.delete().where(learners.c.code == code)).rowcount > 0

    # Progress ----------------------------------------------------------------------------------

    def mark_read(self, code: str, chapter: str, lesson: str, read: bool = True) -> None:
        with self._tx() as conn:
            key = (lessons_read.c.learner == code) & (lessons_read.c.chapter == chapter)
            conn.execute(lessons_read.delete().where(key & (lessons_read.c.lesson == lesson)))
            if read:
                conn.execute(
                    lessons_read.insert().values(learner=code, chapter=chapter, lesson=lesson, read_at=time.time())
                )

    def record_answer(self, code: str, chapter: str, question: str, correct: bool) -> None:
        """The learner's latest answer to a question (a second try replaces the first)."""
        with self._tx() as conn:
            key = (answers.c.learner == code) & (answers.c.chapter == chapter) & (answers.c.question == question)
            conn.execute(answers.delete().where(key))
            conn.execute(
                answers.insert().values(
                    learner=code, chapter=chapter, question=question, correct=bool(correct), answered_at=time.time()
                )
            )

    def save(self, code: str, progress: Progress) -> None:
        """Write a whole Progress (an imported file, or what piled up while the database was down),
        in one transaction: afterwards the stored progress is exactly `progress`."""
        now = time.time()
        with self._tx() as conn:
            if conn.execute(sa.select(learners.c.code).where(learners.c.code == code)).first() is None:
                conn.execute(learners.insert().values(code=code, created_at=now, seen_at=now))
            conn.execute(lessons_read.delete().where(lessons_read.c.learner == code))
            conn.execute(answers.delete().where(answers.c.learner == code))
            rows = [
                {"learner": code, "chapter": c, "lesson": lesson, "read_at": now}
                for c, ids in progress.lessons_read.items()
                for lesson in sorted(ids)
            ]
            if rows:
                conn.execute(lessons_read.insert(), rows)
            rows = [
                {"learner": code, "chapter": c, "question": q, "correct": bool(ok), "answered_at": now}
                for c, given in progress.answers.items()
                for q, ok in sorted(given.items())
            ]
            if rows:
                conn.execute(answers.insert(), rows)

    def delete_idle(self, older_than_s: float) -> int:
        """Retention: delete learners not seen for `older_than_s` seconds (and their rows)."""
        cutoff = time.time() - older_than_s
        with self._tx() as conn:
            idle = [r.code for r in conn.execute(sa.select(learners.c.code).where(learners.c.seen_at < cutoff))]
            for chunk in (idle[i : i + 500] for i in range(0, len(idle), 500)):
                conn.execute(lessons_read.delete().where(lessons_read.c.learner.in_(chunk)))
                conn.execute(answers.delete().where(answers.c.learner.in_(chunk)))
                conn.execute(accounts.delete().where(accounts.c.learner.in_(chunk)))
                conn.execute(learners.delete().where(learners.c.code.in_(chunk)))
            return len(idle)

    def close(self) -> None:
        self.engine.dispose()


class _Guarded:
    """A transaction whose database errors all come out as StorageError (the page's one case)."""

    def __init__(self, begin):
        self._begin = begin
        self._context = None

    def __enter__(self):
        try:
            self._context = self._begin()
            return self._context.__enter__()
        except SQLAlchemyError as exc:
            raise _storage_error(exc) from exc

    def __exit__(self, exc_type, exc, tb):
        try:
            suppressed = self._context.__exit__(exc_type, exc, tb)
        except SQLAlchemyError as error:
            raise _storage_error(error) from error
        if isinstance(exc, SQLAlchemyError):
            raise _storage_error(exc) from exc
        return suppressed


def _storage_error(exc: SQLAlchemyError) -> StorageError:
    text = str(getattr(exc, "orig", exc)).lower()
    if "full" in text or "no space" in text or "quota" in text:
        code = "full"
    elif "locked" in text or "timeout" in text:
        code = "busy"
    else:
        code = "unavailable"
    return StorageError(code, str(exc)[:300])
