"""A dry run of paper §5.2 at the paper's sizes, and the GPU plan it gives.

§5.2 trains 3 architectures x 3 couplings x 3 seeds on every class of MVTec AD (15) and VisA (12),
plus the §5.2.3 ablations, on ImageNet backbones at 256 px (U-Flow: 448 px).  This machine has no
GPU and no ImageNet weights, so instead of training we *measure* each distinct configuration once
with random backbone weights (which change no shape, FLOP or byte):

* :func:`configurations` lists the distinct configurations of the full profile -- (experiment,
  architecture, backbone, image size, coupling, log-det prior) -- with how many runs of the full
  profile each stands for, per dataset (classes counted from ``usfkit.data.MVTEC_CLASSES`` /
  ``VISA_CLASSES``, not from the disk);
* :func:`measure` builds one (``build_model(..., pretrained=False)``), runs the backbone on random
  images at the paper's input size, then one training step of the head (its loss, backward and
  Adam step, exactly the Lightning module's ``training_step``: for CFlow that is its loop over
  fiber batches) on a batch of 32 and one evaluation batch (``anomaly_map`` + ``image_score``);
* :func:`run_dry_run` does that for every configuration and writes the results, one configuration
  at a time (a finished one is not redone), to ``results/full/07_image_benchmarks/dry_run.json``;
* :func:`~usfkit.gpuplan.plan_table` / :func:`~usfkit.gpuplan.plan_text` turn the FLOPs into GPU-hours
  for §5.2 and per table, and :func:`~usfkit.gpuplan.gpu_fraction` /
  :func:`~usfkit.gpuplan.tabular_gpu_fraction` the measured memory into the share of one GPU a run needs
  (for Ray's fractional ``num_gpus``).

What is measured, and how:

* **FLOPs** with ``torch.utils.flop_counter.FlopCounterMode`` (matrix products and convolutions,
  forward and backward, plus the LU blocks' triangular solves; elementwise operations are not
  counted), per image: the backbone forward
  (paid once per image when features are cached), the head's training step, the head's evaluation.
* **Peak memory** of each phase: the largest number of bytes held at once by live tensor storages,
  followed op by op by a ``TorchDispatchMode`` (:class:`LiveBytes`) that starts from what already
  exists (backbone or head parameters, gradients, Adam state, the batch of features) and adds every
  tensor an operation creates until it is freed (autograd's saved tensors included).  On a GPU the
  caching allocator, cuDNN/cuBLAS workspaces and the CUDA context come on top;
  :func:`~usfkit.gpuplan.gpu_fraction` adds a stated allowance for them.  The backbone is run on ``backbone_batch`` images (MS-CaiT at
  448 px costs ~10^12 FLOPs an image); its activations are scaled linearly to a batch of 32.
* **Time** of each phase on this CPU (one torch thread), a separate uninstrumented pass (the backbone:
  its instrumented pass, a few large operations whose counting costs little): wall seconds and
  CPU seconds of the process (on this shared 2-core machine the CPU seconds are the cost; the wall
  seconds include waiting for a core).
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import math
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.flop_counter import FlopCounterMode

from .. import profiles, results
from ..gpuplan import IMAGE_COUNTS, default_path
from ..data import MVTEC_CLASSES, VISA_CLASSES
from ..rng import seeded
from ..image import ARCHITECTURES, build_model, count_parameters

__all__ = ["CHAPTER", "DATASET_CLASSES", "TABULAR_DATASET", "configurations", "LiveBytes", "FLOP_RULES",
           "measure_backbone", "measure", "measure_tabular", "cpu_matmul_rate", "run_dry_run"]

CHAPTER = "07_image_benchmarks"
DATASET_CLASSES = {"mvtec": MVTEC_CLASSES, "visa": VISA_CLASSES}

TABULAR_DATASET = "17_InternetAds"  # the widest ADBench classical set (1,555 features)


# --------------------------------------------------------------------------
# the configurations
# --------------------------------------------------------------------------
def configurations(cfg=None) -> list[dict]:
    """The distinct configurations of chapter 07's full profile (``cfg``: its settings, default
    ``profiles.of("07_image_benchmarks", "full")``).  Each is a dict with ``key``, ``experiment``,
    ``arch``, ``backbone`` (resolved), ``image_size``, ``coupling``, ``prior_sigma``, ``seeds``,
    ``classes`` and ``runs`` per dataset (classes x seeds): the full profile's spec grid with every
    class of ``MVTEC_CLASSES`` / ``VISA_CLASSES`` (only MVTec AD bottle is on disk here)."""
    from . import images
    cfg = cfg or profiles.of(CHAPTER, "full")
    specs = images.profile_specs(cfg, every_class=True)
    out: dict[str, dict] = {}
    for spec in specs:
        backbone = spec["backbone"] or ARCHITECTURES[spec["head"]]["backbone"]
        key = "_".join(str(x) for x in (spec["experiment"], spec["head"], backbone, f"{spec['image_size']}px",
                                         spec["coupling"]) + ((f"prior{spec['prior_sigma']}",)
                                                              if spec["prior_sigma"] is not None else ()))
        c = out.setdefault(key, dict(key=key, experiment=spec["experiment"], arch=spec["head"], backbone=backbone,
                                     image_size=spec["image_size"], coupling=spec["coupling"],
                                     prior_sigma=spec["prior_sigma"], seeds=[], classes={}, runs={}))
        c["classes"].setdefault(spec["dataset"], [])
        if spec["class"] not in c["classes"][spec["dataset"]]:
            c["classes"][spec["dataset"]].append(spec["class"])
        if spec["seed"] not in c["seeds"]:
            c["seeds"].append(spec["seed"])
        c["runs"][spec["dataset"]] = c["runs"].get(spec["dataset"], 0) + 1
    return list(out.values())


# --------------------------------------------------------------------------
# measuring one
# --------------------------------------------------------------------------
class LiveBytes(TorchDispatchMode):
    """Peak bytes held by live tensor storages while the mode is active: starts from the
    storages of ``existing`` (tensors, modules, optimisers), adds the storage of every tensor an
    operation returns, and drops storages once freed (checked at every operation)."""

    def __init__(self, *existing):
        super().__init__()
        self.live: dict[int, tuple[StorageWeakRef, int]] = {}
        self.now = 0
        for obj in existing:
            for t in _tensors(obj):
                self._add(t)
        self.start = self.peak = self.now

    def _add(self, t: torch.Tensor) -> None:
        if t.device.type == "meta":
            return
        s = t.untyped_storage()
        key = s.data_ptr()
        if key in self.live and not self.live[key][0].expired():
            return
        if key in self.live:
            self.now -= self.live.pop(key)[1]
        self.live[key] = (StorageWeakRef(s), s.nbytes())
        self.now += s.nbytes()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for key in [k for k, (ref, _) in self.live.items() if ref.expired()]:
            self.now -= self.live.pop(key)[1]
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor):
                self._add(t)
        self.peak = max(self.peak, self.now)
        return out


def _tensors(obj) -> list[torch.Tensor]:
    if isinstance(obj, torch.nn.Module):
        return [*obj.parameters(), *obj.buffers(), *(p.grad for p in obj.parameters() if p.grad is not None)]
    if isinstance(obj, torch.optim.Optimizer):
        return [t for state in obj.state.values() for t in state.values() if isinstance(t, torch.Tensor)]
    return [t for t in tree_leaves(obj) if isinstance(t, torch.Tensor)]


def _optimizer(module) -> torch.optim.Optimizer:
    opt = module.configure_optimizers()
    if isinstance(opt, dict):
        opt = opt["optimizer"]
    return opt[0] if isinstance(opt, (list, tuple)) else opt


def _training_step(module, opt, batch) -> None:
    """One optimiser step of the head's Lightning module on ``batch`` (its own ``training_step``,
    outside a Trainer: logging does nothing, ``optimizers()`` is ``opt``)."""
    out = module.training_step(batch, 0)
    if module.automatic_optimization:
        opt.zero_grad()
        out.backward()
        opt.step()


def _triangular_solve_flops(a_shape, b_shape, *args, out_shape=None, **kwargs) -> int:
    """A triangular solve with a ``c x c`` matrix costs ``c^2`` FLOPs per right-hand side
    (the LU blocks' inverses, ``A^{-1}``); FlopCounterMode does not count it by itself."""
    return a_shape[-1] * math.prod(b_shape)


FLOP_RULES = {torch.ops.aten.linalg_solve_triangular.default: _triangular_solve_flops}


def _phase(fn, *existing, repeat_timing: bool = True) -> dict:
    """FLOPs and peak bytes of ``fn()`` (one instrumented call), then its wall time (another call)."""
    mem = LiveBytes(*existing)
    with mem, FlopCounterMode(display=False, custom_mapping=FLOP_RULES) as flops:
        fn()
    out = {"flops": int(flops.get_total_flops()), "peak_bytes": int(mem.peak), "start_bytes": int(mem.start)}
    if repeat_timing:
        out.update(_timed(fn))
    return out


def _timed(fn) -> dict:
    """Wall and CPU seconds of ``fn()`` (this process, one thread: on a shared machine the CPU
    seconds are the cost, the wall seconds include waiting for a core)."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return {"wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu}


def measure_backbone(backbone, image_size: int, batch_size: int = 32, backbone_batch: int = 2,
                     seed: int = 0) -> tuple[dict, list[torch.Tensor]]:
    """The frozen backbone on ``backbone_batch`` random images: FLOPs per image, parameters,
    peak bytes at ``batch_size`` (activations scaled linearly), wall time per image; and the
    features repeated to ``batch_size`` (for the head's step)."""
    with seeded(seed):
        images = torch.randn(backbone_batch, 3, image_size, image_size)
    feats: list = []
    wall, cpu = time.perf_counter(), time.process_time()  # timed with the instrumentation: a few large operations
    ph = _phase(lambda: feats.append(backbone(images)), backbone, images, repeat_timing=False)
    ph.update(wall_s=time.perf_counter() - wall, cpu_s=time.process_time() - cpu)
    per_batch = ph["start_bytes"] - images.nelement() * images.element_size()
    activations = ph["peak_bytes"] - ph["start_bytes"]
    out = {"params": count_parameters(backbone, trainable_only=False),
           "flops_per_image": ph["flops"] / backbone_batch,
           "peak_bytes_batch": int(per_batch + activations * batch_size / backbone_batch
                                   + images[0].nelement() * images.element_size() * batch_size),
           "wall_s_per_image": ph["wall_s"] / backbone_batch, "cpu_s_per_image": ph["cpu_s"] / backbone_batch,
           "measured_on_images": backbone_batch}
    reps = math.ceil(batch_size / backbone_batch)
    batch = [f.repeat(reps, 1, 1, 1)[:batch_size].contiguous() for f in feats[0]]
    out["feature_shapes"] = [list(f.shape[1:]) for f in batch]
    out["feature_bytes_per_image"] = sum(f[0].nelement() * f.element_size() for f in batch)
    return out, batch


def measure(config: dict, batch_size: int = 32, backbone_batch: int = 2, seed: int = 0,
            _backbones: dict | None = None) -> dict:
    """Build ``config`` (see :func:`configurations`) with random backbone weights and measure its
    backbone pass, one training step on a batch of ``batch_size`` and one evaluation batch.
    ``_backbones`` caches backbone measurements across configurations sharing a backbone."""
    arch, size = config["arch"], config["image_size"]
    kwargs = dict(backbone=config["backbone"], pretrained=False, image_size=size)
    if config.get("prior_sigma") is not None:  # App. B.2's prior, weighted by 1 / n_train (bottle's count)
        kwargs.update(prior_sigma=config["prior_sigma"], n_train=IMAGE_COUNTS["mvtec"]["bottle"][0])
    with seeded(seed):
        model = build_model(arch, coupling=config["coupling"], **kwargs)
    bb_key = f"{model.backbone.name}-{'+'.join(getattr(model.backbone, 'layers', ()) or ())}-{size}px"
    cache = {} if _backbones is None else _backbones
    if bb_key not in cache:
        cache[bb_key] = measure_backbone(model.backbone, size, batch_size, backbone_batch, seed)
    bb, batch = cache[bb_key]
    del model.backbone  # the head trains on cached features: the backbone is not in memory then
    head = model.head
    module = model.lightning_module()
    opt = _optimizer(module)
    module.log = module.log_epoch_means = lambda *a, **k: None  # logging only: there is no Trainer here
    module.optimizers = lambda *a, **k: opt
    module.manual_backward = lambda loss, *a, **k: loss.backward()
    head.train()
    with seeded(seed):
        train = _phase(lambda: _training_step(module, opt, batch), head, opt, batch, repeat_timing=False)
        # timed: the second step (Adam state exists, as in training)
        train.update(_timed(lambda: _training_step(module, opt, batch)))
    head.eval()
    for p in head.parameters():
        p.grad = None

    def evaluate():
        with torch.no_grad():
            head.image_score(head.anomaly_map(batch, (size, size)))
    ev = _phase(evaluate, head, batch)
    n_head = count_parameters(head, trainable_only=True)
    return {"ok": True, "failure": None, "backbone_key": bb_key, "head_params": n_head,
            "backbone_params": bb["params"], "feature_shapes": bb["feature_shapes"], "batch_size": batch_size,
            "flops_per_image": {"backbone": bb["flops_per_image"], "train_step": train["flops"] / batch_size,
                                "eval": ev["flops"] / batch_size},
            "peak_bytes": {"backbone_batch": bb["peak_bytes_batch"], "train_step": train["peak_bytes"],
                           "eval": ev["peak_bytes"]},
            "wall_s": {"backbone_per_image": bb["wall_s_per_image"], "train_step": train["wall_s"],
                       "eval_batch": ev["wall_s"]},
            "cpu_s": {"backbone_per_image": bb["cpu_s_per_image"], "train_step": train["cpu_s"],
                      "eval_batch": ev["cpu_s"]},
            "feature_bytes_per_image": bb["feature_bytes_per_image"],
            "backbone_measured_on_images": bb["measured_on_images"]}


def measure_tabular(dataset: str = TABULAR_DATASET, seed: int = 0) -> dict:
    """Chapter 05's USFlow (full-profile settings) at ``dataset``'s input dimension: parameters,
    FLOPs and peak bytes of one training step at its batch size (64)."""
    from ..data import adbench
    from ..models.flows import build_flow
    from ..train import adam
    cfg = profiles.of("05_tabular_benchmark", "full")
    dim = int(adbench.load(dataset, download=False)[0].shape[1])
    model = build_flow(dim, coupling="additive_lu", blocks=cfg.blocks, hidden=cfg.hidden, layers=cfg.layers,
                       clamp=cfg.clamp, prior_sigma=cfg.prior_sigma, seed=seed)
    opt = adam(model.parameters(), cfg.lr)
    with seeded(seed):
        x = torch.randn(cfg.batch_size, dim)

    def step():
        loss = -model.log_prob(x).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    ph = _phase(step, model, opt, x)
    return {"dataset": dataset, "dim": dim, "method": "USFlow", "params": count_parameters(model),
            "batch_size": cfg.batch_size, "flops_train_step": ph["flops"], "peak_bytes": ph["peak_bytes"],
            "wall_s_train_step": ph["wall_s"], "cpu_s_train_step": ph["cpu_s"]}


def cpu_matmul_rate(n: int = 1024, repeats: int = 5) -> float:
    """FLOP/s of a large FP32 matrix product on this CPU (the best of ``repeats``, CPU seconds):
    the yardstick for how well the heads' kernels use this machine."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    best = min(_timed(lambda: a @ b)["cpu_s"] for _ in range(repeats))
    return 2 * n ** 3 / best


# --------------------------------------------------------------------------
# the whole dry run
# --------------------------------------------------------------------------
@contextlib.contextmanager
def _locked(path: Path):
    """An exclusive lock on ``path`` (a file in the temporary folder, named by its path), so that several
    processes of one machine (e.g. one per architecture) can add their configurations to the same file:
    read, add, write under the lock."""
    name = hashlib.sha1(str(Path(path).resolve()).encode()).hexdigest()[:16]
    with open(Path(tempfile.gettempdir()) / f"usfkit-dryrun-{name}.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _update(path: Path, change) -> dict:
    """Apply ``change(data)`` to the JSON file at ``path`` under the lock; returns the new content."""
    with _locked(path):
        data = json.loads(path.read_text()) if path.exists() else {}
        data.setdefault("configurations", {})
        change(data)
        results.write_atomic(path, json.dumps(data, indent=1))
    return data


def run_dry_run(out: Path | None = None, *, archs=None, couplings=None, experiments=None, batch_size: int = 32,
                progress: bool = True, image_size: int | None = None, backbone_batch: int = 2,
                tabular: bool = True, retry_failed: bool = True) -> dict:
    """Measure every configuration of :func:`configurations` (filtered by ``archs``, ``couplings``,
    ``experiments``) not yet in ``out`` (default ``results/full/07_image_benchmarks/dry_run.json``),
    writing the file after each one; returns its content.  A configuration that raises is recorded
    with ``ok=False`` and the reason, and measured again by the next call (``retry_failed``).
    ``image_size`` replaces the paper's sizes (tests only: such a file is not the paper's dry run and
    says so).  Several processes may fill one file at once (e.g. one per architecture)."""
    out = Path(out) if out is not None else default_path()
    out.parent.mkdir(parents=True, exist_ok=True)
    start = time.time()
    torch.set_num_threads(1)
    data = _update(out, lambda d: d.update(batch_size=batch_size, image_size_override=image_size))
    if "cpu_matmul_flops" not in data:
        rate = cpu_matmul_rate()
        _update(out, lambda d: d.setdefault("cpu_matmul_flops", rate))
    todo = [c for c in configurations()
            if (archs is None or c["arch"] in archs) and (couplings is None or c["coupling"] in couplings)
            and (experiments is None or c["experiment"] in experiments)]
    backbones: dict = {}
    for i, config in enumerate(todo):
        if image_size is not None:
            config = {**config, "image_size": image_size}
        done = _update(out, lambda d: None)["configurations"].get(config["key"])
        if done and (done.get("ok") or not retry_failed):  # finished, here or by another process
            continue
        if progress:
            print(f"[{i + 1}/{len(todo)}] {config['key']}", flush=True)
        t0 = time.time()
        try:
            rec = measure(config, batch_size, backbone_batch, _backbones=backbones)
        except Exception as err:  # recorded, never hidden: the file says which configuration failed and why
            rec = {"ok": False, "failure": f"{type(err).__name__}: {str(err)[:300]}"}
        rec.update(config=config, elapsed_s=time.time() - t0)
        _update(out, lambda d: d["configurations"].__setitem__(config["key"], rec))
        if progress:
            print(f"    {'ok' if rec['ok'] else 'FAILED: ' + rec['failure']} in {rec['elapsed_s']:.0f} s", flush=True)
    if tabular and "tabular" not in data:
        try:
            tab = {"ok": True, **measure_tabular()}
        except Exception as err:
            tab = {"ok": False, "failure": f"{type(err).__name__}: {str(err)[:300]}"}
        _update(out, lambda d: d.__setitem__("tabular", tab))
    prov = {**results.provenance(profile="full", seeds=[0], started=start), "torch_threads": torch.get_num_threads(),
            "machine": "this project's 2-core CPU (shared with other work), no GPU; random backbone weights"}

    def finish(d):
        d["cpu_efficiency"] = _cpu_efficiency(d)
        d["provenance"] = prov
    return _update(out, finish)


def _cpu_efficiency(data: dict) -> dict:
    """Per architecture: the heads' training FLOP rate (per CPU second) over a large matmul's
    (the median over its configurations)."""
    rates: dict[str, list] = {}
    for rec in data["configurations"].values():
        if rec.get("ok") and rec.get("cpu_s", {}).get("train_step", 0) > 0:
            rate = rec["flops_per_image"]["train_step"] * rec["batch_size"] / rec["cpu_s"]["train_step"]
            rates.setdefault(rec["config"]["arch"], []).append(rate / data["cpu_matmul_flops"])
    return {a: float(pd.Series(r).median()) for a, r in rates.items()}



