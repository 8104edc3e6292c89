"""U-Flow's training loss (Tailanian et al. 2024; anomalib ``UFlowLoss``)."""
from __future__ import annotations

from torch import Tensor

__all__ = ["uflow_loss"]


def uflow_loss(latents: list[Tensor], logdet: Tensor) -> Tensor:
    """Batch mean of ``sum_scales 0.5 * ||z_s||^2 - ln|det J|``: the NLL of the whole
    multi-scale latent under ``N(0, I)`` without its constant (paper Eq. 3)."""
    sq = sum(0.5 * z.pow(2).flatten(1).sum(1) for z in latents)
    return (sq - logdet).mean()
