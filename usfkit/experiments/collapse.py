"""Failure modes of Deep SVDD and of flows, measured along training (chapter 3).

Paper: Abu Zaid et al., arXiv 2510.09452, §4.2 (hypersphere collapse, exploding
determinants) and App. D (training instabilities of NonUSFlows).  The chapter's other
parts live with their concepts: the data in :mod:`usfkit.data.synthetic`
(``anomaly_data``, ``subspace_data``), Proposition 1 in :mod:`usfkit.proposition1`, the
log-det prior of App. B.2 in :mod:`usfkit.flows` (``sample_lu_log_dets``).

* :class:`EpochProbe` — a Lightning callback that evaluates a function of the model
  after every epoch (passed to :func:`usfkit.train.fit` through ``callbacks=``);
  :func:`svdd_stats` and :func:`flow_stats` are what this chapter probes;
* :func:`run_svdd` and :func:`run_flow` — one training run each, returning a plain
  dict (fit result, per-epoch trajectory, final statistics) ready for a table;
  :func:`run_status` classifies a flow run as ok, failed (NaN/inf) or diverged;
* :func:`svdd_variants`, :func:`explode_runs`, :func:`prior_sweep` — the chapter's three loops of
  trainings, each a resumable :func:`usfkit.sweep.run_sweep` whose records keep every run's
  trajectory (``info``); they return the runs as plain dicts for the tables and plots.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from lightning.pytorch.callbacks import Callback
from torch import Tensor

from ..flows import Flow, build_flow, seeded
from ..metrics import auroc
from ..oneclass import DeepSVDD, svdd_widths
from ..results import RunRecord, RunResult
from ..sweep import run_sweep
from ..train import FitResult, train_flow, train_svdd

CHAPTER = "03_collapse"


# --------------------------------------------------------------------------
# A per-epoch probe
# --------------------------------------------------------------------------
class EpochProbe(Callback):
    """Evaluates ``probe()`` (no arguments, returns a dict of numbers) at the start of
    training and after every training epoch, in eval mode without gradients.

    ``rows[0]`` (``epoch`` 0) is the state training starts from.  The rows are cleared
    when a new fit starts, so a probe shared by Deep SVDD's pretraining and its one-class
    training keeps only the latter.  Pass it as ``fit(..., callbacks=[probe])``.
    """

    def __init__(self, probe: Callable[[], dict]):
        self.probe = probe
        self.rows: list[dict] = []

    def _record(self, epoch: int, pl_module) -> None:
        was_training = pl_module.training
        pl_module.eval()
        with torch.no_grad():
            row = self.probe()
        pl_module.train(was_training)
        self.rows.append({"epoch": epoch, **{k: float(v) for k, v in row.items()}})

    def on_train_start(self, trainer, pl_module):
        self.rows = []
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
    :class:`~usfkit.oneclass.DeepSVDD`, plus an optional ``weight_decay``) with early
    stopping off (``patience = epochs``), so every variant gets the same number of epochs.
    Returns the model, the :class:`~usfkit.train.FitResult`, the per-epoch
    :func:`svdd_stats` on the test set (``trajectory``, epoch 0 = after pretraining and
    centring), the weight decay used and the final stats."""
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
    return {"model": model, "fit": result, "trajectory": probe.rows, "final": final,
            "initial": probe.rows[0] if probe.rows else None, "weight_decay": weight_decay}


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
             patience: int | None = None, seed: int = 0, desc: str | None = None) -> dict:
    """Train one flow of :func:`usfkit.flows.build_flow` with ``coupling`` (``"additive_lu"``: a
    USFlow, ``"affine_lu"``: a NonUSFlow; :data:`usfkit.flows.COUPLINGS`) by maximum likelihood
    (MAP with the log-det prior when ``prior_sigma`` is set) and probe it on ``x_test`` after
    every epoch with :func:`flow_stats`.

    The base is ``N(0, scale^2 I)``, by default ``scale^2 = 1/2`` as in Eq. 5.  Early
    stopping is off unless ``patience`` is given.  A NaN/inf loss does not raise: the run
    comes back with ``fit.ok == False`` and the message in ``fit.failure``.
    """
    flow = build_flow(x_train.shape[1], coupling, blocks=blocks, hidden=hidden, layers=layers, clamp=clamp,
                      scale=scale, prior_sigma=prior_sigma, prior_rule=prior_rule, seed=seed)
    probe = EpochProbe(lambda: flow_stats(flow, x_test))
    result = train_flow(flow, x_train, lr=lr, max_epochs=epochs, patience=patience or epochs,
                        batch_size=batch_size, seed=seed, desc=desc or f"{coupling} seed {seed}", callbacks=[probe])
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
                                  info={k: run[k] for k in ("trajectory", "final", "weight_decay")}
                                  | {"history": run["fit"].history})

    records = run_sweep(CHAPTER, cfg.profile, specs, one, settings=settings, desc="Deep SVDD variants")
    out = {}
    for r in records:
        trajectory = _numbers(r.info["trajectory"])
        out[r.spec["variant"]] = {"trajectory": trajectory, "initial": trajectory[0], "history": _numbers(r.info["history"]),
                                  "final": _numbers([r.info["final"]])[0], "weight_decay": r.info["weight_decay"]}
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
