"""CFlow head (Gudovskiy et al. 2022) with a ``coupling=`` switch (paper §5.2, App. E).

One conditional flow per backbone layer acts on single feature vectors ("fibers"):
8 steps, each conditioned on a 128-d 2-D sin/cos positional encoding of the fiber's
location (anomalib's fixed encoding), subnets ``Linear(n, 2n) -> ReLU -> Linear``,
log-scales soft-clipped at 1.9.  The condition enters the coupling as extra channels
that the mask always keeps: the coupling of :mod:`usfkit.flows` sees
``[x, c]``, transforms half of ``x`` and leaves ``c`` untouched.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..couplings import (ChannelPermutation, GlobalAffine, StepSequence, check_coupling, make_coupling, make_lu,
                         scale_log_prior)
from .anomaly_map import cflow_anomaly_map
from .loss import cflow_loss, log_prob_per_dim


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


class ConditionalFlowStep(nn.Module):
    """AllInOneBlock with a condition: ``x -> P(s * C([x, c]) + b)``, with
    ``C`` replaced by ``A^{-1} o C(. | c) o A`` for ``"additive_lu"`` (A acts on x only)."""

    def __init__(self, coupling: str, channels: int, cond_dim: int, clamp: float, lu_fixed_diag: bool = True):
        super().__init__()
        self.channels = channels
        self.coupling = make_coupling(coupling, channels, fc_subnet, clamp, cond_channels=cond_dim)
        self.lu = make_lu(coupling, channels, lu_fixed_diag)
        self.scale = GlobalAffine(channels)
        self.permute = ChannelPermutation(channels)
        self.constant_det = self.coupling.constant_det

    def forward(self, x: Tensor, cond: Tensor) -> tuple[Tensor, Tensor]:
        h = x if self.lu is None else self.lu(x)[0]
        h, ld_c = self.coupling(torch.cat([h, cond], 1))
        h = h[:, :self.channels]
        h = h if self.lu is None else self.lu.inverse(h)  # ln|det A| cancels with ln|det A^{-1}|
        h, ld_s = self.scale(h)
        return self.permute(h)[0], ld_c + ld_s

    def inverse(self, y: Tensor, cond: Tensor) -> Tensor:
        h = self.scale.inverse(self.permute.inverse(y))
        h = h if self.lu is None else self.lu(h)[0]
        h = self.coupling.inverse(torch.cat([h, cond], 1))[:, :self.channels]
        return h if self.lu is None else self.lu.inverse(h)


class CflowHead(nn.Module):
    """``feature_shapes``: ``[(C, H, W), ...]`` of the backbone layers."""

    def __init__(self, feature_shapes: list[tuple[int, int, int]], coupling: str = "affine", blocks: int = 8,
                 clamp: float = 1.9, condition_dim: int = 128, lu_fixed_diag: bool = True,
                 prior_sigma: float | None = None, n_train: int = 1):
        super().__init__()
        self.coupling = check_coupling(coupling)
        self.feature_shapes = [tuple(s) for s in feature_shapes]
        self.condition_dim, self.prior_sigma, self.n_train = condition_dim, prior_sigma, n_train
        self.decoders = nn.ModuleList(
            StepSequence([ConditionalFlowStep(coupling, c, condition_dim, clamp, lu_fixed_diag) for _ in range(blocks)])
            for c, _, _ in self.feature_shapes)

    @property
    def constant_det(self) -> bool:
        return all(d.constant_det for d in self.decoders)

    def fibers(self, feature: Tensor) -> tuple[Tensor, Tensor]:
        """``[B, C, h, w]`` -> feature vectors ``[B*h*w, C]`` and their conditions ``[B*h*w, P]``."""
        b, c, h, w = feature.shape
        pos = positional_encoding_2d(self.condition_dim, h, w).to(feature)
        cond = pos.permute(1, 2, 0).reshape(h * w, -1).repeat(b, 1)
        return feature.permute(0, 2, 3, 1).reshape(-1, c), cond

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

    def penalty(self) -> Tensor:
        """``-ln prior / n_train`` (zero unless ``prior_sigma`` is set)."""
        if self.prior_sigma is None:
            return torch.zeros(())
        return -sum(scale_log_prior(d, self.prior_sigma, 1) for d in self.decoders) / self.n_train

    def loss(self, features: list[Tensor]) -> Tensor:
        """Sum over layers of the mean fiber loss ``-log sigmoid(ln p / C)``."""
        loss = sum(cflow_loss(self.fiber_log_prob(k, *self.fibers(f))).mean() for k, f in enumerate(features))
        return loss + self.penalty().to(loss)

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
        size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
        with torch.no_grad():
            return cflow_anomaly_map(self.log_prob_maps(features), size)

    def image_score(self, anomaly_map: Tensor) -> Tensor:
        return anomaly_map.amax(dim=(-2, -1))
