"""primer.dicom / primer.deid against independent oracles.

Oracles: pixel values read straight from the file bytes with numpy, the DICOM formulas computed
by hand, pydicom's own VOI functions, pairs of files holding the same pixels under different
codecs (lossless JPEG, JPEG-LS, JPEG 2000, RLE, uncompressed), torch's interpolate, and facts
documented by pydicom's test-file README. Robustness: every file pydicom ships, cut and
bit-flipped copies, random bytes, a PNG and a header that declares an absurd image size.
"""

from __future__ import annotations

import io
import os
import tracemalloc
import zlib

import numpy as np
import pydicom
import pytest
import torch
import torch.nn.functional as F
from pydicom.data import get_testdata_file, get_testdata_files
from pydicom.dataset import Dataset
from pydicom.pixels.processing import apply_modality_lut, apply_windowing
from pydicom.uid import UID_dictionary

from primer import dicom
from primer.deid import BASIC_PROFILE_ACTIONS, is_identifying
from primer.dicom import (
    ERROR_CODES,
    EXAMPLES,
    WINDOW_PRESETS,
    DicomError,
    apply_window,
    auto_window,
    deidentify,
    dicom_to_tensor_steps,
    display_image,
    load_example,
    metadata_rows,
    read_dicom,
)
from tests import hostile

# pydicom warns about the odd files it ships on purpose; those warnings are not our subject.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

# Files larger than this are only checked to parse (refused as too_large under a tiny limit)
# rather than fully decoded: the multi-frame colour JPEG alone takes seconds to decode.
FULL_DECODE_MAX_FILE_BYTES = 5_000_000


def _path(name: str) -> str:
    path = get_testdata_file(name, download=False)
    if path is None:
        pytest.skip(f"{name} is not installed")
    return path


def _bytes(name: str) -> bytes:
    with open(_path(name), "rb") as f:
        return f.read()


def _check_image(img: dicom.DicomImage) -> None:
    """The image has the shape and type its header declares, and only finite values."""
    if img.is_color:
        assert img.pixels.shape == (img.n_frames, img.rows, img.cols, 3)
        assert img.pixels.dtype == np.uint8
    else:
        assert img.pixels.shape == (img.n_frames, img.rows, img.cols)
        assert img.pixels.dtype == np.float32
        assert np.isfinite(img.pixels).all()
    assert img.value_range == (float(img.pixels.min()), float(img.pixels.max()))


def _outcome(source, **kwargs) -> str:
    """'ok' or the DicomError code; any other exception fails the test."""
    try:
        img = read_dicom(source, **kwargs)
    except DicomError as exc:
        assert exc.code in ERROR_CODES
        return exc.code
    _check_image(img)
    return "ok"


# ─────────────────────────────────────── robustness ───────────────────────────────────────


def test_every_shipped_test_file_gives_an_image_or_a_known_error():
    outcomes: dict[str, str] = {}
    for path in get_testdata_files():
        big = os.path.isfile(path) and os.path.getsize(path) > FULL_DECODE_MAX_FILE_BYTES
        outcomes[os.path.relpath(path, os.path.dirname(os.path.dirname(path)))] = (
            _outcome(path, max_bytes_decoded=1_000_000) if big else _outcome(path)
        )
    assert len(outcomes) > 200
    by_name = {os.path.basename(k): v for k, v in outcomes.items()}
    # Facts about these files, from pydicom's test_files/README.txt and the files' SOP classes
    assert by_name["CT_small.dcm"] == "ok"
    assert by_name["MR_truncated.dcm"] == "truncated"
    assert by_name["rtplan.dcm"] == "no_pixel_data"
    assert by_name["reportsi.dcm"] == "no_pixel_data"
    assert by_name["DICOMDIR-implicit"] == "no_pixel_data"
    assert by_name["README.txt"] == "not_dicom"
    assert by_name["JPEG2000-embedded-sequence-delimiter.dcm"] == "decode_failed"  # damaged on purpose
    assert by_name["zipMR.gz"] == "not_dicom"
    assert outcomes["test_files/dicomdirtests"] == "unreadable"  # a folder
    big_files = [k for k, v in outcomes.items() if v == "too_large"]
    assert big_files and all("RG1_UNC" in k or "RG3_UNC" in k or "color3d" in k for k in big_files)


@pytest.mark.parametrize(
    "name",
    [
        "CT_small.dcm",
        "MR_small_RLE.dcm",
        "emri_small_jpeg_2k_lossless.dcm",
        "emri_small_jpeg_ls_lossless.dcm",
        "OBXXXX1A_rle.dcm",
        "SC_rgb_jpeg_dcmtk.dcm",
    ],
)
def test_cut_and_bit_flipped_copies_never_escape(name):
    data = _bytes(name)
    rng = np.random.default_rng(sum(map(ord, name)))
    outcomes = []
    for fraction in np.linspace(0.0, 0.995, 12):
        outcomes.append(_outcome(data[: int(len(data) * fraction)]))
    for _ in range(25):
        corrupted = bytearray(data)
        for _ in range(int(rng.choice([1, 3, 10]))):
            # half the flips hit the header, where the structure lives
            limit = len(corrupted) if rng.random() < 0.5 else min(len(corrupted), 2000)
            corrupted[int(rng.integers(limit))] ^= 1 << int(rng.integers(8))
        outcomes.append(_outcome(bytes(corrupted)))
    assert outcomes[0] == "not_dicom"  # zero bytes
    assert "truncated" in outcomes[1:12]


