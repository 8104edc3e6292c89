"""Throughput of USFlow, NonUSFlow, a FrEIA AllInOneBlock flow and (with ``--usflows``) the
USFlows library's USFlow, all of the same size.

One run, one dataset (the asymmetric Gaussian mixture of the paper's §4.3 with
``mu1 = +1``, ``mu2 = -1``, ``Sigma1 = I``, ``Sigma2 = diag(5.0, ..., 0.5, ...)``),
three models, two numbers each:

* **train steps/s** -- Adam steps on the NLL ``-log_prob(x).mean()`` at batch
  ``--batch``, timed after ``--warmup`` untimed steps;
* **infer samples/s** -- ``log_prob`` under ``torch.inference_mode`` at batch
  ``--infer-batch``, timed after one untimed call.

Each timing is repeated ``--repeats`` times (models interleaved, so slow drift of
the machine hits all three alike) and the median is reported.  CUDA is
synchronised before the clock is read.  The defaults are the paper's tabular
configuration: 4 blocks, hidden width 256, 4 hidden layers, d = 32.

    .venv/bin/python benchmarks/bench_flows.py                    # defaults
    .venv/bin/python benchmarks/bench_flows.py --threads 1 --json bench.json
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import statistics
import time
from pathlib import Path

import torch
from torch import Tensor, nn

from usfkit import results
from usfkit.data import AsymmetricGaussianMixture
from usfkit.models.flows import MLPConditioner, NonUSFlow, USFlow
from usfkit.train import adam


# --------------------------------------------------------------------------
# Data and models
# --------------------------------------------------------------------------
class FrEIAFlow(nn.Module):
    """A ``FrEIA.framework.SequenceINN`` of ``AllInOneBlock``s with a standard normal base.

    The subnet is usfkit's own ``MLPConditioner`` (Linear-LayerNorm-SiLU, ``layers``
    hidden layers of width ``hidden``, zero-initialised output), so the three
    models differ in the coupling machinery, not in the conditioner network.
    """

    def __init__(self, dim: int, blocks: int, hidden: int, layers: int, clamp: float = 2.0):
        super().__init__()
        import FrEIA.framework as Ff
        import FrEIA.modules as Fm

        def subnet(c_in: int, c_out: int) -> nn.Module:
            return MLPConditioner(c_in, c_out, hidden, layers)

        self.inn = Ff.SequenceINN(dim)
        for _ in range(blocks):
            self.inn.append(Fm.AllInOneBlock, subnet_constructor=subnet, affine_clamping=clamp,
                            permute_soft=False)
        self.dim = dim

    def log_prob(self, x: Tensor) -> Tensor:
        z, log_jac_det = self.inn(x)
        return -0.5 * z.pow(2).sum(1) - 0.5 * self.dim * math.log(2 * math.pi) + log_jac_det


class USFlowsLibrary(nn.Module):
    """The paper's own implementation, ``USFlow`` of the USFlows library (github.com/aai-institute/USFlows,
    ``src/usflows/flows.py``), as its experiment configurations build it: ``blocks`` additive couplings,
    each conjugated by one LU map (``affine_conjugation=True``, no Householder map), a last LU map and a
    scale, pyro's ``DenseNN`` conditioner (``layers`` ReLU layers of width ``hidden``) and a standard
    normal base.  Needs a checkout of the library on ``sys.path`` and ``pyro-ppl`` (neither is a
    dependency of this project)."""

    def __init__(self, dim: int, blocks: int, hidden: int, layers: int):
        super().__init__()
        from pyro import distributions as dist
        from pyro.nn import DenseNN
        from src.usflows.flows import USFlow as LibraryUSFlow

        base = dist.Normal(torch.zeros(dim), torch.ones(dim)).to_event(1)
        self.flow = LibraryUSFlow(base, [dim], coupling_blocks=blocks, conditioner_cls=DenseNN,
                                  conditioner_args=dict(input_dim=dim, hidden_dims=[hidden] * layers,
                                                        param_dims=[dim]),
                                  prior_scale=1.0, lu_transform=1, householder=0, affine_conjugation=True)

    def log_prob(self, x: Tensor) -> Tensor:
        return self.flow.log_prob(x)


def build_models(dim: int, blocks: int, hidden: int, layers: int, seed: int = 0,
                 usflows: bool = False) -> dict[str, nn.Module]:
    """The models, each with a ``log_prob(x)`` method, seeded identically (``usflows``: add the
    USFlows library's USFlow)."""
    makers = [("USFlow", lambda: USFlow(dim, blocks=blocks, hidden=hidden, layers=layers)),
              ("NonUSFlow", lambda: NonUSFlow(dim, blocks=blocks, hidden=hidden, layers=layers)),
              ("FrEIA AllInOne", lambda: FrEIAFlow(dim, blocks, hidden, layers))]
    if usflows:
        makers.append(("USFlows library", lambda: USFlowsLibrary(dim, blocks, hidden, layers)))
    models = {}
    for name, make in makers:
        torch.manual_seed(seed)
        models[name] = make()
    return models


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# --------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def nll(model: nn.Module, compile: bool = False):
    """The training loss ``x -> -model.log_prob(x).mean()``; ``compile``: through ``torch.compile``
    (compiled at its first call, which falls in the untimed warm-up)."""
    def loss(x: Tensor) -> Tensor:
        return -model.log_prob(x).mean()
    return torch.compile(loss) if compile else loss


def time_training(model: nn.Module, optimizer: torch.optim.Optimizer, batches: Tensor, warmup: int,
                  loss_fn) -> float:
    """Adam steps per second over ``batches[warmup:]`` (the first ``warmup`` are untimed) with the
    training loss ``loss_fn`` (:func:`nll` of the model, compiled or not)."""
    model.train()

    def step(x: Tensor) -> None:
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(x)
        loss.backward()
        optimizer.step()

    for x in batches[:warmup]:
        step(x)
    _sync(batches.device)
    t0 = time.perf_counter()
    for x in batches[warmup:]:
        step(x)
    _sync(batches.device)
    return (len(batches) - warmup) / (time.perf_counter() - t0)


def time_inference(model: nn.Module, x: Tensor, iters: int) -> float:
    """``log_prob`` samples per second at batch ``len(x)`` (one untimed call first)."""
    model.eval()
    with torch.inference_mode():
        model.log_prob(x)
        _sync(x.device)
        t0 = time.perf_counter()
        for _ in range(iters):
            model.log_prob(x)
        _sync(x.device)
        return iters * len(x) / (time.perf_counter() - t0)


def benchmark(dim: int = 32, blocks: int = 4, hidden: int = 256, layers: int = 4, batch: int = 64,
              steps: int = 200, warmup: int = 20, infer_batch: int = 1024, infer_iters: int = 20,
              repeats: int = 3, lr: float = 1e-3, device: str | torch.device = "cpu",
              seed: int = 0, usflows: bool = False, compile: bool = False) -> list[dict]:
    """Time every model; one row per model with the medians and every repeat.  Every model trains
    with the optimizer usfkit trains with (``usfkit.train.adam``: fused Adam), so the numbers compare
    the flows, not their optimizers.  ``compile``: every model's training loss goes through
    ``torch.compile`` alike (inference stays eager)."""
    device = torch.device(device)
    data = AsymmetricGaussianMixture(dim).sample(max(8192, infer_batch), seed=seed)[0].float().to(device)
    g = torch.Generator().manual_seed(seed + 1)
    batches = data[torch.randint(len(data), (warmup + steps, batch), generator=g)]  # same for every model
    infer_x = data[:infer_batch]

    models = {k: m.to(device) for k, m in build_models(dim, blocks, hidden, layers, seed, usflows).items()}
    opts = {k: adam(m.parameters(), lr=lr) for k, m in models.items()}
    losses = {k: nll(m, compile) for k, m in models.items()}
    train = {k: [] for k in models}
    infer = {k: [] for k in models}
    for _ in range(repeats):
        for name, model in models.items():
            train[name].append(time_training(model, opts[name], batches, warmup, losses[name]))
            infer[name].append(time_inference(model, infer_x, infer_iters))
    return [{"model": name, "params": n_params(model),
             "train_steps_per_s": statistics.median(train[name]),
             "infer_samples_per_s": statistics.median(infer[name]),
             "train_repeats": train[name], "infer_repeats": infer[name]}
            for name, model in models.items()]


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--dim", type=int, default=32, help="data dimension d")
    p.add_argument("--blocks", type=int, default=4, help="coupling blocks")
    p.add_argument("--hidden", type=int, default=256, help="hidden width of every conditioner")
    p.add_argument("--layers", type=int, default=4, help="hidden layers of every conditioner")
    p.add_argument("--batch", type=int, default=64, help="training batch size")
    p.add_argument("--steps", type=int, default=200, help="timed training steps per repeat")
    p.add_argument("--warmup", type=int, default=20, help="untimed training steps per repeat")
    p.add_argument("--infer-batch", type=int, default=1024, help="inference batch size")
    p.add_argument("--infer-iters", type=int, default=20, help="timed inference batches per repeat")
    p.add_argument("--repeats", type=int, default=5, help="repeats of each timing (median reported)")
    p.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:1, ...")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads; None = torch's choice")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write the results here")
    p.add_argument("--usflows", type=Path, default=None, metavar="PATH",
                   help="a checkout of github.com/aai-institute/USFlows (with pyro-ppl importable): adds its USFlow")
    p.add_argument("--compile", action="store_true",
                   help="train every model with its loss compiled by torch.compile (inference stays eager)")
    args = p.parse_args(argv)
    if args.usflows is not None:
        import sys
        sys.path.insert(0, str(args.usflows.resolve()))

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                          else "cpu" if args.device == "auto" else args.device)
    started = time.time()
    load_before = os.getloadavg()[0]
    rows = benchmark(args.dim, args.blocks, args.hidden, args.layers, args.batch, args.steps, args.warmup,
                     args.infer_batch, args.infer_iters, args.repeats, device=device, seed=args.seed,
                     usflows=args.usflows is not None, compile=args.compile)

    print(f"d={args.dim} blocks={args.blocks} hidden={args.hidden} layers={args.layers} "
          f"batch={args.batch} infer_batch={args.infer_batch} | {results.device_description()} | "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads | median of {args.repeats}"
          + (" | training loss compiled" if args.compile else ""))
    print(f"{'model':<18}{'params':>10}  {'train steps/s (min-max)':>24}  {'infer samples/s (min-max)':>30}")
    for r in rows:
        tr, inf = r["train_repeats"], r["infer_repeats"]
        print(f"{r['model']:<18}{r['params']:>10,}  {r['train_steps_per_s']:>7.1f} ({min(tr):>6.1f}-{max(tr):<6.1f})"
              f"   {r['infer_samples_per_s']:>9,.0f} ({min(inf):>8,.0f}-{max(inf):<8,.0f})")
    print(f"min-max: spread over repeats (wide = machine busy); 1-min load average before/after: "
          f"{load_before:.1f}/{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")

    if args.json is not None:
        from importlib.metadata import version
        prov = {**results.provenance("benchmark", seeds=args.seed, started=started), "freia": version("FrEIA"),
                "threads": torch.get_num_threads(), "date": dt.datetime.fromtimestamp(started).isoformat(),
                "load_avg_1min_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)]}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"config": {k: (str(v) if isinstance(v, Path) else v)
                                                    for k, v in vars(args).items()},
                                         "provenance": prov, "results": rows}, indent=2) + "\n")
        print(f"wrote {args.json}")
    return rows


if __name__ == "__main__":
    main()
