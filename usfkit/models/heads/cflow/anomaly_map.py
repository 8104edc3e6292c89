"""CFlow's anomaly map (anomalib ``AnomalyMapGenerator``)."""
from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

__all__ = ["cflow_anomaly_map"]


def cflow_anomaly_map(log_p_maps: list[Tensor], image_size: tuple[int, int]) -> Tensor:
    """``log_p_maps``: per layer ``ln p / C`` as ``[B, h, w]``.  Each layer's likelihood is
    normalised by its maximum over the batch (``exp(l - max l)``), upsampled bilinearly
    (``align_corners=True``) and summed over layers; the map is ``max - sum`` over the batch,
    so higher = more anomalous.  As in the original, the normalisation uses the whole batch
    passed in: score a whole test split at once to make scores comparable."""
    total = 0
    for log_p in log_p_maps:
        prob = torch.exp(log_p - log_p.max())
        total = total + F.interpolate(prob.unsqueeze(1), size=tuple(image_size), mode="bilinear",
                                      align_corners=True).squeeze(1)
    return total.max() - total