def test_not_dicom_inputs():
    from PIL import Image

    png = io.BytesIO()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(png, "PNG")
    rng = np.random.default_rng(0)
    assert _outcome(b"") == "not_dicom"
    assert _outcome(png.getvalue()) == "not_dicom"
    for size in (10, 132, 5000):
        assert _outcome(rng.integers(0, 256, size, dtype=np.uint8).tobytes()) == "not_dicom"
    assert _outcome("/nonexistent/file.dcm") == "unreadable"


def _crafted(rows: int, cols: int, frames: int, **extra) -> bytes:
    ds = hostile.image_dataset(rows, cols, frames, **extra)
    ds.PixelData = np.arange(rows * cols * frames, dtype="<u2").tobytes() if rows * cols * frames < 1e6 else b"\0" * 16
    return hostile.to_bytes(ds)


def test_absurd_declared_size_is_refused_before_allocating():
    data = _crafted(60000, 60000, 1000)
    declared = 60000 * 60000 * 1000 * 2
    tracemalloc.start()
    try:
        with pytest.raises(DicomError) as info:
            read_dicom(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.value.code == "too_large"
    assert info.value.detail["declared_bytes"] == declared
    assert peak < 10 * 1024**2  # far below the 7.2 TB declared


def test_empty_and_odd_headers():
    assert _outcome(_crafted(0, 16, 1)) == "empty_image"
    assert _outcome(_crafted(4, 4, 1, PhotometricInterpretation="HSV")) == "unsupported_photometric"
    assert _outcome(_crafted(4, 4, 1, BitsStored=20)) == "corrupt"
    assert _outcome(_crafted(4, 4, 2)) == "ok"
    img = read_dicom(_crafted(4, 4, 2))
    np.testing.assert_array_equal(img.pixels.ravel(), np.arange(32))  # the bytes we wrote


def test_unsupported_transfer_syntax_names_the_syntax():
    ds = pydicom.dcmread(_path("CT_small.dcm"))
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.100"  # MPEG2: no decoder in pydicom
    ds.PixelData = pydicom.encaps.encapsulate([ds.PixelData])
    buffer = io.BytesIO()
    ds.save_as(buffer)
    with pytest.raises(DicomError) as info:
        read_dicom(buffer.getvalue())
    assert info.value.code == "unsupported_syntax"
    assert "MPEG2" in info.value.detail["transfer_syntax"]


# ─────────────────────────────────── modality units ────────────────────────────────────────


def test_ct_hounsfield_units_by_hand():
    ds = pydicom.dcmread(_path("CT_small.dcm"))
    stored = np.frombuffer(ds.PixelData, dtype="<i2").reshape(ds.Rows, ds.Columns)
    hu = stored * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    img = read_dicom(_path("CT_small.dcm"))
    np.testing.assert_array_equal(img.pixels[0], hu)
    assert img.units == "HU" and img.modality == "CT"
    assert img.pixel_spacing == (0.661468, 0.661468)


def test_modality_lut_sequence_by_hand():
    ds = pydicom.dcmread(_path("mlut_18.dcm"))
    item = ds.ModalityLUTSequence[0]
    n_entries, first_mapped, _ = item.LUTDescriptor
    lut = np.asarray(item.LUTData)
    # 12 signed bits stored in 16: keep the low 12 bits and sign-extend them (PS3.5 8.1.1)
    low_bits = np.frombuffer(ds.PixelData, dtype="<u2").reshape(ds.Rows, ds.Columns).astype(np.int64) & 0xFFF
    stored = np.where(low_bits >= 2048, low_bits - 4096, low_bits)
    expected = lut[np.clip(stored - first_mapped, 0, n_entries - 1)]
    np.testing.assert_array_equal(read_dicom(_path("mlut_18.dcm")).pixels[0], expected)


def test_enhanced_ct_rescale_from_functional_groups():
    ds = pydicom.dcmread(_path("eCT_Supplemental.dcm"))
    transform = ds.SharedFunctionalGroupsSequence[0].PixelValueTransformationSequence[0]
    stored = np.frombuffer(ds.PixelData, dtype="<u2").reshape(2, ds.Rows, ds.Columns)
    expected = stored * float(transform.RescaleSlope) + float(transform.RescaleIntercept)
    img = read_dicom(_path("eCT_Supplemental.dcm"))
    np.testing.assert_array_equal(img.pixels, expected)
    voi = ds.SharedFunctionalGroupsSequence[0].FrameVOILUTSequence[0]
    assert img.file_windows[0][:2] == (float(voi.WindowCenter), float(voi.WindowWidth))


def test_rt_dose_is_scaled_to_dose_units():
    ds = pydicom.dcmread(_path("rtdose.dcm"))
    stored = np.frombuffer(ds.PixelData, dtype="<u4").reshape(ds.NumberOfFrames, ds.Rows, ds.Columns)
    img = read_dicom(_path("rtdose.dcm"))
    np.testing.assert_allclose(img.pixels, stored * float(ds.DoseGridScaling), rtol=1e-6)
    assert img.units == ds.DoseUnits


LOSSLESS_GROUPS = [
    # the same pixels through different codecs: uncompressed, big endian, RLE, JPEG-LS, JPEG 2000
    [
        "MR_small.dcm",
        "MR_small_bigendian.dcm",
        "MR_small_implicit.dcm",
        "MR_small_RLE.dcm",
        "MR_small_jpeg_ls_lossless.dcm",
        "MR_small_jp2klossless.dcm",
    ],
    [
        "emri_small.dcm",
        "emri_small_big_endian.dcm",
        "emri_small_RLE.dcm",
        "emri_small_jpeg_ls_lossless.dcm",
        "emri_small_jpeg_2k_lossless.dcm",
    ],
    ["693_UNCR.dcm", "693_J2KR.dcm"],
    ["US1_UNCR.dcm", "US1_J2KR.dcm"],  # RGB vs JPEG 2000 reversible colour transform
    ["OBXXXX1A.dcm", "OBXXXX1A_rle.dcm", "OBXXXX1A_expb.dcm"],  # palette colour
    ["SC_rgb.dcm", "SC_rgb_rle.dcm", "SC_rgb_expb.dcm", "SC_rgb_16bit.dcm", "SC_rgb_32bit.dcm"],
]


@pytest.mark.parametrize("group", LOSSLESS_GROUPS, ids=lambda g: g[0])
def test_lossless_codecs_agree(group):
    reference = read_dicom(_path(group[0]))
    for name in group[1:]:
        np.testing.assert_array_equal(read_dicom(_path(name)).pixels, reference.pixels, err_msg=name)


def test_palette_colour_by_hand():
    ds = pydicom.dcmread(_path("OBXXXX1A.dcm"))
    index = np.frombuffer(ds.PixelData, dtype=np.uint8).reshape(ds.Rows, ds.Columns)
    channels = []
    for colour in ("Red", "Green", "Blue"):
        n_entries, first_mapped, _ = ds[f"{colour}PaletteColorLookupTableDescriptor"].value
        table = np.frombuffer(ds[f"{colour}PaletteColorLookupTableData"].value, dtype="<u2")
        values = table[np.clip(index.astype(int) - first_mapped, 0, n_entries - 1)]
        channels.append(values >> 8)  # the 8 most significant bits of each 16-bit entry
    np.testing.assert_array_equal(read_dicom(_path("OBXXXX1A.dcm")).pixels[0], np.stack(channels, -1))


def test_ybr_full_converted_to_rgb_by_hand():
    ds = pydicom.dcmread(_path("SC_ybr_full_uncompressed.dcm"))
    ybr = np.frombuffer(ds.PixelData, dtype=np.uint8).reshape(ds.Rows, ds.Columns, 3).astype(float)
    y, cb, cr = ybr[..., 0], ybr[..., 1] - 128, ybr[..., 2] - 128
    rgb = np.stack([y + 1.402 * cr, y - 0.344136 * cb - 0.714136 * cr, y + 1.772 * cb], -1)  # PS3.3 C.7.6.3.1.2
    ours = read_dicom(_path("SC_ybr_full_uncompressed.dcm")).pixels[0].astype(float)
    assert np.abs(ours - np.clip(rgb, 0, 255)).max() <= 1.0


def test_monochrome1_and_spacing_sources():
    img = read_dicom(_path("6154"))  # a small CR in pydicom's DICOMDIR tests
    assert img.photometric == "MONOCHROME1" and img.invert_for_display
    assert img.pixel_spacing_source == "ImagerPixelSpacing"
    assert img.units == "OD"  # this file's Rescale Type


def test_voi_lut_sequence_offered_as_linear_window():
    ds = pydicom.dcmread(_path("vlut_04.dcm"))
    n_entries, first_mapped, _ = ds.VOILUTSequence[0].LUTDescriptor
    center, width, _ = read_dicom(_path("vlut_04.dcm")).file_windows[0]
    # the ramp of the window must span exactly the LUT's inputs
    lo, hi = first_mapped, first_mapped + n_entries - 1
    assert apply_window(np.array([lo, hi], np.float32), center, width).tolist() == [0.0, 1.0]


# ──────────────────────────────────────── windowing ─────────────────────────────────────────


def _window_by_hand(x: float, c: float, w: float) -> float:
    """PS3.3 C.11.2.1.2.1, one value at a time, output range [0, 1]."""
    if x <= c - 0.5 - (w - 1) / 2:
        return 0.0
    if x > c - 0.5 + (w - 1) / 2:
        return 1.0
    return (x - (c - 0.5)) / (w - 1) + 0.5


@pytest.mark.parametrize(("center", "width"), [(40, 400), (-600, 1500), (40, 80), (0.5, 2), (-1000, 1)])
def test_apply_window_matches_hand_computation_on_ct_small(center, width):
    hu = read_dicom(_path("CT_small.dcm")).pixels[0]
    expected = np.array([_window_by_hand(float(x), center, width) for x in hu.ravel()]).reshape(hu.shape)
    got = apply_window(hu, center, width)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=2e-6)


