"""Hostile uploads, and a driver that hands any file to any uploader in the app through AppTest.

Used by tests/test_uploads.py (every case through every uploader: an image or a clear message,
never an exception, memory bounded) and by bench/hostile.py (the message, peak memory and time
of each case). Every file is built here, in memory, from pydicom's own test files or from
scratch; nothing is downloaded and nothing is written to disk.

    for case in dicom_cases(): ...            # Case(name, data, expect): expect is a DicomError
    for case in dataset_cases(): ...          #   code, "image" (decodes), or None (either)
    outcome = Driver(UPLOADERS["imaging"]).upload(case.file_name, case.data)
"""

from __future__ import annotations

import io
import json
import os
import struct
import time
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache

import numpy as np
import pydicom
from pydicom.data import get_testdata_file, get_testdata_files
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import generate_uid

# Text a file can carry that a page must show as written, never act on.
MARKUP = {
    "html": '<img src=x onerror="window.__pwned=1"><b>bold</b>',
    "link": "[click me](javascript:window.__pwned=1)",
    "markdown": "**loud** _slanted_ $x^2$ :red[red] :material/warning: # heading",
}
MARKUP_FOLDER = '<img src=x onerror="window.__pwned=1">**bold** :red[x]'  # no "/": that would split the path
MARKUP_NAME = '<img src=x onerror="window.__pwned=1">[a](javascript:1)**b**.dcm'


@dataclass(frozen=True)
class Case:
    name: str
    data: bytes
    expect: str | None  # an error code, "image", or None when either is a fair answer
    file_name: str = "upload.dcm"


# ─────────────────────────────────────────── DICOM ───────────────────────────────────────────


def shipped_dicom_files() -> list[str]:
    """Every file pydicom and pydicom-data ship (DICOM or not: a README is a fair upload too)."""
    return sorted(path for path in get_testdata_files("**/*") if os.path.isfile(path))


def _shipped(name: str) -> bytes:
    with open(get_testdata_file(name, download=False), "rb") as f:
        return f.read()


def image_dataset(rows: int, cols: int, frames: int = 1, syntax=pydicom.uid.ExplicitVRLittleEndian, **extra) -> Dataset:
    """A minimal 16-bit greyscale image header (no pixel data yet); `extra` sets more attributes."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = syntax
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
    ds.Modality = "OT"
    ds.Rows, ds.Columns, ds.NumberOfFrames = rows, cols, frames
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    for keyword, value in extra.items():
        setattr(ds, keyword, value)
    return ds


def to_bytes(ds: Dataset, **kwargs) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True, **kwargs)
    return buffer.getvalue()


def _j2k_codestream(width: int, height: int) -> bytes:
    """A JPEG 2000 codestream whose SIZ marker declares width × height, and nothing else real."""
    # SIZ (ISO/IEC 15444-1 A.5.1): Lsiz, Rsiz, image and tile sizes and offsets, one component
    siz = struct.pack(">HHH8IH3B", 0xFF51, 41, 0, width, height, 0, 0, width, height, 0, 0, 1, 7, 1, 1)
    return b"\xff\x4f" + siz + b"\xff\xd9"


def deflate_bomb(inflated_bytes: int) -> bytes:
    """A Deflated Explicit VR file: 8 × 8 pixels in the header, `inflated_bytes` of zeros inside."""
    ds = image_dataset(8, 8, syntax=pydicom.uid.DeflatedExplicitVRLittleEndian)
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    ds.PixelData = bytes(inflated_bytes)
    return to_bytes(ds)


def _with_markup() -> bytes:
    """CT_small with markup in the tags a page might show: names, descriptions, units, modality."""
    ds = pydicom.dcmread(io.BytesIO(_shipped("CT_small.dcm")))
    ds.PatientName = MARKUP["html"]
    ds.StudyDescription = MARKUP["link"]
    ds.SeriesDescription = MARKUP["markdown"]
    ds.InstitutionName = MARKUP["html"]
    ds.RescaleType = "<b>HU</b>"  # shown as the image's units
    ds.WindowCenterWidthExplanation = MARKUP["link"]
    return to_bytes(ds)


def _nested_sequences(depth: int) -> bytes:
    """A 4 × 4 image carrying a Content Sequence nested `depth` items deep (undefined lengths).

    Written by hand: pydicom's writer recurses per level and cannot write what a hostile file
    can simply contain."""
    ds = image_dataset(4, 4)
    ds.PixelData = np.zeros(16, "<u2").tobytes()
    plain = to_bytes(ds)
    sequence_open = struct.pack("<HH2sHI", 0x0040, 0xA730, b"SQ", 0, 0xFFFFFFFF)
    item_open = struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF)
    item_close = struct.pack("<HHI", 0xFFFE, 0xE00D, 0)
    sequence_close = struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
    nested = (sequence_open + item_open) * depth + (item_close + sequence_close) * depth
    pixel_tag = struct.pack("<HH", 0x7FE0, 0x0010)
    at = plain.rindex(pixel_tag)  # ContentSequence (0040,A730) sorts before Pixel Data
    return plain[:at] + nested + plain[at:]


def _png(width: int, height: int, value: int = 0) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.full((height, width), value, np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def _png_bomb(width: int, height: int) -> bytes:
    """A PNG whose header declares width × height (8-bit grey), with a few rows of real data."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    rows = zlib.compress(b"\0" * (width + 1) * 4)
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


