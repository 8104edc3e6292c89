"""FastFlow head (Yu et al. 2021) with a ``coupling=`` switch (paper §5.2, App. E).

Per backbone scale: a learned LayerNorm over ``[C, H, W]`` (as anomalib), then a
:class:`usfkit.models.flows.Chain` of ``blocks`` flow steps (:func:`usfkit.models.heads.couplings.flow_step`)
alternating 3x3 and 1x1 convolutional subnets (step 0: 3x3) whose hidden width is
``hidden_ratio`` times their input width (App. E: as wide as their inputs).  Latents of
all scales are independent ``N(0, I)``.  ``prior_sigma`` puts the App. B.2 prior on the
steps' global scalings; the loss subtracts it divided by ``n_train``.
"""
from __future__ import annotations

from torch import Tensor, nn

from ...flows import Chain
from ..base import FlowHead, size_pair
from ..couplings import flow_step
from .anomaly_map import fastflow_anomaly_map
from .loss import fastflow_loss

__all__ = ["FastflowHead", "conv_subnet"]


def conv_subnet(kernel_size: int, hidden_ratio: float):
    """FastFlow's subnet: conv(k) -> ReLU -> conv(k), hidden = ``hidden_ratio * in``."""
    def make(in_channels: int, out_channels: int) -> nn.Module:
        hidden = int(in_channels * hidden_ratio)
        pad = kernel_size // 2
        return nn.Sequential(nn.Conv2d(in_channels, hidden, kernel_size, padding=pad), nn.ReLU(),
                             nn.Conv2d(hidden, out_channels, kernel_size, padding=pad))
    return make


class FastflowHead(FlowHead):
    """``feature_shapes``: ``[(C, H, W), ...]`` of the backbone scales."""

    def __init__(self, feature_shapes: list[tuple[int, int, int]], coupling: str = "affine",
                 blocks: int = 8, hidden_ratio: float = 1.0, clamp: float = 2.0,
                 conv3x3_only: bool = False, lu_fixed_diag: bool = True,
                 prior_sigma: float | None = None, n_train: int = 1):
        super().__init__(feature_shapes, coupling, prior_sigma, n_train)
        self.norms = nn.ModuleList(nn.LayerNorm(list(shape)) for shape in self.feature_shapes)
        self.flows = nn.ModuleList(
            Chain([flow_step(coupling, c, conv_subnet(1 if i % 2 and not conv3x3_only else 3, hidden_ratio), clamp,
                             lu_fixed_diag=lu_fixed_diag, prior_sigma=prior_sigma, spatial=h * w)
                   for i in range(blocks)])
            for c, h, w in self.feature_shapes)

    def chains(self) -> nn.ModuleList:
        return self.flows

    def flow_inputs(self, features: list[Tensor]) -> list[Tensor]:
        """What the flows transform: the layer-normalised features."""
        return [norm(f) for norm, f in zip(self.norms, features)]

    def forward(self, features: list[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        """Per-scale latents ``z`` and log-determinants ``ln|det J|`` (shape ``[B]``)."""
        out = [flow(x) for flow, x in zip(self.flows, self.flow_inputs(features))]
        return [z for z, _ in out], [ld for _, ld in out]

    def inverse(self, latents: list[Tensor]) -> list[Tensor]:
        return [flow.inverse(z) for flow, z in zip(self.flows, latents)]

    def likelihood_loss(self, features: list[Tensor]) -> Tensor:
        return fastflow_loss(*self(features))

    def anomaly_map(self, features: list[Tensor], image_size) -> Tensor:
        return fastflow_anomaly_map(self(features)[0], size_pair(image_size))
