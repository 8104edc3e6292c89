"""The tabular benchmark of §5.1 (Figure 3a/3b): ADBench's classical datasets ×
methods × seeds, every run saved as it finishes.

The methods are the registry's (:data:`usfkit.models.METHODS`, built, trained and scored by
:mod:`usfkit.models.tabular`), each trained on the training normals of :func:`usfkit.data.adbench.split` under
the profile's ``protocol``, with §5.1.1's shared rule (Adam, batch 64, up to 200 epochs, early stopping after 5
epochs without a training-loss improvement > 1e-4), scored so that higher = more anomalous and measured by
AUC-ROC on the test split.

A run's key is its spec (dataset, method, seed) plus exactly the settings it reads (:func:`run_settings`: the
shared rule and its method's declared settings), so a setting added to the profile for one method leaves every
other method's runs where they are.  A run whose loss turns NaN/inf, or whose scores are not finite on the
test set, is recorded as failed (with the reason) and the sweep goes on.

This module imports no torch until a run trains: ``usf-tabular --status`` answers at once.
"""
from __future__ import annotations

import functools
import json
import math
import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd

from .. import metrics, profiles
from ..data import adbench, file_signature
from ..models import METHODS, method as registered, usf_pairs
from ..results import STD_DDOF, RunRecord, RunResult, project_root, write_atomic
from ..sweep import check_backend, describe_missing, frame, load_runs, record_paths, run_sweep, summarize

__all__ = ["CHAPTER", "VAE_METHODS", "SHARED_SETTINGS", "PAPER", "run_settings", "build_and_train",
           "scores", "run_one", "VAE_PARTS", "vae_part_metrics", "lacking_vae_parts", "rerun_for_vae_parts",
           "specs", "datasets", "run", "SPEC_KEYS", "check_data", "ray_resources", "runs_frame", "VAE_SCORES",
           "PRIMARY_VAE_SCORE", "with_vae_score", "saved_runs", "small_datasets", "leak_free", "full_sweeps",
           "status", "per_dataset", "wide", "comparable", "complete_datasets", "seeds_text", "seed_std",
           "seed_spread", "training_lengths", "ALL_EPOCHS_FILE", "all_epochs_pairs", "all_epochs_summary",
           "all_epochs_sentence", "aggregate", "pairwise", "paper_comparison", "vae_score_parts",
           "vae_parts_sentence", "split_table", "per_dataset_table", "leak_table", "PROTOCOL_LABELS",
           "protocol_comparison", "ADBENCH_VIEW", "LEAK_FREE_VIEW", "committed_full", "paper_settings_views",
           "unscored_datasets", "vae_scored", "view_facts", "tabular_seeds", "paper_settings_text", "vae_scores",
           "VAE_PAIR_KEY", "rerun_causes", "rescoring_text", "summary_table", "pairwise_table", "seed_std_table",
           "seed_spread_table", "coverage_text", "training_text", "run_from_args"]

CHAPTER = "05_tabular_benchmark"
#: The VAE hybrids of the registry (a VAE with a flow prior, scored by the negative ELBO; vae_part_metrics rates
#: its parts), USF first.
VAE_METHODS = tuple(m for m, s in METHODS.items() if s.score_parts)
#: The settings every tabular run reads whatever its method: ADBench's protocol and §5.1.1's training rule.
SHARED_SETTINGS = ("protocol", "epochs", "patience", "min_delta", "batch_size", "accelerator")

#: Aggregates the paper states in the text of §5.1.2 (AUC-ROC in %, over all 47 datasets).
PAPER = {"USFlow": {"mean": 85.61, "std": 13.54}}


def run_settings(cfg, method: str) -> dict:
    """What a run of ``method`` reads from ``cfg``, and so what its key hashes besides its spec: the
    :data:`SHARED_SETTINGS` and the settings its :class:`~usfkit.models.MethodSpec` declares.  A declared
    setting ``cfg`` lacks is a TypeError naming it."""
    names = SHARED_SETTINGS + registered(method).settings
    missing = [k for k in names if not hasattr(cfg, k)]
    if missing:
        raise TypeError(f"method {method!r} reads setting(s) {missing}, which the settings given lack")
    return profiles.pick(cfg, names)


def _split(dataset: str, seed: int, protocol: str) -> adbench.Split:
    """``adbench.split``, cached by the file's content signature (path, size, modification time):
    a file that changes on disk is read again."""
    return _cached_split(file_signature(adbench.path(dataset)), dataset, seed, protocol)


@functools.lru_cache(maxsize=8)
def _cached_split(signature: str, dataset: str, seed: int, protocol: str) -> adbench.Split:
    return adbench.split(dataset, seed=seed, protocol=protocol)


def build_and_train(method: str, x_train, cfg, seed: int, desc: str = "", progress: str = "auto"):
    """Build the registered ``method`` for ``x_train``'s dimension and train it with §5.1.1's rule, giving it
    only the settings it declares (:func:`run_settings`); return ``(model, FitResult, score_fn)``.
    ``progress`` is :func:`usfkit.train.fit`'s (``"none"`` for quiet scripts)."""
    from ..models import resolve

    spec, mine = registered(method), SimpleNamespace(**run_settings(cfg, method))
    fit = dict(max_epochs=mine.epochs, batch_size=mine.batch_size, patience=mine.patience, min_delta=mine.min_delta,
               desc=desc or method, accelerator=mine.accelerator, progress=progress, seed=seed)
    model = resolve(spec.build)(x_train.shape[1], spec.coupling, mine, seed)
    result = resolve(spec.train)(model, x_train, mine, fit)
    return model, result, resolve(spec.score)(model)


def scores(score_fn, x, batch: int = 8192) -> np.ndarray:
    """``score_fn`` over ``x`` in batches, without gradients, as one array."""
    import torch

    with torch.no_grad():
        return torch.cat([score_fn(x[i:i + batch]).detach().float().cpu() for i in range(0, len(x), batch)]).numpy()


def run_one(spec: dict, cfg, progress: str = "auto") -> RunResult:
    """Train and evaluate one (dataset, method, seed) under ``cfg`` (a profile's settings, or just the ones the
    run reads); the sweep saves what this returns."""
    data = _split(spec["dataset"], spec["seed"], cfg.protocol)
    desc = f"{spec['method']} · {spec['dataset']} · seed {spec['seed']}"
    model, fit, score_fn = build_and_train(spec["method"], data.x_train, cfg, spec["seed"], desc, progress)
    out = RunResult.from_fit(fit, cfg.epochs, metrics={"auroc": None},
                             info={"n_train": len(data.x_train), "n_test": len(data.y_test), "dim": data.dim,
                                   "leaked_test_normals": data.leaked_test_normals})
    if fit.ok:
        s = scores(score_fn, data.x_test)
        bad = int((~np.isfinite(s)).sum())
        if bad:
            return out.fail(f"{bad} of {len(s)} test scores are not finite (exploding determinant)")
        out.metrics["auroc"] = metrics.auroc(data.y_test, s)
        if registered(spec["method"]).score_parts:
            out.metrics.update(vae_part_metrics(model, data))
    return out


#: The parts of a VAE's score that :func:`vae_part_metrics` rates on their own (``combined``, their sum with
#: the posterior term, is the run's score and ``auroc``; ``balanced`` standardises both parts first).
VAE_PARTS = ("reconstruction", "latent", "balanced")


def vae_part_metrics(model, data: adbench.Split) -> dict[str, float]:
    """What drives a VAE's score (:meth:`usfkit.models.vae.VAEFlow.score_parts`): the AUC-ROC of each part of it on
    its own, and the spread (std over the test set) of its reconstruction and latent parts.  Only the latent
    part is scored by the flow prior, so a score whose reconstruction part spreads far wider ranks the test
    set as the autoencoder alone would, whatever the prior."""
    model.set_part_scale(data.x_train)
    parts = model.score(data.x_test, "all")
    out = {f"auroc_{p}": metrics.auroc(data.y_test, parts[p].numpy()) for p in VAE_PARTS}
    return out | {f"std_{p}": float(parts[p].std()) for p in ("reconstruction", "latent")}


def lacking_vae_parts(profile: str = "full") -> list[RunRecord]:
    """The valid VAE run records of ``profile`` that predate :func:`vae_part_metrics` (they hold only the
    ELBO's AUC-ROC), smallest training time first."""
    return sorted(filter(_lacks_parts, load_runs(CHAPTER, profile)), key=lambda r: r.train_time_s or 0.0)


