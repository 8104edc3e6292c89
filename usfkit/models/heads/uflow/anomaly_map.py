"""U-Flow's likelihood-based anomaly map (anomalib ``AnomalyMapGenerator.compute_anomaly_map``).

U-Flow's NFA-based segmentation (``compute_anomaly_mask``, a binomial test on the
latents) is not reproduced: the paper reports AUROCs, which use this map.
"""
from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

__all__ = ["uflow_anomaly_map"]


def uflow_anomaly_map(latents: list[Tensor], image_size: tuple[int, int]) -> Tensor:
    """``1 - mean_scales up(exp(-0.5 * mean_c z^2))``: ``[B, H, W]``, higher = more anomalous."""
    probs = [F.interpolate(torch.exp(-0.5 * z.pow(2).mean(1, keepdim=True)), size=tuple(image_size),
                           mode="bilinear", align_corners=False) for z in latents]
    return (1 - torch.stack(probs, -1).mean(-1)).squeeze(1)
