"""Uncertainty: MC dropout and a small deep ensemble, calibration, and referral of uncertain cases.

One network trained with dropout gives T stochastic answers per image when dropout stays on at
test time (MC dropout, Gal & Ghahramani 2016); K networks that differ only in their seed give K
answers (a deep ensemble, Lakshminarayanan et al. 2017). From the spread of those answers:

    predictive entropy   H(p̄)                    total uncertainty (bits; 1 = a coin flip)
    mutual information   H(p̄) − mean_s H(p_s)    the part due to disagreement (epistemic)
    std                  std_s p_s                the members' spread of P(lesion)
    feature distance     min_c (f − μ_c)ᵀ Σ⁻¹ (f − μ_c)   how far the image's features lie from the
                         training images' (squared Mahalanobis distance, Lee et al. 2018)

The first three read the output only; an image unlike any training image can still get a
confident output. The feature distance asks instead whether the network has seen features like
these: μ_c are the class means of the penultimate features of training images, Σ their shared
covariance.

Selective prediction refers the most uncertain X% to the radiologist and scores the rest:

    members = [train_member(lab, k) for k in range(lab.num_models)]
    scores = score_groups(lab, members)             # every group, both methods
    curve = coverage_curve(labels, probs, uncertainty, coverages)

The members reuse the ensemble lab's data and configuration (primer.validation) with dropout
switched on; the member with the best validation AUC is also the MC-dropout network (a choice
made on validation images, never on the test set: a seed that trains badly in a few epochs would
otherwise make MC dropout look worse than it is). Nothing here imports streamlit.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

import models
from primer import explain, metrics
from primer import validation as val
from primer.labstate import register_lab
from primer.train import EpochRecord, fit, predict

METHODS = ("mc", "ensemble")
MEASURES = ("entropy", "mutual_info", "std", "distance")
GROUPS = ("test", "scanner", "flat", "noise", "ct")  # in-distribution test set first, then OOD
OOD_IMAGES = 100  # per out-of-distribution group: enough for a stable mean
SCANNER = val.Acquisition(noise_std=0.6, intensity_scale=1.5)  # noisier, brighter: another scanner
OOD_SEED_OFFSET = 70_000  # OOD images come from their own random stream
FEATURE_FIT_IMAGES = 400  # training images behind the class means and covariance: 32 features need few


@register_lab("uncertainty")
@dataclass
class UncertaintyLab:
    num_models: int = 3  # K: three members fit the 30 s budget and already disagree
    num_images: int = 2000  # the training lab's default set: fewer images left the members near chance
    num_epochs: int = 5  # 3 members x 5 epochs at ~1.3 s each on 2 quiet cores: inside the 30 s budget
    dropout: float = 0.1  # before the last layer; 0.2-0.5 trained far too slowly in a few epochs
    width: int = 8  # as in the training lab
    seed: int = 0  # the data; member k trains with seed + k
    mc_passes: int = 30  # T stochastic passes (inference only: no retraining)
    method: str = "ensemble"  # whose uncertainty the referral curve uses (display only)
    measure: str = "entropy"  # predictive entropy, the total uncertainty (display only)
    refer_percent: int = 10  # X: the most uncertain X% go to the radiologist (display only)

    def ensemble_lab(self) -> val.EnsembleLab:
        return val.EnsembleLab(
            num_models=self.num_models,
            num_images=self.num_images,
            num_epochs=self.num_epochs,
            width=self.width,
            seed=self.seed,
        )

    def member_config(self, member: int):
        return self.ensemble_lab().member_config(member).replace(dropout=self.dropout)

    def member_key(self, member: int) -> str:
        return f"uncertainty:{self.num_images}:{self.num_epochs}:{self.width}:{self.dropout}:{self.seed}:{member}"


@dataclass
class Member:
    member: int
    state_dict: dict
    epochs: list[EpochRecord]
    seconds: float
    stopped: bool = False


def build(lab: UncertaintyLab, member: int) -> torch.nn.Module:
    config = lab.member_config(member)
    return models.build(
        config.model, seed=config.seed, in_channels=1, num_classes=2, width=config.width, dropout=config.dropout
    )


def train_member(lab: UncertaintyLab, member: int, *, on_epoch=None, should_stop=None) -> Member:
    splits, _, _ = val.site_a_splits(lab.num_images, lab.seed)  # the ensemble lab's data and split
    model = build(lab, member)
    start = time.perf_counter()
    history = fit(model, splits, lab.member_config(member), on_epoch=on_epoch, should_stop=should_stop)
    return Member(
        member=member,
        state_dict={k: v.detach().clone() for k, v in model.state_dict().items()},
        epochs=history.epochs,
        seconds=time.perf_counter() - start,
        stopped=history.stopped_by_user,
    )


def load(lab: UncertaintyLab, member: Member) -> torch.nn.Module:
    net = build(lab, member.member)
    net.load_state_dict(member.state_dict)
    return net.eval()


# ---------------------------------------------------------------------------------------------
# Images: the test set and four kinds the model never saw


@lru_cache(maxsize=4)
def group_images(num_images: int, seed: int) -> dict[str, tuple[torch.Tensor, np.ndarray | None]]:
    """Group name → (x (N, 1, 64, 64) in site A's standardised units, labels or None)."""
    from primer.hybrid import HYBRID_SOURCES, hybrid_case

    splits, prep, num_patients = val.site_a_splits(num_images, seed)
    g = torch.Generator().manual_seed(seed + OOD_SEED_OFFSET)
    scanner, _ = val.site_data(SCANNER, OOD_IMAGES, seed + OOD_SEED_OFFSET, prep=prep, patient_offset=num_patients)
    levels = torch.rand(OOD_IMAGES, 1, 1, 1, generator=g) * 4 - 2  # flat grey images, −2 … +2 SD
    sigma = 0.5 + torch.rand(OOD_IMAGES, 1, 1, 1, generator=g) * 1.5  # white noise, SD 0.5 … 2
    ct = [hybrid_case(name, seed=seed + s, contrast=0.0).x for name in HYBRID_SOURCES for s in range(OOD_IMAGES // 2)]
    return {
        "test": (splits.test.x, splits.test.y.numpy()),
        "scanner": (scanner.x, scanner.y.numpy()),
        "flat": (levels.expand(OOD_IMAGES, 1, 64, 64).contiguous(), None),
        "noise": (sigma * torch.randn(OOD_IMAGES, 1, 64, 64, generator=g), None),
        "ct": (torch.cat(ct), None),  # real CT patches without a lesion (primer.hybrid)
    }


# ---------------------------------------------------------------------------------------------
# Stochastic answers: T dropout passes of one network, or K networks


def mc_dropout_probs(model: torch.nn.Module, x: torch.Tensor, passes: int, seed: int = 0) -> np.ndarray:
    """(T, N) P(lesion) from T passes with dropout on and BatchNorm in eval mode (its running
    statistics, not the batch's). The network applies dropout only before its last layer
    (models/classifiers.py), so the convolutional part is the same in every pass: it runs once."""
    model.eval()
    g = torch.Generator().manual_seed(seed)
    dropout = model.dropout
    dropout.train()
    dropout.generator = g
    try:
        with torch.no_grad():
            features = model.embed(x)  # (N, C)
            out = [torch.softmax(model.head(dropout(features)), 1)[:, 1] for _ in range(passes)]
    finally:
        dropout.eval()
        dropout.generator = None
    return torch.stack(out).double().numpy()


def ensemble_member_probs(nets: list[torch.nn.Module], x: torch.Tensor) -> np.ndarray:
    """(K, N) P(lesion) of each member, deterministic (eval mode)."""
    return np.stack([predict(net, x)[:, 1].double().numpy() for net in nets])


def binary_entropy(p: np.ndarray) -> np.ndarray:
    """Entropy in bits of a yes/no answer with P(yes) = p: 0 when sure, 1 at p = 0.5."""
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-12, 1 - 1e-12)
    return -(p * np.log2(p) + (1 - p) * np.log2(1 - p))


@dataclass
class Answers:
    """S stochastic answers (T passes or K members) per image, and what follows from them."""

    samples: np.ndarray  # (S, N) P(lesion)
    distance: np.ndarray | None = None  # (N,) feature distance to the training images (see FeatureDistance)

    @property
    def probs(self) -> np.ndarray:
        return self.samples.mean(0)  # (N,) the predictive P(lesion)

    def uncertainty(self, measure: str) -> np.ndarray:
        if measure == "entropy":
            return binary_entropy(self.probs)
        if measure == "mutual_info":
            return np.maximum(binary_entropy(self.probs) - binary_entropy(self.samples).mean(0), 0.0)
        if measure == "std":
            return self.samples.std(0)
        if measure == "distance" and self.distance is not None:
            return self.distance
        raise ValueError(f"unknown measure {measure!r}")


class FeatureDistance:
    """Squared Mahalanobis distance of an image's penultimate features to the nearest class mean
    of the training images, with one covariance shared by the classes (Lee et al. 2018), estimated
    with Ledoit-Wolf shrinkage so that it stays invertible."""

    def __init__(self, net: torch.nn.Module, x: torch.Tensor, y: np.ndarray):
        from sklearn.covariance import LedoitWolf

        features = explain.features(net, x)  # (N, C)
        y = np.asarray(y)
        self.means = np.stack([features[y == c].mean(0) for c in (0, 1)])  # (2, C)
        self.covariance = LedoitWolf(assume_centered=True).fit(features - self.means[y])  # within-class spread

    def __call__(self, features: np.ndarray) -> np.ndarray:
        return np.min([self.covariance.mahalanobis(features - m) for m in self.means], axis=0)  # (N,)


def mc_member(members: list[Member]) -> int:
    """Index of the member MC dropout uses: the best last-epoch validation AUC (ties: the first)."""
    return int(np.argmax([m.epochs[-1].val_auc if m.epochs else -1.0 for m in members]))


def score_groups(lab: UncertaintyLab, members: list[Member]) -> dict[str, dict[str, Answers]]:
    """method → group → Answers, for every group of images."""
    nets = [load(lab, m) for m in members]
    mc = mc_member(members)
    train = val.site_a_splits(lab.num_images, lab.seed)[0].train
    fit_x, fit_y = train.x[:FEATURE_FIT_IMAGES], train.y[:FEATURE_FIT_IMAGES].numpy()
    distances = [FeatureDistance(net, fit_x, fit_y) for net in nets]
    out = {"mc": {}, "ensemble": {}}
    for name, (x, _) in group_images(lab.num_images, lab.seed).items():
        d = np.stack([dist(explain.features(net, x)) for net, dist in zip(nets, distances, strict=True)])  # (K, N)
        out["mc"][name] = Answers(mc_dropout_probs(nets[mc], x, lab.mc_passes, seed=lab.seed), d[mc])
        out["ensemble"][name] = Answers(ensemble_member_probs(nets, x), d.mean(0))  # the members' mean distance
    return out


# ---------------------------------------------------------------------------------------------
# Selective prediction and calibration


@dataclass
class CoverageCurve:
    coverage: np.ndarray  # (M,) share of cases the model keeps
    error: np.ndarray  # (M,) error rate at 0.5 among the kept cases
    auc: np.ndarray  # (M,) AUC among the kept cases (NaN when one class is left)
    kept: np.ndarray  # (M,) number kept


def coverage_curve(labels, probs, uncertainty, coverages) -> CoverageCurve:
    """Keep the round(c·N) least uncertain cases (ties: the earlier case first) for every coverage c."""
    labels, probs = np.asarray(labels).astype(np.int64), np.asarray(probs, dtype=np.float64)
    order = np.argsort(np.asarray(uncertainty), kind="stable")
    wrong = (probs >= 0.5) != (labels == 1)
    kept, error, auc = [], [], []
    for c in coverages:
        keep = order[: int(round(c * len(labels)))]
        kept.append(len(keep))
        error.append(wrong[keep].mean() if len(keep) else np.nan)
        two = len(np.unique(labels[keep])) == 2
        auc.append(roc_auc_score(labels[keep], probs[keep]) if two else np.nan)
    return CoverageCurve(np.asarray(coverages, float), np.array(error, float), np.array(auc, float), np.array(kept))


COVERAGES = np.round(np.linspace(1.0, 0.5, 51), 2)  # refer 0% … 50%, in 1% steps


def reliability(labels, probs) -> metrics.ReliabilityBins:
    return metrics.reliability_bins(labels, probs, val.CALIBRATION_BINS)


def ood_auc(in_dist: np.ndarray, ood: np.ndarray) -> float:
    """AUC of the uncertainty for telling OOD images (positive) from test images: 0.5 = no help."""
    return float(roc_auc_score(np.r_[np.zeros(len(in_dist)), np.ones(len(ood))], np.r_[in_dist, ood]))


# ---------------------------------------------------------------------------------------------
# Through the training queue: one job per member


def submit_members(lab: UncertaintyLab) -> list:
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