def test_apply_window_known_points():
    c, w = 40.0, 400.0
    x = np.array([c - 0.5 - (w - 1) / 2, c - 0.5, c - 0.5 + (w - 1) / 2, -5000, 5000], np.float32)
    np.testing.assert_allclose(apply_window(x, c, w), [0.0, 0.5, 1.0, 0.0, 1.0], atol=1e-6)


@pytest.mark.parametrize(("center", "width"), [(40, 100), (40, 400), (500, 2000), (-600, 1500)])
def test_apply_window_matches_pydicom_on_a_ct(center, width):
    ds = pydicom.dcmread(_path("693_UNCR.dcm"))
    ds.WindowCenter, ds.WindowWidth = center, width
    hu = apply_modality_lut(ds.pixel_array, ds)
    theirs = apply_windowing(hu, ds)
    # pydicom's output spans the rescaled range of the stored bits; scale it to [0, 1]
    lo_stored, hi_stored = -(2 ** (ds.BitsStored - 1)), 2 ** (ds.BitsStored - 1) - 1
    lo, hi = (v * float(ds.RescaleSlope) + float(ds.RescaleIntercept) for v in (lo_stored, hi_stored))
    np.testing.assert_allclose(apply_window(hu, center, width), (theirs - lo) / (hi - lo), atol=2e-6)


