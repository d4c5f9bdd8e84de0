"""Hostile uploads in a real browser: what Streamlit's Markdown and Plotly actually render.

AppTest sees the Markdown source a page sends; only the browser shows what the user reads. A
file's markup must come out as the characters it holds: no element built from it, no script run.
"""

import pytest

from tests import hostile
from tests.browser.conftest import SHOTS, assert_no_exception, wait_idle

pytestmark = pytest.mark.browser

INJECTED = 'img[src="x"], a[href^="javascript"], [onerror]'


def upload(page, name: str, data: bytes, index: int = 0) -> None:
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').nth(index).set_input_files(
        files=[{"name": name, "mimeType": "application/octet-stream", "buffer": data}]
    )
    page.wait_for_timeout(500)
    wait_idle(page)
    assert_no_exception(page)


def assert_nothing_injected(page) -> None:
    assert page.locator(INJECTED).count() == 0, page.locator(INJECTED).first.evaluate("e => e.outerHTML")
    assert page.evaluate("window.__pwned") is None


def test_markup_in_a_dicom_file_is_shown_as_written(app_url, new_page):
    case = next(c for c in hostile.dicom_cases() if c.file_name == hostile.MARKUP_NAME)
    page = new_page()
    page.goto(f"{app_url}/imaging?viewer.source=upload")
    wait_idle(page)
    upload(page, case.file_name, case.data)
    text = page.locator('[data-testid="stMain"]').inner_text()
    # the file's RescaleType is the image's units: in the caption under the image, as written
    assert "<b>HU</b>" in text, text[:2000]
    assert_nothing_injected(page)
    page.get_by_text("<b>HU</b>", exact=False).first.scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / "upload-markup-imaging.png"))


def test_an_error_message_shows_its_details_without_escapes(app_url, new_page):
    case = next(c for c in hostile.dicom_cases() if c.name.startswith("65535"))
    page = new_page()
    page.goto(f"{app_url}/imaging?viewer.source=upload")
    wait_idle(page)
    upload(page, "huge.dcm", case.data)
    alert = page.locator('[data-testid="stAlertContentError"]').first.inner_text()
    assert "65535 × 65535" in alert and "81,917,500 MB" in alert and "\\" not in alert, alert
    page.locator('[data-testid="stAlertContentError"]').first.scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / "upload-error-imaging.png"))


def test_markup_in_class_folder_names_is_shown_as_written(app_url, new_page):
    case = next(c for c in hostile.dataset_cases() if c.name == "markup in class folder names")
    page = new_page()
    page.goto(f"{app_url}/training")
    wait_idle(page)
    page.locator('[data-testid="stExpander"] summary').filter(has_text="Train on your own images").first.click()
    upload(page, case.file_name, case.data)
    success = page.locator('[data-testid="stAlertContentSuccess"]').first.inner_text()
    assert hostile.MARKUP_FOLDER in success and hostile.MARKUP["link"] in success, success
    assert_nothing_injected(page)
    page.locator('[data-testid="stAlertContentSuccess"]').first.scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / "upload-markup-training.png"))
