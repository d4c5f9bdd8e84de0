"""The user's own training data: a .zip of class folders or a MedMNIST-style .npz, from bytes.

Everything happens in memory (the upload is never written to disk) and every way a file can be
wrong raises OwnDataError with a code the page translates:

    not_zip, not_npz, zip_too_large, too_many_files, no_classes, one_class, no_images,
    npz_keys, npz_shapes, too_small, too_large

Images become 1-channel 64×64 float tensors, standardised like the phantoms, so every model in
the registry can train on them unchanged.
"""

from __future__ import annotations

import io
import zipfile
from collections import Counter
from pathlib import PurePosixPath

import numpy as np
import torch
import torch.nn.functional as F

from primer.train import TensorData, standardize

IMAGE_SIZE = 64
MAX_FILES = 5000  # a classroom data set, not a hospital archive; keeps decoding under a minute
MAX_UNCOMPRESSED = 400 * 1024**2  # refuses zip bombs before anything is extracted
MAX_IMAGE_PIXELS = 4096 * 4096
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".dcm", ".dicom", ""}
MEDMNIST_SPLITS = ("train", "val", "test")


class OwnDataError(ValueError):
    def __init__(self, code: str, **detail):
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


def to_square_tensor(images: list[np.ndarray], size: int = IMAGE_SIZE) -> torch.Tensor:
    """Grayscale arrays of any shape → (N, size, size) float32, area-resampled."""
    out = []
    for image in images:
        x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None]  # (1, 1, H, W)
        out.append(F.interpolate(x, size=(size, size), mode="area" if min(image.shape) >= size else "bilinear")[0, 0])
    return torch.stack(out) if out else torch.empty(0, size, size)


