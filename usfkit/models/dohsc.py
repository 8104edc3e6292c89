"""DOHSC and DO2HSC (Zhang et al., "Deep Orthogonal Hypersphere Compression for Anomaly
Detection", ICLR 2024, arXiv 2302.06430): the Deep SVDD baselines of paper §5.1.

Both share one encoder, the tabular architecture of the original (paper §5.1.1):
bias-free linear layers ``d -> 500 -> 30 -> 30`` with a leaky ReLU after the first
layer only (as in the authors' tabular code), followed by an **orthogonal projection
layer**.  That layer maps a batch of representations ``H`` (n x k) to ``Z = H W`` with
``W`` chosen from ``H`` itself so that the projected batch is orthonormal,
``Z^T Z / n = I``: with ``H^T H / n = V diag(lam) V^T``, ``W = V diag(lam)^{-1/2}``
(``= sqrt(n) V S^{-1}`` from the SVD ``H = U S V^T``, i.e. ``Z = sqrt(n) U``).  ``W`` is
recomputed on every training batch and treated as a constant by the gradient, as in the
original; for scoring it is frozen to the value computed on the whole training set
(``fit_projection``), so test scores do not depend on how test data are batched (the
reference code recomputes it on every test batch).  We follow the orthonormality the
paper states for this layer; the authors' public tabular code sets ``W = V S`` (singular
values, not their inverses), which does not make the batch orthonormal.  A batch whose
features are (numerically) rank-deficient gets a pseudo-inverse: directions whose
eigenvalue is below ``rtol = 1e-6`` of the largest are set to zero instead of inflated
(training drives the features towards low rank; whitening those directions would only
amplify rounding noise), so ``Z^T Z / n`` is the identity on the batch's numerical range
and zero on the rest.  The threshold is relative, so it does not depend on the scale of
the features, and the moments are computed in float64.

* **DOHSC** compresses the projected data into one hypersphere around ``c`` (the mean
  initial embedding after autoencoder pretraining).  The training loss is the
  soft-boundary objective ``R^2 + (1/nu) mean(max(0, ||z - c||^2 - R^2))`` at ``R = 0``,
  as the reference code trains it; the radius ``R`` is then the ``(1 - nu)``-quantile
  of the training distances, and the score is ``||z - c||^2 - R^2`` (> 0 outside).
* **DO2HSC** first trains DOHSC for ``warmup_epochs`` (20 in the reference code), sets
  ``R_max`` / ``R_min`` to the ``(1 - nu)`` / ``nu`` quantiles of the training distances
  as the loss sees them (per-batch projection), and then compresses the
  data into the shell ``R_min <= ||z - c|| <= R_max``: loss
  ``mean(max(0, d^2 - R_max^2) + max(0, R_min^2 - d^2))``; score
  ``(d - R_max)(d - R_min)`` (negative inside the shell, positive outside).

``nu = 0.05`` as in §5.1.1.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..train import FitResult, TrainModule, adam, fit
from .oneclass import AutoencoderModule

__all__ = ["DOHSC", "DO2HSC", "DOHSCModule", "train_dohsc", "OrthogonalProjection"]


class OrthogonalProjection(nn.Module):
    """``Z = H W`` with ``W = V diag(lam)^{-1/2}`` from ``H^T H / n = V diag(lam) V^T``, so that
    ``Z^T Z / n = I`` on the batch ``W`` was computed from.

    Eigen-directions with ``lam <= rtol * max(lam)`` (a rank-deficient batch) get weight 0, a
    pseudo-inverse: then ``Z^T Z / n`` is the identity on the other directions and zero on these.
    In training mode ``W`` is recomputed from every batch (without gradient); in eval mode
    the stored ``weight`` is used (set it on the training set with :meth:`fit`).
    """

    def __init__(self, dim: int, rtol: float = 1e-6):
        super().__init__()
        self.rtol = rtol
        self.register_buffer("weight", torch.eye(dim))

    @torch.no_grad()
    def whitening(self, h: Tensor) -> Tensor:
        hd = h.double()
        lam, vecs = torch.linalg.eigh(hd.T @ hd / len(h))
        kept = lam > self.rtol * lam.max()
        scale = torch.where(kept, lam.clamp_min(torch.finfo(lam.dtype).tiny).rsqrt(), torch.zeros_like(lam))
        return (vecs * scale).to(h.dtype)

    @torch.no_grad()
    def rank(self, h: Tensor) -> int:
        """How many directions of ``h`` the projection keeps (its numerical rank)."""
        return int((self.whitening(h).abs().sum(0) > 0).sum())

    def forward(self, h: Tensor) -> Tensor:
        if self.training:
            self.weight.copy_(self.whitening(h))
        return h @ self.weight

    def frozen(self, h: Tensor) -> Tensor:
        """``H W`` with the stored ``W``, whatever the mode."""
        return h @ self.weight

    def per_batch(self, h: Tensor) -> Tensor:
        """``H W(H)``, the training-mode projection, without touching the stored ``W``."""
        return h @ self.whitening(h)

    @torch.no_grad()
    def fit(self, h: Tensor) -> Tensor:
        """Freeze ``W`` to the value computed on ``h`` (all training representations)."""
        self.weight.copy_(self.whitening(h))
        return self.weight


class _HypersphereNet(nn.Module):
    """Encoder + orthogonal projection (+ a linear decoder used only for pretraining)."""

    def __init__(self, in_dim: int, widths: Sequence[int] = (500, 30, 30), nu: float = 0.05,
                 init_std: float | None = 0.02):
        super().__init__()
        if not 0.0 < nu < 0.5:
            raise ValueError(f"nu (percentile parameter) must be in (0, 0.5), got {nu}")
        if len(widths) < 2:
            raise ValueError(f"widths needs at least two layers (hidden, ..., latent), got {widths}")
        sizes = [in_dim, *widths]
        self.layers = nn.ModuleList(nn.Linear(a, b, bias=False) for a, b in zip(sizes[:-1], sizes[1:]))
        self.projection = OrthogonalProjection(widths[-1])
        self.decoder = nn.Linear(widths[-1], in_dim, bias=False)
        if init_std is not None:  # the original initialises every linear layer with N(0, 0.02^2)
            for lin in [*self.layers, self.decoder]:
                nn.init.normal_(lin.weight, 0.0, init_std)
        self.nu = nu
        self.register_buffer("center", torch.zeros(widths[-1]))

    def features(self, x: Tensor) -> Tensor:
        """``H``: the encoder output before the orthogonal projection."""
        h = F.leaky_relu(self.layers[0](x))
        for lin in self.layers[1:]:
            h = lin(h)
        return h

    def forward(self, x: Tensor) -> Tensor:
        """Projected embedding ``Z``."""
        return self.projection(self.features(x))

    def reconstruct(self, x: Tensor) -> Tensor:
        return self.decoder(self(x))

    def encoder_parameters(self) -> list[nn.Parameter]:
        return [p for lin in self.layers for p in lin.parameters()]

    def sq_dist(self, x: Tensor) -> Tensor:
        """``||z - c||^2`` as the training loss sees it (projection recomputed per batch in training mode)."""
        return (self(x) - self.center).pow(2).sum(1)

    def frozen_sq_dist(self, x: Tensor) -> Tensor:
        """``||z - c||^2`` with the frozen projection (what the scores use)."""
        return (self.projection.frozen(self.features(x)) - self.center).pow(2).sum(1)

    @torch.no_grad()
    def distances(self, x: Tensor, batch_size: int | None = None) -> Tensor:
        """``||z - c||`` with the frozen projection, or, given ``batch_size``, with the projection
        recomputed on each batch as in training (the distances the training loss sees)."""
        if batch_size is None:
            return self.frozen_sq_dist(x).sqrt()
        z = torch.cat([self.projection.per_batch(self.features(xb)) for xb in x.split(batch_size)])
        return (z - self.center).pow(2).sum(1).sqrt()

    @torch.no_grad()
    def fit_projection(self, x: Tensor) -> None:
        """Freeze the orthogonal projection to the one computed on all of ``x``."""
        self.projection.fit(self.features(x))

    @torch.no_grad()
    def init_center(self, x: Tensor, eps: float = 0.1) -> Tensor:
        """``c`` = mean projected embedding of ``x``; entries closer to 0 than ``eps`` become ``+-eps``
        (the Deep SVDD guard the original uses)."""
        self.fit_projection(x)
        c = self.projection.frozen(self.features(x)).mean(0)
        c[(c.abs() < eps) & (c < 0)] = -eps
        c[(c.abs() < eps) & (c >= 0)] = eps
        self.center.copy_(c)
        return c

    def ball_loss(self, x: Tensor) -> Tensor:
        """DOHSC's soft-boundary loss at ``R = 0``: ``(1/nu) mean ||z - c||^2``."""
        return self.sq_dist(x).mean() / self.nu


