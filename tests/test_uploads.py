"""Every uploader in the app, handed every file we can think of, through the page (AppTest).

The oracle for DICOM is the core reader itself, which tests/test_dicom.py checks against pydicom:
where `read_dicom` decodes a file, the page shows its image; where it raises a coded error, the
page shows that code's translated message. Nothing may raise in the page, and memory stays
bounded (the resident high-water mark of this process while the page handles the file).
"""

from __future__ import annotations

import json
import re
from functools import cache

import pytest

from primer.dicom import DicomError, read_dicom
from tests import hostile
from tests.hostile import MARKUP, MARKUP_FOLDER, MARKUP_NAME, UPLOADERS, Driver, message_start

DICOM_UPLOADERS = [name for name, u in UPLOADERS.items() if u.kind == "dicom"]
MAX_PEAK_MB = 400  # above the page's own memory, for any single file (the worst seen is ~170 MB)


@cache
def cases(kind: str) -> tuple[hostile.Case, ...]:
    return tuple(hostile.cases_for(kind))


@cache
def reader_outcome(path: str) -> str:
    with open(path, "rb") as f:
        data = f.read()
    try:
        read_dicom(data)
    except DicomError as error:
        return error.code
    return "image"


def expected_on(expect: str) -> tuple[str, tuple[str, ...]]:
    """What a page owes a file the reader answers with `expect`: ("image", ()) or ("message", starts)."""
    if expect == "image":
        return "image", ()
    return "message", (message_start("imaging", expect),)


def check(uploader: str, name: str, outcome: hostile.Outcome, expect: str | None) -> str | None:
    """None when the page did right by the file, else what went wrong."""
    if outcome.shown == "exception":
        return f"{name}: raised {outcome.message}"
    if outcome.shown == "nothing":
        return f"{name}: neither an image nor a message ({outcome.message!r})"
    if outcome.peak_mb > MAX_PEAK_MB:
        return f"{name}: {outcome.peak_mb:.0f} MB"
    if expect is None:
        return None
    if uploader == "convolution image" and outcome.message.startswith(
        message_start("convolutions.upload", "image_too_small")
    ):
        return None  # a real image, smaller than the lab's kernels: a fair, translated answer
    shown, starts = expected_on(expect)
    if outcome.shown != shown:
        return f"{name}: expected {shown} ({expect}), page showed {outcome.shown}: {outcome.message[:120]!r}"
    if starts and not outcome.message.startswith(starts):
        return f"{name}: expected the message for {expect}, got {outcome.message[:120]!r}"
    return None


# ─────────────────────────── every shipped file, every DICOM uploader ───────────────────────────


@pytest.mark.parametrize("uploader", DICOM_UPLOADERS)
def test_every_shipped_file_gives_an_image_or_the_readers_message(uploader):
    paths = hostile.shipped_dicom_files()
    assert len(paths) > 200  # pydicom's own files and pydicom-data's: a missing package shows here
    driver = Driver(UPLOADERS[uploader])
    problems, images = [], 0
    for path in paths:
        with open(path, "rb") as f:
            outcome = driver.upload(path.rsplit("/", 1)[-1], f.read())
        images += outcome.shown == "image"
        problem = check(uploader, path.split("pydicom")[-1], outcome, reader_outcome(path))
        if problem:
            problems.append(problem)
    assert not problems, f"{len(problems)} of {len(paths)} files:\n" + "\n".join(problems)
    assert images > 100  # most shipped files are images: the oracle is not all errors


def test_big_endian_file_through_the_imaging_page_keeps_the_pixels():
    """The bug that opened this: MR_small_bigendian raised in the page. Its pixels equal the
    little-endian twin's, and the page shows it like any other file."""
    little, big = (read_dicom(hostile._shipped(n)) for n in ("MR_small.dcm", "MR_small_bigendian.dcm"))
    assert big.pixels.dtype.isnative and big.pixels.tolist() == little.pixels.tolist()
    driver = Driver(UPLOADERS["imaging viewer + DICOM-to-tensor"])
    assert driver.upload("MR_small_bigendian.dcm", hostile._shipped("MR_small_bigendian.dcm")).shown == "image"


