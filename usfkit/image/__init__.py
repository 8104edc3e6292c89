"""Image anomaly detection with flow heads on frozen backbones (paper §5.2, App. E).

FastFlow, CFlow and U-Flow as anomalib v2.0.0 builds them (the code the paper ran),
built from :mod:`usfkit.models.flows`, each with a ``coupling=`` switch -- the only thing that
changes between variants: ``"affine"`` (the non-USF baseline, as anomalib), ``"additive"``
(additive coupling only: USF, coupling determinant 1) or ``"additive_lu"`` (additive
coupling conjugated by LU maps, ``A^{-1} o C o A``: the paper's full USF), with the
meanings of :data:`usfkit.models.flows.COUPLINGS` (``"affine_lu"`` is rejected: App. D left it out
of the image ablation); ``head.constant_det`` says whether a head is uniformly scaling; see
:mod:`usfkit.models.heads.couplings`:

::

    from usfkit.image import build_model, ARCHITECTURES, COUPLINGS
    model = build_model("fastflow", coupling="additive_lu", pretrained=False, image_size=64)
    feats = model.backbone(images)                 # frozen, list of per-scale maps
    model.head.loss(feats)                         # NLL as the original method defines it
    amap = model.head.anomaly_map(feats, (64, 64)) # [B, H, W], higher = more anomalous
    model.head.image_score(amap)                   # [B]
    module = model.lightning_module()              # App. E optimiser (+ scheduler); batch = features
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

from torch import nn

from ..models.flows import seeded
from .backbones import RESNETS, Backbone, PretrainedUnavailable, build_backbone
from ..models.heads.couplings import COUPLINGS, check_coupling, count_parameters

ARCHITECTURES: dict[str, dict] = {
    # App. E; anomalib v2.0.0 defaults otherwise.
    "fastflow": dict(backbone="resnet18", layers=("layer1", "layer2", "layer3"), image_size=256,
                     lr=1e-3, weight_decay=1e-5, blocks=8, clamp=2.0, hidden_ratio=1.0, conv3x3_only=False),
    "cflow": dict(backbone="wide_resnet50_2", layers=("layer2", "layer3", "layer4"), image_size=256,
                  lr=1e-4, weight_decay=0.0, blocks=8, clamp=1.9, condition_dim=128, fiber_batch_size=64),
    "uflow": dict(backbone="mcait", layers=("cait_m48_448", "cait_s24_224"), image_size=448,
                  lr=1e-3, weight_decay=1e-5, blocks=4, clamp=2.0, hidden_ratio=1.0,
                  lr_end_factor=0.4, lr_decay_iters=25_000),
}
_TRAINING_KEYS = ("lr", "weight_decay", "fiber_batch_size", "lr_end_factor", "lr_decay_iters")
_COMMON_HEAD_KEYS = ("lu_fixed_diag", "prior_sigma", "n_train")


@dataclass(eq=False)
class ImageModel:
    """A frozen backbone and a trainable flow head, plus the settings they were built with."""

    arch: str
    coupling: str
    backbone: Backbone
    head: nn.Module
    config: dict = field(default_factory=dict)

    @property
    def constant_det(self) -> bool:
        """Whether the head is uniformly scaling (its log-determinant is the same for every input)."""
        return self.head.constant_det

    def lightning_module(self, lr: float | None = None, weight_decay: float | None = None):
        """The head wrapped in its Lightning module (App. E optimiser and scheduler)."""
        cfg = self.config
        lr = cfg["lr"] if lr is None else lr
        wd = cfg["weight_decay"] if weight_decay is None else weight_decay
        if self.arch == "fastflow":
            from ..models.heads.fastflow import FastflowModule
            return FastflowModule(self.head, lr, wd)
        if self.arch == "cflow":
            from ..models.heads.cflow import CflowModule
            return CflowModule(self.head, lr, wd, fiber_batch_size=cfg["fiber_batch_size"])
        from ..models.heads.uflow import UflowModule
        return UflowModule(self.head, lr, wd, end_factor=cfg["lr_end_factor"], decay_iters=cfg["lr_decay_iters"])

    def describe(self) -> str:
        n = count_parameters(self.head, trainable_only=True)
        return (f"{self.arch} head, coupling={self.coupling!r}, {n:,} trainable parameters; "
                f"backbone {self.backbone.describe()}")


def build_model(arch: str, coupling: str = "affine", backbone: str | None = None, pretrained="auto",
                image_size: int | None = None, seed: int | None = None, **overrides) -> ImageModel:
    """Build ``arch`` (``"fastflow" | "cflow" | "uflow"``) with ``coupling`` (one of
    :data:`COUPLINGS`).  ``backbone=None`` and ``image_size=None`` take the App. E defaults
    (``ARCHITECTURES[arch]``); ``overrides`` replace any other default (``blocks``,
    ``clamp``, ``hidden_ratio``, ``layers``, ``lr``, ...) and accept ``lu_fixed_diag``,
    ``prior_sigma`` (App. B.2 prior on the constant log-determinant, off by default) and
    ``n_train`` (the prior is divided by it).  ``seed`` seeds the head's initialisation
    (random permutations and weights)."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"arch must be one of {sorted(ARCHITECTURES)}, got {arch!r}")
    check_coupling(coupling)
    cfg = copy.deepcopy(ARCHITECTURES[arch])
    extra = {k: overrides.pop(k) for k in _COMMON_HEAD_KEYS if k in overrides}
    unknown = sorted(set(overrides) - set(cfg))
    if unknown:
        raise TypeError(f"unknown override(s) {unknown} for {arch}; allowed: "
                        f"{sorted(set(cfg) - {'backbone', 'image_size'}) + list(_COMMON_HEAD_KEYS)}")
    cfg.update(overrides)
    if backbone is not None and backbone != cfg["backbone"]:
        cfg["backbone"] = backbone
        if "layers" not in overrides:  # the layers anomalib reads from that backbone
            cfg["layers"] = (("layer1", "layer2", "layer3") if arch == "uflow" else cfg["layers"]) \
                if backbone in RESNETS else (backbone, backbone)
    cfg["image_size"] = image_size or cfg["image_size"]
    cfg.update(extra)
    layers = cfg["layers"] if cfg["backbone"] in RESNETS else None
    bb = build_backbone(cfg["backbone"], layers, cfg["image_size"], pretrained)
    shapes = bb.feature_shapes(cfg["image_size"])
    head_kw = {k: v for k, v in cfg.items() if k not in _TRAINING_KEYS + ("backbone", "layers", "image_size")}
    with seeded(seed):
        if arch == "fastflow":
            from ..models.heads.fastflow import FastflowHead
            head = FastflowHead(shapes, coupling, **head_kw)
        elif arch == "cflow":
            from ..models.heads.cflow import CflowHead
            head = CflowHead(shapes, coupling, **head_kw)
        else:
            from ..models.heads.uflow import UflowHead
            head = UflowHead(shapes, coupling, layer_norm=not bb.name.startswith("mcait"), **head_kw)
    return ImageModel(arch, coupling, bb, head, cfg)


__all__ = ["ARCHITECTURES", "COUPLINGS", "Backbone", "ImageModel", "PretrainedUnavailable", "build_model",
           "build_backbone", "count_parameters"]
