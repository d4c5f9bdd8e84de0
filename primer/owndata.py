"""The user's own training data: a .zip of class folders or a MedMNIST-style .npz, from bytes.

Everything happens in memory (the upload is never written to disk, and no member is ever
extracted) and every way a file can be wrong raises OwnDataError with a code the page
translates. What an archive may cost is bounded before the cost is paid:

    entries      counted from the archive's end record before the directory is parsed
    bytes        the members' declared sizes summed before any is read; each read stops there
    pixels       each image's size read from its header before it is decoded, and a total
    arrays       each .npy header (dtype, shape) read before its array is, pickles never

Images become 1-channel 64×64 float tensors, standardised like the phantoms, so every model in
the registry can train on them unchanged; each is shrunk as soon as it is decoded, so memory
holds one full-size image at a time.
"""

from __future__ import annotations

import io
import struct
import zipfile
from collections import Counter
from pathlib import PurePosixPath

import numpy as np
import torch
import torch.nn.functional as F

from primer.train import TensorData, standardize

IMAGE_SIZE = 64
MAX_FILES = 5000  # a classroom data set, not a hospital archive; keeps decoding under a minute
MAX_ENTRIES = 4 * MAX_FILES  # directories and junk included; refused before the directory is read
MAX_UNCOMPRESSED = 400 * 1024**2  # refuses zip bombs before anything is extracted
MAX_MEMBER_BYTES = 64 * 1024**2  # one image file (the upload limit is 64 MB)
MAX_IMAGE_PIXELS = 4096 * 4096  # one image, checked from its header before decoding
MAX_TOTAL_PIXELS = 400 * 1024**2  # all images together: bounds the time spent decoding (~10 s)
MAX_DICOM_BYTES = 64 * 1024**2  # a DICOM in the archive, decoded (the viewer allows more)
MAX_CLASSES = 20  # MedMNIST's largest single-label set has 11; a chart per class must still read
MAX_CLASS_NAME = 64
MAX_NPZ_BYTES = 256 * 1024**2  # all arrays of an .npz together, from their headers
IMAGE_SIDE = (4, 1024)  # an .npz image's height and width, each
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".dcm", ".dicom", ""}
MEDMNIST_SPLITS = ("train", "val", "test")


class OwnDataError(ValueError):
    def __init__(self, code: str, **detail):
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


def to_square_tensor(images: list[np.ndarray], size: int = IMAGE_SIZE) -> torch.Tensor:
    """Grayscale arrays of any shape → (N, size, size) float32, area-resampled."""
    out = [_square(image, size) for image in images]
    return torch.stack(out) if out else torch.empty(0, size, size)


def _square(image: np.ndarray, size: int = IMAGE_SIZE) -> torch.Tensor:
    x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None]  # (1, 1, H, W)
    mode = "area" if min(image.shape) >= size else "bilinear"
    return F.interpolate(x, size=(size, size), mode=mode)[0, 0]  # (size, size)


def _grayscale(array: np.ndarray) -> np.ndarray:
    if array.ndim == 3 and array.shape[-1] in (3, 4):  # (H, W, C) colour → luminance
        return array[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    if array.ndim == 3 and array.shape[-1] == 1:  # (H, W, 1)
        return array[..., 0].astype(np.float32)
    if array.ndim == 3 and array.shape[0] == 1:  # (1, H, W)
        return array[0].astype(np.float32)
    if array.ndim != 2:
        raise ValueError(f"unexpected image shape {array.shape}")
    return array.astype(np.float32)


# ─────────────────────────────────────────── zip ─────────────────────────────────────────────


def _declared_entries(data: bytes) -> int | None:
    """The entry count an archive's end record declares (zip64 included), or None if absent.

    Read before zipfile parses the central directory, which builds an object per entry: a
    64 MB upload can declare most of a million empty members."""
    end = data.rfind(b"PK\x05\x06", max(0, len(data) - 22 - 65535))
    if end < 0 or end + 22 > len(data):
        return None
    (entries,) = struct.unpack("<H", data[end + 10 : end + 12])
    locator = end - 20  # zip64 end record locator, just before the end record
    if entries == 0xFFFF and locator >= 0 and data[locator : locator + 4] == b"PK\x06\x07":
        (record,) = struct.unpack("<Q", data[locator + 8 : locator + 16])
        if data[record : record + 4] == b"PK\x06\x06":
            (entries,) = struct.unpack("<Q", data[record + 32 : record + 40])
    return entries


def _open_archive(data: bytes, not_an_archive: str) -> zipfile.ZipFile:
    entries = _declared_entries(data)
    if entries is not None and entries > MAX_ENTRIES:
        raise OwnDataError("too_many_files", count=entries, limit=MAX_FILES)
    try:
        return zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, struct.error) as exc:
        raise OwnDataError(not_an_archive) from exc


