"""Progress that survives closing the tab: a lesson marked read in one browser is still read
after the server restarts, in a new browser that only has the address."""

from __future__ import annotations

import re
import subprocess
import time

import pytest

from tests.browser.conftest import SHOTS, assert_no_exception, start_app, wait_idle

pytestmark = pytest.mark.browser


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


def read_a_lesson(page, url: str) -> str:
    """Mark the first training lesson read; the learner code the sidebar then shows."""
    page.goto(f"{url}/training")
    wait_idle(page)
    page.get_by_text("I have read this lesson").first.click()
    wait_idle(page)
    assert_no_exception(page)
    sidebar = page.locator('[data-testid="stSidebar"]').inner_text()
    return re.search(r"learner code ([a-z]+-[a-z]+-[a-z]+-\d{4})", sidebar).group(1)


def test_progress_survives_a_server_restart_and_a_new_browser(new_page, tmp_path):
    SHOTS.mkdir(parents=True, exist_ok=True)
    env = {"PRIMER_DATABASE_URL": f"sqlite:///{tmp_path / 'primer.db'}"}
    proc, url = start_app(env=env)
    try:
        page = new_page()
        code = read_a_lesson(page, url)
        assert f"learner={code}" in page.url
    finally:
        stop(proc)

    proc, url = start_app(env=env)  # a new server process: nothing of the old session is left
    try:
        fresh = new_page()  # a new browser context: no cookies, no session
        fresh.goto(f"{url}/progress?learner={code}")
        wait_idle(fresh)
        assert_no_exception(fresh)
        assert code in fresh.locator('[data-testid="stMain"]').inner_text()
        fresh.screenshot(path=str(SHOTS / "progress-restored.png"), full_page=True)
        fresh.goto(f"{url}/home?learner={code}")
        wait_idle(fresh)
        # The home page's chapter cards: training has the one lesson ticked before the restart.
        cards = fresh.locator('[data-testid="stMain"]').inner_text()
        assert len(re.findall(r"Lessons read: 1/\d+", cards)) == 1, cards
    finally:
        stop(proc)


def test_the_browser_keeps_the_code_in_a_cookie_until_forget_me(new_page, tmp_path):
    """Where the browser allows cookies, the same browser comes back to its progress without the
    code in the address; another browser does not; "Forget me" deletes the cookie too."""
    proc, url = start_app(env={"PRIMER_DATABASE_URL": f"sqlite:///{tmp_path / 'primer.db'}"})
    try:
        page = new_page()
        code = read_a_lesson(page, url)
        cookies = {c["name"]: c for c in page.context.cookies()}
        assert cookies["primer_learner"]["value"] == code
        assert cookies["primer_learner"]["expires"] > time.time() + 170 * 86400

        again = page.context.new_page()  # the same browser, a new tab, an address without the code
        again.goto(f"{url}/home")
        wait_idle(again)
        assert_no_exception(again)
        assert code in again.locator('[data-testid="stSidebar"]').inner_text()
        assert len(re.findall(r"Lessons read: 1/\d+", again.locator('[data-testid="stMain"]').inner_text())) == 1

        other = new_page()  # another browser: no cookie, no code
        other.goto(f"{url}/home")
        wait_idle(other)
        assert code not in other.locator('[data-testid="stSidebar"]').inner_text()

        again.goto(f"{url}/progress")
        wait_idle(again)
        again.get_by_role("button", name=re.compile("Forget me")).click()
        wait_idle(again)
        assert_no_exception(again)
        assert "primer_learner" not in {c["name"] for c in again.context.cookies() if c["value"]}
        last = again.context.new_page()
        last.goto(f"{url}/home")
        wait_idle(last)
        assert code not in last.locator('[data-testid="stSidebar"]').inner_text()
    finally:
        stop(proc)
