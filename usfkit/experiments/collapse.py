"""Failure modes of Deep SVDD and of flows, measured along training (chapter 3).

Paper: Abu Zaid et al., arXiv 2510.09452, §4.2 (hypersphere collapse, exploding
determinants) and App. D (training instabilities of NonUSFlows).  The chapter's other
parts live with their concepts: the data in :mod:`usfkit.data.synthetic`
(``anomaly_data``, ``subspace_data``), Proposition 1 in :mod:`usfkit.proposition1`, the
log-det prior of App. B.2 in :mod:`usfkit.models.flows` (``sample_lu_log_dets``).

* :class:`EpochProbe` — a Lightning callback that evaluates a function of the model
  after every epoch (passed to :func:`usfkit.train.fit` through ``callbacks=``);
  :func:`svdd_stats` and :func:`flow_stats` are what this chapter probes;
* :func:`run_svdd` and :func:`run_flow` — one training run each, returning a plain
  dict (fit result, per-epoch trajectory, final statistics) ready for a table;
  :func:`run_status` classifies a flow run as ok, failed (NaN/inf) or diverged;
* :func:`svdd_variants`, :func:`explode_runs`, :func:`prior_sweep` — the chapter's three loops of
  trainings, each a resumable :func:`usfkit.sweep.run_sweep` whose records keep every run's
  trajectory (``info``); they return the runs as plain dicts for the tables and plots;
* :func:`first_epoch` and :func:`tail_change` read a trajectory (when did a quantity reach a
  level, how much did it still move at the end); :func:`describe_svdd` and
  :func:`describe_usf_fit` turn them into the sentences the chapter prints;
* :func:`svdd_view`, :func:`explode_view`, :func:`sweep_view` — the chapter's tables as the page
  shows them (short headers, sensible rounding), next to the full tables it saves.
"""
from __future__ import annotations

import math
from typing import Callable

import pandas as pd
import torch
from lightning.pytorch.callbacks import Callback
from torch import Tensor

from ..models.flows import PAPER_FLOWS, Flow, build_flow
from ..models.flows_lightning import train_flow
from ..metrics import auroc
from ..models.oneclass import AutoencoderModule, DeepSVDD, svdd_widths, train_svdd
from .. import profiles
from ..results import RunRecord, RunResult
from ..rng import seeded
from ..sweep import record_paths, run_sweep
from ..train import FitResult, fit

__all__ = ["CHAPTER", "EpochProbe", "SVDD_VARIANTS", "svdd_stats", "run_svdd", "pretraining_collapse",
           "lu_condition_number", "flow_stats", "run_flow", "run_status", "svdd_sweep", "explode_sweep",
           "prior_scale_sweep", "sweeps", "svdd_variants", "explode_runs", "prior_sweep", "full_sweep_runs", "RUFF",
           "BIASED", "BOUNDED", "RUFF_DECAY", "BOUNDED_DECAY", "first_epoch", "tail_change", "describe_svdd",
           "describe_usf_fit", "readable", "svdd_view", "EXPLODE_COLUMNS", "FLOW_NAMES", "flow_name",
           "explode_table", "describe_explode", "explode_view", "sweep_view", "PAPER_MAX_LR", "PARTS",
           "failure_groups", "sweep_summary", "prop1_view", "prior_view", "describe_bounded_decay", "describe_full"]

CHAPTER = "03_collapse"


# --------------------------------------------------------------------------
# A per-epoch probe
# --------------------------------------------------------------------------
class EpochProbe(Callback):
    """Evaluates ``probe()`` (no arguments, returns a dict of numbers) at the start of
    training and after every training epoch, in eval mode without gradients.

    ``rows[0]`` (``epoch`` 0) is the state training starts from.  The rows are cleared
    when a new fit starts, so a probe shared by Deep SVDD's pretraining and its one-class
    training keeps only the latter in ``rows``; ``fits`` keeps every fit's rows, in order
    (``fits[0]`` is the pretraining's, whose epoch 0 is the freshly initialised network).
    Pass it as ``fit(..., callbacks=[probe])``.
    """

    def __init__(self, probe: Callable[[], dict]):
        self.probe = probe
        self.rows: list[dict] = []
        self.fits: list[list[dict]] = []

    def _record(self, epoch: int, pl_module) -> None:
        was_training = pl_module.training
        pl_module.eval()
        with torch.no_grad():
            row = self.probe()
        pl_module.train(was_training)
        self.rows.append({"epoch": epoch, **{k: float(v) for k, v in row.items()}})

    def on_train_start(self, trainer, pl_module):
        self.rows = []
        self.fits.append(self.rows)
        self._record(0, pl_module)

    def on_train_epoch_end(self, trainer, pl_module):
        self._record(trainer.current_epoch + 1, pl_module)


# --------------------------------------------------------------------------
# Deep SVDD: how collapsed is it?
# --------------------------------------------------------------------------
SVDD_VARIANTS: dict[str, dict] = {
    "Ruff (no bias, leaky ReLU)": dict(bias=False, activation="leaky_relu"),
    "with bias (leaky ReLU)": dict(bias=True, activation="leaky_relu"),
    "bounded (sigmoid, bias)": dict(bias=True, activation="sigmoid"),
    "Ruff, strong decay": dict(bias=False, activation="leaky_relu", weight_decay=1e-2),
    "bounded, strong decay": dict(bias=True, activation="sigmoid", weight_decay=1e-2),
}
"""The Deep SVDD variants of §2/§4.2: Ruff et al.'s anti-collapse recipe and the two
architectural choices that admit the constant solution ``omega(x) = c``; the last two add
a strong weight decay (Eq. 2's ``lambda = 1e-2``), which pulls the weights to 0: for a
network with biases that *is* the constant map, for Ruff's bias-free one it is
``omega = 0 != c``.  A ``weight_decay`` entry overrides :func:`run_svdd`'s."""


def svdd_stats(model: DeepSVDD, x: Tensor, y: Tensor) -> dict[str, float]:
    """Collapse diagnostics on an evaluation set ``x`` with labels ``y`` (1 = anomaly).

    * ``loss``: mean squared distance of the *normal* points to ``c`` (Eq. 2 without decay);
    * ``mean_dist``: their mean distance ``||omega(x) - c||``;
    * ``spread``: the standard deviation of their embeddings, averaged over coordinates
      (0 when every input is mapped to the same point);
    * ``auroc``: of the score ``||omega(x) - c||^2`` for telling anomalies from normal points.
    """
    x = x.to(model.center.device)  # the probe also runs while the model sits on a GPU
    normal = (y == 0).to(x.device)
    emb = model(x)
    score = (emb - model.center).pow(2).sum(1)
    return {"loss": score[normal].mean().item(), "mean_dist": score[normal].sqrt().mean().item(),
            "spread": emb[normal].std(0).mean().item(), "auroc": auroc(y, score)}


