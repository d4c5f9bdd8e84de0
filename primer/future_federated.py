"""Federated learning: hospitals train one model together without pooling their images.

Three to five simulated hospitals, each its own patients, scanner and case mix, built from
primer.validation's `Acquisition` / `site_data`. One slider moves them from identical (non-IID 0)
to very different (non-IID 1). Three ways to get a model are compared on every hospital's test
set and on a new hospital that never joined the federation:

    local-only    each hospital trains alone on its own images
    FedAvg        McMahan et al. 2017: every round the server sends the global weights to the
                  chosen hospitals, each trains E local epochs (primer.train.fit), sends its
                  weights back, and the server replaces the global weights by their average,
                  weighted by each hospital's number of training images
    centralized   one model trained on all the hospitals' images pooled (what privacy law forbids)

    lab = FederatedLab()
    fed = federation(lab)                               # the hospitals' data (cached)
    result = run_comparison(lab, on_step=print)         # the one training job (queue on the page)
    result.auc["fedavg"]["new"].auc, result.auc["local:0"]["h0"].auc

Batch normalisation: its running mean and variance are buffers in the state dict, and plain
FedAvg here averages them exactly like the weights (sample-weighted). FedBN (Li et al. 2021)
instead keeps them local; we do not, so the global model has one set of statistics for all
sites and a new hospital can use it unchanged. Integer buffers (BatchNorm's step counter) are
not averaged: the largest count is kept (the model never reads it with a fixed momentum).

Preprocessing: the federation agrees on one fixed intensity normalisation (the mean and std of
the reference acquisition), and every hospital applies it to its own images, like an agreed
window. So a scanner's intensity calibration reaches the network as a real shift.

Nothing here imports streamlit.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import torch

from primer import metrics
from primer.labstate import register_lab
from primer.train import SplitConfig, Splits, TensorData, TrainConfig, fit, predict, split
from primer.validation import Acquisition, Preprocessing, build, site_data, site_images

# ---------------------------------------------------------------------------------------------
# Hospitals

REFERENCE = Acquisition(contrast=3.0)  # every hospital at non-IID 0; a little more contrast than
# the training chapter's 2.5 so that a few hundred images and a few epochs learn something

# What each hospital looks like at non-IID 1 (at x between 0 and 1 every field moves that fraction
# of the way from REFERENCE), and its share of the federation's images at non-IID 1.
PROFILES = (
    # a large university hospital: modern detector, balanced case mix
    (Acquisition(noise_std=0.2, beta=3.0, contrast=3.0, intensity_scale=1.0, prevalence=0.5), 0.40),
    # a screening centre: few positives, subtler lesions, a brighter calibration
    (Acquisition(noise_std=0.3, beta=3.0, contrast=2.4, intensity_scale=1.4, prevalence=0.2), 0.25),
    # an oncology centre: most patients have a lesion, another reconstruction kernel, darker
    (Acquisition(noise_std=0.25, beta=2.5, contrast=3.5, intensity_scale=0.7, prevalence=0.8), 0.15),
    # a small hospital with an older low-dose scanner
    (Acquisition(noise_std=0.5, beta=3.5, contrast=3.0, intensity_scale=1.2, prevalence=0.4), 0.10),
    # a community hospital with a busier background texture
    (Acquisition(noise_std=0.35, beta=2.2, contrast=2.8, intensity_scale=0.8, prevalence=0.5), 0.10),
)
# the hospital that never joined: another scanner again, fewer positives
NEW_HOSPITAL = Acquisition(
    noise_std=0.4, beta=2.5, contrast=2.8, intensity_scale=1.1, intensity_offset=0.2, prevalence=0.3
)
FIELDS = ("noise_std", "beta", "contrast", "intensity_scale", "intensity_offset", "prevalence")

HOSPITAL_SEED_OFFSET = 70_000  # hospital k draws its patients from seed + 70 000 × (k + 1)
NEW_SEED_OFFSET = 90_000  # the new hospital's stream: no patient is shared with anyone
PATIENT_ID_STRIDE = 1_000_000  # hospital k's patient ids start at k × 1 000 000: unique when pooled
TEST_IMAGES = 200  # each hospital's own test set (other patients than its training images)
VAL_FRACTION = 0.15  # of a hospital's training pool, by patient


def mix(x: float, a: float, b: float) -> float:
    return a + x * (b - a)


def hospital_acquisitions(num_hospitals: int, non_iid: float) -> list[Acquisition]:
    return [
        Acquisition(**{f: mix(non_iid, getattr(REFERENCE, f), getattr(p, f)) for f in FIELDS})
        for p, _ in PROFILES[:num_hospitals]
    ]


def hospital_sizes(num_images: int, num_hospitals: int, non_iid: float) -> list[int]:
    """Training-pool images per hospital: equal at non-IID 0, the profiles' shares at 1."""
    shares = np.array([s for _, s in PROFILES[:num_hospitals]])
    shares = mix(non_iid, 1 / num_hospitals, shares / shares.sum())
    sizes = np.floor(shares * num_images).astype(int)
    sizes[0] += num_images - sizes.sum()  # the rounding remainder goes to the largest hospital
    return sizes.tolist()


