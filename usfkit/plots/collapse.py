"""Figures of chapter 3: hypersphere collapse, Proposition 1, exploding determinants and
the log-det prior.  Every function takes the plain dicts/arrays of
:mod:`usfkit.experiments.collapse`, :mod:`usfkit.proposition1` or
:func:`usfkit.models.flows.sample_lu_log_dets` and returns the matplotlib figure."""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np

from ..models.flows import PAPER_FLOWS

__all__ = ["COUPLING_COLORS", "FLOW_NAMES", "auroc_limits", "svdd_collapse_curves", "usf_no_collapse",
           "prop1_figure", "logdet_trajectories", "lu_prior_histograms", "SIGMA_COLORS", "FLOW_MARKERS",
           "FLOW_LINES", "sigma_colors", "sigma_sweep_plot", "collapse_overview"]

#: Colour per ``coupling`` (:data:`usfkit.models.flows.COUPLINGS`); legends show the paper's flow names.
COUPLING_COLORS = {"additive_lu": "tab:blue", "affine_lu": "tab:red"}
FLOW_NAMES = {coupling: name for name, coupling in PAPER_FLOWS.items()}


def _column(rows: list[dict], key: str) -> tuple[np.ndarray, np.ndarray]:
    return np.array([r["epoch"] for r in rows]), np.array([r[key] for r in rows], dtype=float)


def auroc_limits(values, margin: float = 0.03) -> tuple[float, float]:
    """y-limits for an AUROC axis: from just below the smaller of the lowest value and 0.5 (chance) up
    to 1, so no curve is cut off."""
    finite = [v for v in np.ravel(np.asarray(values, dtype=float)) if np.isfinite(v)]
    low = min([0.5, *finite])
    return max(0.0, low - margin), 1.0 + margin / 3


def svdd_collapse_curves(runs: dict[str, dict]):
    """Deep SVDD variants over training: the training loss (``history``, the fit's per-epoch
    rows), the spread of the normal test embeddings and the test AUROC (epoch 0 = after pretraining
    and centring).  A spread of exactly 0 cannot be drawn on the log axis: those epochs get a
    triangle on the axis' lower edge.  A variant whose embeddings were already constant when one-class
    training started is marked "(constant from the start)" in the legend.  The legend sits under the panels.
    ``runs``: name -> run, as :func:`usfkit.experiments.collapse.svdd_variants` gives."""
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.7))
    zeros = {}
    for name, run in runs.items():
        hist = run["history"]
        if run["trajectory"] and run["trajectory"][0]["spread"] == 0:
            name = f"{name} (constant from the start)"
        line, = axes[0].plot([h["epoch"] for h in hist], [h["train_loss"] for h in hist], label=name)
        ep, spread = _column(run["trajectory"], "spread")
        axes[1].plot(ep, np.where(spread > 0, spread, np.nan), color=line.get_color())
        if (spread == 0).any():
            zeros[name] = (ep[spread == 0], line.get_color())
        axes[2].plot(*_column(run["trajectory"], "auroc"), color=line.get_color())
    axes[0].set(yscale="log", xlabel="epoch", ylabel=r"$\frac{1}{n}\sum\|\omega(x_i)-c\|^2$",
                title="training loss\n(Eq. 2 without decay)")
    axes[1].set(yscale="log", xlabel="epoch", ylabel="embedding std (mean over coords)",
                title="spread of normal\ntest embeddings")
    handles, labels = axes[0].get_legend_handles_labels()
    if zeros:
        bottom = axes[1].get_ylim()[0]
        for ep, color in zeros.values():
            mark = axes[1].scatter(ep, np.full(len(ep), bottom), marker="v", s=22, color=color, clip_on=False,
                                   zorder=3)
        axes[1].set_ylim(bottom=bottom)
        handles.append(mark if len(zeros) == 1 else plt.Line2D([], [], ls="", marker="v", color="grey"))
        labels.append("spread exactly 0 (float32)")
    every = [r["auroc"] for run in runs.values() for r in run["trajectory"]]
    axes[2].set(xlabel="epoch", ylabel="AUROC", title="test AUROC\n(anomalies vs normal)", ylim=auroc_limits(every))
    axes[2].axhline(0.5, color="grey", ls=":", lw=1)
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=8, bbox_to_anchor=(0.5, 0.0))
    return fig