def run_svdd(variant: dict, x_train: Tensor, x_test: Tensor, y_test: Tensor, *, depth: int = 3,
             lr: float = 1e-3, weight_decay: float = 1e-6, epochs: int = 40, pretrain_epochs: int = 10,
             batch_size: int = 128, seed: int = 0, desc: str = "svdd") -> dict:
    """Pretrain, centre and train one Deep SVDD (``variant``: keyword arguments of
    :class:`~usfkit.models.oneclass.DeepSVDD`, plus an optional ``weight_decay``) with early
    stopping off (``patience = epochs``), so every variant gets the same number of epochs.
    Returns the model, the :class:`~usfkit.train.FitResult`, the per-epoch
    :func:`svdd_stats` on the test set (``trajectory``, epoch 0 = after pretraining and
    centring), the same during the autoencoder pretraining (``pretrain_trajectory``, epoch 0 = the
    freshly initialised network, before ``c`` is set; empty without pretraining), the weight decay
    used and the final stats."""
    variant = dict(variant)
    weight_decay = variant.pop("weight_decay", weight_decay)
    dim = x_train.shape[1]
    with seeded(seed):
        model = DeepSVDD(dim, svdd_widths(dim, depth), **variant)
    probe = EpochProbe(lambda: svdd_stats(model, x_test, y_test))
    result = train_svdd(model, x_train, lr=lr, weight_decay=weight_decay, pretrain_epochs=pretrain_epochs,
                        max_epochs=epochs, patience=epochs, batch_size=batch_size, seed=seed, desc=desc,
                        callbacks=[probe])
    with torch.no_grad():
        final = svdd_stats(model, x_test, y_test)
    pretrain = probe.fits[0] if pretrain_epochs > 0 and len(probe.fits) > 1 else []
    return {"model": model, "fit": result, "trajectory": probe.rows, "final": final,
            "initial": probe.rows[0] if probe.rows else None, "weight_decay": weight_decay,
            "pretrain_trajectory": pretrain}


class _StopWhenConstant(Callback):
    """Stops a fit at the end of the first epoch whose probed embeddings are exactly constant."""

    def __init__(self, probe: EpochProbe):
        self.probe = probe

    def on_train_epoch_end(self, trainer, pl_module):
        if self.probe.rows and self.probe.rows[-1]["spread"] == 0:
            trainer.should_stop = True


def pretraining_collapse(cfg, variant: str = "bounded, strong decay") -> dict:
    """Where a Deep SVDD variant of :data:`SVDD_VARIANTS` becomes constant *before* one-class training: the
    chapter's data and network for profile settings ``cfg`` (the seed, widths and decay of :func:`run_svdd`),
    then the autoencoder pretraining alone, probed after every epoch and stopped at the first epoch whose
    normal test embeddings are exactly constant in float32.  Returns ``init_spread`` (the freshly
    initialised network), ``constant_at`` (that epoch, or ``None`` when the pretraining never got there),
    ``epochs_run``, ``pretrain_epochs`` and the per-epoch ``spreads``.  It reruns the start of the saved
    run's pretraining on this machine, so its numbers may differ from the saved run's in the last digits."""
    from ..data import anomaly_data

    data = anomaly_data(cfg.dim, cfg.n_train, cfg.n_test, cfg.n_anomalies, quantile=cfg.anomaly_quantile,
                        seed=cfg.seed)
    spec = dict(SVDD_VARIANTS[variant])
    weight_decay = spec.pop("weight_decay", 1e-6)
    with seeded(cfg.seed):
        model = DeepSVDD(cfg.dim, svdd_widths(cfg.dim, cfg.svdd_depth), **spec)
    probe = EpochProbe(lambda: svdd_stats(model, data["x_test"], data["y_test"]))
    fit(AutoencoderModule(model, cfg.svdd_lr, weight_decay), data["x_train"], max_epochs=cfg.pretrain_epochs,
        patience=cfg.pretrain_epochs, batch_size=cfg.batch_size, seed=cfg.seed, progress="none",
        callbacks=[probe, _StopWhenConstant(probe)])
    spreads = [r["spread"] for r in probe.rows]
    at = next((int(r["epoch"]) for r in probe.rows if r["spread"] == 0), None)
    return {"init_spread": spreads[0], "constant_at": at, "epochs_run": int(probe.rows[-1]["epoch"]),
            "pretrain_epochs": cfg.pretrain_epochs, "spreads": spreads}


# --------------------------------------------------------------------------
# Flows: determinants along training
# --------------------------------------------------------------------------
def lu_condition_number(flow: Flow) -> float:
    """The largest condition number among the flow's LU matrices ``M = L U``.

    In a block ``A^{-1} C A`` the LU determinant cancels, but an ill-conditioned ``A``
    turns the coupling's bounded, coordinate-wise scaling into a strongly input-dependent
    stretch: App. D's observation that LU layers amplify the instability of affine coupling.
    A flow without LU maps (``coupling="additive"`` or ``"affine"``) gives 1.
    """
    matrices = [lu.matrix() for lu in flow.lu_layers()]
    if not all(torch.isfinite(m).all() for m in matrices):
        return math.inf
    return max((torch.linalg.cond(m).item() for m in matrices), default=1.0)


def flow_stats(flow: Flow, x: Tensor) -> dict[str, float]:
    """Per-input log-determinants and latent geometry of ``flow`` on ``x``.

    ``logdet_mean`` / ``logdet_std`` / ``logdet_absmax``: mean, standard deviation over the
    inputs, and largest absolute value of ``ln|det J_phi(x)|`` (for a USF the std is 0 and
    the mean is ``ln psi_det(w)``); ``sq_dist``: mean ``||phi(x) - c||^2`` (the Deep SVDD
    term of Eq. 5); ``latent_spread``: std of the latents averaged over coordinates;
    ``nll``: mean negative log-likelihood; ``lu_cond``: :func:`lu_condition_number`.
    Non-finite values are kept as ``nan``/``inf`` (a diverged flow).
    """
    z, logdet = flow(x.to(flow.base.center.device))  # the probe also runs while the flow sits on a GPU
    nll = -(flow.base.log_prob(z) + logdet)
    return {"logdet_mean": logdet.mean().item(), "logdet_std": logdet.std().item(),
            "logdet_absmax": logdet.abs().max().item(), "sq_dist": flow.base.sq_dist(z).mean().item(),
            "latent_spread": z.flatten(1).std(0).mean().item(), "nll": nll.mean().item(),
            "lu_cond": lu_condition_number(flow)}


