"""The performance-metrics chapter's labs: their state, the scores they compare, and the cases.

Everything here is pure (arrays in, arrays or dataclasses out); the page only binds widgets and
draws. Five kinds of input feed the labs:

- Model scores: the shipped default classifier's test and validation probabilities, or the run the
  user just trained (`ScoreSource`). Two sources may be compared with a paired test only when they
  scored the same cases (`pairing`).
- Hand-crafted observers on the same test images, always available, so a paired test can always be
  shown: the location-unknown ideal observer (the likelihood ratio averaged over every place and
  size a lesion can take, `observer_scores`), its scanning shortcut (the best single place), and a
  naive max-pixel reader.
- Segmentation: a phantom with several lesions of different sizes and a prediction made by
  perturbing the truth (grow or shrink, shift, a stray blob). A trained U-Net's mask can be passed
  to `overlap_report` in its place.
- Detection: phantoms with up to three lesions and simulated detector output (seeded jitter of
  the true boxes, misses and false positives with scores). A trained detector's output fits the
  same `DetectionSet`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage, special

from primer import metrics, segdet
from primer.labstate import register_lab
from primer.metrics import MetricsError
from primer.synth import PhantomConfig, generate, lesion_profile, noise_power_spectrum

# ---------------------------------------------------------------------------------------------
# Lab state (one dataclass per lab; every field lives in the URL)
# ---------------------------------------------------------------------------------------------


@register_lab("thr")
@dataclass
class ThresholdLab:
    source: str = "default"  # "default" (shipped model) or "user" (the training lab's last run)
    threshold: float = 0.5  # the usual arg-max cut of a two-class softmax


@register_lab("prev")
@dataclass
class PrevalenceLab:
    prevalence_pct: float = 5.0  # between screening (~1%) and a referral clinic (~30%)


@register_lab("roc")
@dataclass
class RocLab:
    comparator: str = "ideal"  # always available, so the paired test can always be shown
    ci_method: str = "delong"  # what papers report; the bootstrap is the check
    confidence: float = 0.95
    num_resamples: int = 2000  # percentile intervals need about this many for stable 2.5% tails


@register_lab("calib")
@dataclass
class CalibrationLab:
    num_bins: int = 10  # the usual choice for a few hundred cases
    temperature_mode: str = "fitted"  # "none", "fitted" (on validation data) or "manual"
    temperature: float = 1.0  # used in manual mode; 1 leaves the model as it is


@register_lab("ovl")
@dataclass
class OverlapLab:
    case: int = 0  # phantom seed: a different set of lesions
    grow: int = 0  # pixels: > 0 dilates (over-segments), < 0 erodes (under-segments)
    shift_x: int = 0  # pixels to the right
    shift_y: int = 0  # pixels down
    blob: bool = False  # add one false-positive blob far from every lesion
    blob_radius: int = 3  # pixels


@register_lab("froc")
@dataclass
class FrocLab:
    iou_threshold: float = 0.5  # PASCAL VOC's rule for a hit
    score_threshold: float = 0.5  # the operating point marked on both curves
    jitter: float = 0.08  # localization error, as a fraction of the lesion's box size: most IoUs 0.6-0.8
    fp_rate: float = 1.0  # false-positive marks per image, on average
    miss_rate: float = 0.1  # share of lesions the simulated detector never marks
    seed: int = 0
    image: int = 0  # which test image is drawn


COMPARATORS = ("other_model", "ideal", "scan", "max_pixel")
CONFIDENCE_LEVELS = (0.8, 0.9, 0.95, 0.99)
PREVALENCE_LEVELS_PCT = (0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 50.0, 70.0, 90.0)
TEMPERATURES = (0.25, 0.33, 0.5, 0.67, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0)


# ---------------------------------------------------------------------------------------------
# Score sources
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScoreSource:
    """One reader's scores on a test set (and on a validation set, for calibration)."""

    key: str  # "default", "user", "ideal", "scan", "max_pixel"
    test_labels: np.ndarray  # (N,) int64 0/1
    test_scores: np.ndarray  # (N,) higher = more suspicious
    cases: str  # which test cases these are: equal strings and equal labels mean the same cases
    is_probability: bool = False  # scores are P(lesion) in [0, 1]
    test_logits: np.ndarray | None = None  # (N,) log-odds, models only
    val_labels: np.ndarray | None = None  # (M,)
    val_logits: np.ndarray | None = None  # (M,) validation log-odds, for temperature scaling