def _safe_parts(name: str) -> tuple[str, ...] | None:
    """A member's path as folder names, or None if it could point outside the archive.

    Nothing is ever extracted, but a name like "../../etc/x.png" or "/abs/x.png" is what a
    hostile archive looks like, so its file is skipped and counted rather than read."""
    if "\0" in name:
        return None
    path = PurePosixPath(name.replace("\\", "/"))  # Windows tools write backslashes
    if path.is_absolute() or ".." in path.parts or (path.parts and path.parts[0].endswith(":")):
        return None
    return path.parts


def _class_name(folder: str) -> str:
    """A folder name as a class name: control characters dropped, at most MAX_CLASS_NAME long.
    What it says is kept as written; the page escapes it for wherever it shows it."""
    name = "".join(ch for ch in folder if ch.isprintable()).strip()
    return name[:MAX_CLASS_NAME] or "?"


def _decode_image(name: str, data: bytes) -> np.ndarray:
    """One file → 2-D float array. PNG/JPEG through Pillow, DICOM through primer.dicom.

    Pillow only opens PNG and JPEG here (not every format it knows), and the size in the
    image's header is checked before its pixels are decoded."""
    if data[128:132] == b"DICM" or name.lower().endswith((".dcm", ".dicom")):
        from primer.dicom import auto_window, read_dicom

        image = read_dicom(data, max_bytes_decoded=MAX_DICOM_BYTES)
        pixels = image.pixels[0]
        if image.is_color:
            return _grayscale(pixels)
        center, width = image.file_windows[0][:2] if image.file_windows else auto_window(pixels)
        low = center - width / 2
        out = np.clip((pixels - low) / max(width, 1e-6), 0, 1)
        return 1 - out if image.invert_for_display else out
    from PIL import Image

    with Image.open(io.BytesIO(data), formats=["PNG", "JPEG"]) as img:
        if img.width * img.height > MAX_IMAGE_PIXELS:
            raise ValueError("image too large")
        return _grayscale(np.asarray(img.convert("L") if img.mode not in ("L", "I;16", "I") else img))


def _pixels_declared(name: str, data: bytes) -> int:
    """Width × height from an image's header (0 when the header does not say, e.g. DICOM,
    whose reader checks its own declared size)."""
    if data[128:132] == b"DICM" or name.lower().endswith((".dcm", ".dicom")):
        return 0
    from PIL import Image

    with Image.open(io.BytesIO(data), formats=["PNG", "JPEG"]) as img:
        return img.width * img.height


