"""Reading a DICOM image the way a viewer does, and turning it into what a CNN eats.

The path from file to screen, in the order DICOM defines it (PS3.3 C.11, PS3.4 N.2):

    stored values ──modality LUT──▶ modality units ──VOI LUT (window)──▶ display values
    (what the scanner wrote)        (HU for CT)        (what the screen shows; MONOCHROME1 inverts)

`read_dicom` decodes the file (any transfer syntax pydicom and the pylibjpeg plugins can decode)
and applies the modality LUT with pydicom's own functions; colour images come out as RGB.
`apply_window` is the linear VOI function of PS3.3 C.11.2.1.2, written out by hand because it is
what the lesson teaches. `dicom_to_tensor_steps` shows every step from stored values to the
normalised tensor a network receives.

Every problem a user can cause (not a DICOM file, truncated, no image, an unsupported
compression, an absurd declared size) is raised as `DicomError` with a stable `code`; nothing
else escapes `read_dicom`. Uploaded bytes are parsed in memory and never written to disk.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pydicom
from pydicom.datadict import dictionary_has_tag, keyword_for_tag
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import generate_frames
from pydicom.errors import InvalidDicomError
from pydicom.pixels import get_decoder
from pydicom.pixels.processing import apply_color_lut, apply_modality_lut, convert_color_space
from pydicom.pixels.utils import as_pixel_options, pixel_array
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from primer.deid import MetaRow, deidentify, is_identifying, metadata_rows

# ─────────────────────────────────────────── errors ───────────────────────────────────────────

# Every code read_dicom (and the helpers below) can raise; the UI keys its messages on these.
ERROR_CODES: tuple[str, ...] = (
    "unreadable",  # the path cannot be opened (missing, a folder, no permission)
    "not_dicom",  # not a DICOM file at all (empty, PNG, random bytes)
    "truncated",  # the file ends before its declared content does
    "corrupt",  # DICOM structure present but broken (bad values, missing required attributes)
    "no_pixel_data",  # a valid DICOM object that holds no image (SR, RT plan, DICOMDIR, ...)
    "unsupported_syntax",  # no decoder here for the transfer syntax (compression)
    "too_large",  # declared image size over the limit; refused before decoding
    "inflated_too_large",  # a deflated data set that inflates past the limit (a "zip bomb")
    "empty_image",  # zero rows, columns or frames
    "unsupported_photometric",  # a colour model this reader does not convert
    "decode_failed",  # the decoder raised: damaged compressed data
    "invalid_window",  # a window width < 1 or a non-finite center/width
    "invalid_frame",  # frame index out of range
    "example_missing",  # a bundled example file is not installed
    "deid_failed",  # the de-identified copy could not be written
)


class DicomError(Exception):
    """A problem caused by the input, with a stable `code` and a `detail` dict for the message."""

    def __init__(self, code: str, detail: dict[str, Any] | None = None) -> None:
        if code not in ERROR_CODES:
            raise ValueError(f"unknown DicomError code {code!r}")
        self.code = code
        self.detail = detail or {}
        super().__init__(f"{code}: {self.detail}" if self.detail else code)


# ────────────────────────────────────────── the image ─────────────────────────────────────────


@dataclass
class DicomImage:
    """What was found in one DICOM file, ready to display.

    `pixels` is (frames, H, W) float32 in modality units (Hounsfield units for CT) for grayscale
    images, or (frames, H, W, 3) uint8 RGB for colour ones. The decoded array is not cached
    inside `dataset` (which keeps only the file's own, possibly compressed, pixel bytes).
    """

    pixels: np.ndarray
    modality: str  # "CT", "MR", "CR", "US", ... ("" if absent)
    photometric: str  # as written in the file: "MONOCHROME1", "YBR_FULL_422", ...
    is_color: bool
    n_frames: int
    rows: int
    cols: int
    pixel_spacing: tuple[float, float] | None  # (row, column) spacing in mm
    pixel_spacing_source: str  # which attribute it came from; ImagerPixelSpacing is at detector
    units: str  # "HU", the file's RescaleType, "RGB" for colour, or "raw"
    file_windows: list[tuple[float, float, str]]  # (center, width, explanation) from the file
    invert_for_display: bool  # MONOCHROME1: the lowest value is shown white
    transfer_syntax: str  # the transfer syntax's name
    bits_stored: int
    value_range: tuple[float, float]  # (min, max) of `pixels`
    lossy: bool  # lossy compression now or in the image's history
    sop_class: str  # e.g. "CT Image Storage"
    dataset: Dataset = field(repr=False)
    # The decoded values as the file stores them, (frames, H, W[, 3]), before any LUT or colour
    # conversion: the first step of dicom_to_tensor_steps, kept so it is not decoded twice.
    stored: np.ndarray | None = field(default=None, repr=False)


# ───────────────────────────────────────── reading ────────────────────────────────────────────

_GRAY = {"MONOCHROME1", "MONOCHROME2"}
_YBR_CONVERTED_HERE = {"YBR_FULL", "YBR_FULL_422"}  # decoders hand these over as YCbCr
_THREE_SAMPLE_COLOR = {"RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT"}
_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
_LOSSY_SYNTAXES = {
    "1.2.840.10008.1.2.4.50",  # JPEG baseline
    "1.2.840.10008.1.2.4.51",  # JPEG extended
    "1.2.840.10008.1.2.4.81",  # JPEG-LS near-lossless
    "1.2.840.10008.1.2.4.91",  # JPEG 2000 (lossy allowed)
    "1.2.840.10008.1.2.4.203",  # HTJ2K (lossy allowed)
}
_J2K_SYNTAXES = {
    "1.2.840.10008.1.2.4.90",
    "1.2.840.10008.1.2.4.91",
    "1.2.840.10008.1.2.4.201",
    "1.2.840.10008.1.2.4.202",
    "1.2.840.10008.1.2.4.203",
}
# Interrupts belong to the user or the server, never to the file.
_NEVER_CAUGHT = (KeyboardInterrupt, SystemExit, GeneratorExit)


def read_dicom(source: bytes | str | os.PathLike, *, max_bytes_decoded: int = 512 * 1024**2) -> DicomImage:
    """Parse, check, decode and convert one DICOM image.

    `source` is the file's bytes (an upload: parsed in memory, never written to disk) or a path.
    `max_bytes_decoded` bounds the memory an image may need once decoded; the declared size
    (rows × columns × frames × samples × bits) is checked before anything is decoded.
    Raises DicomError for every problem caused by the input, and nothing else.
    """
    geometry = None
    try:
        ds = _parse(source, max_bytes_decoded)
        _require_image(ds)
        syntax, decoder = _decoder_for(ds)
        geometry = _geometry(ds)
        _refuse_if_too_large(geometry, max_bytes_decoded)
        if syntax.is_compressed:
            _check_codestream_size(ds, syntax, geometry)
        stored, decoded_photometric = _decode_stored(ds, decoder, syntax, geometry)
        return _to_image(ds, syntax, geometry, stored, decoded_photometric)
    except DicomError:
        raise
    except MemoryError as exc:
        # Same detail keys as a refusal before decoding, so one message fits both
        detail = _size_detail(geometry, max_bytes_decoded) if geometry else {"limit_bytes": max_bytes_decoded}
        raise DicomError("too_large", {**detail, "error": "out of memory while decoding"}) from exc
    except _NEVER_CAUGHT:
        raise
    except BaseException as exc:  # malformed values surface lazily, anywhere inside pydicom
        raise DicomError("corrupt", {"error": _short(exc)}) from exc


def _short(exc: BaseException, limit: int = 400) -> str:
    return f"{type(exc).__name__}: {exc}"[:limit]


def _parse(source: bytes | str | os.PathLike, max_bytes_decoded: int = 512 * 1024**2) -> Dataset:
    """Read the data set: strictly first, then leniently for files without the 128-byte preamble."""
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
    else:
        try:
            with open(os.fspath(source), "rb") as f:
                data = f.read()
        except (OSError, TypeError, ValueError) as exc:
            raise DicomError("unreadable", {"error": _short(exc)}) from exc
    if not data:
        raise DicomError("not_dicom", {"reason": "empty"})
    _refuse_deflate_bomb(data, max_bytes_decoded)

    try:
        return pydicom.dcmread(io.BytesIO(data))
    except InvalidDicomError:
        pass  # no "DICM" marker: see below
    except (EOFError, struct.error) as exc:
        raise DicomError("truncated", {"error": _short(exc)}) from exc
    except Exception as exc:  # pydicom raises OSError "No tag to read at file position" at EOF
        code = "truncated" if "No tag to read" in str(exc) else "corrupt"
        raise DicomError(code, {"error": _short(exc)}) from exc

    # Some old files are a bare data set with no preamble or header; accept one only if it
    # starts the way a DICOM data set does, so PNGs and random bytes are refused.
    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=True)
    except Exception as exc:
        raise DicomError("not_dicom", {"error": _short(exc)}) from exc
    tags = list(ds.keys())
    looks_like_dataset = (
        bool(tags)
        and tags[0].group in (0x0002, 0x0008)
        and all(t.is_private or t.element == 0 or dictionary_has_tag(t) for t in tags)
    )
    if not looks_like_dataset:
        raise DicomError("not_dicom", {"reason": "no DICOM header"})
    return ds


def _refuse_deflate_bomb(data: bytes, max_bytes: int) -> None:
    """Refuse a Deflated Explicit VR file whose data set inflates past `max_bytes`.

    pydicom inflates such a data set whole, with no limit, before anything else is read: one
    megabyte of deflated zeros becomes a gigabyte. So inflate it here first, in bounded steps,
    and only hand it to pydicom once its size is known to fit. The file meta group is read
    through its group length (PS3.10 7.1); its transfer syntax UID is found by value.
    """
    if data[128:132] != b"DICM" or data[132:136] != b"\x02\x00\x00\x00":
        return  # no file meta group at the usual place: pydicom will not inflate anything
    (meta_length,) = struct.unpack("<I", data[140:144])
    meta_end = 144 + meta_length
    if str(DeflatedExplicitVRLittleEndian).encode() not in data[132:meta_end]:
        return
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    inflated, rest = 0, data[meta_end:]
    try:
        # stop at the stream's end too: bytes after it (pydicom pads to an even length) stay in
        # unconsumed_tail for ever, and a loop on `rest` alone would never finish
        while rest and not inflater.eof and inflated <= max_bytes:
            inflated += len(inflater.decompress(rest, 16 * 1024**2))
            rest = inflater.unconsumed_tail
    except zlib.error as exc:
        raise DicomError("corrupt", {"error": _short(exc)}) from exc
    if inflated > max_bytes:
        raise DicomError("inflated_too_large", {"file_bytes": len(data), "limit_bytes": max_bytes})


def _require_image(ds: Dataset) -> None:
    """Refuse files cut short and DICOM objects that carry no image."""
    for raw in ds.elements():  # top-level elements, still raw: value bytes vs declared length
        declared, value = getattr(raw, "length", None), getattr(raw, "value", None)
        if isinstance(value, bytes) and declared not in (None, 0xFFFFFFFF) and len(value) < declared:
            keyword = keyword_for_tag(raw.tag) or f"{raw.tag:08X}"
            raise DicomError("truncated", {"element": keyword, "declared_bytes": declared, "found_bytes": len(value)})
    if any(keyword in ds for keyword in _PIXEL_KEYWORDS):
        return
    if len(ds) == 0:
        raise DicomError("truncated", {"reason": "nothing after the file meta header"})
    if {"Rows", "Columns", "BitsAllocated"} <= set(ds.dir()):
        raise DicomError("truncated", {"reason": "image header without pixel data"})
    raise DicomError("no_pixel_data", {"sop_class": _sop_class_name(ds), "modality": str(ds.get("Modality", "") or "")})


def _sop_class_name(ds: Dataset) -> str:
    uid = ds.get("SOPClassUID") or getattr(ds, "file_meta", {}).get("MediaStorageSOPClassUID")
    return UID(str(uid)).name if uid else ""


def _decoder_for(ds: Dataset) -> tuple[UID, Any]:
    """The transfer syntax and pydicom's decoder for it, or unsupported_syntax.

    A bare data set has no transfer syntax; it can only be uncompressed, read as it was parsed.
    """
    meta = getattr(ds, "file_meta", None)
    if meta is None:
        meta = ds.file_meta = FileMetaDataset()
    if not meta.get("TransferSyntaxUID"):
        implicit_vr, little_endian = ds.original_encoding
        if implicit_vr is None:
            raise DicomError("unsupported_syntax", {"transfer_syntax": "(missing)", "uid": ""})
        if implicit_vr:
            meta.TransferSyntaxUID = ImplicitVRLittleEndian
        else:
            meta.TransferSyntaxUID = ExplicitVRLittleEndian if little_endian else ExplicitVRBigEndian
    syntax = UID(str(meta.TransferSyntaxUID))
    try:
        decoder = get_decoder(syntax)
    except NotImplementedError:
        decoder = None
    if decoder is None or not decoder.is_available:
        raise DicomError("unsupported_syntax", {"transfer_syntax": syntax.name, "uid": str(syntax)})
    return syntax, decoder


@dataclass(frozen=True)
class _Geometry:
    """The Image Pixel module's description of the pixel data (PS3.3 C.7.6.3)."""

    rows: int
    cols: int
    frames: int
    samples: int
    bits_allocated: int
    bits_stored: int
    photometric: str

    @property
    def is_color(self) -> bool:
        return self.photometric not in _GRAY

    @property
    def stored_shape(self) -> tuple[int, ...]:
        return (self.frames, self.rows, self.cols) + ((3,) if self.samples == 3 else ())


def _int_attr(ds: Dataset, keyword: str, default: int | None = None) -> int | None:
    value = ds.get(keyword, default)
    return default if value is None or value == "" else int(value)


def _geometry(ds: Dataset) -> _Geometry:
    missing = [k for k in ("Rows", "Columns", "BitsAllocated") if k not in ds]
    if missing:
        raise DicomError("corrupt", {"missing": missing})
    bits_allocated = _int_attr(ds, "BitsAllocated")
    geometry = _Geometry(
        rows=_int_attr(ds, "Rows"),
        cols=_int_attr(ds, "Columns"),
        frames=_int_attr(ds, "NumberOfFrames", 1),
        samples=_int_attr(ds, "SamplesPerPixel", 1),
        bits_allocated=bits_allocated,
        bits_stored=_int_attr(ds, "BitsStored", bits_allocated),
        photometric=str(ds.get("PhotometricInterpretation", "") or "").strip().upper(),
    )
    g = geometry
    if min(g.rows, g.cols, g.frames) <= 0:
        raise DicomError("empty_image", {"rows": g.rows, "cols": g.cols, "frames": g.frames})
    if g.bits_allocated not in (1, 8, 16, 32, 64) or not 0 < g.bits_stored <= g.bits_allocated:
        raise DicomError("corrupt", {"bits_allocated": g.bits_allocated, "bits_stored": g.bits_stored})
    supported = (
        (g.photometric in _GRAY and g.samples == 1)
        or (g.photometric == "PALETTE COLOR" and g.samples == 1)
        or (g.photometric in _THREE_SAMPLE_COLOR and g.samples == 3)
    )
    if not supported:
        raise DicomError(
            "unsupported_photometric", {"photometric": g.photometric or "(missing)", "samples_per_pixel": g.samples}
        )
    return geometry


def _refuse_if_too_large(g: _Geometry, max_bytes: int) -> None:
    """Refuse, before any allocation, an image whose decoded size exceeds `max_bytes`.

    Counted: the decoder's output (1-bit data is unpacked to a byte per pixel), which the image
    keeps as `stored`, plus ours (float32 per grayscale pixel, 3 bytes per colour pixel).
    """
    detail = _size_detail(g, max_bytes)
    if detail["needed_bytes"] > max_bytes:
        raise DicomError("too_large", detail)


def _size_detail(g: _Geometry, max_bytes: int) -> dict[str, int]:
    """The detail of a too_large error: what the header declares, the memory that would take
    (the decoded values plus our converted copy), and the limit."""
    declared_bytes = g.rows * g.cols * g.frames * g.samples * max(g.bits_allocated, 8) // 8
    return {
        "rows": g.rows,
        "cols": g.cols,
        "frames": g.frames,
        "samples_per_pixel": g.samples,
        "bits_allocated": g.bits_allocated,
        "declared_bytes": declared_bytes,
        "needed_bytes": declared_bytes + g.rows * g.cols * g.frames * (3 if g.is_color else 4),
        "limit_bytes": max_bytes,
    }


def _codestream_size(frame: bytes, syntax: UID) -> tuple[int, int] | None:
    """(width, height) from a JPEG 2000 SIZ or JPEG/JPEG-LS SOF marker segment, if found."""
    if str(syntax) in _J2K_SYNTAXES:
        start = frame.find(b"\xff\x4f\xff\x51")  # SOC then SIZ (ISO/IEC 15444-1 A.5.1)
        if start < 0 or len(frame) < start + 24:
            return None
        xsiz, ysiz, xosiz, yosiz = struct.unpack(">4I", frame[start + 8 : start + 24])
        return xsiz - xosiz, ysiz - yosiz
    offset = 2 if frame[:2] == b"\xff\xd8" else len(frame)  # after SOI (ISO/IEC 10918-1 B.2)
    while offset + 9 <= len(frame) and frame[offset] == 0xFF:
        marker = frame[offset + 1]
        if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF, 0xF7):
            height, width = struct.unpack(">2H", frame[offset + 5 : offset + 9])
            return width, height
        offset += 2 + struct.unpack(">H", frame[offset + 2 : offset + 4])[0]
    return None


