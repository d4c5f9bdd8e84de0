"""Generative models, small enough to train here: a denoising autoencoder on real CT patches and
a variational autoencoder that learns to make lesion patches.

    train, test = ct_patches()                               # real CT, windowed to [0, 1]
    dae, history = train_dae(train, DaeConfig())
    result = denoise(dae, test.clean[0], sigma=0.1, seed=0)  # noisy / output / clean, PSNR, SSIM
    coords = code_pca(dae, test)                             # 2-D PCA of the bottleneck codes

    patches, shapes = lesion_patches()                       # synthetic 32×32 lesion patches
    vae, run = train_vae(patches, VaeConfig())               # samples from fixed z every epoch
    strip = interpolate(vae, patches[a], patches[b], steps=8)

The CT patches come from the CT files that pydicom and pydicom-data ship (no download), each
shown in its own window. Patches from the upper half of each slice train, patches from the
lower half test: they never overlap. The noise is white and Gaussian, added after windowing;
real CT noise is correlated and depends on dose and reconstruction, so these numbers show the
idea, not a product's performance.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import models
from primer.labstate import register_lab
from primer.tasks import TaskEpoch, fit_batches

PATCH = 64
# The shipped CT slices used, with the file each came from (shown in the legend).
CT_SOURCES: tuple[tuple[str, str], ...] = (
    ("ct_head_j2k", "693_J2KR.dcm"),
    ("ct_enhanced", "eCT_Supplemental.dcm"),
    ("ct_small", "CT_small.dcm"),
)


# ---------------------------------------------------------------------------------------------
# Real CT patches


@dataclass
class CtPatches:
    clean: np.ndarray  # (N, 64, 64) float32 in [0, 1]: windowed CT
    source: np.ndarray  # (N,) index into CT_SOURCES

    def __len__(self) -> int:
        return len(self.source)


def _slices() -> list[tuple[int, np.ndarray]]:
    """(source index, windowed slice in [0, 1]) for every frame of every CT example, at most
    256 px a side (2×2 block means: a 64 px patch then spans several centimetres of anatomy)."""
    from primer.dicom import apply_window, load_example, suggested_window

    out = []
    for index, (example_id, _) in enumerate(CT_SOURCES):
        image = load_example(example_id)
        center, width, _ = suggested_window(image)
        for frame in image.pixels:
            shown = np.clip(apply_window(frame, center, width), 0.0, 1.0).astype(np.float32)
            while shown.shape[0] > 256:
                h, w = shown.shape[0] // 2 * 2, shown.shape[1] // 2 * 2
                shown = shown[:h, :w].reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))  # (H/2, W/2)
            out.append((index, shown))
    return out


def ct_patches(stride: int = 4, test_stride: int = 8, min_tissue: float = 0.3) -> tuple[CtPatches, CtPatches]:
    """64×64 patches of the shipped CT slices; upper half of each slice → train (densely
    overlapping: more views of the little anatomy there is), lower half → test. Patches that
    are mostly air (fewer than `min_tissue` of pixels above the window floor) are dropped:
    they teach nothing."""
    train, test = ([], []), ([], [])
    for source, image in _slices():
        h, w = image.shape
        middle = h // 2
        for top in range(0, h - PATCH + 1, math.gcd(stride, test_stride)):
            if top < middle - PATCH + 1 and top % stride == 0:
                target, step = train, stride
            elif top >= middle and top % test_stride == 0:
                target, step = test, test_stride
            else:
                continue  # off this split's grid, or straddling the middle: no shared pixels
            for left in range(0, w - PATCH + 1, step):
                patch = image[top : top + PATCH, left : left + PATCH]
                if (patch > 0.02).mean() >= min_tissue:
                    target[0].append(patch)
                    target[1].append(source)
    make = lambda part: CtPatches(np.stack(part[0]).astype(np.float32), np.asarray(part[1], dtype=np.int64))  # noqa: E731
    train_patches, test_patches = make(train), make(test)
    # Test patches with the most soft tissue first (grey values, neither air nor bone): where
    # noise hides what a reader looks for, and what patch 0 should show.
    soft = ((test_patches.clean > 0.1) & (test_patches.clean < 0.9)).mean(axis=(1, 2))
    order = np.argsort(-soft, kind="stable")
    return train_patches, CtPatches(test_patches.clean[order], test_patches.source[order])


def add_noise(clean: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    """clean + σ·N(0, 1), seeded; not clipped (what the network sees)."""
    rng = np.random.default_rng(seed)
    return (clean + sigma * rng.standard_normal(clean.shape)).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Denoising autoencoder


@dataclass(frozen=True)
class DaeConfig:
    code_channels: int = 4  # 4 × 16 × 16 = 1,024 numbers for 4,096 pixels: 4× compression
    num_epochs: int = 12  # ~500 steps on ~1,350 overlapping patches; PSNR still creeps up after
    batch_size: int = 32
    learning_rate: float = 2e-3
    max_sigma: float = 0.3  # each training patch gets its own noise level up to this
    seed: int = 0


def _augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Random flips and quarter turns per batch (anatomy has no fixed orientation in a patch)."""
    if torch.rand(1, generator=g) < 0.5:
        x = x.flip(-1)
    turns = int(torch.randint(0, 4, (1,), generator=g))
    return torch.rot90(x, turns, dims=(-2, -1))


