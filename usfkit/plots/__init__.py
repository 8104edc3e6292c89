"""Figures of the book, one module per topic; everything is re-exported here, so
``from usfkit import plots; plots.latent_panels(...)`` works."""
from .style import apply_style, density_cmap  # noqa: F401
from .alignment import estimated_vs_true, latent_panels, norm_vs_loglik, rho_by_dim, volume_map  # noqa: F401
from .alignment import alignment_summary  # noqa: F401
from .moons import density_map, moons_figure  # noqa: F401
from .loss_terms import eq5_decomposition, eq5_run, eq5_terms_over_training  # noqa: F401
from .collapse import logdet_trajectories, lu_prior_histograms, prop1_figure, sigma_sweep_plot, svdd_collapse_curves, usf_no_collapse  # noqa: F401,E501
from .collapse import collapse_overview  # noqa: F401
from .tabular import benchmark_boxplot, pairwise_grid, seed_std_pairs  # noqa: F401
from .vae import elbo_history, vae_class_auroc  # noqa: F401
from .image import ablation as image_ablation, anomaly_maps, loss_curves, mean_std_bars  # noqa: F401
from .moons import figure1_summary  # noqa: F401
from .report import claims_figure  # noqa: F401

__all__ = ["apply_style", "density_cmap", "estimated_vs_true", "latent_panels", "norm_vs_loglik", "rho_by_dim",
           "volume_map", "alignment_summary", "density_map", "moons_figure", "eq5_decomposition",
           "eq5_terms_over_training", "logdet_trajectories", "lu_prior_histograms", "prop1_figure",
           "sigma_sweep_plot", "svdd_collapse_curves", "usf_no_collapse", "collapse_overview", "benchmark_boxplot",
           "pairwise_grid", "seed_std_pairs", "elbo_history", "vae_class_auroc", "image_ablation", "anomaly_maps",
           "loss_curves", "mean_std_bars", "figure1_summary", "eq5_run", "claims_figure"]