def test_invalid_windows_are_refused():
    for center, width in [(0, 0.5), (0, -10), (np.nan, 100), (0, np.inf)]:
        with pytest.raises(DicomError) as info:
            apply_window(np.zeros(3), center, width)
        assert info.value.code == "invalid_window"


def test_auto_window_maps_percentiles_to_black_and_white():
    values = np.random.default_rng(1).normal(0, 300, (256, 256)).astype(np.float32)
    lo, hi = np.percentile(values, [1, 99])
    center, width = auto_window(values)
    np.testing.assert_allclose(apply_window(np.array([lo, hi], np.float32), center, width), [0, 1], atol=1e-5)


def test_window_presets_are_the_textbook_values():
    assert WINDOW_PRESETS == {
        "lung": (-600, 1500),
        "mediastinum": (40, 400),
        "bone": (500, 2000),
        "brain": (40, 80),
        "abdomen": (50, 350),
    }


def test_display_image_windows_and_inverts():
    mono1 = read_dicom(_path("6154"))
    center, width, _ = mono1.file_windows[0]
    windowed = np.array([_window_by_hand(float(x), center, width) for x in mono1.pixels[0].ravel()])
    expected = np.floor((1 - windowed) * 255 + 0.5).reshape(mono1.rows, mono1.cols)
    shown = display_image(mono1, 0, center, width)
    assert shown.dtype == np.uint8 and shown.shape == (mono1.rows, mono1.cols)
    assert np.abs(shown.astype(int) - expected).max() <= 1  # float32 vs float64 at .5 edges

    colour = read_dicom(_path("US1_UNCR.dcm"))
    np.testing.assert_array_equal(display_image(colour, 0, 0, 1), colour.pixels[0])
    with pytest.raises(DicomError):
        display_image(colour, 5, 0, 1)


# ──────────────────────────────────── DICOM to tensor ───────────────────────────────────────


def test_dicom_to_tensor_steps_ct():
    img = read_dicom(_path("CT_small.dcm"))
    steps = dicom_to_tensor_steps(img, 0, 40, 400, size=32)
    assert [s.name for s in steps] == ["stored", "modality", "windowed", "resized", "normalized"]
    ds = pydicom.dcmread(_path("CT_small.dcm"))
    np.testing.assert_array_equal(steps[0].array, np.frombuffer(ds.PixelData, "<i2").reshape(128, 128))
    np.testing.assert_array_equal(steps[1].array, img.pixels[0])
    np.testing.assert_array_equal(steps[2].array, apply_window(img.pixels[0], 40, 400))
    x = torch.from_numpy(apply_window(img.pixels[0], 40, 400))[None, None]
    oracle = F.interpolate(x, size=(32, 32), mode="bilinear", antialias=True, align_corners=False)[0, 0]
    np.testing.assert_allclose(steps[3].array, oracle.numpy(), atol=1e-6)
    final = steps[-1].array
    assert isinstance(final, torch.Tensor) and final.dtype == torch.float32 and final.shape == (1, 1, 32, 32)
    assert abs(float(final.mean())) < 1e-5 and abs(float(final.std()) - 1) < 1e-4
    for step in steps:
        values = step.array.numpy() if isinstance(step.array, torch.Tensor) else step.array
        assert (step.min, step.max) == (float(values.min()), float(values.max()))
        assert step.shape == tuple(values.shape)


