"""The training engine: data as tensors in memory, a seeded loop, history through callbacks.

    data = phantom_data(PhantomConfig())                     # tensors + labels + patient ids
    splits = split(data, SplitConfig())                      # train / val / test by patient
    model = models.build("plain_cnn", seed=0)
    history = fit(model, splits, TrainConfig(), on_epoch=print)

The trainer knows nothing about the model beyond "images in, class logits out". Every random
choice (initial weights, shuffling, dropout masks, augmentation) comes from generators seeded by
the config, never from the process-wide random state, so the same config and seed give
bit-identical histories even while other users train in other threads.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Literal

import numpy as np
import torch
import torch._dynamo  # noqa: F401  an optimizer's first step imports it (~1 s): pay that when the page loads, not on Train
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score
from torch import nn

import models
from primer.labstate import register_lab
from primer.synth import PhantomConfig, generate

# ---------------------------------------------------------------------------------------------
# Data


@dataclass
class TensorData:
    """A labelled image set held as tensors. Images are standardised per data set."""

    x: torch.Tensor  # (N, 1, H, W) float32
    y: torch.Tensor  # (N,) int64 class index
    patient: torch.Tensor  # (N,) int64: images of one patient never straddle a split
    classes: tuple[str, ...]
    mask: torch.Tensor | None = None  # (N, H, W) bool lesion masks, when known
    split_index: torch.Tensor | None = None  # (N,) 0 train, 1 val, 2 test when the data set fixes its split

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, index: torch.Tensor) -> TensorData:
        def pick(t):
            return None if t is None else t[index]

        return TensorData(
            self.x[index], self.y[index], self.patient[index], self.classes, pick(self.mask), pick(self.split_index)
        )


def standardize(images: np.ndarray) -> torch.Tensor:
    """(N, H, W) array → (N, 1, H, W) float32 tensor with zero mean and unit variance overall.

    One global scale, not per image: per-image normalisation would erase the contrast a lesion
    adds to its image, which is exactly the signal."""
    x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)).unsqueeze(1)  # (N, 1, H, W)
    return (x - x.mean()) / x.std().clamp_min(1e-6)


def phantom_data(config: PhantomConfig) -> TensorData:
    phantoms = generate(config)
    classes = ("no lesion", "lesion") if config.task == "presence" else ("round", "spiculated")
    return TensorData(
        x=standardize(phantoms.images),
        y=torch.from_numpy(phantoms.labels),
        patient=torch.from_numpy(phantoms.patient_id),
        classes=classes,
        mask=torch.from_numpy(phantoms.masks),
    )


@dataclass(frozen=True)
class SplitConfig:
    val_fraction: float = 0.15  # enough cases for a stable validation AUC, most left for training
    test_fraction: float = 0.15  # touched once, after training, for the reported numbers
    by: Literal["patient", "image"] = "patient"  # "image" leaks a patient's near-duplicates across splits
    num_train: int = 0  # cap on training images (0: all); for learning curves and transfer learning
    seed: int = 0


@dataclass
class Splits:
    train: TensorData
    val: TensorData
    test: TensorData

    def sizes(self) -> dict[str, dict[str, int]]:
        """Images, patients and positives per split: what a methods section should report."""
        out = {}
        for name in ("train", "val", "test"):
            part: TensorData = getattr(self, name)
            out[name] = {
                "images": len(part),
                "patients": int(torch.unique(part.patient).numel()) if len(part) else 0,
                "positives": int((part.y == 1).sum()),
            }
        return out

    def leaked_patients(self) -> int:
        """Patients with images in both training and validation/test (0 for a patient split)."""
        train = set(self.train.patient.tolist())
        return len(train & (set(self.val.patient.tolist()) | set(self.test.patient.tolist())))


def split(data: TensorData, config: SplitConfig = SplitConfig()) -> Splits:
    """Random train/val/test split by patient (default) or, to show leakage, by image. A data
    set that ships its own split (MedMNIST) keeps it."""
    g = torch.Generator().manual_seed(config.seed)
    if data.split_index is not None:
        parts = {
            name: data.subset((data.split_index == i).nonzero().squeeze(1))
            for i, name in enumerate(("train", "val", "test"))
        }
        return _cap_train(Splits(**parts), config, g)
    units = torch.unique(data.patient) if config.by == "patient" else torch.arange(len(data))
    units = units[torch.randperm(len(units), generator=g)]
    n_val = max(1, round(config.val_fraction * len(units)))
    n_test = max(1, round(config.test_fraction * len(units)))
    groups = {"val": units[:n_val], "test": units[n_val : n_val + n_test], "train": units[n_val + n_test :]}
    key = data.patient if config.by == "patient" else torch.arange(len(data))
    parts = {name: data.subset(torch.isin(key, members).nonzero().squeeze(1)) for name, members in groups.items()}
    return _cap_train(Splits(**parts), config, g)


def _cap_train(splits: Splits, config: SplitConfig, g: torch.Generator) -> Splits:
    """Keep a random `num_train` training images (learning curves, few-label fine-tuning)."""
    if config.num_train and config.num_train < len(splits.train):
        keep = torch.randperm(len(splits.train), generator=g)[: config.num_train].sort().values
        splits.train = splits.train.subset(keep)
    return splits


# ---------------------------------------------------------------------------------------------
# Augmentation


@dataclass(frozen=True)
class AugmentConfig:
    flip: bool = True  # lesions have no preferred side or orientation
    max_rotation_deg: float = 15.0  # small: patients are positioned roughly the same way
    intensity: float = 0.1  # ± gain and offset jitter, like differences in exposure and windowing
    noise: float = 0.1  # extra white noise up to this std, like a noisier acquisition


def rotate(x: torch.Tensor, degrees: torch.Tensor) -> torch.Tensor:
    """Rotate each image of (N, C, H, W) about its centre by its own angle (counter-clockwise,
    degrees), bilinear, reflecting at the border so no black corners appear."""
    angle = torch.deg2rad(degrees)
    cos, sin = torch.cos(angle), torch.sin(angle)
    zero = torch.zeros_like(angle)
    # affine_grid maps output to input (x right, y down): sampling from the clockwise-rotated
    # position turns the picture counter-clockwise as seen on screen
    theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)  # (N, 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)  # (N, H, W, 2)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def augment(x: torch.Tensor, cfg: AugmentConfig, g: torch.Generator) -> torch.Tensor:
    """Random per-image flips, rotation, intensity and noise jitter for a batch (N, 1, H, W).

    Every image gets its own random parameters, drawn from the trainer's generator, in a few
    batched tensor operations. (torchvision's v2 transforms draw one parameter set per call, so a
    whole batch would be flipped or rotated alike, and from the global random state.)"""
    n = x.shape[0]
    if cfg.flip:
        flip_h = torch.rand(n, generator=g) < 0.5
        flip_v = torch.rand(n, generator=g) < 0.5
        x = torch.where(flip_h[:, None, None, None], x.flip(3), x)
        x = torch.where(flip_v[:, None, None, None], x.flip(2), x)
    if cfg.max_rotation_deg > 0:
        angles = (torch.rand(n, generator=g) * 2 - 1) * cfg.max_rotation_deg
        x = rotate(x, angles)
    if cfg.intensity > 0:
        gain = 1 + (torch.rand(n, 1, 1, 1, generator=g) * 2 - 1) * cfg.intensity
        offset = (torch.rand(n, 1, 1, 1, generator=g) * 2 - 1) * cfg.intensity
        x = x * gain + offset
    if cfg.noise > 0:
        sigma = torch.rand(n, 1, 1, 1, generator=g) * cfg.noise
        x = x + sigma * torch.randn(x.shape, generator=g)
    return x


# ---------------------------------------------------------------------------------------------
# Training


@dataclass(frozen=True)
class TrainConfig:
    model: str = "plain_cnn"
    width: int = 8  # channels in the first stage; 8 trains in seconds and is plenty for 64 px phantoms
    optimizer: Literal["sgd", "momentum", "adam"] = "adam"  # Adam forgives a rough learning rate
    learning_rate: float = 3e-3  # a little above Adam's 1e-3 default: short runs need quick progress
    batch_size: int = 64  # small enough for several updates per epoch, large enough for BatchNorm
    num_epochs: int = 6  # the default task passes validation AUC 0.95 around epoch 4, in ~6 s
    weight_decay: float = 0.0  # off by default so overfitting can be shown, then fixed
    dropout: float = 0.0
    augment: bool = False
    early_stopping_patience: int = 0  # epochs without a better validation loss before stopping (0: off)
    seed: int = 0
    lr_schedule: Literal["constant", "step", "cosine"] = "constant"  # constant keeps the runs as they always were
    warmup_epochs: float = 0.0  # linear ramp from 1% of the learning rate over this many epochs (0: none)
    loss: Literal["cross_entropy", "weighted", "focal"] = "cross_entropy"  # the textbook default
    focal_gamma: float = 2.0  # the focal loss paper's choice: (1 - p)^2 all but silences easy images

    def replace(self, **changes) -> TrainConfig:
        return replace(self, **changes)


@dataclass
class EpochRecord:
    epoch: int
    train_loss: float
    train_accuracy: float
    val_loss: float
    val_accuracy: float
    val_auc: float
    seconds: float  # wall time since training started
    learning_rates: list[float] = field(default_factory=list)  # the rate each step of this epoch used


@dataclass
class History:
    epochs: list[EpochRecord] = field(default_factory=list)
    best_epoch: int | None = None  # the epoch whose weights were kept (early stopping)
    stopped_early: bool = False
    stopped_by_user: bool = False
    diverged: bool = False  # the loss became NaN or infinite: the learning rate is too high
    flops: float = 0.0  # floating-point operations of the training steps (torch flop counter)

    def as_dict(self) -> dict:
        return asdict(self)

    def column(self, name: str) -> list[float]:
        return [getattr(e, name) for e in self.epochs]

    @property
    def learning_rates(self) -> list[float]:
        """The learning rate of every optimizer step, in order (the schedule as it ran)."""
        return [lr for e in self.epochs for lr in e.learning_rates]


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    params = model.parameters()
    if cfg.optimizer == "adam":
        # AdamW: weight decay as true decay, not folded into Adam's adaptive gradient scaling
        return torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    momentum = 0.9 if cfg.optimizer == "momentum" else 0.0
    return torch.optim.SGD(params, lr=cfg.learning_rate, momentum=momentum, weight_decay=cfg.weight_decay)


WARMUP_START = 0.01  # warm-up starts at 1% of the learning rate: small but not zero (zero is a wasted step)


def steps_per_epoch(num_train: int, batch_size: int) -> int:
    """Optimizer steps in one epoch: every batch, minus a last batch of one image (skipped,
    because BatchNorm cannot estimate a variance from one image)."""
    num_batches = max(1, math.ceil(num_train / batch_size))
    last = num_train - (num_batches - 1) * batch_size
    return num_batches - (1 if last < 2 else 0)


def make_scheduler(
    optimizer: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LRScheduler | None:
    """The learning-rate schedule, stepped once per optimizer step (not per epoch): a six-epoch
    run has only six epochs, so per-epoch stepping would give a coarse staircase and a warm-up
    of one epoch would be a single jump; per step, the warm-up is a smooth ramp over its ~22
    steps per epoch and the cosine a smooth curve, as in the libraries that made it the default.

    constant: the rate as set. step: ÷10 at half and again at three quarters of the steps after
    warm-up (the classic ImageNet recipe, shrunk to this run). cosine: half a cosine from the
    rate down towards 0, reached just after the last step. A warm-up (LinearLR from 1% to 100%) goes in front through
    SequentialLR. None when there is nothing to schedule, so a default run is untouched."""
    from torch.optim import lr_scheduler as sched

    total = max(1, cfg.num_epochs * steps_per_epoch)
    warmup = min(total - 1, round(cfg.warmup_epochs * steps_per_epoch)) if cfg.warmup_epochs > 0 else 0
    after = total - warmup  # steps the main schedule covers
    if cfg.lr_schedule == "cosine":
        main = sched.CosineAnnealingLR(optimizer, T_max=after, eta_min=0.0)
    elif cfg.lr_schedule == "step":
        main = sched.MultiStepLR(optimizer, milestones=[after // 2, (3 * after) // 4], gamma=0.1)
    elif cfg.lr_schedule == "constant":
        main = None
    else:
        raise TrainError("unknown_schedule", schedule=cfg.lr_schedule)
    if not warmup:
        return main
    ramp = sched.LinearLR(optimizer, start_factor=WARMUP_START, end_factor=1.0, total_iters=warmup)
    if main is None:
        return ramp  # LinearLR holds its end factor (the full rate) after the ramp
    return sched.SequentialLR(optimizer, [ramp, main], milestones=[warmup])


def class_weights(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Weights inverse to class frequency, n / (K × n_c) (scikit-learn's "balanced"): each class
    then carries the same total weight in the loss. A class absent from the set gets weight 0."""
    counts = torch.bincount(labels, minlength=num_classes).double()
    weights = torch.where(counts > 0, len(labels) / (num_classes * counts.clamp_min(1)), 0.0)
    return weights.float()