def _grayscale(array: np.ndarray) -> np.ndarray:
    if array.ndim == 3 and array.shape[-1] in (3, 4):  # (H, W, C) colour → luminance
        return array[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    if array.ndim == 3 and array.shape[0] == 1:
        return array[0]
    if array.ndim != 2:
        raise ValueError(f"unexpected image shape {array.shape}")
    return array.astype(np.float32)


def _decode_image(name: str, data: bytes) -> np.ndarray:
    """One file → 2-D float array. PNG/JPEG through Pillow, DICOM through primer.dicom."""
    if data[128:132] == b"DICM" or name.lower().endswith((".dcm", ".dicom")):
        from primer.dicom import auto_window, read_dicom

        image = read_dicom(data)
        pixels = image.pixels[0]
        if image.is_color:
            return _grayscale(pixels)
        center, width = image.file_windows[0][:2] if image.file_windows else auto_window(pixels)
        low = center - width / 2
        out = np.clip((pixels - low) / max(width, 1e-6), 0, 1)
        return 1 - out if image.invert_for_display else out
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        if img.width * img.height > MAX_IMAGE_PIXELS:
            raise ValueError("image too large")
        return _grayscale(np.asarray(img.convert("L") if img.mode not in ("L", "I;16", "I") else img))


def load_zip(data: bytes) -> tuple[TensorData, dict]:
    """A zip whose folders are the classes (any depth of a shared top folder is ignored).

    Returns the data and a report: images per class and files skipped (with reasons)."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise OwnDataError("not_zip") from exc
    infos = [
        i
        for i in archive.infolist()
        if not i.is_dir() and not PurePosixPath(i.filename).name.startswith(".") and "__MACOSX" not in i.filename
    ]
    if len(infos) > MAX_FILES:
        raise OwnDataError("too_many_files", count=len(infos), limit=MAX_FILES)
    if sum(i.file_size for i in infos) > MAX_UNCOMPRESSED:
        raise OwnDataError("zip_too_large", limit_mb=MAX_UNCOMPRESSED // 1024**2)
    paths = [PurePosixPath(i.filename) for i in infos]
    # Drop common top folders ("dataset/train/normal/x.png") while every image would still sit in
    # a class folder below them, so the class is the first folder that differs.
    image_paths = [p for p in paths if p.suffix.lower() in IMAGE_SUFFIXES]
    depth = 0
    while (
        image_paths
        and all(len(p.parts) > depth + 2 for p in image_paths)
        and len({p.parts[depth] for p in image_paths}) == 1
    ):
        depth += 1
    images, labels, skipped = [], [], Counter()
    class_names: list[str] = []
    for info, path in zip(infos, paths, strict=True):
        if len(path.parts) < depth + 2:
            skipped["not in a class folder"] += 1
            continue
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            skipped[f"not an image ({path.suffix})"] += 1
            continue
        try:
            image = _decode_image(path.name, archive.read(info))
        except Exception:  # any unreadable file is skipped and counted, never fatal
            skipped["unreadable image"] += 1
            continue
        name = path.parts[depth]
        if name not in class_names:
            class_names.append(name)
        images.append(image)
        labels.append(name)
    if not images:
        raise OwnDataError("no_images", skipped=sum(skipped.values()))
    class_names.sort()
    if len(class_names) < 2:
        raise OwnDataError("one_class", name=class_names[0])
    y = torch.tensor([class_names.index(c) for c in labels])
    counts = Counter(labels)
    if min(counts.values()) < 5:
        raise OwnDataError("too_small", smallest=min(counts, key=counts.get), count=min(counts.values()))
    data = TensorData(
        x=standardize(to_square_tensor(images).numpy()), y=y, patient=torch.arange(len(y)), classes=tuple(class_names)
    )
    return data, {"per_class": dict(sorted(counts.items())), "skipped": dict(skipped)}


def load_npz(data: bytes) -> tuple[TensorData, dict]:
    """A MedMNIST-format .npz: train/val/test _images and _labels arrays; its split is kept."""
    try:
        arrays = np.load(io.BytesIO(data), allow_pickle=False)
        keys = set(arrays.files)
    except Exception as exc:  # np.load raises several types for non-npz bytes
        raise OwnDataError("not_npz") from exc
    needed = {f"{s}_{kind}" for s in MEDMNIST_SPLITS for kind in ("images", "labels")}
    if not needed <= keys:
        raise OwnDataError("npz_keys", missing=", ".join(sorted(needed - keys)), found=", ".join(sorted(keys)) or "—")
    images, labels, parts = [], [], []
    for index, name in enumerate(MEDMNIST_SPLITS):
        try:  # arrays load lazily: object (pickled) arrays are refused here
            x, y = arrays[f"{name}_images"], arrays[f"{name}_labels"]
        except Exception as exc:
            raise OwnDataError("not_npz") from exc
        if x.ndim not in (3, 4) or len(x) != len(y) or len(x) == 0:
            raise OwnDataError("npz_shapes", split=name, images=str(x.shape), labels=str(y.shape))
        if x.size > MAX_FILES * 224 * 224 * 3:
            raise OwnDataError("too_large", count=len(x), limit=MAX_FILES)
        y = np.asarray(y).reshape(len(y), -1)
        if y.shape[1] != 1:
            raise OwnDataError("npz_shapes", split=name, images=str(x.shape), labels=str(y.shape))
        images.extend(_grayscale(img) for img in x)
        labels.append(y[:, 0].astype(np.int64))
        parts.append(np.full(len(x), index))
    if sum(len(lab) for lab in labels) > MAX_FILES:
        raise OwnDataError("too_many_files", count=sum(len(lab) for lab in labels), limit=MAX_FILES)
    y_all = torch.from_numpy(np.concatenate(labels))
    classes = sorted(int(c) for c in y_all.unique())
    if len(classes) < 2:
        raise OwnDataError("one_class", name=str(classes[0]))
    remap = {c: i for i, c in enumerate(classes)}
    y_all = torch.tensor([remap[int(v)] for v in y_all])
    data = TensorData(
        x=standardize(to_square_tensor(images).numpy()),
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
        try:
            members = set(zipfile.ZipFile(io.BytesIO(data)).namelist())
        except zipfile.BadZipFile:
            members = set()
        if name.lower().endswith(".npz") or {"train_images.npy", "train_labels.npy"} <= members:
            return load_npz(data)
    if data[:4] == b"PK\x03\x04":
        return load_zip(data)
    if name.lower().endswith(".npz"):
        raise OwnDataError("not_npz")
    raise OwnDataError("not_zip")
