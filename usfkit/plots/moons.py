"""Figure 1 of the paper, drawn from trained models on the 2-D moons (chapter 01).

* :func:`moons_figure`: input space with outliers (and, optionally, each model's
  decision boundary), Deep SVDD's latent space with its hypersphere, and the flow's
  latent space with contours of its Gaussian base;
* :func:`density_map`: a flow's log-density on a grid in input space, samples on top.
"""
from __future__ import annotations

from typing import Callable

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Circle

from .style import density_cmap, to_numpy

NORMAL = dict(s=6, c="tab:blue", alpha=0.5, linewidths=0)
OUTLIER = dict(s=28, c="tab:red", marker="x", linewidths=1.2)
BOUNDARY_COLOURS = ["black", "tab:orange", "tab:green", "tab:purple"]


def grid(lim: float, n: int) -> tuple[np.ndarray, np.ndarray, torch.Tensor]:
    """A square ``n x n`` grid on ``[-lim, lim]^2``: the two mesh arrays and the points as a float32 tensor."""
    axis = np.linspace(-lim, lim, n)
    gx, gy = np.meshgrid(axis, axis)
    pts = torch.from_numpy(np.stack([gx.ravel(), gy.ravel()], 1).astype(np.float32))
    return gx, gy, pts


@torch.no_grad()
def _on_grid(fn: Callable[[torch.Tensor], torch.Tensor], pts: torch.Tensor, shape) -> np.ndarray:
    return to_numpy(torch.cat([fn(chunk) for chunk in pts.split(8192)])).reshape(shape)


def _scatter(ax, pts, labels) -> None:
    pts, labels = to_numpy(pts), to_numpy(labels)
    ax.scatter(*pts[labels == 0].T, label="normal", **NORMAL)
    ax.scatter(*pts[labels == 1].T, label="outlier", **OUTLIER)


def _centre(ax, c, label: str = "centre $c$") -> None:
    ax.plot(*to_numpy(c), marker="+", c="black", ms=12, mew=2, ls="none", label=label)


def moons_figure(x: torch.Tensor, labels: torch.Tensor, svdd_latent: torch.Tensor, svdd_center: torch.Tensor,
                 svdd_radius: float, flow_latent: torch.Tensor, flow_center: torch.Tensor, flow_sigma: float,
                 boundaries: dict[str, tuple[Callable[[torch.Tensor], torch.Tensor], float]] | None = None,
                 aurocs: dict[str, float] | None = None, lim: float = 3.2, n_grid: int = 250) -> Figure:
    """Three panels in the layout of the paper's Figure 1, from real models.

    ``x``/``labels``: 2-D evaluation points (label 1 = outlier).  ``svdd_latent``: Deep
    SVDD's 2-D embeddings of ``x``, drawn with the hypersphere of radius ``svdd_radius``
    around ``svdd_center``.  ``flow_latent``: ``phi(x)``, drawn with the 1, 2, 3 sigma
    circles of the base ``N(flow_center, flow_sigma^2 I)``.  ``boundaries`` maps a model
    name to ``(score_fn, threshold)``; the level set ``score_fn(x) = threshold`` is drawn
    in input space (the model's decision boundary).  ``aurocs`` (model name -> AUROC; the
    names ``"Deep SVDD"`` and ``"USFlow"``) go into the panel titles.
    """
    aurocs = aurocs or {}
    fig, axes = plt.subplots(1, 3, figsize=(10.5, 4.4), layout="constrained")

    ax = axes[0]
    _scatter(ax, x, labels)
    if boundaries:
        gx, gy, pts = grid(lim, n_grid)
        for colour, (name, (fn, thr)) in zip(BOUNDARY_COLOURS, boundaries.items()):
            ax.contour(gx, gy, _on_grid(fn, pts, gx.shape), levels=[thr], colors=colour, linewidths=1.5,
                       linestyles="solid")
            ax.plot([], [], c=colour, label=f"{name} boundary")
    ax.set(title="input space", xlabel="$x_1$", ylabel="$x_2$", xlim=(-lim, lim), ylim=(-lim, lim), aspect="equal")
    _legend_below(ax)

    ax = axes[1]
    _scatter(ax, svdd_latent, labels)
    ax.add_patch(Circle(tuple(to_numpy(svdd_center)), svdd_radius, fill=False, ls="--", lw=1.5, color="black"))
    ax.plot([], [], c="black", ls="--", label="hypersphere (99th pct.)")
    _centre(ax, svdd_center)
    title = r"Deep SVDD latent $\omega(x, w)$"
    if "Deep SVDD" in aurocs:
        title += f"\nAUROC {aurocs['Deep SVDD']:.3f}"
    _zoom_to_normals(ax, svdd_latent, labels, svdd_center, svdd_radius)
    ax.set(title=title, xlabel="$\\omega_1$", ylabel="$\\omega_2$", aspect="equal")
    _legend_below(ax)

    ax = axes[2]
    _scatter(ax, flow_latent, labels)
    for k, ls in zip((1, 2, 3), (":", "--", "-.")):
        ax.add_patch(Circle(tuple(to_numpy(flow_center)), k * flow_sigma, fill=False, ls=ls, lw=1.3, color="black"))
        ax.plot([], [], c="black", ls=ls, label=f"{k}$\\sigma$")
    _centre(ax, flow_center)
    title = r"USFlow latent $\phi(x, w)$"
    if "USFlow" in aurocs:
        title += f"\nAUROC {aurocs['USFlow']:.3f}"
    _zoom_to_normals(ax, flow_latent, labels, flow_center, 3 * flow_sigma)
    ax.set(title=title, xlabel="$z_1$", ylabel="$z_2$", aspect="equal")
    _legend_below(ax)
    return fig