def focal_loss(log_probs: torch.Tensor, y: torch.Tensor, gamma: float = 2.0) -> torch.Tensor:
    """Mean focal loss, softmax form: −(1 − p_t)^γ · log p_t, with p_t the probability of the true
    class. (N, K) log-probabilities, (N,) labels. γ = 0 is cross-entropy; with γ = 2 an image
    already called right at p_t = 0.9 counts 100 times less, so the hard ones dominate."""
    log_pt = log_probs.gather(1, y[:, None]).squeeze(1)  # (N,)
    return (-((1 - log_pt.exp()) ** gamma) * log_pt).mean()


def loss_function(cfg: TrainConfig, train_labels: torch.Tensor, num_classes: int) -> Callable | None:
    """(log-probabilities, labels) → loss for training and validation, or None for the plain
    cross-entropy (kept on its original code path, so default runs give the same numbers)."""
    if cfg.loss == "cross_entropy":
        return None
    if cfg.loss == "weighted":
        weights = class_weights(train_labels, num_classes)
        return lambda log_probs, y: F.nll_loss(log_probs, y, weight=weights)
    if cfg.loss == "focal":
        return lambda log_probs, y: focal_loss(log_probs, y, cfg.focal_gamma)
    raise TrainError("unknown_loss", loss=cfg.loss)