def run_flow(coupling: str, x_train: Tensor, x_test: Tensor, *, lr: float = 1e-3, epochs: int = 30,
             prior_sigma: float | None = None, prior_rule: str = "exact", blocks: int = 4, hidden: int = 64,
             layers: int = 2, clamp: float = 2.0, scale: float = math.sqrt(0.5), batch_size: int = 128,
             patience: int | None = None, seed: int = 0, desc: str | None = None, progress: str = "auto") -> dict:
    """Train one flow of :func:`usfkit.models.flows.build_flow` with ``coupling`` (``"additive_lu"``: a
    USFlow, ``"affine_lu"``: a NonUSFlow; :data:`usfkit.models.flows.COUPLINGS`) by maximum likelihood
    (MAP with the log-det prior when ``prior_sigma`` is set) and probe it on ``x_test`` after
    every epoch with :func:`flow_stats`.

    The base is ``N(0, scale^2 I)``, by default ``scale^2 = 1/2`` as in Eq. 5.  Early
    stopping is off unless ``patience`` is given.  ``progress``: as :func:`usfkit.train.fit`'s (``"none"``
    for a page that shows the run's result instead of its progress).  A NaN/inf loss does not raise: the run
    comes back with ``fit.ok == False`` and the message in ``fit.failure``.
    """
    flow = build_flow(x_train.shape[1], coupling, blocks=blocks, hidden=hidden, layers=layers, clamp=clamp,
                      scale=scale, prior_sigma=prior_sigma, prior_rule=prior_rule, seed=seed)
    probe = EpochProbe(lambda: flow_stats(flow, x_test))
    result = train_flow(flow, x_train, lr=lr, max_epochs=epochs, patience=patience or epochs,
                        batch_size=batch_size, seed=seed, desc=desc or f"{coupling} seed {seed}", callbacks=[probe],
                        progress=progress)
    with torch.no_grad():
        final = flow_stats(flow, x_test)
    return {"flow": flow, "fit": result, "trajectory": probe.rows, "final": final}


def run_status(result: FitResult, trajectory: list[dict]) -> str:
    """``"failed"``: the fit stopped on a NaN/inf loss (``FitResult.ok`` is False, the
    message is in ``FitResult.failure``).  ``"diverged"``: every loss stayed finite, but
    after the last epoch the test NLL (probed by :func:`run_flow`) is non-finite or worse
    than that of the untrained flow (epoch 0) — training made the model worse than doing
    nothing.  Otherwise ``"ok"``."""
    if not result.ok:
        return "failed"
    first, last = trajectory[0]["nll"], trajectory[-1]["nll"]
    if not math.isfinite(last) or last > first:
        return "diverged"
    return "ok"


# --------------------------------------------------------------------------
# The chapter's three loops, as resumable sweeps
# --------------------------------------------------------------------------
def _numbers(rows: list[dict]) -> list[dict]:
    """Trajectory rows read back from a record: non-finite values are stored as the strings
    ``"nan"``/``"inf"``/``"-inf"`` (strict JSON) and come back as floats."""
    return [{k: float(v) for k, v in row.items()} for row in rows]


def _flow_result(run: dict) -> RunResult:
    """A :func:`run_flow` run as a record: a NaN/inf loss is a failed run (the finding of §3, not a
    crash); its status, trajectory and the test NLL of the weights it kept (``final_nll``, the best
    epoch's) go to ``info``."""
    fit = run["fit"]
    return RunResult.from_fit(fit, fit.epochs if not fit.ok else len(run["trajectory"]) - 1,
                              metrics={"test_nll": run["final"]["nll"] if fit.ok else None},
                              info={"status": run_status(fit, run["trajectory"]), "final_nll": run["final"]["nll"],
                                    "constant_det": run["flow"].constant_det, "trajectory": run["trajectory"]})


def _flow_run(record: RunRecord) -> dict:
    """A flow record as the dict the chapter's tables and plots read."""
    return {**record.spec, "constant_det": record.info["constant_det"], "status": record.info["status"],
            "final_nll": float(record.info["final_nll"]),
            "failure": record.failure, "epochs": record.epochs_run, "trajectory": _numbers(record.info["trajectory"])}


def svdd_sweep(cfg) -> tuple[list[dict], dict]:
    """Specs and settings of §1's runs (:func:`svdd_variants`)."""
    settings = dict(experiment="svdd", dim=cfg.dim, n_train=cfg.n_train, n_test=cfg.n_test,
                    n_anomalies=cfg.n_anomalies, anomaly_quantile=cfg.anomaly_quantile, depth=cfg.svdd_depth,
                    lr=cfg.svdd_lr, epochs=cfg.svdd_epochs, pretrain_epochs=cfg.pretrain_epochs,
                    batch_size=cfg.batch_size)
    return [{"variant": name, "seed": cfg.seed} for name in SVDD_VARIANTS], settings


def explode_sweep(cfg) -> tuple[list[dict], dict]:
    """Specs and settings of §3's runs (:func:`explode_runs`)."""
    settings = dict(experiment="explode", dim=cfg.explode_dim, n_train=cfg.explode_n_train, n_test=cfg.n_test,
                    n_anomalies=cfg.n_anomalies, anomaly_quantile=cfg.anomaly_quantile, data_seed=cfg.seed,
                    lr=cfg.explode_lr, epochs=cfg.explode_epochs, blocks=cfg.explode_blocks, hidden=cfg.hidden,
                    layers=cfg.layers, batch_size=cfg.batch_size)
    specs = [{"coupling": c, "seed": cfg.seed + i} for i in range(cfg.explode_runs) for c in ("affine_lu", "additive_lu")]
    return specs, settings


def prior_scale_sweep(cfg) -> tuple[list[dict], dict]:
    """Specs and settings of §4b's runs (:func:`prior_sweep`)."""
    settings = dict(experiment="prior_sweep", dim=cfg.sweep_dim, rank=cfg.sweep_rank, n_train=cfg.sweep_n_train,
                    n_test=cfg.n_test, data_seed=cfg.seed, lr=cfg.sweep_lr, epochs=cfg.sweep_epochs,
                    blocks=cfg.blocks, hidden=cfg.hidden, layers=cfg.layers, batch_size=cfg.batch_size)
    specs = [{"sigma": sigma, "coupling": c, "seed": cfg.seed + i}
             for sigma in cfg.sigmas for c in ("additive_lu", "affine_lu") for i in range(cfg.sweep_runs)]
    return specs, settings


def sweeps(cfg) -> dict[str, tuple[list[dict], dict]]:
    """The chapter's three sweeps by name, as ``(specs, settings)``: what a run of ``cfg`` trains."""
    return {"Deep SVDD variants (section 1)": svdd_sweep(cfg), "high-learning-rate runs (section 3)": explode_sweep(cfg),
            "prior-scale sweep (section 4b)": prior_scale_sweep(cfg)}


