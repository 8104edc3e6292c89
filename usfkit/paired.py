"""One paired comparison, as chapters 05 and 06 state their findings: how often the first of two
methods is higher, equal or lower on the same datasets (or classes), and a two-sided Wilcoxon
signed-rank test on the differences (the test the report's sign rule uses, :mod:`usfkit.experiments.claims.rules`).
Statistics, not an experiment: the experiments and the figures (:mod:`usfkit.plots.tabular`) both read it."""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

__all__ = ["TIE_EPS", "outcomes", "paired_test", "p_text"]

#: A paired difference smaller than this (in the values' unit) is float rounding: a tie.
TIE_EPS = 1e-9


def outcomes(diffs, tie: float = 0.0) -> np.ndarray:
    """The book's one win/tie/loss rule: per difference (first minus second), ``"higher"`` when it exceeds
    ``tie``, ``"lower"`` when it is below ``-tie``, else ``"equal"`` (a tie: ``|difference| <= tie``, in the
    differences' own unit).  A difference within :data:`TIE_EPS` of the margin counts as on it (float
    rounding must not turn a tie into a win).  Figure 3b, :func:`usfkit.experiments.tabular.pairwise` and
    the chapters' sentences all count with it.

    >>> outcomes([0.5, 0.0, -0.2, 0.05], tie=0.1).tolist()
    ['higher', 'equal', 'lower', 'equal']
    """
    d = np.asarray(diffs, dtype=float)
    margin = tie + TIE_EPS
    return np.select([d > margin, d < -margin], ["higher", "lower"], "equal")


def paired_test(diffs, tie: float = 0.0) -> dict[str, float]:
    """``diffs`` (first minus second, NaN skipped): the number of pairs ``n``, the ``mean`` and ``median``
    difference, how many are ``higher`` / ``equal`` / ``lower`` by :func:`outcomes` (a tie: ``|d| <= tie``,
    in the unit of ``diffs``; the default counts only float rounding, :data:`TIE_EPS`, as equal), and the
    two-sided Wilcoxon signed-rank ``p`` over the pairs that differ beyond rounding (1.0 when none differs,
    NaN when there is no pair).  The test does not depend on ``tie``.

    >>> t = paired_test([0.5, 0.0, -0.2, 0.3, 0.1])  # p: over the 4 that differ
    >>> t["n"], t["higher"], t["equal"], t["lower"], round(t["p"], 3)
    (5, 3, 1, 1, 0.375)
    """
    d = pd.Series(diffs, dtype=float).dropna().to_numpy(copy=True)
    d[np.abs(d) < TIE_EPS] = 0.0
    p = float(stats.wilcoxon(d).pvalue) if np.any(d != 0) else (1.0 if len(d) else float("nan"))
    o = outcomes(d, tie)
    return {"n": len(d), "mean": float(d.mean()) if len(d) else float("nan"),
            "median": float(np.median(d)) if len(d) else float("nan"),
            "higher": int((o == "higher").sum()), "equal": int((o == "equal").sum()),
            "lower": int((o == "lower").sum()), "p": p}


def p_text(p: float) -> str:
    """A p-value as the chapters print it.

    >>> p_text(0.248), p_text(0.0031), p_text(2e-7)
    ('p = 0.248', 'p = 0.0031', 'p < 0.0001')
    """
    if p != p:
        return "no test (no pair)"
    return "p < 0.0001" if p < 1e-4 else f"p = {p:.3f}" if p >= 0.01 else f"p = {p:.2g}"
