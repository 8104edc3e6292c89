"""Figures of chapter 3: hypersphere collapse, Proposition 1, exploding determinants and
the log-det prior.  Every function takes the plain dicts/arrays of
:mod:`usfkit.experiments.collapse`, :mod:`usfkit.proposition1` or
:func:`usfkit.flows.sample_lu_log_dets` and returns the matplotlib figure."""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np

from ..flows import PAPER_FLOWS

#: Colour per ``coupling`` (:data:`usfkit.flows.COUPLINGS`); legends show the paper's flow names.
COUPLING_COLORS = {"additive_lu": "tab:blue", "affine_lu": "tab:red"}
FLOW_NAMES = {coupling: name for name, coupling in PAPER_FLOWS.items()}


def _column(rows: list[dict], key: str) -> tuple[np.ndarray, np.ndarray]:
    return np.array([r["epoch"] for r in rows]), np.array([r[key] for r in rows], dtype=float)


def svdd_collapse_curves(runs: dict[str, dict]):
    """Deep SVDD variants over training: the training loss (``history``, the fit's per-epoch
    rows), the spread of the normal test embeddings and the test AUROC (epoch 0 = after pretraining
    and centring).  ``runs``: name -> run, as :func:`usfkit.experiments.collapse.svdd_variants` gives."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for name, run in runs.items():
        hist = run["history"]
        axes[0].plot([h["epoch"] for h in hist], [h["train_loss"] for h in hist], label=name)
        axes[1].plot(*_column(run["trajectory"], "spread"), label=name)
        axes[2].plot(*_column(run["trajectory"], "auroc"), label=name)
    axes[0].set(yscale="log", xlabel="epoch", ylabel=r"$\frac{1}{n}\sum\|\omega(x_i)-c\|^2$",
                title="training loss (Eq. 2, no decay term)")
    axes[1].set(yscale="log", xlabel="epoch", ylabel="std of embeddings (mean over coords)",
                title="spread of normal test embeddings")
    axes[2].set(xlabel="epoch", ylabel="AUROC", title="test AUROC (anomalies vs normal)", ylim=(0.4, 1.0))
    axes[2].axhline(0.5, color="grey", ls=":", lw=1)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def usf_no_collapse(trajectory: list[dict], base_std: float):
    """A USFlow on the same data: the two terms of Eq. 5 and the latent spread per epoch.
    A collapse would need ``||phi(x) - c||^2 -> 0``, which makes ``-ln psi_det`` blow up."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    ep, sq = _column(trajectory, "sq_dist")
    _, ld = _column(trajectory, "logdet_mean")
    axes[0].plot(ep, sq, label=r"$\mathbb{E}\|\phi(x)-c\|^2$ (Deep SVDD term)")
    axes[0].plot(ep, -ld, label=r"$-\ln\psi_{\det}(w)$")
    axes[0].set(xlabel="epoch", ylabel="value (nats)", title="Eq. 5 terms on test data, USFlow")
    axes[0].legend(fontsize=8)
    axes[1].plot(*_column(trajectory, "latent_spread"), color="tab:blue", label="USFlow latents")
    axes[1].axhline(base_std, color="grey", ls="--", lw=1, label=f"base std {base_std:.3f}")
    axes[1].set(xlabel="epoch", ylabel="std of latents (mean over coords)", title="latent spread",
                ylim=(0, None))
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    return fig


