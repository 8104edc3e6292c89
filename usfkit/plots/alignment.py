"""Figures of chapter 4 (paper Figures 2, 5, 6, 7, 8).

The summaries draw the columns of the experiment's table whose names they are given (the chapter passes
``experiments.alignment``'s ``RHO``, ``TAU`` and ``RHO_EST``): a view reads no experiment module."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.patches import Circle

from .style import density_cmap

__all__ = ["latent_panels", "norm_vs_loglik", "estimated_vs_true", "volume_map", "rho_by_dim", "alignment_summary"]

_SUB = 3000  # points per scatter panel


def _label(fig, out: dict) -> None:
    """Say under the figure which run drew it (``out["label"]``, e.g. "quick profile: 1 configuration(s) ...")."""
    if out.get("label"):
        fig.text(0.5, -0.01, out["label"], ha="center", va="top", fontsize=8, color="0.35")


def _sub(n: int, k: int = _SUB) -> np.ndarray:
    return np.random.default_rng(0).permutation(n)[: min(n, k)]


def _sigma_rings(ax, center, scale=1.0, label=True):
    for k in (1, 2, 3):
        ax.add_patch(Circle(center, k * scale, fill=False, ls="--", lw=0.9, color="k", alpha=0.6))
        if label:
            ax.annotate(f"{k}σ", (center[0] + k * scale * 0.71, center[1] + k * scale * 0.71), fontsize=7, alpha=0.7)


def latent_panels(out: dict, dim: int = 2):
    """Figure 2: the 2-D data and the latent spaces of Deep SVDD, NonUSFlow and USFlow,
    coloured by the true log-density of each input."""
    data = out["data"][dim]
    lp = data.test_log_prob
    idx = _sub(len(lp))
    vmin, vmax = np.percentile(lp, [1, 100])
    fig, axes = plt.subplots(2, 2, figsize=(9.5, 8.4), layout="constrained")
    axes = axes.ravel()
    x = data.test.numpy()
    sc = axes[0].scatter(x[idx, 0], x[idx, 1], c=lp[idx], s=4, cmap=density_cmap, vmin=vmin, vmax=vmax)
    axes[0].set_title("(a) data\n(colour: true ln p(x))")
    for letter, ax, method in zip("bcd", axes[1:], ("Deep SVDD", "NonUSFlow", "USFlow")):
        ev = out["best"][(dim, method)]
        if not ev.get("ok"):
            ax.set_title(f"{method}: every run failed")
            continue
        z = ev["latent"]
        ax.scatter(z[idx, 0], z[idx, 1], c=lp[idx], s=4, cmap=density_cmap, vmin=vmin, vmax=vmax)
        if ev.get("est_log_prob") is None:  # no density of its own (Deep SVDD): its hypersphere around c
            c = ev["model"].center.numpy()
            radius = np.percentile(ev["norm"], 99)
            ax.add_patch(Circle(c, radius, fill=False, ls="--", color="k"))
            ax.plot(*c, "k+", ms=10)
            ax.set_title(f"({letter}) {method} latent, ρ = {ev['rho']:.3f}\n(dashed: 99th-percentile radius)")
        else:  # a flow: its base distribution's rings
            _sigma_rings(ax, (0.0, 0.0))
            ax.set_title(f"({letter}) {method} latent, ρ = {ev['rho']:.3f}\n(dashed: base 1–3σ)")
        ax.set_aspect("equal", "datalim")
    axes[0].set_aspect("equal", "datalim")
    fig.colorbar(sc, ax=axes, shrink=0.8, label="true ln p(x)")
    _label(fig, out)
    return fig


def _grid(out: dict, methods, draw, xlabel: str, ylabel: str):
    """One panel per (method, dimension); ``draw(ax, ev, true_log_prob, idx, row)`` fills a panel."""
    dims = sorted({d for d, _ in out["best"]})
    fig, axes = plt.subplots(len(methods), len(dims), figsize=(2.6 * len(dims), 2.6 * len(methods) + 0.4),
                             squeeze=False)
    for i, method in enumerate(methods):
        for j, dim in enumerate(dims):
            ax, ev = axes[i, j], out["best"][(dim, method)]
            lp = out["data"][dim].test_log_prob
            if not ev.get("ok"):
                ax.set_title(f"{method}, d={dim}: failed")
                continue
            title = draw(ax, ev, lp, _sub(len(lp)), i)
            ax.set_title(f"{method}, d={dim}\n{title}", fontsize=8)
            if i == len(methods) - 1:
                ax.set_xlabel(xlabel)
            if j == 0:
                ax.set_ylabel(ylabel)
    fig.tight_layout()
    _label(fig, out)
    return fig


def norm_vs_loglik(out: dict, methods=("Deep SVDD", "NonUSFlow", "USFlow")):
    """Figure 5: true log-likelihood against latent norm, one row per method, one column per d."""
    def draw(ax, ev, lp, idx, row):
        ax.scatter(ev["norm"][idx], lp[idx], s=3, alpha=0.5, color=f"C{row}")
        return f"ρ={ev['rho']:.3f}  τ={ev['tau']:.3f}"

    return _grid(out, methods, draw, "latent norm ||z − c||", "true ln p(x)")


def estimated_vs_true(out: dict, methods=("NonUSFlow", "USFlow")):
    """Figure 6: estimated against true log-likelihood for the flows (the line is y = x)."""
    def draw(ax, ev, lp, idx, row):
        est = ev["est_log_prob"]
        ax.scatter(lp[idx], est[idx], s=3, alpha=0.5, color=f"C{row + 1}")
        lo, hi = np.percentile(np.concatenate([lp, est]), [0.5, 100])
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        return f"ρ(ln p, ln p̂) = {ev['rho_est']:.3f}"

    return _grid(out, methods, draw, "true ln p(x)", "estimated ln p̂(x)")


@torch.no_grad()
def volume_map(out: dict, method: str, dim: int = 2):
    """Figures 7/8: ``|det J|`` of the flow at every test sample, in input space (with the true
    density's contours) and in latent space (with the base's 1-3σ contours)."""
    data, ev = out["data"][dim], out["best"][(dim, method)]
    flow = ev["model"]
    x = data.test
    _, logdet = flow(x)
    logdet = logdet.numpy()
    idx = _sub(len(x))
    fig, axes = plt.subplots(1, 2, figsize=(9.5, 4.2), layout="constrained")
    g = np.linspace(-7, 6, 200)
    gx, gy = np.meshgrid(g, g)
    grid_lp = data.mixture.log_prob(np.stack([gx.ravel(), gy.ravel()], 1)).reshape(gx.shape)
    axes[0].contour(gx, gy, grid_lp, levels=np.linspace(grid_lp.max() - 8, grid_lp.max(), 8), colors="k",
                    linewidths=0.6, alpha=0.7)
    spread = np.ptp(logdet)
    vmin, vmax = (logdet.min(), logdet.max()) if spread > 1e-6 else (logdet[0] - 1, logdet[0] + 1)
    xs = x.numpy()
    sc = axes[0].scatter(xs[idx, 0], xs[idx, 1], c=logdet[idx], s=4, cmap="coolwarm", vmin=vmin, vmax=vmax)
    axes[0].set_title(f"{method}: input space, true density contours")
    z = ev["latent"]
    axes[1].scatter(z[idx, 0], z[idx, 1], c=logdet[idx], s=4, cmap="coolwarm", vmin=vmin, vmax=vmax)
    _sigma_rings(axes[1], (0.0, 0.0))
    axes[1].set_title(f"{method}: latent space, base 1–3σ\nln|det J| from {logdet.min():.3f} to {logdet.max():.3f}")
    for ax in axes:
        ax.set_aspect("equal", "datalim")
    fig.colorbar(sc, ax=axes, shrink=0.85, label="ln |det J_φ(x)|")
    _label(fig, out)
    return fig


def rho_by_dim(tables: dict, column: str):
    """The alignment summary as lines over the dimension: one colour per method, one line style per
    table (``{"label": summary table}``, e.g. this run and the committed full-profile run), so the
    runs can be read side by side.  ``column`` names the table's Spearman rho between the true
    log-density and the negative latent norm.  +1 is perfect alignment, 0 none."""
    import pandas as pd

    fig, ax = plt.subplots(figsize=(8.0, 3.8))
    styles = ["-", "--", ":", "-."]
    colours = {}
    for (label, table), style in zip(tables.items(), styles):
        pivot = pd.DataFrame(table).pivot(index="d", columns="method", values=column)
        for method in pivot.columns:
            line, = ax.plot(pivot.index, pivot[method], style, marker="o", color=colours.get(method),
                            label=f"{method} ({label})" if len(tables) > 1 else method)
            colours.setdefault(method, line.get_color())
        dims = pivot.index
    ax.set_xscale("log", base=2)
    ax.set_xticks(dims, [str(d) for d in dims])
    ax.set(xlabel="dimension d", ylabel="Spearman ρ (ln p, −‖z − c‖)", title="Alignment of latent norm and true density")
    ax.axhline(0, color="k", lw=0.6)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the axes: no line hidden
    fig.tight_layout()
    return fig


def alignment_summary(table, columns: tuple[str, str, str], label: str = ""):
    """A saved alignment summary (its ``table`` rows) over the dimension, one panel per statistic: Spearman
    rho and Kendall tau between the true log-density and the negative latent norm (Figure 5's statistics),
    and Spearman rho between true and estimated log-density for the flows (Figure 6's); ``columns`` names
    these three columns of the table, in this order.  One colour per
    method, explained by a legend above the panels; the dotted line at 1 is perfect alignment, what App. C says
    only the USF keeps.  The third panel has no Deep SVDD line (its title says so): Deep SVDD estimates no
    density."""
    import pandas as pd

    t = pd.DataFrame(table).replace({"nan": np.nan})
    fig, axes = plt.subplots(1, 3, figsize=(10.5, 4), layout="constrained", sharey=True)
    titles = ["Spearman ρ (ln p, −‖z − c‖)", "Kendall τ (ln p, −‖z − c‖)",
              "Spearman ρ (ln p, ln p̂)\nflows only: Deep SVDD has no density"]
    stats = list(zip(columns, titles, strict=True))
    colours = {"Deep SVDD": "tab:green", "NonUSFlow": "tab:red", "USFlow": "tab:blue"}
    for ax, (col, title) in zip(axes, stats):
        wide = t.pivot(index="d", columns="method", values=col).astype(float)
        for method in wide.columns:
            if wide[method].notna().any():
                ax.plot(wide.index, wide[method], "o-", color=colours.get(method), label=method)
        ax.axhline(1, color="k", ls=":", lw=0.8)
        ax.axhline(0, color="grey", lw=0.6)
        ax.set_xscale("log", base=2)
        ax.set_xticks(wide.index, [str(d) for d in wide.index])
        ax.set_xlabel("dimension d", fontsize=10)
        ax.set_title(title, fontsize=10)
    axes[0].set_ylabel("rank correlation", fontsize=10)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside upper center", ncol=3, fontsize=10)
    if label:
        fig.text(0.5, -0.02, label, ha="center", va="top", fontsize=8, color="0.35")
    return fig