def test_dicom_to_tensor_steps_monochrome1_and_colour():
    mono1 = read_dicom(_path("6154"))
    steps = dicom_to_tensor_steps(mono1, 0, 1600, 2800, size=8, mean=0.5, std=0.25)
    assert steps[2].name == "windowed_inverted"
    np.testing.assert_allclose(steps[2].array, 1 - apply_window(mono1.pixels[0], 1600, 2800))
    resized = torch.from_numpy(steps[3].array)
    torch.testing.assert_close(steps[-1].array[0, 0], (resized - 0.5) / 0.25)

    colour = read_dicom(_path("US1_UNCR.dcm"))
    steps = dicom_to_tensor_steps(colour, 0, 128, 256, size=16)
    luminance = colour.pixels[0].astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    assert steps[1].name == "luminance"
    np.testing.assert_allclose(steps[1].array, luminance, atol=1e-3)
    assert steps[-1].array.shape == (1, 1, 16, 16)


# ───────────────────────────────────────── examples ─────────────────────────────────────────


def test_every_example_decodes_and_is_described_in_both_languages():
    assert EXAMPLES, "pydicom's own test files should always be there"
    assert len({e.id for e in EXAMPLES}) == len(EXAMPLES)
    seen = set()
    for example in EXAMPLES:
        img = load_example(example.id)
        _check_image(img)
        assert img.modality == example.modality
        assert example.teaches["en"] and any("\u4e00" <= ch <= "\u9fff" for ch in example.teaches["zh"])
        assert example.preset is None or example.preset in WINDOW_PRESETS
        seen |= {img.modality, img.photometric, img.transfer_syntax, "multi-frame" if img.n_frames > 1 else ""}
    if len(EXAMPLES) == len(dicom._CATALOGUE):  # pydicom-data installed: the full teaching set
        assert {"CT", "MR", "CR", "US", "NM", "MONOCHROME1", "PALETTE COLOR", "multi-frame"} <= seen
        assert {"RLE Lossless", "JPEG-LS Lossless Image Compression", "JPEG Baseline (Process 1)"} <= seen
    with pytest.raises(DicomError) as info:
        load_example("no_such_example")
    assert info.value.code == "example_missing"


# ──────────────────────────────────── metadata and de-identification ─────────────────────────


def test_basic_profile_table():
    assert None not in BASIC_PROFILE_ACTIONS  # every keyword resolved to a tag
    # a few rows of PS3.15 Table E.1-1, read from the standard
    assert BASIC_PROFILE_ACTIONS[0x00100010] == "Z"  # Patient's Name
    assert BASIC_PROFILE_ACTIONS[0x00100020] == "ZD"  # Patient ID
    assert BASIC_PROFILE_ACTIONS[0x0020000D] == "U"  # Study Instance UID
    assert BASIC_PROFILE_ACTIONS[0x00080080] == "XZD"  # Institution Name
    assert BASIC_PROFILE_ACTIONS[0x00181000] == "XZD"  # Device Serial Number
    assert BASIC_PROFILE_ACTIONS[0x00101040] == "X"  # Patient's Address
    assert 0x00080016 not in BASIC_PROFILE_ACTIONS  # SOP Class UID is kept


def _text_values(elem) -> list[str]:
    value = elem.value
    if value is None or isinstance(value, bytes | bytearray):
        return []
    values = list(value) if isinstance(value, list | tuple | pydicom.multival.MultiValue) else [value]
    return [str(v).strip() for v in values]


def _split_values(ds: Dataset) -> tuple[set[str], str]:
    """(identifying values, text of every other value), at every sequence depth."""
    identifying, other = set(), []

    def walk(level: Dataset) -> None:
        for elem in level:
            if elem.VR == "SQ":
                for item in elem.value:
                    walk(item)
            elif is_identifying(elem):
                identifying.update(_text_values(elem))
            else:
                other.extend(_text_values(elem))

    walk(ds.file_meta)
    walk(ds)
    return identifying, "\n".join(other)


def test_metadata_rows_mask_identifying_values():
    ds = pydicom.dcmread(_path("CT_small.dcm"))
    rows = metadata_rows(ds)
    by_keyword = {r.keyword: r for r in rows}
    assert by_keyword["PatientName"].masked and by_keyword["PatientName"].value == "***"
    assert "CT Image Storage" in by_keyword["SOPClassUID"].value
    assert "Explicit VR Little Endian" in by_keyword["TransferSyntaxUID"].value
    assert by_keyword["Modality"].value == "CT" and not by_keyword["Modality"].masked
    assert not any("(7FE0,0010)" in r.tag for r in rows)  # pixel data never listed
    assert all(r.masked for r in rows if int(r.tag.strip(">()").split(",")[0], 16) % 2 == 1)  # private
    identifying, other_text = _split_values(ds)
    shown = "\n".join(r.value for r in rows if not r.masked)
    assert not [v for v in identifying if len(v) >= 4 and v not in other_text and v in shown]


def test_metadata_rows_flatten_sequences():
    ds = pydicom.dcmread(_path("eCT_Supplemental.dcm"))
    rows = metadata_rows(ds, max_items=2)
    nested = [r for r in rows if r.depth > 0]
    assert nested and all(r.tag.startswith(">" * r.depth) for r in nested)
    per_frame = next(i for i, r in enumerate(rows) if r.keyword == "PerFrameFunctionalGroupsSequence")
    assert rows[per_frame + 1].keyword == "Item" and rows[per_frame + 1].depth == 1


