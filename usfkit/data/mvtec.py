"""MVTec AD (Bergmann et al., CVPR 2019) in its published folder layout (paper §5.2).

::

    <root>/<class>/train/good/*.png                    normal training images
    <root>/<class>/test/good/*.png                     normal test images
    <root>/<class>/test/<defect>/<id>.png              defective test images
    <root>/<class>/ground_truth/<defect>/<id>_mask.png their pixel masks

MVTec AD needs a manual download (licence CC BY-NC-SA 4.0) from
https://www.mvtec.com/company/research/datasets/mvtec-ad ; unpack it so that the
class folders sit in ``data_dir()/"mvtec_ad"`` (or pass ``root=``).  Your own data in this
layout loads too: pass ``root=`` (the folder holding ``<class>/``) and any class folder name.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from . import MVTEC_CLASSES, data_dir

__all__ = ["MVTEC_URL", "MVTEC_FOLDERS", "IMAGENET_MEAN", "IMAGENET_STD", "load_image", "load_mask",
           "AnomalyImages", "class_folders", "find_root", "mvtec_root", "mvtec_samples", "MVTecAD",
           "available_classes", "mvtec_available"]

MVTEC_URL = "https://www.mvtec.com/company/research/datasets/mvtec-ad"
# folder names under data_dir() that are searched, in this order (the last one is a resized copy)
MVTEC_FOLDERS = ("mvtec_ad", "MVTec-AD", "mvtec", "MVTec", "mvtec_anomaly_detection", "mvtec_ad_256")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def load_image(path: Path, image_size: int) -> torch.Tensor:
    """RGB image -> float tensor [3, S, S], resized (bilinear) and ImageNet-normalised."""
    img = Image.open(path).convert("RGB").resize((image_size, image_size), Image.BILINEAR)
    x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1)
    mean, std = torch.tensor(IMAGENET_MEAN)[:, None, None], torch.tensor(IMAGENET_STD)[:, None, None]
    return (x - mean) / std


def load_mask(path: Path | None, image_size: int) -> torch.Tensor:
    """Pixel mask -> float tensor [1, S, S] of 0/1 (nearest-neighbour resize; any value > 0 is a defect).
    ``None`` (a normal image) gives zeros."""
    if path is None:
        return torch.zeros(1, image_size, image_size)
    m = Image.open(path).convert("L").resize((image_size, image_size), Image.NEAREST)
    return torch.from_numpy((np.asarray(m) > 0).astype(np.float32))[None]


class AnomalyImages(Dataset):
    """A list of ``(image path, label, mask path or None, defect type)`` as a torch Dataset.

    Item: ``{"image": [3,S,S] (ImageNet-normalised), "label": 0/1, "mask": [1,S,S] 0/1,
    "defect": str, "path": str}``.
    """

    def __init__(self, samples: list[tuple[Path, int, Path | None, str]], image_size: int, name: str):
        self.samples, self.image_size, self.name = samples, image_size, name

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> dict:
        path, label, mask, defect = self.samples[i]
        return {"image": load_image(path, self.image_size), "label": label,
                "mask": load_mask(mask, self.image_size), "defect": defect, "path": str(path)}

    @property
    def labels(self) -> torch.Tensor:
        return torch.tensor([s[1] for s in self.samples])

    def __repr__(self) -> str:
        n_anom = sum(s[1] for s in self.samples)
        return f"{self.name}: {len(self)} images ({n_anom} anomalous), {self.image_size} px"


def class_folders(root: Path) -> list[str]:
    """The sub-folders of ``root`` (candidate class folders), sorted."""
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")) if root.is_dir() else []


def find_root(folders: tuple[str, ...], cls: str, root: str | Path | None, dataset: str, url: str,
              layout: str, classes: tuple[str, ...]) -> Path:
    """The dataset folder holding class ``cls``.

    With ``root`` given: ``root``, for any class folder there, so your own data in the same
    layout loads under its own class names; a missing folder is an error listing the folders
    found.  Without: the first of ``data_dir()/folder`` holding ``cls``, one of ``classes``."""
    def download(where) -> str:
        return (f"{dataset} needs a manual download from {url}; unpack it into {where}, "
                f"set USFKIT_DATA to the folder that contains it, or pass root=...")

    if root is not None:
        root = Path(root).expanduser()
        if (root / cls).is_dir():
            return root
        found = f"folders found there: {', '.join(class_folders(root)) or 'none'}"
        if cls not in classes:
            raise ValueError(f"no class folder {cls!r} under {root} ({found}), nor is {cls!r} one of {dataset}'s "
                             f"valid classes: {', '.join(classes)}")
        raise FileNotFoundError(f"{dataset} class {cls!r} not found in {root} ({found}). Expected layout:\n"
                                f"{layout}\n{download(root)}")
    if cls not in classes:
        raise ValueError(f"unknown {dataset} class {cls!r}; valid classes: {', '.join(classes)}. "
                         f"For your own data in the {dataset} layout, pass root=<the folder holding {cls}/>")
    candidates = [data_dir() / f for f in folders]
    for cand in candidates:
        if (cand / cls).is_dir():
            return cand
    tried = ", ".join(str(c) for c in candidates)
    raise FileNotFoundError(f"{dataset} class {cls!r} not found (looked in: {tried}). Expected layout:\n"
                            f"{layout}\n{download('one of those folders')}")


_LAYOUT = ("  <root>/<class>/train/good/*.png\n  <root>/<class>/test/{good,<defect>}/*.png\n"
           "  <root>/<class>/ground_truth/<defect>/<id>_mask.png")


def mvtec_root(cls: str = "bottle", root: str | Path | None = None) -> Path:
    """The folder holding ``<cls>/``: ``root`` (any class name), else a searched folder (MVTec AD's classes)."""
    return find_root(MVTEC_FOLDERS, cls, root, "MVTec AD", MVTEC_URL, _LAYOUT, MVTEC_CLASSES)


def mvtec_samples(cls: str, split: str, root: str | Path | None = None) -> list[tuple[Path, int, Path | None, str]]:
    """``(image, label, mask, defect)`` for ``split`` in ``("train", "test")``, sorted by path."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    base = mvtec_root(cls, root) / cls
    split_dir = base / split
    if not split_dir.is_dir():
        raise FileNotFoundError(f"{split_dir} is missing; expected layout:\n{_LAYOUT}")
    samples = []
    for defect_dir in sorted(p for p in split_dir.iterdir() if p.is_dir()):
        defect = defect_dir.name
        for img in sorted(defect_dir.glob("*.png")):
            if defect == "good":
                samples.append((img, 0, None, defect))
                continue
            mask = base / "ground_truth" / defect / f"{img.stem}_mask.png"
            if not mask.exists():
                raise FileNotFoundError(f"test image {img} has no mask: expected {mask}")
            samples.append((img, 1, mask, defect))
    if not samples:
        raise FileNotFoundError(f"no *.png images under {split_dir}; expected layout:\n{_LAYOUT}")
    return samples


def MVTecAD(cls: str = "bottle", split: str = "train", image_size: int = 256,
            root: str | Path | None = None) -> AnomalyImages:
    """One MVTec AD class and split as a Dataset (see :class:`AnomalyImages` for the items)."""
    return AnomalyImages(mvtec_samples(cls, split, root), image_size, f"MVTec AD {cls}/{split}")


def available_classes(classes: tuple[str, ...], folders: tuple[str, ...], root=None) -> list[str]:
    """The classes of a dataset present on this machine."""
    roots = [Path(root)] if root is not None else [data_dir() / f for f in folders]
    return [c for c in classes if any((r / c).is_dir() for r in roots)]


def mvtec_available(root=None) -> list[str]:
    return available_classes(MVTEC_CLASSES, MVTEC_FOLDERS, root)
