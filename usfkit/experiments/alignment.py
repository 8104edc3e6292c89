"""The latent-alignment experiment of §4.3 / App. C.

For each dimension ``d`` the asymmetric Gaussian mixture is sampled into
train / validation / test sets; Deep SVDD, a NonUSFlow and a USFlow are trained
with a small random hyper-parameter search (``search_runs`` configurations per
method, the best chosen by validation loss: one-class loss for Deep SVDD, NLL for
the flows).  On the test set we compare the *true* log-likelihood with the latent
norm ``||phi(x) - c||`` (Spearman rho, Kendall tau) and, for the flows, with the
estimated log-likelihood.

Every trial is one run of the shared resumable sweep (:func:`usfkit.sweep.run_sweep`: a
run record under ``runs/``, keyed by every setting), plus its weights in ``checkpoints/``
under the same key, so an interrupted search resumes where it stopped and a rerun only
loads what it trained.  Only the chosen trials' weights are read again; checkpoints are a
local cache (git ignores them), and a chosen trial whose checkpoint is gone is trained again.
"""
from __future__ import annotations

import math

import ast
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd
import torch

from .. import metrics, profiles, results, sweep
from ..data import AsymmetricGaussianMixture
from ..models.flows import PAPER_FLOWS, build_flow
from ..models.flows_lightning import train_flow
from ..models.oneclass import DeepSVDD, svdd_widths, train_svdd
from ..results import RunResult
from ..rng import seeded
from ..train import FitResult

__all__ = ["CHAPTER", "RHO", "TAU", "RHO_EST", "TrialMethod", "METHODS", "search_space", "Data", "build_model",
           "train_model", "evaluate", "TRIAL_SETTINGS", "trial_sweep", "search_label", "run", "config_label",
           "styled", "summary_table", "describe_full", "PAPER_FAILED_NONUSF", "describe_failures", "search_table"]

CHAPTER = "04_alignment"
#: the summary table's correlation columns (the chapter, its plots and the report read them by name)
RHO, TAU, RHO_EST = "Spearman rho (ln p, -||z||)", "Kendall tau (ln p, -||z||)", "Spearman rho (ln p, ln p_hat)"


@dataclass(frozen=True)
class TrialMethod:
    """How App. C's search treats one method: the hyperparameters it searches beyond the learning rate and
    batch size (``space``: setting -> the profile's list of values), how it is built from a drawn
    configuration (``build(dim, conf, cfg)``) and trained (``train(model, x_train, x_val, cfg, **fit)``), and
    its latent, latent norm and, for a flow, estimated log-likelihood (``latent(model, x)``)."""

    space: dict[str, str]
    build: Callable[[int, dict, object], torch.nn.Module]
    train: Callable[..., FitResult]
    latent: Callable[[torch.nn.Module, torch.Tensor], tuple]


def _svdd_build(dim: int, conf: dict, cfg):
    with seeded(cfg.seed):  # the same initialisation whatever ran before, like the flows'
        return DeepSVDD(dim, svdd_widths(dim, conf["depth"]))


def _svdd_latent(model, x):
    z = model(x)
    return z, (z - model.center).norm(dim=1), None


def _flow(coupling: str) -> TrialMethod:
    def build(dim: int, conf: dict, cfg):
        return build_flow(dim, coupling=coupling, blocks=conf["blocks"], hidden=cfg.hidden, layers=conf["layers"],
                          seed=cfg.seed)

    def latent(model, x):
        z, logdet = model(x)
        return z, model.base.sq_dist(z).sqrt(), (model.base.log_prob(z) + logdet).numpy()

    def train(model, x_train, x_val, cfg, **kw):
        return train_flow(model, x_train, x_val, **kw)

    return TrialMethod({"blocks": "blocks", "layers": "layers"}, build, train, latent)


#: App. C's three methods, in the order that seeds each one's random configurations.
METHODS: dict[str, TrialMethod] = {
    "Deep SVDD": TrialMethod({"depth": "svdd_depths"}, _svdd_build,
                             lambda model, train, val, cfg, **kw: train_svdd(
                                 model, train, val, pretrain_epochs=cfg.svdd_pretrain_epochs, **kw), _svdd_latent),
    "NonUSFlow": _flow(PAPER_FLOWS["NonUSFlow"]),
    "USFlow": _flow(PAPER_FLOWS["USFlow"]),
}