def _check_codestream_size(ds: Dataset, syntax: UID, g: _Geometry) -> None:
    """Refuse a compressed frame that claims to be far larger than the DICOM header says.

    JPEG and JPEG 2000 decoders allocate what their own codestream declares, so a crafted file
    could pair a small DICOM header with a huge codestream.
    """
    try:
        frames = generate_frames(ds.PixelData, number_of_frames=g.frames)
        sizes = [_codestream_size(frame, syntax) for frame in frames]
    except Exception:
        return  # nothing readable to inspect: the decoder will report the damage
    for size in sizes:  # every frame: a crafted file may hide its huge frame behind a small one
        if size and size[0] * size[1] > 4 * g.rows * g.cols:
            error = f"codestream declares {size[0]}×{size[1]}, header says {g.cols}×{g.rows}"
            raise DicomError("decode_failed", {"transfer_syntax": syntax.name, "error": error})


def _decode_stored(ds: Dataset, decoder: Any, syntax: UID, g: _Geometry) -> tuple[np.ndarray, str]:
    """Stored values, shaped (frames, H, W[, 3]), and the photometric interpretation they are in.

    Decoded with raw=True, i.e. without pydicom's automatic YCbCr → RGB step: that conversion
    happens in `_to_rgb`, where the lesson can point at it.
    """
    try:
        # Never more frames than the header declares, whatever the byte count allows
        stored, meta = decoder.as_array(ds, raw=True, **as_pixel_options(ds, allow_excess_frames=False))
    except (MemoryError, *_NEVER_CAUGHT):
        raise
    except BaseException as exc:  # Rust decoders (pylibjpeg-rle) panic with a BaseException
        if "less than expected" in str(exc):
            raise DicomError("truncated", {"error": _short(exc)}) from exc
        raise DicomError("decode_failed", {"transfer_syntax": syntax.name, "error": _short(exc)}) from exc
    if stored.size != np.prod(g.stored_shape):
        raise DicomError("decode_failed", {"transfer_syntax": syntax.name, "error": f"decoded {stored.shape}"})
    return native(stored).reshape(g.stored_shape), str(meta.get("photometric_interpretation", g.photometric))


