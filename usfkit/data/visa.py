"""VisA (Zou et al., ECCV 2022) in its published layout (paper §5.2), with the official
one-class split of the ``spot-diff`` repository::

    <root>/split_csv/1cls.csv                      columns object,split,label,image,mask
    <root>/<class>/Data/Images/Normal/*.JPG        normal images
    <root>/<class>/Data/Images/Anomaly/*.JPG       anomalous images
    <root>/<class>/Data/Masks/Anomaly/*.png        their masks (pixel value > 0 = defect)

``split`` is ``train``/``test``, ``label`` is ``normal``/``anomaly``, ``image`` and ``mask``
are paths relative to ``<root>`` (``mask`` is empty for normal images).  Download the
archive from https://github.com/amazon-science/spot-diff (``VisA_20220922.tar``) and
unpack it into ``data_dir()/"visa"`` (or pass ``root=``); ``split_csv/1cls.csv`` comes
from the same repository.  With ``root=``, any class folder listed in the csv loads (your own data).
"""
from __future__ import annotations

import csv
from pathlib import Path

from . import VISA_CLASSES
from .mvtec import AnomalyImages, available_classes, find_root

__all__ = ["VISA_URL", "VISA_FOLDERS", "SPLIT_CSV", "visa_root", "visa_samples", "VisA", "visa_available"]

VISA_URL = "https://github.com/amazon-science/spot-diff"
VISA_FOLDERS = ("visa", "VisA", "VisA_20220922")
SPLIT_CSV = Path("split_csv") / "1cls.csv"
_LAYOUT = ("  <root>/split_csv/1cls.csv  (object,split,label,image,mask)\n"
           "  <root>/<class>/Data/Images/{Normal,Anomaly}/*.JPG\n  <root>/<class>/Data/Masks/Anomaly/*.png")


def visa_root(cls: str = "candle", root: str | Path | None = None) -> Path:
    """The folder holding ``<cls>/``: ``root`` (any class name), else a searched folder (VisA's classes)."""
    return find_root(VISA_FOLDERS, cls, root, "VisA", VISA_URL, _LAYOUT, VISA_CLASSES)


def visa_samples(cls: str, split: str, root: str | Path | None = None) -> list[tuple[Path, int, Path | None, str]]:
    """``(image, label, mask, defect)`` rows of ``split_csv/1cls.csv`` for one class and split."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    base = visa_root(cls, root)
    table = base / SPLIT_CSV
    if not table.exists():
        raise FileNotFoundError(f"VisA split file {table} is missing; it is split_csv/1cls.csv in {VISA_URL}. "
                                f"Expected layout:\n{_LAYOUT}")
    samples = []
    with table.open(newline="", encoding="utf-8-sig") as f:
        for row in csv.DictReader(f):
            if row["object"] != cls or row["split"] != split:
                continue
            image = base / row["image"]
            if not image.exists():
                raise FileNotFoundError(f"{image} (listed in {table}) is missing")
            if row["label"] == "normal":
                samples.append((image, 0, None, "good"))
                continue
            if not row.get("mask"):
                raise FileNotFoundError(f"anomalous test image {image} has no mask in {table}")
            mask = base / row["mask"]
            if not mask.exists():
                raise FileNotFoundError(f"test image {image} has no mask: expected {mask}")
            samples.append((image, 1, mask, "anomaly"))
    if not samples:
        raise FileNotFoundError(f"{table} lists no {split} images of class {cls!r}")
    return samples


def VisA(cls: str = "candle", split: str = "train", image_size: int = 256,
         root: str | Path | None = None) -> AnomalyImages:
    """One VisA class and split as a Dataset (items as :class:`usfkit.data.mvtec.AnomalyImages`)."""
    return AnomalyImages(visa_samples(cls, split, root), image_size, f"VisA {cls}/{split}")


def visa_available(root=None) -> list[str]:
    return available_classes(VISA_CLASSES, VISA_FOLDERS, root)
