"""Measuring how a trained model holds up: external validation, ensembles, test-time augmentation.

External validation: train once at "site A", test on A's own held-out patients and on "site B",
a hospital whose scanner differs in noise, background texture, lesion contrast, intensity
calibration or case mix. Site B is generated independently (its own seed, its own patients)
and goes through site A's preprocessing, as a deployed model would.

    lab = ExternalValidationLab(b_noise=0.6)
    site_a = train_site_a(lab)                        # the one training run (through the queue on the page)
    report = compare_sites(site_a, site_b_data(lab, site_a))
    report.internal.auc, report.external.auc          # AUC intervals (DeLong), sens/spec, calibration

Ensembles: K small models that differ only in their seed (initial weights, batch order), their
probabilities averaged; test-time augmentation (TTA) averages one model over the eight flips and
90° rotations of each image, which keep a phantom's label (the lesion is still there, the texture
has no preferred direction).

    members = [train_member(lab, i) for i in range(lab.num_models)]
    report = ensemble_report(members, test_labels)

Nothing here imports streamlit; the chapter's remedies for domain shift (a later chapter) can
reuse `site_b_data`, `evaluate_site` and `compare_sites` as they are.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

import models
from primer import metrics
from primer.labstate import register_lab
from primer.synth import PhantomConfig, generate
from primer.train import EpochRecord, SplitConfig, Splits, TensorData, TrainConfig, fit, predict, split

SITE_B_SEED_OFFSET = 50_000  # site B's patients come from another random stream than A's (and than
# the training lab's "new patients" check, which uses seed + 10 000)
CALIBRATION_BINS = 10

# ---------------------------------------------------------------------------------------------
# Sites


@dataclass(frozen=True)
class Acquisition:
    """What differs between two hospitals' images of the same disease, in site A's units."""

    noise_std: float = 0.25  # quantum noise: a lower dose or an older detector raises it
    beta: float = 3.0  # background texture exponent (another anatomy or reconstruction kernel)
    contrast: float = 2.5  # lesion peak in background-std units (another protocol, phase or case mix)
    intensity_scale: float = 1.0  # scanner calibration: pixel values multiplied by this...
    intensity_offset: float = 0.0  # ...then shifted by this (background-std units)
    prevalence: float = 0.5  # share of patients with a lesion (a screening site has fewer)

    def phantom_config(self, n: int, seed: int) -> PhantomConfig:
        return PhantomConfig(
            n=n,
            seed=seed,
            noise_std=self.noise_std,
            beta=self.beta,
            contrast=self.contrast,
            prevalence=self.prevalence,
        )

    def differences(self, other: Acquisition) -> list[str]:
        """Names of the fields in which this acquisition differs from `other`."""
        return [name for name in SITE_FIELDS if getattr(self, name) != getattr(other, name)]


SITE_FIELDS = ("noise_std", "beta", "contrast", "intensity_scale", "intensity_offset", "prevalence")
SITE_A = Acquisition()  # the chapter's default phantoms


@dataclass(frozen=True)
class Preprocessing:
    """Site A's intensity standardisation, frozen with the model and applied to every site."""

    mean: float
    std: float

    def apply(self, images: np.ndarray) -> torch.Tensor:
        """(N, H, W) raw pixels → (N, 1, H, W) float32 in site A's standardised units."""
        x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)).unsqueeze(1)  # (N, 1, H, W)
        return (x - self.mean) / max(self.std, 1e-6)


def site_images(acquisition: Acquisition, n: int, seed: int):
    """Raw phantoms of one site: (images (N, H, W) float32 after the scanner's calibration, Phantoms)."""
    phantoms = generate(acquisition.phantom_config(n, seed))
    images = phantoms.images * np.float32(acquisition.intensity_scale) + np.float32(acquisition.intensity_offset)
    return images.astype(np.float32), phantoms