@pytest.mark.parametrize(
    "name",
    [
        "CT_small.dcm",
        "MR_small.dcm",
        "MR-SIEMENS-DICOM-WithOverlays.dcm",
        "eCT_Supplemental.dcm",
        "JPGLosslessP14SV1_1s_1f_8b.dcm",
        "US1_J2KR.dcm",
        "liver.dcm",
        "waveform_ecg.dcm",
    ],
)
def test_deidentified_copy_keeps_pixels_and_drops_identifiers(name):
    original = pydicom.dcmread(_path(name))
    before = str(original)
    copy_bytes = deidentify(original)
    assert str(original) == before  # the source is left untouched

    copy = pydicom.dcmread(io.BytesIO(copy_bytes))
    assert copy.PatientIdentityRemoved == "YES" and copy.DeidentificationMethod
    assert not any(elem.tag.is_private for elem in copy.iterall())
    assert copy.SOPInstanceUID != original.SOPInstanceUID
    assert copy.file_meta.MediaStorageSOPInstanceUID == copy.SOPInstanceUID
    if "PixelData" in original:
        np.testing.assert_array_equal(read_dicom(copy_bytes).pixels, read_dicom(_path(name)).pixels)
        del copy.PixelData  # pixel bytes may contain any short byte pattern by chance
    header_bytes = io.BytesIO()
    copy.save_as(header_bytes)
    whole_text = header_bytes.getvalue().decode("latin-1") + str(copy)

    identifying, other_text = _split_values(original)
    dummies = "ANONYMOUS ANONYMIZED 19000101000000 000Y"
    checked = [
        v
        for v in identifying
        # long enough not to occur in a random new UID; not a value the file also holds in a
        # non-identifying attribute (a private "TOSHIBA" beside Manufacturer) or one of our dummies
        if (len(v) >= 6 or (len(v) >= 4 and any(ch.isalpha() for ch in v)))
        and v not in UID_dictionary
        and v not in other_text
        and v not in dummies
    ]
    assert checked
    assert not [v for v in checked if v in whole_text]


def test_deidentify_keeps_internal_uid_references_consistent():
    ds = pydicom.dcmread(_path("eCT_Supplemental.dcm"))
    ds.ReferencedImageSequence = [Dataset()]
    ds.ReferencedImageSequence[0].ReferencedSOPClassUID = ds.SOPClassUID
    ds.ReferencedImageSequence[0].ReferencedSOPInstanceUID = ds.SOPInstanceUID
    copy = pydicom.dcmread(io.BytesIO(deidentify(ds)))
    reference = copy.ReferencedImageSequence[0]
    assert reference.ReferencedSOPInstanceUID == copy.SOPInstanceUID != ds.SOPInstanceUID
    assert reference.ReferencedSOPClassUID == ds.SOPClassUID  # registered UIDs are kept


def test_error_codes_are_a_closed_list():
    assert len(set(ERROR_CODES)) == len(ERROR_CODES)
    with pytest.raises(ValueError):
        DicomError("not_a_code")


# ─────────────────────────────── viewer helpers (the imaging page) ───────────────────────────


def test_window_edges_and_coverage_by_hand():
    hu = read_dicom(_path("CT_small.dcm")).pixels[0]
    for center, width in [(40, 400), (-600, 1500), (40, 80), (0.5, 2)]:
        low, high = dicom.window_edges(center, width)
        # the linear function is exactly 0 at the lower edge and 1 just above the upper one
        assert _window_by_hand(low, center, width) == 0.0 and _window_by_hand(high + 1e-6, center, width) == 1.0
        below = sum(_window_by_hand(float(x), center, width) == 0.0 for x in hu.ravel()) / hu.size
        above = sum(_window_by_hand(float(x), center, width) == 1.0 for x in hu.ravel()) / hu.size
        coverage = dicom.window_coverage(hu, center, width)
        assert coverage.below == pytest.approx(below) and coverage.above == pytest.approx(above)
        assert coverage.below + coverage.inside + coverage.above == pytest.approx(1.0)


def test_suggested_window_follows_preset_then_file_then_modality():
    ct = read_dicom(_path("CT_small.dcm"))  # CT in HU, no window in the file
    assert dicom.suggested_window(ct, "lung")[:2] == WINDOW_PRESETS["lung"]
    assert dicom.suggested_window(ct)[:2] == WINDOW_PRESETS["mediastinum"]
    mr = read_dicom(_path("MR_small.dcm"))
    ds = pydicom.dcmread(_path("MR_small.dcm"))
    assert dicom.suggested_window(mr, "lung")[:2] == (float(ds.WindowCenter), float(ds.WindowWidth))  # no HU
    multiframe = read_dicom(_path("emri_small.dcm"))  # MR without a window
    assert dicom.suggested_window(multiframe) == (*auto_window(multiframe.pixels), "auto")
    colour = read_dicom(_path("US1_UNCR.dcm"))
    center, width, _ = dicom.suggested_window(colour)
    values = np.arange(256, dtype=np.float32)
    np.testing.assert_allclose(apply_window(values, center, width), values / 255, atol=1e-6)  # identity


