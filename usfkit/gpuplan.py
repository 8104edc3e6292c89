"""The GPU plan of paper §5.2, from the committed dry run (``results/full/07_image_benchmarks/dry_run.json``,
measured by :mod:`usfkit.experiments.dryrun`): GPU-hours for the whole of §5.2 and per table, the share of one GPU a run
needs (Ray's fractional ``num_gpus``), and what the feature cache saves.

Only JSON and pandas here, no torch: ``usf-images --plan`` answers at once, and Ray's resource requests are
computed in the driver without importing the models.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from . import results
from .models import head_labels

__all__ = ["CHAPTER", "IMAGE_COUNTS", "GPUS", "ACHIEVED_FRACTION", "CUDA_OVERHEAD_GB", "EPOCHS", "default_path",
           "load", "TABLES", "flop_budget", "gpu_hours", "plan_table", "ARCH_LABELS", "EXPERIMENT_LABELS",
           "dry_run_table", "run_peak_gb", "gpu_fraction", "tabular_gpu_fraction", "load_cache_benchmark",
           "cache_saving_text", "plan_text", "DOCS_PAGE", "GPU_MEMORIES", "runs_per_gpu", "docs_markdown",
           "write_docs"]

CHAPTER = "07_image_benchmarks"

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


def default_path() -> Path:
    return results.chapter_dir(CHAPTER, "full") / "dry_run.json"



def load(path: Path | None = None) -> dict:
    """The committed dry run (``results/full/07_image_benchmarks/dry_run.json``)."""
    path = Path(path) if path is not None else default_path()
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run usfkit.experiments.dryrun.run_dry_run() (usf-images --dry-run) "
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
        raise KeyError(f"unknown GPU {gpu!r}; known: {', '.join(GPUS)} (add its FP32 peak to usfkit.gpuplan.GPUS)")
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


ARCH_LABELS = head_labels()
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


# --------------------------------------------------------------------------
# the numbers of the book page "Running the reproduction on more hardware"
# --------------------------------------------------------------------------
DOCS_PAGE = "hardware_numbers.md"  # beside hardware.md, included by it; tests/test_dryrun.py keeps it current
GPU_MEMORIES = (16, 24, 40, 80)


def runs_per_gpu(dry: dict | None = None, memories=GPU_MEMORIES) -> pd.DataFrame:
    """How many runs of each architecture (and of a chapter-05 tabular flow) one GPU of each memory size holds
    at once: 1 / the share :func:`gpu_fraction` gives (measured peak + CUDA context, rounded up to 1/2^k)."""
    dry = dry or load()
    kinds = {ARCH_LABELS[a]: (lambda gb, a=a: gpu_fraction(a, gb, dry)) for a in ("fastflow", "cflow", "uflow")}
    kinds["tabular flow (ch. 05)"] = lambda gb: tabular_gpu_fraction(gb, dry)
    rows = {}
    for label, share in kinds.items():
        row = {}
        for gb in memories:
            try:
                row[f"{gb} GB GPU"] = round(1 / share(gb))
            except ValueError:  # needs more memory than the GPU has
                row[f"{gb} GB GPU"] = 0
        rows[label] = row
    return pd.DataFrame(rows).T.rename_axis("runs at once")


def docs_markdown(dry: dict | None = None) -> str:
    """The Markdown of :data:`DOCS_PAGE`: the plan's hours per table, the runs one GPU holds, and the plan's
    assumptions, all computed from the committed dry run."""
    dry = dry or load()
    hours = plan_table(dry).drop(columns=["PFLOP"]).round(0).astype(int)
    peaks = ", ".join(f"{ARCH_LABELS[a]} {run_peak_gb(a, dry):.1f} GB" for a in ("fastflow", "cflow", "uflow"))
    tab = dry["tabular"]
    return "\n".join([
        "<!-- written by `python -m usfkit.gpuplan` from results/full/07_image_benchmarks/dry_run.json; "
        "do not edit by hand -->",
        f"GPU-hours at most ({EPOCHS} epochs a run; early stopping only shortens runs), at an assumed "
        f"{ACHIEVED_FRACTION:.0%} of each GPU's FP32 peak (chapter 07 says why):", "",
        hours.to_markdown(), "",
        f"Runs one GPU holds at once with `--backend ray`: the dry run's peak memory per run ({peaks}; a "
        f"chapter-05 USFlow on the widest ADBench set, {tab['dim']} features, {tab['peak_bytes'] / 1e9:.2f} GB) plus "
        f"{CUDA_OVERHEAD_GB:g} GB for each process's CUDA context, rounded up to 1/2, 1/4, ... of the GPU. A tabular "
        "run's share is set by that context, not by its model:", "",
        runs_per_gpu(dry).to_markdown(), ""])


def write_docs(path: Path | None = None, dry: dict | None = None) -> Path:
    """Write :func:`docs_markdown` to ``hardware_numbers.md`` in the project folder."""
    path = Path(path) if path is not None else results.project_root() / DOCS_PAGE
    path.write_text(docs_markdown(dry))
    return path


if __name__ == "__main__":
    print(f"wrote {write_docs()}")
