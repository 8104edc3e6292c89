"""Figures of chapter 7 (paper §5.2): anomaly maps over the test images beside the
ground-truth masks, Table 1-style mean ± std per architecture and coupling, and the
ablation of Figures 4/10 (Δ mean and Δ std against the affine baseline, per class).
Every function returns the matplotlib figure."""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator
from PIL import Image

from ..models import COUPLING_LABELS, head_labels
from .style import to_numpy

__all__ = ["COUPLING_COLORS", "COUPLING_NAMES", "ARCH_NAMES", "anomaly_maps", "mean_std_bars", "loss_curves",
           "ablation"]

COUPLING_COLORS = {"affine": "tab:red", "additive": "tab:cyan", "additive_lu": "tab:blue"}
COUPLING_NAMES = COUPLING_LABELS
ARCH_NAMES = head_labels()


def _image(path: str, size: int) -> np.ndarray:
    if not Path(path).exists():  # results made on another machine: the maps without their image
        return np.full((size, size, 3), 0.5)
    return np.asarray(Image.open(path).convert("RGB").resize((size, size), Image.BILINEAR)) / 255.0


def anomaly_maps(variants: dict[str, dict], max_images: int = 4):
    """One row per test image: the image, its ground-truth mask, then each variant's anomaly map
    laid over the image.  ``variants``: label -> the dict saved by ``usfkit.experiments.images.run_one`` (keys
    ``paths``, ``maps`` [N,S,S], ``masks``, ``defects``, ``scores``), all for the same images.
    Each map is scaled to its own range over the shown images (only the ranking matters for AUROC)."""
    first = next(iter(variants.values()))
    n = min(max_images, len(first["paths"]))
    size = first["maps"].shape[-1]
    cols = 2 + len(variants)
    fig, axes = plt.subplots(n, cols, figsize=(1.9 * cols, 1.9 * n), squeeze=False)
    for j, (label, rec) in enumerate(variants.items()):
        maps = to_numpy(rec["maps"][:n]).astype(np.float32)
        lo, hi = np.percentile(maps, 1), np.percentile(maps, 99.5)
        for i in range(n):
            img = _image(rec["paths"][i], size)
            if j == 0:
                axes[i, 0].imshow(img)
                axes[i, 0].set_title(rec["defects"][i], fontsize=8)
                axes[i, 1].imshow(to_numpy(rec["masks"][i]), cmap="gray", vmin=0, vmax=1)
            axes[i, 2 + j].imshow(img)
            axes[i, 2 + j].imshow(np.clip((maps[i] - lo) / (hi - lo + 1e-12), 0, 1), cmap="jet", alpha=0.5)
            axes[i, 2 + j].set_title(f"score {float(rec['scores'][i]):.3g}", fontsize=7)
        axes[0, 2 + j].set_title(f"{label}\nscore {float(rec['scores'][0]):.3g}", fontsize=8)
    axes[0, 1].set_title("ground truth", fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([]), ax.set_yticks([])
        ax.grid(False)
    fig.tight_layout()
    return fig


def mean_std_bars(table, metric_label: str = "AUROC (%)", paper=None, paper_label: str = "paper"):
    """Table 1 as bars: one group per architecture, one bar per coupling, error bar = the
    class-averaged std.  ``table``: ``usfkit.experiments.images.class_averaged`` (one dataset).  ``paper``:
    optional ``{(coupling, arch): (mean, std)}`` drawn as black diamonds, named ``paper_label`` in the
    legend (say which table and classes, e.g. ``usfkit.experiments.images.paper_reference``).  The y-axis
    shows every bar, error bar and diamond whole."""
    archs = [a for a in ARCH_NAMES if a in set(table["head"])]
    couplings = [c for c in COUPLING_COLORS if c in set(table["coupling"])]
    fig, ax = plt.subplots(figsize=(1.9 * len(archs) + 3.2, 3.4))
    sns.barplot(data=table, x="head", y="mean", order=archs, hue="coupling", hue_order=couplings,
                palette=COUPLING_COLORS, saturation=1, ax=ax)
    shown = [*(table["mean"] - table["std"].fillna(0)), *(table["mean"] + table["std"].fillna(0))]
    for c, bars in zip(couplings, ax.containers):  # one container of bars per coupling, in hue order
        xs = [b.get_x() + b.get_width() / 2 for b in bars]
        t = table[table["coupling"] == c].set_index("head").reindex(archs)
        ax.errorbar(xs, t["mean"], yerr=t["std"], fmt="none", ecolor="k", capsize=3, lw=1)
        points = [(x, paper[(c, a)][0]) for x, a in zip(xs, archs) if paper and (c, a) in paper]
        if points:  # the paper has no values for the additive-only ablation in Table 1
            ax.scatter(*zip(*points), marker="D", color="k", s=18, zorder=3, label=paper_label)
            shown += [y for _, y in points]
    ax.set_xticks(range(len(archs)), [ARCH_NAMES[a] for a in archs])
    ax.set(xlabel="", ylabel=metric_label)
    lo, hi = min(np.nanmin(shown), 50), max(np.nanmax(shown), 50)  # the chance line at 50 is always shown
    pad = 0.05 * (hi - lo) + 1  # room for the diamond markers and the error-bar caps
    ax.set_ylim(max(0.0, lo - pad), hi + pad)
    ax.axhline(50, color="k", lw=0.6, ls=":")
    handles, labels = ax.get_legend_handles_labels()
    keep = {t: h for h, t in zip(handles, labels)}  # one "paper" entry however many couplings have one
    ax.legend(list(keep.values()), [COUPLING_NAMES.get(t, t) for t in keep], fontsize=8, loc="upper left",
              bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return fig


def loss_curves(records: list, context: str | None = None):
    """Training loss per epoch of every run (``info["loss_history"]`` of the sweep's run records), one panel
    per architecture, colour = coupling, one line per run, integer epochs.  Shows whether a run had converged
    when it stopped.  ``context``: what the runs trained on, for the panel titles (e.g. ``"MVTec AD bottle,
    quick profile"``: "FastFlow on MVTec AD bottle, quick profile / training loss per epoch")."""
    rows = pd.DataFrame([{"run": i, "head": ARCH_NAMES[r.spec["head"]], "coupling": COUPLING_NAMES[r.spec["coupling"]],
                          "epoch": e, "training loss (NLL)": loss}
                         for i, r in enumerate(records) for e, loss in enumerate(r.info.get("loss_history") or [], 1)])
    if rows.empty:  # every run failed before its first epoch
        fig, ax = plt.subplots(figsize=(4, 0.6))
        ax.set_axis_off(), ax.text(0.5, 0.5, "no run recorded a training loss", ha="center", va="center")
        return fig
    g = sns.relplot(data=rows, kind="line", x="epoch", y="training loss (NLL)", col="head",
                    col_order=[n for n in ARCH_NAMES.values() if n in set(rows["head"])],
                    hue="coupling", hue_order=[n for n in COUPLING_NAMES.values() if n in set(rows["coupling"])],
                    palette={COUPLING_NAMES[c]: col for c, col in COUPLING_COLORS.items()},
                    units="run", estimator=None, marker=".", height=3.2, aspect=1.3, facet_kws={"sharey": False})
    where = f" on {context}" if context else ""
    g.set_titles("{col_name}" + where.replace("{", "{{").replace("}", "}}") + "\ntraining loss per epoch")
    for ax in g.axes.flat:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return g.figure


def ablation(ab, title: str = "image AUROC"):
    """Figures 4/10: per class (x) the change of the mean (left) and of the std (right) over
    seeds against the affine baseline, one row per architecture; dashed line = affine,
    black mark = the class-wise mean Δ (also a thin line in the coupling's colour).
    ``ab``: ``usfkit.experiments.images.ablation`` for one dataset."""
    archs = [a for a in ARCH_NAMES if a in set(ab["head"])]
    classes = list(dict.fromkeys(ab["class"]))
    couplings = [c for c in COUPLING_COLORS if c in set(ab["coupling"])]
    means = ab.groupby(["head", "coupling"], as_index=False)[["d_mean", "d_std"]].mean().assign(**{"class": "mean"})
    fig, axes = plt.subplots(len(archs), 2, figsize=(max(8.0, 0.55 * len(classes) + 4), 2.6 * len(archs) + 0.6),
                             squeeze=False, sharex=True)
    for i, arch in enumerate(archs):
        for j, (col, label) in enumerate((("d_mean", "Δ mean"), ("d_std", "Δ std"))):  # left, right
            ax = axes[i, j]
            common = dict(x="class", y=col, order=classes + ["mean"], hue="coupling", hue_order=couplings,
                          dodge=True, ax=ax, legend=False)
            sns.stripplot(data=ab[ab["head"] == arch], jitter=False, palette=COUPLING_COLORS, size=5, **common)
            sns.stripplot(data=means[means["head"] == arch], jitter=False, palette={c: "k" for c in couplings},
                          marker="_", size=14, linewidth=2, **common)
            for c, m in means[means["head"] == arch].set_index("coupling")[col].items():
                ax.axhline(m, color=COUPLING_COLORS[c], lw=0.8, alpha=0.7)
            ax.axhline(0, color="k", ls="--", lw=0.8)
            ax.set(xlabel="", ylabel=f"{label} (pp)", title=f"{ARCH_NAMES[arch]}: {label} of {title}")
            ax.grid(False, axis="x")
            ax.tick_params(axis="x", rotation=60, labelsize=8)
    fig.legend(handles=[Line2D([], [], color=COUPLING_COLORS[c], marker="o", ls="", label=COUPLING_NAMES[c])
                        for c in couplings] + [Line2D([], [], color="k", marker="_", ms=12, mew=2, ls="",
                                                      label="class-wise mean Δ")],
               loc="upper center", ncol=len(couplings) + 1, bbox_to_anchor=(0.5, 1.0))
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.4 / fig.get_figheight()))  # keep 0.4 in free for the legend
    return fig