def test_window_range_covers_the_image_and_every_offered_window():
    for name in ("CT_small.dcm", "MR_small.dcm", "rtdose.dcm", "RG1_UNCR.dcm"):
        img = read_dicom(_path(name))
        limits = dicom.window_range(img, include=((40.0, 400.0),))
        centers = [40.0, *img.value_range, *(c for c, _, _ in img.file_windows), auto_window(img.pixels)[0]]
        widths = [400.0, img.value_range[1] - img.value_range[0] + 1, *(w for _, w, _ in img.file_windows)]
        assert limits.center_min <= min(centers) and max(centers) <= limits.center_max, name
        assert max(widths) <= limits.width_max and limits.width_min == 1.0, name
        integral = np.all(np.mod(img.pixels, 1) == 0)
        assert (limits.step >= 1) == bool(integral), name
    ct_limits = dicom.window_range(read_dicom(_path("CT_small.dcm")))
    assert ct_limits.step == 1.0 and ct_limits.center_min <= -600 and ct_limits.width_max >= 2000  # HU presets


def test_burned_in_text_risk():
    from primer.deid import burned_in_text_risk

    assert burned_in_text_risk(pydicom.dcmread(_path("US1_UNCR.dcm")))  # ultrasound
    assert burned_in_text_risk(pydicom.dcmread(_path("SC_rgb.dcm")))  # Secondary Capture SOP class
    ct = pydicom.dcmread(_path("CT_small.dcm"))
    assert not burned_in_text_risk(ct)
    ct.BurnedInAnnotation = "YES"
    assert burned_in_text_risk(ct)


def test_too_large_detail_counts_the_memory_needed():
    rows, cols, frames = 3000, 3000, 8
    with pytest.raises(DicomError) as info:
        read_dicom(_crafted(rows, cols, frames), max_bytes_decoded=100 * 1024**2)
    detail = info.value.detail
    assert detail["declared_bytes"] == rows * cols * frames * 2  # 16 bits allocated
    assert detail["needed_bytes"] == rows * cols * frames * (2 + 4)  # stored values + float32 copy
    assert detail["limit_bytes"] == 100 * 1024**2


def test_stored_values_are_kept_as_decoded():
    img = read_dicom(_path("emri_small_jpeg_ls_lossless.dcm"))
    ds = pydicom.dcmread(_path("emri_small_jpeg_ls_lossless.dcm"))
    np.testing.assert_array_equal(img.stored, ds.pixel_array)  # pydicom's own decode, all frames
    steps = dicom_to_tensor_steps(img, 3, 200, 400, size=16)
    np.testing.assert_array_equal(steps[0].array, ds.pixel_array[3])


# ──────────────────────────────── figures of the imaging chapter ─────────────────────────────


def test_display_grey_is_what_the_viewer_shows():
    from primer.imaging_figures import display_grey

    mono1 = read_dicom(_path("6154"))
    center, width, _ = mono1.file_windows[0]
    values = mono1.pixels[0].ravel()
    shown = display_image(mono1, 0, center, width).ravel()
    np.testing.assert_array_equal(display_grey(values, center, width, invert=True), shown)


def test_image_figure_hover_holds_the_modality_values():
    from primer.imaging_figures import image_figure

    img = read_dicom(_path("CT_small.dcm"))
    fig = image_figure(img, 0, 40, 400)
    image, hover = fig.data
    assert image.source.startswith("data:image/png;base64,")
    np.testing.assert_array_equal(np.asarray(hover.z), img.pixels[0])  # exact HU under the cursor
    assert fig.layout.yaxis.scaleratio == pytest.approx(1.0)  # square pixels (0.661 × 0.661 mm)
    big = read_dicom(_path("RG1_UNCR.dcm"))  # 1955 × 1841: the readout is subsampled to ≤ 512
    hover = image_figure(big, 0, *big.file_windows[0][:2]).data[1]
    assert max(np.asarray(hover.z).shape) <= 512 and hover.dx == hover.dy == 4
    np.testing.assert_array_equal(np.asarray(hover.z), big.pixels[0][::4, ::4])


def test_histogram_figure_counts_every_pixel_in_its_grey():
    from primer.imaging_figures import display_grey, histogram_figure

    hu = read_dicom(_path("CT_small.dcm")).pixels[0]
    fig = histogram_figure(hu, 40, 400, log_counts=False)
    bars, ramp = fig.data
    assert np.sum(bars.y) == hu.size
    low, high = dicom.window_edges(40, 400)
    assert list(ramp.x[1:3]) == [low, high] and list(ramp.y) == [0, 0, 255, 255]
    greys = display_grey(np.asarray(bars.x), 40, 400)
    assert bars.marker.color[0] == f"rgb({greys[0]},{greys[0]},{greys[0]})"


