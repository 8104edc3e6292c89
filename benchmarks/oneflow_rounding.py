"""Why OneFlow compiles its flow and not its whole loss: how far a change of rounding moves a run.

    USFKIT_DATA=../shared/data python benchmarks/oneflow_rounding.py      # 30_satellite, 10 epochs

Trains chapter 05's OneFlow (full-profile model and learning rate, batch 64, seed 1, a fixed number of
epochs, one torch thread) four ways on the same rows and batches:

* ``eager``: as usfkit trains it without compiling;
* ``eager, norm rewritten``: eager, with the latent norm computed as ``sqrt(sum(z**2))`` instead of
  ``norm(z)``: the same maths, other rounding;
* ``whole loss compiled``: the loss (flow, norm and Bernstein quantile) through ``torch.compile``;
* ``flow compiled``: only the flow through ``torch.compile``, as :func:`usfkit.train.fit` does.

For each it reports the largest relative difference of its epoch losses from ``eager`` and the test
AUC-ROC, and, for the first batch, how large the conjugating LU maps' gradients are next to the
others' (at the start every block is the identity, so theirs are rounding residues) and how far
Adam's first step moves those weights.  Writes ``--out`` (JSON, with provenance).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
WAYS = ("eager", "eager, norm rewritten", "whole loss compiled", "flow compiled")


def norm_rewritten(self, x):
    """``OneFlow.log_volume`` with the norm written out: the same maths, other rounding."""
    from usfkit.models.oneflow import bernstein_quantile, log_unit_ball_volume

    z, logdet = self.flow(x)
    radius = bernstein_quantile(z.flatten(1).pow(2).sum(1).sqrt(), 1.0 - self.nu)
    return log_unit_ball_volume(self.dim) + self.dim * torch.log(radius) - logdet.mean()


def build(way: str, split, cfg, seed: int = 1):
    from usfkit.models.oneflow import OneFlow

    model = OneFlow(split.dim, blocks=cfg.blocks, hidden=cfg.hidden, layers=cfg.layers, seed=seed)
    if way == "eager, norm rewritten":
        model.log_volume = norm_rewritten.__get__(model)
    return model


def train(way: str, split, cfg, epochs: int, seed: int = 1) -> dict:
    from usfkit import train as T
    from usfkit.metrics import auroc
    from usfkit.models.oneflow import OneFlowModule

    model = build(way, split, cfg, seed)
    module = OneFlowModule(model, lr=cfg.lr)
    if way == "whole loss compiled":
        module.compile_target = lambda: (module, "loss")
    start = time.time()
    fit = T.fit(module, split.x_train, max_epochs=epochs, batch_size=cfg.batch_size, patience=epochs + 1,
                seed=seed, progress="none", compile=way.endswith("compiled"))
    with torch.no_grad():
        auc = auroc(split.y_test, model.score(split.x_test).numpy())
    return {"losses": [row["train_loss"] for row in fit.history], "auroc": auc, "compiled": fit.compiled,
            "seconds": time.time() - start}


def first_step(split, cfg, seed: int = 1) -> dict:
    """The first batch's largest gradient entry and Adam's first step, for the blocks' conjugating LU
    maps and for the other weights, eager and with the norm rewritten."""
    from usfkit.train import adam

    x = split.x_train[:cfg.batch_size]
    out = {}
    for way in WAYS[:2]:
        model = build(way, split, cfg, seed)
        opt = adam(model.parameters(), cfg.lr)
        before = {n: p.detach().clone() for n, p in model.named_parameters()}
        model.loss(x).backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters()}
        opt.step()
        out[way] = {n: (grads[n], p.detach() - before[n]) for n, p in model.named_parameters()}
    eager, rewritten = out["eager"], out["eager, norm rewritten"]
    lu = [n for n in eager if ".affine." in n and not n.endswith("bias")]  # the blocks' conjugating LU maps
    rest = [n for n in eager if n not in lu]
    return {"lu_grad_max": max(eager[n][0].abs().max().item() for n in lu),
            "other_grad_max": max(eager[n][0].abs().max().item() for n in rest),
            "lu_step_max": max(eager[n][1].abs().max().item() for n in lu),
            "lu_step_change_max": max((eager[n][1] - rewritten[n][1]).abs().max().item() for n in lu),
            "lr": cfg.lr}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="30_satellite")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "oneflow_rounding.json"))
    args = p.parse_args()
    torch.set_num_threads(1)
    sys.path.insert(0, str(ROOT))
    from usfkit import profiles, results
    from usfkit.data import adbench

    start = time.time()
    split = adbench.split(args.dataset, seed=1, protocol="adbench")
    cfg = profiles.resolve("05_tabular_benchmark", "full")
    step = first_step(split, cfg)
    print(f"first batch: LU-map gradients at most {step['lu_grad_max']:.1e} (other weights up to "
          f"{step['other_grad_max']:.1e}); Adam moves the LU maps by up to {step['lu_step_max']:.1e} "
          f"(lr {cfg.lr:g}); rewriting the norm changes that step by up to {step['lu_step_change_max']:.1e}")
    runs = {}
    for way in WAYS:
        runs[way] = r = train(way, split, cfg, args.epochs)
        r["max_rel_loss_diff"] = max(abs(a - b) / abs(b) for a, b in zip(r["losses"], runs["eager"]["losses"]))
        print(f"{way:22s} epoch losses within {r['max_rel_loss_diff']:.1e} of eager, AUC-ROC {r['auroc']:.4f} "
              f"({r['seconds']:.0f} s)", flush=True)
    payload = {"dataset": args.dataset, "epochs": args.epochs, "first_step": step, "runs": runs,
               "provenance": results.provenance("benchmark", seeds=1, started=start)}
    Path(args.out).write_text(json.dumps(payload, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
