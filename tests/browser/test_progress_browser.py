"""Progress that survives closing the tab: a lesson marked read in one browser is still read
after the server restarts, in a new browser that only has the address."""

from __future__ import annotations

import re
import subprocess

import pytest

from tests.browser.conftest import SHOTS, assert_no_exception, start_app, wait_idle

pytestmark = pytest.mark.browser


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


def test_progress_survives_a_server_restart_and_a_new_browser(new_page, tmp_path):
    SHOTS.mkdir(parents=True, exist_ok=True)
    env = {"PRIMER_DATABASE_URL": f"sqlite:///{tmp_path / 'primer.db'}"}
    proc, url = start_app(env=env)
    try:
        page = new_page()
        page.goto(f"{url}/training")
        wait_idle(page)
        page.get_by_text("I have read this lesson").first.click()
        wait_idle(page)
        assert_no_exception(page)
        sidebar = page.locator('[data-testid="stSidebar"]').inner_text()
        code = re.search(r"learner code ([a-z]+-[a-z]+-[a-z]+-\d{4})", sidebar).group(1)
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
