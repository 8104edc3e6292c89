"""Figure 3 of the paper (§5.1.2): AUC-ROC box plots per method over the ADBench
datasets (3a) and pairwise per-dataset comparisons (3b)."""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ..results import STD_DDOF

USF_COLOR, OTHER_COLOR = "#1f77b4", "#999999"


def benchmark_boxplot(wide: pd.DataFrame, title: str = "", ax=None):
    """Figure 3a: one box per method over datasets (per-dataset mean AUC-ROC in %), sorted
    left to right by mean; the square marks the mean, the text under each box is mean ± std."""
    w = wide * 100
    order = w.mean().sort_values(ascending=False).index
    ax = ax or plt.subplots(figsize=(1.3 * len(order) + 1.5, 4.2))[1]
    data = [w[m].dropna().to_numpy() for m in order]
    box = ax.boxplot(data, widths=0.55, patch_artist=True, showfliers=True,
                     medianprops={"color": "black"}, flierprops={"markersize": 3})
    for patch, m in zip(box["boxes"], order):
        patch.set_facecolor(USF_COLOR if m.startswith(("USFlow", "VAE-USFlow")) else OTHER_COLOR)
        patch.set_alpha(0.55)
    for i, (m, d) in enumerate(zip(order, data), start=1):
        ax.plot(i, d.mean(), "s", color="white", markeredgecolor="black", markersize=6, zorder=3)
        ax.scatter(np.full(len(d), i) + np.random.default_rng(i).uniform(-0.12, 0.12, len(d)), d, s=8,
                   color="black", alpha=0.35, zorder=2)
    ax.set_xticks(range(1, len(order) + 1))
    ax.set_xticklabels([f"{m}\n{w[m].mean():.2f} ± {w[m].std(ddof=STD_DDOF):.2f}\n(n={w[m].count()})" for m in order],
                       fontsize=8.5)
    ax.set_ylabel("AUC-ROC (%)")
    ax.set_title(title or "AUC-ROC over datasets, sorted by mean (square = mean)")
    return ax


def pairwise_grid(wide: pd.DataFrame, methods=("USFlow", "VAE-USFlow"), tie: float = 0.005, title: str = ""):
    """Figure 3b: for each of ``methods`` (rows) and each other method (columns), one point
    per dataset: the other method's AUC-ROC (x) against this one's (y).  Points above the
    diagonal are wins; the panel title counts wins / ties / losses (tie: |Δ| ≤ ``tie``)."""
    rows = [m for m in methods if m in wide.columns]
    others = [m for m in wide.columns]
    fig, axes = plt.subplots(len(rows), len(others) - 1, figsize=(2.3 * (len(others) - 1), 2.5 * len(rows)),
                             squeeze=False)
    for r, m in enumerate(rows):
        for c, o in enumerate([o for o in others if o != m]):
            ax = axes[r][c]
            both = wide[[m, o]].dropna() * 100
            d = both[m] - both[o]
            win, loss = d > 100 * tie, d < -100 * tie
            lo = math.floor(min(both.min().min(), 50) / 10) * 10 if len(both) else 0
            ax.plot([lo, 100], [lo, 100], "--", color="0.5", lw=0.8)
            ax.scatter(both[o], both[m], s=14, c=np.where(win, USF_COLOR, np.where(loss, "#d62728", "0.4")))
            ax.set_xlim(lo, 101), ax.set_ylim(lo, 101)
            ax.set_title(f"vs {o}: {int(win.sum())}/{int(len(d) - win.sum() - loss.sum())}/{int(loss.sum())}",
                         fontsize=9)
            ax.set_xlabel(f"{o} (%)", fontsize=8)
            if c == 0:
                ax.set_ylabel(f"{m} (%)", fontsize=9)
            ax.tick_params(labelsize=7)
    fig.suptitle(title or "Pairwise AUC-ROC per dataset (title: wins / ties / losses of the row method)",
                 fontsize=10)
    fig.tight_layout()
    return fig
