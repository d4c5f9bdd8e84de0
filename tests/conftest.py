"""Shared test helpers: the repo root and AppTest runs of registered pages."""

from __future__ import annotations

import importlib
import os
import pkgutil
import tempfile
from pathlib import Path

import pytest

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


def run_page(page: str | None = None, *, query: dict | None = None, timeout: float = 120, state: dict | None = None):
    """Run the app in AppTest, optionally on a page ("views/x.py"); returns the AppTest."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(MAIN), default_timeout=timeout)
    for key, value in (query or {}).items():
        at.query_params[key] = value
    for key, value in (state or {}).items():
        at.session_state[key] = value
    at.run()
    if page is not None:
        at.switch_page(page).run()
    return at


def assert_no_exception(at) -> None:
    assert not at.exception, "\n".join(str(e.value) for e in at.exception)


@pytest.fixture
def apptest():
    return run_page
