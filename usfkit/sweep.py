"""A resumable sweep: run a list of configurations, save each result the moment it
finishes, and skip the finished ones on the next call.

Chapters 03–07 train many independent models (03's loops of trainings, 04's search trials,
05–07's datasets × methods × seeds) through :func:`run_sweep`.  A run is named by its
*spec* (its coordinates, in one vocabulary across chapters: dataset, class, method or head,
coupling, seed, ...) and *exactly the settings it reads* (epochs, learning rate, widths,
protocol, ...: named by the chapter, or by the run's method, never "every setting but some",
so that a setting added to a profile changes no key).  ``settings`` is one dict for every run,
or a function of the spec (a tabular run reads its own method's settings).
``run_fn({**settings, **spec})`` trains and evaluates one model and returns a
:class:`usfkit.results.RunResult`; the sweep writes it as a
:class:`usfkit.results.RunRecord` to ``<results>/<profile>/<chapter>/runs/<key>.json``
at once, where ``key`` hashes spec *and* settings: a run with other settings is a
different run, never a finished one.  An interrupted sweep (or a re-run notebook) picks
up where it stopped.  A run whose model diverges is recorded as failed and the sweep goes
on; a data fault or any other exception propagates.

Where the runs train is the *backend*, with the same records, resumption and progress display:

- ``"local"`` (the default, no extra dependency): this process, or with ``workers=N`` N processes with one
  torch thread each (on a 2-core CPU two one-thread processes train 1.7-1.85x as many runs per hour as one;
  one process with two threads gains about 1.1x);
- ``"ray"``: every run a Ray task on a cluster (``address``, ``$RAY_ADDRESS``, or a local instance), the
  driver writing each record as its task returns (:mod:`usfkit.cluster`; ``pip install "usfkit[cluster]"``).

``$USFKIT_BACKEND`` (``local`` or ``ray``) sets the default backend of every sweep, so the chapters' own
sweeps can run on a cluster without editing a notebook.

>>> records = run_sweep("05_tabular_benchmark", "quick",
...                     [{"dataset": "4_breastw", "method": "USFlow", "seed": 0}], run_one,
...                     settings={"epochs": 20})  # doctest: +SKIP
"""
from __future__ import annotations

import collections
import hashlib
import json
import multiprocessing
import os
import re
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from . import results
from .progress import runs_bar

__all__ = ["spec_key", "runs_dir", "Settings", "settings_for", "record_paths", "load_runs", "frame", "run_sweep",
           "BACKENDS", "check_backend", "describe_missing", "summarize"]


def spec_key(spec: dict, settings: dict | None = None) -> str:
    """A readable, unique file name: the spec's values joined, plus a hash of spec and settings."""
    text = json.dumps({"spec": spec, "settings": settings or {}}, sort_keys=True, default=str)
    readable = "_".join(re.sub(r"[^A-Za-z0-9._-]+", "-", str(v)) for v in spec.values())[:80]
    return f"{readable}_{hashlib.sha1(text.encode()).hexdigest()[:8]}"


def runs_dir(chapter: str, profile: str) -> Path:
    return results.chapter_dir(chapter, profile) / "runs"


Settings = dict[str, Any] | Callable[[dict], dict[str, Any]]


def settings_for(settings: Settings | None) -> Callable[[dict], dict[str, Any]]:
    """``settings`` as a function of a spec: the settings a run reads may depend on it (a tabular run reads
    its own method's), or be one dict for every run of a sweep."""
    return settings if callable(settings) else (lambda spec: dict(settings or {}))


def record_paths(chapter: str, profile: str, specs: list[dict], settings: Settings | None = None) -> list[Path]:
    """Where the run records of ``specs`` (under ``settings``, one dict or a function of the spec) live, in
    order, present or not."""
    folder, of = runs_dir(chapter, profile), settings_for(settings)
    return [folder / f"{spec_key(s, of(s))}.json" for s in specs]