@torch.inference_mode()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Class probabilities, (N, num_classes), in eval mode."""
    was_training = model.training
    model.eval()
    probs = [
        F.softmax(model(x[i : i + batch_size].contiguous(memory_format=torch.channels_last)), dim=1)
        for i in range(0, len(x), batch_size)
    ]
    model.train(was_training)
    return torch.cat(probs) if probs else torch.empty(0)


def auc_score(y: torch.Tensor, probs: torch.Tensor) -> float:
    """ROC AUC of the positive class (binary) or one-vs-rest macro AUC; NaN with one class."""
    y_np, p_np = y.numpy(), probs.double().numpy()
    if len(np.unique(y_np)) < 2 or not np.isfinite(p_np).all():
        return float("nan")
    if p_np.shape[1] == 2:
        return float(roc_auc_score(y_np, p_np[:, 1]))
    return float(roc_auc_score(y_np, p_np, multi_class="ovr", labels=list(range(p_np.shape[1]))))


def evaluate(model: nn.Module, data: TensorData, loss_fn: Callable | None = None) -> tuple[float, float, float]:
    """(loss, accuracy, AUC) on a data set; the loss is the training objective (`loss_fn`, see
    loss_function), so the training and validation loss curves stay comparable."""
    probs = predict(model, data.x)
    log_probs = torch.log(probs.clamp_min(1e-12))
    loss = (F.nll_loss(log_probs, data.y) if loss_fn is None else loss_fn(log_probs, data.y)).item()
    accuracy = (probs.argmax(1) == data.y).float().mean().item()
    return loss, accuracy, auc_score(data.y, probs)


def fit(
    model: nn.Module,
    splits: Splits,
    config: TrainConfig = TrainConfig(),
    *,
    on_epoch: Callable[[EpochRecord, History], None] | None = None,
    on_batch: Callable[[int, int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    augment_config: AugmentConfig = AugmentConfig(),
    count_flops: bool = False,
) -> History:
    """Train `model` in place and return its history. Callbacks: `on_epoch(record, history)`
    after each epoch, `on_batch(epoch, batch, num_batches)` after each step, `should_stop()`
    polled after each step (a user pressing Stop)."""
    g = torch.Generator().manual_seed(config.seed)
    models.set_generator(model, g)
    # channels-last layout: oneDNN's CPU convolutions run ~1.5x faster on it for these small nets
    model.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(model, config)
    train = splits.train
    n = len(train)
    num_batches = max(1, math.ceil(n / config.batch_size))
    scheduler = make_scheduler(optimizer, config, steps_per_epoch(n, config.batch_size))
    num_classes = len(train.classes)
    loss_fn = loss_function(config, train.y, num_classes)
    history = History()
    best_loss, best_state, waited = math.inf, None, 0
    start = time.perf_counter()

    for epoch in range(1, config.num_epochs + 1):
        model.train()
        order = torch.randperm(n, generator=g)
        loss_sum = correct = 0.0
        rates = []
        for b in range(num_batches):
            idx = order[b * config.batch_size : (b + 1) * config.batch_size]
            if len(idx) < 2:  # BatchNorm needs two images to estimate a variance
                continue
            x, y = train.x[idx], train.y[idx]
            if config.augment:
                x = augment(x, augment_config, g)
            x = x.contiguous(memory_format=torch.channels_last)
            if count_flops and epoch == 1 and b == 0:
                history.flops += _step_flops(model, optimizer, x, y) * num_batches * config.num_epochs
            logits = model(x)
            loss = F.cross_entropy(logits, y) if loss_fn is None else loss_fn(F.log_softmax(logits, 1), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            rates.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            loss_sum += loss.item() * len(idx)
            correct += (logits.argmax(1) == y).sum().item()
            if on_batch is not None:
                on_batch(epoch, b + 1, num_batches)
            if should_stop is not None and should_stop():
                history.stopped_by_user = True
                break
            if not math.isfinite(loss.item()):
                history.diverged = True
                break
        val_loss, val_acc, val_auc = evaluate(model, splits.val, loss_fn)
        record = EpochRecord(
            epoch, loss_sum / n, correct / n, val_loss, val_acc, val_auc, time.perf_counter() - start, rates
        )
        history.epochs.append(record)
        if on_epoch is not None:
            on_epoch(record, history)
        if history.stopped_by_user or history.diverged:
            break
        if val_loss < best_loss:
            best_loss, waited = val_loss, 0
            if config.early_stopping_patience:
                best_state = copy.deepcopy(model.state_dict())
                history.best_epoch = epoch
        else:
            waited += 1
            if config.early_stopping_patience and waited >= config.early_stopping_patience:
                history.stopped_early = True
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    models.set_generator(model, None)
    model.eval()
    return history


def _step_flops(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> float:
    """FLOPs of one forward + backward pass, counted by torch on a copy (weights untouched)."""
    from torch.utils.flop_counter import FlopCounterMode

    probe = copy.deepcopy(model)
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(probe(x), y).backward()
    return float(counter.get_total_flops())


# ---------------------------------------------------------------------------------------------
# One experiment = data + split + model + optimisation: what the training lab runs.


@register_lab("train")
@dataclass
class TrainLab:
    """Everything the training lab's controls set; one link reproduces one run."""

    # data
    task: str = "presence"  # presence | shape | ske
    num_images: int = 2000  # before the split; 70% train
    contrast: float = 2.5  # lesion peak in background-std units
    beta: float = 3.0  # background texture exponent
    images_per_patient: int = 1
    split_by: str = "patient"
    num_train: int = 0
    # model
    model: str = "plain_cnn"
    width: int = 8
    dropout: float = 0.0
    # optimisation
    optimizer: str = "adam"
    learning_rate: float = 0.003
    batch_size: int = 64
    num_epochs: int = 6
    # regularisation
    weight_decay: float = 0.0
    augment: bool = False
    early_stopping_patience: int = 0
    init: str = "scratch"  # scratch | pretrained (start from the default lesion-detection model)
    seed: int = 0
    # added later, at the end so that old links and checkpoints keep their meaning
    lr_schedule: str = "constant"  # constant | step | cosine; constant: every run before schedules existed
    warmup_epochs: float = 0.0  # linear warm-up length in epochs (0: none)
    prevalence: float = 0.5  # share of positive images (lesion / spiculated); 0.5 is the old balanced data
    loss: str = "cross_entropy"  # cross_entropy | weighted | focal

    def phantom_config(self) -> PhantomConfig:
        base = PhantomConfig(
            n=self.num_images,
            prevalence=self.prevalence,
            contrast=self.contrast,
            beta=self.beta,
            images_per_patient=self.images_per_patient,
            seed=self.seed,
        )
        if self.task == "shape":
            return base.replace(task="shape", profile="disk")
        if self.task == "ske":
            return base.replace(fixed_position=True, radius_jitter=0.0)
        return base

    def split_config(self) -> SplitConfig:
        return SplitConfig(by=self.split_by, num_train=self.num_train, seed=self.seed)

    def train_config(self) -> TrainConfig:
        return TrainConfig(
            model=self.model,
            width=self.width,
            optimizer=self.optimizer,
            learning_rate=self.learning_rate,
            batch_size=self.batch_size,
            num_epochs=self.num_epochs,
            weight_decay=self.weight_decay,
            dropout=self.dropout,
            augment=self.augment,
            early_stopping_patience=self.early_stopping_patience,
            seed=self.seed,
            lr_schedule=self.lr_schedule,
            warmup_epochs=self.warmup_epochs,
            loss=self.loss,
        )


