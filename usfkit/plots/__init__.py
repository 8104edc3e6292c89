"""Figures of the book, one module per topic; everything is re-exported here, so
``from usfkit import plots; plots.latent_panels(...)`` works."""
from .style import apply_style, density_cmap  # noqa: F401
