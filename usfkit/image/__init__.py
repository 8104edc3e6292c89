"""Image anomaly detection with flow heads on frozen backbones (paper §5.2, App. E).

FastFlow, CFlow and U-Flow as anomalib v2.0.0 builds them (the code the paper ran), registered in
:data:`usfkit.models.HEADS` and built from :mod:`usfkit.models.flows`, each with a ``coupling=`` switch -- the only
thing that changes between variants: ``"affine"`` (the non-USF baseline, as anomalib), ``"additive"`` (additive
coupling only: USF, coupling determinant 1) or ``"additive_lu"`` (additive coupling conjugated by LU maps,
``A^{-1} o C o A``: the paper's full USF), with the meanings of :data:`usfkit.models.flows.COUPLINGS`
(``"affine_lu"`` is rejected: App. D left it out of the image ablation); ``head.constant_det`` says whether a
head is uniformly scaling; see :mod:`usfkit.models.heads.couplings`:

::

    from usfkit.image import build_model
    model = build_model("fastflow", coupling="additive_lu", pretrained=False, image_size=64)
    feats = model.backbone(images)                 # frozen, list of per-scale maps
    model.head.loss(feats)                         # NLL as the original method defines it
    amap = model.head.anomaly_map(feats, (64, 64)) # [B, H, W], higher = more anomalous
    model.head.image_score(amap)                   # [B]
    module = model.lightning_module()              # App. E optimiser (+ scheduler); batch = features

Its modules: :mod:`.model` (:func:`~usfkit.image.model.build_model`), :mod:`.backbones`, :mod:`.features` (the feature cache),
:mod:`.paper_numbers`.  The names below are imported when first
used, so ``usfkit.image.paper_numbers`` needs no torch.
"""
from __future__ import annotations

import importlib

__all__ = ["ARCHITECTURES", "COUPLINGS", "Backbone", "ImageModel", "PretrainedUnavailable", "build_model",
           "build_backbone", "count_parameters"]

_LAZY = {"ImageModel": ".model", "build_model": ".model", "Backbone": ".backbones", "build_backbone": ".backbones",
         "PretrainedUnavailable": ".backbones", "COUPLINGS": "usfkit.models.heads.couplings",
         "count_parameters": "usfkit.models.heads.couplings"}


def __getattr__(name: str):
    if name == "ARCHITECTURES":  # each registered head's App. E defaults, by name
        from ..models import HEADS
        return {n: h.defaults for n, h in HEADS.items()}
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