def usf_no_collapse(trajectory: list[dict], base_std: float, dim: int | None = None):
    """A USFlow on the same data: the two terms of Eq. 5 and the latent spread per epoch.
    A collapse would need ``||phi(x) - c||^2 -> 0``, which makes ``-ln psi_det`` blow up.
    With ``dim``, the value of ``E||phi(x) - c||^2`` at a perfect fit, ``dim * base_std^2`` (d/2 for
    the base of Eq. 5), is drawn as a reference line."""
    fig, axes = plt.subplots(1, 2, figsize=(9.5, 3.6))
    ep, sq = _column(trajectory, "sq_dist")
    _, ld = _column(trajectory, "logdet_mean")
    axes[0].plot(ep, sq, label=r"$\mathbb{E}\|\phi(x)-c\|^2$ (Deep SVDD term)")
    axes[0].plot(ep, -ld, label=r"$-\ln\psi_{\det}(w)$")
    if dim is not None:
        axes[0].axhline(dim * base_std**2, color="tab:blue", ls="--", lw=1,
                        label=rf"perfect fit: $d\,\sigma^2 = {dim * base_std**2:g}$ ($\sigma$: base std)")
    axes[0].set(xlabel="epoch", ylabel="value (nats)", title="Eq. 5 terms on test data, USFlow")
    axes[0].legend(fontsize=8)
    axes[1].plot(*_column(trajectory, "latent_spread"), color="tab:blue", label="USFlow latents")
    axes[1].axhline(base_std, color="grey", ls="--", lw=1, label=f"base std {base_std:.3f}")
    axes[1].set(xlabel="epoch", ylabel="std of latents (mean over coords)", title="latent spread",
                ylim=(0, None))
    axes[1].legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    return fig


def prop1_figure(rows: list[dict], inversion: dict, max_points: int = 3000):
    """Left: Monte-Carlo loss of ``F_alpha`` against ``1/(alpha^2 (d-2))`` for every ``d``.
    Right: true log-density against the Deep SVDD distance of ``F_alpha`` (density inversion)."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
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
    test NLL and the largest LU condition number, one line per run, coloured by flow (blue USFlow,
    red NonUSFlow), dashed for a run that went wrong; the legend explaining colours and line styles
    sits under the title, above the panels.  ``runs``: dicts with ``coupling``, ``seed``, ``status`` and
    ``trajectory``."""
    keys = [("logdet_mean", r"mean $\ln|\det J|$", "linear"),
            ("logdet_std", r"std of $\ln|\det J(x)|$ over inputs", "symlog"),
            ("logdet_absmax", r"max $|\ln|\det J||$", "linear"),
            ("nll", "test NLL (nats)", "log"),
            ("lu_cond", "max LU condition number", "log")]
    fig, grid = plt.subplots(3, 2, figsize=(10, 9))
    axes = grid.ravel()[: len(keys)]
    for run in runs:
        color = COUPLING_COLORS.get(run["coupling"], "k")
        ls = "-" if run["status"] == "ok" else "--"
        for ax, (key, _, _) in zip(axes, keys):
            ep, val = _column(run["trajectory"], key)
            ax.plot(ep, val, color=color, ls=ls, lw=1.2)
    for ax, (key, ylabel, scale) in zip(axes, keys):
        ax.set_xlabel("epoch", fontsize=10)
        ax.set_ylabel(ylabel, fontsize=10)
        ax.set_yscale(scale)
        if scale == "symlog":
            ax.set_yscale("symlog", linthresh=1e-3)
        ax.tick_params(labelsize=9)
    couplings = [c for c in COUPLING_COLORS if any(r["coupling"] == c for r in runs)]
    handles = [plt.Line2D([], [], color=COUPLING_COLORS[c], lw=2, label=FLOW_NAMES.get(c, c)) for c in couplings]
    handles += [plt.Line2D([], [], color="grey", ls="-", label="run ok"),
                plt.Line2D([], [], color="grey", ls="--", label="run went wrong")]
    grid.ravel()[-1].axis("off")
    fig.suptitle("this chapter's section 3: high learning rate, no log-det prior (one line per seed)", fontsize=12)
    fig.legend(handles=handles, fontsize=10, loc="upper center", ncol=len(handles), bbox_to_anchor=(0.5, 0.965))
    fig.tight_layout(rect=(0, 0, 1, 0.94))
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