def load_runs(chapter: str, profile: str) -> list[results.RunRecord]:
    """Every saved record of ``chapter`` in ``profile`` (empty when none)."""
    folder = runs_dir(chapter, profile)
    return [results.RunRecord.from_file(p) for p in sorted(folder.glob("*.json"))] if folder.is_dir() else []


def frame(records: list[results.RunRecord]) -> pd.DataFrame:
    """The records as a table, one row per run (:meth:`usfkit.results.RunRecord.row`)."""
    return pd.DataFrame([r.row() for r in records])


def run_sweep(chapter: str, profile: str, specs: list[dict], run_fn: Callable[[dict], results.RunResult], *,
              settings: Settings, desc: str = "runs", force: bool = False,
              progress: bool = True, workers: int = 1, backend: str | None = None, address: str | None = None,
              resources: Callable[[dict], dict] | None = None) -> list[results.RunRecord]:
    """Run ``run_fn`` on every spec not finished yet; return the records of all specs, in order.

    ``force=True`` reruns finished specs.  Failed runs (``ok`` false) are saved too and
    are not retried on the next call (their failure is a result); delete their file, or
    pass ``force=True``, to retry them.  ``workers > 1``: that many processes (one torch
    thread each) train the pending runs, each taking the next run when it finishes one;
    ``run_fn`` must then be picklable (a module-level function or a ``functools.partial``
    of one), and each finished run is saved here, at once, as with one worker.

    ``backend``: ``"local"`` (above) or ``"ray"`` (each pending run a Ray task at ``address``, with the Ray
    resources ``resources(spec)``, default one CPU; ``workers`` is then the cluster's business); ``None``:
    ``$USFKIT_BACKEND``, else ``"local"``.  Every check above (settings, a writable results folder) runs
    here, in the driver, before the first task is submitted.
    """
    backend = check_backend(backend)
    results.ensure_writable(runs_dir(chapter, profile))  # before the first run, not at its save
    of = settings_for(settings)
    clash = {k for s in specs for k in set(s) & set(of(s))}
    if clash:
        raise ValueError(f"{sorted(clash)} appear both in the specs and in the settings: name each once")
    paths = record_paths(chapter, profile, specs, settings)
    pending = [i for i, p in enumerate(paths) if force or not p.exists()]
    bar = runs_bar(len(specs), desc, initial=len(specs) - len(pending), enabled=progress)  # one in-place output
    failed = 0

    def save(i: int, out: results.RunResult, started: float, cpu_s: float, started_commit: str) -> None:
        nonlocal failed
        if not isinstance(out, results.RunResult):
            raise TypeError(f"run_fn must return a usfkit.results.RunResult, got {type(out).__name__}")
        record = results.RunRecord(**vars(out), chapter=chapter, key=paths[i].stem, spec=dict(specs[i]),
                                   settings=of(specs[i]),
                                   provenance=results.provenance(profile, seeds=specs[i].get("seed"), started=started,
                                                                 cpu_time_s=cpu_s, started_commit=started_commit))
        results.write_atomic(paths[i], record.to_json())  # a killed sweep never leaves half a record
        failed += not out.ok
        bar.set_postfix_str(f"{failed} failed" if failed else "", refresh=False)
        bar.update()

    if backend == "ray" and pending:
        from . import cluster

        tasks = cluster.run_tasks(run_fn, [(i, {**of(specs[i]), **specs[i]}) for i in pending], _timed,
                                  resources=resources, address=address)
        for i, out in tasks:  # each record written here, by the driver, as its task returns
            save(i, *out)
    elif workers > 1 and len(pending) > 1:
        ctx = multiprocessing.get_context("spawn")  # fresh interpreters: no forked torch thread pools
        with ProcessPoolExecutor(min(workers, len(pending)), mp_context=ctx, initializer=_one_thread) as pool:
            futures = {pool.submit(_timed, run_fn, {**of(specs[i]), **specs[i]}): i for i in pending}
            try:
                for future in as_completed(futures):
                    save(futures[future], *future.result())  # a worker's exception (a data fault) ends it here
            except BaseException:  # an error or Ctrl-C: runs not started yet are dropped, finished ones are saved
                for future in futures:
                    future.cancel()
                raise
    else:
        for i in pending:
            save(i, *_timed(run_fn, {**of(specs[i]), **specs[i]}))
    bar.close()
    return [results.RunRecord.from_file(p) for p in paths]


