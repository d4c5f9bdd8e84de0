"""Subgroups and fairness: one model, one threshold, different sensitivity per subgroup.

A development set mixes two scanners: A (the chapter's default phantoms) and B (another vendor's
detector calibration, `SCANNER_B`), B making up `b_share` of the images. Lesion radii vary (2-6
pixels), so lesion size can be a subgroup too. One model trains on the mixture (through the
shared queue on the page); one operating threshold is fixed on the overall validation set, as a
product ships with one threshold. The test pool comes from three hospitals, generated apart from
the development data:

- hospital 1: scanner A, a referral practice (50% of patients have a lesion);
- hospital 2: scanner A, a screening practice (10%);
- hospital 3: scanner B (50%), as many images as hospitals 1 and 2 together, so the scanner
  comparison has the same n on both sides.

    lab = SubgroupLab(b_share=0.05)
    model = train_mixture(lab)                       # the one training run
    report = subgroup_report(model, "scanner", "youden")
    report.rows[1].sensitivity, report.rows[1].sensitivity_ci, report.rows[1].auc

Moving the grouping (scanner, lesion size, hospital) or the threshold rule only re-counts the
cached test predictions: no retraining. Nothing here imports streamlit.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace

import numpy as np
import torch

from primer import metrics
from primer import validation as val
from primer.explain import wilson_interval
from primer.labstate import register_lab
from primer.synth import generate
from primer.train import EpochRecord, SplitConfig, TensorData, TrainConfig, fit, predict, split

# Scanner B: pixel values at 0.6 of A's (another vendor's detector gain and processing) and a
# little noisier. A model that saw few B images learns A's contrast and misses B's fainter lesions.
SCANNER_B = replace(val.SITE_A, intensity_scale=0.6, noise_std=0.3)
RADIUS, RADIUS_JITTER = 4.0, 0.5  # lesion radius 4 px ± 50%: 2-6 px, so size is a real subgroup
SIZE_EDGES = (3.33, 4.67)  # equivalent radius (px) cutting the 2-6 px range into thirds
SIZES = ("small", "medium", "large")
GROUPINGS = ("scanner", "size", "hospital")
RULES = ("youden", "sens90")  # Youden's J on overall validation; the highest threshold with val sensitivity >= 90%
SHARES = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5)  # the control's options: share of scanner-B images in training
B_SEED_OFFSET = 30_000  # scanner B's development patients: another random stream than A's
TEST_SEED_OFFSET = 60_000  # the test hospitals: other patients than the development set
# Test hospitals: (name, acquisition, prevalence, share of the test pool).
HOSPITALS = (
    ("h1", val.SITE_A, 0.5, 0.25),  # scanner A, referral practice
    ("h2", val.SITE_A, 0.1, 0.25),  # scanner A, screening practice: same scanner, fewer lesions
    ("h3", SCANNER_B, 0.5, 0.5),  # scanner B: as many images as A's two hospitals together
)
MIN_B_IMAGES = 10  # fewer, and the 70/15/15 patient split may leave scanner B out of training


@register_lab("subgroups")
@dataclass
class SubgroupLab:
    b_share: float = 0.05  # scanner B is 5% of the development images: rare, as a second vendor often is
    num_images: int = 2000  # development images before the 70/15/15 patient split, as in the other labs
    num_epochs: int = 6  # the training lab's default: validation AUC about 0.95 on scanner A
    seed: int = 0
    test_images: int = 2000  # the three test hospitals together: 1000 on each scanner
    grouping: str = "scanner"  # display only: which subgroups the table and the forest plot show
    rule: str = "youden"  # display only: how the one threshold is chosen on the overall validation set

    def train_config(self) -> TrainConfig:
        return TrainConfig(num_epochs=self.num_epochs, seed=self.seed)

    def training_key(self) -> str:
        """What the run depends on (the display-only controls do not retrain)."""
        return f"subgroups:{self.b_share}:{self.num_images}:{self.num_epochs}:{self.seed}:{self.test_images}"


def check(lab: SubgroupLab) -> str | None:
    """A string key for a combination the lab cannot run, else None."""
    if not 0 < lab.b_share < 1:
        return "subgroups.error.share"
    if round(lab.b_share * lab.num_images) < MIN_B_IMAGES:
        return "subgroups.error.too_few_b"
    if lab.grouping not in GROUPINGS or lab.rule not in RULES:
        return "subgroups.error.unknown"
    return None


# ---------------------------------------------------------------------------------------------
# Data: the development mixture and the test hospitals


def phantoms(acquisition: val.Acquisition, n: int, seed: int, prevalence: float | None = None):
    """Raw images (N, H, W) after the scanner's calibration, and their Phantoms, lesion sizes varied."""
    config = replace(acquisition.phantom_config(n, seed), radius=RADIUS, radius_jitter=RADIUS_JITTER)
    if prevalence is not None:
        config = replace(config, prevalence=prevalence)
    p = generate(config)
    images = p.images * np.float32(acquisition.intensity_scale) + np.float32(acquisition.intensity_offset)
    return images.astype(np.float32), p


