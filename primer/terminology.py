"""Terminology and data requirements: the chapter's experiments as small pure functions.

Seven labs share this module (figures live in `primer.terminology_figures`):

    tasks   one phantom labelled four ways: class, boxes, semantic mask, instance masks
    kinds   one small example per kind of learning: supervised, unsupervised, self-supervised,
            weakly supervised
    feat    hand-engineered features + logistic regression vs a small CNN vs the ideal observer
    curve   the learning curve: test AUC against the number of training images
    noise   label noise: random flips and systematically missed positives
    imbal   class imbalance: accuracy, AUC and sensitivity as the disease gets rarer
    leak    patient-level leakage: split by image vs by patient

Everything a CNN learns goes through `primer.train.run_experiment`, so the page can rerun any
stored point live through the training queue and get the same number. Those runs take seconds to
minutes each, so `scripts/learning_curve.py` computes the curves once into
`lessons/terminology/data/*.json`; the page reads the files and only the cheap parts (hand
features, clustering, a linear self-supervised model, class activation maps) run live.

The data of a trained experiment come in three parts generated with their own seeds: the
training images (seeded by the experiment's seed), and a validation and a test set that stay
fixed across seeds and training-set sizes, so error bars show the variation that comes from the
training sample and the initial weights alone.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage

from primer.labstate import register_lab
from primer.observer import ideal_observer, prewhitening_template
from primer.synth import PhantomConfig, Phantoms, generate, known_signal, power_law_backgrounds, ske_variant

if TYPE_CHECKING:  # torch is imported only when something trains or runs a model
    from primer.train import RunResult, TensorData, TrainLab

DATA_DIR = Path(__file__).resolve().parent.parent / "lessons" / "terminology" / "data"
VAL_SEED = 50_001  # fixed validation images, shared by every point of a curve
TEST_SEED = 60_001  # fixed test images; far from the seeds the training chapter uses


class TerminologyError(ValueError):
    """A setting the user can pick that cannot be computed; `code` maps to a translated message."""

    def __init__(self, code: str, **detail):
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


# ---------------------------------------------------------------------------------------------
# Lab state (one dataclass per lab; every field lives in the URL)


@register_lab("tasks")
@dataclass
class TasksLab:
    example: int = 3  # phantom seed; 3 shows three well-separated lesions
    num_lesions: int = 3  # several lesions make boxes and instance masks differ from one mask


@register_lab("kinds")
@dataclass
class KindsLab:
    kind: str = "supervised"  # supervised | unsupervised | self_supervised | weakly_supervised
    num_labels: int = 40  # labelled images for the supervised and self-supervised examples


@register_lab("feat")
@dataclass
class FeaturesLab:
    contrast: float = 2.5  # the training chapter's default lesion contrast
    beta: float = 3.0  # anatomical texture of the default phantoms
    features: str = "prewhitened"  # generic | matched | prewhitened: the hand pipeline's features


@register_lab("curve")
@dataclass
class CurveLab:
    num_train: int = 500  # the point highlighted (and recomputed live on request)
    show_hand: bool = True  # the hand-feature pipelines' curves beside the CNN's


@register_lab("noise")
@dataclass
class NoiseLab:
    kind: str = "random"  # random: flips in both directions; missed: positives labelled normal
    rate: float = 0.2  # fraction of training labels flipped (random) or of positives missed


@register_lab("imbal")
@dataclass
class ImbalanceLab:
    prevalence: float = 0.05  # a screening-like 5%: accuracy already misleads
    fix: str = "none"  # none | oversample | threshold


@register_lab("leak")
@dataclass
class LeakageLab:
    images_per_patient: int = 5  # repeat acquisitions per patient, as in the training preset


# ---------------------------------------------------------------------------------------------
# Task families on one image


def task_example(example: int, num_lesions: int, size: int = 96) -> Phantoms:
    """One phantom with `num_lesions` lesions: its class label, boxes, semantic mask and
    instance masks are the four ways of labelling it. Lesions are a little brighter than in the
    training task so that a reader sees them without help."""
    if not 1 <= num_lesions <= 4:
        raise TerminologyError("num_lesions", value=num_lesions)
    config = PhantomConfig(
        n=1,
        size=size,
        prevalence=1.0,
        contrast=3.5,
        radius=6.0,
        min_lesions=num_lesions,
        max_lesions=num_lesions,
        seed=example,
    )
    return generate(config)


def label_sizes(phantom: Phantoms) -> dict[str, int]:
    """How many numbers each kind of label stores for image 0: what an annotator must produce."""
    k = int(phantom.n_lesions[0])
    pixels = int(phantom.masks[0].size)
    return {"class": 1, "boxes": 4 * k, "semantic": pixels, "instance": pixels}


# ---------------------------------------------------------------------------------------------
# Hand-engineered features

FEATURE_SETS = ("generic", "matched", "prewhitened")
GENERIC_FEATURES = ("mean", "std", "max_pixel", "glcm_contrast", "local_variance")
GLCM_LEVELS = 8  # grey levels after quantisation: the usual radiomics choice for small patches
GLCM_RANGE = (-4.0, 4.0)  # fixed quantisation window in background-std units (images are ~N(0, 1))


def quantize(images: np.ndarray, levels: int = GLCM_LEVELS, value_range=GLCM_RANGE) -> np.ndarray:
    """Grey levels 0..levels-1 on a fixed window, (N, H, W) uint8; values outside are clipped."""
    low, high = value_range
    scaled = (np.asarray(images, dtype=np.float64) - low) / (high - low) * levels
    return np.clip(np.floor(scaled), 0, levels - 1).astype(np.uint8)


def glcm_contrast(images: np.ndarray) -> np.ndarray:
    """GLCM contrast per image, (N,): the co-occurrence matrix of horizontal and vertical
    neighbours (distance 1, symmetric, normalised) from scikit-image, averaged over the two
    directions. High when neighbouring pixels differ a lot (fine, busy texture)."""
    from skimage.feature import graycomatrix, graycoprops

    out = np.empty(len(images))
    for i, q in enumerate(quantize(images)):  # scikit-image works one image at a time
        glcm = graycomatrix(q, distances=[1], angles=[0, np.pi / 2], levels=GLCM_LEVELS, symmetric=True, normed=True)
        out[i] = graycoprops(glcm, "contrast").mean()
    return out


def local_variance_max(images: np.ndarray, window: int = 5) -> np.ndarray:
    """Largest variance in any window×window neighbourhood, (N,): a crude 'something is there'."""
    x = np.asarray(images, dtype=np.float64)
    mean = ndimage.uniform_filter(x, size=(1, window, window), mode="wrap")
    mean_sq = ndimage.uniform_filter(x * x, size=(1, window, window), mode="wrap")
    return (mean_sq - mean * mean).max(axis=(1, 2))


def scan_margin(config: PhantomConfig) -> int:
    """Pixels from the border where no lesion centre can lie (synth's placement margin)."""
    return int(math.ceil(config.radius * (1 + config.radius_jitter) + 1.0))


def matched_filter_max(images: np.ndarray, config: PhantomConfig, *, prewhiten: bool) -> np.ndarray:
    """Largest matched-filter response over every place a lesion can be, (N,).

    The template is the nominal lesion (`prewhiten=False`) or the prewhitening template K⁻¹s of
    the ideal observer, which also knows the background's spectrum. Sliding it over the image is
    a circular cross-correlation, done for all images at once in the Fourier domain."""
    template = prewhitening_template(config) if prewhiten else known_signal(ske_variant(config))
    # The template is centred at (size-1)/2; move its centre to the origin so the response at
    # (r, c) scores a lesion centred near (r, c).
    kernel = np.fft.ifftshift(template)
    spectrum = np.fft.rfft2(np.asarray(images, dtype=np.float64))  # (N, H, W//2 + 1)
    response = np.fft.irfft2(spectrum * np.conj(np.fft.rfft2(kernel)), s=images.shape[1:])  # (N, H, W)
    m = scan_margin(config)
    return response[:, m:-m, m:-m].max(axis=(1, 2))


def hand_features(images: np.ndarray, config: PhantomConfig, feature_set: str = "prewhitened") -> np.ndarray:
    """The hand pipeline's feature table, (N, F): five generic radiomics-style numbers, plus one
    matched-filter peak for the 'matched' and 'prewhitened' sets."""
    if feature_set not in FEATURE_SETS:
        raise TerminologyError("feature_set", value=feature_set)
    x = np.asarray(images, dtype=np.float64)
    columns = [
        x.mean(axis=(1, 2)),
        x.std(axis=(1, 2)),
        x.max(axis=(1, 2)),
        glcm_contrast(x),
        local_variance_max(x),
    ]
    if feature_set != "generic":
        columns.append(matched_filter_max(x, config, prewhiten=feature_set == "prewhitened"))
    return np.stack(columns, axis=1)  # (N, F)


def feature_names(feature_set: str) -> tuple[str, ...]:
    return GENERIC_FEATURES + (() if feature_set == "generic" else (f"{feature_set}_filter",))


def logistic_pipeline():
    """Standardise each feature, then logistic regression: the classic radiomics classifier."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))


@dataclass
class HandResult:
    feature_set: str
    test_auc: float
    coefficients: dict  # standardised logistic-regression weight per feature
    test_scores: np.ndarray  # (N_test,) decision function


def hand_pipeline(
    train: Phantoms, test: Phantoms, config: PhantomConfig, feature_set: str, train_labels=None
) -> HandResult:
    """Fit logistic regression on the training images' hand features; score the test images."""
    from sklearn.metrics import roc_auc_score

    labels = train.labels if train_labels is None else np.asarray(train_labels)
    if len(np.unique(labels)) < 2:
        raise TerminologyError("one_class")
    model = logistic_pipeline().fit(hand_features(train.images, config, feature_set), labels)
    scores = model.decision_function(hand_features(test.images, config, feature_set))
    weights = model[-1].coef_[0]
    return HandResult(
        feature_set=feature_set,
        test_auc=float(roc_auc_score(test.labels, scores)),
        coefficients=dict(zip(feature_names(feature_set), map(float, weights), strict=True)),
        test_scores=scores,
    )


# ---------------------------------------------------------------------------------------------
# Data for trained experiments: fixed parts, standardised with training statistics


@dataclass(frozen=True)
class Parts:
    """Training, validation and test phantoms of one experiment, generated separately."""

    train: Phantoms
    val: Phantoms
    test: Phantoms


def make_parts(
    config: PhantomConfig, num_train: int, num_val: int, num_test: int, seed: int, *, prevalence: float | None = None
) -> Parts:
    """Three independent phantom sets. The training images follow `seed`; the validation and
    test images are the same whatever the seed or the training-set size."""
    if prevalence is not None:
        config = config.replace(prevalence=prevalence)
    return Parts(
        train=generate(config.replace(n=num_train, seed=100 + seed)),
        val=generate(config.replace(n=num_val, seed=VAL_SEED)),
        test=generate(config.replace(n=num_test, seed=TEST_SEED)),
    )


def tensor_data(parts: Parts, train_labels=None, val_labels=None, train_index=None) -> TensorData:
    """One TensorData with its split fixed (split_index 0/1/2), standardised with the training
    images' mean and std only, as a deployed model would be. `train_labels`/`val_labels`
    replace the true labels (label noise); `train_index` picks or repeats training images
    (oversampling)."""
    import torch

    from primer.train import TensorData

    train_images = parts.train.images
    labels = parts.train.labels if train_labels is None else np.asarray(train_labels)
    if train_index is not None:
        train_images, labels = train_images[train_index], labels[train_index]
        patients = parts.train.patient_id[train_index]
    else:
        patients = parts.train.patient_id
    mean, std = float(train_images.mean()), float(max(train_images.std(), 1e-6))
    images = np.concatenate([train_images, parts.val.images, parts.test.images])  # (N, H, W)
    x = torch.from_numpy(((images - mean) / std).astype(np.float32)).unsqueeze(1)  # (N, 1, H, W)
    y = np.concatenate([labels, parts.val.labels if val_labels is None else val_labels, parts.test.labels])
    # Patient ids must not collide across parts (they index separate generations).
    offset_val = int(patients.max()) + 1 if len(patients) else 0
    offset_test = offset_val + int(parts.val.patient_id.max()) + 1
    patient = np.concatenate([patients, parts.val.patient_id + offset_val, parts.test.patient_id + offset_test])
    split_index = np.repeat([0, 1, 2], [len(labels), len(parts.val), len(parts.test)])
    classes = ("no lesion", "lesion") if parts.train.config.task == "presence" else ("round", "spiculated")
    return TensorData(
        x=x,
        y=torch.from_numpy(y.astype(np.int64)),
        patient=torch.from_numpy(patient.astype(np.int64)),
        classes=classes,
        split_index=torch.from_numpy(split_index),
    )


@dataclass
class Setup:
    """One trained point: what primer.train.run_experiment needs, and its identity for the queue."""

    kind: str  # curve | feat | noise | imbal | leak
    params: dict  # what identifies the point in its data file
    lab: TrainLab
    parts: Parts | None = None  # None: the lab generates its own data (the leakage lab)
    data: TensorData | None = None
    extra: dict = field(default_factory=dict)  # labels used for scoring (noisy reference)

    @property
    def data_key(self) -> str:
        """Names the data recipe, so the queue shares identical runs between users."""
        return "terminology:" + json.dumps({"kind": self.kind, **self.params}, sort_keys=True)


def base_config(**changes) -> PhantomConfig:
    """The training chapter's default presence task (TrainLab defaults)."""
    return PhantomConfig(**changes)


# Learning curve -------------------------------------------------------------------------------

CURVE_SIZES = (50, 100, 200, 500, 1000, 2000, 5000)
CURVE_SEEDS = (0, 1, 2)
CURVE_VAL, CURVE_TEST = 500, 1000


def curve_schedule(num_train: int) -> tuple[int, int]:
    """(epochs, batch size) for a training-set size. Small sets get small batches and more
    epochs, so every point gets at least as many weight updates as the training chapter's
    default run (132); early stopping on the validation loss keeps the best epoch, so the extra
    epochs cannot simply overfit."""
    batch_size = 16 if num_train < 500 else 64
    epochs = int(min(40, max(6, math.ceil(8400 / num_train))))
    return epochs, batch_size


def curve_setup(num_train: int, seed: int) -> Setup:
    from primer.train import TrainLab

    epochs, batch = curve_schedule(num_train)
    lab = TrainLab(num_epochs=epochs, batch_size=batch, early_stopping_patience=8, seed=seed)
    parts = make_parts(base_config(), num_train, CURVE_VAL, CURVE_TEST, seed)
    return Setup("curve", {"num_train": num_train, "seed": seed}, lab, parts, tensor_data(parts))


# Learned vs hand-engineered features ----------------------------------------------------------

FEAT_CONTRASTS = (1.0, 1.5, 2.0, 2.5, 3.0)
FEAT_BETAS = (0.0, 1.0, 2.0, 3.0, 4.0)
FEAT_TRAIN, FEAT_VAL, FEAT_TEST = 1400, 300, 1000  # the training chapter's 70% of 2,000


def feat_config(contrast: float, beta: float) -> PhantomConfig:
    """The features lab's task: the default presence task with a fixed lesion size, so the
    exact ideal observer (lesion place also known) is a true ceiling for every reader."""
    return base_config(contrast=float(contrast), beta=float(beta), radius_jitter=0.0)


def feat_setup(contrast: float, beta: float) -> Setup:
    from primer.train import TrainLab

    parts = make_parts(feat_config(contrast, beta), FEAT_TRAIN, FEAT_VAL, FEAT_TEST, 0)
    lab = TrainLab(contrast=float(contrast), beta=float(beta))
    return Setup("feat", {"contrast": float(contrast), "beta": float(beta)}, lab, parts, tensor_data(parts))


def feature_examples(contrast: float, beta: float, count: int = 4) -> Phantoms:
    """A few images of the features lab's task, lesions first (what the readers are judged on)."""
    phantoms = generate(feat_config(contrast, beta).replace(n=count, seed=7))
    return phantoms.subset(np.argsort(-phantoms.labels, kind="stable"))


# The β picture: one background, four textures ----------------------------------------------

BETA_PICTURE = (1.0, 2.0, 3.0, 4.0)  # white-ish to very smooth; the phantoms use 3


def beta_backgrounds(betas=BETA_PICTURE, seed: int = 0, size: int | None = None) -> np.ndarray:
    """The phantoms' background texture alone, once per β, (len(betas), size, size) float32.

    Each image filters the same white noise (same seed), so only the power-law exponent differs
    between panels: what β does to the texture, with the anatomy otherwise held fixed."""
    config = base_config()
    size = size or config.size
    images = [
        power_law_backgrounds(np.random.default_rng(seed), 1, size, float(beta), config.background_std)[0]
        for beta in betas
    ]
    return np.stack(images)  # (len(betas), size, size)


# Label noise ---------------------------------------------------------------------------------

NOISE_KINDS = ("random", "missed")
NOISE_RATES = {"random": (0.0, 0.1, 0.2, 0.3, 0.4), "missed": (0.0, 0.2, 0.4, 0.6, 0.8)}
NOISE_SEEDS = (0, 1)
# The noise and imbalance labs use a slightly brighter lesion than the default (contrast 3) and
# a fixed ten epochs, so that with clean, balanced labels the CNN learns reliably; what changes
# their results is then the labels, not whether training happened to take off in time.
# (Early stopping on a validation set with equally noisy labels would stop some runs before
# they learn anything, which mixes two effects.)
LABELS_CONTRAST, LABELS_EPOCHS = 3.0, 10


def labels_config(**changes) -> PhantomConfig:
    return base_config(contrast=LABELS_CONTRAST, **changes)


def labels_lab(seed: int) -> TrainLab:
    from primer.train import TrainLab

    return TrainLab(contrast=LABELS_CONTRAST, num_epochs=LABELS_EPOCHS, seed=seed)


def corrupt_labels(labels: np.ndarray, kind: str, rate: float, seed: int) -> np.ndarray:
    """Labels as a careless or hurried labelling process gives them.

    random: exactly round(rate × N) labels, chosen at random, flipped (in both directions);
    missed: exactly round(rate × positives) positive labels set to 0 (lesions the reader missed)."""
    labels = np.asarray(labels).astype(np.int64)
    if not 0.0 <= rate <= 1.0:
        raise TerminologyError("rate", value=rate)
    rng = np.random.default_rng(seed)
    out = labels.copy()
    if kind == "random":
        flip = rng.permutation(len(labels))[: int(round(rate * len(labels)))]
        out[flip] = 1 - out[flip]
    elif kind == "missed":
        positives = np.flatnonzero(labels == 1)
        missed = rng.permutation(positives)[: int(round(rate * len(positives)))]
        out[missed] = 0
    else:
        raise TerminologyError("noise_kind", value=kind)
    return out


def noisy_label_examples(
    kind: str, rate: float, count: int = 8
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Images like the noise lab's training images, with labels corrupted by the same rule:
    (images (k, H, W), given (k,), truth (k,), lesion masks (k, H, W)), changed labels first."""
    pool = generate(labels_config(n=160, seed=100))
    given = corrupt_labels(pool.labels, kind, rate, seed=1_000)
    changed = np.flatnonzero(given != pool.labels)
    kept = np.flatnonzero(given == pool.labels)
    shown = min(len(changed), count // 2)
    pick = np.concatenate([changed[:shown], kept[: count - shown]])
    return pool.images[pick], given[pick], pool.labels[pick], pool.masks[pick]


def noise_setup(kind: str, rate: float, seed: int) -> Setup:

    parts = make_parts(labels_config(), FEAT_TRAIN, FEAT_VAL, FEAT_TEST, seed)
    train_labels = corrupt_labels(parts.train.labels, kind, rate, seed=1_000 + seed)
    # The validation labels come from the same labelling process; the test labels are the
    # adjudicated reference standard. A second, equally noisy copy of the test labels shows what
    # a noisy reference standard does to the measured AUC.
    val_labels = corrupt_labels(parts.val.labels, kind, rate, seed=2_000 + seed)
    noisy_test = corrupt_labels(parts.test.labels, kind, rate, seed=3_000 + seed)
    data = tensor_data(parts, train_labels=train_labels, val_labels=val_labels)
    return Setup(
        "noise",
        {"kind": kind, "rate": float(rate), "seed": seed},
        labels_lab(seed),
        parts,
        data,
        extra={"noisy_test_labels": noisy_test},
    )


# Class imbalance -------------------------------------------------------------------------------

IMBAL_PREVALENCES = (0.5, 0.2, 0.1, 0.05, 0.02)
IMBAL_TRAIN, IMBAL_VAL, IMBAL_TEST = 2000, 300, 2000  # fixed total: rarer means fewer positives
IMBAL_FIXES = ("none", "oversample", "threshold")


def oversample_index(labels: np.ndarray, seed: int) -> np.ndarray:
    """Training indices with the rarer class repeated until both classes are equally common
    (every rare image at least ⌊ratio⌋ times, the remainder drawn without replacement), shuffled.
    Showing each rare case more often has the same expected effect on the loss as weighting it."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    counts = np.bincount(labels, minlength=2)
    rare = int(np.argmin(counts))
    rare_idx, common_idx = np.flatnonzero(labels == rare), np.flatnonzero(labels != rare)
    if len(rare_idx) == 0:
        raise TerminologyError("one_class")
    repeats, remainder = divmod(len(common_idx), len(rare_idx))
    extra = rng.choice(rare_idx, size=remainder, replace=False)
    index = np.concatenate([common_idx, np.tile(rare_idx, repeats), extra])
    return rng.permutation(index)


def imbal_setup(prevalence: float, oversample: bool, seed: int = 0) -> Setup:

    parts = make_parts(labels_config(), IMBAL_TRAIN, IMBAL_VAL, IMBAL_TEST, seed, prevalence=prevalence)
    index = oversample_index(parts.train.labels, seed) if oversample else None
    params = {"prevalence": float(prevalence), "oversample": bool(oversample), "seed": seed}
    # Augmentation in every imbalance run: repeated rare images then differ a little each time
    # they are shown, instead of being memorised copy by copy.
    lab = replace(labels_lab(seed), augment=True)
    return Setup("imbal", params, lab, parts, tensor_data(parts, train_index=index))


# Leakage ---------------------------------------------------------------------------------------

LEAK_IMAGES_PER_PATIENT = (1, 2, 5, 10)
LEAK_SPLITS = ("image", "patient")


LEAK_IMAGES = 1000
LEAK_VAL_FRACTION = 0.15  # primer.train.SplitConfig's default validation share


def leak_validation_patients(images_per_patient: int) -> int:
    """Patients in the validation part of a patient split: few, so its AUC is noisy."""
    return max(1, round(LEAK_VAL_FRACTION * -(-LEAK_IMAGES // images_per_patient)))


def leak_setup(images_per_patient: int, split_by: str, seed: int = 0) -> Setup:
    """The training chapter's leakage preset at width 8: 1,000 images, 20 epochs, so the
    network has time to memorise each training patient."""
    from primer.train import TrainLab

    lab = TrainLab(
        images_per_patient=images_per_patient, split_by=split_by, num_images=LEAK_IMAGES, num_epochs=20, seed=seed
    )
    return Setup("leak", {"images_per_patient": images_per_patient, "split_by": split_by, "seed": seed}, lab)


# ---------------------------------------------------------------------------------------------
# Running a point and summarising it (the same code for the script and the live queue)


def binary_rates(labels: np.ndarray, scores: np.ndarray, threshold: float) -> dict:
    """Accuracy, sensitivity and specificity of 'positive when score ≥ threshold'."""
    labels = np.asarray(labels).astype(bool)
    called = np.asarray(scores) >= threshold
    tp, tn = int((called & labels).sum()), int((~called & ~labels).sum())
    positives, negatives = int(labels.sum()), int((~labels).sum())
    return {
        "accuracy": (tp + tn) / len(labels),
        "sensitivity": tp / positives if positives else float("nan"),
        "specificity": tn / negatives if negatives else float("nan"),
    }


def _auc(labels, scores) -> float:
    from sklearn.metrics import roc_auc_score

    labels = np.asarray(labels)
    return float(roc_auc_score(labels, scores)) if len(np.unique(labels)) == 2 else float("nan")


def logits_of(probs: np.ndarray) -> np.ndarray:
    """Log-odds of the positive class from two-class probabilities, (N,)."""
    p = np.clip(np.asarray(probs, dtype=np.float64), 1e-12, 1.0)
    return np.log(p[:, 1]) - np.log(p[:, 0])


def summarize(setup: Setup, result: RunResult) -> dict:
    """The numbers a data file stores for one trained point (plain JSON types only)."""
    history = result.history
    best = history.best_epoch or len(history.epochs)
    out = {
        **setup.params,
        "test_auc": round(float(result.test_auc), 4),
        "val_auc": round(_auc(result.val_labels, result.val_probs[:, 1]), 4),
        "epochs": len(history.epochs),
        "best_epoch": int(best),
        "seconds": round(float(result.seconds), 1),
    }
    if setup.kind == "noise":
        scores = result.test_probs[:, 1]
        out["noisy_reference_auc"] = round(_auc(setup.extra["noisy_test_labels"], scores), 4)
        rates = binary_rates(result.test_labels, scores, 0.5)
        out.update({k: round(v, 4) for k, v in rates.items()})
    elif setup.kind == "imbal":
        out["test_logits"] = [round(float(v), 3) for v in logits_of(result.test_probs)]
        out["test_labels"] = "".join(str(int(v)) for v in result.test_labels)
    elif setup.kind == "leak":
        out["fresh_auc"] = round(float(result.fresh_auc), 4)
        out["leaked_patients"] = int(result.leaked_patients)
        out["val_auc"] = round(float(history.epochs[-1].val_auc), 4)  # what the last epoch reported
    return out


def hand_summary(setup: Setup, feature_sets=("generic", "prewhitened")) -> dict:
    """Hand-feature pipelines trained on the same training images, scored on the same test set."""
    config = setup.parts.train.config
    return {
        f"hand_{name}_auc": round(hand_pipeline(setup.parts.train, setup.parts.test, config, name).test_auc, 4)
        for name in feature_sets
    }


def run_point(setup: Setup) -> dict:
    """Train one point through primer.train and summarise it."""
    from primer.train import run_experiment

    return summarize(setup, run_experiment(setup.lab, setup.data))


# ---------------------------------------------------------------------------------------------
# Stored curves


def data_path(kind: str) -> Path:
    return DATA_DIR / f"{kind}.json"


@lru_cache(maxsize=8)
def load_points(kind: str) -> dict:
    """A stored data file: {"settings": ..., "points": [...]}. Missing file → TerminologyError."""
    path = data_path(kind)
    if not path.exists():
        raise TerminologyError("missing_data", file=path.name)
    return json.loads(path.read_text(encoding="utf-8"))


def find_point(points: list[dict], **params) -> dict | None:
    for point in points:
        if all(_same(point.get(k), v) for k, v in params.items()):
            return point
    return None


def _same(a, b) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and abs(float(a) - float(b)) < 1e-9
    return a == b


@dataclass
class CurveSummary:
    """Mean and standard deviation over seeds, per training-set size, for each series."""

    sizes: list[int]
    mean: dict[str, list[float]]
    sd: dict[str, list[float]]
    seeds: int


def curve_summary(points: list[dict], series=("test_auc", "val_auc", "hand_generic_auc", "hand_prewhitened_auc")):
    sizes = sorted({int(p["num_train"]) for p in points})
    mean, sd = {}, {}
    for name in series:
        values = [[p[name] for p in points if p["num_train"] == n and name in p] for n in sizes]
        mean[name] = [float(np.mean(v)) if v else float("nan") for v in values]
        sd[name] = [float(np.std(v, ddof=1)) if len(v) > 1 else 0.0 for v in values]
    seeds = len({p["seed"] for p in points})
    return CurveSummary(sizes, mean, sd, seeds)


def size_for_auc(summary: CurveSummary, target: float, series: str = "test_auc") -> int | None:
    """Smallest stored training-set size whose mean AUC reaches `target` (None if none does)."""
    for n, value in zip(summary.sizes, summary.mean[series], strict=True):
        if value >= target:
            return n
    return None


def noise_summary(points: list[dict], kind: str) -> dict[str, list[float]]:
    """Per noise rate (ascending): mean over seeds of each stored number."""
    rates = sorted({p["rate"] for p in points if p["kind"] == kind or p["rate"] == 0.0})
    out: dict[str, list[float]] = {"rate": rates}
    for name in ("test_auc", "noisy_reference_auc", "sensitivity", "specificity"):
        out[name] = [
            float(np.mean([p[name] for p in points if _same(p["rate"], r) and (p["kind"] == kind or r == 0.0)]))
            for r in rates
        ]
    return out


def imbalance_report(point: dict, fix: str) -> dict:
    """What a reader of the paper would see for one prevalence: AUC, and accuracy, sensitivity
    and specificity at the decision threshold, beside the accuracy of calling everyone normal.

    fix "threshold" keeps the plain model but calls positive when the probability exceeds the
    prevalence instead of 0.5 (log-odds above logit(prevalence)): for a calibrated model that is
    where the likelihood ratio passes 1, which balances the two error rates."""
    logits = np.asarray(point["test_logits"])
    labels = np.frombuffer(point["test_labels"].encode(), dtype=np.uint8) - ord("0")
    prevalence = float(point["prevalence"])
    threshold = math.log(prevalence / (1 - prevalence)) if fix == "threshold" else 0.0
    rates = binary_rates(labels, logits, threshold)
    return {
        "prevalence": prevalence,
        "auc": _auc(labels, logits),
        **rates,
        "all_normal_accuracy": float(1 - labels.mean()),
        "positives": int(labels.sum()),
        "threshold_probability": 1 / (1 + math.exp(-threshold)),
    }


def imbalance_reports(points: list[dict], fix: str) -> list[dict]:
    """One report per stored prevalence (most common first), for plain training or for the fix.
    The threshold fix uses the plain model; oversampling uses the model trained oversampled."""
    if fix not in IMBAL_FIXES:
        raise TerminologyError("fix", value=fix)
    chosen = [p for p in points if p["oversample"] == (fix == "oversample") and p["seed"] == 0]
    return [imbalance_report(p, fix) for p in sorted(chosen, key=lambda p: -p["prevalence"])]


# ---------------------------------------------------------------------------------------------
# Leakage: who goes where


def split_assignment(images_per_patient: int, split_by: str, num_patients: int = 12, seed: int = 0) -> np.ndarray:
    """Which split each image of a few patients lands in, (patients, images) of 0 train,
    1 validation, 2 test. The same rule as primer.train.split (shuffle the units, patients or
    images, then cut off validation and test), in numpy so the page needs no torch to draw it;
    a test checks the rule against the engine's function."""
    n = num_patients * images_per_patient
    patient = np.repeat(np.arange(num_patients), images_per_patient)  # (n,)
    units = np.arange(num_patients) if split_by == "patient" else np.arange(n)
    units = np.random.default_rng(seed).permutation(units)
    # Larger fractions than the labs' 15% so that a dozen patients fill all three parts.
    n_val = n_test = max(1, round(0.25 * len(units)))
    code = np.zeros(len(units), dtype=np.int64)
    code[units[:n_val]] = 1
    code[units[n_val : n_val + n_test]] = 2
    per_image = code[patient] if split_by == "patient" else code
    return per_image.reshape(num_patients, images_per_patient)


def leak_patient_images(images_per_patient: int, seed: int = 0) -> np.ndarray:
    """The images of one patient with a lesion: near-identical repeat acquisitions, (k, H, W)."""
    config = base_config(n=images_per_patient, images_per_patient=images_per_patient, prevalence=1.0, seed=seed)
    return generate(config).images


# ---------------------------------------------------------------------------------------------
# Kinds of learning: one small example each

KINDS = ("supervised", "unsupervised", "self_supervised", "weakly_supervised")
KIND_POOL, KIND_TEST = 600, 1000  # images available to the examples; a fixed test set
KIND_LABELS = (10, 20, 40, 100, 200)  # labelled images the supervised examples may use


@lru_cache(maxsize=4)
def kinds_data(seed: int) -> Parts:
    """Default-task phantoms for the kinds-of-learning examples (fixed lesion size)."""
    return make_parts(feat_config(2.5, 3.0), KIND_POOL, 1, KIND_TEST, seed)


def _labelled_subset(labels: np.ndarray, num_labels: int, seed: int) -> np.ndarray:
    """`num_labels` images with both classes present (half each when possible)."""
    rng = np.random.default_rng(seed)
    pos, neg = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
    k = max(1, num_labels // 2)
    return np.sort(np.concatenate([rng.permutation(pos)[:k], rng.permutation(neg)[: num_labels - k]]))


@dataclass
class SupervisedExample:
    features: np.ndarray  # (L, 2) the labelled images' two features (standardised)
    labels: np.ndarray  # (L,)
    weights: np.ndarray  # (2,) logistic-regression weights on the standardised features
    bias: float
    test_auc: float
    names: tuple[str, str]


@lru_cache(maxsize=4)
def _supervised_features(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The two hand features of every pool image and every test image, (600, 2) and (1000, 2).
    Each image's features depend on that image alone, so every label budget takes its rows
    from here instead of measuring the images again."""
    parts = kinds_data(seed)
    config = parts.train.config

    def two(images):
        x = np.asarray(images, dtype=np.float64)
        return np.stack([matched_filter_max(x, config, prewhiten=True), glcm_contrast(x)], axis=1)  # (N, 2)

    return two(parts.train.images), two(parts.test.images)


def supervised_example(num_labels: int, seed: int = 0) -> SupervisedExample:
    """Logistic regression on two hand features learned from `num_labels` labelled images: the
    labels alone teach it where to draw the line between 'lesion' and 'no lesion'."""
    from sklearn.linear_model import LogisticRegression

    parts = kinds_data(seed)
    chosen = _labelled_subset(parts.train.labels, num_labels, seed)
    pool_features, test_features = _supervised_features(seed)
    train = pool_features[chosen]
    mean, std = train.mean(axis=0), train.std(axis=0) + 1e-9
    model = LogisticRegression().fit((train - mean) / std, parts.train.labels[chosen])
    scores = model.decision_function((test_features - mean) / std)
    return SupervisedExample(
        features=(train - mean) / std,
        labels=parts.train.labels[chosen],
        weights=model.coef_[0],
        bias=float(model.intercept_[0]),
        test_auc=_auc(parts.test.labels, scores),
        names=("prewhitened_filter", "glcm_contrast"),
    )


@dataclass
class UnsupervisedExample:
    coords: np.ndarray  # (N, 2) first two principal components of the pixels
    labels: np.ndarray  # (N,) the true labels, never shown to the algorithm
    clusters: np.ndarray  # (N,) k-means cluster of each image
    components: np.ndarray  # (3, H, W) the top three principal components as images
    explained: np.ndarray  # (3,) fraction of pixel variance each explains
    agreement_pixels: float  # adjusted Rand index of k-means on pixels vs the true labels
    agreement_features: float  # the same for k-means on hand features


def unsupervised_example(seed: int = 0) -> UnsupervisedExample:
    """k-means with two clusters on unlabelled images, and PCA to look at them. Without labels the
    algorithm finds whatever varies most; in these images that is the anatomy, not the lesion."""
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA
    from sklearn.metrics import adjusted_rand_score
    from sklearn.preprocessing import StandardScaler

    parts = kinds_data(seed)
    images, labels = parts.train.images, parts.train.labels
    flat = images.reshape(len(images), -1)  # (N, H·W)
    pca = PCA(n_components=10, random_state=seed).fit(flat)
    reduced = pca.transform(flat)  # (N, 10)
    clusters = KMeans(n_clusters=2, n_init=10, random_state=seed).fit_predict(reduced)
    features = StandardScaler().fit_transform(hand_features(images, parts.train.config, "prewhitened"))
    feature_clusters = KMeans(n_clusters=2, n_init=10, random_state=seed).fit_predict(features)
    size = images.shape[1]
    return UnsupervisedExample(
        coords=reduced[:, :2],
        labels=labels,
        clusters=clusters,
        components=pca.components_[:3].reshape(3, size, size),
        explained=pca.explained_variance_ratio_[:3],
        agreement_pixels=float(adjusted_rand_score(labels, clusters)),
        agreement_features=float(adjusted_rand_score(labels, feature_clusters)),
    )


PREDICTOR_WINDOW = 7  # the pixel is predicted from its 48 neighbours in a 7×7 window
SMOOTHING_SIGMAS = (1.0, 2.0, 3.0)  # blob scales the downstream features look at


def fit_pixel_predictor(images: np.ndarray, num_samples: int = 20_000, seed: int = 0) -> np.ndarray:
    """Self-supervised pretext: predict each hidden pixel from its neighbours, by least squares
    on random windows of unlabelled images. The target comes from the image itself, so no label
    is needed. Returns the (window, window) kernel with a zero at the centre."""
    k = PREDICTOR_WINDOW
    images = np.asarray(images, dtype=np.float64)
    windows = np.lib.stride_tricks.sliding_window_view(images, (k, k), axis=(1, 2))  # (N, H-k+1, W-k+1, k, k)
    rng = np.random.default_rng(seed)
    pick = tuple(rng.integers(0, m, num_samples) for m in windows.shape[:3])
    patches = windows[pick].reshape(num_samples, k * k)  # (S, k²)
    centre = k * k // 2
    neighbours, target = np.delete(patches, centre, axis=1), patches[:, centre]
    weights, *_ = np.linalg.lstsq(neighbours, target, rcond=None)
    return np.insert(weights, centre, 0.0).reshape(k, k)


def prediction_residual(images: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """What the learned predictor could not predict: image minus prediction, (N, H, W)."""
    x = np.asarray(images, dtype=np.float64)
    return x - ndimage.correlate(x, kernel[None], mode="wrap")


def blob_features(images: np.ndarray, margin: int) -> np.ndarray:
    """Peak of the image smoothed at three blob scales, (N, 3): generic, no lesion template."""
    x = np.asarray(images, dtype=np.float64)
    columns = [
        ndimage.gaussian_filter(x, (0, s, s), mode="wrap")[:, margin:-margin, margin:-margin].max(axis=(1, 2))
        for s in SMOOTHING_SIGMAS
    ]
    return np.stack(columns, axis=1)


@dataclass
class SelfSupervisedExample:
    kernel: np.ndarray  # (7, 7) learned from unlabelled images
    explained: float  # R² of the pixel prediction: how much of the anatomy is predictable
    example: np.ndarray  # (H, W) one image with a lesion
    example_mask: np.ndarray  # (H, W) bool, its lesion (for drawing only)
    residual: np.ndarray  # (H, W) its prediction residual, smoothed at the lesion's scale
    auc_raw: float  # few-label classifier on blob features of the raw images
    auc_pretrained: float  # the same classifier on the self-supervised residual images
    num_labels: int


@dataclass
class _Pretext:
    kernel: np.ndarray  # the pixel predictor learned on the unlabelled pool
    explained: float  # share of the pool's pixel variance it predicts
    pool: tuple[np.ndarray, np.ndarray]  # blob features of every pool image: raw, residual
    test: tuple[np.ndarray, np.ndarray]  # the same for every test image


@lru_cache(maxsize=4)
def _pretext(seed: int) -> _Pretext:
    """The label-free part of the self-supervised example: the pretext task on all unlabelled
    images and every image's features, raw and through the learned representation (each image's
    features depend on that image alone, so every label budget takes its rows from here)."""
    parts = kinds_data(seed)
    unlabelled = parts.train.images
    kernel = fit_pixel_predictor(unlabelled, seed=seed)
    residual_all = prediction_residual(unlabelled, kernel)
    margin = scan_margin(parts.train.config)
    test_residual = prediction_residual(parts.test.images, kernel)
    return _Pretext(
        kernel=kernel,
        explained=float(1.0 - residual_all.var() / unlabelled.var()),
        pool=(blob_features(unlabelled, margin), blob_features(residual_all, margin)),
        test=(blob_features(parts.test.images, margin), blob_features(test_residual, margin)),
    )


def self_supervised_example(num_labels: int, seed: int = 0) -> SelfSupervisedExample:
    """Pretext on all unlabelled images, then a logistic regression from `num_labels` labels on
    top of (a) the raw images and (b) the learned representation (the prediction residual)."""
    from sklearn.metrics import roc_auc_score

    parts = kinds_data(seed)
    pretext = _pretext(seed)
    chosen = _labelled_subset(parts.train.labels, num_labels, seed)
    aucs = []
    for pool, test in zip(pretext.pool, pretext.test, strict=True):  # raw, then representation
        model = logistic_pipeline().fit(pool[chosen], parts.train.labels[chosen])
        aucs.append(float(roc_auc_score(parts.test.labels, model.decision_function(test))))
    first = int(np.flatnonzero(parts.test.labels == 1)[0])
    return SelfSupervisedExample(
        kernel=pretext.kernel,
        explained=pretext.explained,
        example=parts.test.images[first],
        example_mask=parts.test.masks[first],
        residual=ndimage.gaussian_filter(
            prediction_residual(parts.test.images[first : first + 1], pretext.kernel)[0],
            SMOOTHING_SIGMAS[1],
            mode="wrap",
        ),
        auc_raw=aucs[0],
        auc_pretrained=aucs[1],
        num_labels=num_labels,
    )


@dataclass
class WeakExample:
    images: np.ndarray  # (K, H, W) test images with a lesion
    maps: np.ndarray  # (K, H, W) class activation maps, upsampled
    masks: np.ndarray  # (K, H, W) the true lesion masks (never used in training)
    hits: np.ndarray  # (K,) the map's peak falls on the lesion
    peaks: np.ndarray  # (K, 2) row, column of each shown map's peak
    hit_rate: float  # over every test image with a lesion
    num_positive: int


def class_activation_maps(model, x, *, upsample: bool = True) -> np.ndarray:
    """CAM (Zhou et al. 2016) of a classifier that ends in global pooling + one linear layer:
    the linear layer's 'lesion minus no lesion' weights applied at every position of the last
    feature maps, upsampled to the input. (N, 1, H, W) tensor → (N, H, W) array (or (N, h, w)
    at the feature maps' resolution with `upsample=False`)."""
    import torch
    import torch.nn.functional as F

    with torch.inference_mode():
        maps = model.features(x)  # (N, C, h, w)
        weights = model.head.weight[1] - model.head.weight[0]  # (C,)
        cam = torch.einsum("c,nchw->nhw", weights, maps)  # (N, h, w)
        if upsample:
            cam = F.interpolate(cam[:, None], size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    return cam.numpy()


def weak_localization(model, images, labels, masks, tolerance: int = 2, shown: int = 4) -> WeakExample:
    """A classifier trained with image-level labels only ('lesion somewhere or not'): does the
    peak of its class activation map land on the lesion? Scored against the masks it never saw
    (a hit within `tolerance` pixels of the mask counts, the map being 8× coarser than the image)."""
    import torch

    positive = np.flatnonzero(np.asarray(labels) == 1)
    x = torch.as_tensor(np.asarray(images)[positive], dtype=torch.float32)
    if x.ndim == 3:
        x = x.unsqueeze(1)  # (N, 1, H, W)
    cams = class_activation_maps(model, x)
    masks = np.asarray(masks)[positive].astype(bool)
    grown = ndimage.binary_dilation(masks, structure=np.ones((1, 3, 3), bool), iterations=tolerance)
    peaks = cams.reshape(len(cams), -1).argmax(axis=1)
    rows, cols = np.unravel_index(peaks, cams.shape[1:])
    hits = grown[np.arange(len(cams)), rows, cols]
    return WeakExample(
        images=x[:shown, 0].numpy(),
        maps=cams[:shown],
        masks=masks[:shown],
        hits=hits[:shown],
        peaks=np.stack([rows, cols], axis=1)[:shown],
        hit_rate=float(hits.mean()) if len(hits) else float("nan"),
        num_positive=len(hits),
    )


def ideal_auc(contrast: float, beta: float) -> float:
    """Exact ideal-observer AUC of the features lab's task with the lesion's place known."""
    return ideal_observer(feat_config(contrast, beta)).auc
