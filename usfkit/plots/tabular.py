"""Figure 3 of the paper (§5.1.2): AUC-ROC box plots per method over the ADBench
datasets (3a) and pairwise per-dataset comparisons (3b), drawn with seaborn."""
from __future__ import annotations

import warnings

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from ..results import STD_DDOF
from ..paired import TIE_EPS, outcomes
from ..models import METHODS, OTHER_COLOUR as OTHER_COLOR, USF_COLOUR as USF_COLOR, usf_pairs

__all__ = ["PAPER_COLOR", "OUTCOME_COLORS", "benchmark_boxplot", "figure3a", "pairwise_grid", "seed_std_pairs"]

PAPER_COLOR = "#d62728"
OUTCOME_COLORS = {"row method better": USF_COLOR, "tie": "0.45", "row method worse": "#d62728"}


def benchmark_boxplot(wide: pd.DataFrame, title: str = "", ax=None, paper: dict | None = None, order=None,
                      apart: bool = False):
    """Figure 3a: one box per method over datasets (per-dataset mean AUC-ROC in %), left to right in ``order``
    (default: sorted by mean); the square marks the mean, the dots are the datasets, the text under each box is
    mean ± std (n datasets); a box over fewer datasets than the others is hatched.  ``apart``: those boxes are not
    ranked with the others but drawn to the right of a dashed line, under "n = k datasets, not ranked" (a mean over
    a subset is not comparable with means over all datasets).  Uniformly scaling models
    (:attr:`usfkit.models.MethodSpec.usf`: a flow with additive couplings, so a constant determinant) are blue
    (each registered method's :attr:`~usfkit.models.MethodSpec.color`).  ``paper``:
    ``{method: {"mean": .., "std": ..}}`` in % (``tabular.PAPER``), drawn as a red diamond with a ± std bar beside
    that method's box."""
    long = (wide * 100).melt(var_name="method", value_name="AUC-ROC (%)").dropna()
    by = long.groupby("method")["AUC-ROC (%)"]
    stats = by.agg(["mean", "count"]).assign(std=by.std(ddof=STD_DDOF)).sort_values("mean", ascending=False)
    fewer = stats["count"] < stats["count"].max()  # hatched: a box over fewer datasets than the others
    seq = [m for m in (order or []) if m in stats.index]
    seq += [m for m in stats.index if m not in seq]  # the order given, then the rest by mean
    ranked = [m for m in seq if not (apart and fewer[m])]
    unranked = [m for m in seq if apart and fewer[m]]
    slots = ranked + ([" "] if unranked else []) + unranked  # " ": an empty slot before the unranked boxes
    ax = ax or plt.subplots(figsize=(1.25 * len(slots) + 1.5, 4.2))[1]
    common = dict(data=long, x="method", y="AUC-ROC (%)", order=slots, ax=ax)
    with warnings.catch_warnings():  # seaborn 0.13.2 passes boxplot's `vert`, deprecated in matplotlib 3.11
        warnings.simplefilter("ignore", DeprecationWarning)
        sns.boxplot(**common, hue="method", legend=False, width=0.55, fliersize=0, boxprops={"alpha": 0.6},
                    palette={m: METHODS[m].color if m in METHODS else OTHER_COLOR for m in stats.index}, saturation=1,
                    medianprops={"color": "black"}, showmeans=True,
                    meanprops={"marker": "s", "markerfacecolor": "white", "markeredgecolor": "black",
                               "markersize": 7, "zorder": 4})
    sns.swarmplot(**common, color="black", alpha=0.45, size=3)
    ax.set_xticks(range(len(slots)), [f"{m}\n{stats.loc[m, 'mean']:.2f} ± {stats.loc[m, 'std']:.2f}\n"
                                      f"(n={stats.loc[m, 'count']:.0f})" if m in stats.index else ""
                                      for m in slots], fontsize=8.5)
    for patch in ax.patches:
        i = round(float(patch.get_path().get_extents().intervalx.mean()))
        if 0 <= i < len(slots) and slots[i] in stats.index and fewer[slots[i]]:
            patch.set_hatch("///")
    if unranked:
        k = len(ranked)
        ax.axvline(k, color="0.4", ls="--", lw=0.8)
        counts = sorted({int(stats.loc[m, "count"]) for m in unranked})
        ax.text((k + 1 + len(slots) - 1) / 2, 1.0, f"n = {' / '.join(map(str, counts))} datasets, not ranked",
                transform=ax.get_xaxis_transform(), ha="center", va="bottom", fontsize=8.5)
    for i, m in enumerate(slots):
        if m in (paper or {}):
            ref = paper[m]
            ax.errorbar(i + 0.36, ref["mean"], yerr=ref["std"], fmt="D", color=PAPER_COLOR, ms=6, capsize=3, lw=1.2,
                        zorder=5, label=f"paper (§5.1.2, 47 datasets): {m} {ref['mean']:.2f} ± {ref['std']:.2f}")
    if paper:
        ax.legend(loc="lower left", fontsize=8)
    ax.set_xlabel("")
    ax.set_title(title or "AUC-ROC over datasets, sorted by mean (square = mean)")
    return ax


