"""FastFlow's anomaly map and image score (anomalib ``AnomalyMapGenerator``)."""
from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F


def fastflow_anomaly_map(latents: list[Tensor], image_size: tuple[int, int]) -> Tensor:
    """Per scale ``-exp(-0.5 * mean_c z^2)`` (minus a per-pixel likelihood), upsampled
    bilinearly to the image and averaged over scales: ``[B, H, W]``, higher = more anomalous.
    The log-determinant is not part of the map, as in the original."""
    maps = []
    for z in latents:
        prob = torch.exp(-0.5 * z.pow(2).mean(1, keepdim=True))
        maps.append(F.interpolate(-prob, size=tuple(image_size), mode="bilinear", align_corners=False))
    return torch.stack(maps, -1).mean(-1).squeeze(1)


def max_score(anomaly_map: Tensor) -> Tensor:
    """Image score: the maximum of the anomaly map, ``[B]``."""
    return anomaly_map.amax(dim=(-2, -1))
