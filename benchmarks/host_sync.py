"""Host synchronisations per training step of every model usfkit trains, and the step time.

    python benchmarks/host_sync.py                              # today's code, writes host_sync.json
    python benchmarks/host_sync.py --before /tmp/hs_before      # also a checkout of older code, side by side
    python benchmarks/host_sync.py --before /tmp/hs_before --no-count --epochs 3 --batches 30 \
        --out benchmarks/host_sync_times.json                   # step times only, over more steps

On a GPU, every operation that hands a device value to Python (``.item()``, ``float(t)``, ``bool(t)``, an
``if`` on a tensor, ``.cpu()``) and every operation whose output size depends on the data (boolean-mask
indexing: ``nonzero``) waits until the queue of launched kernels has run: the host stops queuing work.  On a CPU
nothing waits, but the same aten operations run, so they can be counted here.  :func:`count_syncs` counts, inside
each training step of :func:`usfkit.train.fit` (Lightning's loop, the module's ``training_step``, the optimizer
step and the callbacks ``fit`` attaches), the operations in :data:`SYNC_OPS` and every copy between devices, and
names the line of usfkit (or Lightning) that asked for each.

Reads inside torch's CPU kernel of the fused Adam (one per parameter tensor: its step counter, a CPU tensor) are
listed apart (``cpu_kernel_only_per_step``) and not counted: on a GPU the counters live on the device and the CUDA
kernel reads them there.  DOHSC and DO2HSC keep one sync per step that is theirs, not usfkit's: the orthogonal
projection is an eigendecomposition of every batch, and ``torch.linalg.eigh`` checks its result on the host.

A "step" runs from one ``on_train_batch_start`` to the next; the first and the last batch of an epoch are left
out (they carry the loop's start and the epoch's end: logging, early stopping, validation), so the count is the
cost of each of the other steps.  Models: chapter 05's seven tabular methods at the full profile's shape
(d = 36, 4 blocks, conditioners 4 x 256, batch 64, on constructed Gaussian data) and the three image heads
(FastFlow, CFlow, U-Flow) on small constructed feature maps, each with the affine coupling (anomalib's
baseline) and the full USF (additive_lu).  On a CPU-only run no copy crosses devices, so copies from the host
show only on a GPU; tests/test_host_sync.py finds them by running every loss on the ``meta`` device.  The step
time is measured in a second run without counting (median of the middle steps, one torch thread), and the
first eight step losses are kept as exact hexadecimal floats, so that ``before`` and ``after`` can be compared
bit for bit.

``--before DIR`` runs the same measurement in a child process on the usfkit found in ``DIR`` (e.g. a
``git worktree add /tmp/hs_before <commit>``) and writes both.
"""
from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: aten operations that make the host wait for a GPU: a value read back (every ``item``, ``float(t)``,
#: ``bool(t)``, ``is_nonzero`` ends in ``_local_scalar_dense``), or an output whose size depends on the data.
SYNC_OPS = ("_local_scalar_dense", "nonzero", "masked_select", "unique", "_unique", "_unique2", "unique_consecutive",
            "unique_dim")


def _where() -> str:
    """The innermost frame of usfkit, else of Lightning, that led to the current operation."""
    frames = traceback.extract_stack()[:-3]
    for part in ("usfkit", "lightning"):
        for fr in reversed(frames):
            if f"/{part}/" in fr.filename:
                return f"{fr.filename.split(f'/{part}/')[-1]}:{fr.lineno} ({part})"
    return "?"


def count_syncs(run) -> dict:
    """Run ``run(callback)`` (a training that passes ``callback`` to ``fit``) under torch's profiler and count
    the :data:`SYNC_OPS` in the middle steps of every epoch, nested ones included (a check inside a kernel, such
    as ``linalg.eigh``'s, counts too); a dispatch mode adds every copy between two devices and names the line of
    usfkit (or Lightning) that asked for each sync.  Returns the counts by operation (with the outermost aten
    operation it ran in) and by place, and the number of steps counted."""
    import torch
    from lightning.pytorch.callbacks import Callback
    from torch.profiler import ProfilerActivity, profile, record_function
    from torch.utils._python_dispatch import TorchDispatchMode

    state = {"window": None, "steps": 0}
    places: collections.Counter = collections.Counter()
    copies: collections.Counter = collections.Counter()

    class Window(Callback):
        """Opens a profiler range at each middle batch's start and closes it at the next batch's start."""

        def close(self, *_):
            if state["window"] is not None:
                state["window"].__exit__(None, None, None)
                state["window"] = None

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            self.close()
            if 0 < batch_idx < trainer.num_training_batches - 1:
                state["window"] = record_function(STEP)
                state["window"].__enter__()
                state["steps"] += 1

        on_train_epoch_end = on_train_end = on_exception = close

    class Places(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            name = func.overloadpacket.__name__
            if state["window"] is not None:
                devices = {a.device.type for a in args if isinstance(a, torch.Tensor)}
                if kwargs.get("device") is not None:
                    devices.add(torch.device(kwargs["device"]).type)
                if name in ("_to_copy", "copy_") and len(devices) > 1:
                    copies[name] += 1
                    places[f"{name} ({'/'.join(sorted(devices))}) at {_where()}"] += 1
                elif name in SYNC_OPS:
                    places[f"{name} at {_where()}"] += 1
            return func(*args, **kwargs)

    with profile(activities=[ProfilerActivity.CPU]) as prof, Places():
        run(Window())
    events = prof.events()
    windows = [(e.time_range.start, e.time_range.end) for e in events if e.name == STEP]
    by_op: collections.Counter = collections.Counter()
    cpu_only: collections.Counter = collections.Counter()
    seen = set()
    for e in events:
        name = e.name.removeprefix("aten::")
        if name not in SYNC_OPS or not any(a <= e.time_range.start <= b for a, b in windows):
            continue
        chain, p = [], e  # e and its enclosing events, innermost first (Lightning runs the loss inside the
        while p is not None and p.name != STEP:  # optimizer's step, as its closure)
            chain.append(p)
            p = p.cpu_parent
        top = [a for a in chain if a.name.startswith("aten::")][-1]  # the outermost aten operation
        key = name if top is e else f"{name} in {top.name}"
        # torch's CPU kernel of the fused Adam reads each parameter's step counter, a CPU tensor; on a GPU the
        # counters live on the device and the CUDA kernel reads them there: no sync
        if any("_fused_adam" in a.name for a in chain):
            cpu_only[key] += 1
        elif (top.id, name) not in seen:  # once per outermost operation: the dispatch mode records a read twice
            seen.add((top.id, name))
            by_op[key] += 1
    by_op.update(copies)
    return {"by_op": dict(by_op), "cpu_only": dict(cpu_only), "places": dict(places), "steps": state["steps"]}


STEP = "usfkit-training-step"


def step_seconds(run, n_losses: int = 8) -> tuple[float, list[str]]:
    """Median wall time of a middle training step (nothing counted), and the first ``n_losses`` step losses
    of the run as exact hexadecimal floats (read after the run, so reading them adds no sync to a step)."""
    from lightning.pytorch.callbacks import Callback

    marks, losses = [], []

    class Clock(Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            marks.append((trainer.current_epoch, batch_idx, time.perf_counter()))

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            loss = outputs["loss"] if isinstance(outputs, dict) else outputs
            if len(losses) < n_losses:
                losses.append(loss.detach().clone())

    run(Clock())
    gaps = [b[2] - a[2] for a, b in zip(marks, marks[1:]) if a[0] == b[0] and a[1] > 0]
    return statistics.median(gaps), [float(v).hex() for v in losses]


def runners(epochs: int, batches: int) -> dict:
    """``name -> run(callback)``: one short training of each model, ``callback`` added to every ``fit``."""
    import torch
    from torch.utils.data import TensorDataset

    from usfkit import profiles, train
    from usfkit.models import dohsc, flows_lightning, oneclass, oneflow, vae
    from usfkit.experiments import tabular
    from usfkit.models.heads.cflow import CflowHead, CflowModule
    from usfkit.models.heads.fastflow import FastflowHead, FastflowModule
    from usfkit.models.heads.uflow import UflowHead, UflowModule

    @contextlib.contextmanager
    def extra_callback(cb):
        real = train.fit

        def fit(module, *args, **kwargs):
            kwargs["callbacks"] = [*(kwargs.get("callbacks") or []), cb]
            return real(module, *args, **kwargs)

        mods = [train, flows_lightning, oneclass, vae, oneflow, dohsc]
        saved = [m.fit for m in mods]
        for m in mods:
            m.fit = fit
        try:
            yield
        finally:
            for m, f in zip(mods, saved):
                m.fit = f

    cfg = profiles.resolve("05_tabular_benchmark", "full", epochs=epochs, patience=epochs + 1,
                           dohsc_pretrain_epochs=1)
    x = torch.randn(batches * cfg.batch_size, 36, generator=torch.Generator().manual_seed(0))
    out = {}
    for method in tabular.METHODS:
        def run(cb, method=method):
            with extra_callback(cb):
                tabular.build_and_train(method, x, cfg, seed=1, progress="none")
        out[f"{method} (d=36, batch 64)"] = run

    g = torch.Generator().manual_seed(0)
    shapes = [(16, 8, 8), (32, 4, 4), (64, 2, 2)]
    feats = TensorDataset(*[torch.randn(batches * 4, *s, generator=g) for s in shapes])
    heads = {"FastFlow": (FastflowHead, FastflowModule, {"blocks": 4}),
             "CFlow": (CflowHead, CflowModule, {"blocks": 4, "condition_dim": 16}),
             "U-Flow": (UflowHead, UflowModule, {"blocks": 2})}
    for name, (head_cls, module_cls, kw) in heads.items():
        for coupling in ("affine", "additive_lu"):
            def run(cb, head_cls=head_cls, module_cls=module_cls, kw=kw, coupling=coupling):
                torch.manual_seed(0)
                module = module_cls(head_cls(shapes, coupling, **kw), lr=1e-4)
                train.fit(module, feats, max_epochs=epochs, batch_size=4, patience=epochs + 1, progress="none",
                          callbacks=[cb], accelerator="cpu")
            out[f"{name} head, {coupling} (features {shapes}, batch 4)"] = run
    return out


def measure(epochs: int, batches: int, count: bool = True) -> dict:
    import torch

    import usfkit
    torch.set_num_threads(1)
    rows = {}
    for name, run in runners(epochs, batches).items():
        rows[name] = {}
        if count:
            counted = count_syncs(run)
            n_steps = counted["steps"]
            by_op = {k: v / n_steps for k, v in counted["by_op"].items()}
            rows[name] = {"steps_counted": n_steps, "syncs_per_step": sum(by_op.values()), "by_op_per_step": by_op,
                          "cpu_kernel_only_per_step": {k: v / n_steps for k, v in counted["cpu_only"].items()},
                          "places_per_step": {k: v / n_steps for k, v in counted["places"].items()}}
        rows[name]["step_s"], rows[name]["first_losses"] = step_seconds(run)
        print(f"{name:60s} {rows[name].get('syncs_per_step', float('nan')):5.1f} syncs/step  "
              f"{1e3 * rows[name]['step_s']:6.2f} ms/step", flush=True)
    return {"usfkit": str(Path(usfkit.__file__).parent), "rows": rows}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batches", type=int, default=12, help="batches per epoch (default 12)")
    p.add_argument("--before", help="a checkout of older code to measure as well (e.g. a git worktree)")
    p.add_argument("--no-count", action="store_true", help="only the step times (no profiler pass)")
    p.add_argument("--code", help=argparse.SUPPRESS)  # the child: import usfkit from here
    p.add_argument("--child-out", help=argparse.SUPPRESS)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "host_sync.json"))
    args = p.parse_args()
    sys.path.insert(0, args.code or str(ROOT))
    if args.child_out:
        Path(args.child_out).write_text(json.dumps(measure(args.epochs, args.batches, not args.no_count)))
        return
    start = time.time()
    before = None
    if args.before:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "before.json"
            subprocess.run([sys.executable, __file__, "--code", args.before, "--child-out", str(out),
                            "--epochs", str(args.epochs), "--batches", str(args.batches)]
                           + ["--no-count"] * args.no_count, check=True,
                           env={**os.environ, "OMP_NUM_THREADS": "1"})
            before = json.loads(out.read_text())
            commit = subprocess.run(["git", "-C", args.before, "rev-parse", "--short", "HEAD"], capture_output=True,
                                    text=True).stdout.strip()
            before["commit"] = commit
    after = measure(args.epochs, args.batches, not args.no_count)
    from usfkit import results
    payload = {"what": "host synchronisations (and cross-device copies) per middle training step of usfkit.train.fit, "
                       "and the median step time; CPU, one torch thread",
               "epochs": args.epochs, "batches_per_epoch": args.batches, "sync_ops": list(SYNC_OPS),
               "before": before, "after": after,
               "provenance": results.provenance("full", seeds=[1], started=start)}
    with open(args.out, "w") as f:
        json.dump(payload, f, indent=1)


if __name__ == "__main__":
    main()