def equivalent_radius(masks: np.ndarray) -> np.ndarray:
    """(N, H, W) lesion masks → (N,) radius of the disk with the same area (0 without a lesion)."""
    return np.sqrt(masks.reshape(len(masks), -1).sum(1) / np.pi)


@dataclass
class Mixture:
    data: TensorData  # standardised with the mixture's own statistics
    prep: val.Preprocessing
    scanner_b: np.ndarray  # (N,) bool per image
    num_a_patients: int  # patients 0 .. num_a_patients-1 are scanner A's, the rest B's


def development_mixture(lab: SubgroupLab) -> Mixture:
    """round(b_share × num_images) scanner-B images and the rest scanner A, standardised together."""
    n_b = int(round(lab.b_share * lab.num_images))
    n_a = lab.num_images - n_b
    images_a, pa = phantoms(val.SITE_A, n_a, lab.seed)
    images_b, pb = phantoms(SCANNER_B, n_b, lab.seed + B_SEED_OFFSET)
    images = np.concatenate([images_a, images_b])
    prep = val.Preprocessing(mean=float(images.mean(dtype=np.float64)), std=float(images.std(dtype=np.float64)))
    num_a_patients = int(pa.patient_id.max()) + 1
    data = TensorData(
        x=prep.apply(images),
        y=torch.from_numpy(np.concatenate([pa.labels, pb.labels])),
        patient=torch.from_numpy(np.concatenate([pa.patient_id, pb.patient_id + num_a_patients])),
        classes=("no lesion", "lesion"),
    )
    scanner_b = np.concatenate([np.zeros(n_a, bool), np.ones(n_b, bool)])
    return Mixture(data, prep, scanner_b, num_a_patients)


@dataclass
class TestPool:
    """The three test hospitals' images, one entry per image."""

    x: torch.Tensor  # (N, 1, H, W), the development preprocessing applied (as deployed)
    labels: np.ndarray  # (N,) 0/1
    hospital: np.ndarray  # (N,) "h1", "h2", "h3"
    scanner_b: np.ndarray  # (N,) bool
    radius: np.ndarray  # (N,) equivalent lesion radius in px, 0 without a lesion


def test_pool(lab: SubgroupLab, prep: val.Preprocessing) -> TestPool:
    xs, labels, hospital, scanner_b, radius = [], [], [], [], []
    for k, (name, acquisition, prevalence, share) in enumerate(HOSPITALS):
        n = int(round(share * lab.test_images))
        images, p = phantoms(acquisition, n, lab.seed + TEST_SEED_OFFSET + 1000 * k, prevalence)
        xs.append(prep.apply(images))
        labels.append(p.labels)
        hospital.append(np.full(n, name))
        scanner_b.append(np.full(n, acquisition is SCANNER_B))
        radius.append(equivalent_radius(p.masks))
    return TestPool(torch.cat(xs), *(np.concatenate(a) for a in (labels, hospital, scanner_b, radius)))


# ---------------------------------------------------------------------------------------------
# Training: one run on the mixture, then the validation and test predictions it needs


@dataclass
class MixtureModel:
    state_dict: dict
    config: TrainConfig
    epochs: list[EpochRecord]
    train_b_share: float  # share of scanner-B images in the training split (after the patient split)
    val_labels: np.ndarray  # overall validation set: the threshold is chosen here
    val_probs: np.ndarray
    test: TestPool
    test_probs: np.ndarray  # (N_test,) P(lesion)
    seconds: float
    stopped: bool = False


def train_mixture(lab: SubgroupLab, *, on_epoch=None, should_stop=None) -> MixtureModel:
    start = time.perf_counter()
    mixture = development_mixture(lab)
    splits = split(mixture.data, SplitConfig(seed=lab.seed))
    config = lab.train_config()
    model = val.build(config)
    history = fit(model, splits, config, on_epoch=on_epoch, should_stop=should_stop)
    pool = test_pool(lab, mixture.prep)
    return MixtureModel(
        state_dict={k: v.detach().clone() for k, v in model.state_dict().items()},
        config=config,
        epochs=history.epochs,
        train_b_share=float((splits.train.patient >= mixture.num_a_patients).double().mean()),
        val_labels=splits.val.y.numpy(),
        val_probs=predict(model, splits.val.x)[:, 1].double().numpy(),
        test=pool,
        test_probs=predict(model, pool.x)[:, 1].double().numpy(),
        seconds=time.perf_counter() - start,
        stopped=history.stopped_by_user,
    )


# ---------------------------------------------------------------------------------------------
# The operating threshold, fixed once on the overall validation set