def train_dae(
    train: CtPatches,
    test: CtPatches,
    config: DaeConfig = DaeConfig(),
    on_epoch: Callable[[TaskEpoch], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> tuple[nn.Module, list[TaskEpoch]]:
    """Noisy patch in, clean patch out, mean squared error. One network for every noise level:
    each patch of each batch gets its own σ drawn from [0, max_sigma]. The score after each
    epoch is the test PSNR at σ = 0.1."""
    model = models.build("dae_small", seed=config.seed, code_channels=config.code_channels)
    clean = torch.from_numpy(train.clean).unsqueeze(1)  # (N, 1, 64, 64)

    def loss_fn(index: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        target = _augment(clean[index], g)
        sigma = torch.rand(len(index), 1, 1, 1, generator=g) * config.max_sigma
        noisy = target + sigma * torch.randn(target.shape, generator=g)
        return F.mse_loss(model(noisy.contiguous(memory_format=torch.channels_last)), target)

    def score() -> float:
        return mean_psnr(model, test, 0.1, config.seed)

    history = fit_batches(model, len(clean), loss_fn, config, score, on_epoch, should_stop, one_cycle=False)
    return model, history


@torch.no_grad()
def run_dae(model: nn.Module, noisy: np.ndarray) -> np.ndarray:
    """(N, 64, 64) or (64, 64) noisy patches → denoised, same shape."""
    model.eval()
    x = torch.from_numpy(np.asarray(noisy, dtype=np.float32)).reshape(-1, 1, PATCH, PATCH)  # (N, 1, 64, 64)
    return model(x).numpy().reshape(np.shape(noisy))


def mean_psnr(model: nn.Module, data: CtPatches, sigma: float, seed: int) -> float:
    from skimage.metrics import peak_signal_noise_ratio

    noisy = add_noise(data.clean, sigma, seed)
    out = run_dae(model, noisy)
    return float(np.mean([peak_signal_noise_ratio(c, o, data_range=1.0) for c, o in zip(data.clean, out, strict=True)]))


@dataclass
class Denoised:
    clean: np.ndarray  # (64, 64)
    noisy: np.ndarray
    output: np.ndarray | None  # None without a trained autoencoder
    blurred: np.ndarray  # a Gaussian filter (σ = 1 px) on the noisy patch, the classical baseline
    psnr: dict[str, float]  # "noisy", "blurred" and (with a model) "output" vs clean, dB
    ssim: dict[str, float]


def denoise(model: nn.Module | None, clean: np.ndarray, sigma: float, seed: int) -> Denoised:
    """One patch with noise σ, the autoencoder's answer (when there is a model) and a blur, each
    scored against the clean patch with scikit-image's PSNR and SSIM."""
    from scipy.ndimage import gaussian_filter
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    noisy = add_noise(clean, sigma, seed)
    output = run_dae(model, noisy) if model is not None else None
    blurred = gaussian_filter(noisy, 1.0).astype(np.float32)
    shown = {"noisy": np.clip(noisy, 0, 1), "blurred": np.clip(blurred, 0, 1)}
    if output is not None:
        shown["output"] = output
    with np.errstate(divide="ignore"):  # σ = 0: an identical image, PSNR = ∞
        psnr = {k: float(peak_signal_noise_ratio(clean, v, data_range=1.0)) for k, v in shown.items()}
    ssim = {k: float(structural_similarity(clean, v, data_range=1.0)) for k, v in shown.items()}
    return Denoised(clean, shown["noisy"], output, shown["blurred"], psnr, ssim)


@torch.no_grad()
def codes(model: nn.Module, patches: np.ndarray) -> np.ndarray:
    """Bottleneck codes, flattened: (N, code_channels · 16 · 16)."""
    model.eval()
    x = torch.from_numpy(np.asarray(patches, dtype=np.float32)).reshape(-1, 1, PATCH, PATCH)
    return model.encode(x).flatten(1).numpy()


@dataclass
class CodeMap:
    coords: np.ndarray  # (N, 2) the test patches' clean codes, projected
    source: np.ndarray  # (N,)
    explained: tuple[float, float]  # variance fraction of each axis
    pca: object = field(repr=False)  # the fitted sklearn PCA, to project more codes


def code_pca(model: nn.Module, data: CtPatches) -> CodeMap:
    """2-D PCA of the clean test patches' codes (scikit-learn)."""
    from sklearn.decomposition import PCA

    features = codes(model, data.clean)
    pca = PCA(n_components=2, random_state=0).fit(features)
    ratio = pca.explained_variance_ratio_
    return CodeMap(pca.transform(features), data.source, (float(ratio[0]), float(ratio[1])), pca)


def project_codes(model: nn.Module, code_map: CodeMap, patches: np.ndarray) -> np.ndarray:
    """Where other patches (e.g. the noisy versions of one) land on the same map, (N, 2)."""
    return code_map.pca.transform(codes(model, patches))


# ---------------------------------------------------------------------------------------------
# Variational autoencoder on synthetic lesion patches

LESION_PATCH = 32
LESION_AMPLITUDE = 3.0  # lesion peak over a faint background: the shapes, not the texture, are the subject
LESION_WINDOW = (-1.0, LESION_AMPLITUDE + 1.0)  # values mapped to 0 and 1


def lesion_patches(n: int = 1500, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n 32×32 lesion patches in [0, 1] from the phantom generator, half round and half
    spiculated, at random positions and sizes, and their shape labels (1 = spiculated). The
    background is faint: a small VAE trained on strongly textured patches spends its few
    latent numbers on the texture and never learns the lesion."""
    from primer.synth import PhantomConfig, generate

    background_std = 0.15
    phantoms = generate(
        PhantomConfig(
            n=n,
            size=LESION_PATCH,
            task="shape",
            profile="disk",
            beta=2.0,
            background_std=background_std,
            noise_std=0.08,
            contrast=LESION_AMPLITUDE / background_std,  # contrast is in background-std units
            radius=4.5,
            radius_jitter=0.3,
            spicule_amplitude=0.8,
            seed=seed,
        )
    )
    lo, hi = LESION_WINDOW
    patches = np.clip((phantoms.images - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)
    return patches, phantoms.labels


@dataclass(frozen=True)
class VaeConfig:
    latent_dim: int = 2  # two numbers per patch: the latent space can be drawn as a map
    kl_weight: float = 1.0  # β of the KL term: 1 is the proper VAE, more trades detail for order
    num_epochs: int = 12  # position and size are learned by then; more epochs sharpen slowly
    batch_size: int = 16  # many small steps: a VAE needs hundreds of updates, not a few big ones
    learning_rate: float = 3e-3
    num_samples: int = 16  # fixed latent points decoded after every epoch
    seed: int = 0


@dataclass
class VaeRun:
    history: list[TaskEpoch]  # score: the test loss per patch
    samples: list[np.ndarray]  # per epoch: (num_samples, 32, 32) decoded from the same fixed z


def vae_loss(logits: torch.Tensor, x: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor, kl_weight: float):
    """(total, reconstruction, KL), each averaged per patch. Reconstruction: binary
    cross-entropy summed over pixels (a Bernoulli likelihood for intensities in [0, 1]); KL:
    the closed form for a diagonal Gaussian against N(0, I)."""
    reconstruction = F.binary_cross_entropy_with_logits(logits, x, reduction="sum") / len(x)
    kl = -0.5 * torch.sum(1 + logvar - mean.pow(2) - logvar.exp()) / len(x)
    return reconstruction + kl_weight * kl, reconstruction, kl


def train_vae(
    patches: np.ndarray,
    config: VaeConfig = VaeConfig(),
    on_epoch: Callable[[TaskEpoch, np.ndarray], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    test_fraction: float = 0.2,
) -> tuple[nn.Module, VaeRun]:
    """Train on the first 80% of the patches, report the loss on the rest; after every epoch
    decode the same `num_samples` random latent points, so the page can show them sharpen."""
    model = models.build("vae_small", seed=config.seed, latent_dim=config.latent_dim)
    x_all = torch.from_numpy(patches).unsqueeze(1)  # (N, 1, 32, 32)
    n_test = max(1, round(test_fraction * len(x_all)))
    x_train, x_test = x_all[:-n_test], x_all[-n_test:]
    fixed_z = torch.randn(
        config.num_samples, config.latent_dim, generator=torch.Generator().manual_seed(config.seed + 1)
    )
    run = VaeRun([], [])

    def loss_fn(index: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        x = x_train[index]
        noise = torch.randn(len(index), config.latent_dim, generator=g)  # the reparameterisation's ε
        logits, mean, logvar = model(x, noise)
        return vae_loss(logits, x, mean, logvar, config.kl_weight)[0]

    @torch.no_grad()
    def score() -> float:
        model.eval()
        run.samples.append(torch.sigmoid(model.decode(fixed_z))[:, 0].numpy())  # (num_samples, 32, 32)
        logits, mean, logvar = model(x_test)
        return vae_loss(logits, x_test, mean, logvar, config.kl_weight)[0].item()

    def report(record: TaskEpoch) -> None:
        if on_epoch is not None:
            on_epoch(record, run.samples[-1])

    run.history = fit_batches(model, len(x_train), loss_fn, config, score, report, should_stop, one_cycle=False)
    return model, run


@torch.no_grad()
def latent_means(model: nn.Module, patches: np.ndarray) -> np.ndarray:
    """Each patch's latent mean, (N, latent_dim)."""
    model.eval()
    return model.encode(
        torch.from_numpy(np.asarray(patches, dtype=np.float32)).reshape(-1, 1, LESION_PATCH, LESION_PATCH)
    )[0].numpy()


@torch.no_grad()
def decode(model: nn.Module, z: np.ndarray) -> np.ndarray:
    """Latent points (N, latent_dim) → patches (N, 32, 32) in [0, 1]."""
    model.eval()
    return torch.sigmoid(model.decode(torch.as_tensor(np.asarray(z, dtype=np.float32))))[:, 0].numpy()


def interpolate(model: nn.Module, start: np.ndarray, end: np.ndarray, steps: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Decode `steps` evenly spaced points on the straight line between two patches' latent
    means. Returns (latent points (steps, D), patches (steps, 32, 32))."""
    means = latent_means(model, np.stack([start, end]))  # (2, D)
    weights = np.linspace(0.0, 1.0, steps)[:, None]  # (steps, 1)
    z = (1 - weights) * means[0] + weights * means[1]  # (steps, D)
    return z, decode(model, z)


def latent_grid(model: nn.Module, side: int = 9, extent: float = 2.5) -> np.ndarray:
    """For a 2-D latent space: patches decoded on a side × side grid over [−extent, extent]²,
    (side, side, 32, 32), first row at the top (largest second coordinate)."""
    values = np.linspace(-extent, extent, side)
    z = np.array([(a, b) for b in values[::-1] for a in values], dtype=np.float32)  # (side², 2)
    return decode(model, z).reshape(side, side, LESION_PATCH, LESION_PATCH)


# ---------------------------------------------------------------------------------------------
# Generative adversarial network on the same lesion patches


@dataclass(frozen=True)
class GanConfig:
    latent_dim: int = 16  # enough numbers for position, size and outline
    # Adam with β₁ = 0.5 (DCGAN's choice). The generator learns 5× faster than the discriminator
    # and the discriminator is the narrower net. In trial runs with both nets 16 wide and DCGAN's
    # equal 2·10⁻⁴, the discriminator won within ~50 steps (D(fake) ≈ 0.04) and the samples
    # stayed noise; the lab's "Discriminator too strong" preset shows the same failure.
    g_learning_rate: float = 1e-3
    d_learning_rate: float = 2e-4
    d_steps: int = 1  # discriminator updates per generator update: 1 keeps the two in step
    num_epochs: int = 5  # ~230 generator steps: blobs at the right places and sizes by then
    batch_size: int = 32  # many small steps: a GAN needs hundreds of rounds of the game
    g_width: int = 16  # generator channels (×4, ×2, ×1 on the way up)
    d_width: int = 8  # discriminator channels
    num_samples: int = 32  # fixed noise vectors, decoded during training: the same 32 patches evolve
    sample_every: int = 10  # generator steps between two pictures of the fixed samples
    seed: int = 0


@dataclass
class GanStep:
    """One generator update (after its `d_steps` discriminator updates)."""

    step: int
    epoch: int
    d_loss: float  # BCE of D on a real and a fake batch, summed: ln 4 ≈ 1.39 when D cannot tell
    g_loss: float  # −ln D(G(z)) averaged: ln 2 ≈ 0.69 when D says 50/50
    d_real: float  # mean D(real) as a probability
    d_fake: float  # mean D(G(z)) as a probability (before this step's generator update)
    seconds: float


@dataclass
class GanRun:
    steps: list[GanStep]
    history: list[TaskEpoch]  # loss: mean generator loss; score: diversity relative to real patches
    samples: list[tuple[int, np.ndarray]]  # (generator step, (num_samples, 32, 32) in [0, 1]) from the fixed noise
    generated: np.ndarray | None = None  # (N, 32, 32) fresh samples at the end, for the mode figures
    report: ModeReport | None = None  # those samples against as many real patches


def reference_patches(patches: np.ndarray, n: int, seed: int) -> np.ndarray:
    """n real patches drawn at random (seeded): what the generated samples are compared with."""
    return patches[torch.randperm(len(patches), generator=torch.Generator().manual_seed(seed + 2))[:n].numpy()]


def gan_rounds(n: int, config: GanConfig) -> int:
    """Generator steps per epoch: one epoch shows the discriminator every real patch once."""
    return max(1, n // (config.batch_size * config.d_steps))


def to_unit(x: torch.Tensor) -> np.ndarray:
    """Generator output in [−1, 1] (N, 1, 32, 32) → patches (N, 32, 32) in [0, 1]."""
    return ((x[:, 0] + 1) / 2).clamp(0, 1).numpy()


@torch.no_grad()
def generate_patches(generator: nn.Module, n: int, seed: int) -> np.ndarray:
    """n patches from fresh noise (seeded), (n, 32, 32) in [0, 1]."""
    generator.eval()
    z = torch.randn(n, generator.latent_dim, generator=torch.Generator().manual_seed(seed))
    return to_unit(generator(z))


def train_gan(
    patches: np.ndarray,
    config: GanConfig = GanConfig(),
    on_step: Callable[[GanStep, np.ndarray | None], None] | None = None,
    on_epoch: Callable[[TaskEpoch, np.ndarray], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    num_generated: int = 256,
) -> tuple[nn.Module, GanRun]:
    """The standard GAN game with the non-saturating generator loss. Each round: `d_steps`
    discriminator updates (real batch labelled 1, generated batch labelled 0), then one
    generator update that asks D to call its fakes real. `on_step` gets every round's losses
    (and, every `sample_every` rounds, the fixed-noise samples); `on_epoch` gets the epoch's
    diversity score and the samples."""
    g = torch.Generator().manual_seed(config.seed)
    generator = models.build("gan_generator", seed=config.seed, latent_dim=config.latent_dim, width=config.g_width)
    discriminator = models.build("gan_discriminator", seed=config.seed + 1, width=config.d_width)
    for net in (generator, discriminator):
        dcgan_init(net, g)
    opt_g = torch.optim.Adam(generator.parameters(), lr=config.g_learning_rate, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=config.d_learning_rate, betas=(0.5, 0.999))
    real_all = torch.from_numpy(patches).unsqueeze(1) * 2 - 1  # (N, 1, 32, 32) in [−1, 1], tanh's range
    n, batch = len(real_all), config.batch_size
    fixed_z = torch.randn(
        config.num_samples, config.latent_dim, generator=torch.Generator().manual_seed(config.seed + 1)
    )
    real_reference = reference_patches(patches, num_generated, config.seed)
    run = GanRun([], [], [])
    bce = F.binary_cross_entropy_with_logits

    @torch.no_grad()
    def snapshot() -> np.ndarray:
        generator.eval()
        out = to_unit(generator(fixed_z))
        generator.train()
        return out

    start, step = time.perf_counter(), 0
    rounds = gan_rounds(n, config)
    for epoch in range(1, config.num_epochs + 1):
        order = torch.randperm(n, generator=g)
        g_losses = []
        for r in range(rounds):
            for k in range(config.d_steps):
                index = order[(r * config.d_steps + k) * batch : (r * config.d_steps + k + 1) * batch]
                real = real_all[index]
                fake = generator(torch.randn(len(real), config.latent_dim, generator=g)).detach()
                real_logits, fake_logits = discriminator(real), discriminator(fake)
                d_loss = bce(real_logits, torch.ones_like(real_logits)) + bce(
                    fake_logits, torch.zeros_like(fake_logits)
                )
                opt_d.zero_grad(set_to_none=True)
                d_loss.backward()
                opt_d.step()
            fake_logits = discriminator(generator(torch.randn(batch, config.latent_dim, generator=g)))
            g_loss = bce(fake_logits, torch.ones_like(fake_logits))  # −ln D(G(z)): "make D say real"
            opt_g.zero_grad(set_to_none=True)
            g_loss.backward()
            opt_g.step()
            step += 1
            g_losses.append(g_loss.item())
            record = GanStep(
                step,
                epoch,
                d_loss.item(),
                g_loss.item(),
                torch.sigmoid(real_logits).mean().item(),
                torch.sigmoid(fake_logits).mean().item(),
                time.perf_counter() - start,
            )
            run.steps.append(record)
            picture = None
            if step % config.sample_every == 0 or step == 1:
                picture = snapshot()
                run.samples.append((step, picture))
            if on_step is not None:
                on_step(record, picture)
            if should_stop is not None and should_stop():
                break
        if run.samples[-1][0] != step:
            run.samples.append((step, snapshot()))
        fresh = generate_patches(generator, num_generated, config.seed + 3)
        generator.train()
        record = TaskEpoch(
            epoch, float(np.mean(g_losses)), diversity_ratio(fresh, real_reference), time.perf_counter() - start
        )
        run.history.append(record)
        if on_epoch is not None:
            on_epoch(record, run.samples[-1][1])
        if should_stop is not None and should_stop():
            break
    generator.eval()
    run.generated = generate_patches(generator, num_generated, config.seed + 3)
    run.report = mode_report(run.generated, real_reference)
    return generator, run


def dcgan_init(model: nn.Module, generator: torch.Generator) -> None:
    """DCGAN's initialisation: conv weights N(0, 0.02), BatchNorm scales N(1, 0.02). He
    initialisation (the registry's default) makes the first fakes so far from the data that
    the discriminator wins at once."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
                module.weight.normal_(0.0, 0.02, generator=generator)
                if module.bias is not None:
                    module.bias.zero_()
            elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
                module.weight.normal_(1.0, 0.02, generator=generator)
                module.bias.zero_()


def mean_pairwise_distance(patches: np.ndarray) -> float:
    """Mean Euclidean distance between every pair of patches (N, H, W), divided by √(H·W) so it
    reads as a root-mean-square pixel difference. 0 when all patches are identical."""
    flat = torch.as_tensor(np.asarray(patches, dtype=np.float64)).flatten(1)  # (N, H·W)
    return float(torch.pdist(flat).mean() / math.sqrt(flat.shape[1]))


def diversity_ratio(generated: np.ndarray, real: np.ndarray) -> float:
    """Diversity of generated patches relative to real ones: 1 ≈ as varied as the data, near 0
    = mode collapse (the generator makes nearly the same patch for every noise vector)."""
    return mean_pairwise_distance(generated) / mean_pairwise_distance(real)


# How to tell a lesion in a patch, honestly. In these patches the background sits near 0.2
# (intensity 0 in the window −1…4) and a lesion's plateau near 0.8 (intensity 3): a known
# answer, not a trained judge (a classifier trained on real patches could be fooled by the
# same generator it is meant to check). A patch "contains a lesion" when its 3×3-smoothed
# maximum passes the midpoint 0.5; the lesion's centre is the centroid of the pixels above it.
LESION_LEVEL = 0.5


@dataclass
class ModeReport:
    diversity: float  # mean pairwise distance, generated ÷ real: near 1 healthy, near 0 collapsed
    lesion_share: float  # fraction of generated patches with a lesion (real: `real_lesion_share`)
    real_lesion_share: float
    centre_spread: float  # RMS distance (px) of the generated lesions' centres from their mean
    real_centre_spread: float


def lesion_centres(patches: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(has a lesion (N,) bool, centre (N, 2) row/column in px, NaN where none)."""
    from scipy.ndimage import uniform_filter

    patches = np.asarray(patches, dtype=np.float64)
    smooth = uniform_filter(patches, size=(1, 3, 3), mode="nearest")  # (N, H, W)
    present = smooth.reshape(len(patches), -1).max(1) > LESION_LEVEL
    weight = np.clip(smooth - LESION_LEVEL, 0, None)  # (N, H, W): only the bright part counts
    rows, cols = np.indices(patches.shape[1:])
    total = weight.sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        centre = np.stack([(weight * rows).sum((1, 2)) / total, (weight * cols).sum((1, 2)) / total], 1)
    centre[~present] = np.nan
    return present, centre


def centre_spread(patches: np.ndarray) -> float:
    """RMS distance of the lesion centres from their mean, px (0 when every lesion sits in one
    place, NaN with no lesion at all)."""
    present, centre = lesion_centres(patches)
    if not present.any():
        return float("nan")
    found = centre[present]
    return float(np.sqrt(((found - found.mean(0)) ** 2).sum(1).mean()))


def mode_report(generated: np.ndarray, real: np.ndarray) -> ModeReport:
    """The collapse figures: how varied the samples are, and whether they still cover the
    places where real lesions sit."""
    return ModeReport(
        diversity_ratio(generated, real),
        float(lesion_centres(generated)[0].mean()),
        float(lesion_centres(real)[0].mean()),
        centre_spread(generated),
        centre_spread(real),
    )


# ---------------------------------------------------------------------------------------------
# Lab states


@register_lab("dae")
@dataclass
class DaeLab:
    noise: float = 0.15  # σ in window units: 15% of the window width, clearly grainy
    patch: int = 0  # which test patch
    code_channels: int = 4  # bottleneck size (× 16 × 16 numbers)
    seed: int = 0

    def config(self) -> DaeConfig:
        return DaeConfig(code_channels=self.code_channels, seed=self.seed)


@register_lab("vae")
@dataclass
class VaeLab:
    latent_dim: int = 2
    kl_weight: float = 1.0
    num_epochs: int = 12
    seed: int = 0
    start: int = 0  # the n-th round lesion of the test patches: one end of the interpolation
    end: int = 0  # the n-th spiculated lesion: the other end

    def config(self) -> VaeConfig:
        return VaeConfig(
            latent_dim=self.latent_dim, kl_weight=self.kl_weight, num_epochs=self.num_epochs, seed=self.seed
        )


@register_lab("gan")
@dataclass
class GanLab:
    g_learning_rate: float = 1e-3  # 5× the discriminator's: the balance that trains here (GanConfig)
    d_learning_rate: float = 2e-4
    d_steps: int = 1  # one discriminator update per generator update
    latent_dim: int = 16  # noise numbers per patch
    num_epochs: int = 5  # ~230 generator steps, ~10–15 s on two cores
    seed: int = 0

    def config(self) -> GanConfig:
        return GanConfig(
            latent_dim=self.latent_dim,
            g_learning_rate=self.g_learning_rate,
            d_learning_rate=self.d_learning_rate,
            d_steps=self.d_steps,
            num_epochs=self.num_epochs,
            seed=self.seed,
        )
