"""The imaging page in AppTest: every control moved, bundled examples and uploads.

What changes is checked against independent facts: the window edges by the DICOM formula, the
share of clipped pixels counted by hand with numpy, the tensor shape from the chosen size, the
de-identified download read back with pydicom, and the translated error for each bad upload.
"""

from __future__ import annotations

import io
import re

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from primer import i18n
from primer.dicom import load_example
from tests.conftest import assert_no_exception, run_page

PAGE = "views/imaging.py"
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _open(**query):
    at = run_page(PAGE, query=query)
    assert_no_exception(at)
    return at


def _captions(at) -> str:
    return "\n".join(c.value for c in at.caption)


def _charts(at) -> dict:
    """Plotly figures on the page by key, as the JSON Streamlit sends."""
    import json

    return {c.proto.id: json.loads(c.proto.spec) for c in at.get("plotly_chart")}


def _coverage(values: np.ndarray, center: float, width: float) -> tuple[float, float]:
    """Shares shown flat black and flat white, counted by hand (PS3.3 C.11.2.1.2.1: the ramp is
    0 up to its lower edge and reaches 1 at its upper edge)."""
    low, high = center - 0.5 - (width - 1) / 2, center - 0.5 + (width - 1) / 2
    return float(np.mean(values <= low)), float(np.mean(values >= high))


def _click(at, label: str):
    next(b for b in at.button if b.label == label).click().run()
    assert_no_exception(at)
    return at


def test_bundled_ct_opens_with_window_histogram_metadata_and_tensor():
    at = _open()
    assert at.title[0].value == "Imaging data and DICOM"
    hu = load_example("ct_small").pixels[0]
    black, white = _coverage(hu, 40, 400)
    text = _captions(at)
    assert f"{100 * black:.0f}% of the pixels are shown flat black" in text
    assert f"{100 * white:.0f}% are flat white" in text
    assert "−160 to 239 HU" in text  # c − 0.5 ∓ (w − 1)/2 for 40/400
    assert len(at.get("plotly_chart")) >= 3  # image, histogram, preprocessing steps (+ quiz figures)
    assert any(d.value is not None for d in at.dataframe)  # properties and metadata tables
    assert any(b.label == "Download a de-identified copy" for b in at.get("download_button"))
    assert any("1 × 1 × 64 × 64" in s.value for s in at.success)  # the tensor a CNN receives


def test_window_buttons_sliders_and_boxes_move_the_window():
    at = _open()
    _click(at, "Lung")
    assert (at.number_input(key="viewer.center").value, at.number_input(key="viewer.width").value) == (-600, 1500)
    assert at.slider(key="viewer.center.slider").value == -600  # the slider mirrors the box
    hu = load_example("ct_small").pixels[0]
    black, _ = _coverage(hu, -600, 1500)
    assert f"{100 * black:.0f}% of the pixels are shown flat black" in _captions(at)

    at.slider(key="viewer.width.slider").set_value(80.0).run()  # dragging writes the bound box
    assert_no_exception(at)
    assert at.number_input(key="viewer.width").value == 80
    assert at.session_state["viewer.width"] == 80

    at.number_input(key="viewer.center").set_value(300.0).run()  # typing moves the slider
    assert at.slider(key="viewer.center.slider").value == 300
    assert "260 to 339 HU" in _captions(at)  # 300 − 0.5 ∓ 79/2

    histogram_before = [f for f in _charts(at).values() if f["layout"].get("yaxis2")][0]
    assert histogram_before["layout"]["yaxis"]["type"] == "log"
    at.toggle(key="viewer.log_counts").set_value(False).run()
    histogram_after = [f for f in _charts(at).values() if f["layout"].get("yaxis2")][0]
    assert histogram_after["layout"]["yaxis"]["type"] == "linear"


def test_picking_an_example_opens_it_with_its_window_and_frames():
    at = _open()
    at.selectbox(key="viewer.source").set_value("ct_head_j2k").run()
    assert_no_exception(at)
    assert (at.session_state["viewer.center"], at.session_state["viewer.width"]) == (40, 80)  # its brain preset
    at.selectbox(key="viewer.source").set_value("mr_multiframe").run()
    assert_no_exception(at)
    img = load_example("mr_multiframe")
    assert at.slider(key="viewer.frame.slider").max == img.n_frames == 10
    at.slider(key="viewer.frame.slider").set_value(7).run()
    assert at.session_state["viewer.frame"] == 7
    center, width = at.session_state["viewer.center"], at.session_state["viewer.width"]
    black, white = _coverage(img.pixels[6], center, width)  # frame 7 is index 6
    assert f"{100 * black:.0f}% of the pixels are shown flat black" in _captions(at)
    assert any(b.label == "Lung" and b.disabled for b in at.button)  # HU presets do not apply to MR


def test_monochrome1_and_colour_images():
    at = _open()
    at.selectbox(key="viewer.source").set_value("cr_chest").run()
    assert_no_exception(at)
    assert "shown flat white" in _captions(at).split("In this frame")[1]  # low values are white
    assert "MONOCHROME1 is inverted for display" in _captions(at)
    assert any("Windowed and inverted" in t for f in _charts(at).values() for t in _titles(f))

    at.selectbox(key="viewer.source").set_value("us_rgb").run()
    assert_no_exception(at)
    assert not [s for s in at.slider if s.key == "viewer.center.slider"]  # colour: no window
    assert any("burned" in w.value or "printed into the pixels" in w.value for w in at.warning)


