"""The app as a user meets it: a real server and headless Chromium."""

import difflib
import re

import pytest

from primer import content, labstate, quiz
from tests.browser.conftest import SHOTS, assert_no_exception, choose_option, main_text, wait_idle
from tests.conftest import import_all_core_modules

pytestmark = pytest.mark.browser

CJK = re.compile(r"[\u4e00-\u9fff]")
PAGES = (
    ["home"] + [c.id for c in content.chapters()] + (["glossary"] if content.glossary() else []) + ["class", "progress"]
)


def test_every_page_renders_without_an_exception(app_url, new_page):
    page = new_page()
    for path in PAGES:
        page.goto(f"{app_url}/{path}")
        wait_idle(page)
        assert_no_exception(page)
        assert page.locator("h1").first.inner_text().strip()
        page.screenshot(path=str(SHOTS / f"{path}.png"), full_page=True)


def test_language_switch_reaches_every_page(app_url, new_page):
    page = new_page()
    page.goto(app_url)
    wait_idle(page)
    assert not CJK.search(page.locator("h1").first.inner_text())
    page.locator('[data-testid="stSidebar"]').get_by_text("中文", exact=True).click()
    wait_idle(page)
    assert page.locator("h1").first.inner_text() == "放射科医生的深度学习：交互式学习伴侣"
    assert "lang=" in page.url
    # Walk the sidebar navigation like a user: the language must stay Chinese everywhere.
    links = page.locator('[data-testid="stSidebarNav"] a')
    assert links.count() == len(PAGES)
    for i in range(links.count()):
        links.nth(i).click()
        wait_idle(page)
        assert_no_exception(page)
        heading = page.locator("h1").first.inner_text()
        assert CJK.search(heading), f"page {i} heading is not Chinese: {heading!r}"
        assert len(CJK.findall(main_text(page))) > 20
    page.screenshot(path=str(SHOTS / "language-zh.png"), full_page=True)


def labs_with_presets():
    import_all_core_modules()
    found = []
    for chapter in content.chapters():
        for lab_id, presets in labstate.load_presets(chapter.id).items():
            found.append((chapter.id, lab_id, presets[-1]))
    return found


@pytest.mark.parametrize("chapter_id, lab_id, preset", labs_with_presets(), ids=lambda v: getattr(v, "id", v))
def test_shared_link_reopens_the_identical_setup(app_url, new_page, chapter_id, lab_id, preset):
    """Apply a preset, copy the address, open it in a fresh browser: same controls, same numbers."""
    page = new_page()
    page.goto(f"{app_url}/{chapter_id}")
    wait_idle(page)
    choose_option(page, page.locator(f".st-key-presetpick-{lab_id.replace('.', '-')}"), preset.title["en"])
    page.locator(f".st-key-presetapply-{lab_id.replace('.', '-')} button").click()
    wait_idle(page)
    assert_no_exception(page)
    shared_url, original = page.url, main_text(page, experiment_only=True)
    assert "?" in shared_url, "applying a preset must put the setup in the URL"

    fresh = new_page()
    fresh.goto(shared_url)
    wait_idle(fresh)
    assert_no_exception(fresh)
    reopened = main_text(fresh, experiment_only=True)
    changed = [
        line
        for line in difflib.unified_diff(original.splitlines(), reopened.splitlines(), "applied", "reopened", n=1)
        if not line.startswith(("---", "+++"))
    ]
    assert not changed, "the reopened link differs:\n" + "\n".join(changed[:40])


def test_quiz_answered_in_the_browser(app_url, new_page):
    chapter = next((c for c in content.chapters() if quiz.load_quiz(c.id)), None)
    if chapter is None:
        pytest.skip("no chapter with a quiz yet")
    question = next(q for q in quiz.load_quiz(chapter.id) if q.kind == "single")
    page = new_page()
    page.goto(f"{app_url}/{chapter.id}")
    wait_idle(page)
    block = page.locator(f".st-key-quiz-{question.key.replace('.', '-')}")
    block.get_by_text(question.options[question.answer]["en"], exact=True).click()
    page.locator(f".st-key-quiz-{question.key.replace('.', '-')}-check button").click()
    wait_idle(page)
    body = main_text(page)
    assert "Right." in body
    assert question.explanation["en"].split(".")[0] in body