@dataclass
class RunResult:
    """What a finished run hands to the page and to the metrics and saliency chapters."""

    lab: TrainLab
    history: History
    state_dict: dict
    num_classes: int
    classes: tuple[str, ...]
    sizes: dict
    test_labels: np.ndarray  # (N_test,)
    test_probs: np.ndarray  # (N_test, num_classes)
    val_labels: np.ndarray
    val_probs: np.ndarray
    test_auc: float
    test_accuracy: float
    seconds: float
    leaked_patients: int = 0
    fresh_auc: float | None = None  # on 600 images of new patients, generated for this check only

    def model(self) -> nn.Module:
        net = build_model(self.lab, self.num_classes)
        net.load_state_dict(self.state_dict)
        return net.eval()


def build_model(lab: TrainLab, num_classes: int, in_channels: int = 1) -> nn.Module:
    return models.build(
        lab.model, seed=lab.seed, in_channels=in_channels, num_classes=num_classes, width=lab.width, dropout=lab.dropout
    )


def run_experiment(
    lab: TrainLab,
    data: TensorData | None = None,
    *,
    on_epoch=None,
    on_batch=None,
    should_stop=None,
    init_state: dict | None = None,
) -> RunResult:
    """Generate (or take) the data, split it, build the model, train, and score the test set once.

    `init_state` (or `lab.init == "pretrained"`) starts from other weights (transfer learning)
    instead of a fresh initialisation."""
    own_data = data is not None
    data = data if own_data else phantom_data(lab.phantom_config())
    splits = split(data, lab.split_config())
    num_classes = len(data.classes)
    model = build_model(lab, num_classes, in_channels=data.x.shape[1])
    if init_state is None and lab.init == "pretrained":
        init_state = pretrained_state(lab, num_classes)
    if init_state is not None:
        model.load_state_dict(init_state)
    start = time.perf_counter()
    history = fit(model, splits, lab.train_config(), on_epoch=on_epoch, on_batch=on_batch, should_stop=should_stop)
    seconds = time.perf_counter() - start
    test_probs = predict(model, splits.test.x)
    val_probs = predict(model, splits.val.x)
    return RunResult(
        lab=lab,
        history=history,
        state_dict={k: v.detach().clone() for k, v in model.state_dict().items()},
        num_classes=num_classes,
        classes=data.classes,
        sizes=splits.sizes(),
        test_labels=splits.test.y.numpy(),
        test_probs=test_probs.numpy(),
        val_labels=splits.val.y.numpy(),
        val_probs=val_probs.numpy(),
        test_auc=auc_score(splits.test.y, test_probs),
        test_accuracy=float((test_probs.argmax(1) == splits.test.y).float().mean()),
        seconds=seconds,
        leaked_patients=splits.leaked_patients(),
        fresh_auc=None if own_data else fresh_patients_auc(model, lab),
    )


