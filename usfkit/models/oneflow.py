"""OneFlow (Maziarka et al., "OneFlow: One-class flow for anomaly detection based on a
minimal volume region", IEEE TPAMI 2022, arXiv 2010.03002): a baseline of paper §5.1.

OneFlow trains a flow ``z = phi(x)`` with a *constant* Jacobian determinant so that the
ball ``{||z|| <= R}`` holding a fraction ``1 - nu`` of the training data has minimal
volume *in input space*.  The preimage of that ball has volume::

    vol = V_d * R**d / |det J_phi|,      V_d = pi**(d/2) / Gamma(d/2 + 1),

so the loss is ``ln vol = ln V_d + d ln R - ln|det J_phi|`` with ``R`` the
``(1 - nu)``-quantile of the latent norms of a batch.  OneFlow estimates that quantile
smoothly with the Bernstein-polynomial estimator (:func:`bernstein_quantile`); its
weights are concentrated on the order statistics near the quantile, so the gradient
flows only through points near the decision boundary (like support vectors).  The
anomaly score is the latent norm ``||phi(x)||`` (higher = more anomalous).

The flow is our uniformly scaling flow from :mod:`usfkit.models.flows`
(``build_flow(..., coupling="additive_lu")``: additive couplings conjugated by LU maps),
with the shared settings of §5.1.1 (4 blocks, conditioners of 4 hidden layers of width
256), so OneFlow and USFlow differ only in the objective.  The original uses
volume-preserving NICE couplings (``ln|det J| = 0``); our final LU map makes the
determinant a learnable constant, which is why ``- ln|det J|`` appears in the loss.

``nu = 0.05`` (outlier fraction allowed outside the ball) is the value of the
authors' public example code (``p = 0.05``).
"""
from __future__ import annotations

import functools
import math

import torch
from torch import Tensor, nn

from ..train import FitResult, TrainModule, fit
from .flows import Flow, build_flow

__all__ = ["OneFlow", "OneFlowModule", "train_oneflow", "bernstein_quantile", "bernstein_weights",
           "log_unit_ball_volume"]


def bernstein_quantile(values: Tensor, q: float) -> Tensor:
    """Bernstein-polynomial estimate of the ``q``-quantile of ``values`` (1-D, differentiable).

    ``Q(q) = sum_{i=1..n} C(n-1, i-1) q**(i-1) (1-q)**(n-i) * v_(i)`` with ``v_(1) <= ... <= v_(n)``
    the sorted values: a smooth weighted average of the order statistics around
    rank ``q (n-1)``, whose weights sum to one (Cheng, 1995; used by OneFlow).
    """
    if not 0.0 < q < 1.0:
        raise ValueError(f"q must lie strictly between 0 and 1, got {q}")
    if values.dim() != 1 or len(values) == 0:
        raise ValueError(f"values must be a non-empty 1-D tensor, got shape {tuple(values.shape)}")
    return (bernstein_weights(len(values), q, values.dtype, values.device) * torch.sort(values).values).sum()


@functools.lru_cache(maxsize=32)
def bernstein_weights(n: int, q: float, dtype: torch.dtype = torch.float32,
                      device: torch.device | str = "cpu") -> Tensor:
    """The weights ``C(n-1, i-1) q**(i-1) (1-q)**(n-i)``, ``i = 1..n``, of :func:`bernstein_quantile`,
    computed in float64 and kept per ``(n, q, dtype, device)``: a training run needs two (the batch
    size and its last batch), so they are not rebuilt every step."""
    i = torch.arange(n, dtype=torch.float64, device=device)  # i - 1 in the formula
    log_binom = math.lgamma(n) - torch.lgamma(i + 1) - torch.lgamma(n - i)
    return torch.exp(log_binom + i * math.log(q) + (n - 1 - i) * math.log1p(-q)).to(dtype)


def log_unit_ball_volume(d: int) -> float:
    """``ln V_d`` with ``V_d = pi**(d/2) / Gamma(d/2 + 1)`` the volume of the unit ball in ``R^d``."""
    return 0.5 * d * math.log(math.pi) - math.lgamma(0.5 * d + 1)


