"""FastFlow's training loss (Yu et al. 2021; anomalib ``FastflowLoss``)."""
from __future__ import annotations

from torch import Tensor

__all__ = ["fastflow_loss"]


def fastflow_loss(latents: list[Tensor], logdets: list[Tensor]) -> Tensor:
    """Sum over scales of the batch mean of ``0.5 * ||z||^2 - ln|det J|``: the negative
    log-likelihood under ``N(0, I)`` without its constant (paper Eq. 3)."""
    loss = latents[0].new_zeros(())
    for z, logdet in zip(latents, logdets):
        loss = loss + (0.5 * z.pow(2).flatten(1).sum(1) - logdet).mean()
    return loss
