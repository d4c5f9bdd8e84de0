"""Self-supervised pretraining: learn features from unlabelled images, then need fewer labels.

Labels are the expensive part of medical imaging; unlabelled images are plentiful. Contrastive
pretraining (SimCLR, Chen et al. 2020) makes use of them: each unlabelled image is augmented
twice, and the encoder is trained so that the two views of one image map close together and
views of different images far apart (the NT-Xent loss below). No label is used. Afterwards a
linear classifier on the frozen features (a "linear probe") is trained with a label budget.

Three readers, the same CNN encoder and the same labelled images at every budget:

    scratch      the whole CNN trained on the labelled images only
    random       the untrained encoder's features and a linear probe: what the design alone gives
    supervised   encoder pretrained with labels on another task (lesion shape: round vs
                 spiculated, where every image has a lesion), then a linear probe
    selfsup      encoder pretrained contrastively on the unlabelled pool, then a linear probe

    lab = SelfSupLab()
    result = run(lab, on_step=print)        # pretraining, then the label-efficiency curve
    result.points                           # [BudgetPoint(reader, labels, test AUC), ...]
    coords = embedding(result, "selfsup")   # PCA of the test images' features, before / after

Nothing here imports streamlit.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import models
from primer import explain
from primer.labstate import register_lab
from primer.synth import PhantomConfig
from primer.train import AugmentConfig, TensorData, auc_score, augment, phantom_data, predict

READERS = ("scratch", "random", "supervised", "selfsup")
BUDGETS = (20, 50, 100, 200, 500)  # labelled images; the curve is drawn over all of them
LABELLED_POOL = 500  # the labelled images the budgets are drawn from (the largest budget uses all)
TEST_IMAGES = 600  # about 300 lesions: AUC SE about 0.02 at 0.75
ENCODER = "plain_cnn"
WIDTH = 8  # the chapter's default CNN: 32 features after three stages
SCRATCH_STEPS = 80  # optimizer steps of a from-scratch run at every budget (small sets repeat)
BATCH = 64
OTHER_IMAGES = 1000  # labelled images of the other task (lesion shape)
SEED_POOL, SEED_LABELLED, SEED_TEST, SEED_OTHER = 1, 2, 3, 4  # four independent image streams


@register_lab("selfsup")
@dataclass
class SelfSupLab:
    pool_size: int = 2000  # unlabelled images for contrastive pretraining: free to make
    pretrain_epochs: int = 4  # passes over the pool
    temperature: float = 0.5  # NT-Xent τ: SimCLR's choice for small batches
    batch_size: int = 128  # 2 × 128 views: 254 negatives for every positive pair
    image_size: int = 48  # 64 px (the chapter's phantoms) costs ~1.8x more per step: 4 epochs took ~18 s alone
    seed: int = 0
    budget: int = 20  # display only: the label budget whose numbers and embedding are shown
    projection: str = "pca"  # display only: pca | tsne

    def phantoms(self, n: int, stream: int, task: str = "presence") -> PhantomConfig:
        return PhantomConfig(n=n, size=self.image_size, task=task, seed=self.seed * 10 + stream)

    def training_key(self) -> str:
        return f"selfsup:{self.pool_size}:{self.pretrain_epochs}:{self.temperature}:{self.batch_size}:{self.image_size}:{self.seed}"


# ---------------------------------------------------------------------------------------------
# Contrastive pretraining


VIEW_AUGMENT = AugmentConfig(flip=True, max_rotation_deg=180.0, intensity=0.2, noise=0.3)  # what a view may change


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's loss for a batch of N positive pairs (z1[i], z2[i]), each (N, D).

    Every one of the 2N views has one positive (its pair) and 2N − 2 negatives (all other views).
    With cosine similarities s, the loss of view i is −log( exp(s_i,pos/τ) / Σ_{k≠i} exp(s_ik/τ) ):
    a softmax cross-entropy whose right "class" is the pair. The mean over all 2N views."""
    n = len(z1)
    z = F.normalize(torch.cat([z1, z2]), dim=1)  # (2N, D), unit length: dot product = cosine
    sim = z @ z.T / temperature  # (2N, 2N)
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool), float("-inf"))  # a view is not its own negative
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(n)])  # view i's pair: i + N, or i − N
    return F.cross_entropy(sim, target)