def choose_threshold(labels: np.ndarray, probs: np.ndarray, rule: str) -> float:
    sweep = metrics.ThresholdSweep(labels, probs)
    if rule == "youden":
        return sweep.youden_optimal_threshold()
    if rule == "sens90":  # the highest threshold that still finds 90% of the validation lesions
        positives = np.sort(probs[labels == 1])[::-1]
        return float(positives[math.ceil(0.9 * len(positives)) - 1])
    raise ValueError(f"unknown rule {rule!r}")


# ---------------------------------------------------------------------------------------------
# Subgroup results, each with its 95% interval


@dataclass
class Row:
    name: str  # subgroup id: "overall", "a", "b", "small", ..., "h1", ...
    n: int
    positives: int
    sensitivity: float
    sensitivity_ci: tuple[float, float]  # Wilson
    specificity: float
    specificity_ci: tuple[float, float]  # Wilson
    ppv: float
    auc: metrics.AucInterval | None  # DeLong; None with fewer than two cases of a class
    mean_predicted: float  # calibration-in-the-large: mean P(lesion) against ...
    observed: float  # ... the share that has a lesion (the subgroup's prevalence)

    @property
    def negatives(self) -> int:
        return self.n - self.positives


def row(name: str, labels: np.ndarray, probs: np.ndarray, threshold: float) -> Row:
    labels = np.asarray(labels).astype(np.int64)
    c = metrics.confusion_at(labels, probs, threshold)
    r = metrics.rates(c)
    try:
        auc = metrics.delong_auc_ci(labels, probs)
    except metrics.MetricsError:
        auc = None
    return Row(
        name=name,
        n=int(labels.size),
        positives=int(labels.sum()),
        sensitivity=float(r.sensitivity),
        sensitivity_ci=wilson_interval(c.tp, c.tp + c.fn),
        specificity=float(r.specificity),
        specificity_ci=wilson_interval(c.tn, c.tn + c.fp),
        ppv=float(r.ppv),
        auc=auc,
        mean_predicted=float(np.mean(probs)) if labels.size else float("nan"),
        observed=float(np.mean(labels)) if labels.size else float("nan"),
    )


def subgroup_masks(pool: TestPool, grouping: str) -> dict[str, np.ndarray]:
    """Subgroup id → boolean mask over the test pool. Lesion size is defined for positives only:
    each size row is the lesions of that size plus all the negatives (a shared control group),
    so its specificity equals the overall one and its AUC ranks those lesions against all normals."""
    if grouping == "scanner":
        return {"a": ~pool.scanner_b, "b": pool.scanner_b}
    if grouping == "hospital":
        return {name: pool.hospital == name for name, *_ in HOSPITALS}
    if grouping == "size":
        size = np.digitize(pool.radius, SIZE_EDGES)  # 0 small, 1 medium, 2 large
        negative = pool.labels == 0
        return {name: negative | ((pool.labels == 1) & (size == k)) for k, name in enumerate(SIZES)}
    raise ValueError(f"unknown grouping {grouping!r}")


@dataclass
class SubgroupReport:
    grouping: str
    rule: str
    threshold: float
    overall: Row
    rows: list[Row]  # one per subgroup, in GROUPINGS order


def subgroup_report(model: MixtureModel, grouping: str, rule: str) -> SubgroupReport:
    """The display-only recomputation: a threshold from validation, then counts on the test pool."""
    threshold = choose_threshold(model.val_labels, model.val_probs, rule)
    labels, probs = model.test.labels, model.test_probs
    rows = [row(name, labels[m], probs[m], threshold) for name, m in subgroup_masks(model.test, grouping).items()]
    return SubgroupReport(grouping, rule, threshold, row("overall", labels, probs, threshold), rows)


def sensitivity_gap(report: SubgroupReport) -> tuple[float, bool]:
    """Largest minus smallest subgroup sensitivity, and whether those two Wilson intervals are apart."""
    rows = [r for r in report.rows if r.positives]
    best = max(rows, key=lambda r: r.sensitivity)
    worst = min(rows, key=lambda r: r.sensitivity)
    return best.sensitivity - worst.sensitivity, worst.sensitivity_ci[1] < best.sensitivity_ci[0]


