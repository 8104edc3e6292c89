"""Shared look of the book's figures."""
import matplotlib as mpl
import numpy as np

density_cmap = "viridis"


def apply_style() -> None:
    mpl.rcParams.update({
        "figure.dpi": 110, "savefig.dpi": 150, "axes.spines.top": False, "axes.spines.right": False,
        "axes.grid": True, "grid.alpha": 0.25, "font.size": 10, "axes.titlesize": 11,
        "legend.frameon": False,
    })


def to_numpy(values) -> np.ndarray:
    """A tensor (on any device) or array-like as a numpy array."""
    return values.detach().cpu().numpy() if hasattr(values, "detach") else np.asarray(values)