def binary_logits(probs) -> np.ndarray:
    """(N, 2) softmax probabilities → (N,) log-odds of class 1.

    For two classes softmax(z) = sigmoid(z1 - z0), so log p1 - log p0 recovers the logit
    difference exactly, and it is all temperature scaling needs. float32 keeps p0 = e^-Δ accurate
    far past the point where p1 rounds to 1; the clip only guards a probability that underflowed.
    """
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[1] != 2:
        raise MetricsError("not_two_class", {"shape": list(probs.shape)})
    tiny = np.finfo(np.float32).smallest_subnormal
    log_probs = np.log(np.clip(probs, tiny, 1.0))  # (N, 2)
    return log_probs[:, 1] - log_probs[:, 0]


def case_identity(lab) -> str:
    """What fixes a training lab's test cases: the phantom settings and the split (not num_train,
    which only trims the training set)."""
    split = lab.split_config()
    return f"{lab.phantom_config()!r}|by={split.by}|seed={split.seed}|{split.val_fraction}|{split.test_fraction}"


def model_source(key: str, lab, test_labels, test_probs, val_labels, val_probs) -> ScoreSource:
    """A trained two-class model's scores (the default model or a RunResult)."""
    test_logits = binary_logits(test_probs)
    return ScoreSource(
        key=key,
        test_labels=np.asarray(test_labels, dtype=np.int64),
        test_scores=np.asarray(test_probs, dtype=np.float64)[:, 1],
        cases=case_identity(lab),
        is_probability=True,
        test_logits=test_logits,
        val_labels=np.asarray(val_labels, dtype=np.int64),
        val_logits=binary_logits(val_probs),
    )


def default_source(default) -> ScoreSource:
    """The shipped default model's scores (a `primer.default_model.DefaultModel`)."""
    return model_source(
        "default",
        default.lab,
        default.test.y.numpy(),
        default.test_probs,
        default.splits.val.y.numpy(),
        default.val_probs,
    )


def run_source(run) -> ScoreSource:
    """The scores of a run from the training lab (a `primer.train.RunResult`)."""
    return model_source("user", run.lab, run.test_labels, run.test_probs, run.val_labels, run.val_probs)


def pairing(a: ScoreSource, b: ScoreSource) -> str | None:
    """None when a paired test is valid (same cases, same labels), else the reason's code."""
    same_labels = a.test_labels.shape == b.test_labels.shape and np.array_equal(a.test_labels, b.test_labels)
    if a.cases != b.cases or not same_labels:
        return "different_cases"
    return None


# ---------------------------------------------------------------------------------------------
# Hand-crafted observers: the location-unknown ideal observer and two simpler readers
# ---------------------------------------------------------------------------------------------

NUM_RADII = 5  # midpoints of five equal bins of the radius prior: finer changes the AUC < 0.001
GRID_STEP = 0.5  # pixels between candidate lesion centres; the blobs are ~5 px wide


@dataclass(frozen=True)
class LesionPrior:
    """Where and how large a lesion can be, as a grid over the generator's own distribution."""

    centers: np.ndarray  # (P, 2) row, col, on a half-pixel grid
    radii: np.ndarray  # (R,) pixels


