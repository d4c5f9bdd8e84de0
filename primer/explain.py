"""Where does the model look? Captum attribution maps, scored against lesion masks we know.

Every method is one short function with the same shape of call,

    amap = saliency(model, x, target=1)          # numpy, same shape as x: (N, 1, H, W)

and `attribute(model, x, method, target, settings)` runs any of them by name and returns an
`Attribution` (the map, whether it is signed, and the convergence delta where the method has
one). The model must be in eval mode; attribution needs gradients, so nothing here runs under
`torch.no_grad` or `torch.inference_mode`. Captum installs hooks on the model while it works
(Grad-CAM, Guided Backprop, DeepLift), so a model shared between threads must not be explained
directly: `private_copy(model)` gives each caller its own frozen copy.

Because the phantoms carry their lesion masks, a map can be scored: the pointing game (is the
hottest pixel inside the lesion?) and the share of attribution energy inside the mask. The
sanity check of Adebayo et al. (2018) re-initialises the network's layers from the top down and
measures how much each map changes; a map that survives a randomised network was never
explaining the network. Finally, the penultimate-layer embedding of the test set is projected to
2-D with PCA or t-SNE.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import threading
import warnings
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import torch
import torch.nn.functional as F
from captum.attr import (
    DeepLift,
    GradientShap,
    GuidedBackprop,
    GuidedGradCam,
    IntegratedGradients,
    LayerAttribution,
    LayerGradCam,
    NoiseTunnel,
    Occlusion,
    Saliency,
)
from torch import nn

from primer.labstate import register_lab
from primer.train import TensorData

# Captum announces every hook it installs and every input it marks for gradients; expected here.
warnings.filterwarnings("ignore", category=UserWarning, module=r"captum\.")

# ---------------------------------------------------------------------------------------------
# Methods, their settings, and the model they run on

METHODS: tuple[str, ...] = (
    "saliency",
    "integrated_gradients",
    "smoothgrad",
    "guided_backprop",
    "gradcam",
    "guided_gradcam",
    "occlusion",
    "deeplift",
    "gradient_shap",
)
# Maps that keep their sign (red: evidence for the target class, blue: against). The others are
# non-negative: gradient magnitudes (Saliency, SmoothGrad) or a rectified map (Grad-CAM).
SIGNED = {"integrated_gradients", "guided_backprop", "guided_gradcam", "occlusion", "deeplift", "gradient_shap"}
BASELINES: tuple[str, ...] = ("zero", "black", "blur", "noise")
# Model-free "maps" that every score is compared with: a heatmap that does no better than the
# image's own brightness or edges has not shown that the model found the lesion.
CONTROLS: tuple[str, ...] = ("image", "edges")


@dataclass(frozen=True)
class MethodSettings:
    """The knobs of every method; defaults are the usual published choices."""

    ig_steps: int = 50  # Captum's default; the convergence delta says whether it was enough
    baseline: str = "zero"  # zero = a flat image at the data's mean intensity
    smooth_samples: int = 20  # Smilkov et al.: the map stops changing past ~20–50 samples
    smooth_noise: float = 0.15  # noise σ as a fraction of the input's range (paper: 10–20%)
    gradcam_block: int = 0  # Grad-CAM's conv block, counted back from the output: 0 = the last one
    occlusion_window: int = 8  # a patch about twice the lesion radius, so it can hide a lesion
    occlusion_stride: int = 4  # half the window: overlapping patches, 15×15 positions on 64 px
    shap_samples: int = 20  # random (reference, point) draws averaged by Gradient SHAP
    seed: int = 0  # the noise of SmoothGrad, Gradient SHAP and the noise baseline

    def for_method(self, method: str) -> MethodSettings:
        """Only the settings `method` reads, the rest at their defaults: a cache key that does
        not change when an unrelated knob moves."""
        return replace(MethodSettings(), **{name: getattr(self, name) for name in USES[method]})


USES: dict[str, tuple[str, ...]] = {
    "saliency": (),
    "integrated_gradients": ("ig_steps", "baseline", "seed"),
    "smoothgrad": ("smooth_samples", "smooth_noise", "seed"),
    "guided_backprop": (),
    "gradcam": ("gradcam_block",),
    "guided_gradcam": ("gradcam_block",),
    "occlusion": ("occlusion_window", "occlusion_stride"),
    "deeplift": ("baseline", "seed"),
    "gradient_shap": ("shap_samples", "seed"),
}


# Over many images (scoring) or many networks (the sanity cascade) the slow methods run with
# fewer samples, and the cascade with a coarser occlusion grid: the maps change little, the wait
# a lot.
BATCH_SETTINGS = MethodSettings(ig_steps=32, smooth_samples=16, shap_samples=16)
SANITY_SETTINGS = MethodSettings(ig_steps=16, smooth_samples=10, shap_samples=10, occlusion_stride=8)


@dataclass
class Attribution:
    method: str
    map: np.ndarray  # (N, 1, H, W) float32
    signed: bool
    delta: np.ndarray | None = None  # (N,) completeness gap, for methods that promise Σ = Δoutput


def private_copy(model: nn.Module) -> nn.Module:
    """A frozen eval-mode copy of `model` that only the caller uses.

    Captum registers hooks on the model during an attribution; on a model shared by several
    sessions, one user's hooks would change another user's gradients. Freezing the weights
    also skips the weight gradients nobody needs here, and the channels-last layout lets the
    CPU convolutions run faster on the batches IG, SmoothGrad and occlusion build."""
    clone = copy.deepcopy(model).eval().to(memory_format=torch.channels_last)
    for parameter in clone.parameters():
        parameter.requires_grad_(False)
    return clone


@dataclass(frozen=True)
class Block:
    name: str  # module path, e.g. "features.7"
    module: nn.Module = field(repr=False, compare=False)
    channels: int = 0
    size: int = 0  # output height (= width) for a 64 px input


def _conv_children(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Children of `model.features` (or of the model) that hold a convolution, input first."""
    parent = getattr(model, "features", model)
    prefix = "features." if hasattr(model, "features") else ""
    return [
        (prefix + name, child)
        for name, child in parent.named_children()
        if any(isinstance(m, nn.Conv2d) for m in child.modules())
    ]


