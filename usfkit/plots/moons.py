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

from ..metrics import auroc_se
from .style import density_cmap, to_numpy

__all__ = ["moons_figure", "density_map", "figure1_summary", "grid", "NORMAL", "OUTLIER", "BOUNDARY_COLOURS"]

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


def figure1_summary(runs: dict[str, dict]) -> Figure:
    """Figure 1's numbers from saved ``figure1_moons`` records (``runs``: label -> the record's ``data``,
    e.g. ``{"full profile": ...}``), for when the trained models are not at hand.  Left: AUROC of Deep
    SVDD, of the USFlow's NLL and of its latent norm, with the test-sample standard error
    (:func:`usfkit.metrics.auroc_se`) as error bar.  Middle: the share of test normals (blue) and of
    outliers (red) each model flags at the 99 % training threshold, with a legend.  Right: the share of the
    USFlow's normal test latents inside the 1-3 sigma circles against the chi-square expectation of the base.
    Several runs are told apart by hatching (the first plain)."""
    fig, axes = plt.subplots(1, 3, figsize=(12, 4.2), layout="constrained")
    width = 0.8 / len(runs)
    kind_colors = {"test normals flagged": "tab:blue", "outliers flagged": "tab:red"}
    hatches = ["", "//", "..", "xx"]
    for i, (label, d) in enumerate(runs.items()):
        hatch = hatches[i % len(hatches)]
        n_pos, n_neg = d["settings"]["n_outliers"], d["settings"]["n_test"]
        aucs = {"Deep SVDD": d["auroc"]["Deep SVDD"], "USFlow\n(NLL)": d["auroc"]["USFlow"],
                "USFlow\n(latent norm)": d["auroc_usf_latent_norm"]}
        x = np.arange(len(aucs)) + (i - (len(runs) - 1) / 2) * width
        se = [100 * auroc_se(a, n_pos, n_neg) for a in aucs.values()]
        bars = axes[0].bar(x, [100 * a for a in aucs.values()], width, yerr=se, capsize=3, color="0.6",
                           edgecolor="k", hatch=hatch, label=label)
        axes[0].bar_label(bars, fmt="%.2f", fontsize=10, padding=2)
        axes[0].set_xticks(np.arange(len(aucs)), list(aucs), fontsize=10)
        flagged = d["flagged"]
        models = ("Deep SVDD", "USFlow")
        for j, kind in enumerate(kind_colors):
            x = np.arange(len(models)) + (j - 0.5) * 0.4 + (i - (len(runs) - 1) / 2) * 0.4 / len(runs)
            who = "test normals" if kind.startswith("test") else "outliers"
            fbars = axes[1].bar(x, [100 * flagged[kind][m] for m in models], 0.4 / len(runs), color=kind_colors[kind],
                                edgecolor="k", hatch=hatch, label=who if i == 0 else None)
            axes[1].bar_label(fbars, fmt="%.1f", fontsize=10, padding=2)
        axes[1].set_xticks(np.arange(len(models)), models, fontsize=11)
        inside = d["inside_k_sigma"]
        ks = list(inside["expected (chi-square, 2 dof)"])
        axes[2].plot(ks, [100 * inside["observed (test normals)"][k] for k in ks], "o-",
                     color="tab:orange", alpha=1 - 0.3 * i, label=f"observed ({label})")
    axes[2].plot(ks, [100 * inside["expected (chi-square, 2 dof)"][k] for k in ks], "k--", marker="s",
                 label="expected (base)")
    lows = [100 * min(d["auroc"]["Deep SVDD"], d["auroc"]["USFlow"]) for d in runs.values()]
    axes[0].set_ylim(max(0, min(lows) - 15), 100)
    axes[0].set_ylabel("AUROC (%)", fontsize=11)
    axes[0].set_title("AUROC (error bar: test-sample s.e.)", fontsize=12)
    axes[1].set_ylim(0, 105)
    axes[1].set_ylabel("flagged at the 99 % threshold (%)", fontsize=11)
    axes[1].set_title("share of each test group flagged", fontsize=12)
    axes[1].legend(fontsize=10, loc="upper left")
    axes[2].set_ylabel("normal test latents inside (%)", fontsize=11)
    axes[2].set_title("USFlow latents vs base", fontsize=12)
    axes[2].legend(fontsize=10)
    for ax in axes:
        ax.tick_params(labelsize=10)
    if len(runs) > 1:
        axes[0].legend(fontsize=10, loc="lower right")
    return fig