def search_space(method: str, cfg, run: int) -> dict:
    """The ``run``-th configuration: run 0 takes the first value of every list, later runs
    draw at random (seeded by run number and method, so reruns draw the same)."""
    rng = np.random.default_rng([cfg.seed, run, list(METHODS).index(method)])
    pick = (lambda xs: xs[0]) if run == 0 else (lambda xs: xs[int(rng.integers(len(xs)))])
    common = {"lr": pick(cfg.lrs), "batch_size": pick(cfg.batch_sizes)}
    return {**{k: pick(getattr(cfg, lists)) for k, lists in METHODS[method].space.items()}, **common}


@dataclass
class Data:
    dim: int
    mixture: AsymmetricGaussianMixture
    train: torch.Tensor
    val: torch.Tensor
    test: torch.Tensor
    test_log_prob: np.ndarray

    @classmethod
    def sample(cls, dim: int, cfg) -> "Data":
        gm = AsymmetricGaussianMixture(dim)
        s = cfg.seed * 1000 + dim
        test = gm.sample(cfg.n_test, s + 2)[0]
        return cls(dim, gm, gm.sample(cfg.n_train, s)[0], gm.sample(cfg.n_val, s + 1)[0], test,
                   gm.log_prob(test.numpy()))


def build_model(method: str, dim: int, conf: dict, cfg):
    return METHODS[method].build(dim, conf, cfg)


def train_model(method: str, model, data: Data, conf: dict, cfg, desc: str) -> FitResult:
    kw = dict(max_epochs=cfg.epochs, batch_size=conf["batch_size"], patience=cfg.patience, lr=conf["lr"],
              seed=cfg.seed, desc=desc)
    return METHODS[method].train(model, data.train, data.val, cfg, **kw)


@torch.no_grad()
def evaluate(method: str, model, data: Data) -> dict:
    """Latent norms and (flows) estimated log-likelihoods on the test set, with rank correlations.

    Correlations are taken between the true log-likelihood and the *negative* latent
    norm, so +1 means "the closer to the centre, the more likely": perfect alignment.
    """
    z, norm, est = METHODS[method].latent(model, data.test)
    out = {"norm": norm.numpy(), "latent": z.numpy(), "est_log_prob": est,
           "rho": metrics.spearman(data.test_log_prob, -norm), "tau": metrics.kendall(data.test_log_prob, -norm)}
    if est is not None:
        out["rho_est"] = metrics.spearman(data.test_log_prob, est)
        out["rho_est_norm"] = metrics.spearman(est, -norm)
    return out


#: The settings a trial reads, and so what its key hashes besides its spec (a setting added to the profile
#: for something else leaves every trial's key as it is).
TRIAL_SETTINGS = ("n_train", "n_val", "n_test", "epochs", "patience", "seed", "blocks", "layers", "hidden", "lrs",
                  "batch_sizes", "svdd_depths", "svdd_pretrain_epochs")


def trial_sweep(cfg) -> tuple[list[dict], dict]:
    """Specs and settings of the search's trials: every (dimension, method, search run)."""
    specs = [{"dim": d, "method": m, "run": r} for d in cfg.dims for m in METHODS for r in range(cfg.search_runs)]
    return specs, profiles.pick(cfg, TRIAL_SETTINGS)


def search_label(cfg) -> str:
    """What search ``cfg`` runs, said plainly: App. C's full search, or a reduced one (fewer configurations
    per method and dimension than the full profile's, the same dimensions, models and training), which
    this book never calls full."""
    full = profiles.PROFILES[CHAPTER]["full"]["search_runs"]
    if cfg.profile != "full":
        return f"{cfg.profile} profile: {cfg.search_runs} configuration(s) per method and dimension"
    if cfg.search_runs >= full:
        return f"full search: {cfg.search_runs} configurations per method and dimension (App. C)"
    return (f"REDUCED search: {cfg.search_runs} of the full search's {full} configurations per method and dimension "
            f"(the same dimensions, models, data and training; run 0 takes each list's first value, later runs draw)")


