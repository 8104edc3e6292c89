"""Frozen-backbone features, computed once and cached on disk (paper §5.2.1).

All three methods of §5.2 (FastFlow, CFlow, U-Flow) keep their ImageNet backbone frozen
and train only the flow head.  The backbone output of an image therefore never changes:
we compute it once per image (``no_grad``, batched) and reuse it for every epoch, every
seed and every coupling variant.  The cache key names everything the features depend on:
dataset, class, split, backbone name and the layers read from it, its weights (ImageNet, or
random + a fingerprint of the random weights), the image size and a hash of the image and mask
files (paths, sizes, modification times; see :func:`content_id`).

Where the cache lives: ``$USFKIT_FEATURE_CACHE``, else ``<user cache dir>/usfkit/features``.  On a
cluster, point ``$USFKIT_FEATURE_CACHE`` either at a node-local disk (each node computes the features
of the classes it trains once; fastest reads) or at shared storage (every class computed once for
the whole cluster).  Ray workers inherit the variable from the driver's environment.

Several writers are safe: a file is written under a unique temporary name in the cache folder and
then renamed onto its key (an atomic replace on one file system, NFS included), so a reader sees
either no file or a complete one, and two processes computing the same key at once both leave the
same complete file (same content key, same features).  A file that cannot be read (e.g. cut short
by a full disk before this rule) is recomputed and replaced.
"""
from __future__ import annotations

import copy
import hashlib
import os
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from platformdirs import user_cache_dir
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from ..rng import seeded
from ..data import file_signature
from ..train import adam

__all__ = ["cache_dir", "weights_id", "content_id", "cache_key", "save_atomic", "FeatureSet", "extract",
           "cached_features", "Speedup", "measure_speedup"]


def cache_dir() -> Path:
    """``$USFKIT_FEATURE_CACHE``, else ``~/.cache/usfkit/features`` (platform dependent)."""
    env = os.environ.get("USFKIT_FEATURE_CACHE")
    return Path(env).expanduser() if env else Path(user_cache_dir("usfkit")) / "features"


def weights_id(backbone: nn.Module) -> str:
    """``"imagenet"`` when pretrained weights were loaded, else ``"random-<hash>"``: a short hash of
    the random weights themselves (so two different random initialisations never share a cache)."""
    if getattr(backbone, "pretrained_loaded", False):
        return "imagenet"
    h = hashlib.sha1()
    for name, p in sorted(backbone.state_dict().items()):
        if p.is_floating_point():
            h.update(name.encode())
            h.update(p.detach().flatten()[:256].cpu().to(torch.float32).numpy().tobytes())
    return "random-" + h.hexdigest()[:10]


def content_id(images: Dataset) -> str:
    """A short hash of what ``images`` reads: per sample its image file and mask file (path, size
    and ``mtime_ns``), label and defect type, in order.  So features are recomputed when a file is
    added, removed, replaced or edited in place, a mask included (the cache stores the masks too).

    Why size + modification time and not a hash of the bytes: a ``stat`` per file costs nothing,
    while hashing would read every image (gigabytes for all of MVTec AD) each time cached features
    are loaded.  A file written after its features were cached has a new ``mtime_ns``; a needless
    recompute (e.g. after a copy that did not keep timestamps) is the safe side of the trade.
    Not seen: a change that keeps both size and ``mtime_ns`` (e.g. a copy with preserved
    timestamps); then delete the cache file."""
    samples = getattr(images, "samples", None)
    if samples is None:
        return hashlib.sha1(str(len(images)).encode()).hexdigest()[:8]

    def stamp(file) -> str:
        return "-" if file is None else file_signature(file)

    text = "\n".join(f"{stamp(image)}|{label}|{stamp(mask)}|{defect}" for image, label, mask, defect in samples)
    return hashlib.sha1(text.encode()).hexdigest()[:8]