#: Colours of the prior scales in the sweep figure, smallest sigma first (qualitative, none of them the
#: coupling colours); "no prior" is always black.
SIGMA_COLORS = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d"]
FLOW_MARKERS = {"additive_lu": "o", "affine_lu": "^"}
FLOW_LINES = {"additive_lu": "-", "affine_lu": "--"}


def sigma_colors(sigmas) -> dict:
    """Colour per prior scale: :data:`SIGMA_COLORS` in increasing order of sigma, black for ``None``."""
    finite = sorted(s for s in set(sigmas) if s is not None)
    if len(finite) > len(SIGMA_COLORS):
        raise ValueError(f"at most {len(SIGMA_COLORS)} prior scales can be told apart, got {len(finite)}")
    return {**{s: SIGMA_COLORS[i] for i, s in enumerate(finite)}, None: "black"}


def sigma_sweep_plot(runs: list[dict]):
    """The prior-scale sweep, coloured by ``sigma`` (:func:`sigma_colors`), USFlow solid/circles, NonUSFlow
    dashed/triangles, one legend beside the top panel.  Top: mean ``ln|det J|`` over training, one line per
    run.  Bottom left: last-epoch ``ln|det J|`` (error bar: its std over inputs).  Bottom right: last-epoch
    test NLL.  ``runs``: dicts with ``coupling``, ``sigma`` (``None`` = no prior), ``seed``, ``status`` and
    ``trajectory``."""
    present = {r["sigma"] for r in runs}
    sigmas = sorted(s for s in present if s is not None) + ([None] if None in present else [])
    labels = ["no prior" if s is None else f"{s:g}" for s in sigmas]
    colors = sigma_colors(sigmas)
    couplings = [c for c in FLOW_LINES if any(r["coupling"] == c for r in runs)]
    fig = plt.figure(figsize=(9.5, 6.8))
    top = fig.add_subplot(2, 1, 1)
    bottom = [fig.add_subplot(2, 2, 3), fig.add_subplot(2, 2, 4)]
    for r in runs:
        top.plot(*_column(r["trajectory"], "logdet_mean"), color=colors[r["sigma"]],
                 ls=FLOW_LINES.get(r["coupling"], ":"), lw=1.2)
    top.set(xlabel="epoch", ylabel=r"mean $\ln|\det J|$ (test)", title="log-determinant during training")
    for k, coupling in enumerate(couplings):
        for i, s in enumerate(sigmas):
            sub = [r for r in runs if r["coupling"] == coupling and r["sigma"] == s]
            x = i + (k - (len(couplings) - 1) / 2) * 0.25 + np.linspace(-0.05, 0.05, max(len(sub), 1))[: len(sub)]
            last = [r["trajectory"][-1] for r in sub]
            bottom[0].errorbar(x, [t["logdet_mean"] for t in last], yerr=[t["logdet_std"] for t in last],
                               fmt=FLOW_MARKERS[coupling], color=colors[s], ms=5, capsize=2)
            bottom[1].scatter(x, [t["nll"] for t in last], color=colors[s], marker=FLOW_MARKERS[coupling], s=22)
    for ax in bottom:
        ax.set_xticks(range(len(sigmas)), labels)
        ax.set_xlabel(r"prior scale $\sigma$")
    bottom[0].set(ylabel=r"$\ln|\det J|$ on test data", title="last epoch $\\ln|\\det J|$\n(bar: std over inputs)")
    bottom[0].axhline(0, color="grey", ls=":", lw=1)
    bottom[1].set(ylabel="test NLL (nats)", title="last-epoch test NLL")
    handles = [plt.Line2D([], [], color=colors[s], lw=2, label=lab) for s, lab in zip(sigmas, labels)]
    handles += [plt.Line2D([], [], color="grey", ls=FLOW_LINES[c], marker=FLOW_MARKERS[c], label=FLOW_NAMES[c])
                for c in couplings]
    top.legend(handles=handles, title=r"prior scale $\sigma$ / flow", loc="upper left", bbox_to_anchor=(1.01, 1.0),
               fontsize=8)
    fig.tight_layout()
    return fig