def _titles(figure: dict) -> list[str]:
    return [a.get("text", "") for a in figure["layout"].get("annotations", [])]


def test_presets_apply_their_values():
    at = _open()
    at.selectbox(key="presetpick.viewer").set_value("multiframe_mr").run()
    at.button(key="presetapply.viewer").click().run()
    assert_no_exception(at)
    state = at.session_state
    assert (state["viewer.source"], state["viewer.center"], state["viewer.width"], state["viewer.frame"]) == (
        "mr_multiframe",
        177,
        341,
        6,
    )
    assert at.slider(key="viewer.frame.slider").value == 6


def test_tensor_lab_controls():
    at = _open()
    at.select_slider(key="tensor.size").set_value(128).run()
    assert any("1 × 1 × 128 × 128" in s.value for s in at.success)
    at.selectbox(key="tensor.normalize").set_value("none").run()
    assert "0 … 1 · torch.float32 · 1 × 1 × 128 × 128" in _captions(at)  # no normalisation: still 0–1
    assert not at.subheader or "What the model learned" not in " ".join(h.value for h in at.subheader)
    at.selectbox(key="tensor.train_window").set_value("lung").run()
    assert_no_exception(at)
    assert any("What the model learned from" in h.value for h in at.subheader)
    changed = next(m for m in at.metric if "Mean change" in m.label)
    assert float(changed.value.rstrip("%")) > 5  # mediastinal vs lung window: a large change


# ───────────────────────────────────────── uploads ─────────────────────────────────────────


def _upload(at, name: str, data: bytes):
    at.selectbox(key="viewer.source").set_value("upload").run()
    assert_no_exception(at)
    assert any("Upload a DICOM file" in i.value for i in at.info)  # before any file
    at.file_uploader(key="viewer.upload").set_value((name, data, "application/octet-stream")).run()
    assert_no_exception(at)
    return at


def _file_bytes(name: str) -> bytes:
    with open(get_testdata_file(name, download=False), "rb") as f:
        return f.read()


def _error_text(code: str, **values) -> str:
    return i18n.translate(f"imaging.error.{code}", "en", **values)


def test_uploading_a_good_dicom_shows_it_masks_it_and_offers_a_clean_copy():
    path = get_testdata_file("MR_small.dcm", download=False)
    data = _file_bytes("MR_small.dcm")
    at = _upload(_open(), "scan-without-extension", data)
    held = at.session_state["dicom_viewer.uploads"]["viewer.upload"]
    (upload,) = held.values()
    assert upload.data == data and upload.file_id in held  # bytes kept in the session, by file_id
    img = upload.loaded.image
    assert img.modality == "MR" and img.rows == 64
    # the window the file suggests is applied to a new upload
    assert (at.session_state["viewer.center"], at.session_state["viewer.width"]) == img.file_windows[0][:2]
    original = pydicom.dcmread(path)
    rows = upload.loaded.extras.rows
    assert next(r for r in rows if r.keyword == "PatientName").value == "***"
    copy = pydicom.dcmread(io.BytesIO(upload.loaded.extras.deidentified))
    assert copy.PatientName != original.PatientName and copy.PatientIdentityRemoved == "YES"
    np.testing.assert_array_equal(copy.pixel_array, original.pixel_array)
    assert not at.error


def test_uploading_a_file_that_is_not_dicom_explains_why_and_the_page_keeps_working():
    from PIL import Image

    png = io.BytesIO()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(png, "PNG")
    at = _upload(_open(), "photo.png", png.getvalue())
    assert [e.value for e in at.error] == [_error_text("not_dicom")]
    assert any(h.value == "Check your understanding" for h in at.header)
    assert any("Choose or upload an image" in i.value for i in at.info)  # tensor lab waits


def test_uploading_a_truncated_dicom_says_it_is_cut_short():
    data = _file_bytes("CT_small.dcm")
    at = _upload(_open(), "cut.dcm", data[: len(data) // 2])
    assert [e.value for e in at.error] == [_error_text("truncated")]
    # a new file replaces the old one in the session
    at.file_uploader(key="viewer.upload").set_value(("ct.dcm", data, "application/dicom")).run()
    assert not at.error and len(at.session_state["dicom_viewer.uploads"]["viewer.upload"]) == 1


def test_error_messages_fill_their_details():
    from app.widgets.dicom_viewer import error_text
    from primer.dicom import DicomError

    exc = DicomError(
        "too_large",
        {
            "rows": 60000,
            "cols": 60000,
            "frames": 2,
            "declared_bytes": 2**30,
            "needed_bytes": 3 * 2**30,
            "limit_bytes": 2**29,
        },
    )
    message = re.sub(r"\\(.)", r"\1", error_text(exc))  # Markdown escapes, as the page renders them
    assert "1,024 MB of pixel data" in message and "3,072 MB" in message and "512 MB" in message
    frame_message = error_text(DicomError("invalid_frame", {"frame": 3, "n_frames": 3}))
    assert frame_message == "Frame 4 does not exist: this file has 3 frame(s)."
    # a detail the message does not get is shown as "?", never a crash; markup is escaped
    assert "?" in error_text(DicomError("unsupported_syntax", {}))
    escaped = error_text(DicomError("unsupported_photometric", {"photometric": "<img src=x>"}))
    assert "\\<img src\\=x\\>" in escaped  # shown as written, never read as HTML