def lesion_prior(config: PhantomConfig) -> LesionPrior:
    """The support of `primer.synth.generate`'s lesion centre and radius, as a uniform grid.

    Mirrors the generator: one lesion per positive image, its centre uniform in the middle half of
    one of the cells of a grid (each cell equally likely), its radius uniform within ±jitter of the
    nominal radius. Only the round-blob presence task has this form.
    """
    c = config
    if c.task != "presence" or c.profile != "gaussian" or c.max_lesions != 1 or c.images_per_patient != 1:
        raise MetricsError("observer_unavailable", {"task": c.task})
    if c.radius_jitter > 0:
        edges = np.linspace(c.radius * (1 - c.radius_jitter), c.radius * (1 + c.radius_jitter), NUM_RADII + 1)
        radii = (edges[:-1] + edges[1:]) / 2.0
    else:
        radii = np.array([c.radius])
    if c.fixed_position:
        return LesionPrior(centers=np.full((1, 2), (c.size - 1) / 2.0), radii=radii)
    margin = c.radius * (1 + c.radius_jitter) + 1.0
    cells_per_side = max(1, int((c.size - 2 * margin) // (2 * margin)))
    cell = (c.size - 2 * margin) / cells_per_side
    low, high = (0.25, 0.75) if cells_per_side > 1 else (0.0, 1.0)
    axis_points = []
    for i in range(cells_per_side):
        start, stop = margin + (i + low) * cell, margin + (i + high) * cell
        first = np.ceil(start / GRID_STEP) * GRID_STEP
        axis_points.append(np.arange(first, stop + 1e-9, GRID_STEP))
    # Equal weight per grid point. In the default geometry every cell holds the same number of
    # points (13 per axis), so each cell gets equal odds, as in the generator; in others the
    # counts differ by at most one point per axis.
    rows = np.concatenate(axis_points)
    grid_r, grid_c = np.meshgrid(rows, rows, indexing="ij")
    # Rows and columns are drawn independently, so every (row, col) pair is a valid centre.
    return LesionPrior(centers=np.stack([grid_r.ravel(), grid_c.ravel()], axis=1), radii=radii)


def lesion_signal(config: PhantomConfig, center, radius: float) -> np.ndarray:
    """One round lesion as `generate` draws it, (H, W) float64, at full contrast."""
    size = config.size
    grid_r, grid_c = np.meshgrid(np.arange(size, dtype=np.float64), np.arange(size, dtype=np.float64), indexing="ij")
    intensity, _ = lesion_profile(
        grid_r,
        grid_c,
        np.asarray(center, dtype=np.float64).reshape(1, 2),
        np.array([radius], dtype=np.float64),
        np.zeros(1, bool),
        np.zeros(1),
        np.zeros(1),
        profile=config.profile,
        spicule_amplitude=config.spicule_amplitude,
    )
    return config.contrast * config.background_std * intensity[0].astype(np.float64)


@dataclass(frozen=True)
class ObserverScores:
    log_likelihood_ratio: np.ndarray  # (N,) the ideal observer: log of the prior-averaged ratio
    scan_max: np.ndarray  # (N,) the scanning observer: the best single (place, size) log ratio


def observer_scores(images, config: PhantomConfig, chunk: int = 256) -> ObserverScores:
    """The ideal observer of the location- and size-unknown task, and its scanning shortcut.

    For a lesion s_θ at place and size θ in Gaussian noise of covariance K, the likelihood ratio is
    exp(t_θ − d_θ²/2) with t_θ = gᵀK⁻¹s_θ and d_θ² = s_θᵀK⁻¹s_θ; with θ unknown the ideal observer
    averages it over the prior. K is circulant (see `primer.observer`), so K⁻¹s_θ for every place at
    once is one FFT correlation per size and half-pixel offset. The average over the half-pixel grid
    is a Riemann sum of the integral over the continuous prior.
    """
    # float32 FFTs: twice as fast, and the scores (tens of units) keep ~6 significant digits.
    images = np.asarray(images, dtype=np.float32)  # (N, H, W)
    prior = lesion_prior(config)
    size = config.size
    power = noise_power_spectrum(config)  # (H, W) eigenvalues of K
    base = size // 2
    fractions = np.round((prior.centers % 1.0) / GRID_STEP) * GRID_STEP % 1.0  # (P, 2) sub-pixel part
    offsets = np.unique(fractions, axis=0)  # (F, 2)
    templates = []  # (conj spectrum of K⁻¹s, d², flat index of each centre's shift)
    for radius in prior.radii:
        for offset in offsets:
            signal = lesion_signal(config, base + offset, radius)
            whitened = np.fft.ifft2(np.fft.fft2(signal) / power).real  # K⁻¹ s, (H, W)
            here = np.all(fractions == offset, axis=1)
            shift = np.round(prior.centers[here] - offset - base).astype(np.int64) % size  # (P_f, 2)
            flat = shift[:, 0] * size + shift[:, 1]
            conj_w = np.conj(np.fft.rfft2(whitened)).astype(np.complex64)  # (H, W//2 + 1)
            templates.append((conj_w, float(np.sum(signal * whitened)), flat))
    count = len(prior.radii) * len(prior.centers)
    log_lr = np.empty(images.shape[0])
    scan = np.empty(images.shape[0])
    for start in range(0, images.shape[0], chunk):
        spectrum = np.fft.rfft2(images[start : start + chunk])  # (n, H, W//2 + 1)
        parts = []
        for conj_w, d2, flat in templates:
            correlation = np.fft.irfft2(spectrum * conj_w, s=(size, size))  # (n, H, W): t at every shift
            parts.append(correlation.reshape(len(spectrum), -1)[:, flat].astype(np.float64) - d2 / 2.0)  # (n, P_f)
        log_ratios = np.concatenate(parts, axis=1)  # (n, R * P)
        log_lr[start : start + len(spectrum)] = special.logsumexp(log_ratios, axis=1) - np.log(count)
        scan[start : start + len(spectrum)] = log_ratios.max(axis=1)
    return ObserverScores(log_likelihood_ratio=log_lr, scan_max=scan)


def max_pixel_scores(images) -> np.ndarray:
    """A naive reader: the brightest pixel of each image, (N,)."""
    images = np.asarray(images)
    return images.reshape(images.shape[0], -1).max(axis=1)


def phantom_test_set(lab):
    """The raw (unstandardized) phantom images and labels of a training lab's test split."""
    import torch

    from primer.train import TensorData, split

    phantoms = generate(lab.phantom_config())
    raw = TensorData(
        x=torch.from_numpy(phantoms.images[:, None]),  # (N, 1, H, W), not standardized
        y=torch.from_numpy(phantoms.labels),
        patient=torch.from_numpy(phantoms.patient_id),
        classes=("no lesion", "lesion"),
    )
    test = split(raw, lab.split_config()).test
    return test.x[:, 0].numpy(), test.y.numpy()  # (N, H, W), (N,)


def handcrafted_sources(lab) -> dict[str, ScoreSource]:
    """The hand-crafted readers on the same test images as a model trained in `lab`."""
    images, labels = phantom_test_set(lab)
    cases = case_identity(lab)
    out = {"max_pixel": ScoreSource("max_pixel", labels, max_pixel_scores(images), cases)}
    try:
        observed = observer_scores(images, lab.phantom_config())
    except MetricsError:
        return out  # the shape task has no ideal observer here
    out["ideal"] = ScoreSource("ideal", labels, observed.log_likelihood_ratio, cases)
    out["scan"] = ScoreSource("scan", labels, observed.scan_max, cases)
    return out


@dataclass(frozen=True)
class IdealEstimate:
    """The location-unknown ideal observer's AUC measured on fresh images of the same task."""

    interval: metrics.AucInterval
    num_images: int
    seed: int


def ideal_observer_estimate(config: PhantomConfig, num_images: int = 2000, seed: int = 10_000) -> IdealEstimate:
    """Monte Carlo AUC of the ideal observer on `num_images` newly generated images (not the test
    set), with its DeLong interval: the best any reader can do on this task."""
    fresh = generate(config.replace(n=num_images, seed=seed, prevalence=0.5))
    scores = observer_scores(fresh.images, config).log_likelihood_ratio
    return IdealEstimate(metrics.delong_auc_ci(fresh.labels, scores), num_images, seed)


# ---------------------------------------------------------------------------------------------
# ROC confidence band (stratified bootstrap, vertical averaging)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RocBand:
    fpr: np.ndarray  # (F,) grid
    low: np.ndarray  # (F,) lower percentile of sensitivity at that false-positive rate
    high: np.ndarray  # (F,)


def sensitivity_at_fpr(positives, negatives, fpr) -> np.ndarray:
    """Best sensitivity whose false-positive rate does not exceed each `fpr`, per row.

    positives (B, m), negatives (B, n), fpr (F,) → (B, F). Keeping at most k negatives means the
    threshold must sit above the (k+1)-th highest negative score, so only positives strictly above
    it are found."""
    positives = np.atleast_2d(positives)
    negatives = np.sort(np.atleast_2d(negatives), axis=1)[:, ::-1]  # (B, n) highest first
    n = negatives.shape[1]
    allowed = np.floor(np.asarray(fpr) * n + 1e-9).astype(np.intp)  # (F,) negatives allowed above
    out = np.ones((positives.shape[0], allowed.size))
    inside = allowed < n
    cut = negatives[:, allowed[inside]]  # (B, F_in)
    out[:, inside] = (positives[:, None, :] > cut[:, :, None]).mean(axis=2)
    return out


def roc_band(y_true, scores, confidence: float = 0.95, num_resamples: int = 200, seed: int = 0) -> RocBand:
    """Pointwise percentile band of the ROC curve from a stratified bootstrap."""
    labels = np.asarray(y_true).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    positives, negatives = scores[labels], scores[~labels]
    if positives.size == 0 or negatives.size == 0:
        raise MetricsError("one_class", {"n_positive": int(positives.size), "n_negative": int(negatives.size)})
    rng = np.random.default_rng(seed)
    fpr = np.linspace(0.0, 1.0, 101)
    resampled_pos = positives[rng.integers(0, positives.size, size=(num_resamples, positives.size))]
    resampled_neg = negatives[rng.integers(0, negatives.size, size=(num_resamples, negatives.size))]
    curves = sensitivity_at_fpr(resampled_pos, resampled_neg, fpr)  # (B, F)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(curves, [tail, 100 - tail], axis=0)
    return RocBand(fpr=fpr, low=low, high=high)


# ---------------------------------------------------------------------------------------------
# Segmentation: several lesions of various sizes and an editable prediction
# ---------------------------------------------------------------------------------------------

# Five disks from about 2 to 10 px radius in a 128 px field: small and large lesions side by side.
SEG_CONFIG = PhantomConfig(
    n=1,
    size=128,
    prevalence=1.0,
    min_lesions=5,
    max_lesions=5,
    radius=6.0,
    radius_jitter=0.65,
    profile="disk",
    contrast=3.0,
)


def seg_case(case: int):
    """(image (H, W), instance map (H, W) with lesions 1..k) of one segmentation phantom."""
    phantom = generate(SEG_CONFIG.replace(seed=int(case)))
    return phantom.images[0], phantom.instance_map[0]


def blob_center(truth) -> tuple[float, float]:
    """The background point farthest from every lesion (and from the image edge): where a stray
    false-positive blob is unmistakably not a lesion."""
    truth = np.asarray(truth).astype(bool)
    padded = np.pad(~truth, 1, constant_values=False)  # the edge counts as "not free"
    distance = ndimage.distance_transform_edt(padded)[1:-1, 1:-1]
    row, col = np.unravel_index(int(np.argmax(distance)), distance.shape)
    return float(row), float(col)


def perturbed_prediction(truth, lab: OverlapLab) -> np.ndarray:
    """The truth grown or shrunk, shifted, plus an optional stray blob."""
    truth = np.asarray(truth).astype(bool)
    pred = segdet.dilate(truth, lab.grow) if lab.grow >= 0 else segdet.erode(truth, -lab.grow)
    pred = segdet.shift(pred, (lab.shift_y, lab.shift_x))
    if lab.blob:
        pred = segdet.add_blob(pred, blob_center(truth), lab.blob_radius)
    return pred


@dataclass(frozen=True)
class LesionRow:
    lesion: int  # 1-based
    radius: float  # equivalent-disk radius of the true lesion, pixels
    area: int  # true pixels
    dice: float
    iou: float
    hd95: float


@dataclass(frozen=True)
class OverlapReport:
    dice: float
    iou: float
    hd95: float
    hausdorff: float
    true_positive: int  # pixels
    false_positive: int
    false_negative: int
    overlap: np.ndarray  # (H, W) uint8 codes of segdet.overlap_map
    lesions: tuple[LesionRow, ...]  # smallest first


def overlap_report(instance_map, pred) -> OverlapReport:
    """Whole-image and per-lesion overlap metrics of any predicted mask (a perturbation or a
    trained U-Net's output). Each predicted pixel is charged to the nearest true lesion, so a
    stray blob counts against the lesion it lies closest to."""
    instance_map = np.asarray(instance_map)
    truth = instance_map > 0
    pred = np.asarray(pred).astype(bool)
    codes = segdet.overlap_map(truth, pred)
    rows = []
    if truth.any():
        _, nearest = ndimage.distance_transform_edt(instance_map == 0, return_indices=True)  # (2, H, W)
        owner = instance_map[nearest[0], nearest[1]]  # (H, W) the nearest lesion's id
        for lesion in range(1, int(instance_map.max()) + 1):
            lesion_truth = instance_map == lesion
            if not lesion_truth.any():
                continue
            lesion_pred = pred & (owner == lesion)
            area = int(lesion_truth.sum())
            rows.append(
                LesionRow(
                    lesion=lesion,
                    radius=float(np.sqrt(area / np.pi)),
                    area=area,
                    dice=segdet.dice(lesion_truth, lesion_pred),
                    iou=segdet.iou(lesion_truth, lesion_pred),
                    hd95=segdet.hd95(lesion_truth, lesion_pred),
                )
            )
    return OverlapReport(
        dice=segdet.dice(truth, pred),
        iou=segdet.iou(truth, pred),
        hd95=segdet.hd95(truth, pred),
        hausdorff=segdet.hausdorff(truth, pred),
        true_positive=int(np.count_nonzero(codes == 1)),
        false_positive=int(np.count_nonzero(codes == 2)),
        false_negative=int(np.count_nonzero(codes == 3)),
        overlap=codes,
        lesions=tuple(sorted(rows, key=lambda r: r.area)),
    )


def disk(radius: float, size: int = 64) -> np.ndarray:
    """A centred disk mask, (size, size) bool."""
    grid_r, grid_c = np.indices((size, size)) - (size - 1) / 2.0  # (2, size, size)
    return grid_r**2 + grid_c**2 <= radius**2


def dice_by_radius(lab: OverlapLab, radii=tuple(range(1, 17))) -> tuple[np.ndarray, np.ndarray]:
    """Dice of the same boundary error (grow/shrink and shift, no blob) on disks of each radius:
    the one-pixel error that costs a large lesion a few points costs a small one most of its Dice."""
    radii = np.asarray(radii, dtype=np.float64)
    without_blob = OverlapLab(grow=lab.grow, shift_x=lab.shift_x, shift_y=lab.shift_y)
    values = [segdet.dice(disk(r), perturbed_prediction(disk(r), without_blob)) for r in radii]
    return radii, np.asarray(values)


# ---------------------------------------------------------------------------------------------
# Detection: true boxes from phantoms, simulated detector output
# ---------------------------------------------------------------------------------------------

DET_CONFIG = PhantomConfig(
    n=40,  # enough marks for a smooth FROC, few enough to page through
    size=96,
    prevalence=0.8,  # some lesion-free images: false positives per image counts them too
    min_lesions=1,
    max_lesions=3,
    radius=5.0,
    radius_jitter=0.4,
    contrast=3.0,
    seed=7,
)
MAX_FALSE_POSITIVES = 16  # per image: the simulated rate never needs more


@dataclass(frozen=True)
class DetectionSet:
    """A test set for detection: images, true boxes and one detector's scored boxes per image."""

    images: np.ndarray  # (N, H, W)
    true_boxes: tuple[np.ndarray, ...]  # N arrays (k, 4) x1, y1, x2, y2
    pred_boxes: tuple[np.ndarray, ...]  # N arrays (p, 4)
    pred_scores: tuple[np.ndarray, ...]  # N arrays (p,)


def det_phantoms():
    return generate(DET_CONFIG)


def simulate_detections(phantoms, lab: FrocLab) -> DetectionSet:
    """Seeded fake detector output: each lesion found (or missed), its box jittered, plus false
    positives. Every random number is drawn in the same order whatever the sliders say, so moving
    one slider changes only what that slider controls."""
    rng = np.random.default_rng(lab.seed)
    size = phantoms.config.size
    n_images, k_max = phantoms.boxes.shape[:2]
    miss_draw = rng.random((n_images, k_max))
    box_noise = rng.standard_normal((n_images, k_max, 4))
    hit_logit = rng.normal(1.5, 1.2, (n_images, k_max))  # found lesions: mostly confident
    fp_arrival = np.cumsum(rng.exponential(1.0, (n_images, MAX_FALSE_POSITIVES)), axis=1)  # Poisson process
    fp_center = rng.uniform(4, size - 4, (n_images, MAX_FALSE_POSITIVES, 2))
    fp_half = rng.uniform(3.0, 7.0, (n_images, MAX_FALSE_POSITIVES))
    fp_logit = rng.normal(-1.0, 1.2, (n_images, MAX_FALSE_POSITIVES))  # false alarms: mostly doubtful
    true_boxes, pred_boxes, pred_scores = [], [], []
    for i in range(n_images):
        truth = phantoms.image_boxes(i).astype(np.float64)  # (k, 4) inclusive pixel indices
        true_boxes.append(truth)
        found = miss_draw[i, : len(truth)] >= lab.miss_rate
        center = (truth[:, :2] + truth[:, 2:]) / 2.0  # (k, 2) x, y
        extent = truth[:, 2:] - truth[:, :2]  # (k, 2) width, height, in the true boxes' own convention
        center = center + lab.jitter * extent * box_noise[i, : len(truth), :2]
        extent = extent * np.exp(lab.jitter * box_noise[i, : len(truth), 2:])
        hits = np.concatenate([center - extent / 2.0, center + extent / 2.0], axis=1)[found]  # (h, 4)
        n_fp = int(np.searchsorted(fp_arrival[i], lab.fp_rate, side="right"))
        fp = np.concatenate(
            [fp_center[i, :n_fp] - fp_half[i, :n_fp, None], fp_center[i, :n_fp] + fp_half[i, :n_fp, None]], axis=1
        )  # (f, 4)
        boxes = np.clip(np.concatenate([hits, fp]), 0, size - 1)
        scores = special.expit(np.concatenate([hit_logit[i, : len(truth)][found], fp_logit[i, :n_fp]]))
        pred_boxes.append(boxes)
        pred_scores.append(scores)
    return DetectionSet(phantoms.images, tuple(true_boxes), tuple(pred_boxes), tuple(pred_scores))


@dataclass(frozen=True)
class DetectionReport:
    matches: segdet.DetectionMatches
    pr: segdet.DetectionPR
    froc: segdet.Froc
    recall_at: float  # at the score threshold
    precision_at: float
    fp_per_image_at: float


def detection_report(detections: DetectionSet, iou_threshold: float, score_threshold: float) -> DetectionReport:
    matches = segdet.match_detections(
        detections.pred_boxes, detections.pred_scores, detections.true_boxes, iou_threshold
    )
    kept = matches.scores >= score_threshold
    true_positives = int(np.count_nonzero(matches.is_true_positive & kept))
    false_positives = int(np.count_nonzero(~matches.is_true_positive & kept))
    return DetectionReport(
        matches=matches,
        pr=segdet.detection_pr(matches),
        froc=segdet.froc(matches),
        recall_at=true_positives / matches.num_truths,
        precision_at=true_positives / (true_positives + false_positives) if kept.any() else float("nan"),
        fp_per_image_at=false_positives / matches.num_images,
    )


def image_verdicts(detections: DetectionSet, image: int, iou_threshold: float) -> segdet.ImageMatch:
    """Which of one image's predicted boxes are hits, for drawing."""
    return segdet.match_boxes(
        detections.pred_boxes[image], detections.pred_scores[image], detections.true_boxes[image], iou_threshold
    )


# ---------------------------------------------------------------------------------------------
# Summaries the page prints (numbers only; the page translates the words)
# ---------------------------------------------------------------------------------------------


def natural_frequencies(bayes: metrics.BayesTerms) -> dict[str, float]:
    """The counts of Bayes' theorem told as people out of `bayes.population`."""
    return {
        "diseased": bayes.population * bayes.prevalence,
        "healthy": bayes.population * (1 - bayes.prevalence),
        "tp": bayes.true_positives,
        "fn": bayes.false_negatives,
        "fp": bayes.false_positives,
        "called": bayes.true_positives + bayes.false_positives,
    }


def bayes_story(bayes: metrics.BayesTerms, test_ppv: float) -> dict[str, str]:
    """Every number the prevalence lab's sentence prints, formatted."""
    # One decimal where the expected count is fractional ("43.8 people"), none where it is whole.
    people = {name: f"{value:,.1f}".removesuffix(".0") for name, value in natural_frequencies(bayes).items()}
    shares = {
        "prevalence": bayes.prevalence,
        "sens": bayes.sensitivity,
        "fpr": 1 - bayes.specificity,
        "ppv": bayes.ppv,
        "npv": bayes.npv,
        "test_ppv": test_ppv,
    }
    return people | {name: "—" if not np.isfinite(v) else f"{v:.1%}" for name, v in shares.items()}


def bayes_latex(bayes: metrics.BayesTerms) -> str:
    """PPV by Bayes' theorem with the numbers in it, as LaTeX."""
    se, p, fpr = bayes.sensitivity, bayes.prevalence, 1 - bayes.specificity
    # The strut reserves room above the fraction, which the page's KaTeX box would otherwise clip.
    return (
        rf"\rule{{0pt}}{{2.2em}}\text{{PPV}}=\dfrac{{{se:.3f}\times{p:.3f}}}{{{se:.3f}\times{p:.3f}+{fpr:.3f}\times{1 - p:.3f}}}"
        rf"={bayes.ppv:.3f}"
    )


def per_1000(conf: metrics.Confusion) -> metrics.Confusion:
    """Expected counts scaled to 1,000 people."""
    scale = 1000.0 / conf.n
    return metrics.Confusion(tp=conf.tp * scale, fp=conf.fp * scale, tn=conf.tn * scale, fn=conf.fn * scale)


def temperature_verdict(temperature: float, tolerance: float = 0.05) -> str:
    """ "over" (T > 1: the model was over-confident), "under" (T < 1) or "fine" (within tolerance)."""
    if temperature > 1 + tolerance:
        return "over"
    return "under" if temperature < 1 - tolerance else "fine"


def calibration_summary(labels, logits, temperature: float, num_bins: int) -> dict[str, float]:
    """ECE, Brier score, log loss and AUC of the probabilities sigmoid(logit / T)."""
    probs = metrics.apply_temperature(logits, temperature)
    return {
        "ece": metrics.expected_calibration_error(labels, probs, num_bins),
        "brier": metrics.brier_score(labels, probs),
        "nll": metrics.temperature_nll(logits, labels, temperature),
        "auc": metrics.roc(labels, probs).auc,
    }


def choose_comparator(key: str, source: ScoreSource, models: dict[str, ScoreSource], observers: dict[str, ScoreSource]):
    """(the second reader, None) for a paired comparison, or (None, reason) when there is none:
    "no_other_model", "no_observer" or "not_paired" (the two did not score the same cases)."""
    if key == "other_model":
        other = next((model for name, model in models.items() if name != source.key), None)
        if other is None:
            return None, "no_other_model"
    else:
        other = observers.get(key)
        if other is None:
            return None, "no_observer"
    return (other, None) if pairing(source, other) is None else (None, "not_paired")


def lesion_table(report: OverlapReport) -> dict[str, list]:
    """The per-lesion rows as columns, ready for a table."""
    rows = report.lesions
    return {
        "lesion": [r.lesion for r in rows],
        "radius": [round(r.radius, 1) for r in rows],
        "area": [r.area for r in rows],
        "dice": [round(r.dice, 3) for r in rows],
        "iou": [round(r.iou, 3) for r in rows],
        "hd95": [round(r.hd95, 1) if np.isfinite(r.hd95) else None for r in rows],
    }
