"""Synthetic data with exact densities: 2-D moons with outliers, the asymmetric Gaussian
mixture of App. C, the mixture with anomalies from its low-density region (Eq. 1) and the
mixture on a low-dimensional subspace (where the likelihood is unbounded, §4.2)."""
from __future__ import annotations

import math

import numpy as np
import torch
from sklearn.datasets import make_moons

__all__ = ["moons", "AsymmetricGaussianMixture", "anomaly_data", "subspace_data"]


def moons(n: int, noise: float = 0.08, n_outliers: int = 0, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Two interleaving half-moons (normal, label 0), standardised, plus ``n_outliers``
    points drawn uniformly from a box around them (label 1).

    >>> x, y = moons(100, n_outliers=10)
    >>> x.shape, x.dtype, int(y.sum())
    (torch.Size([110, 2]), torch.float32, 10)
    """
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

    >>> mixture = AsymmetricGaussianMixture(4)
    >>> mixture.variances[1].tolist()  # the second component's diagonal, theta_4
    [5.0, 5.0, 0.5, 0.5]
    >>> x, component = mixture.sample(1000)
    >>> x.shape, mixture.log_prob(x[:2]).shape
    (torch.Size([1000, 4]), (2,))
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


def anomaly_data(dim: int, n_train: int, n_test: int, n_anomalies: int, quantile: float = 0.01,
                 broad_scale: float = 3.0, seed: int = 0) -> dict[str, torch.Tensor]:
    """Normal data from :class:`AsymmetricGaussianMixture` and anomalies from its
    low-density region, following the level-set definition of Eq. 1.

    Anomalies are draws from a broad Gaussian ``N(0, broad_scale^2 I)`` kept only when
    their true mixture density is below the ``quantile`` of the densities of normal
    training points (rejection sampling).  Returns ``x_train`` (normal only), ``x_test``
    (normal test points followed by the anomalies) and ``y_test`` (1 = anomaly).
    """
    mix = AsymmetricGaussianMixture(dim)
    x_train, _ = mix.sample(n_train, seed=seed)
    x_normal, _ = mix.sample(n_test, seed=seed + 1)
    threshold = np.quantile(mix.log_prob(x_train.numpy()), quantile)
    rng = np.random.default_rng(seed + 2)
    kept: list[np.ndarray] = []
    while sum(len(k) for k in kept) < n_anomalies:
        cand = rng.normal(0.0, broad_scale, size=(4 * n_anomalies, dim))
        kept.append(cand[mix.log_prob(cand) < threshold])
    anomalies = torch.from_numpy(np.concatenate(kept)[:n_anomalies].astype(np.float32))
    return {"x_train": x_train, "x_test": torch.cat([x_normal, anomalies]),
            "y_test": torch.cat([torch.zeros(n_test), torch.ones(n_anomalies)]).long(),
            "log_density_threshold": float(threshold)}


def subspace_data(dim: int, rank: int, n_train: int, n_test: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """The asymmetric mixture in ``rank`` dimensions, embedded in ``R^dim`` by a random matrix
    ``Q`` with orthonormal columns: ``x = Q y``.  The data fill only a ``rank``-dimensional
    subspace, so their density in ``R^dim`` is degenerate and maximum likelihood has no
    maximum — a flow can raise the likelihood without bound by squeezing the ``dim - rank``
    empty directions, i.e. by inflating ``|det J|`` (§4.2)."""
    if not 1 <= rank < dim:
        raise ValueError(f"need 1 <= rank < dim, got rank={rank}, dim={dim}")
    g = torch.Generator().manual_seed(seed + 3)
    q, _ = torch.linalg.qr(torch.randn(dim, rank, generator=g))
    mix = AsymmetricGaussianMixture(rank)
    y_train, _ = mix.sample(n_train, seed=seed)
    y_test, _ = mix.sample(n_test, seed=seed + 1)
    return {"x_train": y_train @ q.T, "x_test": y_test @ q.T, "basis": q}
