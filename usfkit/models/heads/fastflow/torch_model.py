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
from ..couplings import check_coupling, flow_step
from .anomaly_map import fastflow_anomaly_map, max_score
from .loss import fastflow_loss


def conv_subnet(kernel_size: int, hidden_ratio: float):
    """FastFlow's subnet: conv(k) -> ReLU -> conv(k), hidden = ``hidden_ratio * in``."""
    def make(in_channels: int, out_channels: int) -> nn.Module:
        hidden = int(in_channels * hidden_ratio)
        pad = kernel_size // 2
        return nn.Sequential(nn.Conv2d(in_channels, hidden, kernel_size, padding=pad), nn.ReLU(),
                             nn.Conv2d(hidden, out_channels, kernel_size, padding=pad))
    return make


class FastflowHead(nn.Module):
    """``feature_shapes``: ``[(C, H, W), ...]`` of the backbone scales."""

    def __init__(self, feature_shapes: list[tuple[int, int, int]], coupling: str = "affine",
                 blocks: int = 8, hidden_ratio: float = 1.0, clamp: float = 2.0,
                 conv3x3_only: bool = False, lu_fixed_diag: bool = True,
                 prior_sigma: float | None = None, n_train: int = 1):
        super().__init__()
        self.coupling = check_coupling(coupling)
        self.feature_shapes = [tuple(s) for s in feature_shapes]
        self.prior_sigma, self.n_train = prior_sigma, n_train
        self.norms = nn.ModuleList(nn.LayerNorm(list(shape)) for shape in self.feature_shapes)
        self.flows = nn.ModuleList(
            Chain([flow_step(coupling, c, conv_subnet(1 if i % 2 and not conv3x3_only else 3, hidden_ratio), clamp,
                             lu_fixed_diag=lu_fixed_diag, prior_sigma=prior_sigma, spatial=h * w)
                   for i in range(blocks)])
            for c, h, w in self.feature_shapes)

    @property
    def constant_det(self) -> bool:
        return all(flow.constant_det for flow in self.flows)

    def flow_inputs(self, features: list[Tensor]) -> list[Tensor]:
        """What the flows transform: the layer-normalised features."""
        return [norm(f) for norm, f in zip(self.norms, features)]

    def forward(self, features: list[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        """Per-scale latents ``z`` and log-determinants ``ln|det J|`` (shape ``[B]``)."""
        out = [flow(x) for flow, x in zip(self.flows, self.flow_inputs(features))]
        return [z for z, _ in out], [ld for _, ld in out]

    def inverse(self, latents: list[Tensor]) -> list[Tensor]:
        return [flow.inverse(z) for flow, z in zip(self.flows, latents)]

    def log_prior(self) -> Tensor:
        """The App. B.2 log-prior of all flows (zero unless ``prior_sigma`` is set)."""
        return sum(flow.log_prior() for flow in self.flows)

    def loss(self, features: list[Tensor]) -> Tensor:
        loss = fastflow_loss(*self(features))
        return loss - self.log_prior().to(loss) / self.n_train

    def anomaly_map(self, features: list[Tensor], image_size) -> Tensor:
        return fastflow_anomaly_map(self(features)[0], _pair(image_size))

    def image_score(self, anomaly_map: Tensor) -> Tensor:
        return max_score(anomaly_map)


def _pair(size) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else tuple(size)