def svdd_variants(cfg, x_train: Tensor, x_test: Tensor, y_test: Tensor) -> dict[str, dict]:
    """§1: every Deep SVDD variant of :data:`SVDD_VARIANTS` (:func:`run_svdd`) on the chapter's
    anomaly data (the settings that make it are part of each run's key).  Returns name -> run with
    ``trajectory``, ``history``, ``initial``, ``final`` and ``weight_decay``."""
    specs, settings = svdd_sweep(cfg)

    def one(spec: dict) -> RunResult:
        run = run_svdd(SVDD_VARIANTS[spec["variant"]], x_train, x_test, y_test, depth=spec["depth"], lr=spec["lr"],
                       epochs=spec["epochs"], pretrain_epochs=spec["pretrain_epochs"],
                       batch_size=spec["batch_size"], seed=spec["seed"], desc=spec["variant"])
        return RunResult.from_fit(run["fit"], spec["epochs"], metrics={"auroc": run["final"]["auroc"]},
                                  info={k: run[k] for k in ("trajectory", "final", "weight_decay",
                                                            "pretrain_trajectory")}
                                  | {"history": run["fit"].history})

    records = run_sweep(CHAPTER, cfg.profile, specs, one, settings=settings, desc="Deep SVDD variants")
    out = {}
    for r in records:
        trajectory = _numbers(r.info["trajectory"])
        out[r.spec["variant"]] = {"trajectory": trajectory, "initial": trajectory[0], "history": _numbers(r.info["history"]),
                                  "final": _numbers([r.info["final"]])[0], "weight_decay": r.info["weight_decay"],
                                  # runs saved before the pretraining was probed have none (None)
                                  "pretrain_trajectory": _numbers(r.info["pretrain_trajectory"])
                                  if r.info.get("pretrain_trajectory") else None}
    return out


def explode_runs(cfg, x_train: Tensor, x_test: Tensor) -> list[dict]:
    """§3: NonUSFlows and USFlows (``affine_lu`` / ``additive_lu``) at a high learning rate without
    the prior, ``cfg.explode_runs`` seeds each, probed on ``x_test`` after every epoch."""
    specs, settings = explode_sweep(cfg)

    def one(spec: dict) -> RunResult:
        return _flow_result(run_flow(spec["coupling"], x_train, x_test, lr=spec["lr"], epochs=spec["epochs"],
                                     blocks=spec["blocks"], hidden=spec["hidden"], layers=spec["layers"],
                                     batch_size=spec["batch_size"], seed=spec["seed"],
                                     desc=f"{spec['coupling']} seed {spec['seed']}"))

    return [_flow_run(r) for r in run_sweep(CHAPTER, cfg.profile, specs, one, settings=settings,
                                            desc="high-learning-rate runs")]


def prior_sweep(cfg, x_train: Tensor, x_test: Tensor) -> list[dict]:
    """§4b: USFlows and NonUSFlows under the log-det prior with each ``sigma`` of ``cfg.sigmas``
    (``None``: no prior) on data that fill a low-dimensional subspace, ``cfg.sweep_runs`` seeds each."""
    specs, settings = prior_scale_sweep(cfg)

    def one(spec: dict) -> RunResult:
        return _flow_result(run_flow(spec["coupling"], x_train, x_test, prior_sigma=spec["sigma"], lr=spec["lr"],
                                     epochs=spec["epochs"], blocks=spec["blocks"], hidden=spec["hidden"],
                                     layers=spec["layers"], batch_size=spec["batch_size"], seed=spec["seed"],
                                     desc=f"{spec['coupling']} seed {spec['seed']} sigma {spec['sigma']}"))

    return [_flow_run(r) for r in run_sweep(CHAPTER, cfg.profile, specs, one, settings=settings,
                                            desc="prior-scale sweep")]



def full_sweep_runs(part: str) -> tuple[list[dict], list[dict], dict] | None:
    """The committed full-profile runs of one sweep, ``part`` ``"explode"`` (§3) or ``"sigma_sweep"``
    (§4b), as the chapter's tables read them (``_flow_run``), with their provenance and the sweep's
    settings, once every run of that sweep is there; ``None`` while any is missing.  The chapter's full
    summary waits for all three sweeps; this lets the report judge a finished sweep before that."""
    specs, settings = {"explode": explode_sweep, "sigma_sweep": prior_scale_sweep}[part](profiles.of(CHAPTER, "full"))
    paths = record_paths(CHAPTER, "full", specs, settings)
    if not all(p.exists() for p in paths):
        return None
    records = [RunRecord.from_file(p) for p in paths]
    return [_flow_run(r) for r in records], [r.provenance for r in records], settings

# --------------------------------------------------------------------------
# Reading trajectories, and what the chapter prints about them
# --------------------------------------------------------------------------
RUFF, BIASED, BOUNDED, RUFF_DECAY, BOUNDED_DECAY = SVDD_VARIANTS
"""The names of :data:`SVDD_VARIANTS` by role."""


def first_epoch(trajectory: list[dict], key: str, at_most: float) -> int | None:
    """The first ``epoch`` whose ``key`` is ``<= at_most`` (``None`` when none is).  With ``key="spread"``
    and ``at_most=0`` it is the epoch at which the embeddings became exactly constant in float32."""
    return next((int(r["epoch"]) for r in trajectory if r[key] <= at_most), None)


