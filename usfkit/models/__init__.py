"""The models of the paper, one module each with the Lightning module that trains it beside it, and the two
registries every experiment, plot, profile and the report read their names, labels, colours and USF pairing from.

* :data:`METHODS`: the tabular methods of §5.1 (:class:`MethodSpec`: how to build, train and score one, the
  coupling of its flow, the settings it reads, its label and colour);
* :data:`HEADS`: the image heads of §5.2 (:class:`HeadSpec`: the head and its Lightning module, App. E's
  defaults, the label).

This module imports no torch: a command line lists the names and the run grid answers ``--status`` at once;
``build``/``train``/``score``/``head``/``module`` are ``"module:attribute"`` strings imported when first used
(or plain callables).  Adding a method is one module plus one :func:`register_method` call::

    from usfkit.models import MethodSpec, register_method
    register_method(MethodSpec("MyFlow", build=my_build, train=my_train,
                               score=my_score, coupling="additive_lu",
                               settings=("lr", "blocks"), colour="#2ca02c"))

and ``usf-tabular --methods MyFlow`` (in the same process), the chapter's sweep, its figures and the report's
tabular rows take it with no other file touched.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable

__all__ = ["MethodSpec", "HeadSpec", "METHODS", "HEADS", "register_method", "register_head", "method", "head",
           "resolve", "usf_pairs", "head_labels", "is_usf", "coupling_of", "USF_COLOUR", "OTHER_COLOUR",
           "COUPLING_LABELS"]

#: Colours of the tabular figures: a uniformly scaling method is blue, every other grey.
USF_COLOUR, OTHER_COLOUR = "#1f77b4", "#999999"
#: The couplings (:data:`usfkit.models.flows.COUPLINGS`) as tables and figures name them.
COUPLING_LABELS = {"affine": "affine (base flow)", "additive": "additive (USF)", "additive_lu": "additive + LU (USF)",
                   "affine_lu": "affine + LU (NonUSF)"}


def resolve(ref: str | Callable) -> Callable:
    """``"package.module:attribute"`` imported (a callable is returned as it is)."""
    if callable(ref):
        return ref
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class MethodSpec:
    """One tabular method of §5.1.

    ``build(dim, coupling, cfg, seed) -> model``; ``train(model, x_train, cfg, fit) -> FitResult`` (``fit``:
    §5.1.1's shared training rule as :func:`usfkit.train.fit` keywords, with the seed); ``score(model)`` -> a
    function of a batch giving scores, higher = more anomalous.  ``cfg`` holds exactly the chapter's shared
    settings and the ones named in ``settings``, so a run's key (:func:`usfkit.experiments.tabular.run_settings`)
    is its spec plus what it reads, and a setting the method does not name cannot reach it.  ``coupling``: the
    flow inside it in :data:`usfkit.models.flows.COUPLINGS`' words (``None``: no flow); ``pair``: the method
    that differs only by the non-USF coupling; ``score_parts``: its runs also rate the parts of its score
    (the VAEs)."""

    name: str
    build: str | Callable
    train: str | Callable
    score: str | Callable
    coupling: str | None = None
    settings: tuple[str, ...] = ()
    label: str = ""
    colour: str = ""
    pair: str | None = None
    score_parts: bool = False

    @property
    def usf(self) -> bool:
        """Uniformly scaling: a flow with additive couplings, so one determinant for every input."""
        return is_usf(self.coupling)

    @property
    def shown(self) -> str:
        return self.label or self.name

    @property
    def color(self) -> str:
        return self.colour or (USF_COLOUR if self.usf else OTHER_COLOUR)


@dataclass(frozen=True)
class HeadSpec:
    """One image head of §5.2: ``head(feature_shapes, coupling, **head_kwargs)`` (a torch module) and
    ``module(head, lr, weight_decay, **{kw: config[key] for kw, key in module_settings.items()})`` (its Lightning
    module); ``defaults``: App. E's settings (backbone, layers, image_size, lr, weight_decay, head sizes, ...);
    ``training``: the keys of ``defaults`` that belong to the Lightning module, not the head; ``resnet_layers``:
    the layers read when a ResNet replaces the default backbone; ``backbone_kwargs(backbone)``: head
    arguments that depend on the backbone."""

    name: str
    head: str | Callable
    module: str | Callable
    defaults: dict[str, Any]
    label: str
    training: tuple[str, ...] = ("lr", "weight_decay")
    module_settings: dict[str, str] = field(default_factory=dict)
    resnet_layers: tuple[str, ...] = ("layer1", "layer2", "layer3")
    backbone_kwargs: Callable[[Any], dict] | None = None


METHODS: dict[str, MethodSpec] = {}
HEADS: dict[str, HeadSpec] = {}


def register_method(spec: MethodSpec, replace: bool = False) -> MethodSpec:
    """Add ``spec`` to :data:`METHODS` (a name taken is a ValueError unless ``replace``)."""
    if spec.name in METHODS and not replace:
        raise ValueError(f"a tabular method named {spec.name!r} is registered already")
    METHODS[spec.name] = spec
    return spec


def register_head(spec: HeadSpec, replace: bool = False) -> HeadSpec:
    """Add ``spec`` to :data:`HEADS` (a name taken is a ValueError unless ``replace``)."""
    if spec.name in HEADS and not replace:
        raise ValueError(f"an image head named {spec.name!r} is registered already")
    HEADS[spec.name] = spec
    return spec


def method(name: str) -> MethodSpec:
    """The registered tabular method ``name``; a KeyError listing the names otherwise."""
    if name not in METHODS:
        raise KeyError(f"unknown method {name!r}; methods are {', '.join(METHODS)}")
    return METHODS[name]


def head(name: str) -> HeadSpec:
    """The registered image head ``name``; a ValueError listing the names otherwise."""
    if name not in HEADS:
        raise ValueError(f"unknown head {name!r}; heads are {', '.join(HEADS)}")
    return HEADS[name]


def is_usf(coupling: str | None) -> bool:
    """Whether a flow with ``coupling`` (:data:`usfkit.models.flows.COUPLINGS`' words) is uniformly scaling:
    additive couplings, so one determinant for every input (``None``, no flow: False)."""
    return coupling is not None and coupling.startswith("additive")


def coupling_of(spec: dict) -> str | None:
    """The coupling of a run's flow from its spec: the spec's ``coupling``, else its registered ``method``'s
    (``None``: a method without a flow, or one not registered, such as App. C's Deep SVDD)."""
    if "coupling" in spec:
        return spec["coupling"]
    registered = METHODS.get(spec.get("method"))
    return registered.coupling if registered else None


def usf_pairs() -> tuple[tuple[str, str], ...]:
    """``(USF method, its NonUSF counterpart)`` for every registered method that names a :attr:`MethodSpec.pair`,
    in the registry's order: ``(("USFlow", "NonUSFlow"), ("VAE-USFlow", "VAE-NonUSFlow"))``."""
    return tuple((m, s.pair) for m, s in METHODS.items() if s.pair)


def head_labels() -> dict[str, str]:
    """The registered image heads' labels by name (``{"fastflow": "FastFlow", ...}``), in the registry's order."""
    return {name: h.label for name, h in HEADS.items()}


# --------------------------------------------------------------------------
# the paper's methods and heads
# --------------------------------------------------------------------------
_T = "usfkit.models.tabular:"
_FLOW = ("lr", "blocks", "hidden", "layers", "clamp", "prior_sigma")
_VAE = ("lr", "blocks", "hidden", "layers")
_DOHSC = ("nu", "dohsc_lr", "dohsc_pretrain_epochs")
for _spec in (
        MethodSpec("USFlow", _T + "build_flow", _T + "train_flow", _T + "flow_score", "additive_lu", _FLOW,
                   pair="NonUSFlow"),
        MethodSpec("NonUSFlow", _T + "build_flow", _T + "train_flow", _T + "flow_score", "affine_lu", _FLOW),
        MethodSpec("VAE-USFlow", _T + "build_vae", _T + "train_vae", _T + "own_score", "additive_lu", _VAE,
                   pair="VAE-NonUSFlow", score_parts=True),
        MethodSpec("VAE-NonUSFlow", _T + "build_vae", _T + "train_vae", _T + "own_score", "affine_lu", _VAE,
                   score_parts=True),
        MethodSpec("OneFlow", _T + "build_oneflow", _T + "train_oneflow", _T + "own_score", "additive_lu", _VAE),
        MethodSpec("DOHSC", _T + "build_dohsc", _T + "train_dohsc", _T + "own_score", None, _DOHSC),
        MethodSpec("DO2HSC", _T + "build_do2hsc", _T + "train_dohsc", _T + "own_score", None, _DOHSC)):
    register_method(_spec)

_H = "usfkit.models.heads."
for _spec in (
        # App. E; anomalib v2.0.0 defaults otherwise
        HeadSpec("fastflow", _H + "fastflow:FastflowHead", _H + "fastflow:FastflowModule",
                 dict(backbone="resnet18", layers=("layer1", "layer2", "layer3"), image_size=256, lr=1e-3,
                      weight_decay=1e-5, blocks=8, clamp=2.0, hidden_ratio=1.0, conv3x3_only=False), "FastFlow"),
        HeadSpec("uflow", _H + "uflow:UflowHead", _H + "uflow:UflowModule",
                 dict(backbone="mcait", layers=("cait_m48_448", "cait_s24_224"), image_size=448, lr=1e-3,
                      weight_decay=1e-5, blocks=4, clamp=2.0, hidden_ratio=1.0, lr_end_factor=0.4,
                      lr_decay_iters=25_000), "U-Flow",
                 training=("lr", "weight_decay", "lr_end_factor", "lr_decay_iters"),
                 module_settings={"end_factor": "lr_end_factor", "decay_iters": "lr_decay_iters"},
                 # MS-CaiT's features are normalised already; on a CNN backbone U-Flow normalises each scale
                 backbone_kwargs=lambda backbone: {"layer_norm": not backbone.name.startswith("mcait")}),
        HeadSpec("cflow", _H + "cflow:CflowHead", _H + "cflow:CflowModule",
                 dict(backbone="wide_resnet50_2", layers=("layer2", "layer3", "layer4"), image_size=256, lr=1e-4,
                      weight_decay=0.0, blocks=8, clamp=1.9, condition_dim=128, fiber_batch_size=64), "CFlow",
                 training=("lr", "weight_decay", "fiber_batch_size"),
                 module_settings={"fiber_batch_size": "fiber_batch_size"},
                 resnet_layers=("layer2", "layer3", "layer4"))):
    register_head(_spec)
del _spec