def test_a_fresh_server_opens_a_deep_link_first(new_page):
    """The first visitor of a new server may arrive through a shared link to a chapter; the app
    must route it through the entry point (not Streamlit's legacy pages/ mode)."""
    from tests.browser.conftest import start_app

    chapter = content.chapters()[0]
    proc, url = start_app()
    try:
        page = new_page()
        page.goto(f"{url}/{chapter.id}?lang=%E4%B8%AD%E6%96%87")
        wait_idle(page)
        assert_no_exception(page)
        assert page.locator("h1").first.inner_text() == chapter.title["zh"]
        assert page.locator('[data-testid="stSidebarNav"] a').count() == len(PAGES)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_every_control_of_the_future_chapter_moves(app_url, new_page):
    """Move every slider one step and click every segmented option of the future-directions page:
    each one reruns its lab without an exception and lands in the address."""
    page = new_page()
    page.goto(f"{app_url}/future")
    wait_idle(page)
    sliders = page.locator('[data-testid="stSlider"] input[type="range"]')
    count = sliders.count()
    assert count >= 25
    moved = 0
    for i in range(count):
        slider = page.locator('[data-testid="stSlider"] input[type="range"]').nth(i)
        slider.scroll_into_view_if_needed()
        before = slider.input_value()
        slider.focus()
        page.keyboard.press("ArrowRight")
        wait_idle(page, quiet_s=0.8)
        assert_no_exception(page)
        moved += page.locator('[data-testid="stSlider"] input[type="range"]').nth(i).input_value() != before
    assert moved >= count - 3  # a few start at their last option
    buttons = page.locator('[data-testid="stMain"] [data-testid="stButtonGroup"] button')
    for i in range(buttons.count()):
        page.locator('[data-testid="stMain"] [data-testid="stButtonGroup"] button').nth(i).click()
        wait_idle(page, quiet_s=0.8)
        assert_no_exception(page)
    for field in ("selfsup.pool_size", "uncertainty.refer_percent", "vit.steps", "subgroups.rule"):
        assert field in page.url


def test_a_selectbox_shows_its_choice_in_the_new_language_after_a_switch(app_url, new_page):
    """Streamlit keeps a selectbox's shown option in the old language (streamlit#13788); the lab
    binding writes the value again after a switch so that it redraws."""
    from primer import i18n

    page = new_page()
    page.goto(f"{app_url}/training")
    wait_idle(page)
    shown = page.locator(".st-key-train-task input").first
    assert shown.input_value() == i18n.translate("training.task.presence", "en")
    page.locator('[data-testid="stSidebar"]').get_by_text("中文", exact=True).click()
    wait_idle(page)
    assert page.locator(".st-key-train-task input").first.input_value() == i18n.translate(
        "training.task.presence", "zh"
    )


def test_the_vit_sweep_streams_its_progress_and_ends_with_the_maps(app_url, new_page):
    """Press Train on a small ViT sweep: the progress line names the run and epoch while it
    trains, the live validation curve shows, and the maps and pointing game follow the last run."""
    page = new_page()
    page.goto(f"{app_url}/future?vit.largest=200&vit.steps=40")
    wait_idle(page)
    page.locator(".st-key-future-vit-train button").click()
    progress = page.get_by_text(re.compile(r"Training the (CNN|Vision transformer).* on \d+ images: epoch \d+ of \d+"))
    progress.first.wait_for(timeout=60_000)
    page.locator(".st-key-future-vit-live").first.wait_for(timeout=30_000)
    page.screenshot(path=str(SHOTS / "future-vit-running.png"), full_page=True)
    page.get_by_text(re.compile(r"All runs finished in")).first.wait_for(timeout=180_000)
    wait_idle(page)
    assert_no_exception(page)
    assert "Pointing game over the" in main_text(page)
    page.screenshot(path=str(SHOTS / "future-vit-done.png"), full_page=True)
