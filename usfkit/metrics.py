"""AUROC and rank correlations, with errors that say what went wrong."""
from __future__ import annotations

import numpy as np
from scipy import stats
from sklearn.metrics import roc_auc_score


def _array(values, name: str) -> np.ndarray:
    arr = np.asarray(values.detach().cpu() if hasattr(values, "detach") else values, dtype=np.float64).ravel()
    if not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).sum())
        raise ValueError(f"{name} has {bad} non-finite value(s): the model produced NaN/inf "
                         "(a diverged run?). Record it as failed instead of scoring it.")
    return arr


def auroc(labels, scores) -> float:
    """Area under the ROC curve; ``scores``: higher = more anomalous, ``labels``: 1 = anomaly."""
    y = _array(labels, "labels")
    s = _array(scores, "scores")
    if len(np.unique(y)) != 2:
        raise ValueError("AUROC needs both normal (0) and anomalous (1) labels in the evaluation set")
    return float(roc_auc_score(y, s))


def spearman(a, b) -> float:
    """Spearman's rank correlation rho."""
    return float(stats.spearmanr(_array(a, "a"), _array(b, "b")).statistic)


def kendall(a, b) -> float:
    """Kendall's tau (tau-b)."""
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
