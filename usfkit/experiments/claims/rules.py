"""The report's tolerance rules: pure functions of numbers (no record is read here), each returning a
:class:`~.core.Judgement` (the verdict, how the rule applied, the direction of a "not reproduced"), and the
effects the figure draws with their bootstrap intervals.

* :func:`sign_rule` — the sign of paired differences, with a two-sided paired Wilcoxon test at :data:`ALPHA`;
  needs :data:`MIN_PAIRS` pairs (fewer cannot reach p < 0.05);
* :func:`cells_rule` — each cell (mean over seeds) within the larger of the two run-to-run stds, at least
  :data:`MIN_TOL_PP` percentage point, of the paper's; share of cells that pass;
* :func:`parts_rule` — a claim made of several checkable statements: all hold, some, none;
* :func:`count_rule` — a count equals the paper's (App. D's failed runs: :data:`~.core.FAILED_RUN`);
* :func:`within_rule` — a value within a stated tolerance of the paper's;
* :func:`range_rule` — the paper's 47-set mean within the range our runs allow (:func:`aggregate_range`).

Claims over "all 47 ADBench datasets" are judged only on :data:`MIN_DATASETS` datasets or more.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
import pandas as pd

from ...paired import TIE_EPS, paired_test
from .core import (CONTRADICTED, HELD, NOT_REPRODUCED, NOT_SUPPORTED, PARTLY, PP, REPRODUCED, USF_FAVOUR, Effect,
                   Finding, Judgement, Loaded, NotRun, finding)

__all__ = ["ALPHA", "MIN_PAIRS", "MIN_DATASETS", "MIN_TOL_PP", "CELLS_REPRODUCED", "CELLS_PARTLY",
           "PAPER_TABULAR_DATASETS", "BOOTSTRAP", "BOOTSTRAP_SEED", "MISSING_RANGE", "SEED_SDS", "MET", "NOT_MET",
           "within_rule", "count_rule", "parts_rule", "held_effect", "bootstrap_ci", "interval_direction",
           "sign_rule", "sign_effect", "cell_tolerance", "cells_rule", "aggregate_range", "range_rule",
           "sign_finding"]

ALPHA = 0.05  # significance level of every paired Wilcoxon test
MIN_PAIRS = 6  # a two-sided Wilcoxon test on fewer pairs cannot reach p < 0.05
MIN_DATASETS = 40  # an aggregate over the paper's 47 tabular datasets is judged on at least this many
MIN_TOL_PP = 1.0  # smallest tolerance of a table cell, in AUROC percentage points
CELLS_REPRODUCED, CELLS_PARTLY = 0.8, 0.5  # share of table cells within tolerance for each verdict
PAPER_TABULAR_DATASETS = 47
BOOTSTRAP, BOOTSTRAP_SEED = 2000, 0  # resamples (over datasets or classes) of every effect's 95% interval
MISSING_RANGE = (50.0, 100.0)  # AUC-ROC (%) a dataset we could not run may score: chance to perfect
SEED_SDS = 2  # the 47-set range is widened by this many seed-to-seed standard deviations of the mean


def within_rule(ours: float, paper: float, tol: float, favour: int = 0) -> Judgement:
    """Reproduced when ``|ours - paper| <= tol``; else contradicted, or "in USF's favour" when ``favour``
    (+1 or -1) is the sign of ``ours - paper`` that favours the USF."""
    gap = abs(ours - paper)
    if gap <= tol:
        return Judgement(REPRODUCED, f"|ours - paper| = {gap:.3g} <= {tol:.3g}")
    return Judgement(NOT_REPRODUCED, f"|ours - paper| = {gap:.3g} > {tol:.3g}",
                     USF_FAVOUR if favour and np.sign(ours - paper) == favour else CONTRADICTED)


def count_rule(ours: int, paper: int, more_is: str = CONTRADICTED) -> Judgement:
    """Reproduced when the count equals the paper's; otherwise ``more_is`` the direction of a larger count
    (contradicted, e.g. a failed USF run where the paper saw none) and "not supported" that of a smaller one."""
    if ours == paper:
        return Judgement(REPRODUCED, f"count {ours} (paper: {paper})")
    return Judgement(NOT_REPRODUCED, f"count {ours} (paper: {paper})", more_is if ours > paper else NOT_SUPPORTED)


MET, NOT_MET = "claim met", "claim not met"  # how a statement of a claim is marked (never "holds"/"fails")


def parts_rule(parts: dict[str, bool], none_is: str = NOT_SUPPORTED) -> Judgement:
    """Several statements: all hold -> reproduced, some -> partly, none -> not reproduced (``none_is``)."""
    held = sum(bool(v) for v in parts.values())
    verdict = REPRODUCED if held == len(parts) else PARTLY if held else NOT_REPRODUCED
    return Judgement(verdict, "; ".join(f"{MET if v else NOT_MET}: {k}" for k, v in parts.items()),
                     none_is if verdict == NOT_REPRODUCED else "")


def held_effect(parts: dict[str, bool]) -> Effect:
    """The share of ``parts`` that hold, as an :class:`~.core.Effect` in :data:`~.core.HELD`."""
    return Effect(100 * sum(map(bool, parts.values())) / len(parts), unit=HELD, n=len(parts), of="statements")


def bootstrap_ci(rows: np.ndarray, stat: Callable[[np.ndarray], float]) -> tuple[float, float]:
    """The 95% percentile interval of ``stat(rows[resampled])`` over :data:`BOOTSTRAP` resamples of the rows
    (datasets or classes) with replacement, seeded (:data:`BOOTSTRAP_SEED`): the same every run."""
    rows = np.asarray(rows, dtype=float)
    if len(rows) < 2:
        return math.nan, math.nan
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    idx = rng.integers(0, len(rows), size=(BOOTSTRAP, len(rows)))
    values = np.array([stat(rows[i]) for i in idx])
    return float(np.nanpercentile(values, 2.5)), float(np.nanpercentile(values, 97.5))


def interval_direction(low: float, high: float, favour_usf: bool = False) -> str:
    """The direction of a failed claim from its effect's interval (> 0: the claimed direction): the whole
    interval below 0 -> contradicted (or in USF's favour when the opposite favours the USF); else not
    supported."""
    if high < 0:
        return USF_FAVOUR if favour_usf else CONTRADICTED
    return NOT_SUPPORTED


def _tied(diffs) -> np.ndarray:
    d = pd.Series(diffs, dtype=float).dropna().to_numpy(copy=True)
    d[np.abs(d) < TIE_EPS] = 0.0  # equal up to float rounding (e.g. two stds that are both 0) is a tie
    return d


def _one(of: str) -> str:
    return {"datasets": "dataset", "classes": "class", "cells": "cell"}.get(of, of)


def sign_rule(diffs, expected: int, what: str = "difference") -> Judgement:
    """Paired differences whose sign the paper states (``expected`` +1 or -1): the median difference has
    that sign and a two-sided Wilcoxon signed-rank test gives p < ALPHA -> reproduced; the sign holds but
    p >= ALPHA -> partly; the median has the other sign (or is 0) -> not reproduced, *contradicted* when
    p < ALPHA, else *not supported*.  Fewer than MIN_PAIRS pairs raise :class:`~.core.NotRun`."""
    d = _tied(diffs)
    if len(d) < MIN_PAIRS:
        raise NotRun(f"only {len(d)} paired value(s) of the {what}: a two-sided Wilcoxon test needs at least "
                     f"{MIN_PAIRS} to reach p < {ALPHA}")
    test = paired_test(d)  # the test chapters 05 and 06 state
    median, p = test["median"], test["p"]
    shown = "0 (a tie)" if median == 0 else f"{median:+.3g}"
    text = f"median {what} {shown} over {len(d)} pairs (expected {'> 0' if expected > 0 else '< 0'}), " \
           f"Wilcoxon p = {p:.2g}"
    if np.sign(median) != np.sign(expected):
        return Judgement(NOT_REPRODUCED, text, CONTRADICTED if p < ALPHA and median != 0 else NOT_SUPPORTED)
    return Judgement(REPRODUCED if p < ALPHA else PARTLY, text)


def sign_effect(diffs, expected: int, of: str = "datasets") -> Effect:
    """The sign rule's effect: the median paired difference times ``expected`` (> 0: as the paper says),
    its bootstrap interval over the pairs, the Wilcoxon p and the number of pairs."""
    d = _tied(diffs) * expected
    p = paired_test(d)["p"] if len(d) else 1.0
    low, high = bootstrap_ci(d, np.median)
    return Effect(float(np.median(d)) if len(d) else math.nan, low, high, PP, p, len(d), of,
                  f"median per-{_one(of)} difference")


def cell_tolerance(paper_std: float, our_std: float) -> float:
    """The tolerance of one table cell: the larger run-to-run std (paper's or ours), at least MIN_TOL_PP."""
    return max(paper_std, 0.0 if our_std != our_std else our_std, MIN_TOL_PP)


def cells_rule(cells: pd.DataFrame) -> Judgement:
    """``cells`` with columns paper_mean, paper_std, our_mean, our_std (AUROC %): each cell passes when
    ``|our_mean - paper_mean| <= cell_tolerance``; a share of CELLS_REPRODUCED or more -> reproduced,
    CELLS_PARTLY or more -> partly, less -> not reproduced.  A cell whose runs all failed (optional boolean
    column ``all_failed``: it ran, but has no value) counts as a cell outside its tolerance, never as a
    missing one (App. D: a failed run is a result)."""
    failed = cells["all_failed"].fillna(False).astype(bool) if "all_failed" in cells else \
        pd.Series(False, index=cells.index)
    cells, n_failed = cells[~failed].dropna(subset=["paper_mean", "our_mean"]), int(failed.sum())
    if cells.empty and not n_failed:
        raise NotRun("no cell has both the paper's value and ours")
    tol = [cell_tolerance(p, o) for p, o in zip(cells["paper_std"], cells["our_std"])]
    ok, n = int(((cells["our_mean"] - cells["paper_mean"]).abs() <= tol).sum()), len(cells) + n_failed
    share = ok / n
    verdict = REPRODUCED if share >= CELLS_REPRODUCED else PARTLY if share >= CELLS_PARTLY else NOT_REPRODUCED
    return Judgement(verdict, f"{ok} of {n} cells within tolerance ({share:.0%})"
                     + (f"; {n_failed} cell(s) without a value because every run failed count as outside it"
                        if n_failed else ""), NOT_SUPPORTED if verdict == NOT_REPRODUCED else "")



def aggregate_range(means: pd.Series, seed_means, total: int = PAPER_TABULAR_DATASETS,
                    missing_range: tuple[float, float] = MISSING_RANGE, sds: float = SEED_SDS) -> dict[str, float]:
    """What our runs can say about a mean over ``total`` datasets when we ran only ``len(means)`` of them
    (``means``: one mean AUC-ROC (%) per dataset): the range that mean takes whatever the missing datasets score
    within ``missing_range``, widened on each side by ``sds`` standard deviations of ``seed_means`` (the mean
    over the datasets of each seed's runs alone: how much the mean moves from seed to seed)."""
    n = len(means)
    missing = max(total - n, 0)
    low = (means.sum() + missing * missing_range[0]) / (n + missing)
    high = (means.sum() + missing * missing_range[1]) / (n + missing)
    sd = float(np.std(seed_means, ddof=1)) if len(seed_means) >= 2 else 0.0
    return {"our mean": float(means.mean()), "datasets": n, "missing": missing, "low": low, "high": high,
            "seeds": len(seed_means), "seed sd": sd, "wide low": low - sds * sd, "wide high": high + sds * sd}


def range_rule(paper: float, r: dict[str, float], higher_favours_usf: bool = True) -> Judgement:
    """Reproduced when ``paper`` lies in :func:`aggregate_range`'s widened range; a paper value below it ->
    not reproduced, in USF's favour (ours is higher), above it -> contradicted."""
    text = f"the paper's {paper:.2f} lies {{}} {r['wide low']:.2f}-{r['wide high']:.2f}"
    if r["wide low"] <= paper <= r["wide high"]:
        return Judgement(REPRODUCED, text.format("within"))
    below = paper < r["wide low"]
    return Judgement(NOT_REPRODUCED, text.format("below" if below else "above"),
                     USF_FAVOUR if below == higher_favours_usf else CONTRADICTED)


def sign_finding(diffs, sign: int, label: str, ours: str, loaded: Loaded, conditions: str,
                 detail: pd.DataFrame | None = None, of: str = "datasets") -> Finding:
    """The sign rule's finding, with its effect; when the rule cannot judge (too few pairs), the "not run
    here" still carries what was found (ours, basis, conditions, detail)."""
    try:
        return finding(sign_rule(diffs, sign, label), ours, loaded, conditions=conditions, detail=detail,
                       effect=sign_effect(diffs, sign, of))
    except NotRun as err:
        raise NotRun(err.why, ours=ours, basis=loaded.profile, conditions=conditions, detail=detail) from None
