"""Chapter 02's figure of a saved run (an ``eq5_check`` record), for when its trained flows are not at
hand: how exactly Eq. 5 held, and where training stopped relative to the stationary point."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

__all__ = ["EPS", "eq5_run"]

#: machine precision of the two float types, the floor of the residuals
EPS = {"float32": float(np.finfo(np.float32).eps), "float64": float(np.finfo(np.float64).eps)}


def eq5_run(data: dict, label: str = "full profile") -> Figure:
    """Left: the largest relative residual of Eq. 5 per check (precision, source of ``ln|det J|``), on a
    log scale beside each float type's machine epsilon (the paper's Eq. 5 is exact: 0).  Middle: the
    USFlow's epoch-mean SVDD term against ``d/2``.  Right: its training and validation NLL.  The dotted
    vertical line marks the epoch early stopping restored (lowest validation NLL)."""
    fig, axes = plt.subplots(1, 3, figsize=(10.5, 3.5), layout="constrained")
    checks = data["usf_checks"]
    names = [f"{c['precision']}\n{c['ln|det J| from']}" for c in checks]
    values = [c["max relative residual"] for c in checks]
    colours = ["tab:blue" if c["precision"] == "float32" else "tab:green" for c in checks]
    axes[0].bar(range(len(checks)), values, color=colours)
    for prec, eps in EPS.items():
        axes[0].axhline(eps, color="tab:blue" if prec == "float32" else "tab:green", ls=":", lw=1,
                        label=f"{prec} eps")
    axes[0].set(yscale="log", ylabel="max relative residual", title=f"Eq. 5 per sample ({label})")
    axes[0].set_xticks(range(len(checks)), names, fontsize=7)
    axes[0].legend(fontsize=7)
    history = data["history"]["usf"]
    epochs = [r["epoch"] for r in history]
    best = min(history, key=lambda r: r["val_loss"])["epoch"]
    dim = data["settings"]["dim"]
    axes[1].plot(epochs, [r["svdd_term"] for r in history], "o-", ms=3, label="SVDD term (training batches)")
    axes[1].axhline(dim / 2, color="k", ls="--", lw=1, label=f"d/2 = {dim / 2:g}")
    axes[1].plot([best], [data["usf_mean_sq_dist_train"]], "r*", ms=10, label="restored model, training data")
    axes[1].set(xlabel="epoch", ylabel=r"mean $\|\phi(x)-c\|^2$", title="USFlow: SVDD term",
                ylim=(0, 2.5 * dim / 2 + 1))
    axes[2].plot(epochs, [r["train_loss"] for r in history], "o-", ms=3, label="training NLL")
    axes[2].plot(epochs, [r["val_loss"] for r in history], "s-", ms=3, label="validation NLL")
    lows = [min(r["train_loss"], r["val_loss"]) for r in history]
    axes[2].set(xlabel="epoch", ylabel="NLL (nats)", title="USFlow: loss", ylim=(min(lows) - 1, min(lows) + 15))
    for ax in axes[1:]:
        ax.axvline(best, color="r", ls=":", lw=1)
        ax.legend(fontsize=7)
    return fig
