"""Data: synthetic sets with exact densities (:mod:`.synthetic`: moons, the mixture of App. C,
with anomalies or on a subspace) and real datasets in their published layouts
(:mod:`.adbench`, :mod:`.mvtec`, :mod:`.visa`).  :mod:`.checks` turns bad input into a
:class:`DataError` that names the file and the rows at fault.

``data_dir()`` is where real datasets live: ``$USFKIT_DATA``, else the user cache dir.
"""
from __future__ import annotations

import os
from pathlib import Path

from platformdirs import user_cache_dir

from .checks import DataError, check_finite_input, validate_xy
from .synthetic import AsymmetricGaussianMixture, anomaly_data, moons, subspace_data


def file_signature(path) -> str:
    """``"<path>:<size>:<mtime_ns>"``, what the caches key a file by, so that an edited or replaced file
    is read again.  A ``stat`` costs nothing; hashing the bytes would reread every file on every lookup."""
    st = os.stat(path)
    return f"{path}:{st.st_size}:{st.st_mtime_ns}"


def data_dir() -> Path:
    """Where datasets live: ``$USFKIT_DATA``, else the user cache dir (``~/.cache/usfkit``)."""
    env = os.environ.get("USFKIT_DATA")
    return Path(env).expanduser() if env else Path(user_cache_dir("usfkit"))


from .mvtec import MVTEC_CLASSES, AnomalyImages, MVTecAD, mvtec_available  # noqa: E402
from .visa import VISA_CLASSES, VisA, visa_available  # noqa: E402

__all__ = ["AsymmetricGaussianMixture", "anomaly_data", "data_dir", "moons", "subspace_data", "DataError", "check_finite_input", "validate_xy",
           "MVTEC_CLASSES", "AnomalyImages", "MVTecAD", "mvtec_available", "VISA_CLASSES", "VisA", "visa_available"]
