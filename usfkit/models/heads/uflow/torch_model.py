"""U-Flow head (Tailanian et al. 2024) with a ``coupling=`` switch (paper §5.2, App. E).

A U-shaped multi-scale flow over the backbone's scales (finest first).  Starting at
the coarsest scale: ``blocks`` (4) steps with subnets alternating 3x3 / 1x1 convolutions
of full width, then the channels are split: ``c // 8 * 4`` go up (an invertible 2x
pixel shuffle, ``4c' x h x w -> c' x 2h x 2w``) and are concatenated to the next finer
scale's features, the rest leave as that scale's latent.  The finest stage's whole
output is the finest latent.  All latents are ``N(0, I)`` jointly; the log-determinant
is the sum over stages.  The pixel shuffle is FrEIA's ``IRevNetUpsampling`` as anomalib uses it
(its default backend puts input channel ``4c + 2i + j`` at offset ``(i, j)`` of output channel ``c``,
as ``pixel_shuffle`` does): with affine couplings the head is anomalib's U-Flow graph, latent for
latent (tests/test_image_freia_parity.py).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ...flows import Chain
from ..base import FlowHead, size_pair
from ..couplings import flow_step
from .anomaly_map import uflow_anomaly_map
from .loss import uflow_loss

__all__ = ["UflowHead", "conv_subnet"]


def conv_subnet(kernel_size: int, hidden_ratio: float):
    """U-Flow's subnet: conv(k, "same") -> ReLU -> conv(k, "same")."""
    def make(in_channels: int, out_channels: int) -> nn.Module:
        hidden = int(in_channels * hidden_ratio)
        return nn.Sequential(nn.Conv2d(in_channels, hidden, kernel_size, padding="same"), nn.ReLU(),
                             nn.Conv2d(hidden, out_channels, kernel_size, padding="same"))
    return make


class UflowHead(FlowHead):
    """``feature_shapes``: ``[(C, H, W), ...]`` finest first, each scale half the size of
    the previous.  ``layer_norm``: a learned LayerNorm on each scale's features (anomalib
    does this for CNN backbones; MS-CaiT features are already normalised by CaiT)."""

    def __init__(self, feature_shapes: list[tuple[int, int, int]], coupling: str = "affine", blocks: int = 4,
                 clamp: float = 2.0, hidden_ratio: float = 1.0, layer_norm: bool = False,
                 lu_fixed_diag: bool = True, prior_sigma: float | None = None, n_train: int = 1):
        super().__init__(feature_shapes, coupling, prior_sigma, n_train)
        for (_, h, w), (_, h2, w2) in zip(self.feature_shapes, self.feature_shapes[1:]):
            if (h, w) != (2 * h2, 2 * w2):
                raise ValueError(f"U-Flow needs each scale half the previous one, got {self.feature_shapes}")
        self.norms = nn.ModuleList(nn.LayerNorm(list(s)) for s in self.feature_shapes) if layer_norm else None

        def stage(channels: int, spatial: int) -> Chain:
            return Chain([flow_step(coupling, channels, conv_subnet(3 if i % 2 == 0 else 1, hidden_ratio), clamp,
                                    lu_fixed_diag=lu_fixed_diag, prior_sigma=prior_sigma, spatial=spatial)
                          for i in range(blocks)])

        stages, self.up_channels = [], []
        c = self.feature_shapes[-1][0]
        for i in reversed(range(len(self.feature_shapes))):  # coarsest to finest
            _, h, w = self.feature_shapes[i]
            stages.append(stage(c, h * w))
            if i > 0:
                up = c // 8 * 4
                self.up_channels.append(up)
                c = self.feature_shapes[i - 1][0] + up // 4
        self.stages = nn.ModuleList(stages)

    def chains(self) -> nn.ModuleList:
        return self.stages

    def flow_inputs(self, features: list[Tensor]) -> list[Tensor]:
        return [n(f) for n, f in zip(self.norms, features)] if self.norms is not None else list(features)

    def forward(self, features: list[Tensor]) -> tuple[list[Tensor], Tensor]:
        """Latents (finest first) and the total log-determinant ``[B]``."""
        inputs = self.flow_inputs(features)
        x, logdet, latents = inputs[-1], 0, []
        for k, up_c in enumerate(self.up_channels):
            y, ld = self.stages[k](x)
            logdet = logdet + ld
            up, out = y.split([up_c, y.shape[1] - up_c], 1)
            latents.append(out)
            x = torch.cat([inputs[-2 - k], F.pixel_shuffle(up, 2)], 1)
        y, ld = self.stages[-1](x)
        return [y] + latents[::-1], logdet + ld

    def inverse(self, latents: list[Tensor]) -> list[Tensor]:
        """The flow inputs (layer-normalised features) from the latents."""
        n = len(latents)
        x, inputs = self.stages[-1].inverse(latents[0]), [None] * n
        for i in range(1, n):
            c_in = self.feature_shapes[i - 1][0]
            inputs[i - 1], up = x.split([c_in, x.shape[1] - c_in], 1)
            x = self.stages[n - 1 - i].inverse(torch.cat([F.pixel_unshuffle(up, 2), latents[i]], 1))
        inputs[n - 1] = x
        return inputs

    def likelihood_loss(self, features: list[Tensor]) -> Tensor:
        return uflow_loss(*self(features))

    def anomaly_map(self, features: list[Tensor], image_size) -> Tensor:
        return uflow_anomaly_map(self(features)[0], size_pair(image_size))
