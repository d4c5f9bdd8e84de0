"""Vision transformer vs CNN: which one needs more data, and where each one "looks".

A tiny vision transformer (ViT, Dosovitskiy et al. 2020) is written out below, top to bottom:
the image is cut into patches, each patch becomes a token, a CLS token is put in front, a
learned position embedding is added, and a few pre-norm transformer blocks let every token
attend to every other one. The classifier reads the maximum over all tokens, channel by channel
(the task is "is there a lesion in any patch?"; read from the CLS token alone, this small ViT
stayed at chance in every run). Nothing in it knows that
neighbouring patches are neighbours (except what the position embedding learns), where the
CNN's 3×3 convolutions and pooling build locality and translation equivariance in. So the ViT
has to learn from data what the CNN is given, and on few images it should lose.

    lab = VitLab()
    result = run_sweep(lab, on_run=print)          # CNN and ViT at each training-set size
    result.runs                                    # [SweepRun(model, size, test AUC, ...), ...]
    maps = result.maps[size]                       # ViT attention rollout and CNN Grad-CAM per test lesion

Attention rollout (Abnar & Zuidema 2020) turns the ViT's attention weights into one map per
image: average the heads, add the identity for the residual connection, renormalise the rows,
multiply through the layers, and take the readout's row: each token's row weighted by the share
of the pooled channels that token supplied. The CNN gets Grad-CAM (primer.explain).
Both are scored with the saliency chapter's pointing game over the test lesions.

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
from primer.train import SplitConfig, Splits, TrainConfig, auc_score, fit, phantom_data, predict, split

IMAGE_SIZE = 64  # the chapter's phantoms
PATCH_SIZES = (4, 8, 16)  # divisors of 64: 256, 64 or 16 tokens
MODELS = ("cnn", "vit")
TRAIN_ORDER = ("cnn", "vit")  # the CNN's 60 steps take less than the ViT's 240: the first point appears sooner

# ---------------------------------------------------------------------------------------------
# The vision transformer


class PatchEmbedding(nn.Module):
    """Cut the image into P×P patches and map each one linearly to a D-dimensional token.

    A convolution with kernel P and stride P is exactly that: each output position sees one
    patch, no two patches overlap, and the same linear map is used for every patch."""

    def __init__(self, patch_size: int, dim: int, in_channels: int = 1):
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_channels, dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj(x)  # (N, 1, H, W) -> (N, D, H/P, W/P)
        return x.flatten(2).transpose(1, 2)  # -> (N, T, D), T = (H/P)·(W/P) tokens, row by row


class SelfAttention(nn.Module):
    """Multi-head self-attention that keeps its attention weights (for rollout).

    Each token makes a query, a key and a value; a token's output is the average of all values,
    weighted by softmax(query · key / √d) over all tokens. Heads do this in parallel on slices
    of width D / heads, so each head can attend to something else."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        if dim % heads:
            raise ValueError(f"width {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)  # queries, keys and values in one matrix product
        self.out = nn.Linear(dim, dim)
        self.weights: torch.Tensor | None = None  # (N, heads, T, T) of the last forward pass

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t, d = x.shape
        q, k, v = self.qkv(x).reshape(n, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)  # 3 × (N, h, T, d_h)
        # scaling the queries by 1/√d before the product gives the same scores and spares a pass
        # over the (N, h, T, T) matrix, the largest tensor here, forward and backward
        scores = (q / math.sqrt(d // self.heads)) @ k.transpose(-2, -1)  # (N, h, T, T): query row, key column
        weights = scores.softmax(dim=-1)  # each row sums to 1: how much a token takes from each other token
        self.weights = weights.detach()
        mixed = weights @ v  # (N, h, T, d_h)
        return self.out(mixed.transpose(1, 2).reshape(n, t, d))  # heads side by side again: (N, T, D)


class Block(nn.Module):
    """Pre-norm transformer block: x + attention(norm(x)), then x + MLP(norm(x))."""

    def __init__(self, dim: int, heads: int, mlp_ratio: int = 2):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attention = SelfAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_ratio * dim), nn.GELU(), nn.Linear(mlp_ratio * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.norm1(x))  # tokens exchange information
        return x + self.mlp(self.norm2(x))  # each token is transformed on its own


class VisionTransformer(nn.Module):
    """patches → tokens, CLS token in front, + position embedding → blocks → max over tokens → head."""

    def __init__(
        self,
        patch_size: int = 8,
        dim: int = 32,
        depth: int = 2,
        heads: int = 4,
        num_classes: int = 2,
        image_size: int = IMAGE_SIZE,
        in_channels: int = 1,
    ):
        super().__init__()
        self.readout: torch.Tensor | None = None  # (N, T) each token's share of the pooled vector, last pass
        if image_size % patch_size:
            raise ValueError(f"patch size {patch_size} does not divide the image size {image_size}")
        self.grid = image_size // patch_size  # patches per side
        self.patch_embed = PatchEmbedding(patch_size, dim, in_channels)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))  # a learned token that gathers the answer
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + self.grid**2, dim))  # one learned vector per position
        self.blocks = nn.ModuleList([Block(dim, heads) for _ in range(depth)])
        self.head = nn.Linear(dim, num_classes)

    @property
    def num_tokens(self) -> int:
        return 1 + self.grid**2  # CLS + patches

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.patch_embed(x)  # (N, T, D)
        cls = self.cls_token.expand(len(x), -1, -1)  # (N, 1, D)
        x = torch.cat([cls, tokens], dim=1) + self.pos_embed  # (N, 1 + T, D)
        for block in self.blocks:
            x = block(x)
        # max pooling over all tokens, channel by channel: "is there a lesion in any patch?".
        # No LayerNorm before it: a norm rescales every token to the same size, and the max
        # must compare how strongly each patch responds (with it, the ViT only memorised).
        pooled, winner = x.max(dim=1)  # (N, D) and which token gave each channel's maximum
        self.readout = F.one_hot(winner, x.shape[1]).float().mean(dim=1).detach()  # (N, T), rows sum to 1
        return self.head(pooled)  # → (N, num_classes)

    def attention_weights(self) -> list[torch.Tensor]:
        """Every block's attention of the last forward pass, input side first: L × (N, h, T, T)."""
        return [block.attention.weights for block in self.blocks]


