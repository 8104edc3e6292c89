"""Figures of chapter 02: the two terms of Eq. 5 during training, what happens to the decomposition
for a flow that is not uniformly scaling, and a saved run's figure (an ``eq5_check`` record, for when its
trained flows are not at hand: how exactly Eq. 5 held, and where training stopped relative to the
stationary point)."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from .style import to_numpy

__all__ = ["FLOW_COLOURS", "eq5_terms_over_training", "eq5_decomposition", "EPS", "eq5_run"]

FLOW_COLOURS = {"USFlow": "tab:blue", "NonUSFlow": "tab:red"}


def eq5_terms_over_training(histories: dict[str, list[dict]], constant: float, dim: int) -> Figure:
    """Per-epoch means of ``svdd_term`` (``||phi(x) - c||^2``) and ``logdet_term``
    (``-ln|det J|``; ``-ln psi_det(w)`` for a USF) next to the training NLL, one panel per
    term, one line per flow.  ``histories`` maps a flow name to
    :attr:`usfkit.train.FitResult.history` of :func:`usfkit.experiments.lossparts.train_flow_decomposed`.
    The dotted line in the first panel is ``d/2``, where a flow fitted by maximum likelihood
    puts the mean squared distance (chapter 02 derives why)."""
    fig, axes = plt.subplots(1, 3, figsize=(10.5, 3.6), layout="constrained")
    panels = [("svdd_term", "SVDD term", r"mean $\|\phi(x)-c\|^2$"),
              ("logdet_term", "log-determinant term", r"mean $-\ln|\det J_\phi(x)|$ (nats)"),
              ("train_loss", "training NLL", "mean NLL (nats)")]
    for ax, (key, title, ylabel) in zip(axes, panels):
        for name, rows in histories.items():
            epochs = [r["epoch"] for r in rows]
            ax.plot(epochs, [r[key] for r in rows], c=FLOW_COLOURS.get(name), label=name)
        ax.set(title=title, xlabel="epoch", ylabel=ylabel)
    axes[0].axhline(dim / 2, c="black", ls=":", lw=1, label=f"$d/2 = {dim / 2:g}$")
    for i, rows in enumerate(histories.values()):  # Eq. 5 re-assembled from the recorded terms
        axes[2].plot([r["epoch"] for r in rows], [r["svdd_term"] + r["logdet_term"] + constant for r in rows],
                     c="black", ls="--", lw=0.8, label="sum of the two terms + (d/2) ln π" if i == 0 else None)
    handles = {label: h for ax in axes for h, label in zip(*ax.get_legend_handles_labels())}
    fig.legend(handles.values(), handles.keys(), loc="outside lower center", ncol=len(handles), fontsize=8)
    return fig


def eq5_decomposition(parts: dict[str, dict], bins: int = 60) -> Figure:
    """Left: NLL against the SVDD term ``||phi(x) - c||^2`` for each test input (a USF puts
    every point on one line of slope 1).  Right: histogram of ``ln|det J_phi(x)|`` across the
    inputs (a USF has one value).  ``parts`` maps a flow name to the output of
    :func:`usfkit.experiments.lossparts.decompose`."""
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 4.2), layout="constrained")
    lo, hi = np.inf, -np.inf
    for name, p in parts.items():
        svdd, nll = to_numpy(p["svdd_term"]), to_numpy(p["nll"])
        ax.scatter(svdd, nll, s=4, alpha=0.4, linewidths=0, c=FLOW_COLOURS.get(name), label=name)
        line = svdd + float(p["logdet_term"]) + float(p["constant"])
        order = np.argsort(svdd)
        ax.plot(svdd[order], line[order], c="black", lw=0.8, ls="--")
        lo, hi = min(lo, svdd.min()), max(hi, svdd.max())
    ax.plot([], [], c="black", lw=0.8, ls="--", label="SVDD term + mean log-det term + (d/2) ln π (Eq. 5)")
    ax.set(title="per-sample NLL against the SVDD term", xlabel=r"$\|\phi(x)-c\|^2$",
           ylabel=r"$-\ln\hat p_X(x)$ (nats)")
    ax.legend(fontsize=8, markerscale=3)

    all_ld = np.concatenate([to_numpy(p["log_abs_det"]) for p in parts.values()])
    edges = np.linspace(all_ld.min() - 0.5, all_ld.max() + 0.5, bins + 1)
    for name, p in parts.items():
        ld = to_numpy(p["log_abs_det"])
        if np.ptp(ld) < 1e-3 * max(1.0, np.abs(ld).max()):
            bx.axvline(ld.mean(), c=FLOW_COLOURS.get(name), lw=2.5,
                       label=f"{name}: one value, {ld.mean():.3f}")
        else:
            bx.hist(ld, bins=edges, color=FLOW_COLOURS.get(name), alpha=0.6,
                    label=f"{name}: std {ld.std():.3f}")
    bx.set(title=r"$\ln|\det J_\phi(x)|$ across test inputs", xlabel=r"$\ln|\det J_\phi(x)|$ (nats)",
           ylabel="test inputs")
    bx.legend(fontsize=8)
    return fig


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