def figure3a(tables: dict[str, pd.DataFrame], paper: dict | None = None, title: str = ""):
    """Figure 3a once per table, stacked (``{label: wide}``, e.g. one per data protocol): each panel is
    :func:`benchmark_boxplot` with ``paper``'s numbers beside their methods and the label as its title.  Every
    panel uses one order, the first table's by mean over the methods with every dataset, so that a method keeps
    its place across panels; a method with fewer datasets is drawn apart, unranked (``apart=True``), in the first
    table's column order."""
    first = next(iter(tables.values())) * 100
    counts = first.count()
    order = list(first.loc[:, counts == counts.max()].mean().sort_values(ascending=False).index)
    order += [m for m in first.columns if m not in order]  # the others (drawn apart) in the table's column order
    fig, axes = plt.subplots(len(tables), 1, figsize=(9.5, 4.6 * len(tables)), squeeze=False)
    for ax, (label, wide) in zip(axes.flat, tables.items()):
        benchmark_boxplot(wide, title=label, ax=ax, paper=paper, order=order, apart=True)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def pairwise_grid(wide: pd.DataFrame, methods=("USFlow", "VAE-USFlow"), tie: float = 0.005, title: str = ""):
    """Figure 3b: for each of ``methods`` (a row of panels) and each other method (a panel),
    one point per dataset: the other method's AUC-ROC (x) against this one's (y).  Points above
    the diagonal are wins; the grey band is a tie (``|Δ| ≤ tie``, as AUC-ROC fractions, as in
    ``tabular.pairwise``); each panel's title counts wins / ties / losses."""
    rows = [m for m in methods if m in wide.columns]
    pairs = [(m, o) for m in rows for o in wide.columns if o != m]
    points = []
    for m, o in pairs:
        both = wide[[m, o]].dropna()
        d = both[m] - both[o]
        outcome = pd.Series(outcomes(d, tie)).map(  # the book's one rule, as tabular.pairwise counts
            {"higher": "row method better", "equal": "tie", "lower": "row method worse"}).to_numpy()
        points.append(pd.DataFrame({"pair": f"{m} vs {o}", "x": 100 * both[o], "y": 100 * both[m],
                                    "outcome": outcome}))
    points = pd.concat(points, ignore_index=True)
    per_row = min(3, len(pairs) // len(rows))  # at most 3 panels a row: the figure stays legible in a book column
    g = sns.relplot(data=points, x="x", y="y", col="pair", col_order=[f"{m} vs {o}" for m, o in pairs],
                    col_wrap=per_row, hue="outcome", hue_order=list(OUTCOME_COLORS), palette=OUTCOME_COLORS,
                    s=22, height=2.3, aspect=1, facet_kws={"sharex": False})
    lo = min(50, np.floor(points[["x", "y"]].min().min() / 10) * 10)
    grid = np.array([lo, 100.0])
    for i, ((m, o), ax) in enumerate(zip(pairs, g.axes.flat)):
        ax.plot(grid, grid, "--", color="0.5", lw=0.8)
        ax.fill_between(grid, grid - 100 * tie, grid + 100 * tie, color="0.5", alpha=0.25, lw=0)
        counts = points.loc[points["pair"] == f"{m} vs {o}", "outcome"].value_counts()
        ax.set_title(f"vs {o}: " + "/".join(str(counts.get(k, 0)) for k in OUTCOME_COLORS), fontsize=8)  # row: y label
        ax.set(xlim=(lo, 101), ylim=(lo, 101), xlabel=f"{o} (%)", ylabel=f"{m} (%)")
        ax.xaxis.label.set_size(8), ax.tick_params(labelsize=7)
    g.legend.set_title(f"tie: |Δ| ≤ {100 * tie:g} pp")
    g.tight_layout()
    g.figure.suptitle(title or "Pairwise AUC-ROC per dataset (title: wins / ties / losses of the row method)",
                      fontsize=10, y=1.02)
    return g.figure


def seed_std_pairs(table: pd.DataFrame, pairs=None):
    """The run-to-run spread of each USF variant against its non-USF partner: one point per dataset, the
    partner's seed std (x) against the USF variant's (y), in pp (``tabular.seed_std``).  Points under the
    diagonal (blue) are datasets where the USF variant varies less from seed to seed, above it (red) more, on it
    (grey) equally up to float rounding (``TIE_EPS``, e.g. every seed at AUC-ROC 1); each title counts them.  The
    axes are linear below 0.1 pp and logarithmic above, so that a few datasets with a spread of tens of points do
    not squeeze the rest into a corner."""
    pairs = pairs or [(non, usf) for usf, non in usf_pairs()]  # the registry's pairs, (NonUSF, USF)
    pairs = [(n, u) for n, u in pairs if n in table.columns and u in table.columns]
    fig, axes = plt.subplots(1, len(pairs), figsize=(4.0 * len(pairs), 3.8), squeeze=False)
    top = max(1.0, float(np.nanmax(table[[m for p in pairs for m in p]].to_numpy())) * 1.08)
    for ax, (n, u) in zip(axes.flat, pairs):
        both = table[[n, u]].dropna()
        d = both[u] - both[n]  # equal up to float rounding (the report's paired tests' TIE_EPS) is level
        steadier, less = d < -TIE_EPS, d > TIE_EPS
        ax.fill_between([0, top], [0, 0], [0, top], color=USF_COLOR, alpha=0.08, lw=0)
        ax.plot([0, top], [0, top], "--", color="0.5", lw=0.8)
        ax.scatter(both[n], both[u], s=22, c=np.select([steadier, less], [USF_COLOR, OUTCOME_COLORS["row method worse"]],
                                                       OUTCOME_COLORS["tie"]))
        ax.set(xlim=(0, top), ylim=(0, top), xlabel=f"{n}: seed std (pp)", ylabel=f"{u}: seed std (pp)")
        for scale in (ax.set_xscale, ax.set_yscale):
            scale("symlog", linthresh=0.1)
        level = len(both) - int(steadier.sum()) - int(less.sum())
        ax.set_title(f"{u} steadier on {int(steadier.sum())}, less steady\non {int(less.sum())}, level on {level} "
                     f"of {len(both)} datasets", fontsize=9)
    fig.suptitle("Run-to-run spread per dataset (shaded: the USF variant varies less)", fontsize=10)
    fig.tight_layout()
    return fig