class ContrastiveModel(nn.Module):
    """The encoder (a CNN up to its pooled features) and a small projection head. The loss is
    computed on the projection; the features before it transfer better (SimCLR's finding), so
    the linear probe reads `encoder.embed`."""

    def __init__(self, encoder: nn.Module, dim: int = 32, generator: torch.Generator | None = None):
        super().__init__()
        self.encoder = encoder
        c = encoder.head.in_features
        self.projector = nn.Sequential(nn.Linear(c, c), nn.ReLU(), nn.Linear(c, dim))
        with torch.no_grad():  # from the run's own generator: concurrent jobs never share random state
            for layer in (self.projector[0], self.projector[2]):
                bound = 1 / math.sqrt(layer.in_features)  # nn.Linear's default range
                layer.weight.uniform_(-bound, bound, generator=generator)
                layer.bias.uniform_(-bound, bound, generator=generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projector(self.encoder.embed(x))


def build_encoder(seed: int) -> nn.Module:
    return models.build(ENCODER, seed=seed, in_channels=1, num_classes=2, width=WIDTH)


@dataclass
class StepRecord:
    """One progress report: contrastive loss during pretraining, or a finished budget point."""

    stage: str  # "pretrain" | "supervised" | "budget"
    step: int
    total: int
    loss: float = float("nan")
    seconds: float = 0.0


REPORT_EVERY = 3  # contrastive steps per loss report: the curve moves about every 1.5 s


def pretrain_contrastive(
    lab: SelfSupLab, pool: torch.Tensor, *, on_step=None, should_stop=None, report_every=REPORT_EVERY
):
    """Train an encoder on unlabelled images (N, 1, H, W) with NT-Xent; returns (encoder, losses)."""
    g = torch.Generator().manual_seed(lab.seed)
    encoder = build_encoder(lab.seed)
    model = ContrastiveModel(encoder, generator=g)
    model.to(memory_format=torch.channels_last)  # oneDNN's CPU convolutions: ~1.6x faster here
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    n = len(pool)
    steps_per_epoch = max(1, n // lab.batch_size)
    total = steps_per_epoch * lab.pretrain_epochs
    losses, start, step = [], time.perf_counter(), 0
    model.train()
    for _ in range(lab.pretrain_epochs):
        order = torch.randperm(n, generator=g)
        for b in range(steps_per_epoch):
            x = pool[order[b * lab.batch_size : (b + 1) * lab.batch_size]]
            views = augment(torch.cat([x, x]), VIEW_AUGMENT, g)  # (2B, 1, H, W): two random views per image
            z = model(views.contiguous(memory_format=torch.channels_last))
            loss = nt_xent(z[: len(x)], z[len(x) :], lab.temperature)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            losses.append(loss.item())
            if on_step is not None and (step % report_every == 0 or step == total):
                on_step(StepRecord("pretrain", step, total, float(np.mean(losses[-report_every:])),
                                   time.perf_counter() - start))  # fmt: skip
            if should_stop is not None and should_stop():
                return encoder.eval(), losses
    return encoder.eval(), losses


# ---------------------------------------------------------------------------------------------
# Data: four independent streams of phantoms


@dataclass
class Data:
    pool: torch.Tensor  # (P, 1, H, W) unlabelled: their labels are never read
    labelled: TensorData  # the images a label budget is drawn from
    test: TensorData
    other: TensorData  # the other task (lesion shape), for supervised pretraining


@lru_cache(maxsize=2)
def data(pool_size: int, image_size: int, seed: int) -> Data:
    lab = SelfSupLab(pool_size=pool_size, image_size=image_size, seed=seed)
    return Data(
        pool=phantom_data(lab.phantoms(pool_size, SEED_POOL)).x,
        labelled=phantom_data(lab.phantoms(LABELLED_POOL, SEED_LABELLED)),
        test=phantom_data(lab.phantoms(TEST_IMAGES, SEED_TEST)),
        other=phantom_data(lab.phantoms(OTHER_IMAGES, SEED_OTHER, task="shape")),
    )


def budget_index(labels: torch.Tensor, budget: int) -> torch.Tensor:
    """The first budget/2 images of each class (the smallest budgets still see both classes;
    every larger budget contains every smaller one, so the curve compares like with like)."""
    per_class = budget // 2
    picked = [torch.nonzero(labels == c).squeeze(1)[:per_class] for c in (0, 1)]
    return torch.cat(picked).sort().values


# ---------------------------------------------------------------------------------------------
# The other two encoders, and the readers


OTHER_EPOCHS = 3  # supervised pretraining on the shape task: validation AUC is near 1 by then


def pretrain_supervised(lab: SelfSupLab, other: TensorData, should_stop=None) -> nn.Module:
    """The same CNN trained with labels on another task: round vs spiculated lesions."""
    from primer.train import Splits, TrainConfig, fit

    model = build_encoder(lab.seed)
    cut = len(other) * 9 // 10
    splits = Splits(train=other.subset(torch.arange(cut)), val=other.subset(torch.arange(cut, len(other))), test=None)
    fit(model, splits, TrainConfig(num_epochs=OTHER_EPOCHS, seed=lab.seed), should_stop=should_stop)
    return model.eval()


def train_scratch(lab: SelfSupLab, labelled: TensorData, budget: int, should_stop=None) -> nn.Module:
    """The whole CNN from random weights on `budget` labelled images, SCRATCH_STEPS steps whatever
    the budget (a small set is repeated: more epochs, the same number of updates)."""
    from primer.train import Splits, TrainConfig, fit

    index = budget_index(labelled.y, budget)
    repeat = math.ceil(SCRATCH_STEPS / (len(index) * math.ceil(len(index) / BATCH)))  # 4x at 20, 2x at 50, then 1x
    train = labelled.subset(index.repeat(repeat))
    epochs = max(1, round(SCRATCH_STEPS / math.ceil(len(train) / BATCH)))
    splits = Splits(train=train, val=labelled.subset(index[:2]), test=None)  # validation unused: 2 images
    model = build_encoder(lab.seed)
    fit(model, splits, TrainConfig(num_epochs=epochs, seed=lab.seed), should_stop=should_stop)
    return model.eval()


def linear_probe_auc(train_features, train_labels, test_features, test_labels) -> float:
    """Logistic regression on standardised frozen features; the test AUC of its scores."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    probe = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
    probe.fit(train_features, train_labels)
    return float(roc_auc_score(test_labels, probe.decision_function(test_features)))


# ---------------------------------------------------------------------------------------------
# A whole run: pretraining, then every budget


@dataclass
class BudgetPoint:
    reader: str  # "scratch" | "supervised" | "selfsup"
    labels: int
    test_auc: float


@dataclass
class Result:
    points: list[BudgetPoint]
    losses: list[float]  # contrastive loss per step
    test_features: dict[str, np.ndarray]  # "random" | "supervised" | "selfsup" → (N, C)
    test_labels: np.ndarray
    seconds: dict[str, float]  # stage → wall time
    stopped: bool = False

    def auc(self, reader: str, labels: int) -> float:
        return next(p.test_auc for p in self.points if p.reader == reader and p.labels == labels)

    def curve(self, reader: str) -> tuple[list[int], list[float]]:
        mine = sorted((p for p in self.points if p.reader == reader), key=lambda p: p.labels)
        return [p.labels for p in mine], [p.test_auc for p in mine]


def run(lab: SelfSupLab, *, on_step=None, should_stop=None) -> Result:
    """Contrastive pretraining (streams its loss), supervised pretraining on the other task, then
    the three readers at every budget, smallest first (streams a record per budget)."""
    times, start = {}, time.perf_counter()
    d = data(lab.pool_size, lab.image_size, lab.seed)
    times["data"] = time.perf_counter() - start
    stopped = lambda: should_stop is not None and should_stop()  # noqa: E731
    t = time.perf_counter()
    selfsup, losses = pretrain_contrastive(lab, d.pool, on_step=on_step, should_stop=should_stop)
    times["pretrain"] = time.perf_counter() - t
    result = Result([], losses, {}, d.test.y.numpy(), times)
    if stopped():
        result.stopped = True
        return result
    t = time.perf_counter()
    supervised = pretrain_supervised(lab, d.other, should_stop=should_stop)
    times["supervised"] = time.perf_counter() - t
    if on_step is not None:
        on_step(StepRecord("supervised", 1, 1, seconds=time.perf_counter() - start))
    encoders = {"random": build_encoder(lab.seed).eval(), "supervised": supervised, "selfsup": selfsup}
    result.test_features = {name: explain.features(e, d.test.x) for name, e in encoders.items()}
    labelled = {name: explain.features(e, d.labelled.x) for name, e in encoders.items()}
    t = time.perf_counter()
    for k, budget in enumerate(BUDGETS):
        if stopped():
            result.stopped = True
            break
        index = budget_index(d.labelled.y, budget).numpy()
        y = d.labelled.y.numpy()[index]
        for name in ("random", "supervised", "selfsup"):
            auc = linear_probe_auc(labelled[name][index], y, result.test_features[name], result.test_labels)
            result.points.append(BudgetPoint(name, budget, auc))
        scratch = train_scratch(lab, d.labelled, budget, should_stop=should_stop)
        result.points.append(BudgetPoint("scratch", budget, auc_score(d.test.y, predict(scratch, d.test.x))))
        if on_step is not None:
            on_step(StepRecord("budget", k + 1, len(BUDGETS), seconds=time.perf_counter() - start))
    times["budgets"] = time.perf_counter() - t
    times["total"] = time.perf_counter() - start
    return result


def smallest_budget_gain(result: Result) -> float:
    """Self-supervised minus scratch test AUC at the smallest budget (the issue's budget: > 0)."""
    smallest = min(p.labels for p in result.points)
    return result.auc("selfsup", smallest) - result.auc("scratch", smallest)


# ---------------------------------------------------------------------------------------------
# Display only: the embedding before and after pretraining (no retraining)

EMBEDDINGS = ("random", "selfsup")  # before (untrained encoder) and after contrastive pretraining


def embedding(result: Result, encoder: str, method: str = "pca") -> np.ndarray:
    """(N, 2) coordinates of the test images' features, computed once per result and method."""
    cache = result.__dict__.setdefault("_embeddings", {})
    if (encoder, method) not in cache:
        cache[(encoder, method)] = explain.project(result.test_features[encoder], method)
    return cache[(encoder, method)]


# ---------------------------------------------------------------------------------------------
# Figures (labels come in translated)

COLORS = {"scratch": "#7f7f7f", "random": "#bcbd22", "supervised": "#1f77b4", "selfsup": "#d62728"}
DASH = {"scratch": "solid", "random": "dot", "supervised": "dash", "selfsup": "solid"}


def budget_figure(result: Result, budget: int, words: dict):
    import plotly.graph_objects as go

    fig = go.Figure()
    for reader in READERS:
        x, y = result.curve(reader)
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers", name=words[reader],
                                 line={"color": COLORS[reader], "dash": DASH[reader], "width": 3}))  # fmt: skip
    fig.add_hline(y=0.5, line_dash="dot", line_color="grey", annotation_text=words["chance"])
    fig.add_vline(x=budget, line_dash="dash", line_color="#bbbbbb")
    fig.update_layout(xaxis={"title": words["labels"], "type": "log", "tickvals": list(BUDGETS)},
                      yaxis={"title": words["auc"], "range": [0.4, 1.0]},
                      margin={"l": 50, "r": 10, "t": 10, "b": 40},
                      legend={"orientation": "h", "yanchor": "top", "y": -0.2, "x": 0})  # fmt: skip
    return fig


def loss_figure(losses: list[float], words: dict):
    import plotly.graph_objects as go

    fig = go.Figure(go.Scatter(x=list(range(1, len(losses) + 1)), y=losses, mode="lines",
                               line={"color": COLORS["selfsup"]}, name=words["loss"]))  # fmt: skip
    fig.update_layout(xaxis={"title": words["step"]}, yaxis={"title": words["loss"]},
                      margin={"l": 50, "r": 10, "t": 10, "b": 40})  # fmt: skip
    return fig


def embedding_figure(result: Result, method: str, words: dict):
    """The test images' features in 2-D, before and after contrastive pretraining, coloured by
    the label that pretraining never saw."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=[words[f"emb_{e}"] for e in EMBEDDINGS], horizontal_spacing=0.06)
    for col, encoder in enumerate(EMBEDDINGS, start=1):
        xy = embedding(result, encoder, method)
        for label, color in ((0, "#0072B2"), (1, "#D55E00")):
            pick = result.test_labels == label
            fig.add_trace(go.Scatter(x=xy[pick, 0], y=xy[pick, 1], mode="markers", name=words[f"class{label}"],
                                     marker={"size": 4, "color": color, "opacity": 0.6}, showlegend=col == 1,
                                     legendgroup=str(label), hoverinfo="skip"), row=1, col=col)  # fmt: skip
    fig.update_xaxes(showticklabels=False)
    fig.update_yaxes(showticklabels=False)
    fig.update_layout(margin={"l": 10, "r": 10, "t": 40, "b": 10}, legend={"orientation": "h", "y": -0.05})
    return fig


# ---------------------------------------------------------------------------------------------
# Through the shared training queue: one job, a record per progress report


def expected_records(lab: SelfSupLab) -> int:
    steps = max(1, lab.pool_size // lab.batch_size) * lab.pretrain_epochs
    return math.ceil(steps / REPORT_EVERY) + 1 + len(BUDGETS)  # loss reports, supervised, budgets


def submit(lab: SelfSupLab):
    from primer.jobs import training_queue

    def work(job):
        return run(lab, on_step=job.add_epoch, should_stop=job.should_stop)

    return training_queue().submit_work(lab.training_key(), work, total_epochs=expected_records(lab))
