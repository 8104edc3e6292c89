"""Where a tabular training step's time goes, and how fast an eager step could be without Lightning.

    python benchmarks/step_breakdown.py                                  # 30_satellite, USFlow and VAE-USFlow
    python benchmarks/step_breakdown.py --dataset 6_cardio --methods USFlow NonUSFlow --steps 200

For each method (full-profile configuration, one torch thread) the script measures, on the same data:

* ``lightning``: the step as chapter 05 trains it (``usfkit.train.fit``), the median epoch time after
  the first epoch divided by the batches per epoch;
* ``bare``: the same module, optimizer and loader in a plain loop (``zero_grad``, ``loss``,
  ``backward``, ``step``), i.e. the step without Lightning's loop, hooks and callbacks;
* inside the bare step: the time in matrix products (``mm``, ``addmm``, ``bmm``, timed one by one
  under a ``TorchDispatchMode``, forward and backward) and in the optimizer's step;
* ``before``: the step of usfkit at ``--before`` (default ``56edeb4``, when issue 10 was filed), run
  in its own process by ``speedup.py``'s child, so that ``before / bare`` is the largest speed-up an
  eager step of today's model could reach if Lightning cost nothing.

Writes ``--out`` (JSON, with provenance).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

import torch
from torch.utils._python_dispatch import TorchDispatchMode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from speedup import prepare, run_version  # noqa: E402  (speedup.py's before-commit child)

from usfkit import profiles, results, train  # noqa: E402
from usfkit.models import flows_lightning, oneclass, oneflow, vae  # noqa: E402
from usfkit.data import adbench  # noqa: E402
from usfkit.experiments import tabular  # noqa: E402

GEMMS = {torch.ops.aten.mm.default, torch.ops.aten.addmm.default, torch.ops.aten.bmm.default,
         torch.ops.aten.baddbmm.default}


class GemmTimer(TorchDispatchMode):
    """Adds up the wall time of every matrix product dispatched inside the block."""

    def __init__(self):
        super().__init__()
        self.seconds, self.calls = 0.0, 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func not in GEMMS:
            return func(*args, **(kwargs or {}))
        start = time.perf_counter()
        out = func(*args, **(kwargs or {}))
        self.seconds += time.perf_counter() - start
        self.calls += 1
        return out


def trained_module(method: str, x: torch.Tensor, cfg) -> tuple[train.TrainModule, float]:
    """Train ``method`` as chapter 05 does for ``cfg.epochs`` epochs; return its Lightning module (the
    last one fitted) and the median epoch time after the first."""
    kept, ends = {}, []
    real_fit, real_end = train.fit, train.History.on_train_epoch_end

    def fit_and_keep(module, *args, **kwargs):
        kept["module"] = module
        return real_fit(module, *args, **kwargs)

    def epoch_end(self, trainer, module):
        ends.append(time.perf_counter())
        real_end(self, trainer, module)

    with contextlib.ExitStack() as stack:
        for mod in (train, flows_lightning, oneclass, vae, oneflow):  # each imported ``fit`` by name
            stack.enter_context(mock.patch.object(mod, "fit", fit_and_keep))
        stack.enter_context(mock.patch.object(train.History, "on_train_epoch_end", epoch_end))
        tabular.build_and_train(method, x, cfg, seed=1, progress="none")
    return kept["module"], statistics.median(b - a for a, b in zip(ends, ends[1:]))


def bare_step(module: train.TrainModule, x: torch.Tensor, batch_size: int, steps: int) -> dict:
    """Seconds per step of a plain loop over ``module``'s loss, and its GEMM and optimizer parts."""
    module.train()
    opt = module.configure_optimizers()
    batches = [b[0] for b in train.loader(x, batch_size, shuffle=True, seed=1)]

    def step(i: int, timer: GemmTimer | None = None) -> float:
        opt.zero_grad(set_to_none=True)
        with timer or torch.enable_grad():
            loss = module.loss(batches[i % len(batches)])
            loss.backward()
        start = time.perf_counter()
        opt.step()
        return time.perf_counter() - start

    for i in range(20):  # warm-up
        step(i)
    start = time.perf_counter()
    opt_s = sum(step(i) for i in range(steps))
    total = (time.perf_counter() - start) / steps
    timer = GemmTimer()
    for i in range(steps):
        step(i, timer)
    return {"bare_step_s": total, "gemm_s": timer.seconds / steps, "gemm_calls": timer.calls / steps,
            "optimizer_s": opt_s / steps}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="30_satellite")
    p.add_argument("--methods", nargs="+", default=["USFlow", "VAE-USFlow"])
    p.add_argument("--epochs", type=int, default=6, help="epochs of the Lightning runs (default 6)")
    p.add_argument("--steps", type=int, default=300, help="steps of the bare loop (default 300)")
    p.add_argument("--before", default="56edeb4")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "step_breakdown.json"))
    args = p.parse_args()
    torch.set_num_threads(1)
    start = time.time()
    cfg = profiles.resolve("05_tabular_benchmark", "full", epochs=args.epochs, patience=args.epochs + 1)
    split = adbench.split(args.dataset, seed=1, protocol="adbench")
    n_batches = -(-len(split.x_train) // cfg.batch_size)
    with tempfile.TemporaryDirectory(prefix="usf-steps-") as tmp:
        data, before_tree = prepare(split, args.before, Path(tmp))
        before = run_version(before_tree, data, args.methods, args.epochs)
    rows = []
    for method in args.methods:
        module, epoch_s = trained_module(method, split.x_train, cfg)
        row = {"method": method, "before_step_s": before[method]["epoch_s"] / n_batches,
               "lightning_step_s": epoch_s / n_batches,
               **bare_step(module, split.x_train, cfg.batch_size, args.steps)}
        row["lightning_overhead_s"] = row["lightning_step_s"] - row["bare_step_s"]
        row["speedup_lightning"] = row["before_step_s"] / row["lightning_step_s"]
        row["speedup_bare"] = row["before_step_s"] / row["bare_step_s"]
        rows.append(row)
        print(f"{method:14s} before {1e3 * row['before_step_s']:5.2f} ms  lightning {1e3 * row['lightning_step_s']:5.2f} ms"
              f"  bare {1e3 * row['bare_step_s']:5.2f} ms (GEMMs {1e3 * row['gemm_s']:5.2f} ms in "
              f"{row['gemm_calls']:.0f} calls, optimizer {1e3 * row['optimizer_s']:4.2f} ms)  speed-up: "
              f"x{row['speedup_lightning']:.2f} today, x{row['speedup_bare']:.2f} without Lightning", flush=True)
    # the provenance first: once the output file is opened for writing, git sees the tree as changed
    payload = {"dataset": args.dataset, "n_train": len(split.x_train), "dim": split.dim,
               "batch_size": cfg.batch_size, "batches_per_epoch": n_batches, "epochs": args.epochs,
               "bare_steps": args.steps, "before": args.before, "table": rows,
               "provenance": results.provenance("full", seeds=[1], started=start)}
    with open(args.out, "w") as f:
        json.dump(payload, f, indent=1)


if __name__ == "__main__":
    main()
