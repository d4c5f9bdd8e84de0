"""Generative models: a denoising autoencoder for CT patches and a small VAE for lesion patches.

Denoising autoencoder (`dae_small`): an encoder squeezes a 64×64 patch through a bottleneck
(`code_channels` × 16 × 16 numbers) and a decoder rebuilds the patch from that code alone. Trained
to rebuild the *clean* patch from a *noisy* one, it has to keep the anatomy and drop the noise:
the bottleneck has no room for random pixel noise. There are no skip connections on purpose,
everything passes through the code.

Variational autoencoder (`vae_small`): the encoder outputs a Gaussian (mean and log-variance)
over a small latent space instead of one code, and training pulls those Gaussians toward a
standard normal (the KL term). Then any point drawn from N(0, I) decodes to a plausible patch:
the model can make new images, and walking in a straight line between two latent points morphs
one lesion into another.
"""

from __future__ import annotations

import torch
from torch import nn

from models import register
from models.classifiers import conv_bn_relu as conv_block


def up_block(c_in: int, c_out: int) -> nn.Sequential:
    """2× nearest upsampling then a 3×3 conv: no checkerboard artefacts of strided transposes."""
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), conv_block(c_in, c_out))


class DenoisingAutoencoder(nn.Module):
    """(N, 1, 64, 64) in [0, 1] → code (N, code_channels, 16, 16) → (N, 1, 64, 64) in [0, 1].

    Two halvings keep the code at 16×16, so it can still say where edges are; the compression
    comes from the few channels (4 channels: 1,024 numbers for 4,096 pixels)."""

    def __init__(self, width: int = 8, code_channels: int = 4):
        super().__init__()
        self.encoder = nn.Sequential(
            conv_block(1, width),
            conv_block(width, 2 * width, stride=2),  # 32×32
            conv_block(2 * width, 2 * width),
            conv_block(2 * width, 4 * width, stride=2),  # 16×16
            nn.Conv2d(4 * width, code_channels, 1),  # the bottleneck: no activation, a linear code
        )
        self.decoder = nn.Sequential(
            conv_block(code_channels, 4 * width),
            up_block(4 * width, 2 * width),  # 32×32
            conv_block(2 * width, 2 * width),
            up_block(2 * width, width),  # 64×64
            nn.Conv2d(width, 1, 3, padding=1),
            nn.Sigmoid(),
        )

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)  # (N, code_channels, H/4, W/4)

    def decode(self, code: torch.Tensor) -> torch.Tensor:
        return self.decoder(code)  # (N, 1, H, W)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


@register(
    "dae_small",
    family="generative",
    title={"en": "Denoising autoencoder", "zh": "去噪自编码器"},
    description={
        "en": "Squeezes a noisy patch through a small code and rebuilds the clean patch: noise does not fit through the bottleneck.",
        "zh": "把带噪图像块压缩成很小的编码，再重建出干净的图像块：噪声挤不过瓶颈层。",
    },
)
def dae_small(width: int = 8, code_channels: int = 4) -> DenoisingAutoencoder:
    return DenoisingAutoencoder(width, code_channels)


class VAE(nn.Module):
    """(N, 1, 32, 32) → mean, log-variance (N, latent_dim) → sample z → (N, 1, 32, 32) logits."""

    def __init__(self, latent_dim: int = 2, width: int = 16, size: int = 32):
        super().__init__()
        self.latent_dim = latent_dim
        self.side = size // 4  # two stride-2 steps: 32 → 8
        flat = 2 * width * self.side * self.side
        self.encoder = nn.Sequential(
            conv_block(1, width, stride=2),  # 16×16
            conv_block(width, 2 * width, stride=2),  # 8×8
            nn.Flatten(),  # (N, 2·width·8·8)
        )
        self.to_mean = nn.Linear(flat, latent_dim)
        self.to_logvar = nn.Linear(flat, latent_dim)
        self.from_latent = nn.Sequential(nn.Linear(latent_dim, flat), nn.ReLU())
        self.decoder = nn.Sequential(
            up_block(2 * width, width),  # 16×16
            up_block(width, width),  # 32×32
            nn.Conv2d(width, 1, 3, padding=1),
        )
        self.width = width

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder(x)
        return self.to_mean(h), self.to_logvar(h).clamp(-10, 10)  # (N, latent_dim) each

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        h = self.from_latent(z).view(-1, 2 * self.width, self.side, self.side)  # (N, 2·width, 8, 8)
        return self.decoder(h)  # (N, 1, 32, 32) logits; sigmoid gives the image in [0, 1]

    def forward(self, x: torch.Tensor, noise: torch.Tensor | None = None):
        """Returns (reconstruction logits, mean, log-variance). `noise` (N, latent_dim) is the
        reparameterisation's ε; None decodes the mean (eval)."""
        mean, logvar = self.encode(x)
        z = mean if noise is None else mean + torch.exp(0.5 * logvar) * noise
        return self.decode(z), mean, logvar