def rerun_for_vae_parts(profile: str = "full", limit: int | None = None) -> list[Path]:
    """Train again, one at a time, the VAE runs of :func:`lacking_vae_parts` (a saved model's scores were
    not kept, so its score parts can only come from a rerun with the record's spec and settings), and add
    the rerun's score parts to each record.  The record keeps its own ELBO AUC-ROC in ``metrics["auroc"]``;
    ``rerun`` holds the rerun's metrics, its provenance and whether it reproduced that AUC-ROC (to 1e-6):
    when it did not, the score parts describe the rerun's model, and the record says so.  Each record is
    rewritten atomically the moment its rerun ends, so an interrupted call resumes where it stopped."""
    import time
    from types import SimpleNamespace

    from .. import results

    done = []
    for rec in lacking_vae_parts(profile)[:limit]:
        cfg = SimpleNamespace(**rec.settings, profile=profile)
        started, cpu, commit = time.time(), time.process_time(), results.git_commit()
        out = run_one(rec.spec, cfg, progress="none")
        prov = results.provenance(profile, seeds=rec.spec.get("seed"), started=started,
                                  cpu_time_s=time.process_time() - cpu, started_commit=commit)
        same = out.ok and abs(out.metrics["auroc"] - rec.metrics["auroc"]) <= 1e-6
        rec.rerun = {"why": "score parts (reconstruction, latent, balanced) were not recorded by the first run",
                     "ok": out.ok, "failure": out.failure, "metrics": out.metrics, "epochs_run": out.epochs_run,
                     "train_time_s": out.train_time_s, "reproduced_auroc": same, "provenance": prov}
        if out.ok:
            rec.metrics.update({k: v for k, v in out.metrics.items() if k != "auroc"})
            rec.info["score_parts_from"] = "this run" if same else "a rerun (see rerun), not this run's model"
        path = record_paths(CHAPTER, profile, [rec.spec], rec.settings)[0]
        if path.stem != rec.key:
            raise RuntimeError(f"{rec.key}: its spec and settings now hash to {path.stem}; not rewriting it")
        done.append(write_atomic(path, rec.to_json()))
    return done


def specs(cfg) -> list[dict]:
    """One spec per (dataset, method, seed) of ``cfg``."""
    return [{"dataset": d, "method": m, "seed": cfg.seed + k}
            for d in datasets(cfg) for m in cfg.methods for k in range(cfg.seeds)]


def datasets(cfg) -> list[str]:
    """The profile's datasets that are present (all present ones for ``"all"``)."""
    present = adbench.available()
    wanted = present if cfg.datasets == "all" else [adbench.resolve_name(d) for d in cfg.datasets]
    absent = [d for d in wanted if d not in present]
    if absent:
        raise FileNotFoundError(f"ADBench file(s) {', '.join(absent)} not found in {adbench.folder()}; "
                                f"present: {len(present)} of 47. Set $USFKIT_DATA or download them "
                                f"(usfkit.data.adbench.path(name) does it when online).")
    return wanted


def run(cfg, progress: str = "auto", workers: int = 1, backend: str | None = None,
        address: str | None = None) -> pd.DataFrame:
    """Run (or resume) the sweep of ``cfg``; one row per run.  ``progress``: the per-run
    display of :func:`usfkit.train.fit` (the sweep always shows a bar over runs; with
    ``workers > 1`` or on Ray runs train elsewhere and show only that bar).  ``backend``/``address``:
    where the runs train (:func:`usfkit.sweep.run_sweep`)."""
    bad = set(cfg.methods) - set(METHODS)
    if bad:
        raise KeyError(f"unknown method(s) {sorted(bad)}; methods are {', '.join(METHODS)}")
    backend = check_backend(backend)
    todo, settings = specs(cfg), functools.partial(_settings_of, cfg)
    check_data(cfg, [s for s, path in zip(todo, record_paths(CHAPTER, cfg.profile, todo, settings)) if not path.exists()])
    elsewhere = workers > 1 or backend == "ray"
    one = functools.partial(_run_merged, progress="none" if elsewhere else progress)
    records = run_sweep(CHAPTER, cfg.profile, todo, one, settings=settings,
                        desc="tabular runs", workers=workers, backend=backend, address=address,
                        resources=ray_resources() if backend == "ray" else None)
    return runs_frame(records)


def _settings_of(cfg, spec: dict) -> dict:
    return run_settings(cfg, spec["method"])


SPEC_KEYS = ("dataset", "method", "seed")


def _run_merged(merged: dict, progress: str = "auto") -> RunResult:
    """:func:`run_one` on what the sweep hands a run: its spec and the settings it reads, in one dict."""
    spec = {k: merged[k] for k in SPEC_KEYS}
    return run_one(spec, SimpleNamespace(**{k: v for k, v in merged.items() if k not in SPEC_KEYS}), progress)


def check_data(cfg, pending: list[dict]) -> None:
    """Read and split every dataset that has a run still to train, here, before any run starts (on Ray: before
    any task is submitted): a bad or too small file stops the sweep with a DataError naming it, not hours later
    inside a run."""
    for dataset in dict.fromkeys(s["dataset"] for s in pending):
        _split(dataset, cfg.seed, cfg.protocol)


def ray_resources():
    """A tabular run's Ray resources: one CPU, and on a cluster with GPUs the share of a GPU the dry run's
    measured memory of a tabular flow asks for (:func:`usfkit.gpuplan.tabular_gpu_fraction`)."""
    from .. import cluster

    def share(spec: dict, gpu_gb: float) -> float:
        from .. import gpuplan
        return gpuplan.tabular_gpu_fraction(gpu_gb)
    return cluster.per_run(share)


def runs_frame(records: list) -> pd.DataFrame:
    cols = ["dataset", "method", "seed", "protocol", "ok", "auroc", "epochs_allowed", "epochs_run", "train_time_s",
            "n_train", "n_test", "dim", "leaked_test_normals", "failure",
            *(f"auroc_{p}" for p in VAE_PARTS), "std_reconstruction", "std_latent"]
    return frame(records).reindex(columns=cols)


#: The VAE score the book ranks by (chapters 05, 06 and the report): §4.4 "we combine the latent likelihood
#: with a reconstruction score", read as the two parts standardised on the training data and summed
#: (:meth:`usfkit.models.vae.VAEFlow.score`'s ``"balanced"``).  ``"elbo"`` is the negative ELBO, the first runs' score.
VAE_SCORES = ("balanced", "elbo", "reconstruction", "latent")
PRIMARY_VAE_SCORE = "balanced"


def with_vae_score(runs: pd.DataFrame, score: str = PRIMARY_VAE_SCORE) -> pd.DataFrame:
    """``runs`` with each VAE run's ``auroc`` taken from its ``score`` (:data:`VAE_SCORES`); the other methods'
    rows unchanged.  A valid VAE run that did not record that score is dropped (never filled in with another
    score): compare methods on :func:`comparable` datasets afterwards."""
    if score not in VAE_SCORES:
        raise ValueError(f"unknown VAE score {score!r}; scores are {', '.join(VAE_SCORES)}")
    out = runs.copy()
    vae = out["method"].isin(VAE_METHODS)
    if score != "elbo":
        out.loc[vae, "auroc"] = out.loc[vae, f"auroc_{score}"]
    lacking = vae & out["ok"].astype(bool) & out["auroc"].isna()
    return out[~lacking].assign(vae_score=np.where(out.loc[~lacking, "method"].isin(VAE_METHODS), score, ""))


def saved_runs(profile: str) -> pd.DataFrame:
    return runs_frame(load_runs(CHAPTER, profile))


def small_datasets(names: list[str] | None = None) -> list[str]:
    """The present datasets (or ``names``) with fewer than ``adbench.MIN_ROWS`` (1000) rows: the ones
    ADBench's generator resamples with replacement (and so leaks test normals into training)."""
    return [d for d in (names or adbench.available()) if len(adbench.load(d)[1]) < adbench.MIN_ROWS]


def leak_free(records: list[RunRecord]) -> list[RunRecord]:
    """The benchmark without ADBench's resampling leak, on every dataset: of ``records`` (either protocol),
    the runs whose training set holds no copy of a test normal (``info["leaked_test_normals"] == 0``), one
    per (dataset, method, seed), the ``"adbench-noresample"`` run where there is one.  ADBench's generator
    resamples only the small datasets, so on the others both protocols draw the same rows and their runs
    are the same computation: the full profile's leak-free runs of the small sets and its ADBench runs of
    the rest together cover all datasets."""
    chosen: dict[tuple, RunRecord] = {}
    for r in records:
        key = (r.spec["dataset"], r.spec["method"], r.spec["seed"])
        if r.info.get("leaked_test_normals") == 0 and (
                key not in chosen or r.settings.get("protocol") == "adbench-noresample"):
            chosen[key] = r
    return list(chosen.values())