def tail_change(trajectory: list[dict], key: str, last: int | None = None) -> tuple[int, float]:
    """``(k, change)``: the relative change of ``key`` over the last ``k`` epochs,
    ``(v_end - v_{end-k}) / |v_{end-k}|`` (negative: still falling).  ``k`` defaults to
    ``max(5, epochs // 10)``, and is at most the number of epochs in ``trajectory``."""
    epochs = len(trajectory) - 1
    if epochs < 1:
        raise ValueError("a trajectory needs at least one epoch after its start")
    k = min(epochs, last if last is not None else max(5, epochs // 10))
    before, end = float(trajectory[-1 - k][key]), float(trajectory[-1][key])
    return k, (end - before) / abs(before) if before != 0 else (0.0 if end == before else math.inf)


def _fold(ratio: float) -> str:
    """An end/start ratio below 1 as "74-fold", "5,050-fold"."""
    if not ratio > 0:
        return "completely" if ratio == 0 else "by an undefined factor"
    f = 1 / ratio
    return f"{f:,.0f}-fold" if f >= 100 else f"{f:.2g}-fold"


def describe_svdd(runs: dict[str, dict]) -> list[str]:
    """What §1's Deep SVDD runs (:func:`svdd_variants`) show, one sentence group per finding, from the
    numbers of this run: how far the two collapse-prone variants with the small decay shrank compared
    with Ruff's recipe and how they rank; when (if at all) the bounded network under the strong decay
    became exactly constant, and why its loss can end above its start; what the strong decay did to
    Ruff's bias-free encoder."""
    def ratio(run: dict, key: str) -> float:
        start = run["initial"][key]
        return run["final"][key] / start if start else math.nan

    def shrank(name: str) -> str:
        return f"{_fold(ratio(runs[name], 'spread'))} and {_fold(ratio(runs[name], 'loss'))}"

    ruff, out = runs[RUFF], []
    small = runs[BIASED]["weight_decay"]
    exact = [name for name in (RUFF, BIASED, BOUNDED) if runs[name]["final"]["spread"] == 0]
    out.append(f"Small decay (λ = {small:g}), how far spread and loss of the normal test embeddings shrank: "
               f"'{BIASED}' {shrank(BIASED)}, '{BOUNDED}' {shrank(BOUNDED)}, Ruff's recipe {shrank(RUFF)}. "
               "Exactly constant embeddings (spread 0) at the end: "
               f"{', '.join(repr(n) for n in exact) if exact else 'none of the three'}.")
    ranks = ", ".join(f"'{name}' {runs[name]['final']['auroc']:.3f} "
                      f"({'higher' if runs[name]['final']['auroc'] > ruff['final']['auroc'] else 'not higher'})"
                      for name in (BIASED, BOUNDED))
    out.append(f"End AUROC: Ruff's recipe {ruff['final']['auroc']:.3f}; {ranks}.")

    b, b_small = runs[BOUNDED_DECAY], runs[BOUNDED]
    lam, epochs = b["weight_decay"], int(b["trajectory"][-1]["epoch"])
    start = (f"After the autoencoder pretraining, which applies the same decay λ = {lam:g}, the bounded "
             f"network's normal test embeddings had a spread of {b['initial']['spread']:.3g} (with λ = "
             f"{b_small['weight_decay']:g}: {b_small['initial']['spread']:.3g})")
    at = first_epoch(b["trajectory"], "spread", 0.0)
    pre = b.get("pretrain_trajectory")
    if pre:  # the pretraining was probed too: epoch 0 is the freshly initialised network
        k = first_epoch(pre, "spread", 0.0)
        start += (f"; at initialisation its spread was {pre[0]['spread']:.2g}, and the pretraining "
                  + (f"made it exactly constant from its epoch {k} of {int(pre[-1]['epoch'])}" if k is not None else
                     "never made it exactly constant"))
    if at == 0:
        out.append(f"{start}: **constant from the start** of one-class training (AUROC "
                   f"{b['initial']['auroc']:.3f}), so in this run the collapse happened during the pretraining, "
                   "not during one-class training.")
    else:
        stays = at is not None and all(r["spread"] == 0 for r in b["trajectory"] if r["epoch"] >= at)
        when = (f"they never became exactly constant in the {epochs} epochs (end spread {b['final']['spread']:.3g}, "
                f"AUROC {b['final']['auroc']:.3f})") if at is None else (
                f"they **collapsed during one-class training**: exactly constant in float32 (spread 0) at epoch {at} of {epochs} of one-class "
                f"training{' and stayed so' if stays else ''}, with AUROC {b['final']['auroc']:.3f} at the end")
        out.append(f"{start}, and with that residual variation a test AUROC of {b['initial']['auroc']:.3f} at the "
                   f"start; {when}.")
    l0, l1, dist = b["initial"]["loss"], b["final"]["loss"], b["final"]["mean_dist"]
    constant = b["final"]["spread"] == 0
    if l1 > l0:
        out.append(f"Its loss rose from {l0:.3g}, measured before the first one-class epoch (the figure's curves "
                   f"start at the first epoch's mean training loss), to {l1:.3g}. The start is tiny because c had "
                   "just been set to the "
                   "mean of nearly constant embeddings, so the loss was only their residual variance. "
                   + (f"At the end every input maps to one point at distance {dist:.3g} from c, and its square, "
                      f"{dist ** 2:.3g}, is the whole loss. " if constant else
                      f"At the end the embeddings sit at a mean distance {dist:.3g} from c. ")
                   + f"The loss shown is Eq. 2 without its decay term; the optimiser also applies the decay "
                   f"(λ = {lam:g}) to every weight and bias, and that pull keeps the output off c.")
    else:
        out.append(f"Its loss went from {l0:.3g} to {l1:.3g}"
                   + (f", the squared distance {dist:.3g}² of its constant output from c." if constant else "."))
    r = runs[RUFF_DECAY]
    out.append(f"Ruff's bias-free encoder under the same decay shrank {_fold(ratio(r, 'spread'))} in spread, kept a "
               f"spread of {r['final']['spread']:.3g} and ended with AUROC {r['final']['auroc']:.3f} "
               f"(start {r['initial']['auroc']:.3f}).")
    return out


def describe_usf_fit(trajectory: list[dict], dim: int, base_std: float, still_moving: float = 0.01,
                     last: int | None = None, final: dict | None = None) -> list[str]:
    """How close §1's USFlow got to what a perfect maximum-likelihood fit gives (pushed-forward data
    equal to the base ``N(c, base_std^2 I)``: ``E||phi(x) - c||^2 = d base_std^2``, latent std
    ``base_std``), and whether training had levelled off: the relative change of the two terms of
    Eq. 5 over the last epochs (:func:`tail_change`), where a change of at least ``still_moving``
    counts as still moving.  ``final``: the :func:`flow_stats` of the model training returned (default: the
    last epoch's row) for the gap; the change is read from the trajectory."""
    end = final if final is not None else trajectory[-1]
    target = dim * base_std ** 2
    name = "d/2" if math.isclose(base_std ** 2, 0.5) else "d σ²"
    sq, std = end["sq_dist"], end["latent_spread"]
    out = [f"On the normal test points E‖φ(x) − c‖² = {sq:.3g} against {name} = {target:g} at a perfect fit "
           f"({sq / target - 1:+.1%}); the latent standard deviation is {std:.3g} against the base's {base_std:.3g} "
           f"({std / base_std - 1:+.1%})."]
    k, d_sq = tail_change(trajectory, "sq_dist", last)
    _, d_ld = tail_change(trajectory, "logdet_mean", last)
    moving = max(abs(d_sq), abs(d_ld)) >= still_moving
    epochs = int(trajectory[-1]["epoch"])
    verdict = (f"training had not converged (a change of {still_moving:.0%} or more counts as still moving), so the "
               "gap measures how far this run got, not where maximum likelihood ends"
               if moving else
               f"both changed by less than {still_moving:.0%}: training had levelled off, and the remaining gap is "
               "that of the fitted model on test data")
    out.append(f"Over the last {k} of {epochs} epochs E‖φ(x) − c‖² changed by {d_sq:+.1%} and ln ψ_det by "
               f"{d_ld:+.1%}: {verdict}.")
    return out


# --------------------------------------------------------------------------
# The chapter's tables as the page shows them
# --------------------------------------------------------------------------
def readable(value) -> str:
    """A number as the chapter's tables show it: three significant digits, in e-notation with two decimals
    below 0.01 and from 10^5 on (so no cell shows a long row of decimals), "0" for zero, "–" for NaN."""
    v = float(value)
    if math.isnan(v):
        return "–"
    if v == 0:
        return "0"
    if abs(v) < 0.01 or abs(v) >= 1e5 or math.isinf(v):
        return f"{v:.2e}"
    return f"{v:.3g}"


def svdd_view(table: pd.DataFrame):
    """§1's table (one row per variant, the columns the chapter builds) with two-level headers: the
    decay, then start and end of loss, spread and AUROC.  The ratios and the mean distance stay in
    the saved table."""
    parts = [("loss", "loss"), ("spread", "spread"), ("AUROC", "AUROC")]
    view = pd.DataFrame({("weight decay", "λ"): table["weight decay"]}, index=table.index)
    for head, col in parts:
        for when in ("start", "end"):
            view[(head, when)] = table[f"{col} {when}"]
    view.columns = pd.MultiIndex.from_tuples(view.columns)
    fmt = {c: ("{:.3f}" if c[0] == "AUROC" else "{:g}" if c[0] == "weight decay" else readable) for c in view.columns}
    return view.style.format(fmt)


EXPLODE_COLUMNS = {"status": ("run", "status"), "epochs": ("run", "epochs"),
                   "mean ln|det J|": ("ln|det J|, last epoch", "mean"),
                   "std over inputs": ("ln|det J|, last epoch", "std"),
                   "max LU cond": ("largest, any epoch", "LU cond."),
                   "test NLL (last epoch)": ("test NLL", "last epoch")}
"""The columns of :func:`explode_view` (a page-wide selection of :func:`explode_table`'s)."""

#: the paper's name of each ``coupling`` word (``"additive_lu"`` -> ``"USFlow"``)
FLOW_NAMES = {coupling: name for name, coupling in PAPER_FLOWS.items()}


def flow_name(coupling: str) -> str:
    """The paper's name of a flow (``"USFlow"``, ``"NonUSFlow"``), the coupling word itself for any other."""
    return FLOW_NAMES.get(coupling, coupling)


def explode_table(runs: list[dict]) -> pd.DataFrame:
    """§3's per-run table from runs as :func:`explode_runs` returns them: status, the last epoch's
    ln|det J| (mean and spread over the probe inputs), the largest ``|ln det J|`` and LU condition number of
    any epoch, the test NLL at the last and at the best epoch, and the best epoch."""
    def best_epoch(trajectory: list[dict]) -> int:
        nll = [t["nll"] if math.isfinite(t["nll"]) else math.inf for t in trajectory]
        return int(trajectory[nll.index(min(nll))]["epoch"])

    return pd.DataFrame([{
        "flow": r["coupling"], "seed": r["seed"], "constant_det": r["constant_det"], "status": r["status"],
        "epochs": r["epochs"], "mean ln|det J|": r["trajectory"][-1]["logdet_mean"],
        "std over inputs": r["trajectory"][-1]["logdet_std"],
        "max |ln det J|": max(t["logdet_absmax"] for t in r["trajectory"]),
        "test NLL (last epoch)": r["trajectory"][-1]["nll"], "test NLL (best epoch)": r["final_nll"],
        "best epoch": best_epoch(r["trajectory"]), "max LU cond": max(t["lu_cond"] for t in r["trajectory"]),
        "failure": (r["failure"] or "")[:120],
    } for r in runs])


def describe_explode(table: pd.DataFrame) -> list[str]:
    """One sentence per flow of :func:`explode_table`: how many runs went wrong (failed or diverged), and
    for those the best epoch, the largest LU condition number, the last test NLL and the largest spread of
    ln|det J| over inputs, beside the median of the flow's good runs."""
    lines = []
    for flow, runs in table.groupby("flow", sort=False):
        name = "USFlow" if runs["constant_det"].all() else "NonUSFlow"
        wrong, good = runs[runs["status"] != "ok"], runs[runs["status"] == "ok"]
        line = f"{name}s: {len(wrong)} of {len(runs)} runs went wrong"
        if len(wrong):
            last = wrong["test NLL (last epoch)"]
            finite = last.map(math.isfinite)
            last_nll = (f"last test NLL {last.min():.3g} or more" if finite.all()
                        else f"last test NLL not finite in {int((~finite).sum())}")
            line += (f" ({', '.join(f'seed {r.seed} {r.status}' for r in wrong.itertuples())}): best test NLL at epoch "
                     f"{'/'.join(str(e) for e in wrong['best epoch'])}, largest LU condition number "
                     f"{wrong['max LU cond'].min():.2g} or more, {last_nll}, spread of ln|det J| over inputs up to "
                     f"{wrong['std over inputs'].max():.2g}")
        if len(good):
            line += (f"; the {len(good)} good runs: best epoch {good['best epoch'].median():g}, largest LU condition "
                     f"number {good['max LU cond'].median():.3g}, last test NLL {good['test NLL (last epoch)'].median():.3g}"
                     " (medians)")
        lines.append(line + ".")
    return lines

def explode_view(table: pd.DataFrame, failure_chars: int = 40):
    """Section 3's per-run table as the page shows it: indexed by the flow's paper name (USFlow, NonUSFlow) and
    seed, six columns under two-level headers (:data:`EXPLODE_COLUMNS`: status, epochs, the last epoch's
    ln|det J| mean and spread, the largest LU condition number, the last test NLL).  A ``failure`` column is
    added only when some run has a message (cut to ``failure_chars``; "–" for the others)."""
    view = table.assign(flow=table["flow"].map(flow_name)).set_index(["flow", "seed"])[list(EXPLODE_COLUMNS)]
    view.columns = pd.MultiIndex.from_tuples(EXPLODE_COLUMNS.values())
    failures = table["failure"].fillna("").astype(str)
    if (failures != "").any():
        view[("run", "failure")] = [f[:failure_chars] + ("…" if len(f) > failure_chars else "") if f else "–"
                                    for f in failures]
    numbers = [c for c in view.columns if view[c].dtype.kind == "f"]
    return view.style.format({c: readable for c in numbers})


def sweep_view(table: pd.DataFrame):
    """§4b's table (grouped by coupling and sigma, the columns the chapter builds) with the run counts
    in one column ("2 ok", "1 ok, 1 failed") and two-level headers for the last-epoch ln|det J|."""
    def runs(row) -> str:
        return ", ".join(f"{int(row[k])} {k}" for k in ("ok", "failed", "diverged") if row[k] or k == "ok")

    view = pd.DataFrame({("", "runs"): table.apply(runs, axis=1),
                         ("ln|det J|, last epoch", "mean"): table["ln_det_mean"],
                         ("ln|det J|, last epoch", "std"): table["ln_det_spread"],
                         ("ln|det J|, last epoch", "growth, last quarter"): table["growth_last_quarter"],
                         ("test NLL", "last epoch"): table["test_nll"]}, index=table.index)
    view.columns = pd.MultiIndex.from_tuples(view.columns)
    view.index = view.index.set_levels(view.index.levels[0].map(flow_name), level=0)
    view = view.rename_axis(index=["flow", "σ"])  # a new index: the caller's table keeps its names
    fmt = {c: readable for c in view.columns if c[1] != "runs"}
    return view.style.format(fmt)


# --------------------------------------------------------------------------
# A saved summary (the committed full run, or this run's) as the page's first section
# --------------------------------------------------------------------------
PAPER_MAX_LR = 1e-3
"""The largest learning rate the paper states for training a flow: its own flows train at 1e-4 (§5.1), the
image baselines at up to 1e-3 (App. E, FastFlow and U-Flow).  A run above it is our stress test, outside
the paper's settings."""

PARTS = {"explode": ("section 3", "high-learning-rate runs"), "sigma_sweep": ("section 4b", "prior-scale sweep")}
"""The chapter's own sections (not the paper's) whose flow runs :func:`failure_groups` counts."""


def failure_groups(summary: dict) -> pd.DataFrame:
    """The flow runs of a saved chapter summary (``summary``: its ``data``) counted per part and flow: the
    part (§3's high-learning-rate runs, §4b's prior-scale sweep), the flow, its learning rate, whether
    that is within the paper's (:data:`PAPER_MAX_LR`), the number of runs, and how many were ok, failed
    (NaN/inf) or diverged (:func:`run_status`)."""
    s = summary["settings"]
    lrs = {"explode": s["explode_lr"], "sigma_sweep": s["sweep_lr"]}
    rows = []
    for key, (section, what) in PARTS.items():
        runs = pd.DataFrame(summary[key])
        flow_col = "flow" if "flow" in runs else "coupling"
        for coupling, name in (("additive_lu", "USFlow"), ("affine_lu", "NonUSFlow")):
            status = runs.loc[runs[flow_col] == coupling, "status"]
            rows.append({"part": f"{section}: {what}", "flow": name, "lr": lrs[key],
                         "paper's lr": lrs[key] <= PAPER_MAX_LR, "runs": len(status),
                         **{k: int((status == k).sum()) for k in ("ok", "failed", "diverged")}})
    return pd.DataFrame(rows)


def sweep_summary(rows: list[dict]) -> pd.DataFrame:
    """§4b's runs (the ``sigma_sweep`` rows of a summary: one dict per run) per flow and prior scale: run
    counts by status and the means of the last-epoch ln|det J|, its spread over inputs, its growth over the
    last quarter of training and the test NLL; the table :func:`sweep_view` shows."""
    df = pd.DataFrame(rows)
    return df.groupby(["coupling", "sigma"], sort=False).agg(
        runs=("seed", "size"), ok=("status", lambda v: int((v == "ok").sum())),
        failed=("status", lambda v: int((v == "failed").sum())),
        diverged=("status", lambda v: int((v == "diverged").sum())),
        ln_det_mean=("ln_det_mean", "mean"), ln_det_spread=("ln_det_spread", "mean"),
        growth_last_quarter=("ln_det_growth_last_quarter", "mean"), test_nll=("test_nll", "mean"))


def prop1_view(per_d: pd.DataFrame):
    """Proposition 1's per-dimension table (the ``prop1_per_d`` rows of a summary, indexed by ``d``): the
    Monte-Carlo mean of ``1/||x||^2``, ``1/(d-2)``, the relative error in %, the standard error and the
    quadrature, each rounded to what the comparison needs."""
    view = per_d.rename(columns={"rel_error": "rel. error", "std_err": "std. error",
                                 "finite_variance": "finite variance"})
    return view.style.format({"E[1/||x||^2] (MC)": "{:.3e}", "1/(d-2)": "{:.3e}", "rel. error": "{:.2%}",
                              "std. error": "{:.1e}", "quadrature": "{:.3e}"})


def prior_view(rows: list[dict]):
    """App. B.2's sampling check (the ``prior_samples`` rows of a summary) per rule, three significant
    digits, the relative error in %."""
    view = pd.DataFrame(rows).set_index("rule")
    fmt = {c: readable for c in view.columns} | {"rel. error of variance": "{:.2%}"}
    return view.style.format(fmt)


def describe_bounded_decay(end: pd.Series | dict, small: pd.Series | dict, pretrain_epochs: int | None = None,
                           pretraining: dict | None = None) -> str:
    """One or two sentences on the bounded network under the strong decay (``end``: its row of a summary's
    ``svdd`` table; ``small``: the same network's row with the small decay), telling apart a network that
    was **constant from the start** of one-class training (spread 0 at its start: the collapse happened
    before, in the autoencoder pretraining, which applies the same decay) from one that **collapsed during**
    one-class training (spread > 0 at the start, 0 at the end) or never became constant.  ``pretraining``:
    :func:`pretraining_collapse` for this variant (its spread at initialisation and the pretraining epoch at
    which it became constant), when known."""
    lam = end["weight decay"]
    head = f"Under a strong decay (λ = {lam:g}) the bounded network with biases "
    if end["spread start"] == 0:
        text = (head + f"was **constant from the start** of one-class training: spread 0 and a loss of "
                f"{end['loss start']:.2g} at its start, spread 0 at its end, AUROC {100 * end['AUROC end']:.1f} % "
                f"(chance). It did not collapse during one-class training but before it, in the autoencoder "
                f"pretraining{f' ({pretrain_epochs} epochs)' if pretrain_epochs else ''}, which applies the same "
                f"decay")
        if pretraining is not None:
            when = (f"exactly constant in float32 after pretraining epoch {pretraining['constant_at']}"
                    if pretraining["constant_at"] is not None else "not exactly constant within the pretraining")
            text += (f". Rerun here with the run's seed and settings, its freshly initialised network already had a "
                     f"spread of only {pretraining['init_spread']:.2g} (stacked sigmoid layers squeeze their "
                     f"input's variation), and the decayed pretraining made it {when}; with the small decay "
                     f"the same initial network left the pretraining with a spread of {small['spread start']:.3g}")
        return text + "."
    if end["spread end"] == 0:
        return (head + f"**collapsed during one-class training**: spread {end['spread start']:.2g} at its start, "
                f"exactly 0 at its end, AUROC {100 * end['AUROC end']:.1f} %.")
    return (head + f"did not become constant: spread {end['spread start']:.2g} at the start of one-class "
            f"training and {end['spread end']:.2g} at its end, AUROC {100 * end['AUROC end']:.1f} %.")


def describe_full(summary: dict, pretraining: dict | None = None) -> str:
    """The chapter's findings from a saved summary (``summary``: its ``data``) as a Markdown list: Deep
    SVDD's collapse (:func:`describe_bounded_decay`, with ``pretraining`` from :func:`pretraining_collapse`
    when given), the USFlow of section 1 (stated against a fit of its base), Proposition 1, the failed and diverged flow runs counted separately
    at the paper's learning rates and in our high-learning-rate stress test (with the diverged USFlows'
    LU condition numbers and spread of ln|det J|), and the log-det prior."""
    s = summary["settings"]
    svdd = pd.DataFrame(summary["svdd"]).set_index("variant")

    def fold(name: str) -> str:
        return _fold(svdd.loc[name, "spread end"] / svdd.loc[name, "spread start"])

    bd, b_small = svdd.loc[BOUNDED_DECAY], svdd.loc[BOUNDED]
    out = [f"**Hypersphere collapse (§4.2).** With the usual tiny decay (λ = {svdd.loc[BIASED, 'weight decay']:g}) "
           f"the encoders that can represent ω ≡ c shrank the spread of their normal test embeddings"
           + (f" ({s['n_test']:,} points)" if "n_test" in s else "") + " during one-class "
           f"training {fold(BIASED)} (with bias) and {fold(BOUNDED)} (sigmoid with bias), Ruff's recipe only "
           f"{fold(RUFF)}. " + describe_bounded_decay(bd, b_small, s.get("pretrain_epochs"), pretraining)
           + f" Ruff's bias-free encoder under the same strong decay kept a spread of "
           f"{svdd.loc[RUFF_DECAY, 'spread end']:.2f} and an AUROC of {100 * svdd.loc[RUFF_DECAY, 'AUROC end']:.1f} %."]
    u = summary["usf_section1"]
    std_x, sq_x = u["latent spread"] / u["base std"], u["E||phi(x)-c||^2"] / u["d/2"]
    out.append(f"**A USFlow cannot collapse, and this one fits its base poorly** (d = {s['dim']}, lr {s['flow_lr']:g}, "
               f"{s['flow_epochs']} epochs). Shrinking the latents would make −ln ψ_det grow without bound (Eq. 5), and "
               f"they did not shrink: their standard deviation is {u['latent spread']:.2f}. But a good fit of the base "
               f"𝒩(c, ½ I) would give {u['base std']:.3f} and E‖φ(x) − c‖² = d/2 = {u['d/2']:g}; ours are "
               f"{std_x:.2f}× and {sq_x:.1f}× those (mean ‖φ(x) − c‖² = {u['E||phi(x)-c||^2']:.1f} on the "
               + (f"{s['n_test']:,} " if "n_test" in s else "") + f"normal test points), so the latents are far wider than the base: the absence of collapse here is not a sign of a "
               f"good density fit. Its latent norm still separates the anomalies with an AUROC of "
               f"{100 * u['AUROC (latent norm)']:.2f} %.")
    per_d = pd.DataFrame(summary["prop1_per_d"])
    fin = per_d[per_d["finite_variance"]]
    inv = summary["inversion"]
    out.append(f"**Proposition 1** (§4.3, App. B.3): the Monte-Carlo loss matches 1/(α²(d − 2)) within "
               f"{100 * fin['rel_error'].max():.2f} % for d = {', '.join(str(int(d)) for d in fin['d'])} "
               f"({s['mc_samples']:,} samples), and F_α ranks inputs exactly the wrong way round "
               f"(Spearman {inv['spearman_score']:+.3f} between −ln 𝒩(x) and the distance; AUROC "
               f"{100 * inv['auroc_tail']:.1f} % for the 5 % least likely points).")
    groups = failure_groups(summary)
    paper, stress = groups[groups["paper's lr"]], groups[~groups["paper's lr"]]

    def counts(rows: pd.DataFrame) -> str:
        def one(r) -> str:
            how = ", ".join(f"{n} {k}" for k, n in (("failed", r.failed), ("diverged", r.diverged)) if n)
            return f"{r.flow} {r.runs - r.ok} of {r.runs}" + (f" ({how})" if how else "")

        return "; ".join(f"{part} (lr {g['lr'].iloc[0]:g}): " + ", ".join(one(r) for r in g.itertuples())
                         + " went wrong" for part, g in rows.groupby("part", sort=False))

    usf_paper = paper[paper["flow"] == "USFlow"]
    rates = {"Deep SVDD (section 1)": s["svdd_lr"], "USFlow (section 1)": s["flow_lr"], "section 3": s["explode_lr"],
             "section 4b": s["sweep_lr"]}
    text = (f"**Exploding determinants and App. D.** App. D reports failed NonUSFlow runs and *\"no such instabilities "
            f"when working with the USFlows architecture\"*. Learning rates of this run (sections of this chapter): "
            + ", ".join(f"{k} {v:g} ({'within' if v <= PAPER_MAX_LR else 'above'} the paper's)" for k, v in rates.items())
            + f". At learning rates within the paper's (at most {PAPER_MAX_LR:g}): "
            f"{counts(paper) if len(paper) else 'no flow runs of this summary'}.")
    if len(stress):
        text += (f" Our own stress test, outside the paper's settings (this chapter's section 3: lr {s['explode_lr']:g}, "
                 f"{s['explode_lr'] / PAPER_MAX_LR:g} times the paper's largest, no prior, d = {s['explode_dim']}, "
                 f"{s['explode_blocks']} blocks, {s['explode_runs']} seeds per flow): {counts(stress)}.")
    ex = pd.DataFrame(summary["explode"])
    bad_usf = ex[(ex["constant_det"].astype(bool)) & (ex["status"] != "ok")]
    if len(bad_usf):
        text += (f" The USFlow run(s) that went wrong there (seed {', '.join(str(int(v)) for v in bad_usf['seed'])}) "
                 f"did so through ill-conditioned LU maps (largest condition number {bad_usf['max LU cond'].max():.1e}, "
                 f"last test NLL {bad_usf['test NLL (last epoch)'].max():.2g}), with one determinant for every input "
                 f"(spread {bad_usf['std over inputs'].max():.1e}), not through the input-dependent volume change "
                 "of the NonUSFlows.")
    n_usf_paper = int(usf_paper["runs"].sum())
    ok_usf_paper = int(usf_paper["ok"].sum())
    if n_usf_paper:
        text += (f" So App. D's statement about USFlows holds in {ok_usf_paper} of {n_usf_paper} of our USFlow runs at the "
                 f"paper's learning rates" + (f", not in every run of the stress test at {stress['lr'].max():g}." if
                                              len(stress) and (stress[stress['flow'] == 'USFlow']['ok']
                                                               < stress[stress['flow'] == 'USFlow']['runs']).any()
                                              else "."))
    out.append(text)
    prior = pd.DataFrame(summary["prior_samples"]).set_index("rule")
    sw = sweep_summary(summary["sigma_sweep"]).reset_index()
    usf = sw[sw["coupling"] == "additive_lu"].set_index("sigma")
    smallest = min((x for x in usf.index if x != "no prior"), key=float)
    c = s["prior_shape"][0]
    out.append(f"**The log-det prior (App. B.2).** Sampled LU maps give a variance of ln|det J| of "
               f"{prior.loc['exact', 'sample variance']:.3f} with our rule (target σ² = {s['prior_sigma'] ** 2:g}) "
               f"and {prior.loc['paper', 'sample variance']:.4f} with the appendix's formula, σ²/c for c = {c} "
               f"({s['prior_sigma'] ** 2 / c:.4f}). On data in a {s['sweep_rank']}-dimensional subspace of "
               f"{s['sweep_dim']}-dimensional space the USFlow's last ln|det J| is {usf.loc[smallest, 'ln_det_mean']:.1f} "
               f"with σ = {smallest} and {usf.loc['no prior', 'ln_det_mean']:.1f} without a prior (means over "
               f"{int(usf.loc['no prior', 'runs'])} seeds).")
    return "\n\n".join(f"* {line}" for line in out)
