"""AUROC and rank correlations, with errors that say what went wrong."""
from __future__ import annotations

import math

import numpy as np

__all__ = ["auroc", "auroc_se", "spearman", "kendall", "pixel_auroc", "ranking_agreement"]


def _array(values, name: str) -> np.ndarray:
    arr = np.asarray(values.detach().cpu() if hasattr(values, "detach") else values, dtype=np.float64).ravel()
    if not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).sum())
        raise ValueError(f"{name} has {bad} non-finite value(s): the model produced NaN/inf "
                         "(a diverged run?). Record it as failed instead of scoring it.")
    return arr


def auroc(labels, scores) -> float:
    """Area under the ROC curve; ``scores``: higher = more anomalous, ``labels``: 1 = anomaly.  It is the
    share of (anomaly, normal) pairs the scores order correctly:

    >>> auroc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])  # 3 of the 4 pairs: 0.35 is below the normal 0.4
    0.75
    """
    y = _array(labels, "labels")
    s = _array(scores, "scores")
    if len(np.unique(y)) != 2:
        raise ValueError("AUROC needs both normal (0) and anomalous (1) labels in the evaluation set")
    from sklearn.metrics import roc_auc_score  # imported on first use: a command's --status needs none

    return float(roc_auc_score(y, s))


def auroc_se(auc: float, n_pos: int, n_neg: int) -> float:
    """Hanley-McNeil standard error of an AUROC ``auc`` measured on ``n_pos`` anomalies and ``n_neg``
    normal points (Hanley & McNeil, 1982): the part of the run-to-run spread that comes from drawing
    the test points.  It shrinks with the number of test points and is 0 at ``auc`` 0 or 1.

    >>> round(auroc_se(0.9, 50, 50), 4), round(auroc_se(0.9, 500, 5000), 4)
    (0.0321, 0.0093)
    >>> auroc_se(1.0, 50, 500)
    0.0
    """
    q1, q2 = auc / (2 - auc), 2 * auc ** 2 / (1 + auc)
    var = (auc * (1 - auc) + (n_pos - 1) * (q1 - auc ** 2) + (n_neg - 1) * (q2 - auc ** 2)) / (n_pos * n_neg)
    return math.sqrt(max(var, 0.0))


def spearman(a, b) -> float:
    """Spearman's rank correlation rho.

    >>> round(spearman([1, 2, 3, 4], [10, 20, 40, 30]), 3)  # one swapped pair
    0.8
    """
    from scipy import stats

    return float(stats.spearmanr(_array(a, "a"), _array(b, "b")).statistic)


def kendall(a, b) -> float:
    """Kendall's tau (tau-b)."""
    from scipy import stats

    return float(stats.kendalltau(_array(a, "a"), _array(b, "b")).statistic)


def pixel_auroc(masks, maps) -> float:
    """Pixel-level AUROC (paper §5.2): every pixel of every test image is one sample, its
    ground-truth mask value (0/1) the label and the anomaly map value the score.  Normal
    test images take part with all-zero masks, as in anomalib.  ``masks`` and ``maps``
    must have the same number of elements, e.g. ``[N, 1, H, W]`` and ``[N, H, W]``."""
    m = _array(masks, "masks")
    s = _array(maps, "maps")
    if m.shape != s.shape:
        raise ValueError(f"masks ({m.size} pixels) and maps ({s.size} pixels) differ in size: "
                         "upsample the anomaly maps to the mask resolution first")
    if not np.isin(m, (0.0, 1.0)).all():
        raise ValueError("masks must be binary (0 = normal pixel, 1 = defect)")
    return auroc(m, s)


def ranking_agreement(a, b, labels=None, rtol: float = 1e-6) -> dict:
    """Do ``a`` and ``b`` rank the same items in the same order, up to rounding?

    Floating point cannot promise more: identical inputs may come out a few ulps apart
    depending on their place in a batch, so exact ties break differently in ``a`` and in
    ``b`` (Spearman's rho is then a hair below 1).  A pair ``(i, j)`` is *discordant* when
    ``a`` and ``b`` order it oppositely by more than ``rtol`` times their largest magnitude,
    and *near-tied* when either score cannot tell ``i`` and ``j`` apart at that tolerance.
    Two scores that rank identically up to rounding have no discordant pair, and their
    AUROCs can differ by at most ``auroc_slack``: the share of (anomaly, normal) pairs that
    are near-tied.  Returns ``{"pairs", "discordant", "near_ties", "auroc_slack"}``.

    >>> ranking_agreement([0.1, 0.5, 0.5000001, 0.9], [1.0, 5.0, 5.0, 9.0], labels=[0, 0, 1, 1])
    {'pairs': 6, 'discordant': 0, 'near_ties': 1, 'auroc_slack': 0.25}

    The two middle items are tied in ``b`` and 1e-7 apart in ``a`` (within ``rtol``): no pair is ordered
    oppositely, and the AUROCs of ``a`` and ``b`` can differ by the one (anomaly, normal) pair in four that
    is near-tied.
    """
    a, b = _array(a, "a"), _array(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"a and b must score the same items, got {a.size} and {b.size} values")
    ta, tb = rtol * max(np.abs(a).max(), 1e-300), rtol * max(np.abs(b).max(), 1e-300)
    y = None if labels is None else _array(labels, "labels")
    discordant = near = near_cross = 0
    for start in range(0, len(a), 1024):  # row blocks: memory stays O(1024 n)
        rows = slice(start, start + 1024)
        da, db = a[rows, None] - a[None, :], b[rows, None] - b[None, :]
        discordant += int(((da > ta) & (db < -tb)).sum())
        tied = (np.abs(da) <= ta) | (np.abs(db) <= tb)
        np.fill_diagonal(tied[:, start:start + 1024], False)
        near += int(tied.sum())
        if y is not None:
            near_cross += int((tied & (y[rows, None] == 1) & (y[None, :] == 0)).sum())
    n_pos = 0 if y is None else int((y == 1).sum())
    slack = near_cross / (n_pos * (len(a) - n_pos)) if y is not None and 0 < n_pos < len(a) else None
    return {"pairs": len(a) * (len(a) - 1) // 2, "discordant": discordant, "near_ties": near // 2,
            "auroc_slack": slack}