def explain(report: SubgroupReport) -> list[tuple[str, dict]]:
    """The caption, as (string key, values) sentences chosen from the numbers (the page translates)."""
    rows = [r for r in report.rows if r.positives]
    best = max(rows, key=lambda r: r.sensitivity)
    worst = min(rows, key=lambda r: r.sensitivity)
    gap, apart = sensitivity_gap(report)
    values = {"best": best.name, "worst": worst.name, "gap": 100 * gap, "threshold": report.threshold,
              "best_sens": best.sensitivity, "worst_sens": worst.sensitivity}  # fmt: skip
    out = [("subgroups.why.apart" if apart else "subgroups.why.overlap", values)]
    if report.overall.auc is not None and report.overall.auc.auc < 0.7:  # a barely trained model: gaps are noise
        out.append(("subgroups.why.undertrained", {"auc": report.overall.auc.auc}))
    by_name = {r.name: r for r in report.rows}
    if report.grouping == "size" and by_name["large"].sensitivity < by_name["medium"].sensitivity:
        out.append(("subgroups.why.size", {}))
    if report.grouping == "hospital":
        h1, h2 = report.rows[0], report.rows[1]
        out.append(("subgroups.why.ppv", {"ppv1": h1.ppv, "ppv2": h2.ppv, "prev1": h1.observed, "prev2": h2.observed}))
    return out


# ---------------------------------------------------------------------------------------------
# Why PPV follows prevalence (the lesson's numbers)


def ppv(sensitivity: float, specificity: float, prevalence: float) -> float:
    """Bayes' rule: true positives over all positive calls."""
    tp = sensitivity * prevalence
    fp = (1 - specificity) * (1 - prevalence)
    return tp / (tp + fp)


# ---------------------------------------------------------------------------------------------
# Through the chapter's training queue (primer.jobs)


def submit(lab: SubgroupLab):
    """One queued run; an identical run already trained or training is joined, not repeated."""
    from primer.jobs import training_queue

    def work(job):
        return train_mixture(lab, on_epoch=lambda record, _h: job.add_epoch(record), should_stop=job.should_stop)

    return training_queue().submit_work(lab.training_key(), work, total_epochs=lab.num_epochs)


# ---------------------------------------------------------------------------------------------
# Figure: a forest plot (subgroup rows; point and 95% interval; the overall value as a line)

PANELS = ("sensitivity", "specificity", "auc")
ROW_COLOR, OVERALL_COLOR = "#0072B2", "#555555"


def panel_values(r: Row, panel: str) -> tuple[float, float, float]:
    if panel == "sensitivity":
        return r.sensitivity, *r.sensitivity_ci
    if panel == "specificity":
        return r.specificity, *r.specificity_ci
    if r.auc is None:
        return float("nan"), float("nan"), float("nan")
    return r.auc.auc, r.auc.low, r.auc.high


def forest_figure(report: SubgroupReport, names: dict[str, str], words: dict[str, str]):
    """Three panels side by side (sensitivity, specificity, AUC), one row per subgroup plus the
    overall row on top; the dashed line in each panel is the overall value. `names` maps a
    subgroup id to its translated label, `words` the panel titles and "overall"."""
    from primer.light_figure import LightFigure

    rows = [report.overall, *report.rows][::-1]  # the overall row drawn on top
    labels = [names.get(r.name, r.name) for r in rows]
    data, shapes, layout = [], [], {}
    gap = 0.04
    width = (1 - 2 * gap) / 3
    for k, panel in enumerate(PANELS):
        axis = "" if k == 0 else str(k + 1)
        points = [panel_values(r, panel) for r in rows]
        value = np.array([p[0] for p in points])
        low = np.array([p[1] for p in points])
        high = np.array([p[2] for p in points])
        colors = [OVERALL_COLOR if r.name == "overall" else ROW_COLOR for r in rows]
        data.append({
            "type": "scatter", "x": value, "y": labels, "mode": "markers", "xaxis": f"x{axis}", "yaxis": "y",
            "marker": {"color": colors, "size": 10, "symbol": ["diamond" if r.name == "overall" else "circle"
                                                                 for r in rows]},
            "error_x": {"type": "data", "symmetric": False, "array": high - value, "arrayminus": value - low,
                        "color": ROW_COLOR, "thickness": 2, "width": 4},
            "customdata": np.stack([low, high], axis=1),
            "hovertemplate": "%{y}: %{x:.3f} (95% CI %{customdata[0]:.3f}-%{customdata[1]:.3f})<extra></extra>",
            "showlegend": False,
        })  # fmt: skip
        overall = panel_values(report.overall, panel)[0]
        shapes.append({"type": "line", "xref": f"x{axis}", "yref": "paper", "x0": overall, "x1": overall,
                       "y0": 0, "y1": 1, "line": {"color": OVERALL_COLOR, "dash": "dash", "width": 1}})  # fmt: skip
        start = k * (width + gap)
        layout[f"xaxis{axis}"] = {"domain": [start, start + width], "range": [0, 1.02], "tickformat": ".1f",
                                  "title": {"text": words[panel]}, "zeroline": False}  # fmt: skip
    layout.update({
        "height": 120 + 44 * len(rows),
        "margin": {"l": 10, "r": 10, "t": 20, "b": 10},
        "yaxis": {"automargin": True, "type": "category"},
        "shapes": shapes,
    })  # fmt: skip
    return LightFigure({"data": data, "layout": layout})
