"""Checks on input data, so that a bad file is reported as what it is.

Without them a NaN in a feature surfaces many steps later as "the flow's determinant
exploded" and is counted as a failed run of the model.  Every loader runs
:func:`validate_xy` on what it read; training code can run :func:`check_finite_input`
on its input.  Both raise :class:`DataError`, whose message names the source (a file),
the rows at fault and what to do, so callers and tests can tell a data fault from a
model failure.
"""
from __future__ import annotations

import sys

import numpy as np

__all__ = ["SHOWN", "DataError", "check_finite_input", "validate_xy"]

SHOWN = 10  # rows listed in a message


class DataError(ValueError):
    """The input data is unusable (a data fault, not a model failure)."""


def _rows(bad: np.ndarray) -> str:
    """``"0-based rows 5, 17, 40"`` (at most 10 listed, then how many in all): where ``bad`` is True."""
    rows = np.flatnonzero(bad)
    listed = ", ".join(str(r) for r in rows[:SHOWN])
    more = f" (first {SHOWN} of {len(rows)} shown)" if len(rows) > SHOWN else ""
    return f"0-based row{'s' if len(rows) > 1 else ''} {listed}{more}"


def _values(n: int) -> str:
    return f"{n} non-finite value{'s' if n > 1 else ''}"


def check_finite_input(x, source: str = "input") -> None:
    """Raise :class:`DataError` when the tensor or array ``x`` holds NaN or inf, naming the rows
    (first axis).  Anything else (e.g. a ``Dataset``, whose items only its user can read) passes."""
    torch = sys.modules.get("torch")  # a tensor exists only once torch is imported; not imported for arrays
    if torch is not None and isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy() if x.is_floating_point() else None
    if not isinstance(x, np.ndarray) or not np.issubdtype(x.dtype, np.floating) or x.size == 0:
        return
    x = np.atleast_1d(x)
    bad = ~np.isfinite(x.reshape(len(x), -1))
    if bad.any():
        raise DataError(f"{source}: {_values(int(bad.sum()))} (NaN or inf) in {_rows(bad.any(1))}; "
                        "clean or drop these rows before training")


def validate_xy(x, y, source: str, need_both_classes: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Check one anomaly-detection data set and return it as ``(X float32 [n, d], y int64 [n])``.

    ``X`` must be 2-D (samples x features), numeric and finite (also after the cast to
    float32); ``y`` must have one label per row, each 0 (normal) or 1 (anomaly).
    ``need_both_classes``: there must be normal rows (a one-class model trains on them)
    and anomalous rows (AUROC compares the two).  Raises :class:`DataError` naming
    ``source`` and, where it applies, the rows at fault.

    >>> x, y = validate_xy([[0, 1], [2, 3]], [0, 1], "demo.csv")
    >>> x.dtype, y.dtype
    (dtype('float32'), dtype('int64'))
    >>> validate_xy([[0.0, 1.0], [float("nan"), 2.0], [3.0, 4.0]], [0, 0, 1], "demo.csv")
    Traceback (most recent call last):
    ...
    usfkit.data.checks.DataError: demo.csv: X has 1 non-finite value (NaN or inf as float32) in 0-based row 1; ...
    """
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim != 2:
        hint = " (one feature per row? reshape it to [n, 1])" if x.ndim == 1 else ""
        raise DataError(f"{source}: X has shape {x.shape}; expected 2-D [n_samples, n_features]{hint}")
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
        raise DataError(f"{source}: X has dtype {x.dtype}; expected numbers")
    if y.ndim == 2 and 1 in y.shape:  # a column or row vector of labels
        y = y.ravel()
    if y.ndim != 1 or len(y) != len(x):
        raise DataError(f"{source}: X has {len(x)} rows but y has shape {y.shape}; expected one label per row")
    if not (np.issubdtype(y.dtype, np.number) or y.dtype == bool):
        raise DataError(f"{source}: y has dtype {y.dtype}; expected labels 0 (normal) and 1 (anomaly)")
    with np.errstate(over="ignore"):  # values beyond float32's range become inf and are reported below
        x = x.astype(np.float32)
    bad = ~np.isfinite(x)
    if bad.any():
        raise DataError(f"{source}: X has {_values(int(bad.sum()))} (NaN or inf as float32) in "
                        f"{_rows(bad.any(1))}; clean or drop these rows")
    wrong = ~np.isin(y, (0, 1))
    if wrong.any():
        values = ", ".join(str(v) for v in np.unique(y[wrong])[:SHOWN])
        raise DataError(f"{source}: y must be 0 (normal) or 1 (anomaly); found {values} in {_rows(wrong)}; "
                        "relabel or drop these rows")
    y = y.astype(np.int64)
    if need_both_classes:
        for label, what, why in ((0, "normal", "a one-class model trains on normal rows"),
                                 (1, "anomalous", "AUROC needs anomalies to rank against normals")):
            if not (y == label).any():
                raise DataError(f"{source}: no {what} rows (y == {label}) among its {len(y)} rows; {why}")
    return x, y
