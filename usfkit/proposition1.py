"""Proposition 1 and density inversion (paper §4.3, App. B.3).

Deep SVDD with the map ``F_alpha(x) = 1/(alpha ||x||)`` and ``c = 0`` on ``x ~ N(0, I_d)``
has the loss ``1 / (alpha^2 (d - 2))``, which goes to 0 as ``alpha`` grows, while it ranks
points exactly against their density: the most likely inputs are mapped farthest from the
centre.

* :func:`closed_form`, :func:`quadrature` and :func:`monte_carlo`: that loss three ways;
* :func:`density_inversion`: the reversed ranking, measured on samples.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from scipy import integrate, stats

from .metrics import auroc, spearman

__all__ = ["closed_form", "quadrature", "monte_carlo", "density_inversion"]


def closed_form(dim: int, alpha: float) -> float:
    """``L(N, F_alpha) = 1 / (alpha^2 (d - 2))`` (App. B.3); needs ``d > 2``.

    >>> closed_form(3, 1.0), closed_form(10, 0.5)
    (1.0, 0.5)
    """
    if dim <= 2:
        raise ValueError(f"the loss is finite only for d > 2, got d = {dim}")
    return 1.0 / (alpha**2 * (dim - 2))


def quadrature(dim: int, alpha: float) -> float:
    """The same loss by numerical integration over ``r = ||x||^2 ~ chi^2(d)``:
    ``alpha^-2 * integral of r^-1 chi2_d(r) dr`` — an independent check of the closed form."""
    value, _ = integrate.quad(lambda r: stats.chi2.pdf(r, dim) / r, 0, np.inf)
    return value / alpha**2


def monte_carlo(dim: int, alphas: list[float], n: int, seed: int = 0, chunk: int = 250_000) -> list[dict]:
    """Monte-Carlo estimate of the Deep SVDD loss ``E ||F_alpha(x) - c||^2`` with ``c = 0``,
    ``F_alpha(x) = 1/(alpha ||x||)`` and ``x ~ N(0, I_d)`` (float64).

    The same ``n`` draws serve every ``alpha`` (the loss is ``alpha^-2`` times one
    expectation, so the relative error does not depend on ``alpha``).  ``std_err`` is the
    usual ``std / sqrt(n)``; it is meaningful only when ``Var(1/||x||^2)`` is finite, i.e.
    ``d > 4`` (``finite_variance``); for ``d = 3, 4`` the estimate still converges, but
    slowly and with rare large jumps (a heavy-tailed average).  Samples are drawn in chunks
    of ``chunk`` rows, so memory stays small for large ``n`` and ``d``.
    """
    g = torch.Generator().manual_seed(seed)
    total, total_sq, done = 0.0, 0.0, 0
    while done < n:
        m = min(chunk, n - done)
        inv_sq = 1.0 / torch.randn(m, dim, generator=g, dtype=torch.float64).pow(2).sum(1)  # ||F_1(x)||^2
        total, total_sq, done = total + inv_sq.sum().item(), total_sq + inv_sq.pow(2).sum().item(), done + m
    mean = total / n
    std_err = math.sqrt(max(total_sq / n - mean**2, 0.0) * n / (n - 1) / n)
    rows = []
    for a in alphas:
        exact = closed_form(dim, a)
        rows.append({"d": dim, "alpha": a, "monte_carlo": mean / a**2, "closed_form": exact,
                     "rel_error": abs(mean / a**2 - exact) / exact, "std_err": std_err / a**2,
                     "finite_variance": dim > 4})
    return rows


def density_inversion(dim: int, alpha: float, n: int, seed: int = 0) -> dict:
    """Samples ``x ~ N(0, I_d)`` with their true log-density and the Deep SVDD distance
    ``|F_alpha(x) - 0| = 1/(alpha ||x||)``.  Returns the arrays and the rank correlations:
    ``spearman_score`` between the true anomaly score ``-ln N(x)`` and the distance (-1:
    the ranking is exactly reversed), ``spearman_density`` between density and distance
    (+1; a faithful detector has -1), and the AUROC of the distance for flagging the 5 %
    least likely points (0: every anomaly is ranked as the most normal)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, dim, generator=g, dtype=torch.float64)
    norm = x.norm(dim=1)
    log_density = -0.5 * norm**2 - 0.5 * dim * math.log(2 * math.pi)
    distance = 1.0 / (alpha * norm)
    tail = (log_density < torch.quantile(log_density, 0.05)).long()
    return {"norm": norm.numpy(), "log_density": log_density.numpy(), "distance": distance.numpy(),
            "spearman_score": spearman(-log_density, distance),
            "spearman_density": spearman(log_density, distance),
            "auroc_tail": auroc(tail, distance)}