def native(values: np.ndarray) -> np.ndarray:
    """`values` in this machine's byte order. Big-endian files (Explicit VR Big Endian, a retired
    syntax pydicom still reads) decode to big-endian arrays; nothing past the reader should have
    to know that (orjson, Plotly and torch refuse or mishandle non-native arrays)."""
    return values if values.dtype.isnative else values.astype(values.dtype.newbyteorder("="))


def _to_image(ds: Dataset, syntax: UID, g: _Geometry, stored: np.ndarray, decoded_photometric: str) -> DicomImage:
    if g.photometric in _GRAY:
        pixels, units = _to_modality_units(stored, ds)
    elif g.photometric == "PALETTE COLOR":
        pixels, units = _palette_to_rgb(stored, ds), "RGB"
    else:
        pixels, units = _to_rgb(stored, decoded_photometric, g.bits_stored), "RGB"
    spacing, spacing_source = _pixel_spacing(ds)
    return DicomImage(
        pixels=pixels,
        modality=str(ds.get("Modality", "") or ""),
        photometric=g.photometric,
        is_color=g.is_color,
        n_frames=g.frames,
        rows=g.rows,
        cols=g.cols,
        pixel_spacing=spacing,
        pixel_spacing_source=spacing_source,
        units=units,
        file_windows=[] if g.is_color else _file_windows(ds),
        invert_for_display=g.photometric == "MONOCHROME1",
        transfer_syntax=syntax.name,
        bits_stored=g.bits_stored,
        value_range=(float(pixels.min()), float(pixels.max())),
        lossy=str(syntax) in _LOSSY_SYNTAXES or str(ds.get("LossyImageCompression", "")) == "01",
        sop_class=_sop_class_name(ds),
        dataset=ds,
        stored=stored,
    )


