"""Inputs for the saliency lab that are not phantoms: real CT with a synthetic lesion, and an
uploaded DICOM.

A hybrid image keeps real anatomy and a known truth: a 64×64 patch is cut from a shipped CT
slice (in Hounsfield units), windowed and standardised like the network's training images, and
a smooth lesion from `primer.synth.lesion_profile` is added at a seeded position, so its mask is
exact. The default model never saw real CT: whether its heatmaps still find the lesion is part
of the lesson (domain shift).

An uploaded DICOM (decoded by `primer.dicom.read_dicom`) becomes a network input the way the
imaging chapter shows: windowed as a viewer opens it, resized to 64×64 and standardised. It has
no lesion mask, so its maps can be looked at but not scored.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from primer import dicom
from primer.synth import lesion_profile


@dataclass(frozen=True)
class HybridSource:
    example_id: str  # a primer.dicom example
    window: str  # a primer.dicom.WINDOW_PRESETS key that shows its soft tissue
    downsample: int  # 512-px slices are halved so a 64-px patch spans a few centimetres


HYBRID_SOURCES: dict[str, HybridSource] = {
    "ct_small": HybridSource("ct_small", "mediastinum", 1),  # spine and paraspinal muscle, 0.66 mm px
    "ct_head_j2k": HybridSource("ct_head_j2k", "brain", 2),  # head CT, 0.48 mm px → 0.96 mm
}


@lru_cache(maxsize=4)
def ct_slice_hu(example_id: str) -> np.ndarray:
    """The first frame of a shipped CT example in HU, downsampled by block averaging, (H, W)."""
    source = HYBRID_SOURCES[example_id]
    hu = dicom.load_example(source.example_id).pixels[0].astype(np.float32)  # (H, W)
    k = source.downsample
    if k > 1:
        h, w = (hu.shape[0] // k) * k, (hu.shape[1] // k) * k
        hu = hu[:h, :w].reshape(h // k, k, w // k, k).mean(axis=(1, 3))  # (H/k, W/k)
    hu.setflags(write=False)
    return hu


@dataclass
class HybridCase:
    x: torch.Tensor  # (1, 1, 64, 64) standardised network input, lesion included
    mask: np.ndarray  # (64, 64) bool: the inserted lesion
    display: np.ndarray  # (64, 64) in [0, 1]: the windowed patch with the lesion, for the eye
    hu: np.ndarray  # (64, 64) the original patch in HU, before the lesion
    origin: tuple[int, int]  # top-left corner of the patch in the (downsampled) slice
    window: tuple[float, float]  # (center, width) used


def _patch_origin(hu: np.ndarray, size: int, rng: np.random.Generator) -> tuple[int, int]:
    """A patch position inside the body: ≥ 90% of its pixels denser than −500 HU (not air)."""
    h, w = hu.shape
    body = hu > -500
    best, best_fill = (0, 0), -1.0
    for _ in range(200):
        r, c = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
        fill = float(body[r : r + size, c : c + size].mean())
        if fill >= 0.9:
            return r, c
        if fill > best_fill:
            best, best_fill = (r, c), fill
    return best


def hybrid_case(
    example_id: str = "ct_small", seed: int = 0, contrast: float = 2.5, radius: float = 4.0, size: int = 64
) -> HybridCase:
    """A real-CT patch with one synthetic lesion. Same arguments, same image."""
    source = HYBRID_SOURCES[example_id]
    hu = ct_slice_hu(example_id)
    rng = np.random.default_rng(seed)
    r0, c0 = _patch_origin(hu, size, rng)
    patch = hu[r0 : r0 + size, c0 : c0 + size]  # (size, size) HU
    center, width = dicom.WINDOW_PRESETS[source.window]
    windowed = dicom.apply_window(patch, center, width)  # (size, size) in [0, 1]
    mean, std = float(windowed.mean()), max(float(windowed.std()), 1e-6)

    margin = radius * 1.25 + 2
    lesion_center = rng.uniform(margin, size - 1 - margin, size=(1, 2))
    lesion_radius = radius * rng.uniform(0.75, 1.25, size=1)
    grid_r, grid_c = np.meshgrid(np.arange(size, dtype=np.float64), np.arange(size, dtype=np.float64), indexing="ij")
    intensity, mask = lesion_profile(
        grid_r,
        grid_c,
        lesion_center,
        lesion_radius,
        np.zeros(1, bool),
        np.zeros(1),
        np.zeros(1),
        profile="gaussian",
        spicule_amplitude=0.0,
    )
    # Lesion peak = contrast × the patch's own spread, as a phantom lesion is contrast × the
    # background's spread: the same task difficulty on a different texture.
    with_lesion = windowed + contrast * std * intensity[0]  # (size, size)
    x = torch.from_numpy(((with_lesion - mean) / std).astype(np.float32))[None, None]  # (1, 1, size, size)
    return HybridCase(
        x=x,
        mask=mask[0],
        display=np.clip(with_lesion, 0.0, 1.0).astype(np.float32),
        hu=patch.copy(),
        origin=(r0, c0),
        window=(center, width),
    )


# ---------------------------------------------------------------------------------------------
# An uploaded DICOM


@dataclass
class UploadedInput:
    x: torch.Tensor  # (1, 1, 64, 64) standardised network input
    display: np.ndarray  # (64, 64) in [0, 1]: what the network sees, before standardising
    modality: str
    n_frames: int
    frame: int
    window: tuple[float, float]
    original_shape: tuple[int, int]


def network_input(img: dicom.DicomImage, frame: int = 0, size: int = 64) -> UploadedInput:
    """One frame of a decoded DICOM (primer.dicom.read_dicom) as a network input, windowed as
    a viewer opens it (primer.dicom.suggested_window); colour images by their luminance."""
    frame = int(np.clip(frame, 0, img.n_frames - 1))
    center, width, _ = dicom.suggested_window(img)
    steps = dicom.dicom_to_tensor_steps(img, frame, center, width, size=size)
    resized = next(s.array for s in steps if s.name == "resized")  # (size, size) in [0, 1]
    return UploadedInput(
        x=steps[-1].array.to(torch.float32),  # (1, 1, size, size)
        display=np.asarray(resized, np.float32),
        modality=img.modality or "?",
        n_frames=img.n_frames,
        frame=frame,
        window=(float(center), float(width)),
        original_shape=(img.rows, img.cols),
    )
