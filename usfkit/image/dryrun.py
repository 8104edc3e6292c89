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
* :func:`plan_table` / :func:`plan_text` turn the FLOPs into GPU-hours for §5.2 and per table, and
  :func:`gpu_fraction` / :func:`tabular_gpu_fraction` the measured memory into the share of one GPU a
  run needs (for Ray's fractional ``num_gpus``).

What is measured, and how:

* **FLOPs** with ``torch.utils.flop_counter.FlopCounterMode`` (matrix products and convolutions,
  forward and backward, plus the LU blocks' triangular solves; elementwise operations are not
  counted), per image: the backbone forward
  (paid once per image when features are cached), the head's training step, the head's evaluation.
* **Peak memory** of each phase: the largest number of bytes held at once by live tensor storages,
  followed op by op by a ``TorchDispatchMode`` (:class:`LiveBytes`) that starts from what already
  exists (backbone or head parameters, gradients, Adam state, the batch of features) and adds every
  tensor an operation creates until it is freed (autograd's saved tensors included).  On a GPU the
  caching allocator, cuDNN/cuBLAS workspaces and the CUDA context come on top; :func:`gpu_fraction`
  adds a stated allowance for them.  The backbone is run on ``backbone_batch`` images (MS-CaiT at
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
import os
import tempfile
import time
from pathlib import Path
from unittest import mock

import pandas as pd
import torch
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.flop_counter import FlopCounterMode

from .. import profiles, results
from ..data import MVTEC_CLASSES, VISA_CLASSES
from ..flows import seeded
from . import ARCHITECTURES, build_model, count_parameters

CHAPTER = "07_image_benchmarks"
DATASET_CLASSES = {"mvtec": MVTEC_CLASSES, "visa": VISA_CLASSES}

# Published image counts per class, (train, test).  MVTec AD: Bergmann et al., "MVTec AD -- a comprehensive
# real-world dataset for unsupervised anomaly detection", CVPR 2019, Table 1 (3,629 train / 1,725 test).
# VisA: Zou et al., "SPot-the-difference self-supervised pre-training for anomaly detection and segmentation",
# ECCV 2022, Table 1 (normal / anomalous images per class), split by the official one-class split
# split_csv/1cls.csv of github.com/amazon-science/spot-diff (8,659 train / 2,162 test; every anomalous image
# is in the test split).  tests/test_dryrun.py checks the totals and, where MVTec AD bottle is on disk, its counts.
IMAGE_COUNTS = {
    "mvtec": {"bottle": (209, 83), "cable": (224, 150), "capsule": (219, 132), "carpet": (280, 117),
              "grid": (264, 78), "hazelnut": (391, 110), "leather": (245, 124), "metal_nut": (220, 115),
              "pill": (267, 167), "screw": (320, 160), "tile": (230, 117), "toothbrush": (60, 42),
              "transistor": (213, 100), "wood": (247, 79), "zipper": (240, 151)},
    "visa": {"candle": (900, 200), "capsules": (542, 160), "cashew": (450, 150), "chewinggum": (453, 150),
             "fryum": (450, 150), "macaroni1": (900, 200), "macaroni2": (900, 200), "pcb1": (904, 200),
             "pcb2": (901, 200), "pcb3": (905, 201), "pcb4": (904, 201), "pipe_fryum": (450, 150)},
}

# Dense FP32 peak (non-tensor-core) TFLOP/s and memory of named GPUs, from the vendors' data sheets
# (H100 SXM5, A100 SXM4 80 GB, V100 SXM2 32 GB, T4, GeForce RTX 4090).
GPUS = {"H100": dict(tflops=67.0, memory_gb=80), "A100": dict(tflops=19.5, memory_gb=80),
        "V100": dict(tflops=15.7, memory_gb=32), "T4": dict(tflops=8.1, memory_gb=16),
        "RTX 4090": dict(tflops=82.6, memory_gb=24)}
# The share of that peak the runs are assumed to reach.  An assumption, not a GPU measurement (this machine
# has none): it is what the dense-matmul share measured here on this CPU (``dry["cpu_efficiency"]``, the heads'
# FLOP rate over a large matmul's) times ~0.7 for a large FP32 matmul on a data-centre GPU suggests, rounded
# down; the plan scales as 1 / ACHIEVED_FRACTION, and plan_text says so.
ACHIEVED_FRACTION = 0.3
CUDA_OVERHEAD_GB = 1.0  # per process: CUDA context (~0.3-0.6 GB) + cuBLAS/cuDNN workspaces + allocator slack
EPOCHS = 100            # §5.2.1: up to 100 epochs; early stopping (patience 3) can only shorten a run
TABULAR_DATASET = "17_InternetAds"  # the widest ADBench classical set (1,555 features)


def default_path() -> Path:
    return results.chapter_dir(CHAPTER, "full") / "dry_run.json"


# --------------------------------------------------------------------------
# the configurations
# --------------------------------------------------------------------------
def configurations(cfg=None) -> list[dict]:
    """The distinct configurations of chapter 07's full profile (``cfg``: its settings, default
    ``profiles.of("07_image_benchmarks", "full")``).  Each is a dict with ``key``, ``experiment``,
    ``arch``, ``backbone`` (resolved), ``image_size``, ``coupling``, ``prior_sigma``, ``seeds``,
    ``classes`` and ``runs`` per dataset (classes x seeds): the full profile's spec grid with every
    class of ``MVTEC_CLASSES`` / ``VISA_CLASSES`` (only MVTec AD bottle is on disk here)."""
    from ..experiments import images
    cfg = cfg or profiles.of(CHAPTER, "full")
    with mock.patch.object(images, "available", lambda d, root=None: list(DATASET_CLASSES[d])):
        specs = images.profile_specs(cfg)
    out: dict[str, dict] = {}
    for spec in specs:
        backbone = spec["backbone"] or ARCHITECTURES[spec["arch"]]["backbone"]
        key = "_".join(str(x) for x in (spec["experiment"], spec["arch"], backbone, f"{spec['image_size']}px",
                                         spec["coupling"]) + ((f"prior{spec['prior_sigma']}",)
                                                              if spec["prior_sigma"] is not None else ()))
        c = out.setdefault(key, dict(key=key, experiment=spec["experiment"], arch=spec["arch"], backbone=backbone,
                                     image_size=spec["image_size"], coupling=spec["coupling"],
                                     prior_sigma=spec["prior_sigma"], seeds=[], classes={}, runs={}))
        c["classes"].setdefault(spec["dataset"], [])
        if spec["cls"] not in c["classes"][spec["dataset"]]:
            c["classes"][spec["dataset"]].append(spec["cls"])
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
    from ..flows import build_flow
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
def _write(path: Path, data: dict) -> None:
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(path)


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
        _write(path, data)
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


def load(path: Path | None = None) -> dict:
    """The committed dry run (``results/full/07_image_benchmarks/dry_run.json``)."""
    path = Path(path) if path is not None else default_path()
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run usfkit.image.dryrun.run_dry_run() (usf-images --dry-run) "
                                "to measure the configurations of §5.2")
    return json.loads(path.read_text())


# --------------------------------------------------------------------------
# the plan
# --------------------------------------------------------------------------
TABLES = {  # row label -> (experiments, datasets) of the runs it needs
    "Table 1 (all main runs)": (("main",), ("mvtec", "visa")),
    "Tables 2/3, Figs. 4/10 (MVTec AD)": (("main",), ("mvtec",)),  # Figures 4/10 read the MVTec AD main runs
    "Tables 4/5 (VisA)": (("main",), ("visa",)),
    "§5.2.3 log-det prior": (("logdet_prior",), ("mvtec",)),
    "§5.2.3 U-Flow on ResNet-18": (("backbone_resnet18",), ("mvtec",)),
    "All of §5.2": (("main", "logdet_prior", "backbone_resnet18"), ("mvtec", "visa")),
}


def _ok(dry: dict) -> list[dict]:
    return [r for r in dry["configurations"].values() if r.get("ok")]


def flop_budget(dry: dict, experiments=("main",), datasets=("mvtec", "visa"), epochs: int = EPOCHS) -> dict:
    """FLOPs of the runs of ``experiments`` on ``datasets`` at ``epochs`` epochs a run: the heads
    (training on every training image every epoch, one evaluation of the test images) and the
    backbone, once per image per feature cache (a cache is shared by the couplings and seeds of a
    class, and by experiments on the same backbone and size); ``recompute`` is the backbone without
    the cache (every training image every epoch, the test images once, in every run)."""
    head = backbone = recompute = 0.0
    runs, caches = 0, set()
    for rec in _ok(dry):
        c = rec["config"]
        if c["experiment"] not in experiments:
            continue
        f = rec["flops_per_image"]
        for d in datasets:
            for cls in c["classes"].get(d, []):
                n_train, n_test = IMAGE_COUNTS[d][cls]
                seeds = len(c["seeds"])
                runs += seeds
                head += seeds * (f["train_step"] * n_train * epochs + f["eval"] * n_test)
                recompute += seeds * f["backbone"] * (n_train * epochs + n_test)
                if (d, cls, rec["backbone_key"]) not in caches:
                    caches.add((d, cls, rec["backbone_key"]))
                    backbone += f["backbone"] * (n_train + n_test)
    return {"runs": runs, "head": head, "backbone": backbone, "recompute": recompute, "caches": len(caches)}


def gpu_hours(flops: float, gpu: str, fraction: float = ACHIEVED_FRACTION) -> float:
    """Hours of one ``gpu`` (a key of :data:`GPUS`) for ``flops`` at ``fraction`` of its FP32 peak."""
    if gpu not in GPUS:
        raise KeyError(f"unknown GPU {gpu!r}; known: {', '.join(GPUS)} (add its FP32 peak to usfkit.image.dryrun.GPUS)")
    return flops / (GPUS[gpu]["tflops"] * 1e12 * fraction) / 3600


def plan_table(dry: dict | None = None, gpu: str | None = None, epochs: int = EPOCHS,
               fraction: float = ACHIEVED_FRACTION) -> pd.DataFrame:
    """GPU-hours per table of §5.2 (rows of :data:`TABLES`) on each GPU of :data:`GPUS` (or only
    ``gpu``), with the feature cache (backbone once per image per cache; a table's row counts the
    caches it needs, the last row each cache once), at ``epochs`` epochs a run and ``fraction`` of
    the FP32 peak; plus the runs and the FLOPs (PFLOP, heads and backbones) behind them."""
    dry = dry or load()
    gpus = [gpu] if gpu else list(GPUS)
    rows = []
    for label, (experiments, datasets) in TABLES.items():
        b = flop_budget(dry, experiments, datasets, epochs)
        row = {"runs": b["runs"], "PFLOP": (b["head"] + b["backbone"]) / 1e15}
        for g in gpus:
            row[f"{g} GPU-h"] = gpu_hours(b["head"] + b["backbone"], g, fraction)
        rows.append(pd.Series(row, name=label))
    return pd.DataFrame(rows).astype({"runs": int}).rename_axis("runs for")


ARCH_LABELS = {"fastflow": "FastFlow", "cflow": "CFlow", "uflow": "U-Flow"}
EXPERIMENT_LABELS = {"main": "", "logdet_prior": " + log-det prior", "backbone_resnet18": " (ablation)"}


def dry_run_table(dry: dict | None = None) -> pd.DataFrame:
    """One readable row per configuration: runs of the full profile it stands for, parameters
    (millions), GFLOPs per image, peak memory (GiB) and CPU seconds of a training step here."""
    dry = dry or load()
    rows = []
    for rec in dry["configurations"].values():
        c = rec["config"]
        label = f"{ARCH_LABELS[c['arch']]} {c['coupling']}{EXPERIMENT_LABELS.get(c['experiment'], c['experiment'])}"
        row = {"configuration": label, "backbone": f"{c['backbone']} {c['image_size']} px",
               "runs": sum(c["runs"].values())}
        if rec.get("ok"):
            f, m = rec["flops_per_image"], rec["peak_bytes"]
            row.update({"head M params": rec["head_params"] / 1e6, "backbone M params": rec["backbone_params"] / 1e6,
                        "GFLOP/img backbone": f["backbone"] / 1e9, "GFLOP/img train": f["train_step"] / 1e9,
                        "GFLOP/img eval": f["eval"] / 1e9, "GiB train step": m["train_step"] / 2 ** 30,
                        "GiB backbone (32 img)": m["backbone_batch"] / 2 ** 30,
                        "CPU s/step": rec["cpu_s"]["train_step"]})
        else:
            row["not measured"] = rec.get("failure")
        rows.append(row)
    return pd.DataFrame(rows).set_index("configuration").round(1)


def _share(need_gb: float, total_gb: float, what: str, smallest: float = 1 / 64) -> float:
    if need_gb > total_gb:
        raise ValueError(f"{what} needs {need_gb:.1f} GB, more than the {total_gb:g} GB of one GPU: use a larger GPU")
    share = 1.0
    while share / 2 >= smallest and need_gb <= total_gb * share / 2:
        share /= 2
    return share


def run_peak_gb(arch: str, dry: dict | None = None) -> float:
    """The most memory one run of ``arch`` holds at once (GB, 1e9 bytes): the largest of its backbone
    pass at batch 32, its training step and its evaluation batch, over its configurations in ``dry``."""
    dry = dry or load()
    peaks = [max(r["peak_bytes"].values()) for r in _ok(dry) if r["config"]["arch"] == arch]
    if not peaks:
        raise ValueError(f"the dry run has no finished configuration of {arch!r}; run run_dry_run(archs=[{arch!r}])")
    return max(peaks) / 1e9


def gpu_fraction(arch: str, gpu_memory_gb: float, dry: dict | None = None) -> float:
    """The share of one GPU of ``gpu_memory_gb`` a run of ``arch`` needs (Ray's ``num_gpus``):
    its dry-run peak (:func:`run_peak_gb`) plus :data:`CUDA_OVERHEAD_GB` for the process's CUDA
    context and workspaces, rounded up to 1, 1/2, 1/4, ... (at least 1/64) so runs pack evenly."""
    return _share(run_peak_gb(arch, dry) + CUDA_OVERHEAD_GB, gpu_memory_gb, f"a {arch} run")


def tabular_gpu_fraction(gpu_memory_gb: float, dry: dict | None = None) -> float:
    """The share of one GPU a chapter-05 flow run needs: USFlow at the widest ADBench set (the
    dry run's ``tabular`` entry) plus :data:`CUDA_OVERHEAD_GB`, rounded up like :func:`gpu_fraction`."""
    dry = dry or load()
    tab = dry.get("tabular") or {}
    if not tab.get("ok"):
        raise ValueError("the dry run has no tabular measurement; run run_dry_run() again (it adds it)")
    return _share(tab["peak_bytes"] / 1e9 + CUDA_OVERHEAD_GB, gpu_memory_gb, "a tabular flow run")


def load_cache_benchmark(path: Path | None = None) -> dict | None:
    """``benchmarks/feature_cache_256.json`` (``None`` without the repository around usfkit)."""
    path = Path(path) if path is not None else results.project_root() / "benchmarks" / "feature_cache_256.json"
    return json.loads(path.read_text()) if path.exists() else None


def cache_saving_text(dry: dict | None = None, bench: dict | None = None, epochs: int = EPOCHS,
                      fraction: float = ACHIEVED_FRACTION, gpu: str = "A100") -> str:
    """What the feature cache saves on §5.2: backbone FLOPs with and without it (from the dry run),
    and the epoch times measured on this CPU (``benchmarks/feature_cache_256.json``) when present."""
    dry = dry or load()
    b = flop_budget(dry, TABLES["All of §5.2"][0], TABLES["All of §5.2"][1], epochs)
    text = (f"Feature cache: over all of §5.2 at {epochs} epochs a run, the backbone costs "
            f"{b['backbone'] / 1e15:.1f} PFLOP with the cache ({b['caches']} caches, one pass per image) against "
            f"{b['recompute'] / 1e15:,.0f} PFLOP recomputing it every epoch of every run "
            f"({gpu_hours(b['recompute'], gpu, fraction):,.0f} {gpu} GPU-hours saved at {fraction:.0%} of peak; "
            f"the heads themselves need {gpu_hours(b['head'], gpu, fraction):,.0f}).")
    bench = bench if bench is not None else load_cache_benchmark()
    if bench:
        ff = flop_budget({"configurations": {k: r for k, r in dry["configurations"].items()
                                             if r.get("config", {}).get("arch") == "fastflow"}}, epochs=epochs)
        image_epochs = sum(len(r["config"]["seeds"]) * IMAGE_COUNTS[d][c][0] * epochs
                           for r in _ok(dry) if r["config"]["arch"] == "fastflow"
                           for d, classes in r["config"]["classes"].items() for c in classes)
        saved_h = (bench["recompute_epoch_s"] - bench["cached_epoch_s"]) / bench["n_images"] * image_epochs / 3600
        all_images = sum(n_train + n_test for counts in IMAGE_COUNTS.values() for n_train, n_test in counts.values())
        cache_h = bench["extract_s"] / bench["n_images"] * all_images / 3600
        ratio = bench["recompute_epoch_s"] / bench["cached_epoch_s"]
        text += (f" Measured on this CPU ({bench['what']}): an epoch on cached features takes "
                 f"{bench['cached_epoch_s']:.1f} s against {bench['recompute_epoch_s']:.1f} s recomputing the "
                 f"backbone ({ratio:.2f}x); over the {ff['runs']} FastFlow runs of §5.2 at {epochs} epochs that is "
                 f"{saved_h:,.0f} CPU-hours saved on such a core, for {cache_h:.1f} CPU-hours computing the caches.")
    return text


def _hours(h: float) -> str:
    return f"{h:,.0f}" if h >= 10 else f"{h:.1f}"


def _fraction_text(share: float) -> str:
    return "1" if share == 1 else f"1/{round(1 / share)}"


def plan_text(dry: dict | None = None, gpu: str | None = None, epochs: int = EPOCHS,
              fraction: float = ACHIEVED_FRACTION) -> str:
    """The plan in words (Markdown): GPU-hours of §5.2 on ``gpu`` (default: every GPU of :data:`GPUS`),
    what they assume and why, the GPU shares per run, and the feature cache's saving."""
    dry = dry or load()
    table = plan_table(dry, gpu, epochs, fraction)
    total = table.loc["All of §5.2"]
    b = flop_budget(dry, *TABLES["All of §5.2"], epochs=epochs)
    gpus = [gpu] if gpu else list(GPUS)
    hours = ", ".join(f"{_hours(total[f'{g} GPU-h'])} h on {g}" for g in gpus)
    eff = dry.get("cpu_efficiency", {})
    eff_text = ", ".join(f"{ARCH_LABELS.get(a, a)} {v:.0%}" for a, v in sorted(eff.items()))
    suggest = f", which suggests {0.7 * min(eff.values()):.0%}-{0.9 * max(eff.values()):.0%}" if eff else ""
    failed = [r["config"]["key"] for r in dry["configurations"].values() if not r.get("ok")]
    shares = []
    for a in ("fastflow", "cflow", "uflow"):
        try:
            shares.append(f"{ARCH_LABELS[a]} {run_peak_gb(a, dry):.1f} GB, {_fraction_text(gpu_fraction(a, 80, dry))}")
        except ValueError:
            pass
    try:
        tab = dry["tabular"]
        shares.append(f"a chapter-05 USFlow run ({tab['dim']} features, the widest ADBench set) "
                      f"{tab['peak_bytes'] / 1e9:.2f} GB, {_fraction_text(tabular_gpu_fraction(80, dry))}")
    except (KeyError, ValueError):
        pass
    text = (
        f"**All of §5.2** ({int(total['runs'])} runs: Tables 1-5 and the §5.2.3 ablations) needs about {hours} "
        f"of GPU time: {b['head'] / 1e15:,.0f} PFLOP in the flow heads and {b['backbone'] / 1e15:.1f} PFLOP "
        "in the backbones. How: the FLOPs per image the dry run counted (matrix products and convolutions, "
        "forward and backward) x the published training / test images per class (MVTec AD: Bergmann et al. 2019; "
        f"VisA: Zou et al. 2022 with its official one-class split) x {epochs} epochs (the upper bound of §5.2.1: "
        "early stopping after 3 epochs without improvement can only shorten a run, so these hours are a ceiling) "
        "x seeds x couplings, plus one backbone pass per image per feature cache. "
        f"The GPUs run at an assumed {fraction:.0%} of their dense FP32 peak (vendor data sheets). That share is "
        "an assumption, not a measurement (this machine has no GPU): on this CPU the heads' training steps reach "
        f"{eff_text or 'n/a'} of a large matrix product's FLOP rate (per CPU second), and a large FP32 matrix "
        f"product reaches roughly 70-90 % of a data-centre GPU's peak{suggest}; we stay at the low end because "
        "small kernels (CFlow's 64-vector fiber batches, one optimiser step each) use a GPU worse than a CPU. "
        "Every hour above scales as 1 / that share. Elementwise operations are not counted, and TF32 tensor cores "
        "(on by default for convolutions since Ampere) would shorten the convolutional heads.")
    if shares:
        text += (f" Memory per run (the dry run's peak) and the share of an 80 GB GPU it takes once "
                 f"{CUDA_OVERHEAD_GB:g} GB is added for the CUDA context and workspaces (rounded up to 1/2, 1/4, ...: "
                 f"Ray's num_gpus): {'; '.join(shares)}.")
    if failed:
        text += f" Not measured (see the dry-run file for why): {', '.join(failed)}; their runs are missing above."
    return text