@lru_cache(maxsize=1)
def shared_preprocessing() -> Preprocessing:
    """The federation's agreed normalisation: mean and std of 500 reference images."""
    images, _ = site_images(REFERENCE, 500, 12_345)
    return Preprocessing(mean=float(images.mean(dtype=np.float64)), std=float(images.std(dtype=np.float64)))


@dataclass
class Hospital:
    index: int
    acquisition: Acquisition
    splits: Splits  # train / val from the training pool, test: its own TEST_IMAGES other patients

    @property
    def num_train(self) -> int:
        return len(self.splits.train)


def make_hospital(index: int, acquisition: Acquisition, num_images: int, seed: int) -> Hospital:
    """One hospital's images (its own seed and patients), split by patient."""
    n = num_images + TEST_IMAGES
    data, _ = site_data(
        acquisition,
        n,
        seed + HOSPITAL_SEED_OFFSET * (index + 1),
        prep=shared_preprocessing(),
        patient_offset=PATIENT_ID_STRIDE * index,
    )
    # one image per patient, so fractions of patients are fractions of images
    splits = split(
        data, SplitConfig(val_fraction=VAL_FRACTION * num_images / n, test_fraction=TEST_IMAGES / n, seed=seed)
    )
    return Hospital(index, acquisition, splits)


def pool(parts: list[TensorData]) -> TensorData:
    """Several data sets as one (what centralized training would need: all images in one place)."""
    mask = None if any(p.mask is None for p in parts) else torch.cat([p.mask for p in parts])
    return TensorData(
        x=torch.cat([p.x for p in parts]),
        y=torch.cat([p.y for p in parts]),
        patient=torch.cat([p.patient for p in parts]),
        classes=parts[0].classes,
        mask=mask,
    )


# ---------------------------------------------------------------------------------------------
# The lab's state


@register_lab("federated")
@dataclass
class FederatedLab:
    num_hospitals: int = 4  # 3-5; four gives two big and two small hospitals
    non_iid: float = 1.0  # 0 every hospital alike, 1 very different: the case federated learning must handle
    num_images: int = 800  # training pool of the whole federation (+200 test images per hospital):
    # the small hospitals then have 70-110 images, too few to train alone, as in practice
    rounds: int = 8  # communication rounds; 8 × 1 epoch: FedAvg passes the local models by round 3
    local_epochs: int = 1  # E: more local work per round means fewer rounds but more client drift
    clients_per_round: int = 4  # all hospitals every round (McMahan's C = 1); fewer is cheaper but noisier
    seed: int = 0  # the hospitals' patients, the initial weights and the choice of clients
    new_images: int = 500  # the new hospital's test set: an AUC interval about ±0.04 wide
    # display only (no retraining)
    view: str = "new"  # which test set the bars and ROC curves show: new | h0 | h1 | ...

    def train_config(self) -> TrainConfig:
        return TrainConfig(seed=self.seed)  # plain_cnn width 8, Adam 3e-3, batch 64: the chapter's default

    def total_epochs(self) -> int:
        """Passes over each hospital's data, the same for every method (a fair comparison)."""
        return self.rounds * self.local_epochs

    def total_steps(self) -> int:
        """Records the job streams: one per round, one per epoch of each local model and of the
        centralized one."""
        return self.rounds + (self.num_hospitals + 1) * self.total_epochs()

    def problem(self) -> str | None:
        """A settings combination that cannot run, as a string key (None when fine)."""
        if not 3 <= self.num_hospitals <= len(PROFILES):
            return "federated.bad.num_hospitals"
        if not 1 <= self.clients_per_round <= self.num_hospitals:
            return "federated.bad.clients"
        return None

    def training_key(self) -> str:
        """What the training run depends on (`view` is display only)."""
        return (
            f"federated:{self.num_hospitals}:{self.non_iid}:{self.num_images}:{self.rounds}:{self.local_epochs}:"
            f"{self.clients_per_round}:{self.seed}:{self.new_images}"
        )


@dataclass
class Federation:
    hospitals: list[Hospital]
    new: TensorData  # the hospital outside the federation: test images only

    def test_sets(self) -> dict[str, TensorData]:
        out = {f"h{h.index}": h.splits.test for h in self.hospitals}
        out["new"] = self.new
        return out