def full_sweeps() -> dict[str, tuple[list[dict], dict]]:
    """The full profile's committed sweeps, by protocol: ``(specs, settings)`` of every dataset present
    x 7 methods x seeds 1-3 under ``"adbench"``, and of the small datasets under the leak-free
    ``"adbench-noresample"`` (the control of the resampling leak)."""
    out = {}
    for protocol in adbench.PROTOCOLS:
        cfg = profiles.of(CHAPTER, "full", protocol=protocol)
        if protocol != profiles.PROFILES[CHAPTER]["full"]["protocol"]:
            cfg.datasets = small_datasets()
        out[protocol] = (specs(cfg), functools.partial(_settings_of, cfg))
    return out


def status() -> pd.DataFrame:
    """Where the full profile's sweeps stand, per protocol and seed: runs present and missing, and the
    training hours the missing ones will take, estimated from the same (dataset, method) under another seed
    (the mean of their recorded training times, wall clock on one core); missing runs with no such record
    are counted apart, not guessed. ``attrs["missing"]``: per protocol, the datasets that miss runs, one
    line per seed (:func:`usfkit.sweep.describe_missing`)."""
    if not adbench.available():
        raise FileNotFoundError(f"no ADBench file in {adbench.folder()}: the sweeps' runs are the present datasets' "
                                "runs. Set $USFKIT_DATA to the folder that holds adbench_classical/.")
    rows, lines = [], {}
    for protocol, (todo, settings) in full_sweeps().items():
        paths = record_paths(CHAPTER, "full", todo, settings)
        lines[protocol] = describe_missing([sp for sp, path in zip(todo, paths) if not path.exists()], todo,
                                           "seed", "dataset")
        times: dict[tuple, list[float]] = {}  # (dataset, method) -> training seconds of its finished seeds
        for sp, path in zip(todo, paths):
            if path.exists():
                times.setdefault((sp["dataset"], sp["method"]), []).append(RunRecord.from_file(path).train_time_s)
        for seed in sorted({sp["seed"] for sp in todo}):
            mine = [(sp, path) for sp, path in zip(todo, paths) if sp["seed"] == seed]
            missing = [sp for sp, path in mine if not path.exists()]
            known = [np.mean(times[k]) for k in ((sp["dataset"], sp["method"]) for sp in missing) if k in times]
            rows.append({"protocol": protocol, "seed": seed, "present": len(mine) - len(missing),
                         "missing": len(missing),
                         "estimated hours (missing runs with a record of another seed)": round(sum(known) / 3600, 1),
                         "missing runs without an estimate": len(missing) - len(known)})
    table = pd.DataFrame(rows).set_index(["protocol", "seed"])
    table.attrs["missing"] = lines
    return table


# --------------------------------------------------------------------------
# Summaries
# --------------------------------------------------------------------------
def per_dataset(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean and std (over seeds, valid runs only) of AUC-ROC per dataset and method, plus the run counts."""
    return summarize(runs, ["dataset", "method"], "auroc")


def wide(runs: pd.DataFrame, methods=None) -> pd.DataFrame:
    """Datasets × methods of the per-dataset mean AUC-ROC (NaN where no run was valid)."""
    table = per_dataset(runs).pivot(index="dataset", columns="method", values="mean")
    order = [m for m in (methods or METHODS) if m in table.columns]
    return table[order].reindex(_in_adbench_order(table.index))


def comparable(runs: pd.DataFrame, methods=None) -> pd.DataFrame:
    """The runs of the (dataset, seed) pairs that have a record of every method in ``methods`` (default: every
    method with a run in ``runs``): methods are compared on the same datasets and seeds (a sweep in progress has
    seeds that only some methods ran)."""
    methods = runs["method"].unique() if methods is None else methods
    have = runs.groupby(["dataset", "seed"])["method"].apply(set)
    pairs = {k for k, m in have.items() if set(methods) <= m}
    return runs[[k in pairs for k in zip(runs["dataset"], runs["seed"])]]


def complete_datasets(runs: pd.DataFrame, methods=None) -> list[str]:
    """The datasets of ``runs`` with at least one seed that every method in ``methods`` ran (figures over
    datasets compare methods on the same datasets), in ADBench's order."""
    return _in_adbench_order(comparable(runs, methods)["dataset"].unique())


def _in_adbench_order(names) -> list[str]:
    """Dataset names sorted by ADBench's number (``"4_breastw"`` before ``"14_glass"``)."""
    return sorted(names, key=lambda d: int(d.split("_")[0]))


def seeds_text(runs: pd.DataFrame) -> str:
    """How many seeds the datasets have, counting a seed only where every method of ``runs`` has it, e.g.
    ``"3 seeds on 14 datasets, 1 seed on 18"`` (a sweep runs seed 1 everywhere before seeds 2 and 3)."""
    per = runs.groupby(["dataset", "method"])["seed"].nunique().groupby("dataset").min()
    counts = per.value_counts().sort_index(ascending=False)
    return ", ".join(f"{k} seed{'s' * (k != 1)} on {n}" + (f" dataset{'s' * (n != 1)}" if i == 0 else "")
                     for i, (k, n) in enumerate(counts.items()))


def seed_std(runs: pd.DataFrame) -> pd.DataFrame:
    """Run-to-run spread per dataset: datasets × methods of the standard deviation of AUC-ROC over seeds
    (in pp, ddof 1), on the datasets where every method of ``runs`` has at least 2 valid seeds (the same
    datasets for every method; a second seed in progress counts nowhere until every method has it).
    Under ADBench's protocol each seed is also a different split, so this spread holds the split's part
    too, the same for every method."""
    per = summarize(runs, ["dataset", "method"], "auroc")
    per = per[per["valid"] >= 2]
    per = per[per.groupby("dataset")["method"].transform("nunique") == runs["method"].nunique()]
    table = per.pivot(index="dataset", columns="method", values="std") * 100
    return table[[m for m in METHODS if m in table.columns]].reindex(_in_adbench_order(table.index))


def seed_spread(runs: pd.DataFrame) -> pd.DataFrame:
    """Run-to-run stability per method: :func:`seed_std` summarised over its datasets (mean and median
    seed std in pp, and their number), sorted from the most stable.  Empty while no dataset has two
    seeds of every method."""
    table = seed_std(runs)
    out = pd.DataFrame({"mean seed std (pp)": table.mean(), "median seed std (pp)": table.median(),
                        "datasets": table.count().astype(int)})
    return out.sort_values("mean seed std (pp)")


def training_lengths(runs: pd.DataFrame) -> pd.DataFrame:
    """How long each method trained under §5.1.1's shared rule (early stopping after ``patience`` epochs
    without a loss gain) and how often it ranked the test set worse than chance, over its valid runs:
    median epochs run, share of runs stopped before the epoch budget, share with AUC-ROC below 0.5 (%)."""
    ok = runs[runs["ok"].astype(bool)]
    by = ok["method"]
    out = pd.DataFrame({"median epochs run": ok["epochs_run"].groupby(by).median(),
                        "stopped early (%)": 100 * (ok["epochs_run"] < ok["epochs_allowed"]).groupby(by).mean(),
                        "AUC-ROC below 0.5 (%)": 100 * (ok["auroc"] < 0.5).groupby(by).mean(),
                        "runs": by.value_counts()})
    return out.reindex([m for m in METHODS if m in out.index])


#: ``benchmarks/dohsc_epochs.py`` writes here: DOHSC and DO2HSC trained for every epoch of the budget.
ALL_EPOCHS_FILE = "benchmarks/dohsc_epochs.json"


def all_epochs_pairs(runs: pd.DataFrame, path=None) -> pd.DataFrame:
    """DOHSC and DO2HSC under §5.1.1's shared rule (``runs``, the committed full records) beside the same
    dataset, method and seed trained for the whole epoch budget (``benchmarks/dohsc_epochs.py``'s file,
    ``path``, default :data:`ALL_EPOCHS_FILE` in the project): one row per pair that both have and that
    trained, with AUC-ROCs and epochs both ways.  Only runs of the file's protocol and epoch budget pair up
    (a quick-profile run is not the same run with fewer epochs).  Empty when the file does not exist yet."""
    path = project_root() / ALL_EPOCHS_FILE if path is None else path
    if not os.path.exists(path):
        return pd.DataFrame()
    try:
        with open(path) as f:
            saved = json.load(f)
        longer = pd.DataFrame(saved["runs"])[["dataset", "method", "seed", "ok", "auroc", "epochs_run"]]
        protocol, epochs = saved["protocol"], saved["epochs"]
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{path} is not a file that benchmarks/dohsc_epochs.py wrote ({err}); delete it and run "
                         "the script again") from err
    shared = runs[runs["ok"].astype(bool) & runs["method"].isin(["DOHSC", "DO2HSC"])
                  & (runs["protocol"] == protocol) & (runs["epochs_allowed"] == epochs)]
    both = shared[["dataset", "method", "seed", "auroc", "epochs_run"]].merge(
        longer[longer["ok"].astype(bool)], on=["dataset", "method", "seed"], suffixes=(" (rule)", " (all epochs)"))
    return both.drop(columns="ok").reset_index(drop=True)


