"""Deep SVDD (Ruff et al., ICML 2018), as the paper's Eq. 2 states it.

An MLP encoder ``omega(x, w)`` maps inputs to ``R^k``; training minimises the mean
squared distance to a fixed centre ``c`` plus weight decay (set through the
optimiser).  The centre is the mean of the initial encoder outputs, after
optional autoencoder pretraining.  The anti-collapse recipe — no bias terms,
unbounded activations — is the default; ``bias=True`` / ``activation="sigmoid"``
give the variants that collapse (chapter 3).

Beside the model, its Lightning modules: :class:`SVDDModule` (the one-class loss) and
:class:`AutoencoderModule` (the pretraining that DOHSC and DO2HSC share), and :func:`train_svdd`,
which runs both stages.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from ..train import FitResult, TrainModule, adam, fit

__all__ = ["DeepSVDD", "SVDDModule", "AutoencoderModule", "train_svdd", "svdd_widths", "ACTIVATIONS", "BOUNDED"]

ACTIVATIONS = {"leaky_relu": lambda: nn.LeakyReLU(0.1), "relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}
BOUNDED = {"tanh", "sigmoid"}


def svdd_widths(dim: int, depth: int) -> list[int]:
    """App. C's encoder schedule: depth 2 -> [d, d], 3 -> [d, 2d, d], ..., 6 -> [d, 16d, 8d, 4d, 2d, d]."""
    if depth < 2:
        raise ValueError(f"depth must be >= 2, got {depth}")
    return [dim] + [2**i * dim for i in range(depth - 2, -1, -1)]


def _mlp(sizes: Sequence[int], bias: bool, activation: str, final_activation: bool) -> nn.Sequential:
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
    mods: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        mods.append(nn.Linear(a, b, bias=bias))
        if i < len(sizes) - 2 or final_activation:
            mods.append(ACTIVATIONS[activation]())
    return nn.Sequential(*mods)


class DeepSVDD(nn.Module):
    """One-class Deep SVDD with an MLP encoder of layer widths ``widths``.

    ``bias=False`` and an unbounded ``activation`` follow Ruff et al.'s recipe against
    collapse.  With a bounded activation, it is also applied to the output layer
    (the network's output is then bounded, which is what makes that variant collapse).
    """

    def __init__(self, in_dim: int, widths: Sequence[int], bias: bool = False, activation: str = "leaky_relu"):
        super().__init__()
        bounded = activation in BOUNDED
        self.encoder = _mlp([in_dim, *widths], bias, activation, final_activation=bounded)
        self.decoder = _mlp([*reversed(widths), in_dim], bias, activation, final_activation=False)
        self.register_buffer("center", torch.zeros(widths[-1]))
        self.bias, self.activation = bias, activation

    def forward(self, x: Tensor) -> Tensor:
        return self.encoder(x)

    def reconstruct(self, x: Tensor) -> Tensor:
        return self.decoder(self.encoder(x))

    @torch.no_grad()
    def init_center(self, x: Tensor, eps: float = 0.1) -> Tensor:
        """``c`` = mean initial embedding; entries closer to 0 than ``eps`` are pushed to
        ``+-eps`` (Ruff et al.'s guard: a zero coordinate is trivially reachable)."""
        c = self.encoder(x).mean(0)
        c[(c.abs() < eps) & (c < 0)] = -eps
        c[(c.abs() < eps) & (c >= 0)] = eps
        self.center.copy_(c)
        return c

    def score(self, x: Tensor) -> Tensor:
        """Anomaly score ``||omega(x) - c||^2`` (higher = more anomalous)."""
        return (self.encoder(x) - self.center).pow(2).sum(1)

    def loss(self, x: Tensor) -> Tensor:
        """Eq. 2 without the weight-decay term (weight decay lives in the optimiser)."""
        return self.score(x).mean()


# --------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------
class SVDDModule(TrainModule):
    """Deep SVDD: mean squared distance to ``c``; ``weight_decay`` is Eq. 2's lambda."""

    def __init__(self, model: DeepSVDD, lr: float = 1e-3, weight_decay: float = 1e-6):
        super().__init__(lr, weight_decay)
        self.model = model

    def configure_optimizers(self):
        return adam(self.model.encoder.parameters(), self.lr, self.weight_decay)

    def loss(self, x: Tensor) -> Tensor:
        return self.model.loss(x)


class AutoencoderModule(TrainModule):
    """Autoencoder pretraining of a one-class encoder (Deep SVDD, DOHSC, DO2HSC): the squared
    reconstruction error summed over features, averaged over the batch.  ``model`` needs a
    ``reconstruct(x)`` method."""

    def __init__(self, model: nn.Module, lr: float = 1e-3, weight_decay: float = 1e-6):
        super().__init__(lr, weight_decay)
        self.model = model

    def loss(self, x: Tensor) -> Tensor:
        return (self.model.reconstruct(x) - x).pow(2).sum(1).mean()


def train_svdd(model: DeepSVDD, x_train: Tensor, x_val: Tensor | None = None, *, lr: float = 1e-3,
               weight_decay: float = 1e-6, pretrain_epochs: int = 0, **kwargs) -> FitResult:
    """Deep SVDD as Ruff et al.: optional autoencoder pretraining, then ``c`` from the
    initial encoder mean, then the one-class loss; see :func:`usfkit.train.fit` for the options."""
    pretrain_s = 0.0
    if pretrain_epochs > 0:
        pre = {**kwargs, "max_epochs": pretrain_epochs, "desc": kwargs.get("desc", "svdd") + " (pretrain)"}
        pretrain_s = fit(AutoencoderModule(model, lr, weight_decay), x_train, x_val, **pre).wall_time_s
    model.init_center(x_train)
    result = fit(SVDDModule(model, lr, weight_decay), x_train, x_val, **kwargs)
    result.wall_time_s += pretrain_s  # the wall time covers both stages
    return result