def init_vit(model: VisionTransformer, generator: torch.Generator) -> VisionTransformer:
    """The usual ViT initialisation, from a local generator: linear and patch weights and the
    CLS and position embeddings from a normal with σ = 0.02 (cut at ±2σ), biases 0, norms 1."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.Linear, nn.Conv2d)):
                nn.init.trunc_normal_(module.weight, std=0.02, a=-0.04, b=0.04, generator=generator)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        for p in (model.cls_token, model.pos_embed):
            nn.init.trunc_normal_(p, std=0.02, a=-0.04, b=0.04, generator=generator)
    return model


def build_vit(patch_size=8, dim=32, depth=2, heads=4, seed=0, num_classes=2) -> VisionTransformer:
    model = VisionTransformer(patch_size=patch_size, dim=dim, depth=depth, heads=heads, num_classes=num_classes)
    return init_vit(model, torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------------------------------------
# Attention rollout (Abnar & Zuidema 2020)


def attention_rollout(attentions: list[torch.Tensor]) -> torch.Tensor:
    """L × (N, h, T, T) attention weights, input side first → (N, T, T) rolled-out attention.

    Per layer: average the heads, add the identity (the residual connection carries each token
    on unchanged), renormalise each row to sum 1; then multiply the layers, later ones on the
    left. Row i says how much token i at the top draws, through all layers, on each input token."""
    rollout = None
    for weights in attentions:
        a = weights.mean(dim=1)  # (N, T, T): heads averaged
        a = a + torch.eye(a.shape[-1], dtype=a.dtype)  # residual
        a = a / a.sum(dim=-1, keepdim=True)  # rows sum to 1 again
        rollout = a if rollout is None else a @ rollout
    return rollout


def readout_rollout(attentions: list[torch.Tensor], readout: torch.Tensor) -> torch.Tensor:
    """The rollout row of the classifier's readout, (N, T): each token's rollout row weighted by
    its share of the pooled vector (`readout`, (N, T), rows sum to 1), summed. A readout that is
    all CLS, (1, 0, ..., 0), gives the usual CLS row."""
    return (readout[:, None, :] @ attention_rollout(attentions))[:, 0]  # (N, 1, T) @ (N, T, T) -> (N, T)


@torch.no_grad()
def rollout_maps(model: VisionTransformer, x: torch.Tensor, batch_size: int = 256) -> np.ndarray:
    """(N, 1, H, W) images → (N, H, W) maps: the rollout row of the readout over the patch tokens,
    upsampled to the image (bilinear, as Grad-CAM's map is).

    The classifier reads a max over the tokens, not the CLS token alone, so the map follows
    the readout: each token's rollout row, weighted by the share of the pooled channels that
    token supplied (`model.readout`), summed. A readout of the CLS token only would give back
    the usual CLS row."""
    model.eval()
    out = []
    for i in range(0, len(x), batch_size):
        model(x[i : i + batch_size])
        row = readout_rollout(model.attention_weights(), model.readout)[:, 1:]  # (n, T - 1): readout → each patch
        grid = row.reshape(-1, 1, model.grid, model.grid)  # back to the patch layout, row by row
        out.append(F.interpolate(grid, size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0])
    return torch.cat(out).numpy().astype(np.float32)


def gradcam_maps(model: nn.Module, x: torch.Tensor, batch_size: int = 64) -> np.ndarray:
    """The CNN's Grad-CAM for the lesion class (last conv block), (N, 1, H, W) → (N, H, W)."""
    clone = explain.private_copy(model)
    return np.concatenate(
        [explain.gradcam(clone, x[i : i + batch_size], 1)[:, 0] for i in range(0, len(x), batch_size)]
    )


# ---------------------------------------------------------------------------------------------
# The lab


@register_lab("vit")
@dataclass
class VitLab:
    patch_size: int = 8  # 64 tokens + CLS on 64 px: lesions (radius 4) fit in one or a few patches
    dim: int = 32  # embedding width: small, so a run takes seconds
    depth: int = 2  # transformer blocks
    heads: int = 2  # 16 channels per head: as good as 4 heads here and ~30% faster per step
    largest: int = 1000  # training images of the largest run; the ladder is ÷10, ×0.3, ×1
    steps: int = 60  # CNN optimizer steps per run (the ViT gets VIT_STEP_FACTOR× as many), the same at every size
    seed: int = 0  # the data, the split and both models' weights
    image: int = 0  # display only: which test lesion is shown
    explain_size: int = 0  # display only: which run's maps (0 = largest, 1 = the one before, ...)

    def sizes(self) -> tuple[int, ...]:
        return (max(20, self.largest // 10), max(30, round(self.largest * 0.3)), self.largest)

    def problems(self) -> list[str]:
        """Settings that cannot be built, as string keys (the page translates)."""
        out = []
        if IMAGE_SIZE % self.patch_size:
            out.append("vit.bad.patch")
        if self.dim % self.heads:
            out.append("vit.bad.heads")
        return out

    def training_key(self) -> str:
        """Everything the sweep depends on (the picked image and map do not retrain)."""
        return f"vit:{self.patch_size}:{self.dim}:{self.depth}:{self.heads}:{self.largest}:{self.steps}:{self.seed}"


NUM_IMAGES = 2000  # before the patient split: 1400 training, 300 validation, 300 test (about 150 lesions)
CNN_CONFIG = TrainConfig()  # the chapter's default CNN (plain_cnn, width 8, Adam 3e-3)
# AdamW with weight decay 0.05 as usual for transformers, at 1e-2: at 1e-3 the tiny ViT had not
# left chance level by the end of a run
VIT_CONFIG = TrainConfig(learning_rate=1e-2, weight_decay=0.05)
VIT_STEP_FACTOR = 4  # the ViT gets 4× the CNN's steps: its steps are ~4× cheaper, and 60 were too few to learn
BATCH_SIZE = 64
VAL_IMAGES = 100
MIN_EPOCH_IMAGES = 512  # 8 steps of 64


@lru_cache(maxsize=2)
def base_splits(seed: int) -> Splits:
    return split(phantom_data(PhantomConfig(n=NUM_IMAGES, seed=seed)), SplitConfig(seed=seed))


def _epoch_images(size: int) -> int:
    """Images per epoch once a small set is repeated (see train_one)."""
    return size * math.ceil(MIN_EPOCH_IMAGES / size)


def run_epochs(lab: VitLab, name: str, size: int) -> int:
    """Epochs of one model's run on `size` images (the ViT gets VIT_STEP_FACTOR× the steps)."""
    return epochs_for(_epoch_images(size), lab.steps * (VIT_STEP_FACTOR if name == "vit" else 1))


def epochs_for(num_train: int, steps: int) -> int:
    """Epochs that give about `steps` optimizer steps on `num_train` images."""
    return max(1, round(steps / max(1, math.ceil(num_train / BATCH_SIZE))))


@dataclass
class SweepRun:
    model: str  # "cnn" | "vit"
    size: int  # training images
    test_auc: float
    val_auc: float
    epochs: int
    seconds: float
    parameters: int


@dataclass
class SweepResult:
    runs: list[SweepRun]
    sizes: tuple[int, ...]
    maps: dict[int, dict[str, np.ndarray]]  # size → {"vit": (n, H, W) rollout, "cnn": (n, H, W) Grad-CAM}
    lesion_images: np.ndarray  # (n, H, W) the test lesions, standardised
    lesion_masks: np.ndarray  # (n, H, W) bool
    lesion_probs: dict[int, dict[str, np.ndarray]]  # size → model → (n,) P(lesion)
    seconds: float
    stopped: bool = False

    def auc(self, model: str, size: int) -> float:
        return next(r.test_auc for r in self.runs if r.model == model and r.size == size)


def train_one(lab: VitLab, name: str, size: int, should_stop=None, on_epoch=None):
    """Train the CNN or the ViT on the first `size` training images; (model, SweepRun, stopped).
    `on_epoch(record, history)` after each epoch, as in primer.train.fit."""
    base = base_splits(lab.seed)
    keep = torch.randperm(len(base.train), generator=torch.Generator().manual_seed(lab.seed))[:size].sort().values
    # a small set is repeated to at least MIN_EPOCH_IMAGES per "epoch": the same images and steps
    # as many short epochs, without a validation pass after every one or two steps
    keep = keep.repeat(_epoch_images(size) // size)
    # the validation set only draws the monitoring curve here: 100 images keep its cost per epoch low
    splits = Splits(train=base.train.subset(keep), val=base.val.subset(torch.arange(VAL_IMAGES)), test=base.test)
    epochs = run_epochs(lab, name, size)
    if name == "cnn":
        config = CNN_CONFIG.replace(num_epochs=epochs, seed=lab.seed)
        model = models.build(config.model, seed=lab.seed, in_channels=1, num_classes=2, width=config.width)
    else:
        config = VIT_CONFIG.replace(num_epochs=epochs, seed=lab.seed)
        model = build_vit(lab.patch_size, lab.dim, lab.depth, lab.heads, seed=lab.seed)
    start = time.perf_counter()
    history = fit(model, splits, config, on_epoch=on_epoch, should_stop=should_stop)
    test_auc = auc_score(splits.test.y, predict(model, splits.test.x))
    run = SweepRun(
        model=name,
        size=size,
        test_auc=test_auc,
        val_auc=history.epochs[-1].val_auc if history.epochs else float("nan"),
        epochs=len(history.epochs),
        seconds=time.perf_counter() - start,
        parameters=sum(p.numel() for p in model.parameters()),
    )
    return model, run, history.stopped_by_user


@dataclass
class LiveRun:
    """The run in training, for the page's progress line and live curve."""

    model: str
    size: int
    run_index: int  # runs finished before this one
    epoch: int
    num_epochs: int
    val_auc: list[float]  # validation AUC after each epoch so far


def run_sweep(lab: VitLab, *, on_run=None, on_epoch=None, should_stop=None) -> SweepResult:
    """Both models at every size, smallest first (the first point appears soonest), and each
    run's maps on the test lesions. `on_run(SweepRun)` after each finished run; `on_epoch(LiveRun)`
    after each epoch of every run (the validation curve streams while a run trains)."""
    start = time.perf_counter()
    test = base_splits(lab.seed).test
    lesion = (test.y == 1).nonzero().squeeze(1)
    x = test.x[lesion]
    runs, maps, probs, stopped = [], {}, {}, False
    for size in lab.sizes():
        for name in TRAIN_ORDER:
            report = None
            if on_epoch is not None:
                num_epochs = run_epochs(lab, name, size)

                def report(record, history, name=name, size=size, done=len(runs), num_epochs=num_epochs):
                    curve = [r.val_auc for r in history.epochs]
                    on_epoch(LiveRun(name, size, done, record.epoch, num_epochs, curve))

            model, run, stopped = train_one(lab, name, size, should_stop, on_epoch=report)
            if stopped:
                break
            runs.append(run)
            if on_run is not None:
                on_run(run)  # the point goes on the curve now; its maps are only needed at the end
            maps.setdefault(size, {})[name] = rollout_maps(model, x) if name == "vit" else gradcam_maps(model, x)
            probs.setdefault(size, {})[name] = predict(model, x)[:, 1].numpy()
        if stopped:
            break
    return SweepResult(
        runs=runs,
        sizes=lab.sizes(),
        maps=maps,
        lesion_images=x[:, 0].numpy(),
        lesion_masks=test.mask[lesion].numpy(),
        lesion_probs=probs,
        seconds=time.perf_counter() - start,
        stopped=stopped,
    )


# ---------------------------------------------------------------------------------------------
# Display only: one test lesion's maps and the pointing game (no retraining)


@dataclass
class MapView:
    size: int  # training images of the run explained
    index: int  # which test lesion
    image: np.ndarray  # (H, W)
    mask: np.ndarray  # (H, W) bool
    vit_map: np.ndarray  # (H, W) attention rollout
    cnn_map: np.ndarray  # (H, W) Grad-CAM
    vit_prob: float
    cnn_prob: float
    n: int  # test lesions scored
    vit_hits: float  # pointing-game hit rate over them
    cnn_hits: float
    vit_ci: tuple[float, float]  # 95% Wilson intervals
    cnn_ci: tuple[float, float]
    chance: float  # mean lesion area share: what a random point scores


def _scores(size: int, result: SweepResult) -> explain.LocalizationScores:
    """Pointing-game scores of one size's maps, computed once per result (kept on the result, so
    picking another image redraws without rescoring and a new run never reads stale scores)."""
    cache = result.__dict__.setdefault("_scores", {})
    if size not in cache:
        cache[size] = explain.score_maps({name: result.maps[size][name] for name in MODELS}, result.lesion_masks)
    return cache[size]


def view(result: SweepResult, lab: VitLab) -> MapView:
    sizes = [s for s in result.sizes[::-1] if s in result.maps]  # largest first
    size = sizes[min(max(lab.explain_size, 0), len(sizes) - 1)]
    i = min(max(lab.image, 0), len(result.lesion_images) - 1)
    scores = _scores(size, result)
    hits = {name: scores.hits[name] for name in MODELS}
    ci = {name: explain.wilson_interval(int(h.sum()), len(h)) for name, h in hits.items()}
    return MapView(
        size=size,
        index=i,
        image=result.lesion_images[i],
        mask=result.lesion_masks[i],
        vit_map=result.maps[size]["vit"][i],
        cnn_map=result.maps[size]["cnn"][i],
        vit_prob=float(result.lesion_probs[size]["vit"][i]),
        cnn_prob=float(result.lesion_probs[size]["cnn"][i]),
        n=len(hits["vit"]),
        vit_hits=float(hits["vit"].mean()),
        cnn_hits=float(hits["cnn"].mean()),
        vit_ci=ci["vit"],
        cnn_ci=ci["cnn"],
        chance=float(scores.mask_fraction.mean()),
    )


# ---------------------------------------------------------------------------------------------
# Figures (labels come in translated)

COLORS = {"cnn": "#1f77b4", "vit": "#d62728"}


def auc_figure(runs: list[SweepRun], sizes: tuple[int, ...], words: dict):
    """Test AUC against training-set size; the axis shows the sweep's sizes from the start, so
    the points land where the reader expects while the sweep runs."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for name in MODELS:
        mine = sorted((r for r in runs if r.model == name), key=lambda r: r.size)
        fig.add_trace(
            go.Scatter(
                x=[r.size for r in mine],
                y=[r.test_auc for r in mine],
                mode="lines+markers",
                name=words[name],
                line={"color": COLORS[name]},
            )  # fmt: skip
        )
    fig.add_hline(y=0.5, line_dash="dot", line_color="grey", annotation_text=words["chance"])
    span = [math.log10(sizes[0] / 1.3), math.log10(sizes[-1] * 1.3)]  # a log axis takes its range in decades
    fig.update_layout(xaxis={"title": words["size"], "type": "log", "range": span, "tickvals": list(sizes)},
                      yaxis={"title": words["auc"], "range": [0.4, 1.0]},
                      margin={"l": 50, "r": 10, "t": 20, "b": 40}, legend={"orientation": "h", "y": 1.1})  # fmt: skip
    return fig


def live_figure(live: LiveRun, words: dict):
    """The validation AUC of the run in training, epoch by epoch (100 validation images: a noisy
    monitor, not the test result)."""
    import plotly.graph_objects as go

    epochs = list(range(1, len(live.val_auc) + 1))
    fig = go.Figure(go.Scatter(x=epochs, y=live.val_auc, mode="lines+markers", name=words[live.model],
                               line={"color": COLORS[live.model]}))  # fmt: skip
    fig.add_hline(y=0.5, line_dash="dot", line_color="grey", annotation_text=words["chance"])
    fig.update_layout(xaxis={"title": words["epoch"], "range": [0.5, live.num_epochs + 0.5]},
                      yaxis={"title": words["val_auc"], "range": [0.3, 1.0]},
                      margin={"l": 50, "r": 10, "t": 10, "b": 40}, showlegend=False)  # fmt: skip
    return fig


def _contour(mask: np.ndarray):
    """The mask's outline as scatter points (pixels on the border)."""
    inner = mask[1:-1, 1:-1] & mask[:-2, 1:-1] & mask[2:, 1:-1] & mask[1:-1, :-2] & mask[1:-1, 2:]
    border = mask.copy()
    border[1:-1, 1:-1] &= ~inner
    rows, cols = np.nonzero(border)
    return cols, rows


def maps_figure(v: MapView, words: dict):
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    titles = (
        words["image"],
        f"{words['rollout']} (p = {v.vit_prob:.2f})",
        f"{words['gradcam']} (p = {v.cnn_prob:.2f})",
    )
    fig = make_subplots(rows=1, cols=3, subplot_titles=titles, horizontal_spacing=0.03)
    cols, rows = _contour(v.mask)
    for k, (img, scale) in enumerate(((v.image, "gray"), (v.vit_map, "Inferno"), (v.cnn_map, "Inferno")), start=1):
        fig.add_trace(go.Heatmap(z=img, colorscale=scale, showscale=False, hoverinfo="skip"), row=1, col=k)
        fig.add_trace(go.Scatter(x=cols, y=rows, mode="markers", marker={"size": 2, "color": "#00e676"},
                                 hoverinfo="skip", showlegend=False), row=1, col=k)  # fmt: skip
        if k > 1:
            r, c = np.unravel_index(int(np.argmax(img)), img.shape)
            fig.add_trace(go.Scatter(x=[c], y=[r], mode="markers", marker={"symbol": "x", "size": 10, "color": "cyan"},
                                     hoverinfo="skip", showlegend=False), row=1, col=k)  # fmt: skip
    fig.update_yaxes(autorange="reversed", showticklabels=False, scaleanchor="x")
    fig.update_xaxes(showticklabels=False)
    fig.update_layout(margin={"l": 10, "r": 10, "t": 40, "b": 10})
    return fig


def pointing_figure(v: MapView, words: dict):
    import plotly.graph_objects as go

    names = [words["vit"], words["cnn"]]
    rates = [v.vit_hits, v.cnn_hits]
    low = [v.vit_ci[0], v.cnn_ci[0]]
    high = [v.vit_ci[1], v.cnn_ci[1]]
    fig = go.Figure(
        go.Bar(
            x=names,
            y=rates,
            marker_color=[COLORS["vit"], COLORS["cnn"]],
            error_y={
                "type": "data",
                "symmetric": False,
                "array": [h - r for h, r in zip(high, rates, strict=True)],
                "arrayminus": [r - lo for r, lo in zip(rates, low, strict=True)],
            },
        )  # fmt: skip
    )
    fig.add_hline(y=v.chance, line_dash="dot", line_color="grey", annotation_text=words["random"])
    fig.update_layout(yaxis={"title": words["pointing"], "range": [0, 1]}, margin={"l": 50, "r": 10, "t": 20, "b": 30})
    return fig


# ---------------------------------------------------------------------------------------------
# Through the shared training queue: one job for the whole sweep, a record per finished run


def submit_sweep(lab: VitLab):
    from primer.jobs import training_queue

    runs = 2 * len(lab.sizes())

    def work(job):
        def on_epoch(live: LiveRun):
            job.latest = live
            job.progress = min(1.0, (live.run_index + live.epoch / live.num_epochs) / runs)

        return run_sweep(lab, on_run=job.add_epoch, on_epoch=on_epoch, should_stop=job.should_stop)

    return training_queue().submit_work(lab.training_key(), work, total_epochs=runs)