def _frame_modality_lut_source(ds: Dataset, frame: int) -> Dataset:
    """The data set holding frame `frame`'s modality LUT / rescale.

    Classic images keep Rescale Slope/Intercept at the top level; enhanced multi-frame images
    (e.g. Enhanced CT) keep them per frame or shared, in Pixel Value Transformation Sequence.
    """
    for groups_keyword, index in (("PerFrameFunctionalGroupsSequence", frame), ("SharedFunctionalGroupsSequence", 0)):
        groups = ds.get(groups_keyword)
        if groups and len(groups) > index:
            transform = groups[index].get("PixelValueTransformationSequence")
            if transform:
                return transform[0]
    return ds


def _to_modality_units(stored: np.ndarray, ds: Dataset) -> tuple[np.ndarray, str]:
    """Stored values → modality units with pydicom's apply_modality_lut, one frame at a time.

    Frame by frame so the float64 intermediate pydicom returns stays one frame large.
    """
    frames = stored.shape[0]
    out = np.empty(stored.shape, dtype=np.float32)  # (frames, H, W)
    for i in range(frames):
        out[i] = apply_modality_lut(stored[i], _frame_modality_lut_source(ds, i))
    source = _frame_modality_lut_source(ds, 0)
    if source.get("ModalityLUTSequence"):
        units = str(source.ModalityLUTSequence[0].get("ModalityLUTType", "") or "raw")
    elif "RescaleSlope" in source and "RescaleIntercept" in source:
        rescale_type = str(source.get("RescaleType", "") or "").strip()
        # CT Image IOD: after rescale, values are Hounsfield units unless stated otherwise
        units = rescale_type or ("HU" if ds.get("Modality") == "CT" else "raw")
    else:
        units = "raw"
    if ds.get("Modality") == "RTDOSE" and ds.get("DoseGridScaling") is not None:
        out *= np.float32(ds.DoseGridScaling)  # RT dose: stored integer × scaling = dose
        units = str(ds.get("DoseUnits", "") or "GY")
    if not np.isfinite(out).all():
        raise DicomError("corrupt", {"reason": "non-finite pixel values"})
    return out, units