def conv_blocks(model: nn.Module, input_size: int = 64) -> list[Block]:
    """The convolutional blocks Grad-CAM can use, input side first, with their output shape.

    A block is a child of `model.features` that holds a convolution (conv-BN-ReLU, or a
    residual block); its output is the rectified feature map Grad-CAM weighs."""
    found = _conv_children(model)
    shapes: dict[str, tuple[int, ...]] = {}
    handles = [
        module.register_forward_hook(lambda _m, _i, out, name=name: shapes.__setitem__(name, tuple(out.shape)))
        for name, module in found
    ]
    try:
        with torch.no_grad():  # a shape probe, not an attribution
            model(torch.zeros(1, 1, input_size, input_size))
    finally:
        for handle in handles:
            handle.remove()
    return [Block(name, module, shapes[name][1], shapes[name][2]) for name, module in found]


def _block(model: nn.Module, back: int) -> nn.Module:
    """The conv block `back` places before the last one (0: the last, coarsest, most semantic)."""
    blocks = _conv_children(model)
    return blocks[len(blocks) - 1 - min(max(back, 0), len(blocks) - 1)][1]


_RNG_LOCK = threading.Lock()


@contextlib.contextmanager
def _seeded(seed: int):
    """Captum's SmoothGrad and Gradient SHAP draw from the global torch and NumPy generators.
    Seed both for the call and put them back, under a lock so concurrent sessions cannot
    interleave their draws: same seed, same map."""
    with _RNG_LOCK, torch.random.fork_rng(devices=[]):
        state = np.random.get_state()
        torch.manual_seed(seed)
        np.random.seed(seed)
        try:
            yield
        finally:
            np.random.set_state(state)


def _numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().to(torch.float32).contiguous().numpy()


def make_baseline(x: torch.Tensor, kind: str = "zero", seed: int = 0) -> torch.Tensor:
    """The reference image Integrated Gradients walks from, same shape as x (N, 1, H, W).

    zero: flat at the data's mean (inputs are standardised); black: flat at each image's darkest
    value; blur: the image blurred (σ = 4 px) so anatomy stays and lesion-sized detail goes;
    noise: seeded Gaussian noise with the data's unit spread."""
    if kind == "zero":
        return torch.zeros_like(x)
    if kind == "black":
        return x.amin(dim=(1, 2, 3), keepdim=True).expand_as(x).clone()
    if kind == "blur":
        from torchvision.transforms.functional import gaussian_blur

        return gaussian_blur(x, kernel_size=[17, 17], sigma=[4.0, 4.0])
    if kind == "noise":
        return torch.randn(x.shape, generator=torch.Generator().manual_seed(seed))
    raise ValueError(f"unknown baseline {kind!r}")


# ---------------------------------------------------------------------------------------------
# One function per method. x: (N, 1, H, W); target: class index (or (N,) indices).


def saliency(model: nn.Module, x: torch.Tensor, target) -> np.ndarray:
    """|∂ logit / ∂ pixel|: how much a tiny change of each pixel would move the score."""
    return _numpy(Saliency(model).attribute(x.detach().clone(), target=target, abs=True))