def all_epochs_summary(pairs: pd.DataFrame, runs: pd.DataFrame | None = None, tie: float = 0.005) -> pd.DataFrame:
    """Per method, over :func:`all_epochs_pairs`: runs, median epochs under the shared rule, mean AUC-ROC (%)
    under the rule and with every epoch trained, the median change (pp), and how many runs got better or
    worse by more than ``tie``, changed by less, or kept the identical AUC-ROC (every run keeps the weights of
    its lowest training loss: where that came before the rule's stop, both runs end with the same weights):
    the four counts add up to the runs.  Then the runs below chance either way and, with ``runs`` (chapter
    05's records), USFlow's mean AUC-ROC on the same (dataset, seed) pairs."""
    pp = f"{100 * tie:g} pp"
    rows = {}
    for method, g in pairs.groupby("method", sort=False):
        rule, longer = g["auroc (rule)"], g["auroc (all epochs)"]
        change = longer - rule
        identical = change.abs() < 1e-12
        row = {"runs": len(g), "median epochs (rule)": g["epochs_run (rule)"].median(),
               "mean AUC-ROC, rule (%)": 100 * rule.mean(), "mean AUC-ROC, all epochs (%)": 100 * longer.mean(),
               "median change (pp)": 100 * change.median(),
               f"better by > {pp}": int((change > tie).sum()), f"worse by > {pp}": int((change < -tie).sum()),
               f"changed by <= {pp}": int(((change.abs() <= tie) & ~identical).sum()), "identical": int(identical.sum()),
               "below 0.5, rule": int((rule < 0.5).sum()), "below 0.5, all epochs": int((longer < 0.5).sum())}
        if runs is not None:
            usflow = runs[(runs["method"] == "USFlow") & runs["ok"].astype(bool)].merge(g[["dataset", "seed"]],
                                                                                          on=["dataset", "seed"])
            row["USFlow, same runs (%)"] = 100 * usflow["auroc"].mean()
        rows[method] = row
    out = pd.DataFrame.from_dict(rows, orient="index")
    return out.reindex([m for m in METHODS if m in out.index])


def all_epochs_sentence(pairs: pd.DataFrame, summary: pd.DataFrame) -> str:
    """Chapter 05's reading of :func:`all_epochs_summary` (made with ``runs``): each baseline's mean AUC-ROC
    under the shared rule and with every epoch trained, and its gap to USFlow's mean on the same runs."""
    parts = []
    for method, row in summary.iterrows():
        ref = row["USFlow, same runs (%)"]
        rule, longer = row["mean AUC-ROC, rule (%)"], row["mean AUC-ROC, all epochs (%)"]
        better, worse, small = (int(row[c]) for c in summary.columns if c.startswith(("better", "worse", "changed")))
        small_text = next(c for c in summary.columns if c.startswith("changed")).replace("<=", "at most")
        parts.append(f"{method} ({int(row['runs'])} runs, a median of {row['median epochs (rule)']:.0f} epochs under the "
                     f"rule) goes from {rule:.1f} to {longer:.1f} % (median change {row['median change (pp)']:+.2f} pp; "
                     f"{better} runs better, {worse} worse, {small} {small_text}, {int(row['identical'])} identical; "
                     f"below chance {int(row['below 0.5, rule'])} → {int(row['below 0.5, all epochs'])}), so its gap to "
                     f"USFlow on the same runs ({ref:.1f} %) goes from {ref - rule:.1f} to {ref - longer:.1f} pp")
    epochs = int(pairs["epochs_run (all epochs)"].max())
    seeds = ", ".join(str(s) for s in sorted(pairs["seed"].unique()))
    return (f"Trained for all {epochs} epochs instead (benchmarks/dohsc_epochs.py, ADBench's protocol, seed {seeds}, "
            f"everything else unchanged; each run keeps the weights of its lowest training loss, so a run whose loss "
            f"was lowest before the rule's stop ends as it did): " + "; ".join(parts) + ".")


def aggregate(runs: pd.DataFrame) -> pd.DataFrame:
    """Per method, over datasets: mean, std, median of the per-dataset mean AUC-ROC (in %),
    the number of datasets, and the failed runs; sorted by mean (Figure 3a's order)."""
    w = wide(runs) * 100
    failed = runs.assign(failed=~runs["ok"]).groupby("method")["failed"].sum()
    out = pd.DataFrame({"mean": w.mean(), "std": w.std(ddof=STD_DDOF), "median": w.median(), "datasets": w.count(),
                        "failed runs": failed.reindex(w.columns).fillna(0).astype(int),
                        "runs": runs.groupby("method").size().reindex(w.columns)})
    return out.sort_values("mean", ascending=False)


def pairwise(runs: pd.DataFrame, method: str, others=None, tie: float = 0.005) -> pd.DataFrame:
    """Win/tie/loss counts of ``method`` against each other method over the datasets where
    both have a valid result, by the book's one rule (:func:`usfkit.paired.outcomes`): a tie is a
    difference of the per-dataset mean AUC-ROCs of at most ``tie`` (as a fraction: 0.005 = 0.5 pp); with the
    mean and the median of those differences (pp)."""
    from ..paired import outcomes

    w = wide(runs)
    rows = []
    for other in others or [m for m in w.columns if m != method]:
        if other not in w.columns or method not in w.columns:
            continue
        both = w[[method, other]].dropna()
        d = both[method] - both[other]
        o = outcomes(d, tie)
        rows.append({"method": method, "versus": other, "datasets": len(both), "wins": int((o == "higher").sum()),
                     "ties": int((o == "equal").sum()), "losses": int((o == "lower").sum()),
                     "mean difference (pp)": 100 * d.mean() if len(d) else math.nan,
                     "median difference (pp)": 100 * d.median() if len(d) else math.nan})
    return pd.DataFrame(rows)


def paper_comparison(runs: pd.DataFrame, n_datasets: int) -> pd.DataFrame:
    """Our aggregates beside the numbers §5.1.2 states (the paper: all 47 datasets)."""
    agg = aggregate(runs)
    rows = []
    for method, ref in PAPER.items():
        ours = agg.loc[method] if method in agg.index else None
        rows.append({"method": method, "paper mean (%)": ref["mean"], "paper std (%)": ref["std"],
                     "paper datasets": 47,
                     "our mean (%)": None if ours is None else round(ours["mean"], 2),
                     "our std (%)": None if ours is None else round(ours["std"], 2),
                     "our datasets": n_datasets})
    return pd.DataFrame(rows)


def vae_score_parts(runs: pd.DataFrame) -> pd.DataFrame:
    """What ranks the test set in the VAEs' score, over the valid VAE runs that recorded their score parts
    (:func:`vae_part_metrics`): per VAE, the mean AUC-ROC (%) of the score (``combined``) and of each part
    alone, the largest gap between the score and its reconstruction part (pp), and the median ratio of the
    reconstruction part's spread to the latent part's; the last row, USF - NonUSF on the same (dataset, seed,
    protocol) runs. Empty when no run has the parts."""
    parts = runs[runs["method"].isin(VAE_METHODS) & runs["ok"].astype(bool)].dropna(subset=["auroc_latent"])
    key = ["dataset", "seed", "protocol"]
    parts = parts[parts.groupby(key)["method"].transform("nunique") == len(VAE_METHODS)]  # both VAEs ran it
    if parts.empty:
        return pd.DataFrame()
    cols = {"auroc": "score (combined)", "auroc_reconstruction": "reconstruction part alone",
            "auroc_latent": "latent part alone", "auroc_balanced": "both parts standardised, summed"}
    table = parts.groupby("method")[list(cols)].mean().mul(100).rename(columns=cols).reindex(list(VAE_METHODS))
    table["largest |score - reconstruction part| (pp)"] = (
        parts["auroc"] - parts["auroc_reconstruction"]).abs().groupby(parts["method"]).max().mul(100)
    table["reconstruction / latent spread (median)"] = (parts["std_reconstruction"] / parts["std_latent"]).groupby(
        parts["method"]).median()
    table["runs"] = parts.groupby("method").size()
    table.loc["USF - NonUSF (pp)"] = table.loc[VAE_METHODS[0], list(cols.values())] - \
        table.loc[VAE_METHODS[1], list(cols.values())]
    return table