def operating_point(labels: np.ndarray, probs: np.ndarray, threshold: float = 0.5) -> dict:
    """A binary model at a fixed threshold, as a reader would use it: sensitivity, specificity and
    the four counts, plus the mean predicted probability of the positive class beside the true
    share of positives (equal for a calibrated model, on average). (N,) labels, (N, 2) probs."""
    p = probs[:, 1]
    positive, called = labels == 1, p >= threshold
    tp, fn = int((called & positive).sum()), int((~called & positive).sum())
    tn, fp = int((~called & ~positive).sum()), int((called & ~positive).sum())
    return {
        "sensitivity": tp / (tp + fn) if tp + fn else float("nan"),
        "specificity": tn / (tn + fp) if tn + fp else float("nan"),
        "tp": tp,
        "fn": fn,
        "tn": tn,
        "fp": fp,
        "mean_probability": float(p.mean()) if len(p) else float("nan"),
        "prevalence": float(positive.mean()) if len(p) else float("nan"),
    }


def fresh_patients_auc(model: nn.Module, lab: TrainLab, n: int = 600) -> float:
    """AUC on images of patients the split never saw, one image each: an honest external check
    that a leaky split cannot inflate."""
    config = lab.phantom_config().replace(n=n, images_per_patient=1, seed=lab.seed + 10_000)
    fresh = phantom_data(config)
    return auc_score(fresh.y, predict(model, fresh.x))


