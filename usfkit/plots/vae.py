"""Figures of chapter 06 (VAE-USFlow, paper App. B.4 / F.3)."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

__all__ = ["METHOD_COLORS", "vae_class_auroc", "elbo_history"]

METHOD_COLORS = {"VAE-USFlow": "tab:blue", "VAE-NonUSFlow": "tab:orange"}


def _marker(valid: int, runs: int) -> str:
    """Figure 11 marks the number of valid runs: all valid = circle, then square, triangle, ...; none = cross."""
    return "X" if valid == 0 else "o" if valid == runs else {2: "s", 1: "^"}.get(valid, "D")


def vae_class_auroc(summary, ax=None, title: str = "VAE-Flow on MVTec AD (image AUC-ROC)", percent: bool = False):
    """Figure 11: per-class mean image AUROC ± std of each method over its valid runs, side by side;
    the marker shows the number of valid runs (all valid = circle; a cross at chance = no valid run).
    ``summary``: ``usfkit.experiments.vae.summarize`` (columns class, method, mean, std, valid, runs, AUC-ROC as
    fractions).  ``percent``: the y-axis in % (as the chapters' text states AUC-ROC), else as a fraction."""
    if percent:
        summary = summary.assign(mean=100 * summary["mean"], std=100 * summary["std"])
    unit = 100.0 if percent else 1.0
    classes = list(dict.fromkeys(summary["class"]))
    methods = list(dict.fromkeys(summary["method"]))
    offset = {m: (j - (len(methods) - 1) / 2) * 0.35 for j, m in enumerate(methods)}
    d = summary.assign(x=[classes.index(c) + offset[m] for c, m in zip(summary["class"], summary["method"])],
                       y=summary["mean"].where(summary["valid"] > 0, 0.5 * unit),
                       **{"valid runs": [f"{v}/{n}" for v, n in zip(summary["valid"], summary["runs"])]})
    markers = {f"{v}/{n}": _marker(v, n) for v, n in zip(summary["valid"], summary["runs"])}
    ax = ax or plt.subplots(figsize=(max(5, 0.55 * len(classes) + 2.5), 3.6))[1]
    for m, g in d.groupby("method", sort=False):
        ax.errorbar(g["x"], g["y"], yerr=g["std"].where(g["valid"] > 1), fmt="none", ecolor=METHOD_COLORS.get(m),
                    capsize=3, lw=1.2)
    sns.scatterplot(data=d, x="x", y="y", hue="method", hue_order=methods, palette=METHOD_COLORS, style="valid runs",
                    style_order=sorted(markers, key=lambda k: -int(k.split("/")[0])), markers=markers, s=55,
                    edgecolor="white", linewidth=0.6, ax=ax, zorder=3)
    ax.axhline(0.5 * unit, color="k", lw=0.6, ls="--")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    # a class is 1 wide; the AUC-ROC axis spans at least 0.4-1, so that runs near chance do not look far apart
    low = min(0.4 * unit, float(np.nanmin(d["y"] - d["std"].where(d["valid"] > 1).fillna(0))) - 0.02 * unit)
    ax.set(xlabel="", ylabel="image AUC-ROC" + (" (%)" if percent else ""), title=title,
           xlim=(-0.6, len(classes) - 0.4), ylim=(low, 1.02 * unit))
    ax.grid(False, axis="x")
    sns.move_legend(ax, "upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    return ax


def elbo_history(runs, cls: str, seed: int = 0):
    """The ELBO's three terms over training (per-epoch means) for both priors on one class:
    reconstruction log-likelihood, log q (minus the encoder entropy) and the prior log-density."""
    terms = [("rec_loglik", "E ln p(x|z)"), ("log_q", "E ln q(z|x)"), ("log_prior", "E ln p_Z(z)")]
    fig, axes = plt.subplots(1, 3, figsize=(9.5, 3.0))
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
