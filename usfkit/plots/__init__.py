"""Figures of the book, one module per topic; everything is re-exported here, so
``from usfkit import plots; plots.latent_panels(...)`` works."""
from .style import apply_style, density_cmap  # noqa: F401
from .alignment import estimated_vs_true, latent_panels, norm_vs_loglik, volume_map  # noqa: F401
from .moons import density_map, moons_figure  # noqa: F401