def _to_uint8(values: np.ndarray, bits: int) -> np.ndarray:
    """Keep the 8 most significant of `bits` bits (displays and CNNs take 8-bit colour)."""
    if values.dtype == np.uint8:
        return values
    bits = max(bits, int(values.max(initial=0)).bit_length())  # in case bits stored understates
    return (values >> max(bits - 8, 0)).astype(np.uint8)


def _to_rgb(stored: np.ndarray, decoded_photometric: str, bits_stored: int) -> np.ndarray:
    """Decoded colour samples → RGB uint8, converting YCbCr with pydicom's convert_color_space.

    JPEG 2000 decoders already undo YBR_ICT/YBR_RCT and report RGB.
    """
    if decoded_photometric in _YBR_CONVERTED_HERE:
        stored = convert_color_space(stored, decoded_photometric, "RGB", per_frame=True)
    elif decoded_photometric != "RGB":
        raise DicomError("unsupported_photometric", {"photometric": decoded_photometric})
    return _to_uint8(stored, bits_stored)  # (frames, H, W, 3)


def _palette_to_rgb(stored: np.ndarray, ds: Dataset) -> np.ndarray:
    """Palette indices → RGB with pydicom's apply_color_lut, one frame at a time."""
    out = np.empty(stored.shape + (3,), dtype=np.uint8)  # (frames, H, W, 3)
    for i in range(stored.shape[0]):
        rgb = apply_color_lut(stored[i], ds)
        # 16-bit tables hold 0–65535; some writers put 8-bit values in a 16-bit table
        out[i] = _to_uint8(rgb, 16 if rgb.max(initial=0) > 255 else 8)
    return out


def _valid_spacing(value: Any) -> tuple[float, float] | None:
    try:
        row, col = (float(v) for v in value)
    except (TypeError, ValueError):
        return None
    if not (np.isfinite(row) and np.isfinite(col) and row > 0 and col > 0):
        return None
    return row, col


def _pixel_spacing(ds: Dataset) -> tuple[tuple[float, float] | None, str]:
    """Physical pixel size in mm and where it came from (None, "" when unknown)."""
    candidates: list[tuple[str, Any]] = [("PixelSpacing", ds.get("PixelSpacing"))]
    shared = ds.get("SharedFunctionalGroupsSequence")
    if shared and shared[0].get("PixelMeasuresSequence"):
        measures = shared[0].PixelMeasuresSequence[0]
        candidates.append(("PixelMeasuresSequence", measures.get("PixelSpacing")))
    # Projection radiography: spacing at the detector, larger than at the patient
    candidates.append(("ImagerPixelSpacing", ds.get("ImagerPixelSpacing")))
    for source, value in candidates:
        spacing = _valid_spacing(value)
        if spacing:
            return spacing, source
    regions = ds.get("SequenceOfUltrasoundRegions")
    if regions:
        region = regions[0]
        if region.get("PhysicalUnitsXDirection") == 3 and region.get("PhysicalUnitsYDirection") == 3:
            spacing = _valid_spacing(
                (region.get("PhysicalDeltaY", 0) * 10.0, region.get("PhysicalDeltaX", 0) * 10.0)
            )  # cm → mm
            if spacing:
                return spacing, "SequenceOfUltrasoundRegions"
    return None, ""


def _as_list(value: Any) -> list:
    """A multi-valued element as a list; a single value as a one-item list."""
    if value is None:
        return []
    if isinstance(value, str | bytes) or not hasattr(value, "__iter__"):
        return [value]
    return list(value)


def _file_windows(ds: Dataset) -> list[tuple[float, float, str]]:
    """The windows the file suggests, in modality units, each with its explanation.

    From Window Center/Width (top level, or the Frame VOI LUT of enhanced images, first frame);
    a VOI LUT Sequence (a lookup table, possibly non-linear) is offered as the linear window that
    spans the table's input range. Invalid entries (width < 1) are skipped.
    """
    source: Dataset = ds
    if "WindowCenter" not in ds:
        for groups_keyword in ("PerFrameFunctionalGroupsSequence", "SharedFunctionalGroupsSequence"):
            groups = ds.get(groups_keyword)
            if groups and groups[0].get("FrameVOILUTSequence"):
                source = groups[0].FrameVOILUTSequence[0]
                break
    windows: list[tuple[float, float, str]] = []
    try:
        centers = _as_list(source.get("WindowCenter"))
        widths = _as_list(source.get("WindowWidth"))
        explanations = _as_list(source.get("WindowCenterWidthExplanation"))
        for i, (center, width) in enumerate(zip(centers, widths, strict=False)):
            center, width = float(center), float(width)
            if np.isfinite(center) and np.isfinite(width) and width >= 1:
                text = str(explanations[i]) if i < len(explanations) else ""
                windows.append((center, width, text.strip() or f"window {i + 1}"))
    except (TypeError, ValueError):
        pass  # unreadable window values: offer none rather than fail the image
    for i, item in enumerate(ds.get("VOILUTSequence") or []):
        try:
            n_entries, first_mapped, _ = (int(v) for v in item.LUTDescriptor)
        except (AttributeError, TypeError, ValueError):
            continue
        n_entries = n_entries or 65536  # PS3.3 C.11.2.1.1: 0 means 2^16 entries
        # Linear window whose ramp covers inputs first_mapped … first_mapped + n - 1 exactly
        center, width = first_mapped + n_entries / 2.0, float(n_entries)
        text = str(item.get("LUTExplanation", "") or "").strip()
        windows.append((center, width, f"VOI LUT {i + 1} (linear approximation){': ' + text if text else ''}"))
    return windows


