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