def integrated_gradients(
    model: nn.Module, x: torch.Tensor, target, baseline: str = "zero", steps: int = 50, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Gradients averaged along the straight path from a baseline to the image, times
    (image − baseline). Returns the map and the convergence delta: Σ map − (F(x) − F(baseline)),
    which is zero for the exact integral and shrinks as the steps grow."""
    ig = IntegratedGradients(model)
    attributions, delta = ig.attribute(
        x.detach(),
        baselines=make_baseline(x.detach(), baseline, seed),
        target=target,
        n_steps=steps,
        internal_batch_size=256,
        return_convergence_delta=True,
    )
    return _numpy(attributions), _numpy(delta)


def smoothgrad(
    model: nn.Module, x: torch.Tensor, target, samples: int = 20, noise: float = 0.15, seed: int = 0
) -> np.ndarray:
    """Saliency averaged over noisy copies of the image: the speckle of a single gradient
    averages out and what stays is what the model reacts to consistently."""
    sigma = noise * float(x.max() - x.min())
    with _seeded(seed):
        out = NoiseTunnel(Saliency(model)).attribute(
            x.detach().clone(),
            nt_type="smoothgrad",
            nt_samples=samples,
            nt_samples_batch_size=32,
            stdevs=sigma,
            target=target,
            abs=True,
        )
    return _numpy(out)


def guided_backprop(model: nn.Module, x: torch.Tensor, target) -> np.ndarray:
    """The gradient with every ReLU passing back only positive signal: sharp, image-like maps."""
    return _numpy(GuidedBackprop(model).attribute(x.detach().clone(), target=target))


def gradcam(model: nn.Module, x: torch.Tensor, target, block: int = 0) -> np.ndarray:
    """Feature maps of a conv block, each weighted by the mean gradient of the score over it,
    summed, rectified, and upsampled (bilinear) to the input size: coarse, class-specific."""
    layer = _block(model, block)
    cam = LayerGradCam(model, layer).attribute(x.detach(), target=target, relu_attributions=True)  # (N, 1, h, w)
    return _numpy(LayerAttribution.interpolate(cam, tuple(x.shape[-2:]), interpolate_mode="bilinear"))


def guided_gradcam(model: nn.Module, x: torch.Tensor, target, block: int = 0) -> np.ndarray:
    """Guided Backprop multiplied pixel by pixel by the upsampled Grad-CAM: fine detail, but
    only where the coarse class map is on."""
    layer = _block(model, block)
    out = GuidedGradCam(model, layer).attribute(x.detach().clone(), target=target, interpolate_mode="bilinear")
    return _numpy(out)


def occlusion(model: nn.Module, x: torch.Tensor, target, window: int = 8, stride: int = 4) -> np.ndarray:
    """Slide a grey patch over the image; each pixel gets the average drop of the score when
    the patches covering it are hidden. Needs no gradient at all, only forward passes."""
    out = Occlusion(model).attribute(
        x.detach(),
        sliding_window_shapes=(1, window, window),
        strides=(1, stride, stride),
        baselines=0.0,
        target=target,
        perturbations_per_eval=64,
    )
    return _numpy(out)


def deeplift(
    model: nn.Module, x: torch.Tensor, target, baseline: str = "zero", seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Each unit's difference from its value on the baseline, passed back layer by layer with
    the rescale rule. One backward pass; the delta checks that the contributions add up."""
    attributions, delta = DeepLift(model).attribute(
        x.detach().clone(),
        baselines=make_baseline(x.detach(), baseline, seed),
        target=target,
        return_convergence_delta=True,
    )
    return _numpy(attributions), _numpy(delta)


def shap_references(shape: tuple[int, ...], seed: int = 0, count: int = 8) -> torch.Tensor:
    """Gradient SHAP's reference distribution, (count, 1, H, W): the flat mean image and
    seeded noise images with the data's unit spread."""
    noise = torch.randn((count - 1, *shape[1:]), generator=torch.Generator().manual_seed(seed))
    return torch.cat([torch.zeros((1, *shape[1:])), noise])


def gradient_shap(
    model: nn.Module, x: torch.Tensor, target, samples: int = 20, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Expected gradients: Integrated Gradients averaged over random references and random
    points along each path; an approximation of SHAP values for a deep network."""
    with _seeded(seed):
        attributions, delta = GradientShap(model).attribute(
            x.detach().clone(),
            baselines=shap_references(tuple(x.shape), seed),
            n_samples=samples,
            stdevs=0.0,
            target=target,
            return_convergence_delta=True,
        )
    # Captum returns one delta per (image, sample); report the per-image mean.
    return _numpy(attributions), _numpy(delta).reshape(x.shape[0], samples).mean(axis=1)


def attribute(
    model: nn.Module, x: torch.Tensor, method: str, target=1, settings: MethodSettings = MethodSettings()
) -> Attribution:
    """Run one method by name (see METHODS) on a batch x (N, 1, H, W)."""
    s = settings
    delta = None
    if method == "saliency":
        amap = saliency(model, x, target)
    elif method == "integrated_gradients":
        amap, delta = integrated_gradients(model, x, target, s.baseline, s.ig_steps, s.seed)
    elif method == "smoothgrad":
        amap = smoothgrad(model, x, target, s.smooth_samples, s.smooth_noise, s.seed)
    elif method == "guided_backprop":
        amap = guided_backprop(model, x, target)
    elif method == "gradcam":
        amap = gradcam(model, x, target, s.gradcam_block)
    elif method == "guided_gradcam":
        amap = guided_gradcam(model, x, target, s.gradcam_block)
    elif method == "occlusion":
        amap = occlusion(model, x, target, s.occlusion_window, s.occlusion_stride)
    elif method == "deeplift":
        amap, delta = deeplift(model, x, target, s.baseline, s.seed)
    elif method == "gradient_shap":
        amap, delta = gradient_shap(model, x, target, s.shap_samples, s.seed)
    else:
        raise ValueError(f"unknown method {method!r}")
    return Attribution(method, amap, method in SIGNED, delta)


@torch.inference_mode()
def probability(model: nn.Module, x: torch.Tensor, target: int = 1) -> float:
    """The model's probability for class `target` on one image (1, 1, H, W)."""
    return float(torch.softmax(model(x), dim=1)[0, target])


def control_map(x: torch.Tensor, kind: str) -> np.ndarray:
    """A model-free map, same shape as x: the image's brightness or its edge strength (Sobel)."""
    if kind == "image":
        return _numpy(x)
    if kind == "edges":
        sobel = torch.tensor([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]])
        kernels = torch.stack([sobel, sobel.T])[:, None]  # (2, 1, 3, 3): d/dx, d/dy
        grad = F.conv2d(F.pad(x.detach(), (1, 1, 1, 1), mode="replicate"), kernels)  # (N, 2, H, W)
        return _numpy(grad.pow(2).sum(1, keepdim=True).sqrt())
    raise ValueError(f"unknown control {kind!r}")


# ---------------------------------------------------------------------------------------------
# Does it point at the lesion?


def evidence(amap: np.ndarray) -> np.ndarray:
    """The part of a map that speaks for the target class: its positive values."""
    return np.clip(amap, 0.0, None)


def pointing_hit(amap: np.ndarray, mask: np.ndarray, tolerance_px: float = 0.0) -> bool:
    """Pointing game (Zhang et al. 2016): does the map's maximum fall inside the lesion mask,
    or within `tolerance_px` of it? A map with no positive value points nowhere: a miss."""
    amap, mask = np.asarray(amap).squeeze(), np.asarray(mask, bool).squeeze()
    if not mask.any() or not (amap > 0).any():
        return False
    if tolerance_px > 0:
        from scipy.ndimage import distance_transform_edt

        mask = distance_transform_edt(~mask) <= tolerance_px
    return bool(mask.flat[int(np.argmax(amap))])


def energy_inside(amap: np.ndarray, mask: np.ndarray) -> float:
    """Share of the positive attribution that lies inside the mask (0 when there is none)."""
    positive = evidence(np.asarray(amap).squeeze())
    total = float(positive.sum())
    return float(positive[np.asarray(mask, bool).squeeze()].sum()) / total if total > 0 else 0.0


@dataclass
class LocalizationScores:
    """Per-method scores over a set of images with lesions."""

    methods: list[str]  # methods, then controls
    hits: dict[str, np.ndarray]  # method -> (n,) bool
    energy: dict[str, np.ndarray]  # method -> (n,) float
    mask_fraction: np.ndarray  # (n,) lesion area / image area: what a random map scores
    image_index: np.ndarray  # (n,) positions in the data set

    def summary(self) -> list[dict]:
        """One row per method: pointing accuracy, its 95% Wilson interval, mean energy inside."""
        rows = []
        for name in self.methods:
            hits = self.hits[name]
            low, high = wilson_interval(int(hits.sum()), len(hits))
            rows.append(
                {
                    "method": name,
                    "pointing": float(hits.mean()),
                    "pointing_low": low,
                    "pointing_high": high,
                    "energy": float(self.energy[name].mean()),
                }
            )
        chance = float(self.mask_fraction.mean())
        rows.append(
            {"method": "random", "pointing": chance, "pointing_low": chance, "pointing_high": chance, "energy": chance}
        )
        return rows


def wilson_interval(successes: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """95% Wilson score interval for a proportion (better than ±1.96·SE at small n)."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(centre - half), float(centre + half)


def localization_maps(
    model: nn.Module,
    x: torch.Tensor,
    target=1,
    settings: MethodSettings = MethodSettings(),
    methods: tuple[str, ...] = METHODS,
    batch_size: int = 16,
) -> dict[str, np.ndarray]:
    """Every method's map, and the model-free controls, for images x (N, 1, H, W):
    name -> (N, H, W). The slow part of scoring; `score_maps` then takes milliseconds."""
    out: dict[str, list[np.ndarray]] = {name: [] for name in (*methods, *CONTROLS)}
    for start in range(0, len(x), batch_size):
        xb = x[start : start + batch_size]
        for method in methods:
            out[method].append(attribute(model, xb, method, target, settings).map[:, 0])
        for control in CONTROLS:
            out[control].append(control_map(xb, control)[:, 0])
    return {name: np.concatenate(parts) for name, parts in out.items()}


def score_maps(maps: dict[str, np.ndarray], masks, tolerance_px: float = 0.0, image_index=None) -> LocalizationScores:
    """Pointing game and energy inside the mask for each (N, H, W) stack of maps."""
    masks = np.asarray(masks, bool)  # (N, H, W)
    hits = {
        name: np.array([pointing_hit(m, k, tolerance_px) for m, k in zip(stack, masks, strict=True)])
        for name, stack in maps.items()
    }
    energy = {
        name: np.array([energy_inside(m, k) for m, k in zip(stack, masks, strict=True)]) for name, stack in maps.items()
    }
    return LocalizationScores(
        methods=list(maps),
        hits=hits,
        energy=energy,
        mask_fraction=masks.reshape(len(masks), -1).mean(axis=1),
        image_index=np.arange(len(masks)) if image_index is None else np.asarray(image_index),
    )


# ---------------------------------------------------------------------------------------------
# Sanity check: cascading model-parameter randomisation (Adebayo et al., 2018)


def cascade_layers(model: nn.Module) -> list[str]:
    """Layers with weights, from the output back to the input: the order of the cascade."""
    names = [name for name, _ in _conv_children(model)]
    head = [name for name, m in model.named_children() if isinstance(m, nn.Linear)]
    return head[::-1] + names[::-1]


def _reinitialise(module: nn.Module, generator: torch.Generator) -> None:
    """Fresh random weights for every conv / linear layer in `module`, and batch-norm layers
    reset to the identity (unit scale, zero shift, running mean 0 and variance 1)."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_uniform_(m.weight, nonlinearity="relu", generator=generator)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                m.reset_parameters()  # weight 1, bias 0, running stats 0 / 1


def randomization_cascade(model: nn.Module, seed: int = 0) -> list[tuple[str, nn.Module]]:
    """[("original", model copy), (layer 1, copy with layer 1 re-initialised), (layer 2, copy
    with layers 1 and 2 re-initialised), ...], layers from the top down. Each step is a new
    frozen copy; `model` itself is never touched."""
    generator = torch.Generator().manual_seed(seed)
    current = private_copy(model)
    steps = [("original", current)]
    for name in cascade_layers(model):
        current = copy.deepcopy(current)
        _reinitialise(current.get_submodule(name), generator)
        steps.append((name, current))
    return steps


def rank_correlations(a: np.ndarray, b: np.ndarray, absolute: bool = True) -> np.ndarray:
    """Spearman rank correlation of maps a and b over their last two axes (the image), for every
    leading index at once: (..., H, W) × (..., H, W) -> (...). Of absolute values by default;
    0 where either map is flat (a map that went blank shares no ranking with the original).
    Spearman's ρ is Pearson's r of the ranks (ties get their average rank, as in scipy)."""
    from scipy.stats import rankdata

    a, b = np.broadcast_arrays(np.asarray(a, float), np.asarray(b, float))
    a = a.reshape(*a.shape[:-2], -1)  # (..., P)
    b = b.reshape(*b.shape[:-2], -1)  # (..., P)
    if absolute:
        a, b = np.abs(a), np.abs(b)
    rank_a = rankdata(a, axis=-1)
    rank_b = rankdata(b, axis=-1)
    rank_a -= rank_a.mean(axis=-1, keepdims=True)
    rank_b -= rank_b.mean(axis=-1, keepdims=True)
    norm = np.sqrt((rank_a**2).sum(axis=-1) * (rank_b**2).sum(axis=-1))
    flat = (np.ptp(a, axis=-1) == 0) | (np.ptp(b, axis=-1) == 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = (rank_a * rank_b).sum(axis=-1) / norm
    return np.where(flat | ~np.isfinite(rho), 0.0, rho)


def rank_correlation(a: np.ndarray, b: np.ndarray, absolute: bool = True) -> float:
    """Spearman rank correlation of two maps (see rank_correlations)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(rank_correlations(a.reshape(1, -1), b.reshape(1, -1), absolute))


@dataclass
class SanityResult:
    layers: list[str]  # "original", then the layers re-initialised, top down
    maps: dict[str, np.ndarray]  # method -> (steps, H, W) for the first image
    correlation: dict[str, np.ndarray]  # method -> (steps,) mean Spearman ρ vs the original
    correlation_sd: dict[str, np.ndarray]  # method -> (steps,) spread over the images
    image_correlation: dict[str, np.ndarray]  # method -> (steps,) mean Spearman ρ vs the image itself
    per_image: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict, repr=False)
    # method -> (ρ vs the original, ρ vs the image), each (steps, N): what the means are taken over

    def first(self, count: int) -> SanityResult:
        """The same summary over the first `count` images only (no ranking again: each
        image's correlations depend on that image alone)."""
        per_image = {name: (rho[:, :count], to_image[:, :count]) for name, (rho, to_image) in self.per_image.items()}
        return SanityResult(
            self.layers,
            self.maps,
            {name: rho.mean(axis=1) for name, (rho, _) in per_image.items()},
            {name: rho.std(axis=1) for name, (rho, _) in per_image.items()},
            {name: to_image.mean(axis=1) for name, (_, to_image) in per_image.items()},
            per_image,
        )


def step_maps(
    net: nn.Module,
    x: torch.Tensor,
    target=1,
    settings: MethodSettings = MethodSettings(),
    methods: tuple[str, ...] = METHODS,
    with_controls: bool = True,
) -> dict[str, np.ndarray]:
    """Every method's map of images x (N, 1, H, W) on one network of the cascade: name -> (N, H, W)."""
    maps = {method: attribute(net, x, method, target, settings).map[:, 0] for method in methods}
    if with_controls:
        maps["edges"] = control_map(x, "edges")[:, 0]
    return maps


def summarize_sanity(
    layers: list[str], per_step: list[dict[str, np.ndarray]], x: torch.Tensor, count: int | None = None
) -> SanityResult:
    """Rank correlations of each step's maps with the trained model's (step 0) and with the
    images themselves; `per_step` holds one `step_maps` result per cascade step. Only the first
    `count` images are used (all by default); `SanityResult.first` narrows a summary further."""
    images = x.detach()[:count, 0].numpy()  # (N, H, W)
    maps, per_image = {}, {}
    for name in per_step[0]:
        stacked = np.stack([step[name][:count] for step in per_step])  # (steps, N, H, W)
        rho = rank_correlations(stacked[:1], stacked)  # (steps, N): each step vs the original
        to_image = rank_correlations(np.abs(stacked), images[None], absolute=False)  # (steps, N)
        maps[name] = stacked[:, 0]
        per_image[name] = (rho, to_image)
    return SanityResult(list(layers), maps, {}, {}, {}, per_image).first(len(images))


def sanity_check(
    model: nn.Module,
    x: torch.Tensor,
    target=1,
    settings: MethodSettings = MethodSettings(),
    methods: tuple[str, ...] = METHODS,
    seed: int = 0,
    with_controls: bool = True,
) -> SanityResult:
    """Every method's map on images x (N, 1, H, W) at each step of the cascade, its rank
    correlation with the original model's map, and its rank correlation with the image itself.
    The edge-detector control does not depend on the model, so its first correlation stays 1:
    the signature of a map that explains the image. A map whose likeness to the image grows as
    the network is destroyed is turning into a picture of the image."""
    steps = randomization_cascade(model, seed)
    per_step = [step_maps(net, x, target, settings, methods, with_controls) for _, net in steps]
    return summarize_sanity([name for name, _ in steps], per_step, x)


# ---------------------------------------------------------------------------------------------
# The feature space: penultimate-layer embeddings in 2-D


@torch.inference_mode()
def embed(model: nn.Module, x: torch.Tensor, batch_size: int = 256) -> np.ndarray:
    """The penultimate-layer feature vector of each image, (N, C) (`model.embed`)."""
    return np.concatenate([model.embed(x[i : i + batch_size]).numpy() for i in range(0, len(x), batch_size)])


def features(model: nn.Module, x: torch.Tensor) -> np.ndarray:
    """`embed` of a model put in eval mode (BatchNorm's running statistics, no dropout), in float64
    for the covariance and probe fits that follow."""
    return embed(model.eval(), x).astype(np.float64)  # (N, C)


def project(features: np.ndarray, method: str = "pca", seed: int = 0, perplexity: float = 30.0) -> np.ndarray:
    """(N, C) features → (N, 2) coordinates. Both start from standardised features, so no
    channel dominates because of its scale. t-SNE keeps neighbourhoods, not distances."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE
    from sklearn.preprocessing import StandardScaler

    z = StandardScaler().fit_transform(features)
    if method == "pca":
        return PCA(n_components=2, random_state=seed).fit_transform(z)
    if method == "tsne":
        perplexity = float(min(perplexity, (len(z) - 1) / 3))  # t-SNE needs perplexity < N
        return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(z)
    raise ValueError(f"unknown projection {method!r}")


def explained_variance(features: np.ndarray) -> np.ndarray:
    """Fraction of the (standardised) feature variance on the first two principal components."""
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    return PCA(n_components=2).fit(StandardScaler().fit_transform(features)).explained_variance_ratio_


# ---------------------------------------------------------------------------------------------
# Which model, which test set


@dataclass
class ModelContext:
    """A classifier and the test set it is explained on. `model` may be shared between
    sessions: explain a `private_copy` of it."""

    key: str  # identifies model + data for caches ("default", or a hash of the user's run)
    model: nn.Module
    test: TensorData
    test_probs: np.ndarray  # (N, num_classes)
    classes: tuple[str, ...]


def from_default(default) -> ModelContext:
    """The shipped default classifier (primer.default_model.DefaultModel)."""
    return ModelContext("default", default.model, default.test, default.test_probs, default.test.classes)


def from_run(run) -> ModelContext | None:
    """A model from the training lab (primer.train.RunResult), with its test set regenerated
    from the run's settings; None when that does not reproduce the run's test labels (a run
    trained on uploaded data, whose images are not kept)."""
    from primer.train import phantom_data, split

    lab = run.lab
    try:
        test = split(phantom_data(lab.phantom_config()), lab.split_config()).test
    except ValueError:
        return None
    if len(test) != len(run.test_labels) or not np.array_equal(test.y.numpy(), run.test_labels):
        return None
    digest = hashlib.sha256(repr(asdict(lab)).encode() + np.ascontiguousarray(run.test_probs).tobytes()).hexdigest()
    return ModelContext("run-" + digest[:12], run.model(), test, run.test_probs, tuple(run.classes))


# ---------------------------------------------------------------------------------------------
# Choosing cases


CASES: tuple[str, ...] = ("tp", "fn", "fp", "tn", "any")


def case_indices(labels: np.ndarray, positive_prob: np.ndarray, kind: str, threshold: float = 0.5) -> np.ndarray:
    """Indices of the test images of one kind: true/false positives/negatives, or any."""
    labels = np.asarray(labels)
    called = np.asarray(positive_prob) >= threshold
    chosen = {
        "tp": (labels == 1) & called,
        "fn": (labels == 1) & ~called,
        "fp": (labels == 0) & called,
        "tn": (labels == 0) & ~called,
        "any": np.ones(len(labels), bool),
    }[kind]
    return np.flatnonzero(chosen)


@dataclass
class ExplainedImage:
    """One image to explain, whatever its source."""

    key: str  # identifies the image for caches
    x: torch.Tensor  # (1, 1, H, W) network input
    display: np.ndarray  # (H, W) what the eye sees
    mask: np.ndarray | None = None  # (H, W) bool true lesion, when known
    label: int | None = None  # true class, when known
    position: int | None = None  # index in the test set


def test_image(ctx: ModelContext, case: str, index: int) -> tuple[ExplainedImage | None, int]:
    """The `index`-th test image of a kind (wrapping around), and how many there are."""
    chosen = case_indices(ctx.test.y.numpy(), ctx.test_probs[:, 1], case)
    if len(chosen) == 0:
        return None, 0
    i = int(chosen[index % len(chosen)])
    x = ctx.test.x[i : i + 1]
    mask = None if ctx.test.mask is None else ctx.test.mask[i].numpy()
    image = ExplainedImage(f"test-{i}", x, x[0, 0].numpy(), mask, int(ctx.test.y[i]), i)
    return image, len(chosen)


def image_facts(model: nn.Module, image: ExplainedImage, result: Attribution, target: int) -> list[tuple[str, dict]]:
    """What to print beside a map, as (message id, values) for the page to translate: the
    model's probability for the target; when the truth is known, the label, whether the map
    points at the lesion and how much of it lies inside; the convergence delta."""
    facts = [("prob", {"cls": target, "p": probability(model, image.x, target)})]
    if image.label is not None:
        facts.append(("truth", {"cls": image.label}))
    if image.mask is not None and image.mask.any():
        hit = pointing_hit(result.map[0, 0], image.mask)
        facts.append(("hit" if hit else "miss", {"energy": energy_inside(result.map[0, 0], image.mask)}))
    if result.delta is not None:
        facts.append(("delta", {"delta": float(result.delta[0])}))
    return facts


def lesion_images(ctx: ModelContext, subset: str, count: int) -> np.ndarray:
    """Test-set positions of up to `count` images with a lesion: all of them ("positives") or
    only those the model called positive ("detected")."""
    chosen = case_indices(ctx.test.y.numpy(), ctx.test_probs[:, 1], "tp" if subset == "detected" else "any")
    return chosen[ctx.test.y.numpy()[chosen] == 1][:count]


def localization_for(
    ctx: ModelContext, subset: str, count: int, start: int = 0, stop: int | None = None
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Maps of every method on the chosen lesion images [start:stop] (a page scores them in
    chunks to show progress), their masks, and their positions in the test set."""
    positions = lesion_images(ctx, subset, count)[start:stop]
    maps = localization_maps(private_copy(ctx.model), ctx.test.x[positions], 1, BATCH_SETTINGS)
    return maps, ctx.test.mask[positions].numpy(), positions


def merge_chunks(chunks: list[tuple[dict, np.ndarray, np.ndarray]]) -> tuple[dict, np.ndarray, np.ndarray]:
    """Join `localization_for` results of consecutive chunks into one."""
    maps = {name: np.concatenate([c[0][name] for c in chunks]) for name in chunks[0][0]}
    return maps, np.concatenate([c[1] for c in chunks]), np.concatenate([c[2] for c in chunks])


def sanity_images(ctx: ModelContext, case: str, index: int, count: int) -> torch.Tensor | None:
    """`count` consecutive test images of a kind from the `index`-th (wrapping), (count, 1, H, W)."""
    chosen = case_indices(ctx.test.y.numpy(), ctx.test_probs[:, 1], case)
    if len(chosen) == 0:
        return None
    picks = [int(chosen[(index + k) % len(chosen)]) for k in range(min(count, len(chosen)))]
    return ctx.test.x[picks]


SANITY_MAX_IMAGES = 4  # the lab computes the maps of this many images once; fewer are a slice


def sanity_step(ctx: ModelContext, x: torch.Tensor, seed: int, step: int) -> dict[str, np.ndarray]:
    """The maps at one step of the cascade (0: the trained model), with SANITY_SETTINGS."""
    net = randomization_cascade(ctx.model, seed)[step][1]
    return step_maps(net, x, 1, SANITY_SETTINGS)


# ---------------------------------------------------------------------------------------------
# Lab states (bound to the URL by the page)


@register_lab("attrib")
@dataclass
class AttributionLab:
    source: str = "phantom"  # phantom | hybrid | upload
    case: str = "tp"  # which kind of test image: a true positive shows a found lesion
    index: int = 0  # k-th image of that kind
    ct_example: str = "ct_small"  # hybrid: which shipped CT slice the patch comes from
    hybrid_seed: int = 0  # hybrid: where the patch and the lesion are
    hybrid_contrast: float = 2.5  # hybrid: lesion peak in patch-std units, as in the phantoms
    method: str = "gradcam"  # the map radiologists meet most often in papers and products
    target: int = 1  # class explained: 1 = lesion
    baseline: str = "zero"
    ig_steps: int = 50
    smooth_samples: int = 20
    smooth_noise: float = 0.15
    gradcam_block: int = 0  # counted back from the output: 0 = the last conv block (16×16 here)
    occlusion_window: int = 8
    occlusion_stride: int = 4
    opacity: float = 0.7  # low values are transparent anyway, so the anatomy stays readable
    show_mask: bool = True  # outline the true lesion (the phantoms' ground truth)
    show_grid: bool = True
    seed: int = 0

    def settings(self) -> MethodSettings:
        return MethodSettings(
            ig_steps=self.ig_steps,
            baseline=self.baseline,
            smooth_samples=self.smooth_samples,
            smooth_noise=self.smooth_noise,
            gradcam_block=self.gradcam_block,
            occlusion_window=self.occlusion_window,
            occlusion_stride=self.occlusion_stride,
            seed=self.seed,
        )


@register_lab("pointing")
@dataclass
class PointingLab:
    num_images: int = 40  # lesion-bearing test images scored (the 95% interval is about ±0.15)
    tolerance: int = 0  # px around the mask still counted as a hit
    subset: str = "positives"  # positives | detected (only lesions the model called)
    run: bool = False  # scoring takes seconds: the user starts it


@register_lab("sanity")
@dataclass
class SanityLab:
    case: str = "tp"
    index: int = 0
    depth: int = 3  # layers re-initialised from the top (head and the two last conv blocks)
    num_images: int = 1  # correlations averaged over this many images (up to SANITY_MAX_IMAGES)
    seed: int = 0


@register_lab("embedding")
@dataclass
class EmbeddingLab:
    projection: str = "pca"  # instant; t-SNE takes seconds
    color: str = "label"  # label | correct | prob
    perplexity: int = 30  # t-SNE's usual default: about 30 effective neighbours
    seed: int = 0
    index: int = 0  # the test image shown beside the plot