# ──────────────────────────────── hostile files, every uploader ────────────────────────────────


@pytest.mark.parametrize("uploader", list(UPLOADERS))
def test_hostile_files_get_an_image_or_their_message(uploader):
    u = UPLOADERS[uploader]
    driver = Driver(u)
    problems = []
    for case in cases(u.kind):
        outcome = driver.upload(case.file_name, case.data)
        if u.kind == "dicom":
            problem = check(uploader, case.name, outcome, case.expect)
        else:  # own data and progress files: their own messages
            problem = check_own(u, case, outcome)
        if problem:
            problems.append(problem)
    assert not problems, "\n".join(problems)
    assert not hostile.unpickled(), "an object array in an .npz was unpickled"


def check_own(u, case: hostile.Case, outcome: hostile.Outcome) -> str | None:
    if outcome.shown in ("exception", "nothing"):
        return f"{case.name}: {outcome.shown} {outcome.message[:160]!r}"
    if outcome.peak_mb > MAX_PEAK_MB:
        return f"{case.name}: {outcome.peak_mb:.0f} MB"
    prefix = "training" if u.kind == "dataset" else "progress"
    if case.expect == "image":
        return None if outcome.shown == "image" else f"{case.name}: expected it loaded, got {outcome.message!r}"
    if outcome.shown != "message" or not outcome.message.startswith(message_start(prefix, case.expect)):
        return f"{case.name}: expected the message for {case.expect}, got {outcome.shown} {outcome.message[:120]!r}"
    return None


def test_every_shipped_dicom_file_in_one_training_zip():
    """All of pydicom's files as a class-folder zip: exactly the ones the reader decodes (within
    the own-data size limit) load, the rest are skipped and counted, and the page says so."""
    from primer import owndata

    decodable = 0
    for path in hostile.shipped_dicom_files():
        with open(path, "rb") as f:
            try:
                read_dicom(f.read(), max_bytes_decoded=owndata.MAX_DICOM_BYTES)
                decodable += 1
            except DicomError:
                pass
    driver = Driver(UPLOADERS["training own data"])
    outcome = driver.upload("shipped.zip", hostile.every_shipped_dicom_zip())
    assert outcome.shown == "image", outcome.message
    assert outcome.peak_mb < MAX_PEAK_MB
    loaded = driver.at.success[0].value
    assert loaded.startswith(f"Loaded {decodable} images in classes: class0, class1"), loaded
    report = "\n".join(t.value for t in driver.at.text)
    skipped = sum(int(n) for n in re.findall(r": (\d+)", report.split("Skipped:")[1]))
    assert decodable + skipped == len(hostile.shipped_dicom_files()), report


def test_a_loaded_progress_file_counts_only_the_apps_own_lessons():
    driver = Driver(UPLOADERS["progress file"])
    bogus = {"imaging": [f"lesson{i}" for i in range(50)] + ["hounsfield"]}
    data = json.dumps({"format": "dl-primer-progress", "version": 1, "lessons_read": bogus, "answers": {}})
    assert driver.upload("progress.json", data.encode()).shown == "image"
    table = driver.at.dataframe[0].value
    lessons = table.iloc[:, 1].tolist()  # "read / total" per chapter
    assert all(int(cell.split(" / ")[0]) <= int(cell.split(" / ")[1]) for cell in lessons), lessons
    assert sum(int(cell.split(" / ")[0]) for cell in lessons) == 1, lessons  # hounsfield only


# ─────────────────────────────────── text from files is text ───────────────────────────────────

MARKDOWN_SINKS = ("markdown", "caption", "success", "info", "warning", "error", "title", "header", "subheader")
# what a markdown or Plotly renderer would act on, if a file's text reached it unescaped
ACTIVE = ("<img", "<b>", "](javascript:", "**loud**", ":red[", ":material/warning:", "$x^2$", "**b**")


