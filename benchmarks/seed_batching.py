"""Would training a tabular flow's seeds as one model pay? A measurement, not a feature.

    python benchmarks/seed_batching.py                      # d = 36, 3 seeds, 150 steps, 3 repeats
    python benchmarks/seed_batching.py --dim 10 --seeds 2 --out /tmp/batching.json

Issue 10 measured, off-repo, 1.8x per run for three seeds trained as one model with batched
matrix products.  This script tries the general way to get there without a second model class:
``torch.func.stack_module_state`` stacks the weights of ``--seeds`` USFlows (chapter 05's full
configuration: 4 blocks, 4 x 256 conditioners, batch 64, one thread), ``torch.func.vmap`` runs
their loss (``usfkit.models.flows_lightning.FlowModule.loss``) as one call, and one fused Adam steps the stacked
weights, which is the same update as one Adam per seed (Adam is elementwise).  Each seed sees
its own batches.  Against training the seeds one after the other, it reports the time per run
and step and the largest relative difference of the losses (the same maths).  Writes ``--out``
(JSON, with provenance and the load average, since other work on the machine slows both alike).
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import time

import torch
from torch.func import functional_call, stack_module_state, vmap

from usfkit import results
from usfkit.models.flows import build_flow
from usfkit.models.flows_lightning import FlowModule
from usfkit.train import adam


class _Loss(torch.nn.Module):
    """A FlowModule's loss as ``forward``, which is what ``functional_call`` calls."""

    def __init__(self, module: FlowModule):
        super().__init__()
        self.module = module

    def forward(self, x):
        return self.module.loss(x)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dim", type=int, default=36)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--steps", type=int, default=150)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default="benchmarks/seed_batching.json")
    args = p.parse_args()
    torch.set_num_threads(1)
    start, load = time.time(), [os.getloadavg()[0]]
    n, batch = 3000, 64
    x = torch.rand(n, args.dim, generator=torch.Generator().manual_seed(0))

    def models():
        return [FlowModule(build_flow(args.dim, "additive_lu", blocks=4, hidden=256, layers=4, prior_sigma=1.0,
                                      seed=s), 1e-4, n_train=n) for s in range(args.seeds)]

    def rows(i: int, k: int) -> torch.Tensor:  # seed k's batch at step i
        at = ((i + k) * batch) % (n - batch)
        return x[at:at + batch]

    def one_by_one() -> tuple[float, list[float]]:
        mods = models()
        opts = [adam(m.parameters(), 1e-4) for m in mods]
        losses, t = [], time.perf_counter()
        for i in range(args.steps):
            for k, (m, opt) in enumerate(zip(mods, opts)):
                loss = m.loss(rows(i, k))
                opt.zero_grad()
                loss.backward()
                opt.step()
                losses.append(loss.item())
        return time.perf_counter() - t, losses

    def batched() -> tuple[float, list[float]]:
        mods = [_Loss(m) for m in models()]
        params, buffers = stack_module_state(mods)
        shell = copy.deepcopy(mods[0]).to("meta")
        loss_of = vmap(lambda p, b, xb: functional_call(shell, (p, b), (xb,)))
        opt = adam(list(params.values()), 1e-4)
        losses, t = [], time.perf_counter()
        for i in range(args.steps):
            loss = loss_of(params, buffers, torch.stack([rows(i, k) for k in range(args.seeds)]))
            opt.zero_grad()
            loss.sum().backward()  # each seed's weights get their own loss's gradient
            opt.step()
            losses += loss.tolist()
        return time.perf_counter() - t, losses

    repeats = []
    for _ in range(args.repeats):
        (t_one, l_one), (t_all, l_all) = one_by_one(), batched()
        diff = max(abs(a - b) / abs(a) for a, b in zip(l_one, l_all))
        repeats.append({"one_by_one_ms_per_run_step": 1000 * t_one / args.steps / args.seeds,
                        "batched_ms_per_run_step": 1000 * t_all / args.steps / args.seeds,
                        "speedup": t_one / t_all, "max_rel_loss_diff": diff})
        print(f"one seed at a time {repeats[-1]['one_by_one_ms_per_run_step']:.2f} ms, {args.seeds} seeds batched "
              f"{repeats[-1]['batched_ms_per_run_step']:.2f} ms per run and step: x{t_one / t_all:.2f} "
              f"(losses equal to {diff:.1e})", flush=True)
    load.append(os.getloadavg()[0])
    prov = results.provenance("benchmark", seeds=list(range(args.seeds)), started=start)
    prov["load_avg_1min_before_after"] = load
    with open(args.out, "w") as f:
        json.dump({"config": vars(args), "repeats": repeats, "provenance": prov}, f, indent=1)
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