def _fit_trial(spec: dict, cfg, datasets: dict[int, "Data"]) -> tuple[object, FitResult, dict]:
    """Train the trial ``spec`` (dimension, method, search run): its model, fit and configuration."""
    conf = search_space(spec["method"], cfg, spec["run"])
    model = build_model(spec["method"], spec["dim"], conf, cfg)
    res = train_model(spec["method"], model, datasets[spec["dim"]], conf, cfg,
                      desc=f"{spec['method']} d={spec['dim']} run {spec['run']}")
    return model, res, conf


def _trials(cfg, datasets: dict[int, "Data"], verbose: bool) -> list[dict]:
    """Every (dimension, method, search run) through the shared sweep: one dict per trial (its spec,
    configuration, validation loss, record key...); a valid trial's weights go to ``checkpoints/``."""
    folder = results.chapter_dir(CHAPTER, cfg.profile) / "checkpoints"
    specs, settings = trial_sweep(cfg)

    def train_one(merged: dict) -> RunResult:
        spec = {k: merged[k] for k in ("dim", "method", "run")}
        model, res, conf = _fit_trial(spec, cfg, datasets)
        if res.ok:
            folder.mkdir(parents=True, exist_ok=True)
            torch.save(model.state_dict(), folder / f"{sweep.spec_key(spec, settings)}.pt")
        return RunResult.from_fit(res, cfg.epochs, metrics={"val_loss": res.best_loss if res.ok else None},
                                  info={"config": conf})

    records = sweep.run_sweep(CHAPTER, cfg.profile, specs, train_one, settings=settings,
                              desc="alignment trials", progress=verbose)
    return [{**r.spec, "config": r.info["config"], "ok": r.ok, "val_loss": r.metrics["val_loss"],
             "epochs": r.epochs_run, "wall_time_s": r.train_time_s, "failure": r.failure, "key": r.key}
            for r in records]


def _chosen_model(trial: dict, cfg, datasets: dict[int, "Data"]):
    """The weights of a chosen trial, from its checkpoint.  Checkpoints are a local cache (the committed
    full-profile results hold the records and the summary, not ~100 MB of weights): when the checkpoint
    is gone the trial is trained again from its seed, the same training, and its weights are kept."""
    path = results.chapter_dir(CHAPTER, cfg.profile) / "checkpoints" / f"{trial['key']}.pt"
    spec = {k: trial[k] for k in ("dim", "method", "run")}
    if path.exists():
        model = build_model(spec["method"], spec["dim"], trial["config"], cfg)
        model.load_state_dict(torch.load(path))
        return model
    model, res, _ = _fit_trial(spec, cfg, datasets)
    if not res.ok:
        raise RuntimeError(f"trial {spec} has a valid record but training it again (its checkpoint {path} is "
                           f"gone) failed: {res.failure}. Delete {path.with_suffix('.json').name} under runs/ "
                           "to let the search drop it.")
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    return model


def run(cfg, verbose: bool = True) -> dict:
    """Run the whole experiment for ``cfg.dims`` x METHODS; returns per-(dim, method) results."""
    datasets = {dim: Data.sample(dim, cfg) for dim in cfg.dims}
    trials = _trials(cfg, datasets, verbose)
    # "label": which search drew the figures, written under each of them
    out: dict = {"trials": trials, "best": {}, "data": datasets, "label": search_label(cfg)}
    for dim in cfg.dims:
        for method in METHODS:
            start = time.time()
            mine = [t for t in trials if t["dim"] == dim and t["method"] == method]
            valid = [t for t in mine if t["ok"]]
            if not valid:
                out["best"][(dim, method)] = {"ok": False, "failed_runs": len(mine)}
                continue
            trial = min(valid, key=lambda t: t["val_loss"])
            model = _chosen_model(trial, cfg, datasets).eval()
            ev = evaluate(method, model, datasets[dim])
            ev.update(ok=True, config=trial["config"], run=trial["run"], val_loss=trial["val_loss"],
                      failed_runs=len(mine) - len(valid), model=model, wall_time_s=round(time.time() - start, 1))
            out["best"][(dim, method)] = ev
    return out