def dicom_cases() -> list[Case]:
    """Broken and hostile DICOM uploads, each with the outcome the reader owes it."""
    ct = _shipped("CT_small.dcm")
    rng = np.random.default_rng(20)
    flipped = bytearray(ct)
    for position in rng.integers(132, 1500, 12):  # the header, where the structure lives
        flipped[int(position)] ^= 1 << int(rng.integers(8))
    no_pixels = image_dataset(64, 64)
    sr_like = image_dataset(64, 64)
    for keyword in ("Rows", "Columns", "BitsAllocated", "NumberOfFrames"):
        delattr(sr_like, keyword)
    sr_like.SOPClassUID = "1.2.840.10008.5.1.4.1.1.88.11"  # Basic Text SR
    huge = image_dataset(65535, 65535, 10000)
    huge.PixelData = b"\0" * 16
    j2k = image_dataset(64, 64, syntax=pydicom.uid.JPEG2000Lossless)
    j2k.PixelData = encapsulate([_j2k_codestream(60000, 60000)])
    j2k_second = image_dataset(64, 64, 2, syntax=pydicom.uid.JPEG2000Lossless)
    j2k_second.PixelData = encapsulate([_j2k_codestream(64, 64), _j2k_codestream(60000, 60000)])
    short = image_dataset(512, 512)
    short.PixelData = b"\0" * 100
    hsv = image_dataset(4, 4, PhotometricInterpretation="HSV")
    hsv.PixelData = np.zeros(16, "<u2").tobytes()
    nan = image_dataset(4, 4, BitsAllocated=32, BitsStored=32, HighBit=31)
    del nan.PixelRepresentation
    nan.FloatPixelData = np.array([np.nan] * 8 + [np.inf] * 8, "<f4").tobytes()
    mpeg = pydicom.dcmread(io.BytesIO(ct))
    mpeg.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.100"  # MPEG2: no decoder here
    mpeg.PixelData = encapsulate([mpeg.PixelData])
    return [
        Case("empty file", b"", "not_dicom"),
        Case("truncated CT", ct[: len(ct) * 3 // 5], "truncated"),
        Case("bit-flipped header", bytes(flipped), None),
        Case("random bytes after DICM", bytes(128) + b"DICM" + rng.bytes(4096), None),
        Case("PNG named .dcm", _png(16, 16), "not_dicom", "photo.dcm"),
        Case("zero rows", to_bytes(image_dataset(0, 16, PixelData=b"")), "empty_image"),
        Case("image header, no pixel data", to_bytes(no_pixels), "truncated"),
        Case("structured report (no image)", to_bytes(sr_like), "no_pixel_data"),
        Case("65535 × 65535 × 10000 frames declared", to_bytes(huge), "too_large"),
        Case("JPEG 2000 codestream declaring 60000²", to_bytes(j2k), "decode_failed"),
        Case("JPEG 2000, second frame 60000²", to_bytes(j2k_second), "decode_failed"),
        Case("deflate bomb (1 GiB inflated)", deflate_bomb(1024**3), "inflated_too_large"),
        Case("pixel data far shorter than declared", to_bytes(short), "truncated"),
        Case("HSV photometric", to_bytes(hsv), "unsupported_photometric"),
        Case("NaN and inf float pixels", to_bytes(nan), "corrupt"),
        Case("MPEG-2 transfer syntax", to_bytes(mpeg), "unsupported_syntax"),
        Case("sequences nested 2,000 deep", _nested_sequences(2000), None),
        Case("big-endian MR", _shipped("MR_small_bigendian.dcm"), "image"),
        Case("markup in tag values and file name", _with_markup(), "image", MARKUP_NAME),
    ]


# ───────────────────────────────────────── datasets ──────────────────────────────────────────


def make_zip(files: dict[str, bytes] | list[tuple[str, bytes]], compression=zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in files.items() if isinstance(files, dict) else files:
            archive.writestr(zipfile.ZipInfo(name), data, compress_type=compression)
    return buffer.getvalue()


def class_folders(classes: dict[str, int], size: int = 20) -> dict[str, bytes]:
    """PNG files in one folder per class: {class name: brightness}, six images each."""
    return {f"{name}/{i}.png": _png(size, size, value + i) for name, value in classes.items() for i in range(6)}


def _lying_zip_bomb(inflated_bytes: int) -> bytes:
    """One member whose headers say 1 kB while its data inflate to `inflated_bytes`."""
    honest = make_zip({"a/bomb.png": bytes(inflated_bytes)} | class_folders({"b": 50}))
    return honest.replace(struct.pack("<I", inflated_bytes), struct.pack("<I", 1000))  # both headers


def _npz(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def medmnist(n=(30, 10, 12), side=28, classes=2, **override) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    arrays = {}
    for split, count in zip(("train", "val", "test"), n, strict=True):
        arrays[f"{split}_images"] = rng.integers(0, 255, (count, side, side), dtype=np.uint8)
        arrays[f"{split}_labels"] = np.arange(count).reshape(-1, 1) % classes
    arrays.update(override)
    return arrays


UNPICKLED: list[str] = []  # a pickle in a hostile .npz would append here if it were ever loaded


def _record_unpickling(what: str) -> list[str]:
    UNPICKLED.append(what)
    return UNPICKLED


class _Payload:
    def __reduce__(self):
        return (_record_unpickling, ("an object array was unpickled",))


def _npz_header_only(shape: tuple[int, ...]) -> bytes:
    """A .npy whose header declares `shape` (uint8) with no data behind it, in an .npz."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "|u1", "fortran_order": False, "shape": shape})
    arrays = {k: v for k, v in medmnist().items() if k != "train_images"}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("train_images.npy", header.getvalue())
        for key, value in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, value)
            archive.writestr(f"{key}.npy", member.getvalue())
    return buffer.getvalue()


def dataset_cases() -> list[Case]:
    """Hostile own-data uploads (class-folder zips and MedMNIST .npz), each with its code."""
    good = class_folders({"normal": 40, "nodule": 200})
    nan_images = medmnist()["train_images"].astype(np.float32)
    nan_images[0, 0, 0], nan_images[1, 1, 1] = np.nan, np.inf
    traversal = good | {
        "../../etc/passwd.png": _png(8, 8),
        "/absolute/normal/x.png": _png(8, 8),
        "normal/../../escape.png": _png(8, 8),
        "C:\\windows\\normal\\x.png": _png(8, 8),
    }
    pickled = {
        f"{s}_{k}": np.array([_Payload()] * 3, dtype=object)
        for s in ("train", "val", "test")
        for k in ("images", "labels")
    }
    buffer = io.BytesIO()
    np.savez(buffer, **pickled)  # savez pickles object arrays; loading them would call _Payload
    return [
        Case("not an archive", b"plain text, not a zip", "not_zip", "data.zip"),
        Case("zip bomb (1 GiB declared)", make_zip({"a/bomb.png": bytes(1024**3)}), "zip_too_large", "data.zip"),
        Case("zip bomb lying about its size", _lying_zip_bomb(256 * 1024**2), "one_class", "data.zip"),
        Case("path-traversal names", make_zip(traversal), "image", "data.zip"),
        Case(
            "10,000 tiny files",
            make_zip({f"c{i % 2}/{i}.png": b"x" for i in range(10_000)}, zipfile.ZIP_STORED),
            "too_many_files",
            "data.zip",
        ),
        Case(
            "100,000 empty entries",
            make_zip([(f"{i}", b"") for i in range(100_000)], zipfile.ZIP_STORED),
            "too_many_files",
            "data.zip",
        ),
        Case(
            "PNG decompression bomb (60000²)",
            make_zip({"a/bomb.png": _png_bomb(60000, 60000)} | class_folders({"b": 9})),
            "one_class",
            "data.zip",
        ),
        Case(
            "PNGs totalling 0.5 gigapixel",
            make_zip({f"{c}/{i}.png": _png(4096, 4096) for c in "ab" for i in range(16)}),
            "too_many_pixels",
            "data.zip",
        ),
        Case(
            "1,000 classes",
            make_zip({f"class{c}/{i}.png": _png(4, 4, c % 250) for c in range(1000) for i in range(5)}),
            "too_many_classes",
            "data.zip",
        ),
        Case(
            "markup in class folder names",
            make_zip(class_folders({MARKUP_FOLDER: 40, MARKUP["link"]: 200})),
            "image",
            "data.zip",
        ),
        Case(".npz with pickled object arrays", buffer.getvalue(), "npz_object", "organ.npz"),
        Case(
            ".npz with the wrong keys",
            _npz(x_train=np.zeros((3, 28, 28)), y_train=np.zeros(3)),
            "npz_keys",
            "organ.npz",
        ),
        Case(
            ".npz with mismatched lengths", _npz(**medmnist(train_labels=np.zeros((5, 1)))), "npz_shapes", "organ.npz"
        ),
        Case(".npz with NaN and inf pixels", _npz(**medmnist(train_images=nan_images)), "npz_values", "organ.npz"),
        Case(
            ".npz with 1,000 classes",
            _npz(**medmnist(n=(3000, 1000, 1000), classes=1000)),
            "too_many_classes",
            "organ.npz",
        ),
        Case(".npz header declaring 10¹² pixels", _npz_header_only((10**6, 1000, 1000)), "not_npz", "organ.npz"),
        Case(
            ".npz of 300 MB of zeros",
            _npz(**medmnist(train_images=np.zeros((300, 1024, 1024), np.uint8), train_labels=np.zeros((300, 1), int))),
            "npz_too_large",
            "organ.npz",
        ),
        Case(
            ".npz with string labels", _npz(**medmnist(train_labels=np.array([["a"]] * 30))), "npz_dtype", "organ.npz"
        ),
        Case(
            ".npz with fractional labels",
            _npz(**medmnist(train_labels=np.full((30, 1), 0.5))),
            "npz_labels",
            "organ.npz",
        ),
        Case(
            ".npz with 0 × 0 images",
            _npz(**medmnist(train_images=np.zeros((30, 0, 0), np.uint8))),
            "npz_shapes",
            "organ.npz",
        ),
    ]


def progress_cases() -> list[Case]:
    from primer.progress import Progress

    good = Progress()
    good.mark_read("imaging", "hounsfield")
    good.record_answer("imaging", "window_mismatch", True)
    header = '{"format": "dl-primer-progress", "version": 1, '
    return [
        Case("a real progress file", good.to_json().encode(), "image", "progress.json"),
        Case("huge (300 kB)", (header + '"pad": "' + "x" * 300_000 + '"}').encode(), "too_large", "progress.json"),
        Case(
            "nested 100,000 deep",
            (header + '"lessons_read": ' + "[" * 100_000 + "]" * 100_000 + "}").encode(),
            "wrong_format",
            "progress.json",
        ),
        Case("binary", bytes(range(256)) * 4, "not_json", "progress.json"),
        Case("JSON of another app", json.dumps({"hello": "world"}).encode(), "wrong_format", "progress.json"),
        Case(
            "markup in ids",
            (header + json.dumps({"lessons_read": {MARKUP["html"]: [MARKUP["link"]]}, "answers": {}})[1:]).encode(),
            "image",
            "progress.json",
        ),
        Case(
            "ids of 10,000 characters",
            (header + json.dumps({"lessons_read": {"imaging": ["x" * 10_000]}, "answers": {}})[1:]).encode(),
            "wrong_format",
            "progress.json",
        ),
        Case(
            "100,000 answers",
            (
                header
                + json.dumps({"lessons_read": {}, "answers": {"imaging": {f"q{i}": True for i in range(100_000)}}})[1:]
            ).encode(),
            "too_large",
            "progress.json",
        ),
    ]


def every_shipped_dicom_zip() -> bytes:
    """Every file pydicom and pydicom-data ship, in two class folders (alternating), as one zip."""
    files = {}
    for i, path in enumerate(shipped_dicom_files()):
        with open(path, "rb") as f:
            files[f"class{i % 2}/{i:03d}_{os.path.basename(path)}"] = f.read()
    return make_zip(files, zipfile.ZIP_STORED)


# ────────────────────────────────────────── driver ───────────────────────────────────────────


@dataclass(frozen=True)
class Uploader:
    """One file uploader in the app: where it lives and how to get it on screen."""

    name: str
    page: str
    key: str
    kind: str  # "dicom", "dataset" or "progress": which cases it takes
    query: dict = field(default_factory=dict)
    setup: Callable | None = None  # moves controls after the page opens
    shows_image: Callable | None = None  # at → True when the file's image (or data) is on screen


def _texts(at) -> str:
    kinds = ("markdown", "caption", "text", "success", "info", "warning", "error", "subheader")
    return "\n".join(str(e.value) for kind in kinds for e in at.get(kind))


def _english(key: str) -> str:
    from primer import i18n

    return i18n.translate(key, "en")


def _saliency_setup(at) -> None:
    at.checkbox(key="attrib.show_grid").set_value(False).run()
    at.button_group(key="attrib.source").set_value("upload").run()


UPLOADERS: dict[str, Uploader] = {
    u.name: u
    for u in (
        Uploader(
            "imaging viewer + DICOM-to-tensor",
            "views/imaging.py",
            "viewer.upload",
            "dicom",
            setup=lambda at: at.selectbox(key="viewer.source").set_value("upload").run(),
            # the viewer's image and the tensor lab's final step both on screen
            shows_image=lambda at: (
                any(c.proto.id.endswith("viewer.image") for c in at.get("plotly_chart"))
                and any("The network receives" in s.value or "1 × " in s.value for s in at.success)
            ),
        ),
        Uploader(
            "convolution image",
            "views/convolutions.py",
            "kernel.file",
            "dicom",
            query={"kernel.image": "upload"},
            shows_image=lambda at: any(t.value.startswith("Showing:") for t in at.text),
        ),
        Uploader(
            "saliency image",
            "views/saliency.py",
            "saliency.upload",
            "dicom",
            setup=_saliency_setup,
            shows_image=lambda at: "P(lesion) = **" in _texts(at),
        ),
        Uploader(
            "training own data",
            "views/training.py",
            "training.upload",
            "dataset",
            shows_image=lambda at: any(s.value.startswith("Loaded ") for s in at.success),
        ),
        Uploader(
            "progress file",
            "views/progress.py",
            "progress_upload",
            "progress",
            shows_image=lambda at: any(s.value == _english("progress.loaded") for s in at.success),
        ),
    )
}


@dataclass
class Outcome:
    shown: str  # "image", "message" or "exception"
    message: str  # the first error message on the page (or the exception), "" for an image
    seconds: float
    peak_mb: float  # resident memory high-water mark during the run, above the RSS before it


def _rss_mb(field_name: str) -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field_name):
                return int(line.split()[1]) / 1024
    return float("nan")


def _reset_peak() -> None:
    """Make VmHWM start again from the current RSS (Linux: clear_refs, value 5)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


class Driver:
    """One AppTest session on an uploader's page; `upload` hands it a file and says what showed."""

    def __init__(self, uploader: Uploader, timeout: float = 300):
        from tests.conftest import run_page

        self.uploader = uploader
        self.timeout = timeout
        self.at = run_page(uploader.page, query=uploader.query, timeout=timeout)
        if uploader.setup:
            uploader.setup(self.at)
        if self.at.exception:
            raise AssertionError(f"{uploader.name} did not open: {self.at.exception[0].value}")

    def upload(self, name: str, data: bytes) -> Outcome:
        at = self.at
        _reset_peak()
        before = _rss_mb("VmRSS")
        start = time.perf_counter()
        at.file_uploader(key=self.uploader.key).set_value((name, data, "application/octet-stream")).run(
            timeout=self.timeout
        )
        seconds = time.perf_counter() - start
        peak = max(_rss_mb("VmHWM") - before, 0.0)
        if at.exception:
            return Outcome("exception", str(at.exception[0].value), seconds, peak)
        if at.error:
            return Outcome("message", str(at.error[0].value), seconds, peak)
        if self.uploader.shows_image(at):
            return Outcome("image", "", seconds, peak)
        return Outcome("nothing", _texts(at)[:300], seconds, peak)

    def clear(self) -> None:
        """Remove the file, as the uploader's ✕ does (frees the session's copy)."""
        self.at.file_uploader(key=self.uploader.key).set_value(None).run(timeout=self.timeout)


def cases_for(kind: str) -> list[Case]:
    return {"dicom": dicom_cases, "dataset": dataset_cases, "progress": progress_cases}[kind]()


@cache
def message_start(prefix: str, code: str) -> str:
    """The English message for an error code up to its first placeholder: what a page must show."""
    from primer import i18n

    return i18n.translate(f"{prefix}.error.{code}", "en").split("{")[0].strip()


def unpickled() -> list[str]:
    return list(UNPICKLED)


__all__ = [
    "MARKUP",
    "MARKUP_FOLDER",
    "MARKUP_NAME",
    "UPLOADERS",
    "Case",
    "Driver",
    "Outcome",
    "cases_for",
    "dataset_cases",
    "deflate_bomb",
    "dicom_cases",
    "every_shipped_dicom_zip",
    "image_dataset",
    "message_start",
    "progress_cases",
    "shipped_dicom_files",
    "to_bytes",
    "unpickled",
]
