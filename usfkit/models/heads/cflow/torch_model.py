"""CFlow head (Gudovskiy et al. 2022) with a ``coupling=`` switch (paper §5.2, App. E).

One conditional flow per backbone layer acts on single feature vectors ("fibers"):
8 steps, each conditioned on a 128-d 2-D sin/cos positional encoding of the fiber's
location (anomalib's fixed encoding), subnets ``Linear(n, 2n) -> ReLU -> Linear``,
log-scales soft-clipped at 1.9.  Each decoder is a :class:`usfkit.models.flows.Chain` of
:func:`usfkit.models.heads.couplings.flow_step` steps; the encoding is the chain's ``context``, which
the couplings' subnets see next to the kept half of the fiber.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ...flows import Chain
from ..base import FlowHead, size_pair
from ..couplings import flow_step
from .anomaly_map import cflow_anomaly_map
from .loss import cflow_loss, log_prob_per_dim

__all__ = ["CflowHead", "fc_subnet", "positional_encoding_2d"]


def fc_subnet(in_features: int, out_features: int) -> nn.Module:
    return nn.Sequential(nn.Linear(in_features, 2 * in_features), nn.ReLU(), nn.Linear(2 * in_features, out_features))


def positional_encoding_2d(dim: int, height: int, width: int) -> Tensor:
    """CFlow's ``[dim, h, w]`` encoding: sin/cos of the column in the first half of the
    channels, of the row in the second half."""
    if dim % 4:
        raise ValueError(f"condition_dim must be a multiple of 4, got {dim}")
    half = dim // 2
    freq = torch.exp(torch.arange(0.0, half, 2) * -(math.log(1e4) / half))
    col = torch.arange(0.0, width)[:, None] * freq  # [w, half/2]
    row = torch.arange(0.0, height)[:, None] * freq  # [h, half/2]
    pe = torch.zeros(dim, height, width)
    pe[0:half:2] = torch.sin(col).T[:, None, :].expand(-1, height, -1)
    pe[1:half:2] = torch.cos(col).T[:, None, :].expand(-1, height, -1)
    pe[half::2] = torch.sin(row).T[:, :, None].expand(-1, -1, width)
    pe[half + 1::2] = torch.cos(row).T[:, :, None].expand(-1, -1, width)
    return pe


class CflowHead(FlowHead):
    """``feature_shapes``: ``[(C, H, W), ...]`` of the backbone layers."""

    def __init__(self, feature_shapes: list[tuple[int, int, int]], coupling: str = "affine", blocks: int = 8,
                 clamp: float = 1.9, condition_dim: int = 128, lu_fixed_diag: bool = True,
                 prior_sigma: float | None = None, n_train: int = 1):
        super().__init__(feature_shapes, coupling, prior_sigma, n_train)
        self.condition_dim = condition_dim
        self._encodings: dict[tuple, Tensor] = {}
        self.decoders = nn.ModuleList(
            Chain([flow_step(coupling, c, fc_subnet, clamp, context_channels=condition_dim,
                             lu_fixed_diag=lu_fixed_diag, prior_sigma=prior_sigma) for _ in range(blocks)])
            for c, _, _ in self.feature_shapes)

    def chains(self) -> nn.ModuleList:
        return self.decoders

    def fibers(self, feature: Tensor) -> tuple[Tensor, Tensor]:
        """``[B, C, h, w]`` -> feature vectors ``[B*h*w, C]`` and their conditions ``[B*h*w, P]``."""
        b, c, h, w = feature.shape
        cond = self.encoding(h, w, feature).permute(1, 2, 0).reshape(h * w, -1).repeat(b, 1)
        return feature.permute(0, 2, 3, 1).reshape(-1, c), cond

    def encoding(self, height: int, width: int, like: Tensor) -> Tensor:
        """:func:`positional_encoding_2d` on ``like``'s device and dtype, built once per size and kept: built
        every step it would be copied from the host at every step, and on a GPU such a copy waits for the
        queue (not a buffer: a checkpoint does not change)."""
        key = (height, width, like.device, like.dtype)
        if key not in self._encodings:
            self._encodings[key] = positional_encoding_2d(self.condition_dim, height, width).to(like)
        return self._encodings[key]

    def flow_inputs(self, features: list[Tensor]) -> list[Tensor]:
        return [self.fibers(f)[0] for f in features]

    def forward(self, features: list[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        """Per layer the latents ``[B*h*w, C]`` and log-determinants ``[B*h*w]`` of all fibers."""
        out = [dec(*self.fibers(f)) for dec, f in zip(self.decoders, features)]
        return [z for z, _ in out], [ld for _, ld in out]

    def inverse(self, latents: list[Tensor]) -> list[Tensor]:
        """Fibers from latents (the fibers' order fixes their positions, as in ``fibers``)."""
        out = []
        for dec, z, (_, h, w) in zip(self.decoders, latents, self.feature_shapes):
            cond = positional_encoding_2d(self.condition_dim, h, w).to(z).permute(1, 2, 0).reshape(h * w, -1)
            out.append(dec.inverse(z, cond.repeat(len(z) // (h * w), 1)))
        return out

    def fiber_log_prob(self, layer: int, x: Tensor, cond: Tensor) -> Tensor:
        """``ln p(x) / C`` of fibers ``x`` of one layer."""
        return log_prob_per_dim(*self.decoders[layer](x, cond))

    def likelihood_loss(self, features: list[Tensor]) -> Tensor:
        """Sum over layers of the mean fiber loss ``-log sigmoid(ln p / C)``; :meth:`FlowHead.loss
        <usfkit.models.heads.base.FlowHead.loss>` subtracts the log-prior / ``n_train`` (training steps per fiber
        batch: :class:`~usfkit.models.heads.cflow.lightning_model.CflowModule`)."""
        return sum(cflow_loss(self.fiber_log_prob(k, *self.fibers(f))).mean() for k, f in enumerate(features))

    def log_prob_maps(self, features: list[Tensor], chunk: int = 16) -> list[Tensor]:
        """Per layer ``ln p / C`` as ``[B, h, w]`` (computed ``chunk`` images at a time)."""
        maps = []
        for k, f in enumerate(features):
            parts = []
            for part in f.split(chunk):
                parts.append(self.fiber_log_prob(k, *self.fibers(part)).reshape(part.shape[0], *part.shape[2:]))
            maps.append(torch.cat(parts))
        return maps

    def anomaly_map(self, features: list[Tensor], image_size) -> Tensor:
        with torch.no_grad():
            return cflow_anomaly_map(self.log_prob_maps(features), size_pair(image_size))
