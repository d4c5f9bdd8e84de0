"""Shared test helpers: the repo root and AppTest runs of registered pages."""

from __future__ import annotations

import importlib
import os
import pkgutil
import tempfile
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
# Progress saved by the app during the tests goes to a throw-away database, never to ./data; the
# browser tests' servers inherit it. A test that needs its own database sets PRIMER_DATABASE_URL.
os.environ.setdefault("PRIMER_DATA_DIR", tempfile.mkdtemp(prefix="primer-test-data-"))
MAIN = ROOT / "app" / "main.py"


def import_all_core_modules() -> list[str]:
    """Import every module of the core package (registers every lab state class)."""
    import primer

    names = [m.name for m in pkgutil.walk_packages(primer.__path__, "primer.")]
    for name in names:
        importlib.import_module(name)
    return names


def run_page(
    page: str | None = None,
    *,
    query: dict | None = None,
    timeout: float = 120,
    state: dict | None = None,
    user: dict | None = None,
    secrets: dict | None = None,
):
    """Run the app in AppTest, optionally on a page ("views/x.py"); returns the AppTest. `user`
    is what st.user reports (a login), `secrets` what st.secrets holds (e.g. an [auth] section)."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(MAIN), default_timeout=timeout)
    if user is not None:
        at.user = user
    for key, value in (secrets or {}).items():
        at.secrets[key] = value
    for key, value in (query or {}).items():
        at.query_params[key] = value
    for key, value in (state or {}).items():
        at.session_state[key] = value
    at.run()
    if page is not None:
        at.switch_page(page).run()
    return at


def wait_until_done(job, timeout: float = 240) -> None:
    """Wait for a queued training job (polling, as the page does) and check that it finished well."""
    deadline = time.monotonic() + timeout
    while not job.finished and time.monotonic() < deadline:
        time.sleep(0.2)
    assert job.state == "done", job.error


def assert_no_exception(at) -> None:
    assert not at.exception, "\n".join(str(e.value) for e in at.exception)


@pytest.fixture
def apptest():
    return run_page


# Databases for the storage and classroom tests: SQLite always, PostgreSQL when .ci/run (or you)
# started one (bin/postgres-for-tests). Nothing is mocked.
BACKENDS = ["sqlite"] + (["postgresql"] if os.environ.get("PRIMER_TEST_POSTGRES_URL") else [])
TABLES = ("poll_answers", "polls", "key_failures", "members", "classes", "accounts", "answers", "lessons_read")
TABLES += ("learners",)
TABLES += ("primer_schema",)


@pytest.fixture(params=BACKENDS)
def db_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'primer.db'}"
        return
    base = os.environ["PRIMER_TEST_POSTGRES_URL"]
    engine = sa.create_engine(base)
    with engine.begin() as conn:  # a clean schema per test: drop what an earlier test left
        for table in TABLES:
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {table} CASCADE"))
    engine.dispose()
    yield base


def count(url: str, table: str, code: str | None = None, column: str | None = None) -> int:
    """Rows in `table` (optionally where `column` = code), read with plain SQL."""
    engine = sa.create_engine(url)
    column = column or ("code" if table == "learners" else "learner")
    query = f"SELECT COUNT(*) FROM {table}" + (f" WHERE {column} = :code" if code is not None else "")
    with engine.connect() as conn:
        n = conn.execute(sa.text(query), {"code": code}).scalar()
    engine.dispose()
    return int(n)


@pytest.fixture
def app_db(tmp_path, monkeypatch):
    """A fresh SQLite database for the app under test (the app caches its store per process)."""
    from app import ui

    db_url = f"sqlite:///{tmp_path / 'app.db'}"
    monkeypatch.setenv("PRIMER_DATABASE_URL", db_url)
    ui._store.clear()
    yield db_url
    ui._store.clear()
