"""Deep SVDD (Ruff et al., ICML 2018), as the paper's Eq. 2 states it.

An MLP encoder ``omega(x, w)`` maps inputs to ``R^k``; training minimises the mean
squared distance to a fixed centre ``c`` plus weight decay (set through the
optimiser).  The centre is the mean of the initial encoder outputs, after
optional autoencoder pretraining.  The anti-collapse recipe — no bias terms,
unbounded activations — is the default; ``bias=True`` / ``activation="sigmoid"``
give the variants that collapse (chapter 3).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

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
