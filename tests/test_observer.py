"""The ideal observer's AUC: exact formula vs explicit covariance algebra and Monte Carlo."""

import numpy as np
from scipy.stats import norm
from sklearn.metrics import roc_auc_score

from primer.observer import ideal_observer, prewhitening_scores
from primer.synth import PhantomConfig, background_filter, generate, known_signal, ske_variant


def explicit_covariance(cfg: PhantomConfig) -> np.ndarray:
    """Build K = A Aᵀ + σ² I by pushing every unit impulse through the background generator."""
    size = cfg.size
    h = background_filter(size, cfg.beta, cfg.background_std)
    impulses = np.eye(size * size).reshape(-1, size, size)  # (P, H, W)
    columns = np.fft.ifft2(np.fft.fft2(impulses) * h).real.reshape(size * size, -1)  # (P, P)
    return columns @ columns.T + cfg.noise_std**2 * np.eye(size * size)


def test_d_prime_equals_explicit_matrix_solution():
    cfg = PhantomConfig(size=12, radius=2.0, contrast=0.8, beta=2.5, noise_std=0.3)
    signal = known_signal(ske_variant(cfg)).ravel()
    d2 = signal @ np.linalg.solve(explicit_covariance(cfg), signal)
    assert np.isclose(ideal_observer(cfg).d_prime ** 2, d2, rtol=1e-9)


def test_white_noise_hand_computation():
    """β = 0: the background is white, so d'² = ‖s‖² / (b² + σ²)."""
    cfg = PhantomConfig(beta=0.0, background_std=0.7, noise_std=0.4, contrast=0.5)
    s = known_signal(ske_variant(cfg))
    d2 = (s**2).sum() / (0.7**2 + 0.4**2)
    assert np.isclose(ideal_observer(cfg).d_prime ** 2, d2, rtol=1e-9)
    assert np.isclose(ideal_observer(cfg).auc, norm.cdf(np.sqrt(d2 / 2)))


def test_monte_carlo_prewhitening_matched_filter_reaches_the_exact_auc():
    cfg = PhantomConfig(contrast=0.8)
    exact = ideal_observer(cfg).auc
    aucs = []
    for seed in range(3):
        data = generate(ske_variant(cfg).replace(n=4000, seed=100 + seed))
        aucs.append(roc_auc_score(data.labels, prewhitening_scores(data.images, cfg)))
    # Hanley–McNeil standard error for 2000 + 2000 cases, then of the mean of three runs
    q1, q2 = exact / (2 - exact), 2 * exact**2 / (1 + exact)
    se = np.sqrt((exact * (1 - exact) + 1999 * (q1 - exact**2) + 1999 * (q2 - exact**2)) / 2000**2) / np.sqrt(3)
    assert abs(np.mean(aucs) - exact) < 4 * se


def test_no_linear_template_beats_the_prewhitening_filter():
    """The matched filter without prewhitening (template = s) is worse in correlated noise."""
    cfg = PhantomConfig(contrast=0.8)
    data = generate(ske_variant(cfg).replace(n=4000, seed=9))
    plain = np.einsum("nhw,hw->n", data.images, known_signal(ske_variant(cfg)))
    assert roc_auc_score(data.labels, plain) < roc_auc_score(data.labels, prewhitening_scores(data.images, cfg)) - 0.05