def collapse_overview(svdd_rows: list[dict], groups):
    """Chapter 3 at a glance, from a saved summary.  Left: how far each Deep SVDD variant shrank the spread
    of its normal test embeddings (end / start, log scale; a variant already constant at the start has no
    bar and is labelled "constant from the start", one that reached spread 0 during one-class training is
    labelled "collapsed in one-class training").  Right: the flow runs per part and flow
    (:func:`usfkit.experiments.collapse.failure_groups`), stacked ok / failed / diverged, the learning rate
    in the label and the runs outside the paper's learning rates hatched."""
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.4), layout="constrained",
                                 gridspec_kw={"width_ratios": [1, 1.15]})
    names = [r["variant"] for r in svdd_rows]
    ratios = [r["spread end"] / r["spread start"] if r["spread start"] else np.nan for r in svdd_rows]
    y = np.arange(len(names))
    ax.barh(y, [v if np.isfinite(v) and v > 0 else 0 for v in ratios], color="tab:purple")
    for i, (v, r) in enumerate(zip(ratios, svdd_rows)):
        if np.isfinite(v):
            text = f"{v:.1e}" + (" (collapsed in\none-class training)" if r["spread end"] == 0 else "")
        else:
            text = "no bar: constant from the start\n(collapsed in the pretraining)"
        ax.annotate(text, (1e-7, i), va="center", fontsize=9, xytext=(3, 0), textcoords="offset points")
    ax.set_yticks(y, [f"{n}\n(λ = {r['weight decay']:g})" for n, r in zip(names, svdd_rows)], fontsize=9)
    ax.invert_yaxis()
    ax.set(xscale="log", xlim=(1e-7, 2), xlabel="spread end / start of one-class training")
    ax.set_title("Deep SVDD: embedding spread", fontsize=11)
    labels = [f"{r['part'].split(':')[0]}: {r['flow']}\nlr {r['lr']:g}" for _, r in groups.iterrows()]
    y = np.arange(len(groups))
    left = np.zeros(len(groups))
    for status, colour in (("ok", "tab:green"), ("failed", "black"), ("diverged", "tab:red")):
        values = groups[status].to_numpy(dtype=float)
        bars = bx.barh(y, values, left=left, color=colour, label=status)
        for bar, inside in zip(bars, ~groups["paper's lr"].to_numpy()):
            if inside:
                bar.set_hatch("//")
                bar.set_edgecolor("white")
        left += values
    for i, (_, r) in enumerate(groups.iterrows()):
        bx.annotate(f"{r['runs'] - r['ok']} of {r['runs']} wrong", (left[i], i), va="center", fontsize=9,
                    xytext=(3, 0), textcoords="offset points")
    bx.set_yticks(y, labels, fontsize=9)
    bx.invert_yaxis()
    bx.set(xlabel="runs", xlim=(0, left.max() * 1.5))
    bx.set_title("flow runs per section of this chapter\n(hatched: above the paper's learning rates)", fontsize=11)
    bx.legend(fontsize=9, loc="upper right")
    return fig