def _legend_below(ax) -> None:
    """The panel's legend under its x-axis label, where it covers no point."""
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2, fontsize=8, frameon=False)


def _zoom_to_normals(ax, latent, labels, center, radius, pad: float = 1.4) -> None:
    """Square limits around ``center`` that show the circle and all normal points with some room;
    far outliers may fall outside the frame (their count goes into the panel's corner)."""
    lat, lab, c = to_numpy(latent), to_numpy(labels), to_numpy(center)
    half = pad * max(radius, np.abs(lat[lab == 0] - c).max())
    ax.set_xlim(c[0] - half, c[0] + half)
    ax.set_ylim(c[1] - half, c[1] + half)
    outside = int((np.abs(lat - c) > half).any(1).sum())
    if outside:
        ax.text(0.98, 0.02, f"{outside} point(s) beyond the frame", transform=ax.transAxes, ha="right",
                va="bottom", fontsize=8)


def density_map(flow, x: torch.Tensor, labels: torch.Tensor | None = None, threshold: float | None = None,
                lim: float = 3.2, n_grid: int = 250, floor: float = -12.0) -> Figure:
    """The flow's log-density ``ln p(x)`` on a grid in input space, with the samples on top.

    ``threshold`` (a log-density) draws the level set ``{x : ln p(x) = threshold}``, the
    boundary of Eq. 1's anomaly region.  Values below ``floor`` share the darkest colour.
    """
    gx, gy, pts = grid(lim, n_grid)
    logp = _on_grid(flow.log_prob, pts, gx.shape)
    fig, ax = plt.subplots(figsize=(6.2, 5.2))
    mesh = ax.pcolormesh(gx, gy, np.maximum(logp, floor), cmap=density_cmap, shading="auto")
    fig.colorbar(mesh, ax=ax, label=rf"$\ln \hat p_X(x)$ (nats, clipped at {floor:g})")
    labels = torch.zeros(len(x), dtype=torch.long) if labels is None else labels
    pts_np, lab = to_numpy(x), to_numpy(labels)
    ax.scatter(*pts_np[lab == 0].T, s=4, c="white", alpha=0.6, linewidths=0, label="normal")
    ax.scatter(*pts_np[lab == 1].T, s=28, c="tab:red", marker="x", linewidths=1.2, label="outlier")
    if threshold is not None:
        ax.contour(gx, gy, logp, levels=[threshold], colors="tab:orange", linewidths=1.5, linestyles="solid")
        ax.plot([], [], c="tab:orange", label=r"$\ln \hat p_X = \ln\tau$")
    ax.set(title="USF density in input space", xlabel="$x_1$", ylabel="$x_2$", xlim=(-lim, lim),
           ylim=(-lim, lim), aspect="equal")
    ax.legend(loc="lower left", fontsize=8, facecolor="white", frameon=True)
    fig.tight_layout()
    return fig