class DOHSC(_HypersphereNet):
    """Deep Orthogonal Hypersphere Compression: one hypersphere of radius ``radius``."""

    def __init__(self, in_dim: int, widths: Sequence[int] = (500, 30, 30), nu: float = 0.05,
                 init_std: float | None = 0.02):
        super().__init__(in_dim, widths, nu, init_std)
        self.register_buffer("radius", torch.tensor(float("nan")))

    def loss(self, x: Tensor) -> Tensor:
        return self.ball_loss(x)

    @torch.no_grad()
    def fit_radii(self, x: Tensor, batch_size: int | None = None) -> None:
        """``R`` = ``(1 - nu)``-quantile of the training distances ``||z - c||`` (see ``distances``)."""
        d = self.distances(x, batch_size).double()
        self.radius.fill_(torch.quantile(d, 1.0 - self.nu).item())

    def score(self, x: Tensor) -> Tensor:
        """``||z - c||^2 - R^2`` (positive outside the hypersphere; higher = more anomalous)."""
        return self.frozen_sq_dist(x) - self.radius**2


class DO2HSC(_HypersphereNet):
    """Deep Orthogonal Bi-Hypersphere Compression: the shell ``r_min <= ||z - c|| <= r_max``."""

    def __init__(self, in_dim: int, widths: Sequence[int] = (500, 30, 30), nu: float = 0.05,
                 init_std: float | None = 0.02):
        super().__init__(in_dim, widths, nu, init_std)
        self.register_buffer("r_max", torch.tensor(float("nan")))
        self.register_buffer("r_min", torch.tensor(float("nan")))

    def check_radii(self) -> None:
        """A RuntimeError unless ``r_min`` / ``r_max`` are set (they are NaN until :meth:`fit_radii`).  Called
        once before training (:class:`DOHSCModule`), not in :meth:`loss`: on a GPU every step would wait."""
        if not (torch.isfinite(self.r_max) and torch.isfinite(self.r_min)):
            raise RuntimeError("r_min/r_max are not set: train with train_dohsc() or call fit_radii(x_train)")

    def loss(self, x: Tensor) -> Tensor:
        """``mean(max(0, d^2 - r_max^2) + max(0, r_min^2 - d^2))``: zero for points inside the shell
        (NaN while the radii are not set, see :meth:`check_radii`)."""
        d2 = self.sq_dist(x)
        return (F.relu(d2 - self.r_max**2) + F.relu(self.r_min**2 - d2)).mean()

    @torch.no_grad()
    def fit_radii(self, x: Tensor, batch_size: int | None = None) -> None:
        """``r_max`` / ``r_min`` = ``(1 - nu)`` / ``nu`` quantiles of the training distances ``||z - c||``
        (see ``distances``)."""
        d = self.distances(x, batch_size).double()
        self.r_max.fill_(torch.quantile(d, 1.0 - self.nu).item())
        self.r_min.fill_(torch.quantile(d, self.nu).item())

    def score(self, x: Tensor) -> Tensor:
        """``(d - r_max)(d - r_min)`` with ``d = ||z - c||``: negative inside the shell, positive outside."""
        d = self.frozen_sq_dist(x).sqrt()
        return (d - self.r_max) * (d - self.r_min)