def prop1_figure(rows: list[dict], inversion: dict, max_points: int = 3000):
    """Left: Monte-Carlo loss of ``F_alpha`` against ``1/(alpha^2 (d-2))`` for every ``d``.
    Right: true log-density against the Deep SVDD distance of ``F_alpha`` (density inversion)."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    dims = sorted({r["d"] for r in rows})
    cmap = plt.get_cmap("viridis", len(dims))
    for i, d in enumerate(dims):
        sub = [r for r in rows if r["d"] == d]
        a = np.array([r["alpha"] for r in sub])
        grid = np.geomspace(a.min(), a.max(), 100)
        axes[0].plot(grid, 1 / (grid**2 * (d - 2)), color=cmap(i), lw=1)
        axes[0].scatter(a, [r["monte_carlo"] for r in sub], color=cmap(i), s=22, zorder=3, label=f"d = {d}")
    axes[0].set(xscale="log", yscale="log", xlabel=r"$\alpha$", ylabel=r"$L(\mathcal{N}, F_\alpha)$",
                title=r"loss: Monte Carlo (dots) vs $1/(\alpha^2(d-2))$ (lines)")
    alphas = sorted({r["alpha"] for r in rows})
    axes[0].set_xticks(alphas, [f"{a:g}" for a in alphas])
    axes[0].minorticks_off()
    axes[0].legend(fontsize=8)
    n = len(inversion["distance"])
    idx = np.random.default_rng(0).choice(n, size=min(n, max_points), replace=False)
    sc = axes[1].scatter(inversion["log_density"][idx], inversion["distance"][idx], c=inversion["norm"][idx],
                         s=4, cmap="viridis")
    fig.colorbar(sc, ax=axes[1], label=r"$\|x\|$")
    axes[1].set(yscale="log", xlabel=r"true $\ln \mathcal{N}(x)$", ylabel=r"$|F_\alpha(x) - c|$",
                title=f"density inversion (Spearman of $-\\ln\\mathcal{{N}}$ vs distance: "
                      f"{inversion['spearman_score']:+.3f})")
    fig.tight_layout()
    return fig


def logdet_trajectories(runs: list[dict]):
    """Per-epoch mean ``ln|det J|``, its input spread (std), the largest ``|ln det J|``, the
    test NLL and the largest LU condition number, one line per run, coloured by coupling.
    ``runs``: dicts with ``coupling``, ``seed``, ``status`` and ``trajectory``."""
    keys = [("logdet_mean", r"mean $\ln|\det J|$", "linear"),
            ("logdet_std", r"std of $\ln|\det J(x)|$ over inputs", "symlog"),
            ("logdet_absmax", r"max $|\ln|\det J||$", "linear"),
            ("nll", "test NLL (nats)", "log"),
            ("lu_cond", "max LU condition number", "log")]
    fig, grid = plt.subplots(2, 3, figsize=(14, 7))
    axes = grid.ravel()[: len(keys)]
    seen = set()
    for run in runs:
        color = COUPLING_COLORS.get(run["coupling"], "k")
        label = FLOW_NAMES.get(run["coupling"], run["coupling"]) if run["coupling"] not in seen else None
        seen.add(run["coupling"])
        ls = "-" if run["status"] == "ok" else "--"
        for ax, (key, _, _) in zip(axes, keys):
            ep, val = _column(run["trajectory"], key)
            ax.plot(ep, val, color=color, ls=ls, lw=1.2, label=label)
    for ax, (key, ylabel, scale) in zip(axes, keys):
        ax.set(xlabel="epoch", ylabel=ylabel, yscale=scale)
        if scale == "symlog":
            ax.set_yscale("symlog", linthresh=1e-3)
    handles, labels = axes[0].get_legend_handles_labels()
    grid.ravel()[-1].axis("off")
    grid.ravel()[-1].legend(handles, labels, loc="center", title="one line per seed\n(dashed: not ok)")
    fig.suptitle("high learning rate, no log-det prior")
    fig.tight_layout()
    return fig


def lu_prior_histograms(samples: dict[str, np.ndarray], variances: dict[str, float], sigma: float, shape):
    """Histograms of sampled ``ln|det J|`` per rule, with the analytic ``N(0, var)`` density."""
    fig, axes = plt.subplots(1, len(samples), figsize=(5 * len(samples), 3.6), sharey=True)
    axes = np.atleast_1d(axes)
    c, h, w = shape
    for ax, (rule, s) in zip(axes, samples.items()):
        s = np.asarray(s)
        var = variances[rule]
        lim = 4.5 * max(math.sqrt(v) for v in variances.values())
        grid = np.linspace(-lim, lim, 400)
        ax.hist(s, bins=80, range=(-lim, lim), density=True, alpha=0.5, color="tab:blue", label="sampled LU maps")
        ax.plot(grid, np.exp(-grid**2 / (2 * var)) / math.sqrt(2 * math.pi * var), color="k",
                label=f"$N(0, {var:.3g})$")
        ax.plot(grid, np.exp(-grid**2 / (2 * sigma**2)) / math.sqrt(2 * math.pi * sigma**2), color="tab:red",
                ls="--", lw=1, label=rf"target $N(0, \sigma^2={sigma**2:.3g})$")
        ax.set(xlabel=r"$\ln|\det J_C|$", title=f"rule '{rule}' on a {c}x{h}x{w} map: var {s.var():.3g}")
        ax.legend(fontsize=8)
    axes[0].set_ylabel("density")
    fig.tight_layout()
    return fig


def sigma_sweep_plot(runs: list[dict]):
    """The prior-scale sweep.  Left: mean ``ln|det J|`` over training, one line per run,
    coloured by ``sigma`` (USFlow solid, NonUSFlow dashed).  Middle: last-epoch ``ln|det J|`` (error
    bar: its std over inputs).  Right: last-epoch test NLL.  ``runs``: dicts with ``coupling``,
    ``sigma`` (``None`` = no prior), ``seed``, ``status`` and ``trajectory``."""
    sigmas = []
    for r in runs:
        if r["sigma"] not in sigmas:
            sigmas.append(r["sigma"])
    sigmas = sorted((s for s in sigmas if s is not None)) + ([None] if None in sigmas else [])
    labels = ["no prior" if s is None else f"{s:g}" for s in sigmas]
    cmap = plt.get_cmap("plasma", len(sigmas) + 1)
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.8))
    for r in runs:
        i = sigmas.index(r["sigma"])
        ls = "-" if r["coupling"] == "additive_lu" else "--"
        axes[0].plot(*_column(r["trajectory"], "logdet_mean"), color=cmap(i), ls=ls, lw=1.2,
                     label=f"{FLOW_NAMES.get(r['coupling'], r['coupling'])}, {labels[i]}" if r["seed"] == min(q["seed"] for q in runs) else None)
    axes[0].set(xlabel="epoch", ylabel=r"mean $\ln|\det J|$ (test)", title="log-determinant during training")
    axes[0].legend(fontsize=7, ncol=2)
    for k, (coupling, color) in enumerate(COUPLING_COLORS.items()):
        name = FLOW_NAMES[coupling]
        for i, s in enumerate(sigmas):
            sub = [r for r in runs if r["coupling"] == coupling and r["sigma"] == s]
            x = i + (k - 0.5) * 0.25 + np.linspace(-0.05, 0.05, max(len(sub), 1))[: len(sub)]
            last = [r["trajectory"][-1] for r in sub]
            axes[1].errorbar(x, [t["logdet_mean"] for t in last], yerr=[t["logdet_std"] for t in last], fmt="o",
                             color=color, ms=4, capsize=2, label=name if i == 0 else None)
            axes[2].scatter(x, [t["nll"] for t in last], color=color, s=16, label=name if i == 0 else None)
    for ax in axes[1:]:
        ax.set_xticks(range(len(sigmas)), labels)
        ax.set_xlabel(r"prior scale $\sigma$")
        ax.legend(fontsize=8)
    axes[1].set(ylabel=r"$\ln|\det J|$ on test data", title=r"last epoch $\ln|\det J|$ (bar: std over inputs)")
    axes[1].axhline(0, color="grey", ls=":", lw=1)
    axes[2].set(ylabel="test NLL (nats)", title="last-epoch test NLL")
    fig.tight_layout()
    return fig