@register(
    "vae_small",
    family="generative",
    title={"en": "Variational autoencoder", "zh": "变分自编码器"},
    description={
        "en": "Encodes each patch as a small Gaussian in a latent space kept close to a standard normal, so random latent points decode to new patches.",
        "zh": "把每个图像块编码为潜在空间中的一个小高斯分布，并使其接近标准正态分布，因此随机取的潜在点也能解码成新的图像块。",
    },
)
def vae_small(latent_dim: int = 2, width: int = 16, size: int = 32) -> VAE:
    return VAE(latent_dim, width, size)


# GAN: a generator that turns noise into a patch, and a discriminator that tells real from made.
# DCGAN's recipe at 32×32 (Radford et al., 2016): the generator upsamples with strided
# transposed convolutions, BatchNorm and ReLU, tanh out; the discriminator halves with strided
# convolutions and leaky ReLU (a dead ReLU would pass no gradient back to the generator).


class Generator(nn.Module):
    """z (N, latent_dim) → (N, 1, 32, 32) in [−1, 1]."""

    def __init__(self, latent_dim: int = 16, width: int = 16):
        super().__init__()
        self.latent_dim = latent_dim
        self.width = width
        self.project = nn.Sequential(
            nn.Linear(latent_dim, 4 * width * 4 * 4, bias=False), nn.BatchNorm1d(4 * width * 16), nn.ReLU()
        )

        def up(c_in: int, c_out: int) -> nn.Sequential:
            return nn.Sequential(
                nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()
            )

        self.body = nn.Sequential(
            up(4 * width, 2 * width),  # 8×8
            up(2 * width, width),  # 16×16
            nn.ConvTranspose2d(width, 1, 4, stride=2, padding=1),  # 32×32
            nn.Tanh(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.project(z).view(-1, 4 * self.width, 4, 4)  # (N, 4·width, 4, 4)
        return self.body(h)  # (N, 1, 32, 32)


class Discriminator(nn.Module):
    """(N, 1, 32, 32) in [−1, 1] → one logit per patch: high = "looks real"."""

    def __init__(self, width: int = 16):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, width, 4, stride=2, padding=1),  # 16×16, no BatchNorm on the input layer (DCGAN)
            nn.LeakyReLU(0.2),
            nn.Conv2d(width, 2 * width, 4, stride=2, padding=1, bias=False),  # 8×8
            nn.BatchNorm2d(2 * width),
            nn.LeakyReLU(0.2),
            nn.Conv2d(2 * width, 4 * width, 4, stride=2, padding=1, bias=False),  # 4×4
            nn.BatchNorm2d(4 * width),
            nn.LeakyReLU(0.2),
            nn.Flatten(),  # (N, 4·width·4·4)
            nn.Linear(4 * width * 16, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)[:, 0]  # (N,)


@register(
    "gan_generator",
    family="generative",
    title={"en": "GAN generator", "zh": "GAN 生成器"},
    description={
        "en": "Turns a vector of random numbers into a patch; it learns only from the discriminator's verdicts, never sees a real patch.",
        "zh": "把一组随机数变成一个图像块；它只从判别器的判断中学习，从未直接看到真实图像块。",
    },
)
def gan_generator(latent_dim: int = 16, width: int = 16) -> Generator:
    return Generator(latent_dim, width)


@register(
    "gan_discriminator",
    family="generative",
    title={"en": "GAN discriminator", "zh": "GAN 判别器"},
    description={
        "en": "A small classifier that tells real patches from generated ones; its mistakes are the generator's training signal.",
        "zh": "一个小分类器，区分真实图像块和生成的图像块；它的判断为生成器提供训练信号。",
    },
)
def gan_discriminator(width: int = 16) -> Discriminator:
    return Discriminator(width)
