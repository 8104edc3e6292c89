"""Synthetic data with exact densities: 2-D moons with outliers, and the asymmetric
Gaussian mixture of App. C."""
from __future__ import annotations

import math

import numpy as np
import torch
from sklearn.datasets import make_moons


def moons(n: int, noise: float = 0.08, n_outliers: int = 0, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Two interleaving half-moons (normal, label 0), standardised, plus ``n_outliers``
    points drawn uniformly from a box around them (label 1)."""
    x, _ = make_moons(n_samples=n, noise=noise, random_state=seed)
    x = (x - x.mean(0)) / x.std(0)
    rng = np.random.default_rng(seed + 1)
    out = rng.uniform(-3.0, 3.0, size=(n_outliers, 2))
    xs = np.concatenate([x, out]).astype(np.float32)
    ys = np.concatenate([np.zeros(n), np.ones(n_outliers)]).astype(np.int64)
    return torch.from_numpy(xs), torch.from_numpy(ys)


class AsymmetricGaussianMixture:
    """The two-component mixture of App. C, for any dimension ``d``.

    ``mu_1 = 1_d, Sigma_1 = I`` and ``mu_2 = -1_d, Sigma_2 = diag(theta_d)`` where half
    of ``theta_d`` is 5.0 and half is 0.5 (the first ``ceil(d/2)`` entries are 5.0).
    The paper does not state the mixing weights; we use equal weights ``(0.5, 0.5)``.
    """

    def __init__(self, dim: int, weights: tuple[float, float] = (0.5, 0.5)):
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        self.dim = dim
        self.weights = np.asarray(weights, dtype=np.float64)
        if not np.isclose(self.weights.sum(), 1.0) or (self.weights <= 0).any():
            raise ValueError(f"weights must be positive and sum to 1, got {weights}")
        theta = np.full(dim, 0.5)
        theta[: math.ceil(dim / 2)] = 5.0
        self.means = np.stack([np.ones(dim), -np.ones(dim)])
        self.variances = np.stack([np.ones(dim), theta])

    def sample(self, n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` samples (float32) and their component index (0 or 1)."""
        rng = np.random.default_rng(seed)
        comp = rng.choice(2, size=n, p=self.weights)
        x = self.means[comp] + np.sqrt(self.variances[comp]) * rng.standard_normal((n, self.dim))
        return torch.from_numpy(x.astype(np.float32)), torch.from_numpy(comp)

    def component_log_probs(self, x) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        out = []
        for mu, var in zip(self.means, self.variances):
            quad = ((x - mu) ** 2 / var).sum(-1)
            out.append(-0.5 * (quad + np.log(var).sum() + self.dim * math.log(2 * math.pi)))
        return np.stack(out, -1)

    def log_prob(self, x) -> np.ndarray:
        """Exact ``ln p(x)`` (float64), computed with log-sum-exp."""
        comp = self.component_log_probs(x) + np.log(self.weights)
        top = comp.max(-1, keepdims=True)
        return (top + np.log(np.exp(comp - top).sum(-1, keepdims=True)))[..., 0]