def config_label(conf) -> str:
    """A trial's configuration in a few words, e.g. ``"8 blocks, 3 layers, lr 1e-4, batch 256"`` or
    ``"depth 4, lr 3e-4, batch 128"``.  ``conf``: the dict, or the text of one as a saved summary stores it
    (``"{'depth': 4, ...}"``); any other text is returned as it is, ``None``/NaN as "–"."""
    if isinstance(conf, str):
        if not conf.startswith("{"):
            return conf
        conf = ast.literal_eval(conf)
    if not isinstance(conf, dict):
        return "–"
    words = {"blocks": "{} blocks", "layers": "{} layers", "depth": "depth {}", "hidden": "{} hidden"}
    parts = [words[k].format(conf[k]) for k in words if k in conf]
    if "lr" in conf:
        parts.append(f"lr {conf['lr']:.0e}".replace("e-0", "e-"))
    if "batch_size" in conf:
        parts.append(f"batch {conf['batch_size']}")
    return ", ".join(parts)


def styled(table):
    """A summary table (:func:`summary_table`, or the ``table`` of a saved summary, where NaN is stored as the
    text ``"nan"``) as the book shows it: three decimals, "–" where a method has no value, the chosen
    configuration in words (:func:`config_label`), no index."""
    t = pd.DataFrame(table).replace({"nan": np.nan})
    for col in ("chosen config", "config"):
        if col in t.columns:
            t["chosen config"] = t.pop(col).map(config_label)
    cols = [c for c in (RHO, TAU, RHO_EST) if c in t.columns]
    t[cols] = t[cols].astype(float)
    return t.style.format({c: "{:.3f}" for c in cols}, na_rep="–").hide(axis="index")


def summary_table(out: dict):
    """One row per (dimension, method): rho, tau, rho of the estimate, failures, chosen config."""
    rows = []
    for (dim, method), ev in out["best"].items():
        rows.append({"d": dim, "method": method,
                     RHO: ev.get("rho"), TAU: ev.get("tau"), RHO_EST: ev.get("rho_est"),
                     "failed runs": ev.get("failed_runs"), "chosen config": ev.get("config")})
    return pd.DataFrame(rows)


def _span(values) -> str:
    lo, hi = float(np.nanmin(values)), float(np.nanmax(values))
    return f"{lo:.3f}" if round(lo, 3) == round(hi, 3) else f"{lo:.3f} to {hi:.3f}"


def describe_full(data: dict) -> str:
    """A saved summary (``data``: ``table``, ``trials``, ``search``) as Markdown: per method the range of
    Spearman rho and Kendall tau between true log-density and negative latent norm over the dimensions, at
    which dimensions the USFlow is the best aligned, how well the flows' estimated likelihoods rank the
    inputs (Figure 6's claim), and the failed trials of the search against App. D's two."""
    t = pd.DataFrame(data["table"]).replace({"nan": np.nan})
    for c in (RHO, TAU, RHO_EST):
        t[c] = t[c].astype(float)
    by = {m: t[t["method"] == m].set_index("d") for m in METHODS}
    dims = sorted(t["d"].unique())
    best = t.loc[t.groupby("d")[RHO].idxmax()]
    usf_best = [int(d) for d, m in zip(best["d"], best["method"]) if m == "USFlow"]
    non = by["NonUSFlow"]
    trials = pd.DataFrame(data["trials"])
    failed = trials[~trials["ok"].astype(bool)]
    per = trials.groupby(["dim", "method"]).size()
    failed_text = ("none failed" if failed.empty else
                   f"{len(failed)} failed ({', '.join(f'{r.method} d={r.dim}' for r in failed.itertuples())})")
    return (
        f"**At the full profile** ({data.get('search', 'search size not recorded')}; {len(trials)} trainings, "
        f"{failed_text}): the USFlow's latent norm "
        f"{'follows the true density closely at every dimension' if by['USFlow'][RHO].min() > 0.9 else 'follows the true density'}"
        f", Spearman ρ "
        f"{_span(by['USFlow'][RHO])} and Kendall τ {_span(by['USFlow'][TAU])} over d = "
        f"{', '.join(map(str, dims))}"
        + (f" (each on the {data['settings']['n_test']:,} test points of its dimension)"
           if "n_test" in data.get("settings", {}) else "")
        + f"; it is the best-aligned model at d = {', '.join(map(str, usf_best)) or 'none'}. "
        f"The NonUSFlow's alignment {'falls' if non[RHO].is_monotonic_decreasing else 'changes'} with the "
        f"dimension, ρ from {non[RHO].iloc[0]:.3f} (d = {dims[0]}) to "
        f"{non[RHO].iloc[-1]:.3f} (d = {dims[-1]}), τ from {non[TAU].iloc[0]:.3f} to {non[TAU].iloc[-1]:.3f}. "
        f"Deep SVDD's latent norm is {'hardly related' if by['Deep SVDD'][RHO].abs().max() < 0.3 else 'only partly related'} "
        f"to the density (ρ {_span(by['Deep SVDD'][RHO])}). Yet both "
        f"flows estimate the likelihood well (Figure 6's claim): Spearman ρ between true and estimated "
        f"ln p {_span(non[RHO_EST])} for the NonUSFlow and {_span(by['USFlow'][RHO_EST])} for the USFlow; the "
        f"NonUSFlow keeps its likelihood right by an input-dependent determinant while its latent norm drifts away. "
        f"The paper states no ρ or τ values in its text (they are printed inside Figure 5's panels), so "
        f"we compare with its words: *\"only USFs consistently remain a monotonous relationship\"* "
        + ("holds here at every dimension. " if usf_best == [int(d) for d in dims] else
           f"holds here only at d = {', '.join(map(str, usf_best)) or 'none'}. ")
        + describe_failures(trials)
    )


