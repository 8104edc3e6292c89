"""Shared look of the book's figures."""
import matplotlib as mpl

density_cmap = "viridis"


def apply_style() -> None:
    mpl.rcParams.update({
        "figure.dpi": 110, "savefig.dpi": 150, "axes.spines.top": False, "axes.spines.right": False,
        "axes.grid": True, "grid.alpha": 0.25, "font.size": 10, "axes.titlesize": 11,
        "legend.frameon": False,
    })