def vae_parts_sentence(table: pd.DataFrame) -> str:
    """:func:`vae_score_parts` in words: does the reconstruction part decide the VAEs' ranking?"""
    usf, non = VAE_METHODS
    n = int(table.loc[usf, "runs"])
    gap = table["largest |score - reconstruction part| (pp)"].max()
    ratio = table["reconstruction / latent spread (median)"].min()
    alike = (f"rank the test set alike (AUC-ROC apart by at most {gap:.2f} pp), so the reconstruction part decides "
             f"the ranking and the two VAEs' scores compare their autoencoders, which the prior shapes only through "
             f"training" if gap <= 1 else f"rank the test set differently by up to {gap:.2f} pp of AUC-ROC")
    return (f"Over {n} run{'s' * (n != 1)} per VAE, the score and its reconstruction part alone {alike}; the "
            f"reconstruction part spreads at least {ratio:.0f} times wider than the latent part (median per VAE). "
            f"The latent part alone gives {usf} {table.loc[usf, 'latent part alone']:.1f} % and {non} "
            f"{table.loc[non, 'latent part alone']:.1f} % (mean AUC-ROC).")


# --------------------------------------------------------------------------
# The two protocols: ADBench's resampling and what it does to the numbers
# --------------------------------------------------------------------------
def split_table(datasets: list[str], seed: int = 1, protocol: str = "adbench-noresample") -> pd.DataFrame:
    """The split of each of ``datasets`` under ``protocol`` for ``seed`` (:meth:`usfkit.data.adbench.Split.sizes`),
    narrow enough for a book column: per dataset the dimension, the training normals, the anomalies dropped from
    training, the test rows and test anomalies, and the features constant on the training split (the copies of test
    normals are :func:`leak_table`'s)."""
    names = {"dim": "dim", "train normals": "train", "train anomalies removed": "anomalies dropped",
             "test": "test", "test anomalies": "test anomalies", "constant features": "constant features"}
    sizes = pd.DataFrame([adbench.split(d, seed=seed, protocol=protocol).sizes() for d in datasets])
    return sizes.set_index("dataset")[list(names)].rename(columns=names)


def per_dataset_table(runs: pd.DataFrame, methods=None) -> pd.DataFrame:
    """Datasets x methods of the mean AUC-ROC over seeds in %, one decimal (a narrow table: no std), as text: a
    dataset where some runs failed adds ``(valid/runs)``, one where every run failed reads ``"failed"``."""
    per = per_dataset(runs)
    cell = ["failed" if m != m else f"{100 * m:.1f}" + (f" ({v:.0f}/{r})" if v != r else "")
            for m, v, r in zip(per["mean"], per["valid"].fillna(0), per["runs"])]
    table = per.assign(cell=cell).pivot(index="dataset", columns="method", values="cell")
    order = [m for m in (methods or METHODS) if m in table.columns]
    table = table[order].reindex(_in_adbench_order(table.index))
    table.columns.name = None
    return table


def leak_table(datasets: list[str], seed: int = 1) -> pd.DataFrame:
    """Per dataset, under ADBench's generator (``protocol="adbench"``): the rows in its file, the test normals,
    how many of them have a copy of their row among the training normals (``copied``, also in %: resampling
    small sets with replacement puts copies of one row on both sides of the split), next to the leak-free
    protocol's count (``copied, no resampling``: 0)."""
    rows = []
    for name in datasets:
        leaky, clean = (adbench.split(name, seed=seed, protocol=p) for p in adbench.PROTOCOLS)
        normals = int((leaky.y_test == 0).sum())
        rows.append({"dataset": name, "rows": len(adbench.load(name)[1]), "test normals": normals,
                     "copied": leaky.leaked_test_normals, "copied (%)": 100 * leaky.leaked_test_normals / normals,
                     "copied, no resampling": clean.leaked_test_normals})
    return pd.DataFrame(rows).set_index("dataset")


#: Short names of the two data protocols for narrow tables.
PROTOCOL_LABELS = {"adbench": "ADBench", "adbench-noresample": "no leak"}


