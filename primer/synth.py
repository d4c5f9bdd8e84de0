"""Synthetic lesion phantoms: medical-looking images whose ground truth we know exactly.

A phantom is anatomical background + lesions + quantum noise:

- background: Gaussian noise with a power-law spectrum P(f) ∝ 1/f^β. With β≈3 it has the
  blobby, correlated texture of parenchyma that makes real lesions hard to see ("anatomical
  noise"); with β=0 it is plain white noise.
- lesions: smooth Gaussian blobs, or smooth-edged disks whose border is round or spiculated.
- quantum noise: independent white Gaussian noise per pixel.

Every sample carries its class label, one box per lesion, a semantic mask and an instance map,
so the same data set serves classification, detection and both kinds of segmentation. Because
the background statistics are known exactly, `primer.observer` can compute the ideal observer's
AUC for the signal-known-exactly variant of the task.

Everything is vectorised over the batch: there is no per-image Python loop, and the same config
(including its seed) gives the same bytes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Literal

import numpy as np

Task = Literal["presence", "shape"]
Profile = Literal["gaussian", "disk"]


@dataclass(frozen=True)
class PhantomConfig:
    """Everything that defines a phantom data set. Same config, same bytes."""

    n: int = 2000  # enough for a stable validation AUC (SE ≈ 0.005 at AUC 0.95 with 400 cases)
    size: int = 64  # 64×64 trains in seconds on a CPU and still shows texture and shape
    task: Task = "presence"  # presence: lesion vs no lesion; shape: round vs spiculated lesion
    prevalence: float = 0.5  # balanced classes by default; the metrics chapter re-weights
    beta: float = 3.0  # power-law exponent of the anatomical background (≈3 for breast/lung texture)
    background_std: float = 1.0  # pixel std of the anatomical background: the unit of contrast
    noise_std: float = 0.25  # quantum (white) noise std, in the same unit
    contrast: float = 2.5  # lesion peak in background-std units: a small CNN needs several epochs
    # (At 2.5 the location-unknown task is hard, the signal-known-exactly one almost trivial.)
    profile: Profile = "gaussian"  # smooth blob (presence task) or smooth-edged disk (shape task)
    radius: float = 4.0  # lesion radius in pixels (mask boundary); ~6% of the field like a small nodule
    radius_jitter: float = 0.25  # ± fraction of the radius drawn uniformly per lesion
    min_lesions: int = 1  # lesions in an image that has any
    max_lesions: int = 1  # more than one gives detection and instance-segmentation work
    spicule_amplitude: float = 0.6  # spiculated border reaches (1 + this) × radius at a spike tip
    fixed_position: bool = False  # True: the signal-known-exactly variant (centred, no jitter)
    images_per_patient: int = 1  # >1 makes correlated images per patient (the leakage lab)
    seed: int = 0

    def replace(self, **changes) -> PhantomConfig:
        return replace(self, **changes)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Phantoms:
    """A generated data set. Arrays share the first axis N (one entry per image)."""

    config: PhantomConfig
    images: np.ndarray  # (N, H, W) float32, background mean 0
    labels: np.ndarray  # (N,) int64: presence → 1 lesion present; shape → 1 spiculated
    instance_map: np.ndarray  # (N, H, W) uint8: 0 background, k = k-th lesion of that image
    boxes: np.ndarray  # (N, K, 4) float32 x1, y1, x2, y2 (inclusive pixel indices); NaN rows unused
    n_lesions: np.ndarray  # (N,) int64 number of valid rows in boxes
    centers: np.ndarray  # (N, K, 2) float32 row, col of each lesion centre; NaN rows unused
    patient_id: np.ndarray  # (N,) int64

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def masks(self) -> np.ndarray:
        """Semantic masks, (N, H, W) bool: any lesion pixel."""
        return self.instance_map > 0

    def instance_masks(self, i: int) -> np.ndarray:
        """One boolean mask per lesion of image i, (k, H, W)."""
        k = int(self.n_lesions[i])
        ids = np.arange(1, k + 1)[:, None, None]
        return self.instance_map[i][None] == ids

    def image_boxes(self, i: int) -> np.ndarray:
        """Boxes of image i, (k, 4)."""
        return self.boxes[i, : int(self.n_lesions[i])]

    def subset(self, index) -> Phantoms:
        index = np.asarray(index)
        return Phantoms(
            config=self.config,
            images=self.images[index],
            labels=self.labels[index],
            instance_map=self.instance_map[index],
            boxes=self.boxes[index],
            n_lesions=self.n_lesions[index],
            centers=self.centers[index],
            patient_id=self.patient_id[index],
        )


# ---------------------------------------------------------------------------------------------
# Background texture


def radial_frequency(size: int) -> np.ndarray:
    """|f| in cycles per pixel on the full (size, size) FFT grid."""
    f = np.fft.fftfreq(size)
    return np.hypot(f[:, None], f[None, :])  # (size, size)


def background_filter(size: int, beta: float, background_std: float) -> np.ndarray:
    """Real, even filter H(f) with |H|² ∝ 1/|f|^β, scaled so filtered unit white noise has std
    `background_std`. The DC term takes the value of the lowest non-zero frequency so the image
    mean varies a little between images, as anatomy does, instead of without bound."""
    f = radial_frequency(size)
    f = np.maximum(f, 1.0 / size)
    power = f ** (-beta)
    # Parseval: the pixel variance of filtered unit white noise is mean(|H|²).
    power *= background_std**2 / power.mean()
    return np.sqrt(power)  # (size, size)


def noise_power_spectrum(config: PhantomConfig) -> np.ndarray:
    """Eigenvalues of the total noise covariance (background + quantum), one per DFT frequency.

    The covariance is circulant (the background is white noise circularly filtered), so the
    unitary DFT diagonalises it exactly and these numbers are its eigenvalues. Shape (H, W)."""
    h = background_filter(config.size, config.beta, config.background_std)
    return h**2 + config.noise_std**2


def power_law_backgrounds(
    rng: np.random.Generator, n: int, size: int, beta: float, background_std: float
) -> np.ndarray:
    """n images of stationary Gaussian texture with a 1/f^β spectrum, (n, size, size) float32."""
    white = rng.standard_normal((n, size, size), dtype=np.float64)
    h = background_filter(size, beta, background_std)
    # The filter is real and even, so the product stays Hermitian and the real-input FFT pair
    # (half the work of the full one) computes exactly the same circular filtering.
    half = h[:, : size // 2 + 1]  # (size, size//2 + 1)
    spectrum = np.fft.rfft2(white) * half  # (n, size, size//2 + 1) complex
    return np.fft.irfft2(spectrum, s=(size, size)).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Lesions


def lesion_profile(
    rows: np.ndarray,
    cols: np.ndarray,
    centers: np.ndarray,
    radii: np.ndarray,
    spiky: np.ndarray,
    spike_count: np.ndarray,
    spike_phase: np.ndarray,
    *,
    profile: Profile,
    spicule_amplitude: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Unit-amplitude lesion intensity and mask for M lesions at once.

    rows, cols: pixel coordinates, (M, h, w) or broadcastable to it (a patch per lesion or the
    whole image). centers (M, 2), radii (M,), spiky (M,) bool, spike_count (M,), spike_phase (M,).
    Returns intensity (M, h, w) float32 in [0, 1] and mask (M, h, w) bool.
    """
    dy = rows - centers[:, 0, None, None]  # (M, h, w)
    dx = cols - centers[:, 1, None, None]  # (M, h, w)
    r = np.hypot(dy, dx)
    border = np.broadcast_to(radii[:, None, None], r.shape)
    if spiky.any():
        # Border radius as a function of angle: a circle with sharp radial spikes.
        theta = np.arctan2(dy, dx)
        spikes = np.cos(spike_count[:, None, None] * (theta - spike_phase[:, None, None]))
        spikes = np.maximum(spikes, 0.0) ** 8  # narrow spikes, flat in between
        border = border * (1.0 + spicule_amplitude * spikes * spiky[:, None, None])
    mask = r <= border
    if profile == "gaussian":
        # σ = R/2: the blob falls to e^-2 ≈ 14% of its peak at the mask border.
        intensity = np.exp(-2.0 * (r / border) ** 2)
    else:
        # A disk with a soft, one-pixel edge: the intensity is 0.5 exactly on the border.
        intensity = 1.0 / (1.0 + np.exp((r - border) / 0.5))
    return intensity.astype(np.float32), mask


