"""Figures of chapter 06 (VAE-USFlow, paper App. B.4 / F.3)."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D

VALID_MARKERS = {3: "o", 2: "s", 1: "^", 0: "X"}  # Figure 11: the marker says how many runs were valid
METHOD_COLORS = {"VAE-USFlow": "tab:blue", "VAE-NonUSFlow": "tab:orange"}


def _marker(valid: int, runs: int) -> str:
    if valid == runs:
        return "o"
    return VALID_MARKERS.get(valid, "D") if valid else "X"


def vae_class_auroc(summary, ax=None, title: str = "VAE-Flow on MVTec AD (image AUC-ROC)"):
    """Figure 11: per-class mean image AUROC ± std of each method over its valid runs; the
    marker shows the number of valid runs (all valid = circle; a cross at 0.5 = no valid run)."""
    classes = list(dict.fromkeys(summary["class"]))
    methods = list(dict.fromkeys(summary["method"]))
    ax = ax or plt.subplots(figsize=(max(5, 0.6 * len(classes) + 2), 3.6))[1]
    width = 0.35
    for j, method in enumerate(methods):
        rows = summary[summary["method"] == method].set_index("class")
        for i, cls in enumerate(classes):
            r = rows.loc[cls]
            x = i + (j - (len(methods) - 1) / 2) * width
            y = r["mean"] if r["valid"] else 0.5
            ax.errorbar(x, y, yerr=r["std"] if r["valid"] > 1 else None, color=METHOD_COLORS.get(method),
                        marker=_marker(int(r["valid"]), int(r["runs"])), ms=7, capsize=3, lw=1.2,
                        mfc="white" if not r["valid"] else METHOD_COLORS.get(method))
    ax.axhline(0.5, color="k", lw=0.6, ls="--")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_ylabel("image AUC-ROC")
    ax.set_title(title)
    runs = int(summary["runs"].max())
    handles = [Line2D([], [], color=METHOD_COLORS.get(m), marker="o", ls="", label=m) for m in methods]
    handles += [Line2D([], [], color="gray", marker=_marker(v, runs), ls="", label=f"{v}/{runs} valid runs")
                for v in range(runs, -1, -1)]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    return ax


def elbo_history(runs, cls: str, seed: int = 0):
    """The ELBO's three terms over training (per-epoch means) for both priors on one class:
    reconstruction log-likelihood, log q (minus the encoder entropy) and the prior log-density."""
    terms = [("rec_loglik", "E ln p(x|z)"), ("log_q", "E ln q(z|x)"), ("log_prior", "E ln p_Z(z)")]
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.0))
    for _, r in runs[(runs["class"] == cls) & (runs["seed"] == seed)].iterrows():
        hist = r["history"] or []
        epochs = [h["epoch"] for h in hist]
        for ax, (key, label) in zip(axes, terms):
            ax.plot(epochs, [float(h.get(key, np.nan)) for h in hist],  # saved JSON writes nan as "nan"
                    color=METHOD_COLORS.get(r["method"]),
                    label=r["method"] + ("" if r["ok"] else " (failed)"))
            ax.set_title(label)
            ax.set_xlabel("epoch")
    axes[0].set_yscale("symlog")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"ELBO terms during training · {cls} · seed {seed}", y=1.02)
    fig.tight_layout()
    return fig