#: App. D's count of failed NonUSFlow runs in its search (both with 10 coupling blocks at d = 128)
PAPER_FAILED_NONUSF = 2


def describe_failures(trials: pd.DataFrame | list[dict], paper_failed: int = PAPER_FAILED_NONUSF) -> str:
    """Our failed NonUSFlow trainings (``trials``: the saved trial dicts) against App. D's ``paper_failed``, as a
    sentence that says how much the comparison can tell: the probability of our count or fewer if failures
    happened at the paper's rate, read as ``paper_failed`` out of a search of our size (App. C's search has as
    many NonUSFlow trainings as ours: 10 configurations at each of the 4 dimensions)."""
    t = pd.DataFrame(trials)
    non = t[t["method"] == "NonUSFlow"]
    n, failed = len(non), int((~non["ok"].astype(bool)).sum())
    text = (f"App. D reports {paper_failed} failed NonUSFlow runs, both with 10 coupling blocks at d = 128; in our "
            f"search {failed} of {n} NonUSFlow trainings failed. ")
    if n == 0:
        return text
    rate = paper_failed / n
    p = sum(math.comb(n, k) * rate ** k * (1 - rate) ** (n - k) for k in range(failed + 1))
    return text + (f"That is weak evidence either way: if failures happened at the paper's rate ({paper_failed} in "
                   f"{n}), {'no failure' if failed == 0 else f'{failed} or fewer failures'} in {n} would still occur with probability {100 * p:.0f} %, and a search "
                   f"this size cannot tell a rare instability from none.")


def search_table(trials: list[dict]) -> pd.DataFrame:
    """The search per dimension and method (``trials``: the saved trial dicts): trainings, failed ones,
    the chosen configuration in words (lowest validation loss among the valid trials), its validation loss
    and epochs, and the spread of the validation loss over the valid trials."""
    t = pd.DataFrame(trials)
    rows = []
    for (dim, method), g in t.groupby(["dim", "method"], sort=False):
        valid = g[g["ok"].astype(bool)]
        best = valid.loc[valid["val_loss"].astype(float).idxmin()] if len(valid) else None
        rows.append({"d": dim, "method": method, "trainings": len(g), "failed": len(g) - len(valid),
                     "chosen config": config_label(best["config"]) if best is not None else "–",
                     "val. loss (chosen)": float(best["val_loss"]) if best is not None else np.nan,
                     "val. loss (worst valid)": float(valid["val_loss"].astype(float).max()) if len(valid) else np.nan})
    return pd.DataFrame(rows)