@lru_cache(maxsize=4)
def _federation(num_hospitals: int, non_iid: float, num_images: int, seed: int, new_images: int) -> Federation:
    acquisitions = hospital_acquisitions(num_hospitals, non_iid)
    sizes = hospital_sizes(num_images, num_hospitals, non_iid)
    hospitals = [make_hospital(k, a, n, seed) for k, (a, n) in enumerate(zip(acquisitions, sizes, strict=True))]
    new, _ = site_data(
        NEW_HOSPITAL,
        new_images,
        seed + NEW_SEED_OFFSET,
        prep=shared_preprocessing(),
        patient_offset=PATIENT_ID_STRIDE * len(PROFILES),
    )
    return Federation(hospitals, new)


def federation(lab: FederatedLab) -> Federation:
    return _federation(lab.num_hospitals, lab.non_iid, lab.num_images, lab.seed, lab.new_images)


# ---------------------------------------------------------------------------------------------
# FedAvg


def aggregate(states: list[dict], weights: list[float]) -> dict:
    """The server's step: Σ_k (n_k / n) · w_k for every floating-point tensor of the state dicts
    (weights, biases, BatchNorm's running mean and variance), accumulated in float64. Integer
    buffers (BatchNorm's step counter) keep the largest value."""
    total = float(sum(weights))
    out = {}
    for name, first in states[0].items():
        if first.is_floating_point():
            acc = sum(s[name].double() * (w / total) for s, w in zip(states, weights, strict=True))
            out[name] = acc.to(first.dtype)
        else:
            out[name] = torch.stack([s[name] for s in states]).max(0).values
    return out


def local_seed(seed: int, round_index: int, client: int) -> int:
    """A client's own shuffling stream for one round (round 0, client 0: the run's seed itself)."""
    return seed + 1000 * round_index + client


def choose_clients(num_clients: int, per_round: int, round_index: int, seed: int) -> list[int]:
    """The clients that train this round: a seeded random subset (all of them when per_round = K)."""
    g = torch.Generator().manual_seed(seed + 7919 * round_index)
    return sorted(torch.randperm(num_clients, generator=g)[:per_round].tolist())


@dataclass
class RoundInfo:
    round: int  # 1-based
    clients: list[int]
    weights: list[int]  # each chosen client's training images: its share of the average


def federated_averaging(
    model: torch.nn.Module,
    clients: list[Splits],
    config: TrainConfig,
    rounds: int,
    local_epochs: int,
    clients_per_round: int,
    *,
    client_ids: list[int] | None = None,
    on_round=None,
    should_stop=None,
) -> list[RoundInfo]:
    """Train `model` (the global weights, changed in place) with FedAvg. Each chosen client starts
    from the global weights and runs primer.train.fit for `local_epochs` epochs with a fresh
    optimizer; the server averages the returned state dicts weighted by training-set size.
    `on_round(info, model)` after each round. `client_ids` give each client its seed stream
    (identical ids and data make identical clients)."""
    ids = client_ids if client_ids is not None else list(range(len(clients)))
    history = []
    for r in range(rounds):
        chosen = choose_clients(len(clients), clients_per_round, r, config.seed)
        states, weights = [], []
        for k in chosen:
            local = copy.deepcopy(model)
            local_config = config.replace(num_epochs=local_epochs, seed=local_seed(config.seed, r, ids[k]))
            fit(local, clients[k], local_config, should_stop=should_stop)
            states.append(local.state_dict())
            weights.append(len(clients[k].train))
            if should_stop is not None and should_stop():
                return history  # a half-finished round is not aggregated
        model.load_state_dict(aggregate(states, weights))
        model.eval()
        info = RoundInfo(r + 1, chosen, weights)
        history.append(info)
        if on_round is not None:
            on_round(info, model)
    return history


# ---------------------------------------------------------------------------------------------
# The comparison: one job, a record per round / epoch


@dataclass
class Step:
    """One streamed point of the curves."""

    method: str  # "fedavg", "local:k" or "central"
    epochs: int  # passes over each hospital's data so far (round × E for FedAvg)
    val_auc: float  # FedAvg and centralized: pooled validation set; local: the hospital's own
    new_auc: float | None  # FedAvg only: the new hospital, after each round
    seconds: float  # since the job started
    clients: list[int] = field(default_factory=list)  # FedAvg: who trained this round