def unescape(markdown: str) -> str:
    return re.sub(r"\\(.)", r"\1", markdown)


def rendered_texts(at) -> tuple[list[str], list[str], list[str]]:
    """(markdown sources, plain text shown as text, Plotly specs) on the page."""
    markdown = [str(e.value) for kind in MARKDOWN_SINKS for e in at.get(kind)]
    for kind in ("radio", "checkbox", "toggle", "selectbox", "button", "expander", "tab", "metric"):
        markdown += [str(getattr(e, "label", "")) for e in at.get(kind)]
    plain = [str(e.value) for e in at.text]
    for frame in at.dataframe:
        plain += [str(cell) for cell in frame.value.to_numpy().ravel()]
    specs = [e.proto.spec for e in at.get("plotly_chart")]
    return markdown, plain, specs


def assert_literal(at, raw_strings: list[str], where: str) -> None:
    markdown, plain, specs = rendered_texts(at)
    for source in markdown:
        live = re.sub(r"\\.", "", source)  # an escaped character is shown as itself: drop it
        hits = [a for a in ACTIVE if a in live]
        assert not hits, f"{where}: markup reached a markdown element unescaped: {hits} in {source[:200]!r}"
    for spec in specs:
        hits = [a for a in ("<img", "<b>", "<a ") if a in spec]  # Plotly acts on tags only
        assert not hits, f"{where}: markup reached a Plotly figure: {hits}"
    shown = "\n".join(plain + [unescape(m) for m in markdown])
    for raw in raw_strings:
        assert raw in shown, f"{where}: {raw!r} is not shown as written"


@pytest.mark.parametrize("uploader", DICOM_UPLOADERS)
def test_markup_in_tags_and_file_name_is_shown_as_written(uploader):
    case = next(c for c in cases("dicom") if c.file_name == MARKUP_NAME)
    driver = Driver(UPLOADERS[uploader])
    assert driver.upload(case.file_name, case.data).shown == "image"
    shown = {"imaging viewer + DICOM-to-tensor": [MARKUP_NAME, MARKUP["link"], "<b>HU</b>"]}
    assert_literal(driver.at, shown.get(uploader, []), uploader)
    if uploader == "convolution image":
        assert any(MARKUP_NAME in t.value for t in driver.at.text)


def test_markup_in_class_folder_names_is_shown_as_written():
    case = next(c for c in cases("dataset") if c.name == "markup in class folder names")
    driver = Driver(UPLOADERS["training own data"])
    assert driver.upload(case.file_name, case.data).shown == "image"
    assert_literal(driver.at, [MARKUP_FOLDER, MARKUP["link"]], "training")
    driver.at.toggle(key="training.use_own").set_value(True).run()
    assert not driver.at.exception
    assert_literal(driver.at, [MARKUP_FOLDER], "training, own data in use")


def test_markup_in_a_progress_file_never_reaches_the_page():
    case = next(c for c in cases("progress") if c.name == "markup in ids")
    driver = Driver(UPLOADERS["progress file"])
    assert driver.upload(case.file_name, case.data).shown == "image"
    assert_literal(driver.at, [], "progress")


def test_text_escapes_are_undone_by_commonmark_and_plotly_keeps_tags_as_text():
    """The escapes we rely on, against independent renderers: markdown-it (CommonMark) for
    Streamlit's markdown, the standard library's html.unescape for Plotly's HTML-ish labels."""
    import html

    from markdown_it import MarkdownIt

    from primer.text import markdown_literal, plot_literal

    md = MarkdownIt("commonmark")
    for raw in [*MARKUP.values(), MARKUP_NAME, "a_b*c", "1. not a list", "> not a quote", "`code`"]:
        rendered = md.render(markdown_literal(raw, 500))
        assert rendered == f"<p>{html.escape(raw)}</p>\n", rendered  # (none of these holds a ')
        assert html.unescape(plot_literal(raw, 500)) == raw and "<" not in plot_literal(raw, 500)
    assert markdown_literal("x" * 300, 200).endswith("…") and len(markdown_literal("x" * 300, 200)) == 200
