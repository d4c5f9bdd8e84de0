"""A live class end to end in Chromium: one instructor and three students, each in their own
browser context: join, poll, live chart, reveal, follow me, overview, delete."""

from __future__ import annotations

import re

import pytest

from tests.browser.conftest import SHOTS, assert_no_exception, wait_idle

pytestmark = pytest.mark.browser


def test_a_class_runs_end_to_end(app_url, new_page):
    teacher = new_page()
    teacher.goto(f"{app_url}/class")
    wait_idle(teacher)
    teacher.get_by_role("tab", name="Teach a class").click()
    teacher.get_by_label("Class title").fill("Workshop")
    teacher.get_by_role("button", name="Create a class").click()
    wait_idle(teacher)
    assert_no_exception(teacher)
    main = teacher.locator('[data-testid="stMain"]')
    join_code = re.search(r"Class code\s*\n\s*([A-Z2-9]{6})", main.inner_text()).group(1)

    students = []
    for name in ("Ana", "Ben", "<b>Chen</b>"):
        s = new_page(1200, 900)
        s.goto(f"{app_url}/class")
        wait_idle(s)
        s.get_by_label("Class code").first.fill(join_code)
        s.get_by_label("Nickname (optional)").fill(name)
        s.get_by_role("button", name="Join", exact=True).click()
        wait_idle(s)
        assert "You are in the class as" in s.locator('[data-testid="stMain"]').inner_text()
        students.append(s)
    # markup in a nickname is text: no bold element was made from it
    assert students[2].locator('[data-testid="stMain"] b').count() == 0

    teacher.get_by_role("tab", name="Teach a class").click()
    teacher.get_by_role("button", name="Start the poll").click()
    wait_idle(teacher)
    for i, s in enumerate(students):
        sidebar = s.locator('[data-testid="stSidebar"]')
        sidebar.get_by_text("Poll:").wait_for(timeout=20_000)
        sidebar.locator('[data-testid="stRadio"] [role="radiogroup"] label').nth(i % 2).click()
        sidebar.get_by_role("button", name="Send my answer").click()
        try:
            sidebar.get_by_text("Sent:").wait_for(timeout=20_000)
        except Exception:
            s.screenshot(path=str(SHOTS / "class-student-failed.png"), full_page=True)
            raise
    teacher.get_by_text("Answers so far: 3").wait_for(timeout=10_000)
    teacher.screenshot(path=str(SHOTS / "class-instructor-poll.png"), full_page=True)
    teacher.get_by_role("button", name="Reveal the answer to everyone").click()
    students[0].locator('[data-testid="stSidebar"]').get_by_text("Answer:").wait_for(timeout=20_000)
    students[0].screenshot(path=str(SHOTS / "class-student-poll.png"), full_page=True)

    teacher.get_by_label("Lab link").fill(f"{app_url}/training?train.num_epochs=3")
    teacher.get_by_label("Lab link").press("Enter")
    wait_idle(teacher)
    teacher.get_by_role("button", name="Open on every screen").click()
    teacher.get_by_text("Sent to the class.").wait_for()
    for s in students:
        s.wait_for_url(re.compile(r"/training\?.*train\.num_epochs=3"), timeout=20_000)
    wait_idle(students[1])
    assert_no_exception(students[1])

    main = teacher.locator('[data-testid="stMain"]')
    assert "students with saved progress" in main.inner_text()
    teacher.get_by_role("button", name="Delete the class and all its data").click()
    wait_idle(teacher)
    teacher.get_by_role("tab", name="Teach a class").click()
    teacher.get_by_role("button", name="Create a class").wait_for()
