"""The latent-alignment experiment of §4.3 / App. C.

For each dimension ``d`` the asymmetric Gaussian mixture is sampled into
train / validation / test sets; Deep SVDD, a NonUSFlow and a USFlow are trained
with a small random hyper-parameter search (``search_runs`` configurations per
method, the best chosen by validation loss: one-class loss for Deep SVDD, NLL for
the flows).  On the test set we compare the *true* log-likelihood with the latent
norm ``||phi(x) - c||`` (Spearman rho, Kendall tau) and, for the flows, with the
estimated log-likelihood.

Every trial is saved as it finishes (``trials/<key>.json`` plus the weights in
``checkpoints/``), so an interrupted run resumes where it stopped.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass

import numpy as np
import torch

from .. import metrics, results
from ..data import AsymmetricGaussianMixture
from ..flows import PAPER_FLOWS, build_flow, seeded
from ..oneclass import DeepSVDD, svdd_widths
from ..progress import track
from ..train import FitResult, train_flow, train_svdd

CHAPTER = "04_alignment"
METHODS = ("Deep SVDD", "NonUSFlow", "USFlow")


def search_space(method: str, cfg, run: int) -> dict:
    """The ``run``-th configuration: run 0 takes the first value of every list, later runs
    draw at random (seeded by run number and method, so reruns draw the same)."""
    rng = np.random.default_rng([cfg.seed, run, METHODS.index(method)])
    pick = (lambda xs: xs[0]) if run == 0 else (lambda xs: xs[int(rng.integers(len(xs)))])
    common = {"lr": pick(cfg.lrs), "batch_size": pick(cfg.batch_sizes)}
    if method == "Deep SVDD":
        return {"depth": pick(cfg.svdd_depths), **common}
    return {"blocks": pick(cfg.blocks), "layers": pick(cfg.layers), **common}


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
    if method == "Deep SVDD":
        with seeded(cfg.seed):  # the same initialisation whatever ran before, like the flows'
            return DeepSVDD(dim, svdd_widths(dim, conf["depth"]))
    return build_flow(dim, coupling=PAPER_FLOWS[method], blocks=conf["blocks"], hidden=cfg.hidden,
                      layers=conf["layers"], seed=cfg.seed)


def train_model(method: str, model, data: Data, conf: dict, cfg, desc: str) -> FitResult:
    kw = dict(max_epochs=cfg.epochs, batch_size=conf["batch_size"], patience=cfg.patience, lr=conf["lr"],
              seed=cfg.seed, desc=desc)
    if method == "Deep SVDD":
        return train_svdd(model, data.train, data.val, pretrain_epochs=cfg.svdd_pretrain_epochs, **kw)
    return train_flow(model, data.train, data.val, **kw)


@torch.no_grad()
def evaluate(method: str, model, data: Data) -> dict:
    """Latent norms and (flows) estimated log-likelihoods on the test set, with rank correlations.

    Correlations are taken between the true log-likelihood and the *negative* latent
    norm, so +1 means "the closer to the centre, the more likely": perfect alignment.
    """
    x = data.test
    if method == "Deep SVDD":
        z = model(x)
        norm = (z - model.center).norm(dim=1)
        est = None
    else:
        z, logdet = model(x)
        norm = model.base.sq_dist(z).sqrt()
        est = (model.base.log_prob(z) + logdet).numpy()
    out = {"norm": norm.numpy(), "latent": z.numpy(), "est_log_prob": est,
           "rho": metrics.spearman(data.test_log_prob, -norm), "tau": metrics.kendall(data.test_log_prob, -norm)}
    if est is not None:
        out["rho_est"] = metrics.spearman(data.test_log_prob, est)
        out["rho_est_norm"] = metrics.spearman(est, -norm)
    return out


def _trial(method: str, data: Data, run: int, cfg, folder) -> tuple[dict, object]:
    """Train (or load, when saved by an earlier run) one configuration; returns (record, model)."""
    conf = search_space(method, cfg, run)
    # the key names everything the trial depends on, so changed settings never reuse stale weights
    settings = {**conf, **{k: getattr(cfg, k) for k in ("seed", "epochs", "patience", "hidden", "n_train",
                                                          "n_val", "svdd_pretrain_epochs")}}
    digest = hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:8]
    key = f"d{data.dim}_{method.replace(' ', '')}_run{run}_{digest}"
    record_path, ckpt = folder / "trials" / f"{key}.json", folder / "checkpoints" / f"{key}.pt"
    model = build_model(method, data.dim, conf, cfg)
    if record_path.exists() and (ckpt.exists() or not json.loads(record_path.read_text())["ok"]):
        record = json.loads(record_path.read_text())
        if record["ok"]:
            model.load_state_dict(torch.load(ckpt))
        return record, model.eval()
    res = train_model(method, model, data, conf, cfg, desc=f"{method} d={data.dim} run {run}")
    record = {"method": method, "dim": data.dim, "run": run, "config": conf, "ok": res.ok,
              "val_loss": res.best_loss if res.ok else None, "epochs": res.epochs,
              "wall_time_s": round(res.wall_time_s, 2), "failure": res.failure}
    record_path.parent.mkdir(parents=True, exist_ok=True)
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    if res.ok:
        torch.save(model.state_dict(), ckpt)
    record_path.write_text(json.dumps(record, indent=1))
    return record, model


def run(cfg, verbose: bool = True) -> dict:
    """Run the whole experiment for ``cfg.dims`` x METHODS; returns per-(dim, method) results."""
    folder = results.chapter_dir(CHAPTER, cfg.profile)
    out: dict = {"trials": [], "best": {}}
    jobs = [(d, m) for d in cfg.dims for m in METHODS]
    datasets: dict[int, Data] = {}
    for dim, method in track(jobs, "alignment (dimension x model)", enabled=verbose):  # one display
        data = datasets.setdefault(dim, Data.sample(dim, cfg))
        start = time.time()
        best = None
        for r in range(cfg.search_runs):
            record, model = _trial(method, data, r, cfg, folder)
            out["trials"].append(record)
            if record["ok"] and (best is None or record["val_loss"] < best[0]["val_loss"]):
                best = (record, model)
        if best is None:
            out["best"][(dim, method)] = {"ok": False, "failed_runs": cfg.search_runs}
            continue
        record, model = best
        ev = evaluate(method, model.eval(), data)
        ev.update(ok=True, config=record["config"], run=record["run"], val_loss=record["val_loss"],
                  failed_runs=sum(not t["ok"] for t in out["trials"] if t["dim"] == dim and t["method"] == method),
                  model=model, wall_time_s=round(time.time() - start, 1))
        out["best"][(dim, method)] = ev
    out["data"] = datasets
    return out


def summary_table(out: dict):
    """One row per (dimension, method): rho, tau, rho of the estimate, failures, chosen config."""
    import pandas as pd

    rows = []
    for (dim, method), ev in out["best"].items():
        rows.append({"d": dim, "method": method,
                     "Spearman rho (ln p, -||z||)": ev.get("rho"), "Kendall tau (ln p, -||z||)": ev.get("tau"),
                     "Spearman rho (ln p, ln p_hat)": ev.get("rho_est"),
                     "failed runs": ev.get("failed_runs"), "chosen config": ev.get("config")})
    return pd.DataFrame(rows)