# ───────────────────────────────────────── windowing ──────────────────────────────────────────

# (center, width) in Hounsfield units; only meaningful for CT in HU.
WINDOW_PRESETS: dict[str, tuple[float, float]] = {
    "lung": (-600.0, 1500.0),
    "mediastinum": (40.0, 400.0),
    "bone": (500.0, 2000.0),
    "brain": (40.0, 80.0),
    "abdomen": (50.0, 350.0),
}


def _check_window(center: float, width: float) -> None:
    if not (np.isfinite(center) and np.isfinite(width)) or width < 1:
        raise DicomError("invalid_window", {"center": center, "width": width})


def apply_window(values: np.ndarray, center: float, width: float) -> np.ndarray:
    """The linear VOI function of DICOM PS3.3 C.11.2.1.2.1, output in [0, 1] as float32.

        x ≤ c − 0.5 − (w − 1)/2           → 0
        x > c − 0.5 + (w − 1)/2           → 1
        otherwise  ((x − (c − 0.5)) / (w − 1) + 0.5)

    The middle line reaches exactly 0 and 1 at the two edges, so clipping it to [0, 1] is the
    whole function. The "− 0.5" and "− 1" are DICOM's: they centre the ramp between integer
    stored values. Width 1 is a hard threshold at c − 0.5.
    """
    _check_window(center, width)
    x = np.asarray(values, dtype=np.float32)
    if width == 1:
        return (x > np.float32(center - 0.5)).astype(np.float32)
    out = x - np.float32(center - 0.5)  # a new array; `values` is never modified
    out *= np.float32(1.0 / (width - 1.0))
    out += np.float32(0.5)
    np.clip(out, 0.0, 1.0, out=out)
    return out