def site_data(acquisition: Acquisition, n: int, seed: int, prep: Preprocessing | None = None, patient_offset: int = 0):
    """A site's images as TensorData, standardised with `prep` (site A's, for a deployed model) or
    with their own statistics when `prep` is None (site A itself). Returns (data, prep used)."""
    images, phantoms = site_images(acquisition, n, seed)
    if prep is None:
        prep = Preprocessing(mean=float(images.mean(dtype=np.float64)), std=float(images.std(dtype=np.float64)))
    data = TensorData(
        x=prep.apply(images),
        y=torch.from_numpy(phantoms.labels),
        patient=torch.from_numpy(phantoms.patient_id + patient_offset),
        classes=("no lesion", "lesion"),
        mask=torch.from_numpy(phantoms.masks),
    )
    return data, prep


# ---------------------------------------------------------------------------------------------
# External validation lab


@register_lab("extval")
@dataclass
class ExternalValidationLab:
    """Site A trains (the chapter's default phantoms); site B's acquisition is set by the user."""

    num_images: int = 2000  # site A, before its patient split: the training lab's default data set
    num_epochs: int = 6  # the training lab's default: validation AUC ≈ 0.95, in ~6 s
    seed: int = 0  # site A's patients and the model's initial weights
    b_noise: float = 0.4  # a noisier scanner than A's 0.25 (a low-dose protocol): AUC and specificity drop
    b_beta: float = 3.0  # same texture as A
    b_contrast: float = 2.5  # same lesions as A
    b_scale: float = 1.0  # same calibration as A
    b_offset: float = 0.0
    b_prevalence: float = 0.5  # same case mix as A
    b_images: int = 1000  # site B's test set: enough for an AUC interval about ±0.01-0.02 wide

    def site_b(self) -> Acquisition:
        return Acquisition(
            noise_std=self.b_noise,
            beta=self.b_beta,
            contrast=self.b_contrast,
            intensity_scale=self.b_scale,
            intensity_offset=self.b_offset,
            prevalence=self.b_prevalence,
        )

    def train_config(self) -> TrainConfig:
        return TrainConfig(num_epochs=self.num_epochs, seed=self.seed)

    def training_key(self) -> str:
        """What the site-A run depends on (site B's settings do not retrain it)."""
        return f"extval:{self.num_images}:{self.num_epochs}:{self.seed}"


@dataclass
class SiteModel:
    """The model trained at site A, with what it needs to be tested anywhere."""

    state_dict: dict
    config: TrainConfig
    prep: Preprocessing
    epochs: list[EpochRecord]
    val_labels: np.ndarray  # (N_val,) site A's validation set: the threshold is chosen here
    val_probs: np.ndarray  # (N_val,) P(lesion)
    test_labels: np.ndarray  # (N_test,) site A's internal test set
    test_probs: np.ndarray  # (N_test,)
    num_site_a_patients: int
    seconds: float
    stopped: bool = False

    def model(self) -> torch.nn.Module:
        net = build(self.config)
        net.load_state_dict(self.state_dict)
        return net.eval()

    @property
    def threshold(self) -> float:
        """The operating point fixed on site A's validation set (Youden's J), then transferred."""
        return metrics.ThresholdSweep(self.val_labels, self.val_probs).youden_optimal_threshold()


def build(config: TrainConfig) -> torch.nn.Module:
    return models.build(config.model, seed=config.seed, in_channels=1, num_classes=2, width=config.width)


@lru_cache(maxsize=4)
def site_a_splits(num_images: int, seed: int) -> tuple[Splits, Preprocessing, int]:
    data, prep = site_data(SITE_A, num_images, seed)
    return split(data, SplitConfig(seed=seed)), prep, int(torch.unique(data.patient).numel())


def train_site_a(lab: ExternalValidationLab, *, on_epoch=None, should_stop=None) -> SiteModel:
    """Train once on site A (patient split 70/15/15) and score its validation and test sets."""
    splits, prep, num_patients = site_a_splits(lab.num_images, lab.seed)
    config = lab.train_config()
    model = build(config)
    start = time.perf_counter()
    history = fit(model, splits, config, on_epoch=on_epoch, should_stop=should_stop)
    seconds = time.perf_counter() - start
    return SiteModel(
        state_dict={k: v.detach().clone() for k, v in model.state_dict().items()},
        config=config,
        prep=prep,
        epochs=history.epochs,
        val_labels=splits.val.y.numpy(),
        val_probs=predict(model, splits.val.x)[:, 1].numpy(),
        test_labels=splits.test.y.numpy(),
        test_probs=predict(model, splits.test.x)[:, 1].numpy(),
        num_site_a_patients=num_patients,
        seconds=seconds,
        stopped=history.stopped_by_user,
    )