def test_training_window_and_mismatch():
    from primer.imaging_figures import TensorLab, mismatch, tensor_steps, training_window

    img = read_dicom(_path("CT_small.dcm"))
    center, width = training_window(img, 0, "full", 40, 400)
    lo, hi = img.value_range
    np.testing.assert_allclose(apply_window(np.array([lo, hi], np.float32), center, width), [0, 1])
    assert training_window(img, 0, "same", 40, 400) == (40, 400)
    lab = TensorLab(size=32)
    now = tensor_steps(img, 0, 40, 400, lab)
    assert mismatch(now, now).mean_abs == 0
    trained = tensor_steps(img, 0, *WINDOW_PRESETS["lung"], lab)
    result = mismatch(now, trained)
    assert result.mean_abs == pytest.approx(float(np.abs(now[3].array - trained[3].array).mean()))


def test_quiz_figures_compute_their_keys_from_the_data():
    from primer.imaging_figures import TISSUE_CLASSES, quiz_tissue_in_box, quiz_window_ramp

    ds = pydicom.dcmread(_path("CT_small.dcm"))
    stored = np.frombuffer(ds.PixelData, dtype="<i2").reshape(ds.Rows, ds.Columns)
    hu = stored * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    for top, left, expected in ((116, 40, "fat"), (4, 4, "air or lung"), (84, 28, "soft tissue, blood or water")):
        question = quiz_tissue_in_box(top=top, left=left, size=8)
        assert TISSUE_CLASSES[question.answer][0] == expected
        assert question.extra["mean_hu"] == pytest.approx(hu[top : top + 8, left : left + 8].mean())
    ramp = quiz_window_ramp(-600, 1500, "center")
    assert ramp.answer == -600
    low, high = ramp.figure.data[0].x[1:3]
    assert (low + high) / 2 + 0.5 == pytest.approx(-600) and high - low + 1 == pytest.approx(1500)


def test_deidentified_copy_is_valid_dicom():
    """Every text value in the copy respects its VR's maximum length (PS3.5 table 6.2-1)."""
    max_length = {"LO": 64, "SH": 16, "CS": 16, "PN": 64 * 5, "DA": 8, "AE": 16, "UI": 64, "LT": 10240}
    copy = pydicom.dcmread(io.BytesIO(deidentify(pydicom.dcmread(_path("CT_small.dcm")))))
    for elem in copy.iterall():
        if elem.VR in max_length and elem.value not in (None, ""):
            values = elem.value if isinstance(elem.value, pydicom.multival.MultiValue) else [elem.value]
            assert all(len(str(v)) <= max_length[elem.VR] for v in values), elem


def test_every_decoded_array_is_in_native_byte_order():
    """Plotly's serializer and torch refuse big-endian arrays: the reader returns native ones."""
    seen_big_endian = 0
    for path in (p for p in get_testdata_files("**/*") if os.path.isfile(p)):
        try:
            img = read_dicom(path)
        except DicomError:
            continue
        assert img.pixels.dtype.isnative, path
        seen_big_endian += "big" in os.path.basename(path).lower() or "expb" in os.path.basename(path).lower()
    assert seen_big_endian >= 3  # MR_small_bigendian, emri_small_big_endian, the _expb files


def test_a_deflated_file_with_bytes_after_its_stream_still_opens():
    """The bounded inflate stops at the end of the deflate stream: a padding byte after it (as
    pydicom writes for an odd length) once kept it looping for ever."""
    for extra in (b"", b"\0", b"\0" * 7):
        img = read_dicom(hostile.deflate_bomb(64) + extra)
        assert img.pixels.shape[-2:] == (8, 8)


def test_a_deflated_file_that_inflates_past_the_limit_is_refused_early():
    """1 MB of Deflated Explicit VR that inflates to 1 GiB: refused after inflating just past the
    limit, with the file's size and the limit in the error, and far less memory than 1 GiB."""
    data = hostile.deflate_bomb(1024**3)
    assert len(data) < 2 * 1024**2
    # independently, this file's data set (after the plain file meta, found by pydicom's own
    # reader) is a raw deflate stream of over 1 GiB: zlib, 16 MB at a time
    fp = io.BytesIO(data)
    pydicom.filereader.read_preamble(fp, force=False)
    pydicom.filereader._read_file_meta_info(fp)
    inflater, inflated, rest = zlib.decompressobj(-zlib.MAX_WBITS), 0, data[fp.tell() :]
    # keep asking while zlib still holds output: the input can be used up (unconsumed_tail empty)
    # before all of it has come out, depending on where the file's random UIDs put the stream
    while not inflater.eof and inflated <= 1024**3:
        chunk = inflater.decompress(rest, 16 * 1024**2)
        rest = inflater.unconsumed_tail
        if not chunk and not rest:
            break
        inflated += len(chunk)
    assert inflated > 1024**3
    limit = 64 * 1024**2
    with open("/proc/self/status") as f:
        before = next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    with pytest.raises(DicomError) as error:
        read_dicom(data, max_bytes_decoded=limit)
    with open("/proc/self/status") as f:
        peak = next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) / 1024
    assert error.value.code == "inflated_too_large"
    assert error.value.detail["limit_bytes"] == limit and error.value.detail["file_bytes"] == len(data)
    assert peak - before < 4 * limit / 1024**2  # a few times the limit, never the 1 GiB it declares
