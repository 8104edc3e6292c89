"""Figures of chapter 7 (paper §5.2): anomaly maps over the test images beside the
ground-truth masks, Table 1-style mean ± std per architecture and coupling, and the
ablation of Figures 4/10 (Δ mean and Δ std against the affine baseline, per class).
Every function returns the matplotlib figure."""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from PIL import Image

from .style import to_numpy

COUPLING_COLORS = {"affine": "tab:red", "additive": "tab:cyan", "additive_lu": "tab:blue"}
COUPLING_NAMES = {"affine": "affine (base)", "additive": "additive (USF)", "additive_lu": "additive + LU (USF)"}
ARCH_NAMES = {"fastflow": "FastFlow", "uflow": "U-Flow", "cflow": "CFlow"}


def _image(path: str, size: int) -> np.ndarray:
    if not Path(path).exists():  # results made on another machine: the maps without their image
        return np.full((size, size, 3), 0.5)
    return np.asarray(Image.open(path).convert("RGB").resize((size, size), Image.BILINEAR)) / 255.0


def anomaly_maps(variants: dict[str, dict], max_images: int = 4):
    """One row per test image: the image, its ground-truth mask, then each variant's anomaly map
    laid over the image.  ``variants``: label -> the dict saved by ``benchmark.run_one`` (keys
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


def mean_std_bars(table, metric_label: str = "AUROC (%)", paper=None):
    """Table 1 as bars: one group per architecture, one bar per coupling, error bar = the
    class-averaged std.  ``table``: ``benchmark.class_averaged`` (one dataset).  ``paper``:
    optional ``{(coupling, arch): (mean, std)}`` drawn as black diamonds (the paper's Table 1)."""
    archs = [a for a in ARCH_NAMES if a in set(table["arch"])]
    couplings = [c for c in COUPLING_COLORS if c in set(table["coupling"])]
    fig, ax = plt.subplots(figsize=(1.9 * len(archs) + 2.5, 3.4))
    width = 0.8 / len(couplings)
    t = table.set_index(["arch", "coupling"])
    for k, c in enumerate(couplings):
        xs = np.arange(len(archs)) + (k - (len(couplings) - 1) / 2) * width
        means = [t.loc[(a, c), "mean"] if (a, c) in t.index else np.nan for a in archs]
        stds = [t.loc[(a, c), "std"] if (a, c) in t.index else np.nan for a in archs]
        ax.bar(xs, means, width, yerr=stds, capsize=3, color=COUPLING_COLORS[c], label=COUPLING_NAMES[c])
        if paper:
            pm = [paper.get((c, a), (np.nan, np.nan))[0] for a in archs]
            ax.scatter(xs, pm, marker="D", color="k", s=18, zorder=3,
                       label="paper (Table 1)" if k == len(couplings) - 1 else None)
    ax.set_xticks(np.arange(len(archs)), [ARCH_NAMES[a] for a in archs])
    ax.set_ylabel(metric_label)
    ax.set_xlim(-0.6, len(archs) - 0.4)
    lo = np.nanmin(table["mean"] - table["std"])
    ax.set_ylim(max(0, min(lo, 50) - 5), 100)
    ax.axhline(50, color="k", lw=0.6, ls=":")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return fig


def loss_curves(records: list):
    """Training loss per epoch of every run (``info["loss_history"]`` of the sweep's run records), one panel
    per architecture, colour = coupling, one line per seed.  Shows whether a run had converged when it stopped."""
    archs = [a for a in ARCH_NAMES if any(r.spec["arch"] == a for r in records)]
    fig, axes = plt.subplots(1, len(archs), figsize=(4.6 * len(archs), 3.3), squeeze=False)
    for ax, arch in zip(axes[0], archs):
        labelled = set()
        for r in records:
            history = r.info.get("loss_history")
            if r.spec["arch"] != arch or not history:
                continue
            c = r.spec["coupling"]
            ax.plot(range(1, len(history) + 1), history, color=COUPLING_COLORS[c], marker=".",
                    label=None if c in labelled else COUPLING_NAMES[c])
            labelled.add(c)
        ax.set(title=ARCH_NAMES[arch], xlabel="epoch", ylabel="training loss (NLL)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def ablation(ab, title: str = "image AUROC"):
    """Figures 4/10: per class (x) the change of the mean (top) and of the std (bottom) over
    seeds against the affine baseline, one column per architecture; dashed line = affine,
    black bar = the class-wise mean Δ.  ``ab``: ``benchmark.ablation`` for one dataset."""
    archs = [a for a in ARCH_NAMES if a in set(ab["arch"])]
    classes = list(dict.fromkeys(ab["cls"]))
    fig, axes = plt.subplots(2, len(archs), figsize=(max(4.0, 0.45 * len(classes) + 2.5) * len(archs), 5.2),
                             squeeze=False, sharex="col")
    for j, arch in enumerate(archs):
        sub = ab[ab["arch"] == arch]
        couplings = [c for c in COUPLING_COLORS if c in set(sub["coupling"])]
        for i, (col, label) in enumerate((("d_mean", "Δ mean"), ("d_std", "Δ std"))):
            ax = axes[i, j]
            for k, c in enumerate(couplings):
                rows = sub[sub["coupling"] == c].set_index("cls").reindex(classes)
                xs = np.arange(len(classes)) + (k - (len(couplings) - 1) / 2) * 0.3
                ax.scatter(xs, rows[col], color=COUPLING_COLORS[c], s=22, label=COUPLING_NAMES[c])
                mean = np.nanmean(rows[col])
                ax.hlines(mean, xs.min() - 0.3, xs.max() + 0.3, color=COUPLING_COLORS[c], lw=0.8)
                ax.scatter([len(classes) + 0.2 + 0.4 * k], [mean], marker="_", s=300, color="k", lw=2)
            ax.axhline(0, color="k", ls="--", lw=0.8)
            ax.set_ylabel(f"{label} ({title}, %)")
            if i == 0:
                ax.set_title(ARCH_NAMES[arch])
        axes[1, j].set_xticks(list(range(len(classes))) + [len(classes) + 0.4], classes + ["mean"], rotation=60,
                              fontsize=8)
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    return fig