def site_b_data(lab: ExternalValidationLab, site_a: SiteModel) -> TensorData:
    """Site B's test set: its own seed and patients, site A's preprocessing."""
    data, _ = site_data(
        lab.site_b(),
        lab.b_images,
        lab.seed + SITE_B_SEED_OFFSET,
        prep=site_a.prep,
        patient_offset=site_a.num_site_a_patients,  # patient ids never collide with A's
    )
    return data


@dataclass
class SiteResult:
    """One site's numbers, at the threshold transferred from site A's validation set."""

    n: int
    positives: int
    auc: metrics.AucInterval  # DeLong 95% interval
    threshold: float
    sensitivity: float
    specificity: float
    ppv: float
    mean_predicted: float  # calibration-in-the-large: the mean predicted P(lesion) ...
    observed: float  # ... against the share of images that really have a lesion
    ece: float
    bins: metrics.ReliabilityBins


def evaluate_site(labels: np.ndarray, probs: np.ndarray, threshold: float) -> SiteResult:
    labels = np.asarray(labels).astype(np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    at = metrics.rates(metrics.confusion_at(labels, probs, threshold))
    return SiteResult(
        n=int(labels.size),
        positives=int(labels.sum()),
        auc=metrics.delong_auc_ci(labels, probs),
        threshold=threshold,
        sensitivity=float(at.sensitivity),
        specificity=float(at.specificity),
        ppv=float(at.ppv),
        mean_predicted=float(probs.mean()),
        observed=float(labels.mean()),
        ece=metrics.expected_calibration_error(labels, probs, CALIBRATION_BINS),
        bins=metrics.reliability_bins(labels, probs, CALIBRATION_BINS),
    )


@dataclass
class ValidationReport:
    internal: SiteResult
    external: SiteResult
    auc_drop: float  # internal − external
    drop_low: float  # 95% interval of the drop (independent test sets: variances add)
    drop_high: float
    changed: list[str]  # site-B fields that differ from site A


def compare_sites(site_a: SiteModel, external: TensorData, site_b: Acquisition = SITE_A) -> ValidationReport:
    threshold = site_a.threshold
    internal = evaluate_site(site_a.test_labels, site_a.test_probs, threshold)
    probs = predict(site_a.model(), external.x)[:, 1].numpy()
    ext = evaluate_site(external.y.numpy(), probs, threshold)
    drop = internal.auc.auc - ext.auc.auc
    se = float(np.hypot(internal.auc.standard_error, ext.auc.standard_error))
    z = 1.959963984540054  # two-sided 95%
    return ValidationReport(internal, ext, drop, drop - z * se, drop + z * se, site_b.differences(SITE_A))


def explain(report: ValidationReport) -> list[tuple[str, dict]]:
    """The caption, as (string key, values) sentences chosen from the numbers (the page translates)."""
    i, e = report.internal, report.external
    values = {"internal": i.auc.auc, "external": e.auc.auc, "low": report.drop_low, "high": report.drop_high}
    values["drop"] = report.auc_drop
    if report.drop_low > 0:
        out = [("extval.why.auc_dropped", values)]
    elif report.drop_high < 0:
        out = [("extval.why.auc_rose", values)]
    else:
        out = [("extval.why.auc_held", values)]
    for name in report.changed:
        out.append((f"extval.why.{name}", {}))
    d_sens, d_spec = e.sensitivity - i.sensitivity, e.specificity - i.specificity
    if max(abs(d_sens), abs(d_spec)) >= 0.05:  # 5 points: beyond what 300 test images jitter by alone
        worse = "sensitivity" if d_sens < d_spec else "specificity"
        out.append(
            (
                f"extval.why.threshold_{worse}",
                {"sens_a": i.sensitivity, "sens_b": e.sensitivity, "spec_a": i.specificity, "spec_b": e.specificity},
            )
        )
    gap = e.mean_predicted - e.observed
    if abs(gap) >= 0.05:
        key = "extval.why.overestimates" if gap > 0 else "extval.why.underestimates"
        out.append((key, {"predicted": e.mean_predicted, "observed": e.observed}))
    else:
        out.append(("extval.why.calibrated", {"predicted": e.mean_predicted, "observed": e.observed}))
    return out


# ---------------------------------------------------------------------------------------------
# Test-time augmentation: the eight symmetries of the square (dihedral group D4)

TRANSFORMS = ("identity", "rot90", "rot180", "rot270", "flip_lr", "flip_ud", "transpose", "antitranspose")


def transform(x: torch.Tensor, name: str) -> torch.Tensor:
    """One symmetry of the square applied to the last two axes (…, H, W). Exact: pixels move, none
    is interpolated, so every transform has an exact inverse."""
    h, w = x.dim() - 2, x.dim() - 1
    if name == "identity":
        return x
    if name.startswith("rot"):
        return torch.rot90(x, int(name[3:]) // 90, dims=(h, w))  # counter-clockwise
    if name == "flip_lr":
        return x.flip(w)
    if name == "flip_ud":
        return x.flip(h)
    if name == "transpose":
        return x.transpose(h, w)
    if name == "antitranspose":
        return torch.rot90(x, 2, dims=(h, w)).transpose(h, w)
    raise ValueError(f"unknown transform {name!r}")


INVERSE = {"rot90": "rot270", "rot270": "rot90"}  # every other symmetry of the square is its own inverse


def inverse(name: str) -> str:
    return INVERSE.get(name, name)


def predict_tta(model: torch.nn.Module, x: torch.Tensor, transforms=TRANSFORMS) -> torch.Tensor:
    """Class probabilities (N, C) averaged over the transformed copies of each image."""
    return torch.stack([predict(model, transform(x, name)) for name in transforms]).mean(0)


# ---------------------------------------------------------------------------------------------
# Ensembles lab


@register_lab("ensemble")
@dataclass
class EnsembleLab:
    num_models: int = 5  # K members; 5 is common in challenge entries and fits the 30 s budget
    num_images: int = 2000  # the training lab's default data set
    num_epochs: int = 3  # short runs: members still differ (val AUC ~0.9), so averaging has work to do
    width: int = 8  # channels of the first stage, as in the training lab
    seed: int = 0  # the data; member k trains with seed + k

    def member_config(self, member: int) -> TrainConfig:
        return TrainConfig(width=self.width, num_epochs=self.num_epochs, seed=self.seed + member)

    def member_key(self, member: int) -> str:
        """A member depends on the data and its own seed, not on K: raising K trains only the new ones."""
        return f"ensemble:{self.num_images}:{self.num_epochs}:{self.width}:{self.seed}:{member}"


@lru_cache(maxsize=4)
def ensemble_splits(num_images: int, seed: int) -> Splits:
    data, _ = site_data(SITE_A, num_images, seed)
    return split(data, SplitConfig(seed=seed))


@dataclass
class Member:
    member: int
    epochs: list[EpochRecord]
    test_probs: np.ndarray  # (N_test,) P(lesion)
    tta_probs: np.ndarray  # (N_test,) P(lesion), averaged over the eight transforms
    seconds: float
    stopped: bool = False


def train_member(lab: EnsembleLab, member: int, *, on_epoch=None, should_stop=None) -> Member:
    splits = ensemble_splits(lab.num_images, lab.seed)
    config = lab.member_config(member)
    model = build(config)
    start = time.perf_counter()
    history = fit(model, splits, config, on_epoch=on_epoch, should_stop=should_stop)
    seconds = time.perf_counter() - start
    return Member(
        member=member,
        epochs=history.epochs,
        test_probs=predict(model, splits.test.x)[:, 1].numpy(),
        tta_probs=predict_tta(model, splits.test.x)[:, 1].numpy(),
        seconds=seconds,
        stopped=history.stopped_by_user,
    )


@dataclass
class EnsembleReport:
    member_aucs: list[float]
    member_tta_aucs: list[float]
    ensemble_auc: float  # mean of the members' probabilities
    ensemble_tta_auc: float  # mean over members of their TTA probabilities
    auc_by_size: list[float]  # ensemble of the first k members, k = 1..K
    probs: np.ndarray  # (N,) ensemble P(lesion)
    spread: np.ndarray  # (N,) std of the members' P(lesion) per image: their disagreement
    correct: np.ndarray  # (N,) bool: the ensemble's call at 0.5 is right
    spread_right: float  # mean spread of correctly called images
    spread_wrong: float  # ... and of wrongly called ones (NaN when none is wrong)
    spread_auc: float  # AUC of the spread for telling wrong calls from right ones (NaN if undefined)
    vs_best: metrics.PairedAucTest  # ensemble against its best member (DeLong, same cases)
    seconds: float = 0.0


def ensemble_probs(member_probs: np.ndarray) -> np.ndarray:
    """(K, N) members' P(lesion) → (N,) the ensemble's: their plain mean."""
    return np.asarray(member_probs, dtype=np.float64).mean(axis=0)


def ensemble_report(members: list[Member], labels: np.ndarray) -> EnsembleReport:
    labels = np.asarray(labels).astype(np.int64)
    probs = np.stack([m.test_probs for m in members]).astype(np.float64)  # (K, N)
    tta = np.stack([m.tta_probs for m in members]).astype(np.float64)  # (K, N)
    mean = ensemble_probs(probs)
    spread = probs.std(axis=0) if len(members) > 1 else np.zeros_like(mean)
    correct = (mean >= 0.5) == (labels == 1)
    member_aucs = [float(roc_auc_score(labels, p)) for p in probs]
    best = int(np.argmax(member_aucs))
    wrong = ~correct
    spread_auc = float("nan")
    if len(members) > 1 and wrong.any() and correct.any():
        spread_auc = float(roc_auc_score(wrong, spread))
    return EnsembleReport(
        member_aucs=member_aucs,
        member_tta_aucs=[float(roc_auc_score(labels, p)) for p in tta],
        ensemble_auc=float(roc_auc_score(labels, mean)),
        ensemble_tta_auc=float(roc_auc_score(labels, ensemble_probs(tta))),
        auc_by_size=[float(roc_auc_score(labels, ensemble_probs(probs[:k]))) for k in range(1, len(members) + 1)],
        probs=mean,
        spread=spread,
        correct=correct,
        spread_right=float(spread[correct].mean()) if correct.any() else float("nan"),
        spread_wrong=float(spread[wrong].mean()) if wrong.any() else float("nan"),
        spread_auc=spread_auc,
        vs_best=metrics.delong_test(labels, mean, probs[best]),
        seconds=float(sum(m.seconds for m in members)),
    )


# ---------------------------------------------------------------------------------------------
# Through the chapter's training queue (primer.jobs): one job per training run


def submit_site_a(lab: ExternalValidationLab):
    from primer.jobs import training_queue

    def work(job):
        return train_site_a(lab, on_epoch=lambda record, _h: job.add_epoch(record), should_stop=job.should_stop)

    return training_queue().submit_work(lab.training_key(), work, total_epochs=lab.num_epochs)


def submit_members(lab: EnsembleLab) -> list:
    """One queued job per member; a member already trained (same data, same seed) is reused."""
    from primer.jobs import training_queue

    def work_for(member: int):
        def work(job):
            return train_member(
                lab, member, on_epoch=lambda record, _h: job.add_epoch(record), should_stop=job.should_stop
            )

        return work

    queue = training_queue()
    return [
        queue.submit_work(lab.member_key(k), work_for(k), total_epochs=lab.num_epochs) for k in range(lab.num_models)
    ]
