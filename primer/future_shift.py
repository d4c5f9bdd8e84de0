"""Domain shift and three remedies: a model trained on scanner A meets scanner B.

Site A trains (the chapter's default phantoms, through `primer.validation`); the user picks what
differs at site B (the noise, the intensity calibration or the pixel spacing) and how far. Site
B's images go through the deployed model three more times, each with one remedy:

- intensity normalisation: every site standardised with its own mean and std (B's statistics need
  no labels), instead of site A's frozen `Preprocessing`;
- augmentation that covers B: a second model trained on A's images, each one changed once by a
  random amount of the same property, drawn over the whole range the slider offers;
- test-time adaptation (AdaBN, Li et al. 2016): the batch-norm layers' running mean and variance
  re-estimated on unlabeled B images; no weight changes.

    lab = ShiftLab(shift="noise", b_level=0.6)
    base, aug = train_base(lab), train_augmented(lab)      # two queued runs on the page
    report = shift_report(lab, base, aug)
    report.arms["none"].auc.auc, report.arms["adabn"].auc.auc

Nothing here imports streamlit.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F

from primer import validation as val
from primer.labstate import register_lab
from primer.synth import generate
from primer.train import TensorData, fit, predict

# What can differ at site B, in the order of the control: (Acquisition field or "zoom", A's value,
# the slider's range). Site A's value is one end of every range, so B == A is always reachable.
SHIFTS = {
    "noise": ("noise_std", val.SITE_A.noise_std, (0.25, 1.0)),  # quantum noise std: a low-dose protocol
    "scale": ("intensity_scale", val.SITE_A.intensity_scale, (0.5, 2.0)),  # detector calibration / bit depth
    "spacing": ("zoom", 1.0, (0.5, 1.0)),  # B's pixels are 1/zoom times coarser: lesions cover fewer pixels
}
ARMS = ("none", "normalize", "augment", "adabn")  # B without a remedy, then the three remedies
RADIUS_A = 4.0  # PhantomConfig's lesion radius in pixels at site A
ADAPT_SEED_OFFSET = 70_000  # B's unlabeled adaptation images: other patients than B's test set


@register_lab("shift")
@dataclass
class ShiftLab:
    shift: str = "scale"  # a recalibrated detector: B's pixel values are A's times b_level
    b_level: float = 0.5  # half as bright: AUC 0.96 at A falls to about 0.64 at B, and all three remedies recover it
    num_images: int = 2000  # site A before its patient split, as in the external-validation lab
    num_epochs: int = 6  # the training lab's default: validation AUC ≈ 0.95
    seed: int = 0
    b_images: int = 1000  # B's test set: an AUC interval about ±0.02 wide
    adapt_images: int = 500  # unlabeled B images for AdaBN: one batch of 500 estimates 8-32 channels well
    shown: str = "none"  # display only: the arm drawn against A in the reliability diagram

    def acquisition_b(self) -> tuple[val.Acquisition, float]:
        """Site B's acquisition and its zoom (pixel spacing of A over B's; 1 = same)."""
        field, _, _ = SHIFTS[self.shift]
        if field == "zoom":
            return val.SITE_A, float(self.b_level)
        return replace(val.SITE_A, **{field: float(self.b_level)}), 1.0

    def base_lab(self) -> val.ExternalValidationLab:
        """The same site-A run as the external-validation lab's (its queue key, its cache)."""
        return val.ExternalValidationLab(num_images=self.num_images, num_epochs=self.num_epochs, seed=self.seed)

    def base_key(self) -> str:
        return self.base_lab().training_key()

    def augment_key(self) -> str:
        return f"shift:augment:{self.shift}:{self.num_images}:{self.num_epochs}:{self.seed}"


def check(lab: ShiftLab) -> str | None:
    """A string key for a combination the lab cannot run, else None."""
    if lab.shift not in SHIFTS:
        return "shift.error.unknown_shift"
    low, high = SHIFTS[lab.shift][2]
    if not low - 1e-9 <= lab.b_level <= high + 1e-9:
        return "shift.error.out_of_range"
    return None


# ---------------------------------------------------------------------------------------------
# Site B's images: the scanner's physics, then a preprocessing path