class OneFlow(nn.Module):
    """OneFlow with a uniformly scaling flow; the hypersphere is centred at 0 in latent space.

    ``score(x) = ||phi(x)||``.  After training, ``radius`` holds the empirical
    ``(1 - nu)``-quantile of the training scores (the decision boundary; NaN before).
    """

    def __init__(self, dim: int, nu: float = 0.05, blocks: int = 4, hidden: int = 256, layers: int = 4,
                 seed: int = 0):
        super().__init__()
        if not 0.0 < nu < 1.0:
            raise ValueError(f"nu (fraction of training data outside the ball) must be in (0, 1), got {nu}")
        self.dim, self.nu = dim, nu
        self.flow: Flow = build_flow(dim, coupling="additive_lu", blocks=blocks, hidden=hidden, layers=layers,
                                     center=0.0, scale=1.0, seed=seed)
        self.register_buffer("radius", torch.tensor(float("nan")))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Latent ``z = phi(x)`` and ``ln|det J_phi|`` (the same for every input)."""
        return self.flow(x)

    def score(self, x: Tensor) -> Tensor:
        """Anomaly score: the latent norm ``||phi(x)||`` (higher = more anomalous)."""
        return self.flow.latent_norm(x)

    def log_volume(self, x: Tensor) -> Tensor:
        """``ln vol`` of the input-space region ``phi^{-1}({||z|| <= R})`` with ``R`` the Bernstein
        ``(1 - nu)``-quantile of the latent norms of ``x``: OneFlow's loss."""
        z, logdet = self.flow(x)
        radius = bernstein_quantile(z.flatten(1).norm(dim=1), 1.0 - self.nu)
        return log_unit_ball_volume(self.dim) + self.dim * torch.log(radius) - logdet.mean()

    def loss(self, x: Tensor) -> Tensor:
        return self.log_volume(x)

    @torch.no_grad()
    def fit_radius(self, x: Tensor) -> Tensor:
        """Set ``radius`` to the empirical ``(1 - nu)``-quantile of the scores of ``x``."""
        self.radius.fill_(torch.quantile(self.score(x).double(), 1.0 - self.nu).item())
        return self.radius

    @torch.no_grad()
    def inside(self, x: Tensor) -> Tensor:
        """Boolean mask: ``x`` lies inside the learned minimal-volume region."""
        if not torch.isfinite(self.radius):
            raise RuntimeError("radius is not set: train the model with train_oneflow() or call fit_radius(x_train)")
        return self.score(x) <= self.radius


class OneFlowModule(TrainModule):
    """Lightning glue: minimise the log-volume of the ``(1 - nu)`` region (Adam, §5.1.1).

    A long run compiles the flow (:func:`usfkit.train.compiled_loss`), not the whole loss: the
    quantile's few operations stay eager.  At the start the conjugating LU maps' gradients are zero
    up to rounding (each block is the identity), about 1e-7, and Adam, which divides a gradient by
    its own size, turns those residues into steps as large as the learning rate: rounding steers the
    first steps.  Compiled as a whole, the norm and quantile's fused backward rounds otherwise than
    eager code and the run goes elsewhere (epoch losses about 1 % apart after three epochs, as for
    an eager rewrite with the same maths, benchmarks/README.md); with the flow compiled alone the
    gradients round as eager ones do and the epoch losses agree to 4e-7."""

    compilable = True

    def __init__(self, model: OneFlow, lr: float = 1e-4, weight_decay: float = 0.0):
        super().__init__(lr, weight_decay)
        self.model = model

    def compile_target(self) -> tuple[nn.Module, str]:
        return self.model.flow, "forward"

    def loss(self, x: Tensor) -> Tensor:
        return self.model.loss(x)

    def diagnosis(self) -> str:
        return (" OneFlow's log-volume diverged: lower the learning rate or use a larger batch "
                "(the quantile estimate needs enough points beyond the boundary).")


def train_oneflow(model: OneFlow, x_train: Tensor, *, lr: float = 1e-4, weight_decay: float = 0.0,
                  **fit_kwargs) -> FitResult:
    """Train OneFlow with :func:`usfkit.train.fit` (``fit_kwargs``: ``max_epochs``, ``batch_size``,
    ``patience``, ``x_val``, ...), then set the decision radius on ``x_train``."""
    result = fit(OneFlowModule(model, lr, weight_decay), x_train, **fit_kwargs)
    if result.ok:
        model.fit_radius(x_train)
    return result