BACKENDS = ("local", "ray")


def check_backend(backend: str | None) -> str:
    """``backend``, else ``$USFKIT_BACKEND``, else ``"local"``; a name not in :data:`BACKENDS` is a ValueError."""
    name = backend or os.environ.get("USFKIT_BACKEND") or "local"
    if name not in BACKENDS:
        source = "backend" if backend else "$USFKIT_BACKEND"
        raise ValueError(f"unknown {source} {name!r}: use one of {', '.join(BACKENDS)}")
    return name


def _one_thread() -> None:
    """Worker start-up: one torch thread per process (the fastest split of a small CPU)."""
    import torch

    torch.set_num_threads(1)


def _timed(run_fn: Callable[[dict], results.RunResult], spec: dict) -> tuple[results.RunResult, float, float, str]:
    """``run_fn(spec)`` with the wall clock time it started, the CPU seconds this process spent
    on it (in a worker, the worker's CPU time) and the commit the code was at when it started
    (for the record's provenance)."""
    started, cpu, commit = time.time(), time.process_time(), results.git_commit()
    out = run_fn(spec)
    return out, started, time.process_time() - cpu, commit


def describe_missing(missing: list[dict], specs: list[dict], group: str, item: str) -> list[str]:
    """The ``missing`` run specs (of all ``specs``), one line per value of ``group``: every ``item`` with a
    missing run, and for those that miss only some of their runs which ones, e.g. ``"seed 2: 2 datasets,
    9 runs: 1_ALOI, 17_InternetAds; 17_InternetAds misses 3 of its 7 runs (method OneFlow/DOHSC/DO2HSC)"``."""
    def which(g, k) -> str:  # the missing runs of one item, by their other fields
        rows = [s for s in missing if s[group] == g and s[item] == k]
        fields = [f for f in rows[0] if f not in (group, item)]
        return "; ".join(f"{f} {'/'.join(map(str, dict.fromkeys(r[f] for r in rows)))}" for f in fields)

    lines = []
    groups = list(dict.fromkeys(s[group] for s in missing))
    try:
        groups = sorted(groups)  # seed 1 before seed 2, whatever order the specs come in
    except TypeError:
        pass
    for g in groups:
        miss = collections.Counter(s[item] for s in missing if s[group] == g)
        every = collections.Counter(s[item] for s in specs if s[group] == g)
        partly = [f"{k} misses {n} of its {every[k]} runs ({which(g, k)})" for k, n in miss.items() if n < every[k]]
        n, runs = len(miss), sum(miss.values())
        head = f"{group} {g}: {n} {item}{'s' * (n != 1)}, {runs} run{'s' * (runs != 1)}"
        lines.append(f"{head}: {', '.join(map(str, miss))}" + "".join(f"; {p}" for p in partly))
    return lines


def summarize(runs: pd.DataFrame, by: list[str], value: str) -> pd.DataFrame:
    """One row per group of ``runs`` (columns ``by``, in order of appearance): mean and standard
    deviation (``results.STD_DDOF``) of ``value`` over the valid runs (``ok``), and how many runs
    were valid, failed and in the group.  ``mean``/``std`` are NaN for a group without a valid run."""
    rows = []
    for key, g in runs.groupby(by, sort=False):
        valid = g.loc[g["ok"].astype(bool), value].astype(float)
        rows.append({**dict(zip(by, key)), "mean": valid.mean(), "std": valid.std(ddof=results.STD_DDOF), "valid": len(valid),
                     "failed": len(g) - len(valid), "runs": len(g)})
    return pd.DataFrame(rows)
