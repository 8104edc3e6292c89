"""An image model of §5.2: a frozen backbone and a trainable flow head, built from the head registry
(:data:`usfkit.models.HEADS`: each head's class, Lightning module and App. E defaults)."""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

from torch import nn

from ..models import HEADS, head as registered, resolve
from ..rng import seeded
from ..models.heads.couplings import check_coupling, count_parameters
from .backbones import RESNETS, Backbone, build_backbone

__all__ = ["ImageModel", "build_model", "COMMON_HEAD_KEYS"]

#: Head arguments every head takes besides its App. E defaults.
COMMON_HEAD_KEYS = ("lu_fixed_diag", "prior_sigma", "n_train")


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
        spec, cfg = registered(self.arch), self.config
        lr = cfg["lr"] if lr is None else lr
        wd = cfg["weight_decay"] if weight_decay is None else weight_decay
        return resolve(spec.module)(self.head, lr, wd, **{kw: cfg[key] for kw, key in spec.module_settings.items()})

    def describe(self) -> str:
        n = count_parameters(self.head, trainable_only=True)
        return (f"{self.arch} head, coupling={self.coupling!r}, {n:,} trainable parameters; "
                f"backbone {self.backbone.describe()}")


def build_model(arch: str, coupling: str = "affine", backbone: str | None = None, pretrained="auto",
                image_size: int | None = None, seed: int | None = None, **overrides) -> ImageModel:
    """Build the registered head ``arch`` (``"fastflow" | "cflow" | "uflow"``, :data:`usfkit.models.HEADS`) with
    ``coupling`` (one of :data:`usfkit.models.heads.couplings.COUPLINGS`) on its backbone.  ``backbone=None``
    and ``image_size=None`` take the App. E defaults (the head's ``defaults``); ``overrides`` replace any other
    default (``blocks``, ``clamp``, ``hidden_ratio``, ``layers``, ``lr``, ...) and accept ``lu_fixed_diag``,
    ``prior_sigma`` (App. B.2 prior on the constant log-determinant, off by default) and ``n_train`` (the prior
    is divided by it).  ``seed`` seeds the head's initialisation (random permutations and weights)."""
    if arch not in HEADS:
        raise ValueError(f"arch must be one of {sorted(HEADS)}, got {arch!r}")
    spec = registered(arch)
    check_coupling(coupling)
    cfg = copy.deepcopy(spec.defaults)
    extra = {k: overrides.pop(k) for k in COMMON_HEAD_KEYS if k in overrides}
    unknown = sorted(set(overrides) - set(cfg))
    if unknown:
        raise TypeError(f"unknown override(s) {unknown} for {arch}; allowed: "
                        f"{sorted(set(cfg) - {'backbone', 'image_size'}) + list(COMMON_HEAD_KEYS)}")
    cfg.update(overrides)
    if backbone is not None and backbone != cfg["backbone"]:
        cfg["backbone"] = backbone
        if "layers" not in overrides:  # the layers anomalib reads from that backbone
            cfg["layers"] = spec.resnet_layers if backbone in RESNETS else (backbone, backbone)
    cfg["image_size"] = image_size or cfg["image_size"]
    cfg.update(extra)
    layers = cfg["layers"] if cfg["backbone"] in RESNETS else None
    bb = build_backbone(cfg["backbone"], layers, cfg["image_size"], pretrained)
    shapes = bb.feature_shapes(cfg["image_size"])
    head_kw = {k: v for k, v in cfg.items() if k not in spec.training + ("backbone", "layers", "image_size")}
    head_kw.update(spec.backbone_kwargs(bb) if spec.backbone_kwargs else {})
    with seeded(seed):
        head = resolve(spec.head)(shapes, coupling, **head_kw)
    return ImageModel(arch, coupling, bb, head, cfg)