def cache_key(dataset: str, cls: str, split: str, backbone: nn.Module, image_size: int,
              content: str = "") -> str:
    name = getattr(backbone, "name", type(backbone).__name__)
    layers = getattr(backbone, "layers", None)  # e.g. ResNet-18 layers 1-3 (FastFlow) vs 2-4 (CFlow)
    if layers:
        name += "-" + "+".join(str(layer) for layer in layers)
    parts = [dataset, cls, split, name, weights_id(backbone), f"{image_size}px"] + ([content] if content else [])
    return "_".join(re.sub(r"[^A-Za-z0-9.-]+", "-", str(p)) for p in parts)


def save_atomic(obj, path: Path) -> None:
    """``torch.save(obj, path)`` so that concurrent writers and readers are safe: written to a
    unique temporary file beside ``path`` (unique per process and thread), then renamed onto it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class FeatureSet(Dataset):
    """Cached per-scale features of one dataset split; item ``i`` is the tuple of
    per-scale tensors of image ``i`` (what the heads' ``training_step`` takes as a batch)."""

    def __init__(self, features: list[Tensor], labels: Tensor, masks: Tensor, paths: list[str],
                 defects: list[str], info: dict):
        self.features, self.labels, self.masks, self.paths, self.defects = features, labels, masks, paths, defects
        self.info = info  # key, backbone description, extraction time, whether it came from disk

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[Tensor, ...]:
        return tuple(f[i] for f in self.features)

    def batches(self, batch_size: int = 32):
        """The per-scale features in consecutive batches (for evaluation)."""
        for start in range(0, len(self), batch_size):
            yield [f[start:start + batch_size] for f in self.features]

    def __repr__(self) -> str:
        shapes = ", ".join(str(tuple(f.shape[1:])) for f in self.features)
        return f"FeatureSet({len(self)} images; per-scale shapes {shapes}; {self.info.get('key')})"


@torch.no_grad()
def extract(backbone: nn.Module, images: Dataset, batch_size: int = 32, device: str | torch.device = "cpu"):
    """Run the frozen backbone once over ``images`` (items as :class:`usfkit.data.mvtec.AnomalyImages`).
    Returns ``(per-scale features [N, C_s, H_s, W_s] on the CPU, labels, masks, paths, defects)``."""
    backbone = backbone.to(device).eval()
    feats: list[list[Tensor]] = []
    labels, masks, paths, defects = [], [], [], []
    for batch in DataLoader(images, batch_size=batch_size, shuffle=False):
        out = backbone(batch["image"].to(device))
        feats.append([f.float().cpu() for f in out])
        labels.append(torch.as_tensor(batch["label"]))
        masks.append(batch["mask"])
        paths += list(batch["path"])
        defects += list(batch["defect"])
    per_scale = [torch.cat([b[s] for b in feats]) for s in range(len(feats[0]))]
    return per_scale, torch.cat(labels), torch.cat(masks), paths, defects


def cached_features(backbone: nn.Module, images: Dataset, *, dataset: str, cls: str, split: str,
                    image_size: int, folder: str | Path | None = None, batch_size: int = 32,
                    device: str | torch.device = "cpu", use_cache: bool = True) -> FeatureSet:
    """The features of ``images`` under ``backbone``, from the disk cache when present
    (``torch.load``), else computed once with :func:`extract` and saved (``torch.save``)."""
    key = cache_key(dataset, cls, split, backbone, image_size, content_id(images))
    path = Path(folder or cache_dir()) / f"{key}.pt"
    describe = backbone.describe() if hasattr(backbone, "describe") else getattr(backbone, "name", "")
    if use_cache and path.exists():
        start = time.time()
        try:
            blob = torch.load(path, weights_only=False)
        except Exception:  # unreadable (cut short): recompute and replace it below
            blob = None
        if blob is not None:
            info = {**blob["info"], "from_cache": True, "load_s": time.time() - start}
            return FeatureSet(blob["features"], blob["labels"], blob["masks"], blob["paths"], blob["defects"], info)
    start = time.time()
    feats, labels, masks, paths, defects = extract(backbone, images, batch_size, device)
    info = {"key": key, "backbone": describe, "weights": weights_id(backbone), "extract_s": time.time() - start,
            "n_images": len(labels)}
    if use_cache:
        save_atomic({"features": feats, "labels": labels, "masks": masks, "paths": paths, "defects": defects,
                     "info": info}, path)
    return FeatureSet(feats, labels, masks, paths, defects, {**info, "from_cache": False})


# --------------------------------------------------------------------------
# How much does the cache save?
# --------------------------------------------------------------------------
@dataclass
class Speedup:
    epochs: int
    recompute_s: float  # backbone on every batch of every epoch (what a plain training loop does)
    cached_s: float     # backbone once (the cache build), then epochs on cached features
    extract_s: float    # the one backbone pass inside cached_s
    losses: dict = field(default_factory=dict)  # final-epoch mean loss of both runs (they must agree)
    backbone_images: dict = field(default_factory=dict)  # images the backbone processed in each run
    cpu_s: dict = field(default_factory=dict)  # CPU seconds of this process for recompute / cached / extract

    @property
    def factor(self) -> float:
        return self.recompute_s / self.cached_s

    def summary(self) -> str:
        return (f"{self.epochs} epochs: backbone every epoch {self.recompute_s:.1f} s, with the feature cache "
                f"{self.cached_s:.1f} s (of which {self.extract_s:.1f} s computing the cache) -> "
                f"{self.factor:.1f}x faster")


def _train_epochs(head: nn.Module, batches, epochs: int, lr: float, seed: int) -> float:
    opt = adam(head.parameters(), lr)
    head.train()
    loss_sum = 0.0
    with seeded(seed):
        for _ in range(epochs):
            loss_sum, n = 0.0, 0
            for feats in batches():
                loss = head.loss(feats)
                opt.zero_grad()
                loss.backward()
                opt.step()
                loss_sum, n = loss_sum + loss.item(), n + 1
    return loss_sum / max(n, 1)


def measure_speedup(backbone: nn.Module, head: nn.Module, images: Dataset, epochs: int = 3, batch_size: int = 32,
                    lr: float = 1e-3, seed: int = 0) -> Speedup:
    """Train two copies of the same ``head`` for ``epochs`` epochs in the same way (Adam, same
    batches, no shuffling), once running the backbone on every batch (images read from disk each
    epoch, as a data loader does) and once on features extracted a single time; both timings
    include reading the images.  The two runs see identical inputs, so their losses agree."""
    loader = DataLoader(images, batch_size=batch_size, shuffle=False)
    seen = []  # images through the backbone, counted by a forward hook
    hook = backbone.register_forward_hook(lambda module, args, out: seen.append(len(args[0])))

    def recomputed():
        for batch in loader:
            with torch.no_grad():
                feats = backbone(batch["image"])
            yield feats  # outside no_grad: the head's training step needs gradients

    start, cpu = time.time(), time.process_time()
    loss_a = _train_epochs(copy.deepcopy(head), recomputed, epochs, lr, seed)
    recompute_s, recompute_cpu = time.time() - start, time.process_time() - cpu
    n_recompute, seen[:] = sum(seen), []

    start, cpu = time.time(), time.process_time()
    feats = extract(backbone, images, batch_size)[0]
    extract_s, extract_cpu = time.time() - start, time.process_time() - cpu

    def cached():
        for s in range(0, len(feats[0]), batch_size):
            yield [f[s:s + batch_size] for f in feats]

    loss_b = _train_epochs(copy.deepcopy(head), cached, epochs, lr, seed)
    cached_s, cached_cpu = time.time() - start, time.process_time() - cpu
    hook.remove()
    return Speedup(epochs, recompute_s, cached_s, extract_s, {"recompute": loss_a, "cached": loss_b},
                   {"recompute": n_recompute, "cached": sum(seen)},
                   {"recompute": recompute_cpu, "cached": cached_cpu, "extract": extract_cpu})
