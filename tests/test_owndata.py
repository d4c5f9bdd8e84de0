"""Own data from bytes: class-folder zips and MedMNIST .npz files, and every way they go wrong."""

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from pydicom.data import get_testdata_file

import primer.owndata as owndata
from primer.owndata import OwnDataError, load_npz, load_upload, load_zip
from primer.train import TrainLab, run_experiment


def png_bytes(value: int, size=(40, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full(size[::-1], value, np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def make_zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def class_zip(prefix="dataset/", per_class=6) -> bytes:
    files = {f"{prefix}normal/{i}.png": png_bytes(40 + i) for i in range(per_class)}
    files |= {f"{prefix}nodule/{i}.png": png_bytes(200 - i) for i in range(per_class)}
    files[f"{prefix}nodule/scan.dcm"] = Path(get_testdata_file("CT_small.dcm", download=False)).read_bytes()
    files[f"{prefix}nodule/notes.txt"] = b"not an image"
    files[f"{prefix}normal/broken.png"] = b"\x89PNG broken"
    files["__MACOSX/._junk"] = b"resource fork"
    return make_zip(files)


def test_class_folder_zip_with_png_and_dicom():
    data, report = load_zip(class_zip())
    assert data.classes == ("nodule", "normal")  # sorted, common top folder dropped
    assert data.x.shape == (13, 1, 64, 64)
    assert report["per_class"] == {"nodule": 7, "normal": 6}
    assert report["skipped"] == {"not an image (.txt)": 1, "unreadable image": 1}
    assert abs(data.x.mean().item()) < 1e-5 and abs(data.x.std().item() - 1) < 1e-4
    # brightness survives: the bright class is brighter after standardisation
    assert data.x[data.y == 1].mean() < data.x[data.y == 0].mean()


def test_zip_trains_end_to_end():
    data, _ = load_zip(class_zip(prefix="", per_class=20))
    result = run_experiment(TrainLab(num_epochs=1, width=4), data=data)
    assert result.classes == ("nodule", "normal") and result.fresh_auc is None
    assert result.test_probs.shape[1] == 2


@pytest.mark.parametrize(
    "payload, code",
    [
        (b"plain text", "not_zip"),
        (make_zip({"only/a.png": png_bytes(1), "only/b.png": png_bytes(2)}), "one_class"),
        (make_zip({"a/1.png": png_bytes(1), "b/1.png": png_bytes(2)}), "too_small"),
        (make_zip({"a/readme.txt": b"x", "b/notes.md": b"y"}), "no_images"),
    ],
)
def test_bad_zips_get_codes(payload, code):
    with pytest.raises(OwnDataError) as info:
        load_upload("data.zip", payload)
    assert info.value.code == code


def test_zip_bombs_and_huge_archives_are_refused_before_decoding(monkeypatch):
    monkeypatch.setattr(owndata, "MAX_UNCOMPRESSED", 10_000)
    with pytest.raises(OwnDataError) as info:
        load_zip(make_zip({"a/big.png": b"\0" * 20_000}))
    assert info.value.code == "zip_too_large"
    monkeypatch.setattr(owndata, "MAX_FILES", 3)
    with pytest.raises(OwnDataError) as info:
        load_zip(class_zip())
    assert info.value.code == "too_many_files"


def medmnist_npz(**override) -> bytes:
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 30), ("val", 10), ("test", 12)):
        arrays[f"{split}_images"] = rng.integers(0, 255, (n, 28, 28), dtype=np.uint8)
        arrays[f"{split}_labels"] = rng.integers(3, 5, (n, 1))  # classes 3 and 4
    arrays.update(override)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def test_medmnist_npz_keeps_its_split_and_remaps_labels():
    data, report = load_npz(medmnist_npz())
    assert data.x.shape == (52, 1, 64, 64) and data.classes == ("3", "4")
    assert set(data.y.tolist()) == {0, 1}
    assert torch.equal(data.split_index, torch.tensor([0] * 30 + [1] * 10 + [2] * 12))
    from primer.train import SplitConfig, split

    parts = split(data, SplitConfig())
    assert (len(parts.train), len(parts.val), len(parts.test)) == (30, 10, 12)
    assert sum(report["per_class"].values()) == 52


def test_colour_npz_becomes_grayscale():
    rgb = np.zeros((30, 28, 28, 3), np.uint8)
    rgb[..., 0] = 255
    data, _ = load_npz(medmnist_npz(train_images=rgb))
    assert data.x.shape[1] == 1


@pytest.mark.parametrize(
    "payload, code",
    [
        (medmnist_npz(train_labels=np.zeros((5, 1))), "npz_shapes"),
        (medmnist_npz(val_labels=np.zeros((10, 3))), "npz_shapes"),
        (b"\x93NUMPY not really", "not_npz"),
    ],
)
def test_bad_npz_files_get_codes(payload, code):
    with pytest.raises(OwnDataError) as info:
        load_upload("organ.npz", payload)
    assert info.value.code == code


def test_npz_with_wrong_keys_and_pickles_are_refused():
    buffer = io.BytesIO()
    np.savez(buffer, x_train=np.zeros((3, 28, 28)), y_train=np.zeros(3))
    with pytest.raises(OwnDataError) as info:
        load_upload("organ.npz", buffer.getvalue())
    assert info.value.code == "npz_keys" and "train_images" in info.value.detail["missing"]
    buffer = io.BytesIO()
    np.savez(
        buffer,
        **{
            f"{s}_{k}": np.array([object()] * 3, dtype=object)
            for s in ("train", "val", "test")
            for k in ("images", "labels")
        },
    )
    with pytest.raises(OwnDataError):
        load_upload("organ.npz", buffer.getvalue())