@dataclass
class FederatedResult:
    lab: FederatedLab
    steps: list[Step]
    auc: dict[str, dict[str, metrics.AucInterval]]  # method → test set → DeLong interval
    probs: dict[str, dict[str, np.ndarray]]  # method → test set → P(lesion)
    labels: dict[str, np.ndarray]  # test set → labels
    sizes: list[int]  # training images per hospital
    positives: list[float]  # share of positives in each hospital's training images
    seconds: dict[str, float]  # method family → training seconds
    stopped: bool = False

    def methods(self) -> list[str]:
        return [*(f"local:{k}" for k in range(len(self.sizes))), "fedavg", "central"]

    def local_mean_auc(self, test_set: str) -> float:
        """The average local-only model's AUC on a test set (each hospital's model, then averaged)."""
        return float(np.mean([self.auc[f"local:{k}"][test_set].auc for k in range(len(self.sizes))]))


def auc(labels: np.ndarray, probs: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(labels, probs))


def score(model: torch.nn.Module, data: TensorData) -> np.ndarray:
    return predict(model, data.x)[:, 1].numpy().astype(np.float64)


def run_comparison(lab: FederatedLab, *, on_step=None, should_stop=None) -> FederatedResult:
    """FedAvg first (the curves stream from round 1), then each hospital alone, then all pooled.
    Every method gets the same initial weights and the same passes over each hospital's data."""
    problem = lab.problem()
    if problem is not None:
        raise ValueError(problem)
    start = time.perf_counter()
    stop = should_stop or (lambda: False)
    fed = federation(lab)
    hospitals = fed.hospitals
    config = lab.train_config()
    pooled_val = pool([h.splits.val for h in hospitals])
    steps: list[Step] = []

    def emit(step: Step) -> None:
        steps.append(step)
        if on_step is not None:
            on_step(step)

    models_by_method = {}
    seconds = {}

    # FedAvg
    t = time.perf_counter()
    global_model = build(config)

    def on_round(info: RoundInfo, model) -> None:
        emit(
            Step(
                "fedavg",
                info.round * lab.local_epochs,
                auc(pooled_val.y.numpy(), score(model, pooled_val)),
                auc(fed.new.y.numpy(), score(model, fed.new)),
                time.perf_counter() - start,
                info.clients,
            )
        )

    federated_averaging(
        global_model,
        [h.splits for h in hospitals],
        config,
        lab.rounds,
        lab.local_epochs,
        lab.clients_per_round,
        on_round=on_round,
        should_stop=stop,
    )
    models_by_method["fedavg"] = global_model
    seconds["fedavg"] = time.perf_counter() - t

    # local-only: same initial weights, the same number of passes over their own data
    t = time.perf_counter()
    for h in hospitals:
        if stop():
            break
        method = f"local:{h.index}"
        model = build(config)
        fit(
            model,
            h.splits,
            config.replace(num_epochs=lab.total_epochs(), seed=config.seed + h.index),
            on_epoch=lambda rec, _h, m=method: emit(Step(m, rec.epoch, rec.val_auc, None, time.perf_counter() - start)),
            should_stop=stop,
        )
        models_by_method[method] = model
    seconds["local"] = time.perf_counter() - t

    # centralized: every hospital's training images in one place
    t = time.perf_counter()
    if not stop():
        pooled = Splits(train=pool([h.splits.train for h in hospitals]), val=pooled_val, test=pooled_val)
        model = build(config)
        fit(
            model,
            pooled,
            config.replace(num_epochs=lab.total_epochs()),
            on_epoch=lambda rec, _h: emit(Step("central", rec.epoch, rec.val_auc, None, time.perf_counter() - start)),
            should_stop=stop,
        )
        models_by_method["central"] = model
    seconds["central"] = time.perf_counter() - t

    tests = fed.test_sets()
    labels = {name: d.y.numpy() for name, d in tests.items()}
    probs, aucs = {}, {}
    stopped = stop() or len(models_by_method) < len(hospitals) + 2
    if not stopped:
        for method, model in models_by_method.items():
            probs[method] = {name: score(model, d) for name, d in tests.items()}
            aucs[method] = {name: metrics.delong_auc_ci(labels[name], p) for name, p in probs[method].items()}
    return FederatedResult(
        lab=lab,
        steps=steps,
        auc=aucs,
        probs=probs,
        labels=labels,
        sizes=[h.num_train for h in hospitals],
        positives=[float(h.splits.train.y.float().mean()) for h in hospitals],
        seconds=seconds,
        stopped=stopped,
    )


def submit(lab: FederatedLab):
    """The whole comparison as one job of the shared training queue, a record per round / epoch."""
    from primer.jobs import training_queue

    def work(job):
        return run_comparison(lab, on_step=job.add_epoch, should_stop=job.should_stop)

    return training_queue().submit_work(lab.training_key(), work, total_epochs=lab.total_steps())