# --------------------------------------------------------------------------
# Lightning modules and training
# --------------------------------------------------------------------------
class DOHSCModule(TrainModule):
    """One-class stage of DOHSC / DO2HSC: minimises ``model.loss`` (or the DOHSC ball loss when
    ``objective="ball"``, DO2HSC's warm-up) over the encoder weights."""

    def __init__(self, model: DOHSC | DO2HSC, lr: float = 1e-4, weight_decay: float = 1e-6,
                 objective: str = "model"):
        super().__init__(lr, weight_decay)
        if objective not in ("model", "ball"):
            raise ValueError(f"objective must be 'model' or 'ball', got {objective!r}")
        self.model, self.objective = model, objective

    def configure_optimizers(self):
        return adam(self.model.encoder_parameters(), self.lr, self.weight_decay)

    def on_train_start(self) -> None:
        if self.objective == "model" and isinstance(self.model, DO2HSC):
            self.model.check_radii()

    def loss(self, x: Tensor) -> Tensor:
        return self.model.ball_loss(x) if self.objective == "ball" else self.model.loss(x)


def train_dohsc(model: DOHSC | DO2HSC, x_train: Tensor, *, lr: float = 1e-4, weight_decay: float = 1e-6,
                pretrain_epochs: int = 10, pretrain_lr: float = 1e-3, warmup_epochs: int = 20,
                **fit_kwargs) -> FitResult:
    """Train DOHSC or DO2HSC as the original does, with :func:`usfkit.train.fit` for every stage.

    1. autoencoder pretraining for ``pretrain_epochs`` (lr ``pretrain_lr``), then ``c``;
    2. DO2HSC only: ``warmup_epochs`` of the DOHSC objective, then ``r_min`` / ``r_max``;
    3. the one-class objective (``fit_kwargs``: ``max_epochs``, ``batch_size``, ``patience``, ...);
    4. the projection is frozen on ``x_train`` and the radii set from the final training distances
       under that frozen projection (these are what the model's ``score`` uses).

    The returned result's ``wall_time_s`` covers all stages.
    """
    if not isinstance(model, (DOHSC, DO2HSC)):
        raise TypeError(f"train_dohsc trains DOHSC or DO2HSC models, got {type(model).__name__}")
    desc = fit_kwargs.pop("desc", type(model).__name__)
    extra_s = 0.0
    if pretrain_epochs > 0:
        pre = {**fit_kwargs, "max_epochs": pretrain_epochs, "desc": desc + " (pretrain)"}
        res = fit(AutoencoderModule(model, pretrain_lr, weight_decay), x_train, **pre)
        extra_s += res.wall_time_s
        if not res.ok:
            return res
    model.init_center(x_train)
    if isinstance(model, DO2HSC):
        if warmup_epochs > 0:
            warm = {**fit_kwargs, "max_epochs": warmup_epochs, "desc": desc + " (DOHSC warm-up)"}
            res = fit(DOHSCModule(model, lr, weight_decay, objective="ball"), x_train, **warm)
            extra_s += res.wall_time_s
            if not res.ok:
                res.wall_time_s = extra_s
                return res
        # radii for the shell loss from the distances the loss sees: projection recomputed per batch
        model.fit_radii(x_train, batch_size=fit_kwargs.get("batch_size", 128))  # 128: fit's default
    result = fit(DOHSCModule(model, lr, weight_decay), x_train, desc=desc, **fit_kwargs)
    result.wall_time_s += extra_s  # the wall time covers every stage
    if result.ok:
        model.fit_projection(x_train)
        model.fit_radii(x_train)
    return result
