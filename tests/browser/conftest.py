"""Real-browser fixtures: one Streamlit server per test session, driven by Debian's Chromium.

Under CI=true a missing browser is a failure, never a skip: the browser tests are the only proof
that the app works for a user.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from bench.common import CHROMIUM_ARGS, ROOT, free_port

SHOTS = ROOT / "tests" / "browser" / "screenshots"


def start_app(
    script: str = "app/main.py", port: int | None = None, env: dict | None = None
) -> tuple[subprocess.Popen, str]:
    """Start `streamlit run` on a free port and wait for its health endpoint."""
    port = port or free_port()
    log = open(SHOTS.parent / f"server-{port}.log", "w")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", script, "--server.port", str(port), "--server.headless", "true"],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with {proc.returncode}; see {log.name}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return proc, url
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise RuntimeError("streamlit did not become healthy within 90 s")


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="session")
def chromium() -> str:
    path = chromium_path()
    if path is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("Chromium not found under CI=true: .ci/run must install Debian's chromium", pytrace=False)
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    return path


@pytest.fixture(scope="session")
def app_url():
    SHOTS.mkdir(parents=True, exist_ok=True)
    proc, url = start_app()
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="session")
def browser(chromium):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def new_page(browser):
    """A fresh browser context (its own cookies and session) per call: like a new browser."""
    contexts = []

    def make(width: int = 1400, height: int = 1000):
        context = browser.new_context(viewport={"width": width, "height": height})
        context.set_default_timeout(60_000)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


def wait_idle(page, timeout_ms: int = 120_000, quiet_s: float = 1.5) -> None:
    """Wait until the app has rendered a title, no script run is in progress (no status widget,
    no stale or skeleton elements) and the main area's text has stopped changing for `quiet_s`."""
    page.wait_for_selector('[data-testid="stApp"]', timeout=timeout_ms)
    page.wait_for_selector("h1", timeout=timeout_ms)
    busy = '[data-testid="stStatusWidget"], [data-stale="true"], [data-testid="stSkeleton"]'
    deadline = time.monotonic() + timeout_ms / 1000
    last_text, quiet_since = None, None
    while time.monotonic() < deadline:
        text = (
            page.locator('[data-testid="stMain"]').inner_text()
            if page.locator('[data-testid="stMain"]').count()
            else ""
        )
        if page.locator(busy).count() or text != last_text:
            quiet_since, last_text = None, text
        elif quiet_since is None:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since > quiet_s:
            return
        page.wait_for_timeout(150)
    raise AssertionError("the app kept running past the timeout")


def choose_option(page, selectbox, option: str, attempts: int = 4) -> None:
    """Pick `option` in a Streamlit selectbox. Its list is a popover that closes when the page
    scrolls, and the click that scrolls the box into view can be that scroll: so scroll first,
    let the layout settle, open the list, and try again if it closed before the option showed."""
    item = page.get_by_role("option", name=option, exact=True)
    for _ in range(attempts):
        selectbox.scroll_into_view_if_needed()
        page.wait_for_timeout(300)
        selectbox.locator("input").click()
        try:
            item.wait_for(state="visible", timeout=5_000)
        except PlaywrightTimeoutError:
            page.keyboard.press("Escape")
            continue
        item.click()
        return
    raise AssertionError(f"the option {option!r} never showed in its list")


def assert_no_exception(page) -> None:
    errors = page.locator('[data-testid="stException"]')
    assert errors.count() == 0, errors.first.inner_text()


SESSION_ONLY = '[class*="st-key-presetpick-"], [class*="st-key-presetnote-"]'


def main_text(page, experiment_only: bool = False) -> str:
    """The main area's text with runs of blank lines folded (an element that renders empty still
    leaves a line break, which is layout, not content). `experiment_only` leaves out the preset
    pickers and the applied preset's note: they belong to the session, not to the shared setup."""
    if experiment_only:
        text = page.evaluate(
            """(selector) => {
                const hidden = [...document.querySelectorAll(selector)];
                hidden.forEach((el) => { el.dataset.display = el.style.display; el.style.display = "none"; });
                const text = document.querySelector('[data-testid="stMain"]').innerText;
                hidden.forEach((el) => { el.style.display = el.dataset.display; });
                return text;
            }""",
            SESSION_ONLY,
        )
    else:
        text = page.locator('[data-testid="stMain"]').inner_text()
    return re.sub(r"\n\s*\n+", "\n", text).strip()
