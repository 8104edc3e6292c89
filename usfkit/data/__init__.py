"""Data: synthetic sets with exact densities (:mod:`~usfkit.data.synthetic`: moons, the mixture of App. C,
with anomalies or on a subspace) and real datasets in their published layouts
(:mod:`~usfkit.data.adbench`, :mod:`~usfkit.data.mvtec`, :mod:`~usfkit.data.visa`).
:mod:`~usfkit.data.checks` turns bad input into a :class:`~usfkit.data.checks.DataError` that names the
file and the rows at fault.

``data_dir()`` is where real datasets live: ``$USFKIT_DATA``, else the user cache dir.
"""
from __future__ import annotations

import os
from pathlib import Path

from platformdirs import user_cache_dir

import importlib

from .checks import DataError, check_finite_input, validate_xy


def file_signature(path) -> str:
    """``"<path>:<size>:<mtime_ns>"``, what the caches key a file by, so that an edited or replaced file
    is read again.  A ``stat`` costs nothing; hashing the bytes would reread every file on every lookup."""
    st = os.stat(path)
    return f"{path}:{st.st_size}:{st.st_mtime_ns}"


def data_dir() -> Path:
    """Where datasets live: ``$USFKIT_DATA``, else the user cache dir (``~/.cache/usfkit``)."""
    env = os.environ.get("USFKIT_DATA")
    return Path(env).expanduser() if env else Path(user_cache_dir("usfkit"))


#: Where each name of the synthetic and image readers lives: imported when first used (they import torch), so
#: that reading a tabular file or a class list needs no torch.
_LAZY = {**dict.fromkeys(["AsymmetricGaussianMixture", "anomaly_data", "moons", "subspace_data"], "synthetic"),
         **dict.fromkeys(["AnomalyImages", "MVTecAD", "mvtec_available"], "mvtec"),
         **dict.fromkeys(["VisA", "visa_available"], "visa")}

#: The classes of MVTec AD and VisA, in the papers' order.
MVTEC_CLASSES = ("bottle", "cable", "capsule", "carpet", "grid", "hazelnut", "leather", "metal_nut", "pill", "screw",
                 "tile", "toothbrush", "transistor", "wood", "zipper")
VISA_CLASSES = ("candle", "capsules", "cashew", "chewinggum", "fryum", "macaroni1", "macaroni2", "pcb1", "pcb2",
                "pcb3", "pcb4", "pipe_fryum")


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["AsymmetricGaussianMixture", "anomaly_data", "data_dir", "moons", "subspace_data", "DataError", "check_finite_input", "validate_xy",
           "MVTEC_CLASSES", "AnomalyImages", "MVTecAD", "mvtec_available", "VISA_CLASSES", "VisA", "visa_available"]