def _lesion_positions(rng: np.random.Generator, n_images: int, k: int, size: int, margin: float) -> np.ndarray:
    """k non-overlapping centres per image, (n_images, k, 2): one per distinct grid cell."""
    cells_per_side = max(1, int((size - 2 * margin) // (2 * margin)))
    n_cells = cells_per_side**2
    if k > n_cells:
        raise ValueError(f"{k} lesions of this size do not fit in a {size}px image")
    cell = (size - 2 * margin) / cells_per_side
    # A random permutation of cells per image, vectorised: argsort of uniform keys.
    chosen = np.argsort(rng.random((n_images, n_cells)), axis=1)[:, :k]  # (n_images, k)
    cell_row, cell_col = np.divmod(chosen, cells_per_side)
    # Keep centres away from cell borders so neighbouring lesions never touch.
    jitter = rng.uniform(0.5 - 0.25, 0.5 + 0.25, size=(n_images, k, 2))
    if cells_per_side == 1:
        jitter = rng.uniform(0.0, 1.0, size=(n_images, k, 2))
    rows = margin + (cell_row + jitter[..., 0]) * cell
    cols = margin + (cell_col + jitter[..., 1]) * cell
    return np.stack([rows, cols], axis=-1)  # (n_images, k, 2)


def masks_to_boxes(instance_map: np.ndarray, k: int) -> np.ndarray:
    """Tight boxes x1, y1, x2, y2 (inclusive) of instances 1..k in each image; NaN if absent.

    instance_map (N, H, W) → boxes (N, k, 4). Same convention as torchvision.ops.masks_to_boxes.
    """
    n, h, w = instance_map.shape
    boxes = np.full((n, k, 4), np.nan, dtype=np.float32)
    for j in range(k):  # k is the few lesions per image, not the images
        m = instance_map == j + 1  # (N, H, W)
        any_row = m.any(axis=2)  # (N, H)
        any_col = m.any(axis=1)  # (N, W)
        present = any_row.any(axis=1)
        y1 = np.argmax(any_row, axis=1)
        y2 = h - 1 - np.argmax(any_row[:, ::-1], axis=1)
        x1 = np.argmax(any_col, axis=1)
        x2 = w - 1 - np.argmax(any_col[:, ::-1], axis=1)
        boxes[present, j] = np.stack([x1, y1, x2, y2], axis=1)[present]
    return boxes


# ---------------------------------------------------------------------------------------------
# The generator


def generate(config: PhantomConfig = PhantomConfig()) -> Phantoms:
    """Generate a phantom data set; the same config gives the same bytes."""
    c = config
    if not 0.0 <= c.prevalence <= 1.0:
        raise ValueError("prevalence must lie in [0, 1]")
    if c.images_per_patient < 1 or c.n < 1:
        raise ValueError("n and images_per_patient must be at least 1")
    if not 1 <= c.min_lesions <= c.max_lesions:
        raise ValueError("need 1 <= min_lesions <= max_lesions")
    rng = np.random.default_rng(c.seed)
    size, k_max = c.size, c.max_lesions

    # Patients: each has one label, one anatomy and one set of lesions; their images differ by
    # quantum noise and a small shift, like repeat acquisitions. With one image per patient this
    # reduces to independent images.
    n_patients = -(-c.n // c.images_per_patient)
    patient_id = np.repeat(np.arange(n_patients), c.images_per_patient)[: c.n]
    # Exactly round(prevalence × patients) positives, shuffled: a fixed class balance per seed.
    n_pos = int(round(c.prevalence * n_patients))
    patient_label = np.zeros(n_patients, dtype=np.int64)
    patient_label[rng.permutation(n_patients)[:n_pos]] = 1

    anatomy = power_law_backgrounds(rng, n_patients, size, c.beta, c.background_std)

    # Lesions per patient: count, centre, radius, border shape.
    has_lesions = np.ones(n_patients, bool) if c.task == "shape" else patient_label == 1
    counts = rng.integers(c.min_lesions, c.max_lesions + 1, size=n_patients) * has_lesions
    spiky = (patient_label == 1) if c.task == "shape" else np.zeros(n_patients, bool)
    max_radius = c.radius * (1 + c.radius_jitter) * (1 + c.spicule_amplitude * (c.task == "shape"))
    if c.fixed_position:
        centers = np.full((n_patients, k_max, 2), (size - 1) / 2.0)
        radii = np.full((n_patients, k_max), c.radius)
    else:
        centers = _lesion_positions(rng, n_patients, k_max, size, margin=max_radius + 1.0)
        jitter = rng.uniform(-c.radius_jitter, c.radius_jitter, size=(n_patients, k_max))
        radii = c.radius * (1.0 + jitter)
    spike_count = rng.integers(5, 10, size=(n_patients, k_max)).astype(np.float64)
    spike_phase = rng.uniform(0, 2 * np.pi, size=(n_patients, k_max))

    # Images: the patient's anatomy and lesions, shifted by up to a pixel per acquisition.
    repeat_shift = np.zeros((c.n, 2))
    if c.images_per_patient > 1:
        repeat_shift = rng.uniform(-1.0, 1.0, size=(c.n, 2))
    images = anatomy[patient_id].copy()  # (N, H, W)
    instance_map = np.zeros((c.n, size, size), dtype=np.uint8)
    image_centers = centers[patient_id] + repeat_shift[:, None, :]  # (N, K, 2)
    image_counts = counts[patient_id]
    # Each lesion is drawn on a square patch around it, not the whole image: 3 border radii hold
    # all but e^-18 of a Gaussian blob, 4 px past the border all but e^-8 of a soft disk.
    half = int(np.ceil(3 * max_radius if c.profile == "gaussian" else max_radius + 4))
    offsets = np.arange(-half, half + 1)
    for j in range(k_max):  # a handful of lesion slots, each vectorised over images
        idx = np.flatnonzero(image_counts > j)
        if idx.size == 0:
            continue
        pid = patient_id[idx]
        centre = image_centers[idx, j]  # (M, 2)
        # Pixel coordinates of each patch, clipped to the image; clipped duplicates are masked out.
        origin = np.round(centre).astype(np.int64)  # (M, 2)
        raw_r = origin[:, 0, None] + offsets[None, :]  # (M, P)
        raw_c = origin[:, 1, None] + offsets[None, :]  # (M, P)
        inside = ((raw_r >= 0) & (raw_r < size))[:, :, None] & ((raw_c >= 0) & (raw_c < size))[:, None, :]
        patch_r = np.clip(raw_r, 0, size - 1)[:, :, None]  # (M, P, 1)
        patch_c = np.clip(raw_c, 0, size - 1)[:, None, :]  # (M, 1, P)
        intensity, mask = lesion_profile(
            patch_r.astype(np.float64),
            patch_c.astype(np.float64),
            centre,
            radii[pid, j],
            spiky[pid],
            spike_count[pid, j],
            spike_phase[pid, j],
            profile=c.profile,
            spicule_amplitude=c.spicule_amplitude,
        )
        intensity = np.where(inside, intensity, 0.0).astype(np.float32)
        mask &= inside
        image_index = idx[:, None, None]  # (M, 1, 1)
        # add.at, not +=: clipped patch pixels repeat an index (they add 0).
        np.add.at(images, (image_index, patch_r, patch_c), c.contrast * c.background_std * intensity)
        # Lesions never overlap (one per grid cell), so the maximum just writes this slot's id.
        np.maximum.at(instance_map, (image_index, patch_r, patch_c), np.where(mask, np.uint8(j + 1), np.uint8(0)))

    images += c.noise_std * rng.standard_normal(images.shape, dtype=np.float32)

    centers_out = np.where(np.arange(k_max)[None, :, None] < image_counts[:, None, None], image_centers, np.nan)
    return Phantoms(
        config=c,
        images=images.astype(np.float32),
        labels=patient_label[patient_id],
        instance_map=instance_map,
        boxes=masks_to_boxes(instance_map, k_max),
        n_lesions=image_counts.astype(np.int64),
        centers=centers_out.astype(np.float32),
        patient_id=patient_id.astype(np.int64),
    )


def known_signal(config: PhantomConfig) -> np.ndarray:
    """The signal of the signal-known-exactly variant: one lesion of nominal radius at the image
    centre, at full contrast, (H, W) float64. Only defined for round lesions."""
    size = config.size
    grid_r, grid_c = np.meshgrid(np.arange(size, dtype=np.float64), np.arange(size, dtype=np.float64), indexing="ij")
    intensity, _ = lesion_profile(
        grid_r,
        grid_c,
        np.full((1, 2), (size - 1) / 2.0),
        np.array([config.radius]),
        np.zeros(1, bool),
        np.zeros(1),
        np.zeros(1),
        profile=config.profile,
        spicule_amplitude=config.spicule_amplitude,
    )
    return config.contrast * config.background_std * intensity[0].astype(np.float64)


def ske_variant(config: PhantomConfig) -> PhantomConfig:
    """The same task with the signal known exactly: centred, fixed-size, single round lesion."""
    return config.replace(
        task="presence", fixed_position=True, radius_jitter=0.0, min_lesions=1, max_lesions=1, images_per_patient=1
    )