def auto_window(values: np.ndarray, lo_pct: float = 1, hi_pct: float = 99) -> tuple[float, float]:
    """A window whose ramp spans the lo_pct…hi_pct percentiles of `values` (finite ones).

    Under the DICOM linear function, lo maps to 0 and hi to 1 when w = hi − lo + 1 and
    c = (lo + hi)/2 + 0.5. Large images are subsampled on a regular grid (the percentiles of a
    million pixels are stable to well under a display grey level).
    """
    flat = np.asarray(values).ravel()
    if flat.size > 1_000_000:
        flat = flat[:: flat.size // 1_000_000 + 1]
    flat = flat[np.isfinite(flat)]
    if flat.size == 0:
        return 0.5, 1.0
    lo, hi = np.percentile(flat, [lo_pct, hi_pct])
    return float((lo + hi) / 2 + 0.5), float(max(hi - lo + 1, 1.0))


def _check_frame(img: DicomImage, frame: int) -> None:
    if not 0 <= frame < img.n_frames:
        raise DicomError("invalid_frame", {"frame": frame, "n_frames": img.n_frames})


def display_image(img: DicomImage, frame: int, center: float, width: float) -> np.ndarray:
    """What the screen shows for one frame: uint8 (H, W) grayscale or (H, W, 3) RGB.

    Grayscale: window, then invert for MONOCHROME1 (whose low values mean white). Colour images
    are already display values and pass through (a view of `img.pixels`: do not modify it);
    center and width are ignored for them.
    """
    _check_frame(img, frame)
    if img.is_color:
        return img.pixels[frame]
    shown = apply_window(img.pixels[frame], center, width)  # (H, W) in [0, 1]
    if img.invert_for_display:
        np.subtract(1.0, shown, out=shown)
    shown *= 255.0
    shown += 0.5  # round to nearest on the cast below
    return shown.astype(np.uint8)


def window_edges(center: float, width: float) -> tuple[float, float]:
    """The values where the linear VOI ramp leaves black and reaches white (PS3.3 C.11.2.1.2.1).

    Values ≤ the first are shown black (white for MONOCHROME1), values > the second white.
    """
    _check_window(center, width)
    return center - 0.5 - (width - 1) / 2, center - 0.5 + (width - 1) / 2


@dataclass(frozen=True)
class Coverage:
    """Which share of the pixels a window clips at each end, and which it spreads over grey."""

    below: float  # shown at the darkest level (black; white for MONOCHROME1)
    inside: float  # strictly inside the ramp: the only pixels whose differences stay visible
    above: float  # shown at the brightest level (white; black for MONOCHROME1)


def window_coverage(values: np.ndarray, center: float, width: float) -> Coverage:
    """The fractions of `values` the linear VOI function maps to exactly 0, to exactly 1, and in
    between. The ramp reaches 1 at its upper edge, so a value on that edge counts as clipped;
    a width-1 window is a threshold at c − 0.5 (PS3.3 C.11.2.1.2.1)."""
    low, high = window_edges(center, width)
    x = np.asarray(values)
    n = max(int(np.count_nonzero(np.isfinite(x))), 1)
    below = int(np.count_nonzero(x <= low)) / n
    above = int(np.count_nonzero(x > low if width == 1 else x >= high)) / n
    return Coverage(below=below, inside=max(1.0 - below - above, 0.0), above=above)


def hu_presets_apply(img: DicomImage) -> bool:
    """Whether the HU window presets mean anything for this image: grayscale CT values.

    A CT's rescaled values are Hounsfield units unless the file says otherwise; "US"
    (unspecified), which some enhanced CT objects write, is taken as HU for a CT.
    """
    return not img.is_color and (img.units == "HU" or (img.modality == "CT" and img.units in ("US", "raw")))


def suggested_window(img: DicomImage, preset: str | None = None) -> tuple[float, float, str]:
    """The window a viewer opens an image with: (center, width, where it came from).

    Colour: the identity on 0–255 (c = 128, w = 256 maps x to x/255 exactly). Grayscale: the
    given preset if it applies, else the file's own first window, else a soft-tissue window for
    CT, else the 1st–99th percentile window of all frames (stable while scrolling frames).
    """
    if img.is_color:
        return 128.0, 256.0, "colour"
    if preset in WINDOW_PRESETS and hu_presets_apply(img):
        return (*WINDOW_PRESETS[preset], preset)
    if img.file_windows:
        center, width, _ = img.file_windows[0]
        return center, width, "file"
    if hu_presets_apply(img):
        return (*WINDOW_PRESETS["mediastinum"], "mediastinum")
    return (*auto_window(img.pixels), "auto")


@dataclass(frozen=True)
class WindowRange:
    """Slider limits for an image's window: every value the image holds and every window offered."""

    center_min: float
    center_max: float
    width_max: float
    step: float
    width_min: float = 1.0  # the linear VOI function needs w ≥ 1


def _nice_step(raw: float) -> float:
    """The 1, 2 or 5 × 10^k at or above `raw`."""
    exponent = np.floor(np.log10(raw))
    for mantissa in (1.0, 2.0, 5.0, 10.0):
        if mantissa * 10**exponent >= raw:
            return float(mantissa * 10**exponent)
    return float(10 ** (exponent + 1))


def window_range(img: DicomImage, include: tuple[tuple[float, float], ...] = ()) -> WindowRange:
    """Center and width limits covering the image's values, its file windows, its auto window,
    the HU presets when they apply and any `include`d (center, width) pairs (e.g. the lab's
    defaults, so a slider's default always lies inside its range).

    Integer-valued images step by 1 (one stored value) unless the range is very wide; float
    images get about a thousand steps.
    """
    lo, hi = img.value_range
    windows = list(include) + [(c, w) for c, w, _ in img.file_windows] + [auto_window(img.pixels)]
    if hu_presets_apply(img):
        windows += list(WINDOW_PRESETS.values())
    center_lo = min([lo] + [c for c, _ in windows])
    center_hi = max([hi] + [c for c, _ in windows])
    width_hi = max([hi - lo + 1] + [w for _, w in windows])
    sample = img.pixels.ravel()[:: max(img.pixels.size // 100_000, 1)]
    integral = bool(np.all(np.mod(sample, 1) == 0))
    span = max(center_hi - center_lo, width_hi, 1e-6)
    if integral:
        step = 1.0 if span <= 5000 else _nice_step(span / 2000)
    else:
        step = _nice_step(span / 1000)
    return WindowRange(
        center_min=float(np.floor(center_lo / step) * step),
        center_max=float(np.ceil(center_hi / step) * step),
        width_max=float(np.ceil(width_hi / step) * step),
        step=step,
    )


# ──────────────────────────────────── from DICOM to tensor ────────────────────────────────────


@dataclass
class Step:
    """One stage of preprocessing. `name` is a stable id the page translates."""

    name: str  # "stored", "modality" | "luminance", "windowed" | "windowed_inverted", ...
    array: Any  # numpy array, or the final torch tensor
    min: float
    max: float
    dtype: str
    shape: tuple[int, ...]


def _step(name: str, array: Any) -> Step:
    values = array.detach().numpy() if hasattr(array, "detach") else np.asarray(array)
    return Step(
        name=name,
        array=array,
        min=float(values.min()),
        max=float(values.max()),
        dtype=str(array.dtype),
        shape=tuple(array.shape),
    )


# ITU-R BT.601 luma weights: how colour is collapsed to one channel for a grayscale network.
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def dicom_to_tensor_steps(
    img: DicomImage,
    frame: int,
    center: float,
    width: float,
    size: int = 64,
    mean: float | None = None,
    std: float | None = None,
) -> list[Step]:
    """Every stage from the file's stored values to a (1, 1, size, size) float32 network input.

    stored (as written) → modality units (HU; for colour, luminance 0–255) → windowed to [0, 1]
    (inverted for MONOCHROME1 so that dense is bright, as in every other image the network sees)
    → resized to size × size (bilinear with antialiasing, aspect ratio not kept) → normalised:
    (x − mean) / std, with the image's own mean and std unless the model's are given.
    """
    import torch
    import torch.nn.functional as F

    _check_frame(img, frame)
    _check_window(center, width)
    try:  # the true stored values: kept from reading, else this frame decoded again
        stored = (
            img.stored[frame] if img.stored is not None else native(pixel_array(img.dataset, index=frame, raw=True))
        )
    except _NEVER_CAUGHT:
        raise
    except BaseException as exc:
        raise DicomError("decode_failed", {"transfer_syntax": img.transfer_syntax, "error": _short(exc)}) from exc
    steps = [_step("stored", stored)]

    if img.is_color:
        modality = img.pixels[frame].astype(np.float32) @ _LUMA  # (H, W, 3) → (H, W)
        steps.append(_step("luminance", modality))
    else:
        modality = img.pixels[frame]  # (H, W)
        steps.append(_step("modality", modality))

    windowed = apply_window(modality, center, width)  # (H, W) in [0, 1]
    if img.invert_for_display:
        windowed = 1.0 - windowed
    steps.append(_step("windowed_inverted" if img.invert_for_display else "windowed", windowed))

    x = torch.from_numpy(np.ascontiguousarray(windowed))[None, None]  # (1, 1, H, W)
    resized = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    steps.append(_step("resized", resized[0, 0].numpy()))  # (size, size)

    mu = float(resized.mean()) if mean is None else float(mean)
    sigma = float(resized.std()) if std is None else float(std)
    normalized = (resized - mu) / max(sigma, 1e-6)  # (1, 1, size, size)
    steps.append(_step("normalized", normalized.to(torch.float32)))
    return steps


# ────────────────────────────────────────── examples ──────────────────────────────────────────


@dataclass(frozen=True)
class Example:
    """A DICOM file shipped with pydicom or pydicom-data, and what it is good for teaching."""

    id: str
    file_name: str
    modality: str
    teaches: dict[str, str]  # {"en": ..., "zh": ...}, one line each
    preset: str | None = None  # a WINDOW_PRESETS key that suits it, if any


_CATALOGUE: tuple[Example, ...] = (
    Example(
        "ct_small",
        "CT_small.dcm",
        "CT",
        {
            "en": "Stored CT numbers become Hounsfield units through rescale slope and intercept.",
            "zh": "CT 的存储值通过重标斜率和截距（Rescale Slope/Intercept）换算为 CT 值（HU）。",
        },
        "mediastinum",
    ),
    Example(
        "ct_head_j2k",
        "693_J2KR.dcm",
        "CT",
        {
            "en": "A head CT compressed losslessly with JPEG 2000: a narrow brain window separates grey from white matter.",
            "zh": "采用 JPEG 2000 无损压缩的头颅 CT：用较窄的脑窗才能区分灰质和白质。",
        },
        "brain",
    ),
    Example(
        "mr_small",
        "MR_small.dcm",
        "MR",
        {
            "en": "MR signal has no absolute unit, so the window is set from each image's own values.",
            "zh": "MR 信号强度没有绝对单位，窗宽窗位需根据每幅图像自身的数值设定。",
        },
    ),
    Example(
        "mr_multiframe",
        "emri_small.dcm",
        "MR",
        {
            "en": "One multi-frame (Enhanced MR) file holds ten frames: scroll through them like slices.",
            "zh": "一个多帧（Enhanced MR）文件包含十帧图像，可像翻阅层面一样逐帧浏览。",
        },
    ),
    Example(
        "mr_jpeg_ls",
        "emri_small_jpeg_ls_lossless.dcm",
        "MR",
        {
            "en": "The same ten MR frames stored with lossless JPEG-LS: smaller file, identical pixels.",
            "zh": "同样的十帧 MR 以 JPEG-LS 无损压缩存储：文件更小，像素完全相同。",
        },
    ),
    Example(
        "ct_enhanced",
        "eCT_Supplemental.dcm",
        "CT",
        {
            "en": "An Enhanced CT object keeps rescale and window settings in functional group sequences, frame by frame.",
            "zh": "Enhanced CT（多帧 CT）对象把重标参数和窗设置存放在功能组序列中，可逐帧设定。",
        },
        "brain",
    ),
    Example(
        "cr_chest",
        "RG1_UNCR.dcm",
        "CR",
        {
            "en": "A chest radiograph stored as MONOCHROME1: low values mean white, so the viewer inverts.",
            "zh": "以 MONOCHROME1 存储的胸部 X 线片：数值越小显示越白，显示时需反转灰度。",
        },
    ),
    Example(
        "cr_tibia_j2k",
        "RG3_J2KR.dcm",
        "CR",
        {
            "en": "A tibia radiograph (lossless JPEG 2000, MONOCHROME1): high resolution costs memory and time.",
            "zh": "胫骨 X 线片（JPEG 2000 无损，MONOCHROME1）：高分辨率意味着更多内存与计算。",
        },
    ),
    Example(
        "nm_jpeg_lossless",
        "JPEG-LL.dcm",
        "NM",
        {
            "en": "A whole-body bone scan with lossless JPEG: counts, not densities, so no HU presets.",
            "zh": "无损 JPEG 压缩的全身骨显像：数值是计数而非密度，HU 预设窗不适用。",
        },
    ),
    Example(
        "us_rgb",
        "US1_UNCR.dcm",
        "US",
        {
            "en": "A power Doppler ultrasound stored as RGB: its text is burned into the pixels, out of reach of tag de-identification.",
            "zh": "以 RGB 存储的能量多普勒超声：图上的文字直接烧录在像素里，删除标签也去不掉。",
        },
    ),
    Example(
        "us_palette_rle",
        "OBXXXX1A_rle.dcm",
        "US",
        {
            "en": "Palette colour with RLE lossless compression: each stored value indexes a colour table.",
            "zh": "调色板彩色（PALETTE COLOR）配合 RLE 无损压缩：每个存储值都是颜色查找表中的索引。",
        },
    ),
    Example(
        "us_cine_jpeg",
        "examples_ybr_color.dcm",
        "US",
        {
            "en": "An echocardiography cine in lossy JPEG (YCbCr 4:2:2), converted to RGB for display.",
            "zh": "有损 JPEG（YCbCr 4:2:2）压缩的超声心动图动态序列，显示前需转换为 RGB。",
        },
    ),
)


def _example_path(file_name: str) -> str | None:
    from pydicom.data import get_testdata_file

    try:
        return get_testdata_file(file_name, download=False)
    except Exception:
        return None


# Only the examples whose files are installed here (pydicom-data may be absent).
EXAMPLES: tuple[Example, ...] = tuple(e for e in _CATALOGUE if _example_path(e.file_name))


def load_example(example_id: str) -> DicomImage:
    """Read a bundled example by id (see EXAMPLES)."""
    example = next((e for e in _CATALOGUE if e.id == example_id), None)
    path = _example_path(example.file_name) if example else None
    if path is None:
        raise DicomError("example_missing", {"example_id": example_id})
    return read_dicom(path)


__all__ = [
    "Coverage",
    "DicomError",
    "DicomImage",
    "ERROR_CODES",
    "EXAMPLES",
    "Example",
    "MetaRow",
    "Step",
    "WINDOW_PRESETS",
    "WindowRange",
    "apply_window",
    "auto_window",
    "deidentify",
    "dicom_to_tensor_steps",
    "display_image",
    "hu_presets_apply",
    "is_identifying",
    "load_example",
    "metadata_rows",
    "read_dicom",
    "suggested_window",
    "window_coverage",
    "window_edges",
    "window_range",
]