def load_zip(data: bytes) -> tuple[TensorData, dict]:
    """A zip whose folders are the classes (any depth of a shared top folder is ignored).

    Returns the data and a report: images per class and files skipped (with reasons)."""
    archive = _open_archive(data, "not_zip")
    skipped: Counter = Counter()
    members: list[tuple[zipfile.ZipInfo, tuple[str, ...]]] = []
    for info in archive.infolist():
        if info.is_dir():
            continue
        parts = _safe_parts(info.filename)
        if parts is None:
            skipped["unsafe path"] += 1
            continue
        if not parts or parts[-1].startswith(".") or "__MACOSX" in parts:
            continue
        members.append((info, parts))
    if len(members) > MAX_FILES:
        raise OwnDataError("too_many_files", count=len(members), limit=MAX_FILES)
    if sum(info.file_size for info, _ in members) > MAX_UNCOMPRESSED:
        raise OwnDataError("zip_too_large", limit_mb=MAX_UNCOMPRESSED // 1024**2)
    # Drop common top folders ("dataset/train/normal/x.png") while every image would still sit in
    # a class folder below them, so the class is the first folder that differs.
    image_parts = [parts for _, parts in members if PurePosixPath(parts[-1]).suffix.lower() in IMAGE_SUFFIXES]
    depth = 0
    while image_parts and all(len(p) > depth + 2 for p in image_parts) and len({p[depth] for p in image_parts}) == 1:
        depth += 1
    images, labels = [], []
    total_pixels = 0
    for info, parts in members:
        suffix = PurePosixPath(parts[-1]).suffix.lower()
        if len(parts) < depth + 2:
            skipped["not in a class folder"] += 1
            continue
        if suffix not in IMAGE_SUFFIXES:
            skipped[f"not an image ({suffix[:12]})"] += 1
            continue
        if info.file_size > MAX_MEMBER_BYTES:
            skipped["file too large"] += 1
            continue
        try:
            with archive.open(info) as member:
                content = member.read(MAX_MEMBER_BYTES + 1)  # zipfile also stops at the declared size
            declared = _pixels_declared(parts[-1], content)
            if total_pixels + declared > MAX_TOTAL_PIXELS:
                raise OwnDataError("too_many_pixels", limit_mp=MAX_TOTAL_PIXELS // 1024**2)
            decoded = _decode_image(parts[-1], content)
            total_pixels += declared or decoded.size  # a DICOM's size is known once it is read
            if total_pixels > MAX_TOTAL_PIXELS:
                raise OwnDataError("too_many_pixels", limit_mp=MAX_TOTAL_PIXELS // 1024**2)
            image = _square(decoded)  # (64, 64): the full-size image is dropped here
        except OwnDataError:
            raise
        except Exception:  # any unreadable file is skipped and counted, never fatal
            skipped["unreadable image"] += 1
            continue
        if not torch.isfinite(image).all():
            skipped["unreadable image"] += 1
            continue
        images.append(image)
        labels.append(_class_name(parts[depth]))
    if not images:
        raise OwnDataError("no_images", skipped=sum(skipped.values()))
    class_names = sorted(set(labels))
    if len(class_names) < 2:
        raise OwnDataError("one_class", name=class_names[0])
    if len(class_names) > MAX_CLASSES:
        raise OwnDataError("too_many_classes", count=len(class_names), limit=MAX_CLASSES)
    y = torch.tensor([class_names.index(c) for c in labels])
    counts = Counter(labels)
    if min(counts.values()) < 5:
        raise OwnDataError("too_small", smallest=min(counts, key=counts.get), count=min(counts.values()))
    data = TensorData(
        x=standardize(torch.stack(images).numpy()), y=y, patient=torch.arange(len(y)), classes=tuple(class_names)
    )
    return data, {"per_class": dict(sorted(counts.items())), "skipped": dict(skipped)}


# ─────────────────────────────────────────── npz ─────────────────────────────────────────────


def _npy_header(archive: zipfile.ZipFile, member: str) -> tuple[np.dtype, tuple[int, ...]]:
    """dtype and shape from a .npy member's header, read without reading its array."""
    info = archive.getinfo(member)
    with archive.open(info) as f:
        try:
            version = np.lib.format.read_magic(f)
            read_header = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
            shape, _, dtype = read_header[version](f)
        except Exception as exc:  # not a .npy, or a header numpy will not read
            raise OwnDataError("not_npz") from exc
    if dtype.hasobject:  # object arrays are pickles: loading one runs code from the file
        raise OwnDataError("npz_object", array=member.removesuffix(".npy"))
    if dtype.kind not in "biuf":  # text, dates, records: not pixels or labels
        raise OwnDataError("npz_dtype", array=member.removesuffix(".npy"), dtype=str(dtype)[:40])
    needed = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
    if needed > info.file_size:  # the member cannot hold what its header declares
        raise OwnDataError("not_npz")
    return dtype, tuple(int(n) for n in shape)


def _image_shape_ok(shape: tuple[int, ...]) -> bool:
    """(N, H, W), (N, H, W, 1|3|4) or (N, 1, H, W), each side within IMAGE_SIDE."""
    if len(shape) == 3:
        sides = shape[1:]
    elif len(shape) == 4 and shape[3] in (1, 3, 4):
        sides = shape[1:3]
    elif len(shape) == 4 and shape[1] == 1:
        sides = shape[2:]
    else:
        return False
    return all(IMAGE_SIDE[0] <= side <= IMAGE_SIDE[1] for side in sides)


def load_npz(data: bytes) -> tuple[TensorData, dict]:
    """A MedMNIST-format .npz: train/val/test _images and _labels arrays; its split is kept."""
    archive = _open_archive(data, "not_npz")
    members = {name.removesuffix(".npy"): name for name in archive.namelist() if name.endswith(".npy")}
    needed = {f"{s}_{kind}" for s in MEDMNIST_SPLITS for kind in ("images", "labels")}
    if not needed <= set(members):
        found = ", ".join(sorted(members)[:12]) or "—"
        raise OwnDataError("npz_keys", missing=", ".join(sorted(needed - set(members))), found=found)
    headers = {key: _npy_header(archive, members[key]) for key in sorted(needed)}
    total_images = sum(headers[f"{s}_images"][1][0] if headers[f"{s}_images"][1] else 0 for s in MEDMNIST_SPLITS)
    if total_images > MAX_FILES:
        raise OwnDataError("too_many_files", count=total_images, limit=MAX_FILES)
    total_bytes = sum(dtype.itemsize * int(np.prod(shape, dtype=np.float64)) for dtype, shape in headers.values())
    if total_bytes > MAX_NPZ_BYTES:
        raise OwnDataError("npz_too_large", mb=total_bytes // 1024**2, limit_mb=MAX_NPZ_BYTES // 1024**2)
    for name in MEDMNIST_SPLITS:
        (_, x_shape), (_, y_shape) = headers[f"{name}_images"], headers[f"{name}_labels"]
        y_ok = len(y_shape) in (1, 2) and (len(y_shape) == 1 or y_shape[1] == 1)
        if not _image_shape_ok(x_shape) or not y_ok or x_shape[0] != y_shape[0] or x_shape[0] == 0:
            raise OwnDataError("npz_shapes", split=name, images=str(x_shape), labels=str(y_shape))

    squares, labels, parts = [], [], []
    for index, name in enumerate(MEDMNIST_SPLITS):
        try:
            with archive.open(members[f"{name}_images"]) as f:
                x = np.lib.format.read_array(f, allow_pickle=False)
            with archive.open(members[f"{name}_labels"]) as f:
                y = np.lib.format.read_array(f, allow_pickle=False).reshape(-1)
        except Exception as exc:  # damaged array data
            raise OwnDataError("not_npz") from exc
        if x.dtype.kind == "f" and not np.isfinite(x).all():
            raise OwnDataError("npz_values", split=name)
        if y.dtype.kind == "f" and not (np.isfinite(y).all() and np.all(y == np.round(y))):
            raise OwnDataError("npz_labels", split=name)
        squares.extend(_square(_grayscale(img)) for img in x)  # (64, 64) each; x is dropped next
        labels.append(y.astype(np.int64))
        parts.append(np.full(len(x), index))
    y_all = torch.from_numpy(np.concatenate(labels))
    classes = sorted(int(c) for c in y_all.unique())
    if len(classes) < 2:
        raise OwnDataError("one_class", name=str(classes[0]))
    if len(classes) > MAX_CLASSES:
        raise OwnDataError("too_many_classes", count=len(classes), limit=MAX_CLASSES)
    remap = {c: i for i, c in enumerate(classes)}
    y_all = torch.tensor([remap[int(v)] for v in y_all])
    data = TensorData(
        x=standardize(torch.stack(squares).numpy()),
        y=y_all,
        patient=torch.arange(len(y_all)),
        classes=tuple(str(c) for c in classes),
        split_index=torch.from_numpy(np.concatenate(parts)),
    )
    counts = Counter(int(v) for v in y_all)
    return data, {"per_class": {str(classes[k]): v for k, v in sorted(counts.items())}, "skipped": {}}


def load_upload(name: str, data: bytes) -> tuple[TensorData, dict]:
    """Dispatch on content (magic bytes), not on the file name alone: an .npz is a zip of .npy
    files, so a zip holding MedMNIST's arrays is read as one whatever its name."""
    if data[:4] == b"PK\x03\x04":
        archive = _open_archive(data, "not_zip")
        members = set(archive.namelist())
        if name.lower().endswith(".npz") or {"train_images.npy", "train_labels.npy"} <= members:
            return load_npz(data)
        return load_zip(data)
    if name.lower().endswith(".npz"):
        raise OwnDataError("not_npz")
    raise OwnDataError("not_zip")
