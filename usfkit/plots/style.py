"""Shared look of the book's figures."""
import numpy as np
import seaborn as sns

__all__ = ["density_cmap", "apply_style", "to_numpy"]

density_cmap = "viridis"


def apply_style() -> None:
    """Seaborn's white-grid theme, with matplotlib's tab10 colours (the figures name ``tab:`` colours)."""
    sns.set_theme(context="notebook", style="whitegrid", palette="tab10", font_scale=0.85, rc={
        "figure.dpi": 110, "savefig.dpi": 150, "axes.spines.top": False, "axes.spines.right": False,
        "legend.frameon": False,
    })


def to_numpy(values) -> np.ndarray:
    """A tensor (on any device) or array-like as a numpy array."""
    return values.detach().cpu().numpy() if hasattr(values, "detach") else np.asarray(values)
