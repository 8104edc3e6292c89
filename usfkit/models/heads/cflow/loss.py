"""CFlow's likelihood and training loss (Gudovskiy et al. 2022; anomalib ``get_logp``)."""
from __future__ import annotations

import math

from torch import Tensor
from torch.nn import functional as F

__all__ = ["log_prob_per_dim", "cflow_loss"]


def log_prob_per_dim(z: Tensor, logdet: Tensor) -> Tensor:
    """``ln p(x) / C`` of feature vectors ``x`` (rows of ``z``, shape ``[N, C]``) under
    ``N(0, I)`` and the change of variables (paper Eq. 3), divided by the dimension."""
    c = z.shape[1]
    log_p = -0.5 * c * math.log(2 * math.pi) - 0.5 * z.pow(2).sum(1) + logdet
    return log_p / c


def cflow_loss(log_p_per_dim: Tensor) -> Tensor:
    """``-log sigmoid(ln p / C)`` per feature vector, as CFlow trains (``[N]``)."""
    return -F.logsigmoid(log_p_per_dim)