def protocol_comparison(runs: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Runs under both protocols, on the datasets (and methods) that have valid runs under each, and of
    those only the runs whose (dataset, method, seed) ran under both (a seed still running under one
    protocol would otherwise compare a three-seed mean with a one-seed one):

    * ``per_dataset``: mean AUC-ROC (%) over seeds per dataset, method and protocol;
    * ``per_method``: the mean over those datasets per protocol (columns ``"ADBench (%)"``, ``"no leak (%)"``:
      :data:`PROTOCOL_LABELS`), the change (``"leak adds (pp)"``), each method's rank among the methods with a value on every one of
      those datasets (none for a method on fewer, e.g. the VAEs under :func:`vae_scored`) and its ``datasets``;
    * ``usf_lead``: USFlow's and VAE-USFlow's mean lead (pp) over their non-USF counterparts per protocol, and the
      ``datasets`` it is a mean over;
    * ``seed_spread``: :func:`seed_spread` per protocol (empty while there is one seed).
    """
    both = [p for p in adbench.PROTOCOLS if p in set(runs["protocol"])]
    if len(both) < 2:
        raise ValueError(f"runs under both protocols are needed; these runs have {sorted(set(runs['protocol']))}")
    key = ["dataset", "method", "seed"]
    shared = set.intersection(*(set(map(tuple, runs.loc[runs["protocol"] == p, key].to_numpy())) for p in both))
    runs = runs[[k in shared for k in map(tuple, runs[key].to_numpy())]]
    tables = {p: wide(runs[runs["protocol"] == p]) * 100 for p in both}
    common_d = tables[both[0]].index.intersection(tables[both[1]].index)
    common_m = [m for m in METHODS if m in tables[both[0]].columns and m in tables[both[1]].columns]
    tables = {p: t.loc[common_d, common_m] for p, t in tables.items()}
    per_dataset = pd.concat(tables, axis=1, names=["protocol", "method"])
    means = pd.DataFrame({f"{PROTOCOL_LABELS.get(p, p)} (%)": t.mean() for p, t in tables.items()})
    a, b = means.columns
    means["leak adds (pp)" if both == list(adbench.PROTOCOLS) else f"{a} − {b} (pp)"] = means[a] - means[b]
    n = pd.concat([t.count() for t in tables.values()], axis=1).min(axis=1)  # datasets with both protocols' value
    full = n == len(common_d)
    for p, col in zip(both, (a, b)):  # ranked among the methods on every dataset; one on fewer (the VAEs) is not
        means[f"rank, {PROTOCOL_LABELS.get(p, p)}"] = means.loc[full, col].rank(ascending=False).astype(
            "Int64").reindex(means.index)
    means["datasets"] = n
    lead = pd.DataFrame({p: {f"{a} − {b}": (t[a] - t[b]).mean() for a, b in usf_pairs()
                             if a in t.columns and b in t.columns} for p, t in tables.items()})
    lead["datasets"] = [int(min((t[a] - t[b]).count() for t in tables.values()))
                        for a, b in (k.split(" − ") for k in lead.index)]
    return {"per_dataset": per_dataset, "per_method": means.sort_values(a, ascending=False),
            "usf_lead": lead, "datasets": list(common_d), "seeds": sorted(runs["seed"].unique()),
            "seed_spread": pd.concat({p: seed_spread(runs[(runs["protocol"] == p) & runs["dataset"].isin(common_d)])
                                      for p in both}, axis=1)}


# --------------------------------------------------------------------------
# At the paper's settings: the committed full runs, read for chapter 05's first section
# --------------------------------------------------------------------------
#: The two readings of the full profile's runs that chapter 05 shows, by label (see :func:`paper_settings_views`).
ADBENCH_VIEW, LEAK_FREE_VIEW = "ADBench's generator", "without the leak"


def committed_full() -> tuple[list[RunRecord], dict[str, int]]:
    """The full profile's committed run records of :func:`full_sweeps` (both protocols), read without printing, and
    per protocol how many of the sweep's runs have no record yet."""
    records, missing = [], {}
    for protocol, (todo, settings) in full_sweeps().items():
        paths = record_paths(CHAPTER, "full", todo, settings)
        records += [RunRecord.from_file(p) for p in paths if p.exists()]
        missing[protocol] = sum(not p.exists() for p in paths)
    return records, missing


def paper_settings_views(records: list[RunRecord]) -> dict[str, pd.DataFrame]:
    """``records`` (both protocols) as the two benchmarks chapter 05 shows: :data:`ADBENCH_VIEW`, the runs of
    ADBench's generator (protocol ``"adbench"``), and :data:`LEAK_FREE_VIEW`, :func:`leak_free`'s runs; each
    cut to the (dataset, seed) pairs that every method ran (:func:`comparable`).  VAE rows keep every score
    column (:func:`vae_scored` picks one).  A view without a record is left out."""
    views = {ADBENCH_VIEW: [r for r in records if r.settings.get("protocol") == "adbench"],
             LEAK_FREE_VIEW: leak_free(records)}
    return {label: comparable(runs_frame(recs)) for label, recs in views.items() if recs}


def unscored_datasets(runs: pd.DataFrame, score: str = PRIMARY_VAE_SCORE) -> list[str]:
    """The datasets of ``runs`` where some valid VAE run has no AUC-ROC under ``score`` (its rerun is pending)."""
    if score == "elbo":
        return []
    vae = runs["method"].isin(VAE_METHODS) & runs["ok"].astype(bool)
    return _in_adbench_order(runs.loc[vae & runs[f"auroc_{score}"].isna(), "dataset"].unique())


def vae_scored(runs: pd.DataFrame, score: str = PRIMARY_VAE_SCORE) -> pd.DataFrame:
    """``runs`` with the VAEs ranked by ``score`` (:func:`with_vae_score`), their runs kept only on the datasets
    where every valid VAE run has that score (:func:`unscored_datasets` dropped): a VAE's mean over seeds and its
    comparison with the other VAE rest on the same runs.  The other methods keep every dataset."""
    lacking = set(unscored_datasets(runs, score))
    out = with_vae_score(runs, score)
    return out[~(out["method"].isin(VAE_METHODS) & out["dataset"].isin(lacking))]


def _ranks(agg: pd.DataFrame, iqr: pd.Series, methods: list[str]) -> dict[str, int]:
    """USFlow's rank among ``methods`` by mean (highest first), std and IQR (smallest first)."""
    a = agg.loc[methods]
    return {"mean": int(a["mean"].rank(ascending=False, method="min")["USFlow"]),
            "std": int(a["std"].rank(method="min")["USFlow"]),
            "IQR": int(iqr[methods].rank(method="min")["USFlow"])}


def _compare(scored: pd.DataFrame, w: pd.DataFrame, first: str, second: str, tie: float) -> dict:
    """``first`` against ``second`` on the datasets where both have a value in ``w`` (per-dataset means, %): the
    number of datasets ``n``, each method's mean over exactly those datasets (``first_mean``, ``second_mean``), the
    ``mean`` and ``median`` difference (pp) with the Wilcoxon ``p`` (:func:`usfkit.paired.paired_test`),
    and ``wins`` / ``ties`` / ``losses`` by :func:`pairwise` (the rule of Figure 3b, tie: ``|Δ| <= tie``)."""
    from ..paired import paired_test

    both = w[[first, second]].dropna()
    t = paired_test(both[first] - both[second])
    row = pairwise(scored, first, [second], tie=tie).iloc[0]
    return {**t, "first_mean": both[first].mean(), "second_mean": both[second].mean(),
            "wins": int(row["wins"]), "ties": int(row["ties"]), "losses": int(row["losses"])}


def view_facts(runs: pd.DataFrame, score: str = PRIMARY_VAE_SCORE, tie: float = 0.005) -> dict:
    """The numbers chapter 05 states for one view of the full runs (:func:`paper_settings_views`), the VAEs ranked
    by ``score`` on the datasets where all their runs have it (:func:`vae_scored`): :func:`aggregate` and the IQR
    (%); USFlow's ranks among the methods that cover every dataset; the paired comparisons (``_compare``:
    means over the datasets compared, mean and median difference in pp, win/tie/loss by ``tie`` as Figure 3b
    counts them) of VAE-USFlow with USFlow and of each USF with its non-USF partner; and the per-dataset seed std
    (:func:`seed_std`; USFlow's on every dataset, the VAEs' on their scored ones)."""
    from ..paired import paired_test

    scored = vae_scored(runs, score)
    w = wide(scored) * 100
    agg = aggregate(scored)
    iqr = w.quantile(0.75) - w.quantile(0.25)
    n = runs["dataset"].nunique()
    full_cover = [m for m in agg.index if agg.loc[m, "datasets"] == n]
    facts = {"agg": agg, "iqr": iqr, "datasets": n, "full_cover": full_cover,
             "ranks": _ranks(agg, iqr, full_cover), "seeds": tabular_seeds(runs),
             "unscored": unscored_datasets(runs, score), "tie": tie}
    spread = {"USFlow": seed_std(runs[~runs["method"].isin(VAE_METHODS)]),
              "VAE-USFlow": seed_std(scored[scored["method"].isin(VAE_METHODS)])}
    if {"USFlow", "VAE-USFlow"} <= set(w.columns):  # §5.1.2: "VAE-USFlow ... shows slightly weaker performance"
        facts["VAE vs USFlow"] = _compare(scored, w, "VAE-USFlow", "USFlow", tie)
    for usf, non in usf_pairs():
        if usf not in w.columns or non not in w.columns:
            continue
        c = _compare(scored, w, usf, non, tie)
        sd = spread[usf]
        facts[usf] = {"mean": c, "wtl": (c["wins"], c["ties"], c["losses"]),
                      "seed std": (sd[usf].mean(), sd[non].mean()) if len(sd) else None,
                      "seed test": paired_test(sd[usf] - sd[non]) if len(sd) else None}
    return facts


def tabular_seeds(runs: pd.DataFrame) -> str:
    """The seeds of ``runs`` as a range, e.g. ``"1-3"`` (or ``"1"``)."""
    seeds = sorted(runs["seed"].unique())
    return str(seeds[0]) if len(seeds) == 1 else f"{seeds[0]}-{seeds[-1]}"


def paper_settings_text(views: dict[str, pd.DataFrame], score: str = PRIMARY_VAE_SCORE,
                        tie: float | None = None) -> str:
    """Chapter 05's reading of the full runs against §5.1.2 (and the abstract's stability claim), in Markdown: per
    claim a bullet "Paper: ..." (the claim, cited), under it one line "Ours, <view>: ..." per view of
    :func:`paper_settings_views`, every number from :func:`view_facts`: each labelled a mean or a median, each
    with the number of datasets it rests on (a comparison on a subset gives both methods' means on that subset),
    win/tie/loss counted as Figure 3b counts them.  ``tie``: the margin (default: the full profile's)."""
    from ..paired import p_text

    tie = profiles.PROFILES[CHAPTER]["full"]["tie"] if tie is None else tie
    facts = {label: view_facts(runs, score, tie) for label, runs in views.items()}
    ref = PAPER["USFlow"]
    rule = f"a tie is |Δ| ≤ {100 * tie:g} pp, as in Figure 3b"

    def on(f: dict, n: int, vae: bool) -> str:
        if vae and f["unscored"]:
            return f"on the {n} datasets whose VAE runs all have the {score} score"
        return f"on all {n} datasets" if n == f["datasets"] else f"on {n} datasets"

    def compare(f: dict, c: dict, a: str, b: str, vae: bool) -> str:
        return (f"{on(f, c['n'], vae)}, {a} {c['first_mean']:.2f} % and {b} {c['second_mean']:.2f} % (means); "
                f"{a} − {b}: mean {c['mean']:+.2f} pp, median {c['median']:+.2f} pp; {a} wins {c['wins']}, ties "
                f"{c['ties']}, loses {c['losses']} ({p_text(c['p'])})")

    def pair(f: dict, usf: str, non: str) -> str:
        if usf not in f:
            return f"{usf} vs {non}: no dataset with both"
        return compare(f, f[usf]["mean"], usf, non, usf.startswith("VAE"))

    def spread(f: dict, usf: str, non: str) -> str:
        if usf not in f or f[usf]["seed std"] is None:
            return f"{usf} vs {non}: no dataset with two seeds of both"
        (a, b), t = f[usf]["seed std"], f[usf]["seed test"]
        return (f"{on(f, t['n'], usf.startswith('VAE'))}, the mean seed std is {a:.2f} pp for {usf} and {b:.2f} pp "
                f"for {non}; {usf} steadier on {t['lower']}, less steady on {t['higher']} ({p_text(t['p'])})")

    def lines(render) -> list[str]:
        return [f"  - Ours, {label}: {render(f)}." for label, f in facts.items()]

    def usflow(f: dict) -> str:
        u, r, k = f["agg"].loc["USFlow"], f["ranks"], len(f["full_cover"])
        return (f"USFlow {u['mean']:.2f} ± {u['std']:.2f} % (mean ± std over all {f['datasets']} datasets, seeds "
                f"{f['seeds']}); rank {r['mean']} of {k} by mean, {r['std']} by std, {r['IQR']} by IQR")

    def median(f: dict) -> str:
        a = f["agg"]
        gap = a.loc["OneFlow", "median"] - a.loc["USFlow", "median"]
        where = "the same" if abs(gap) < 0.005 else f"USFlow's is {abs(gap):.2f} pp {'below' if gap > 0 else 'above'}"
        return (f"medians over all {f['datasets']} datasets: USFlow {a.loc['USFlow', 'median']:.2f} %, OneFlow "
                f"{a.loc['OneFlow', 'median']:.2f} %: {where}")

    def vae(f: dict) -> str:
        if "VAE vs USFlow" not in f:
            return "no dataset with both"
        return compare(f, f["VAE vs USFlow"], "VAE-USFlow", "USFlow", True)

    def trail(f: dict) -> str:
        a = f["agg"]["mean"]
        base = [m for m in ("DOHSC", "DO2HSC") if m in a.index]
        flows_ = [m for m in f["full_cover"] if m not in base]
        low = min(flows_, key=lambda m: a[m])
        held = all(a[b] < a[low] for b in base)
        return (f"means over all {f['datasets']} datasets: " + ", ".join(f"{m} {a[m]:.2f} %" for m in base)
                + f"; the lowest flow, {low}, {a[low]:.2f} %: "
                + ("they trail every flow" if held else "they do not trail every flow"))

    cover = next(iter(facts.values()))
    partial = [m for m in cover["agg"].index if m not in cover["full_cover"]]
    rank_note = (f" Ranks are among the {len(cover['full_cover'])} methods with every dataset; "
                 f"{' and '.join(partial)} join them when all their runs have the {score} score."
                 if partial else "")
    return "\n".join([
        f"What the committed full-profile runs show (the paper's settings; each method's AUC-ROC on a dataset is its "
        f"mean over seeds; the VAEs ranked by the {score} score, see below; {rule}; p: two-sided Wilcoxon "
        f"signed-rank test on the per-dataset differences).{rank_note}",
        "",
        f"- **Paper: USFlow has the highest mean, the smallest std and the narrowest IQR** (§5.1.2: {ref['mean']:.2f} "
        f"± {ref['std']:.2f} % over 47 datasets)", *lines(usflow),
        "- **Paper: its median is slightly below OneFlow's** (§5.1.2)", *lines(median),
        "- **Paper: VAE-USFlow remains competitive but shows slightly weaker performance** (§5.1.2)", *lines(vae),
        "- **Paper: the USF variants clearly outperform their non-USF counterparts** (§5.1.2)",
        *lines(lambda f: "; ".join(pair(f, usf, non) for usf, non in usf_pairs())),
        "- **Paper: DOHSC and DO2HSC trail all flow-based methods** (§5.1.2)", *lines(trail),
        "- **Paper: USFs train more stably** (abstract: \"substantially improved training stability\"; §5.1 gives "
        "no tabular number; ours: the std over seeds per dataset)",
        *lines(lambda f: "; ".join(spread(f, usf, non) for usf, non in usf_pairs()))])


def _lacks_parts(r: RunRecord) -> bool:
    """The predicate of :func:`lacking_vae_parts`: a valid VAE run with no score parts and no rerun yet."""
    return r.spec["method"] in VAE_METHODS and r.ok and "auroc_balanced" not in r.metrics and r.rerun is None


def vae_scores(records: list[RunRecord]) -> pd.DataFrame:
    """The valid VAE runs of ``records``, one row each: ``dataset``, ``seed``, ``protocol``, ``method``, the AUC-ROC
    of every score of :data:`VAE_SCORES` (NaN while a rerun is pending), and ``parts_from``: ``"first run"``,
    ``"rerun, reproduced"``, ``"rerun, not reproduced"`` or ``"pending"``.  Each row is one model scored four
    ways: where the parts come from a rerun that did not reproduce the record's ELBO AUC-ROC, ``elbo`` is the
    rerun's."""
    rows = []
    for r in records:
        if r.spec["method"] not in VAE_METHODS or not r.ok:
            continue
        rerun = r.rerun or {}
        reproduced = rerun.get("reproduced_auroc")
        elbo = r.metrics["auroc"] if not rerun or reproduced or not rerun.get("ok") else rerun["metrics"]["auroc"]
        has = "auroc_balanced" in r.metrics and r.metrics["auroc_balanced"] is not None
        parts_from = ("pending" if not has else "first run" if not rerun else
                      "rerun, reproduced" if reproduced else "rerun, not reproduced")
        rows.append({"dataset": r.spec["dataset"], "seed": r.spec["seed"], "protocol": r.settings.get("protocol"),
                     "method": r.spec["method"], "elbo": elbo, "parts_from": parts_from,
                     **{s: r.metrics.get(f"auroc_{s}", math.nan) for s in VAE_SCORES if s != "elbo"}})
    cols = ["dataset", "seed", "protocol", "method", *VAE_SCORES, "parts_from"]
    return pd.DataFrame(rows, columns=cols).astype({s: float for s in VAE_SCORES})


#: What pairs a VAE-USFlow run with its VAE-NonUSFlow twin in :func:`vae_scores`.
VAE_PAIR_KEY = ["dataset", "seed", "protocol"]


def rerun_causes(records: list[RunRecord]) -> pd.DataFrame:
    """The VAE reruns of ``records`` (:func:`rerun_for_vae_parts`), one row each: ``reproduced`` (the first run's
    ELBO AUC-ROC to 1e-6), ``machine`` (``"same"`` when the first run's provenance names the rerun's device, else
    ``"another"``) and ``first run`` (``"compiled"``, ``"eager"`` or ``"not recorded"``: the record's
    ``info["compiled"]``, whether the first run compiled its loss)."""
    rows = []
    for r in records:
        x = r.rerun
        if r.spec["method"] not in VAE_METHODS or not x or not x.get("ok"):
            continue
        same = (r.provenance or {}).get("device") == (x.get("provenance") or {}).get("device")
        compiled = r.info.get("compiled")
        rows.append({"reproduced": bool(x.get("reproduced_auroc")), "machine": "same" if same else "another",
                     "first run": "not recorded" if compiled is None else "compiled" if compiled else "eager"})
    return pd.DataFrame(rows, columns=["reproduced", "machine", "first run"])


def rescoring_text(records: list[RunRecord], views: dict[str, pd.DataFrame] | None = None,
                   score: str = PRIMARY_VAE_SCORE) -> str:
    """Where the VAE runs of ``records`` stand with ``score`` (Markdown): how many have it so far and how many are
    still being rerun to add it (:func:`rerun_for_vae_parts`); how many reruns reproduced the first run's ELBO
    AUC-ROC and why one need not (:func:`rerun_causes`: another machine, a compiled first run, or the same machine
    and an eager first run); and per view (:func:`paper_settings_views`) on how many datasets the VAEs are
    compared (:func:`vae_scored`'s rule)."""
    vae = [r for r in records if r.spec["method"] in VAE_METHODS and r.ok]
    have = sum(1 for r in vae if r.metrics.get(f"auroc_{score}") is not None)
    pending = sum(1 for r in vae if _lacks_parts(r))
    causes = rerun_causes(records)
    done, same = len(causes), int(causes["reproduced"].sum())
    text = (f"{have} of the {len(vae)} valid VAE runs committed have the {score} score so far ({have - done} recorded "
            f"it when they ran, {done} got it from a rerun); "
            + (f"the other {pending} lack it: the first runs recorded only the ELBO and a saved model's scores were "
               f"not kept, so each must be trained again with its record's settings "
               f"(`tabular.rerun_for_vae_parts`); until then the VAE comparisons rest on the datasets counted "
               f"below." if pending else "none lacks it."))
    if done:
        miss = causes[~causes["reproduced"]]
        other = int((miss["machine"] == "another").sum())
        here = miss[miss["machine"] == "same"]
        comp, eager = int((here["first run"] == "compiled").sum()), int((here["first run"] != "compiled").sum())
        text += (f" Of the {done} reruns so far, {same} reproduced the first run's ELBO AUC-ROC (to 1e-6) and "
                 f"{done - same} did not" + (
                     f": a rerun need not, because training amplifies any difference in floating-point rounding "
                     f"over its epochs, and of those {done - same}, {other} first ran on another machine, {comp} on "
                     f"this one with a compiled loss (record info \"compiled\") and {eager} on this one without; "
                     f"where a rerun did not reproduce, its score parts describe the rerun's "
                     f"model" if same < done else "") + ".")
    if views:
        text += (" By one rule (usfkit.experiments.tabular.vae_scored), the VAEs are compared only on the datasets "
                 "where every one of their runs has the score: " + ", ".join(
                     f"{runs['dataset'].nunique() - len(unscored_datasets(runs, score))} of the "
                     f"{runs['dataset'].nunique()} datasets {'under ' if label == ADBENCH_VIEW else ''}{label}"
                     for label, runs in views.items()) + " (Figures 3a and 3b, the sentences above and the detail tables); the "
                 "table below pairs runs instead: every VAE-USFlow run and its VAE-NonUSFlow twin that both have all "
                 "four scores.")
    return text


def summary_table(views: dict[str, pd.DataFrame], score: str = PRIMARY_VAE_SCORE) -> pd.DataFrame:
    """Figure 3a's numbers per view (:func:`paper_settings_views`, the VAEs by ``score`` as :func:`vae_scored`):
    per method, ``mean ± std`` (%), median (%) and the number of datasets, the views side by side, sorted by the
    first view's mean."""
    parts = {}
    for label, runs in views.items():
        agg = aggregate(vae_scored(runs, score))
        parts[label] = pd.DataFrame({"mean ± std (%)": [f"{m:.2f} ± {s:.2f}" for m, s in zip(agg["mean"], agg["std"])],
                                     "median (%)": agg["median"].round(2).to_numpy(),
                                     "datasets": agg["datasets"].astype(int).to_numpy()}, index=agg.index)
    first = next(iter(parts.values())).index
    return pd.concat(parts, axis=1).reindex(first)


def pairwise_table(runs: pd.DataFrame, score: str = PRIMARY_VAE_SCORE, tie: float | None = None) -> pd.DataFrame:
    """Figure 3b's counts for ``runs`` (one view; the VAEs by ``score`` as :func:`vae_scored`): USFlow and
    VAE-USFlow against each other method: the datasets compared, wins / ties / losses in one column (``tie``: the
    full profile's margin by default, the rule of Figure 3b) and the mean and median difference (pp), rounded to 2
    decimals."""
    tie = profiles.PROFILES[CHAPTER]["full"]["tie"] if tie is None else tie
    scored = vae_scored(runs, score)
    table = pd.concat([pairwise(scored, m, tie=tie) for m in ("USFlow", "VAE-USFlow")])
    table["wins / ties / losses"] = [f"{w} / {t} / {l}" for w, t, l in zip(table["wins"], table["ties"], table["losses"])]
    table = table.rename(columns={"mean difference (pp)": "mean Δ (pp)", "median difference (pp)": "median Δ (pp)"})
    cols = ["datasets", "wins / ties / losses", "mean Δ (pp)", "median Δ (pp)"]
    return table.set_index(["method", "versus"])[cols].round(2)


def seed_std_table(runs: pd.DataFrame, score: str = PRIMARY_VAE_SCORE) -> pd.DataFrame:
    """:func:`seed_std` for one view, datasets x methods (pp): the methods that need no VAE score on every dataset
    with two or more seeds of each of them, the VAEs by ``score`` on the datasets where all their runs have it
    (:func:`vae_scored`), NaN elsewhere."""
    vae = runs["method"].isin(VAE_METHODS)
    parts = [seed_std(part) for part in (runs[~vae], vae_scored(runs[vae], score)) if len(part)]
    table = pd.concat(parts, axis=1) if parts else pd.DataFrame()
    return table[[m for m in METHODS if m in table.columns]].reindex(_in_adbench_order(table.index))


def seed_spread_table(runs: pd.DataFrame, score: str = PRIMARY_VAE_SCORE) -> pd.DataFrame:
    """:func:`seed_spread` for one view: the methods that need no VAE score over every dataset with two or more
    seeds of each of them, the VAEs by ``score`` over the datasets where all their runs have it
    (:func:`vae_scored`); column ``datasets`` says which count; sorted from the most stable."""
    vae = runs["method"].isin(VAE_METHODS)
    scored = vae_scored(runs[vae], score)
    parts = [seed_spread(part) for part in (runs[~vae], scored) if len(part)]
    return pd.concat(parts).sort_values("mean seed std (pp)") if parts else pd.DataFrame()


def coverage_text(records: list[RunRecord], missing: dict[str, int]) -> str:
    """What :func:`committed_full` found, in one Markdown sentence: runs per protocol, missing and failed ones."""
    by = {p: [r for r in records if r.settings.get("protocol") == p] for p in missing}
    what = {"adbench": "under ADBench's generator",
            "adbench-noresample": f"leak-free control runs of the datasets under {adbench.MIN_ROWS} rows"}

    def part(p: str) -> str:
        n_sets = len({r.spec["dataset"] for r in by[p]})
        return (f"{len(by[p])} {what.get(p, f'under protocol {p}')} ({n_sets} datasets)"
                + (f", {missing[p]} not run yet" if missing[p] else ""))
    failed = sum(not r.ok for r in records)
    methods = len({r.spec["method"] for r in records})
    seeds = tabular_seeds(pd.DataFrame({"seed": [r.spec["seed"] for r in records]})) if records else "none"
    return (f"The full profile's committed runs (§5.1.1's settings, {methods} methods, seeds {seeds}, on the "
            f"{len(adbench.available())} of the {len(adbench.NAMES)} datasets present here): "
            + "; ".join(part(p) for p in missing) + f"; {failed} of them failed.")


def training_text(lengths: pd.DataFrame) -> str:
    """:func:`training_lengths` in words: how long DOHSC, DO2HSC and USFlow trained under the shared rule, and how
    many of the baselines' runs rank the test set worse than chance."""
    base = [m for m in ("DOHSC", "DO2HSC") if m in lengths.index]
    return (f"Under §5.1.1's rule for all models (stop after 5 epochs without a training-loss gain above 1e-4), "
            + " and ".join(f"{m} stops after a median of {lengths.loc[m, 'median epochs run']:.0f} epochs" for m in base)
            + f" (after the autoencoder pretraining), USFlow after {lengths.loc['USFlow', 'median epochs run']:.0f}; "
            + " and ".join(f"{lengths.loc[m, 'AUC-ROC below 0.5 (%)']:.0f} % of {m}'s runs" for m in base)
            + " rank the test set worse than chance.")


def run_from_args(args) -> None:
    """What ``usf-tabular`` does with its parsed arguments (:func:`usfkit.cli.tabular_parser`)."""
    if args.status:
        table = status()
        print(table.to_string())
        for protocol, lines in table.attrs["missing"].items():
            print("\n".join([f"missing under protocol {protocol}:"] + ["  " + line for line in lines]) if lines
                  else f"nothing missing under protocol {protocol}")
        return
    import torch

    workers = args.workers or (1 if torch.cuda.is_available() else os.cpu_count() or 1)
    # the command line's --profile, not $USFKIT_PROFILE (which stands in for a notebook's parameter)
    cfg = profiles.of(CHAPTER, args.profile, datasets=args.datasets, methods=args.methods, seed=args.seed,
                           seeds=args.seeds,
                           epochs=args.epochs, protocol=args.protocol)
    where = f"{workers} worker(s)" if args.backend == "local" else "Ray tasks"
    print(f"{len(specs(cfg))} runs, {where}; finished runs are skipped")
    runs = run(cfg, progress="none", workers=workers, backend=args.backend, address=args.address)
    print(aggregate(runs).round(2).to_string())
    print(f"runs saved under {__import__('usfkit').results.chapter_dir(CHAPTER, cfg.profile) / 'runs'}")