class TrainError(ValueError):
    def __init__(self, code: str, **detail):
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


def pretrained_state(lab: TrainLab, num_classes: int) -> dict:
    """Weights of the shipped default model (trained to detect lesions) to fine-tune from."""
    from primer.default_model import CHECKPOINT, load_checkpoint

    source, model, _ = load_checkpoint(CHECKPOINT)
    if (source.model, source.width, num_classes) != (lab.model, lab.width, 2):
        raise TrainError("pretrained_mismatch", model=source.model, width=source.width)
    return model.state_dict()


def patient_folds(data: TensorData, k: int, seed: int) -> list[torch.Tensor]:
    """k disjoint sets of patient ids covering every patient once, in random order."""
    g = torch.Generator().manual_seed(seed)
    patients = torch.unique(data.patient)
    return list(torch.tensor_split(patients[torch.randperm(len(patients), generator=g)], k))


def cross_validate(
    lab: TrainLab, data: TensorData | None = None, k: int = 5, *, on_fold=None, should_stop=None
) -> dict:
    """k-fold cross-validation grouped by patient: every patient is validated exactly once, by a
    model that never saw any of their images. Returns validation AUC per fold, mean and SD."""
    data = data if data is not None else phantom_data(lab.phantom_config())
    aucs, stopped = [], False
    for i, held_out in enumerate(patient_folds(data, k, lab.seed)):
        val_mask = torch.isin(data.patient, held_out)
        splits = Splits(train=data.subset(~val_mask), val=data.subset(val_mask), test=data.subset(val_mask))
        model = build_model(dataclasses.replace(lab, seed=lab.seed + i), len(data.classes), data.x.shape[1])
        history = fit(model, splits, lab.train_config(), should_stop=should_stop)
        if history.stopped_by_user:
            stopped = True
            break
        aucs.append(evaluate(model, splits.val)[2])
        if on_fold is not None:
            on_fold(i + 1, k)
    values = np.array(aucs)
    return {
        "k": k,
        "fold_aucs": aucs,
        "mean": float(values.mean()) if len(values) else float("nan"),
        "sd": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
        "stopped": stopped,
    }
