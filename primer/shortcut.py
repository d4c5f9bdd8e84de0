"""Shortcut learning: a marker that only positive images carry, and a model that learns it.

Zech et al. (2018) found pneumonia classifiers that recognised the hospital (its scanner, its
burned-in tokens) instead of the lungs, because prevalence differed between hospitals. This lab
rebuilds that trap on phantoms. A letter on a dark box or a checkerboard tag is burned into the
positive training images only, and one model trains on those. A control model trains on the very
same images with the marker tied to nothing: on images of both classes at random, or on none at
all. Both are then tested three ways: marked (the marker on every positive), clean (no marker
anywhere) and flipped (marker on the negatives only). A model that learned the marker scores
well as trained, falls on clean images and turns upside down on flipped ones; its heatmaps light
up the corner, not the lesion. (A control that never saw the marker fails the flipped test too, for
another reason: a sharp pattern it never met in training looks like a lesion to it.)

Both models train through `primer.train.run_experiment`, the same code as the training lab.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch

from primer import explain
from primer.labstate import register_lab
from primer.synth import PhantomConfig, generate
from primer.train import RunResult, TensorData, TrainLab, auc_score, predict, run_experiment, split

MARKERS: tuple[str, ...] = ("letter", "tag")
VARIANTS: tuple[str, ...] = ("marked", "clean", "flipped")  # where the test set carries the marker
MODELS: tuple[str, ...] = ("shortcut", "control")  # marker tied to the label / not tied to it
CONTROLS: tuple[str, ...] = ("random", "none")  # the control sees the marker at random / never

# A 1-px capital "L" on a dark box, like the laterality letter or hospital token burned into a
# radiograph (+1 bright, -1 dark, 0 untouched). Mostly dark, so a detector of bright blobs has no
# reason to mistake it for a lesion; only a model that learns the pattern itself will use it.
_LETTER = np.array(
    [
        [-1, -1, -1, -1, -1, -1, -1],
        [-1, +1, -1, -1, -1, -1, -1],
        [-1, +1, -1, -1, -1, -1, -1],
        [-1, +1, -1, -1, -1, -1, -1],
        [-1, +1, -1, -1, -1, -1, -1],
        [-1, +1, -1, -1, -1, -1, -1],
        [-1, +1, +1, +1, +1, -1, -1],
        [-1, -1, -1, -1, -1, -1, -1],
    ]
)
# A 6×6 checkerboard in the opposite corner: a texture with no net brightness at all.
_TAG = np.where(np.add.outer(np.arange(6), np.arange(6)) % 2 == 0, 1, -1)


def marker_pattern(kind: str, size: int = 64) -> np.ndarray:
    """The marker as a (size, size) int array: +1 bright, -1 dark, 0 untouched. The letter
    sits top left, the tag top right, both 3 px from the border."""
    out = np.zeros((size, size), np.int8)
    if kind == "letter":
        out[3 : 3 + _LETTER.shape[0], 3 : 3 + _LETTER.shape[1]] = _LETTER
    elif kind == "tag":
        out[3:9, size - 9 : size - 3] = _TAG
    else:
        raise ValueError(f"unknown marker {kind!r}")
    return out


def marker_mask(kind: str, size: int = 64) -> np.ndarray:
    """Where the marker is, (size, size) bool."""
    return marker_pattern(kind, size) != 0


def burn(images: np.ndarray, which: np.ndarray, kind: str, bright: float, dark: float) -> np.ndarray:
    """A copy of images (N, H, W) with the marker written into those where `which` is True."""
    pattern = marker_pattern(kind, images.shape[-1])
    out = images.copy()
    marked = out[which]  # (M, H, W), a copy
    marked[:, pattern > 0] = bright
    marked[:, pattern < 0] = dark
    out[which] = marked
    return out


@register_lab("shortcut")
@dataclass
class ShortcutLab:
    marker: str = "letter"
    marker_rate: float = 1.0  # share of the positive training images that carry the marker
    control: str = "random"  # the control's marker: on random images of both classes, or "none"
    contrast: float = 2.5  # the default phantoms' lesion: learnable, so the clean model works
    num_images: int = 1200  # the clean model reaches AUC ≈ 0.94 on these in four epochs
    seed: int = 0
    index: int = 0  # which marked positive test image to explain
    run: bool = False  # training takes seconds: the user starts it

    def train_lab(self) -> TrainLab:
        """The training-lab settings both models use: small and quick."""
        # Small batches and a brisk learning rate: enough updates in four short epochs.
        return TrainLab(
            num_images=self.num_images,
            contrast=self.contrast,
            batch_size=32,
            learning_rate=0.005,
            num_epochs=4,
            seed=self.seed,
        )

    def phantom_config(self) -> PhantomConfig:
        return self.train_lab().phantom_config()

    def settings(self) -> tuple:
        """The fields that change the trained models (not which image is shown), hashable."""
        return tuple((k, v) for k, v in asdict(self).items() if k not in ("index", "run"))

    def key(self) -> str:
        """Identity of the data (for the training queue): every setting that changes it."""
        payload = dict(self.settings())
        return "shortcut-" + hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]


@dataclass
class ShortcutData:
    lab: ShortcutLab
    train_shortcut: TensorData  # the marker on (a share of) the positives only
    train_control: TensorData  # the same images, the marker on random ones or on none
    variants: dict[str, TensorData]  # the test set: marked / clean / flipped
    marker_region: np.ndarray  # (H, W) bool


def _tensor_data(images: np.ndarray, labels, patient, masks, mean: float, std: float) -> TensorData:
    x = torch.from_numpy(((images - mean) / std).astype(np.float32)).unsqueeze(1)  # (N, 1, H, W)
    return TensorData(
        x=x,
        y=torch.from_numpy(labels),
        patient=torch.from_numpy(patient),
        classes=("no lesion", "lesion"),
        mask=torch.from_numpy(masks),
    )


def make_data(lab: ShortcutLab) -> ShortcutData:
    """Phantoms with the marker placed in each way, all standardised with the clean images' mean
    and std so that an image differs between versions only where the marker is."""
    phantoms = generate(lab.phantom_config())
    images, labels = phantoms.images, phantoms.labels
    rng = np.random.default_rng(lab.seed + 1)
    positive = labels == 1
    draw = rng.random(len(labels))
    carries = positive & (draw < lab.marker_rate)
    # The random control marks as many images, on average, whatever their label.
    at_random = draw < lab.marker_rate * positive.mean() if lab.control == "random" else np.zeros(len(labels), bool)
    # As bright and as dark as the extremes of the anatomy: obvious, like a burned-in letter.
    bright, dark = (float(v) for v in np.percentile(images, [99.9, 0.1]))
    mean, std = float(images.mean()), float(images.std())

    def data(imgs: np.ndarray) -> TensorData:
        return _tensor_data(imgs, labels, phantoms.patient_id, phantoms.masks, mean, std)

    clean = data(images)
    shortcut = data(burn(images, carries, lab.marker, bright, dark))
    control = data(burn(images, at_random, lab.marker, bright, dark))
    every_positive = data(burn(images, positive, lab.marker, bright, dark))
    flipped = data(burn(images, ~positive, lab.marker, bright, dark))
    test_patients = split(clean, lab.train_lab().split_config()).test.patient
    test = torch.isin(clean.patient, test_patients).nonzero().squeeze(1)
    return ShortcutData(
        lab=lab,
        train_shortcut=shortcut,
        train_control=control,
        variants={"marked": every_positive.subset(test), "clean": clean.subset(test), "flipped": flipped.subset(test)},
        marker_region=marker_mask(lab.marker, images.shape[-1]),
    )


Trainer = Callable[[TrainLab, TensorData, str], RunResult]


def train_directly(lab: TrainLab, data: TensorData, _key: str) -> RunResult:
    return run_experiment(lab, data)


def submit(lab: ShortcutLab, data: ShortcutData | None = None) -> dict:
    """Queue both runs in the process-wide training queue (never more runs than the cores can
    take; identical requests share one run) without waiting: model name -> primer.jobs.Job."""
    from primer.jobs import training_queue

    data = data or make_data(lab)
    queue = training_queue()
    return {
        "shortcut": queue.submit(lab.train_lab(), data=data.train_shortcut, data_key=lab.key() + "-shortcut"),
        "control": queue.submit(lab.train_lab(), data=data.train_control, data_key=lab.key() + "-control"),
    }


def train_through_queue(lab: TrainLab, data: TensorData, key: str) -> RunResult:
    """A Trainer that runs in the training queue and waits for the result."""
    from primer.jobs import training_queue

    job = training_queue().submit(lab, data=data, data_key=key)
    while not job.finished:
        time.sleep(0.05)
    if job.state != "done" or job.result is None:
        raise RuntimeError(job.error or f"training {job.state}")
    return job.result


@dataclass
class ShortcutReport:
    lab: ShortcutLab
    auc: dict[str, dict[str, float]]  # model (MODELS) -> test variant (VARIANTS) -> AUC
    marker_share: dict[str, float]  # model -> mean share of attribution energy on the marker
    lesion_share: dict[str, float]  # model -> mean share of attribution energy on the lesion
    state_dicts: dict[str, dict]  # model -> weights, to rebuild it for heatmaps
    variants: dict[str, TensorData]  # the three versions of the test set
    marker_region: np.ndarray  # (H, W) bool
    seconds: float  # training time of both models


def run(lab: ShortcutLab, trainer: Trainer = train_directly, data: ShortcutData | None = None) -> ShortcutReport:
    """Train both models and test each on the three versions of the test set."""
    data = data or make_data(lab)
    train_lab = lab.train_lab()
    results = {
        "shortcut": trainer(train_lab, data.train_shortcut, lab.key() + "-shortcut"),
        "control": trainer(train_lab, data.train_control, lab.key() + "-control"),
    }
    auc, marker_share, lesion_share = {}, {}, {}
    marked = data.variants["marked"]
    positives = marked.subset((marked.y == 1).nonzero().squeeze(1))
    for name, result in results.items():
        model = explain.private_copy(result.model())
        auc[name] = {v: auc_score(d.y, predict(model, d.x)) for v, d in data.variants.items()}
        maps = explain.attribute(model, positives.x, "saliency", 1).map[:, 0]  # (P, H, W)
        marker_share[name] = float(np.mean([explain.energy_inside(m, data.marker_region) for m in maps]))
        lesion_share[name] = float(
            np.mean([explain.energy_inside(m, k) for m, k in zip(maps, positives.mask.numpy(), strict=True)])
        )
    return ShortcutReport(
        lab=lab,
        auc=auc,
        marker_share=marker_share,
        lesion_share=lesion_share,
        state_dicts={name: r.state_dict for name, r in results.items()},
        variants=data.variants,
        marker_region=data.marker_region,
        seconds=sum(r.seconds for r in results.values()),
    )


def rebuild(report: ShortcutReport, name: str) -> torch.nn.Module:
    """One of the two trained models, eval mode, from the report's weights."""
    from primer.train import build_model

    model = build_model(report.lab.train_lab(), 2)
    model.load_state_dict(report.state_dicts[name])
    return model.eval()


@dataclass
class ExampleMaps:
    images: dict[str, np.ndarray]  # test variant -> (H, W) the image as the model saw it
    maps: dict[tuple[str, str, str], np.ndarray]  # (model, variant, method) -> (H, W)
    mask: np.ndarray  # (H, W) bool: the lesion
    position: int  # index in the test set


def example_maps(
    report: ShortcutReport, index: int = 0, methods: tuple[str, ...] = ("gradcam", "saliency")
) -> ExampleMaps:
    """Both models' maps of one lesion-bearing test image, with the marker and without it."""
    marked = report.variants["marked"]
    positives = (marked.y == 1).nonzero().squeeze(1)
    i = int(positives[index % len(positives)])
    images = {v: report.variants[v].x[i : i + 1] for v in ("marked", "clean")}  # (1, 1, H, W) each
    maps = {}
    for name in MODELS:
        model = explain.private_copy(rebuild(report, name))
        for variant, x in images.items():
            for method in methods:
                maps[(name, variant, method)] = explain.attribute(model, x, method, 1).map[0, 0]
    return ExampleMaps(
        images={v: x[0, 0].numpy() for v, x in images.items()},
        maps=maps,
        mask=marked.mask[i].numpy(),
        position=i,
    )
