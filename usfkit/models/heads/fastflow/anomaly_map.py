"""FastFlow's anomaly map (anomalib ``AnomalyMapGenerator``); the image score is the map's maximum
(:meth:`usfkit.models.heads.base.FlowHead.image_score`)."""
from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

__all__ = ["fastflow_anomaly_map"]


def fastflow_anomaly_map(latents: list[Tensor], image_size: tuple[int, int]) -> Tensor:
    """Per scale ``-exp(-0.5 * mean_c z^2)`` (minus a per-pixel likelihood), upsampled
    bilinearly to the image and averaged over scales: ``[B, H, W]``, higher = more anomalous.
    The log-determinant is not part of the map, as in the original."""
    maps = []
    for z in latents:
        prob = torch.exp(-0.5 * z.pow(2).mean(1, keepdim=True))
        maps.append(F.interpolate(-prob, size=tuple(image_size), mode="bilinear", align_corners=False))
    return torch.stack(maps, -1).mean(-1).squeeze(1)
