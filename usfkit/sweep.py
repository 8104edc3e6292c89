"""A resumable sweep: run a list of configurations, save each result the moment it
finishes, and skip the finished ones on the next call.

Chapters 05–07 run many independent trainings (datasets × methods × seeds).  Each
configuration is a small JSON-able dict, its *spec*; ``run_fn(spec)`` trains and
evaluates one model and returns a dict with at least ``ok`` (bool) and ``failure``
(``None`` or a message).  The record ``{**spec, **result, "provenance": ...}`` is
written to ``<results>/<profile>/<chapter>/runs/<key>.json`` at once, so a sweep
that is interrupted (or a notebook that is re-run) picks up where it stopped.  A run
that diverges is recorded as failed and the sweep goes on; any other exception is a
bug and propagates.

>>> records = run_sweep("05_tabular_benchmark", "quick",
...                     [{"dataset": "4_breastw", "method": "USFlow", "seed": 0}], run_one)  # doctest: +SKIP
"""
from __future__ import annotations

import hashlib
import json
import re
import time
from pathlib import Path
from typing import Any, Callable

import pandas as pd
from tqdm.auto import tqdm

from . import results


def spec_key(spec: dict) -> str:
    """A readable, unique file name for ``spec``: its values joined, plus a hash of the whole spec."""
    text = json.dumps(spec, sort_keys=True, default=str)
    readable = "_".join(re.sub(r"[^A-Za-z0-9._-]+", "-", str(v)) for v in spec.values())[:80]
    return f"{readable}_{hashlib.sha1(text.encode()).hexdigest()[:8]}"


def runs_dir(chapter: str, profile: str) -> Path:
    return results.chapter_dir(chapter, profile) / "runs"


def load_runs(chapter: str, profile: str) -> list[dict]:
    """Every saved record of ``chapter`` in ``profile`` (empty when none)."""
    folder = runs_dir(chapter, profile)
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))] if folder.is_dir() else []


def run_sweep(chapter: str, profile: str, specs: list[dict], run_fn: Callable[[dict], dict[str, Any]],
              desc: str = "runs", force: bool = False, progress: bool = True) -> list[dict]:
    """Run ``run_fn`` on every spec not finished yet; return the records of all specs, in order.

    ``force=True`` reruns finished specs.  Failed runs (``ok`` false) are saved too and
    are not retried on the next call (their failure is a result); delete their file, or
    pass ``force=True``, to retry them.
    """
    folder = runs_dir(chapter, profile)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{spec_key(s)}.json" for s in specs]
    finished = [not force and p.exists() for p in paths]
    bar = tqdm(total=len(specs), desc=desc, initial=sum(finished), disable=not progress,
               mininterval=1.0, dynamic_ncols=True)
    records: list[dict] = []
    failed = 0
    for spec, path, done in zip(specs, paths, finished):
        if done:
            records.append(json.loads(path.read_text()))
            continue
        started = time.time()
        out = run_fn(dict(spec))
        if "ok" not in out:
            raise KeyError(f"run_fn must return a dict with 'ok' (and 'failure'); got keys {sorted(out)}")
        seeds = spec.get("seed")
        record = {**spec, "failure": None, **out,
                  "provenance": results.provenance(profile, seeds=seeds, started=started)}
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(results._jsonable(record), indent=1))
        tmp.replace(path)  # atomic: a killed sweep never leaves half a record
        records.append(json.loads(path.read_text()))
        failed += not out["ok"]
        bar.set_postfix_str(f"{failed} failed" if failed else "", refresh=False)
        bar.update()
    bar.close()
    return records


def summarize(runs: pd.DataFrame, by: list[str], value: str) -> pd.DataFrame:
    """One row per group of ``runs`` (columns ``by``, in order of appearance): mean and standard
    deviation (ddof 0) of ``value`` over the valid runs (``ok``), and how many runs were valid,
    failed and in the group.  ``mean``/``std`` are NaN for a group without a valid run."""
    rows = []
    for key, g in runs.groupby(by, sort=False):
        valid = g.loc[g["ok"].astype(bool), value].astype(float)
        rows.append({**dict(zip(by, key)), "mean": valid.mean(), "std": valid.std(ddof=0), "valid": len(valid),
                     "failed": len(g) - len(valid), "runs": len(g)})
    return pd.DataFrame(rows)