def site_b_raw(lab: ShiftLab, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(images (N, H, W) raw pixels, labels (N,)) of site B. A pixel-spacing shift draws lesions
    `zoom` times smaller in pixels (the texture is a power law, so it looks alike at any scale)."""
    acquisition, zoom = lab.acquisition_b()
    phantoms = generate(replace(acquisition.phantom_config(n, seed), radius=RADIUS_A * zoom))
    images = phantoms.images * np.float32(acquisition.intensity_scale) + np.float32(acquisition.intensity_offset)
    return images.astype(np.float32), phantoms.labels


def standardize_own(images: np.ndarray) -> tuple[torch.Tensor, val.Preprocessing]:
    """The normalisation remedy: a site standardised with its own pixel mean and std."""
    prep = val.Preprocessing(mean=float(images.mean(dtype=np.float64)), std=float(images.std(dtype=np.float64)))
    return prep.apply(images), prep


# ---------------------------------------------------------------------------------------------
# Remedy 2: augmentation that covers B (one random change per training image)


def covering_augmentation(x: torch.Tensor, prep: val.Preprocessing, shift: str, seed: int) -> torch.Tensor:
    """Site A's standardised images (N, 1, H, W), each changed once by a random amount of `shift`
    drawn over the slider's whole range, then standardised again with A's frozen preprocessing."""
    g = torch.Generator().manual_seed(seed)
    n = x.shape[0]
    if shift not in SHIFTS:
        raise ValueError(f"unknown shift {shift!r}")
    raw = x * prep.std + prep.mean  # back to A's pixel units
    low, high = SHIFTS[shift][2]
    u = torch.rand(n, 1, 1, 1, generator=g)
    if shift == "noise":  # add white noise up to B's total std: sqrt(target² − A²)
        target = low + u * (high - low)
        extra = torch.sqrt((target**2 - val.SITE_A.noise_std**2).clamp_min(0))
        raw = raw + extra * torch.randn(raw.shape, generator=g)
    elif shift == "scale":  # log-uniform gain: halving and doubling equally likely
        raw = raw * torch.exp(np.log(low) + u * (np.log(high) - np.log(low)))
    elif shift == "spacing":  # zoom out about the centre, mirrored at the border (no lesion is cut)
        zoom = (low + u * (high - low)).view(n)
        theta = torch.zeros(n, 2, 3)
        theta[:, 0, 0] = theta[:, 1, 1] = 1 / zoom  # output pixel → input position: 1/zoom wider view
        grid = F.affine_grid(theta, list(raw.shape), align_corners=False)
        raw = F.grid_sample(raw, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    return (raw - prep.mean) / max(prep.std, 1e-6)


def train_base(lab: ShiftLab, *, on_epoch=None, should_stop=None) -> val.SiteModel:
    """The deployed model: site A's run, exactly as the external-validation lab trains it."""
    return val.train_site_a(lab.base_lab(), on_epoch=on_epoch, should_stop=should_stop)


def train_augmented(lab: ShiftLab, *, on_epoch=None, should_stop=None) -> val.SiteModel:
    """The same recipe and seed, on A's training images augmented to cover B's range."""
    splits, prep, num_patients = val.site_a_splits(lab.num_images, lab.seed)
    train = splits.train
    x = covering_augmentation(train.x, prep, lab.shift, lab.seed)
    splits = replace(splits, train=TensorData(x=x, y=train.y, patient=train.patient, classes=train.classes))
    config = lab.base_lab().train_config()
    model = val.build(config)
    start = time.perf_counter()
    history = fit(model, splits, config, on_epoch=on_epoch, should_stop=should_stop)
    return val.SiteModel(
        state_dict={k: v.detach().clone() for k, v in model.state_dict().items()},
        config=config,
        prep=prep,
        epochs=history.epochs,
        val_labels=splits.val.y.numpy(),
        val_probs=predict(model, splits.val.x)[:, 1].numpy(),
        test_labels=splits.test.y.numpy(),
        test_probs=predict(model, splits.test.x)[:, 1].numpy(),
        num_site_a_patients=num_patients,
        seconds=time.perf_counter() - start,
        stopped=history.stopped_by_user,
    )


# ---------------------------------------------------------------------------------------------
# Remedy 3: AdaBN, batch-norm statistics re-estimated on unlabeled B images


@torch.no_grad()
def adapt_batchnorm(model: torch.nn.Module, x: torch.Tensor) -> torch.nn.Module:
    """A copy of `model` whose BatchNorm running mean/var are those of B's images: statistics
    reset, momentum None (a cumulative average), one forward pass in train mode over all of `x`
    as one batch, so each layer's stored mean and (unbiased) variance are exactly those of its
    input over B. Weights, biases and the BN scale and shift are untouched."""
    adapted = copy.deepcopy(model)
    norms = [m for m in adapted.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for bn in norms:
        bn.reset_running_stats()
        bn.momentum = None
    adapted.eval()
    for bn in norms:
        bn.train()  # only the BN layers see batch statistics; dropout stays off
    adapted(x.contiguous(memory_format=torch.channels_last))
    return adapted.eval()


# ---------------------------------------------------------------------------------------------
# The report: A, B, and B with each remedy, at each model's own A-validation threshold


@dataclass
class ShiftReport:
    internal: val.SiteResult  # the deployed model on A's own test patients
    arms: dict[str, val.SiteResult]  # "none", "normalize", "augment", "adabn" on B's test set
    augment_internal: val.SiteResult  # the augmented model on A's test patients (what it costs at A)
    drop: float  # internal AUC − B's AUC without a remedy
    recovered: dict[str, float]  # share of the drop each remedy wins back (NaN when there is no drop)
    b_mean: float  # B's pixels in A's standardised units (what A's preprocessing hands the model)
    b_std: float
    seconds: float = 0.0


def shift_report(lab: ShiftLab, base: val.SiteModel, augmented: val.SiteModel) -> ShiftReport:
    start = time.perf_counter()
    seed = lab.seed + val.SITE_B_SEED_OFFSET
    images, labels = site_b_raw(lab, lab.b_images, seed)
    deployed = base.prep.apply(images)  # A's frozen preprocessing, as a deployed model does
    own, _ = standardize_own(images)
    adapt_images, _ = site_b_raw(lab, lab.adapt_images, seed + ADAPT_SEED_OFFSET)
    model = base.model()
    adapted = adapt_batchnorm(model, base.prep.apply(adapt_images))
    probs = {
        "none": predict(model, deployed),
        "normalize": predict(model, own),
        "augment": predict(augmented.model(), deployed),
        "adabn": predict(adapted, deployed),
    }
    thresholds = {"augment": augmented.threshold}
    arms = {
        name: val.evaluate_site(labels, p[:, 1].numpy(), thresholds.get(name, base.threshold))
        for name, p in probs.items()
    }
    internal = val.evaluate_site(base.test_labels, base.test_probs, base.threshold)
    aug_internal = val.evaluate_site(augmented.test_labels, augmented.test_probs, augmented.threshold)
    drop = internal.auc.auc - arms["none"].auc.auc
    recovered = {
        name: (arms[name].auc.auc - arms["none"].auc.auc) / drop if drop > 0 else float("nan") for name in ARMS[1:]
    }
    return ShiftReport(
        internal=internal,
        arms=arms,
        augment_internal=aug_internal,
        drop=drop,
        recovered=recovered,
        b_mean=float(deployed.mean()),
        b_std=float(deployed.std()),
        seconds=time.perf_counter() - start,
    )


def best_remedy(report: ShiftReport) -> str:
    return max(ARMS[1:], key=lambda name: report.arms[name].auc.auc)


# ---------------------------------------------------------------------------------------------
# Through the chapter's training queue (primer.jobs)


def submit(lab: ShiftLab) -> list:
    """Two queued runs: the deployed model (shared with the external-validation lab's key) and
    the augmented one. A run already trained with the same settings is joined, not repeated."""
    from primer.jobs import training_queue

    def work_for(train):
        def work(job):
            return train(lab, on_epoch=lambda record, _h: job.add_epoch(record), should_stop=job.should_stop)

        return work

    queue = training_queue()
    return [
        queue.submit_work(lab.base_key(), work_for(train_base), total_epochs=lab.num_epochs),
        queue.submit_work(lab.augment_key(), work_for(train_augmented), total_epochs=lab.num_epochs),
    ]
