"""The ideal observer: the best AUC any reader, human or CNN, can reach on a task.

For the signal-known-exactly (SKE) task — is this known lesion present at this known place? —
in Gaussian noise with covariance K, the likelihood ratio is a linear template, the prewhitening
matched filter w = K⁻¹ s, and its detectability is

    d'² = sᵀ K⁻¹ s = Σ_f |S(f)|² / P(f)        (unitary DFT; P = eigenvalues of K)

with AUC = Φ(d' / √2). Our phantom backgrounds are circularly filtered white noise, so K is
circulant, the DFT diagonalises it, and this number is exact rather than an approximation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

from primer.synth import PhantomConfig, known_signal, noise_power_spectrum, ske_variant


@dataclass(frozen=True)
class IdealObserver:
    d_prime: float
    auc: float


def ideal_observer(config: PhantomConfig) -> IdealObserver:
    """Exact d' and AUC of the prewhitening matched filter on the SKE variant of `config`."""
    ske = ske_variant(config)
    signal = known_signal(ske)
    power = noise_power_spectrum(ske)  # (H, W) eigenvalues of the noise covariance
    n_pixels = signal.size
    # numpy's fft2 is unnormalised: |unitary DFT|² = |fft2|² / N.
    d2 = float(np.sum(np.abs(np.fft.fft2(signal)) ** 2 / (n_pixels * power)))
    d_prime = np.sqrt(d2)
    return IdealObserver(d_prime=float(d_prime), auc=float(norm.cdf(d_prime / np.sqrt(2.0))))


def prewhitening_template(config: PhantomConfig) -> np.ndarray:
    """w = K⁻¹ s, (H, W): the known signal with each frequency divided by the noise power."""
    ske = ske_variant(config)
    signal = known_signal(ske)
    return np.fft.ifft2(np.fft.fft2(signal) / noise_power_spectrum(ske)).real


def prewhitening_scores(images: np.ndarray, config: PhantomConfig) -> np.ndarray:
    """Test statistic t = wᵀ g for each image, (N,). Larger means 'signal present'."""
    template = prewhitening_template(config)
    return np.einsum("nhw,hw->n", images.astype(np.float64), template)
