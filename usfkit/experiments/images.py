"""The image benchmark of paper §5.2: classes × architectures × couplings × seeds.

One run (:func:`run_one`) builds a model with :func:`usfkit.image.model.build_model`, trains its
flow head on cached backbone features (:mod:`usfkit.image.features`) as §5.2.1 says (Adam,
batch 32, up to 100 epochs, early stopping after 3 epochs without improvement, App. E
learning rates from the model's Lightning module) and evaluates image AUROC (from the
method's image score) and pixel AUROC (from its anomaly map) on the test split.
:func:`run_benchmark` runs a list of such specs through the resumable
:func:`usfkit.sweep.run_sweep`; the table functions turn the records into Table 1
(class-averaged mean ± std), Tables 2–5 (per class) and the ablation of Figures 4/10.

Early stopping.  anomalib's model configs (e.g. ``configs/model/fastflow.yaml``) stop on
``pixel_AUROC`` of the validation split (patience 3, mode max), and anomalib's MVTec AD data
module takes that split from the *test* set by default (``val_split_mode="same_as_test"``;
other modules use ``"from_test"``, half of the test set), so the stopping epoch is chosen
with test labels.  We stop on the training loss instead
(``monitor="train_loss"``, patience 3, ``min_delta=0``): no test information reaches
training.

Command line (GPU users; ``usf-images --help``)::

    usf-images --profile full --classes bottle cable --archs fastflow uflow
    usf-images --profile full --backend ray            # every GPU of this machine, runs packed per GPU
    usf-images --profile full --backend ray --address auto   # a running Ray cluster
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .. import data, metrics, profiles, results, sweep
from ..data import DataError, MVTEC_CLASSES, VISA_CLASSES
from ..image import paper_numbers
from .. import models
from ..models import HEADS

if TYPE_CHECKING:
    from ..image.features import FeatureSet

__all__ = ["CHAPTER", "DATASETS", "DATASET_CLASSES", "DATASET_LABELS", "ARCH_LABELS", "MAP_SIZE", "COUPLING_LABELS",
           "METRIC_LABELS", "PAPER_TABLES", "CONVERGED_SHARE", "make_specs", "profile_specs", "available",
           "head_description", "features_for", "evaluate", "maps_path", "run_one", "NeedsGPU", "check_can_train",
           "run_benchmark", "check_data", "ray_resources", "load_maps", "frame", "RUN_COLUMNS", "runs_table",
           "run_context", "per_class", "class_averaged", "fmt", "wide", "ablation", "average_label",
           "paper_reference", "per_class_tables", "compare_table1", "ablation_5_2_3", "SUMMARY_COLUMNS",
           "variant_summary", "outcome_sentences", "convergence", "convergence_answer", "load_epoch_benchmark",
           "epoch_benchmark_table", "epoch_benchmark_sentences", "paper_ablation_sentence", "status",
           "run_from_args"]

# torch, the backbones and the training loop are imported inside the functions that train or evaluate, so that
# ``usf-images --status`` and the chapter's tables need no torch.
CHAPTER = "07_image_benchmarks"
#: Each dataset's reader and the function listing its classes on disk (names in :mod:`usfkit.data`).
DATASETS = {"mvtec": ("MVTecAD", "mvtec_available"), "visa": ("VisA", "visa_available")}
DATASET_CLASSES = {"mvtec": MVTEC_CLASSES, "visa": VISA_CLASSES}
DATASET_LABELS = {"mvtec": "MVTec AD", "visa": "VisA"}


#: The heads' labels (FastFlow, U-Flow, CFlow), from :data:`usfkit.models.HEADS`, in its order.
ARCH_LABELS = models.head_labels()


def _reader(dataset: str):
    return getattr(data, DATASETS[dataset][0])
MAP_SIZE = 96  # side of the saved example anomaly maps
COUPLING_LABELS = {c: label for c, label in models.COUPLING_LABELS.items() if c != "affine_lu"}
METRIC_LABELS = {"image_auroc": "image AUROC", "pixel_auroc": "pixel AUROC"}
# where the paper prints each (dataset, metric) per class (App. F.1); Table 1 holds the class averages
PAPER_TABLES = {("mvtec", "image_auroc"): 2, ("mvtec", "pixel_auroc"): 3, ("visa", "image_auroc"): 4,
                ("visa", "pixel_auroc"): 5}
CONVERGED_SHARE = 1.0  # % of the loss decrease since epoch 1 in the last epochs below which a run counts as flat


def make_specs(datasets: dict[str, list[str]], archs: list[str], couplings: list[str], seeds: list[int], *,
               image_size: int | None, epochs: int, patience: int = 3, batch_size: int = 32, pretrained="auto",
               backbone: str | None = None, backbone_seed: int = 0, experiment: str = "main",
               prior_sigma: float | None = None, save_maps: bool = False,
               overrides: dict | None = None) -> list[dict]:
    """One JSON-able spec per (dataset, class, architecture, coupling, seed).

    ``experiment`` labels ablations (``"logdet_prior"``, ``"backbone_resnet18"``); ``prior_sigma``
    adds the log-det prior of App. B.2; ``backbone`` replaces the architecture's backbone.
    ``backbone_seed`` fixes random backbone weights (when no ImageNet weights can be had) so all
    seeds and couplings see the same features.  ``image_size=None``: each architecture's
    App. E / anomalib input size (256 px; U-Flow 448 px)."""
    specs = []
    for dataset, classes in datasets.items():
        for cls in classes:
            for arch in archs:
                for coupling in couplings:
                    for seed in seeds:
                        spec = dict(experiment=experiment, dataset=dataset, **{"class": cls}, head=arch, coupling=coupling,
                                    seed=seed, image_size=image_size or HEADS[arch].defaults["image_size"],
                                    epochs=epochs, patience=patience,
                                    batch_size=batch_size, backbone=backbone, pretrained=pretrained,
                                    backbone_seed=backbone_seed, prior_sigma=prior_sigma,
                                    save_maps=save_maps and seed == seeds[0], overrides=overrides or {})
                        specs.append(spec)
    return specs


def profile_specs(cfg, root=None, every_class: bool = False) -> list[dict]:
    """Every spec of a chapter-07 profile (``usfkit.profiles.resolve("07_image_benchmarks", ...)``):
    the main grid (datasets × classes × archs × couplings × seeds) and the §5.2.3 ablations
    named in ``cfg.ablations`` on MVTec AD: ``"logdet_prior"`` (U-Flow, additive + LU, with the
    App. B.2 prior of scale ``cfg.prior_sigma``) and ``"backbone_resnet18"`` (U-Flow on ResNet-18,
    affine vs additive + LU).

    The classes of a dataset are those found on disk or already recorded in this profile (so a machine
    without the images reads committed records as a whole table), in the paper's order; ``every_class``: every
    class of the paper's grid, found or not (for :func:`status`).  The example maps go with the first class of
    the paper's order (after ``cfg.classes``), so a spec's key does not depend on which classes a machine has."""
    common = dict(image_size=cfg.image_size, epochs=cfg.epochs, patience=cfg.patience, batch_size=cfg.batch_size,
                  pretrained=cfg.pretrained, backbone_seed=cfg.backbone_seed)
    wanted = {d: [c for c in DATASET_CLASSES[d] if cfg.classes is None or c in cfg.classes] for d in cfg.datasets}
    recorded = set() if every_class else {(r.spec.get("dataset"), r.spec.get("class"))
                                          for r in sweep.load_runs(CHAPTER, cfg.profile)}
    datasets = {d: [c for c in cs if every_class or c in available(d, root) or (d, c) in recorded]
                for d, cs in wanted.items()}
    datasets = {d: cs for d, cs in datasets.items() if cs}
    specs = []
    for arch in cfg.archs:
        for dataset, classes in datasets.items():  # example maps of the first class of each dataset
            for cls in classes:
                specs += make_specs({dataset: [cls]}, [arch], cfg.couplings, cfg.seeds,
                                    save_maps=cls == wanted[dataset][0], backbone=cfg.backbones.get(arch), **common)
    mvtec = {"mvtec": datasets["mvtec"]} if "mvtec" in datasets else {}
    if "logdet_prior" in cfg.ablations and mvtec:
        specs += make_specs(mvtec, ["uflow"], ["additive_lu"], cfg.seeds, experiment="logdet_prior",
                            backbone=cfg.backbones.get("uflow"), prior_sigma=cfg.prior_sigma, **common)
    if "backbone_resnet18" in cfg.ablations and mvtec:
        specs += make_specs(mvtec, ["uflow"], ["affine", "additive_lu"], cfg.seeds, experiment="backbone_resnet18",
                            backbone="resnet18", **common)
    return specs


def available(dataset: str, root=None) -> list[str]:
    """Classes of ``dataset`` (``"mvtec"`` or ``"visa"``) found under the data directory."""
    return getattr(data, DATASETS[dataset][1])(root)


# --------------------------------------------------------------------------
# one run
# --------------------------------------------------------------------------
_BACKBONES: dict = {}   # (arch, backbone, pretrained, backbone_seed, image_size) -> frozen backbone


def _build(spec: dict, root=None):
    """The model of ``spec`` (its head initialised from ``spec["seed"]``) and the frozen backbone
    whose features the head trains on (random weights drawn from ``backbone_seed``, shared by
    every seed and coupling)."""
    from ..image import build_model
    from ..rng import seeded

    kwargs = dict(backbone=spec["backbone"], pretrained=spec["pretrained"], image_size=spec["image_size"],
                  **spec.get("overrides", {}))
    if spec.get("prior_sigma") is not None:  # App. B.2's log-det prior, weighted by 1 / n_train
        n_train = len(_reader(spec["dataset"])(spec["class"], "train", spec["image_size"], root))
        kwargs.update(prior_sigma=spec["prior_sigma"], n_train=n_train)
    key = (spec["head"], spec["backbone"], str(spec["pretrained"]), spec["backbone_seed"], spec["image_size"])
    if key not in _BACKBONES:
        with seeded(spec["backbone_seed"]):
            _BACKBONES[key] = build_model(spec["head"], coupling=spec["coupling"], **kwargs).backbone
    with seeded(spec["seed"]):
        model = build_model(spec["head"], coupling=spec["coupling"], **kwargs)
    return model, _BACKBONES[key]


def head_description(model) -> str:
    """One line on a built model's flow head (``usfkit.image.build_model``), without its backbone, which
    every coupling of an architecture shares: print ``model.backbone.describe()`` once instead."""
    from ..models.heads.couplings import count_parameters
    n = count_parameters(model.head, trainable_only=True)
    return f"{ARCH_LABELS[model.arch]} head, coupling={model.coupling!r}, {n:,} trainable parameters"


def features_for(spec: dict, backbone, split: str, root=None, device="cpu", cache_folder=None) -> FeatureSet:
    from ..image.features import cached_features

    """Cached features of one class and split (computed on the first call, loaded afterwards)."""
    images = _reader(spec["dataset"])(spec["class"], split, spec["image_size"], root)
    return cached_features(backbone, images, dataset=spec["dataset"], cls=spec["class"], split=split,
                           image_size=spec["image_size"], folder=cache_folder, device=device)


def evaluate(head, test: FeatureSet, image_size: int, batch_size: int = 32, device="cpu") -> dict:
    """Anomaly maps on the test split; image AUROC from ``head.image_score`` and pixel AUROC
    from the maps against the ground-truth masks (§5.2.2).  Returns the AUROCs (fractions),
    the maps ``[N, S, S]`` and the image scores ``[N]``."""
    import torch

    head = head.to(device).eval()
    maps = []
    with torch.no_grad():
        for feats in test.batches(batch_size):
            maps.append(head.anomaly_map([f.to(device) for f in feats], (image_size, image_size)).float().cpu())
        maps = torch.cat(maps)
        scores = head.image_score(maps.to(device)).float().cpu()
    return {"image_auroc": metrics.auroc(test.labels, scores),
            "pixel_auroc": metrics.pixel_auroc(test.masks[:, 0], maps), "maps": maps, "scores": scores}


def _pick_examples(test: FeatureSet, n: int) -> list[int]:
    """A normal image and one anomalous image per defect type, up to ``n`` images."""
    picked = [i for i, lab in enumerate(test.labels.tolist()) if lab == 0][:1]
    seen = set()
    for i, (lab, defect) in enumerate(zip(test.labels.tolist(), test.defects)):
        if lab == 1 and defect not in seen:
            picked.append(i)
            seen.add(defect)
    extra = [i for i in range(len(test)) if i not in picked]
    return (picked + extra)[:n]


def maps_path(chapter: str, profile: str, spec: dict) -> Path:
    return results.chapter_dir(chapter, profile) / "maps" / f"{sweep.spec_key(spec)}.pt"


def run_one(spec: dict, *, root=None, accelerator: str = "auto", devices=1, strategy: str = "auto",
            progress: str = "auto", cache_folder=None, maps_to: Path | None = None,
            n_maps: int = 4) -> results.RunResult:
    """Train and evaluate one spec (see :func:`make_specs`); returns the sweep record's results.

    Divergence (NaN/inf loss, non-finite maps) gives ``ok=False`` with the reason in ``failure``.
    ``accelerator``/``devices``/``strategy`` go to Lightning's Trainer (one run on several GPUs); to
    spread a sweep over several GPUs, run it on Ray (``backend="ray"`` of :func:`run_benchmark`).
    ``maps_to``: where to save a few anomaly maps when ``spec["save_maps"]`` is set."""
    import torch

    from ..train import fit

    try:
        model, backbone = _build(spec, root)
    except TypeError as err:  # e.g. an ablation option the heads do not support
        if spec.get("prior_sigma") is None and not spec.get("overrides"):
            raise
        return results.RunResult(ok=False, failure=f"could not build the model: {err}")
    device = "cuda" if torch.cuda.is_available() and accelerator in ("auto", "gpu", "cuda") else "cpu"
    train = features_for(spec, backbone, "train", root, device, cache_folder)
    test = features_for(spec, backbone, "test", root, device, cache_folder)
    module = model.lightning_module()
    desc = f"{spec['head']}/{spec['coupling']} {spec['class']} s{spec['seed']}"
    result = fit(module, train, None, max_epochs=spec["epochs"], batch_size=spec["batch_size"],
                 patience=spec["patience"], min_delta=0.0, monitor="train_loss", seed=spec["seed"], progress=progress,
                 desc=desc, accelerator=accelerator, devices=devices, strategy=strategy)
    record = results.RunResult.from_fit(
        result, spec["epochs"], metrics={"image_auroc": None, "pixel_auroc": None},
        info={"best_loss": result.best_loss, "loss_history": [row.get("train_loss") for row in result.history],
              "weights": train.info["weights"], "pretrained": train.info["weights"] == "imagenet",
              "backbone_desc": train.info["backbone"], "n_train": len(train), "n_test": len(test),
              "features_from_cache": bool(train.info.get("from_cache") and test.info.get("from_cache"))})
    if not result.ok:
        return record
    try:
        ev = evaluate(model.head, test, spec["image_size"], spec["batch_size"], device)
    except DataError:
        raise
    except ValueError as err:  # non-finite maps: the run diverged at evaluation time
        return record.fail(f"evaluation failed: {err}")
    record.metrics.update(image_auroc=ev["image_auroc"], pixel_auroc=ev["pixel_auroc"])
    if spec.get("save_maps") and maps_to is not None:
        idx = _pick_examples(test, n_maps)
        maps_to.parent.mkdir(parents=True, exist_ok=True)
        size = min(spec["image_size"], MAP_SIZE)  # small enough to commit with the full results
        small = torch.nn.functional.interpolate(ev["maps"][idx][:, None], size=size, mode="bilinear")[:, 0]
        masks = torch.nn.functional.interpolate(test.masks[idx], size=size, mode="nearest")[:, 0]
        torch.save({"paths": [test.paths[i] for i in idx], "maps": small.half(), "masks": masks.bool(),
                    "labels": test.labels[idx], "scores": ev["scores"][idx],
                    "defects": [test.defects[i] for i in idx]}, maps_to)
    return record


class NeedsGPU(RuntimeError):
    """The full image sweep was asked to train on a machine without a GPU."""


def check_can_train(specs: list[dict], profile: str, chapter: str = CHAPTER, allow_cpu: bool = False) -> None:
    """Raise :class:`NeedsGPU` when the full profile still has runs to train and this machine has no GPU
    (unless ``allow_cpu``): §5.2 at the paper's sizes is a GPU workload, and the quick profile is the CPU
    check of the same code.  With every run committed nothing trains, so any machine reads the results."""
    import torch

    missing = [p for p in sweep.record_paths(chapter, profile, specs) if not p.exists()]
    if profile == "full" and missing and not allow_cpu and not torch.cuda.is_available():
        folder = sweep.runs_dir(chapter, profile)
        raise NeedsGPU(
            f"{len(missing)} of the {len(specs)} runs of {chapter}'s full profile are not in {folder}, and this "
            "machine has no GPU. §5.2 at the paper's sizes (256-448 px inputs, ImageNet backbones, up to 100 "
            "epochs a run) is a GPU workload: run it on a GPU machine or cluster (usf-images --profile full "
            "[--backend ray]) and copy the run records here, or pass allow_cpu=True (the "
            "chapter's parameter allow_cpu, or --allow-cpu) to train on this CPU anyway.")


def run_benchmark(specs: list[dict], profile: str, chapter: str = CHAPTER, desc: str = "image runs",
                  allow_cpu: bool = False, backend: str | None = None, address: str | None = None,
                  **run_kw) -> list[results.RunRecord]:
    """Run every spec not finished yet (resumable, see :func:`usfkit.sweep.run_sweep`); return all records.
    An image spec carries every setting that changes its result itself (see :func:`make_specs`).
    Without a GPU the full profile stops before training (:func:`check_can_train`) unless ``allow_cpu``.
    ``backend="ray"``: every run a Ray task holding the share of a GPU its architecture's measured memory
    needs (:func:`usfkit.gpuplan.gpu_fraction`), so one GPU trains several runs at once."""
    backend = sweep.check_backend(backend)
    if backend != "ray":  # on Ray the GPUs are the cluster's, not this machine's
        check_can_train(specs, profile, chapter, allow_cpu)
    pending = [s for s, path in zip(specs, sweep.record_paths(chapter, profile, specs)) if not path.exists()]
    check_data(pending, run_kw.get("root"))

    def run_fn(spec):
        return run_one(spec, maps_to=maps_path(chapter, profile, spec), **run_kw)
    return sweep.run_sweep(chapter, profile, specs, run_fn, settings={}, desc=desc, backend=backend, address=address,
                           resources=ray_resources() if backend == "ray" else None)


def check_data(pending: list[dict], root=None) -> None:
    """List the training and test images of every class with a run still to train, here, before any run starts
    (on Ray: before any task is submitted): a missing or broken class folder stops the sweep naming it."""
    for dataset, cls, size in dict.fromkeys((s["dataset"], s["class"], s["image_size"]) for s in pending):
        for split in ("train", "test"):
            _reader(dataset)(cls, split, size, root)


def ray_resources():
    """An image run's Ray resources: one CPU, and on a cluster with GPUs the share of one GPU that the dry run's
    measured peak memory of its architecture asks for (:func:`usfkit.gpuplan.gpu_fraction`)."""
    from .. import cluster

    def share(spec: dict, gpu_gb: float) -> float:
        from .. import gpuplan
        return gpuplan.gpu_fraction(spec["head"], gpu_gb)
    return cluster.per_run(share)


def load_maps(spec: dict, profile: str, chapter: str = CHAPTER) -> dict | None:
    import torch

    path = maps_path(chapter, profile, spec)
    return torch.load(path, weights_only=False) if path.exists() else None


# --------------------------------------------------------------------------
# tables
# --------------------------------------------------------------------------
def frame(records: list[results.RunRecord]) -> pd.DataFrame:
    """One row per run: the spec, ok, and the two AUROCs in % (the records hold fractions)."""
    cols = ["experiment", "dataset", "class", "head", "backbone", "coupling", "seed", "ok", "image_auroc",
            "pixel_auroc", "epochs_run", "epochs_allowed", "train_time_s", "image_size", "weights", "failure"]
    df = sweep.frame(records).reindex(columns=cols)
    for m in ("image_auroc", "pixel_auroc"):
        df[m] = 100 * pd.to_numeric(df[m], errors="coerce")
    # ``backbone=None`` in a spec means the architecture's App. E backbone: name it
    df["backbone"] = [b if isinstance(b, str) and b else (HEADS[a].defaults["backbone"] if a in HEADS else None)
                      for a, b in zip(df["head"], df["backbone"])]
    return df


RUN_COLUMNS = {"head": "architecture", "backbone": "backbone", "coupling": "coupling", "seed": "seed",
               "ok": "finished", "image_auroc": "image AUROC (%)", "pixel_auroc": "pixel AUROC (%)",
               "epochs_run": "epochs run", "epochs_allowed": "epochs allowed", "train_time_s": "training time (s)",
               "weights": "backbone weights"}


def runs_table(df: pd.DataFrame) -> pd.DataFrame:
    """The runs of :func:`frame` for display: readable names and headers, AUROCs and times to 0.01."""
    out = df[list(RUN_COLUMNS)].copy()
    out["head"] = out["head"].map(ARCH_LABELS)
    out["coupling"] = out["coupling"].map(COUPLING_LABELS)
    return out.rename(columns=RUN_COLUMNS).round(2)


def run_context(df: pd.DataFrame, profile: str) -> str:
    """What the main runs of ``df`` trained on, for titles: e.g. ``"MVTec AD bottle, quick profile"``."""
    main = df[df["experiment"] == "main"]
    parts = []
    for dataset in main["dataset"].unique():
        classes = sorted(main.loc[main["dataset"] == dataset, "class"].unique())
        parts.append(f"{DATASET_LABELS[dataset]} {classes[0]}" if len(classes) == 1
                     else f"{DATASET_LABELS[dataset]} ({_class_list(dataset, classes)})")
    return f"{' and '.join(parts)}, {profile} profile"


def per_class(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Mean, std (over seeds, successful runs only) and number of valid runs per
    (dataset, class, architecture, coupling): the content of Tables 2–5."""
    ok = df[df["ok"].astype(bool)]
    g = ok.groupby(["dataset", "class", "head", "coupling"])[metric]
    return pd.DataFrame({"mean": g.mean(), "std": g.std(ddof=results.STD_DDOF), "n": g.size()}).reset_index()


def class_averaged(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Table 1: per (dataset, architecture, coupling) the mean over classes of the per-class means
    ± the mean over classes of the per-class stds (the paper's "class-averaged" values: Table 2's
    Average row averages the class stds)."""
    pc = per_class(df, metric)
    g = pc.groupby(["dataset", "head", "coupling"])
    return pd.DataFrame({"mean": g["mean"].mean(), "std": g["std"].mean(), "classes": g.size()}).reset_index()


def fmt(mean: float, std: float) -> str:
    return "–" if mean is None or np.isnan(mean) else f"{mean:.1f} ± {std:.1f}"


def wide(table: pd.DataFrame, index: list[str]) -> pd.DataFrame:
    """``mean ± std`` strings with one column per (coupling, architecture), paper column order."""
    t = table.assign(value=[fmt(m, s) for m, s in zip(table["mean"], table["std"])])
    out = t.pivot_table(index=index, columns=["coupling", "head"], values="value", aggfunc="first")
    order = [(c, a) for c in COUPLING_LABELS for a in ARCH_LABELS if (c, a) in out.columns]
    out = out[order]
    out.columns = pd.MultiIndex.from_tuples([(COUPLING_LABELS[c], ARCH_LABELS[a]) for c, a in order])
    return out


def ablation(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Figures 4/10: per class and architecture, Δ mean and Δ std of each USF coupling against
    the affine baseline (positive Δ mean = better, negative Δ std = more stable)."""
    pc = per_class(df, metric).set_index(["dataset", "class", "head", "coupling"])
    rows = []
    for (dataset, cls, arch, coupling), row in pc.iterrows():
        if coupling == "affine" or (dataset, cls, arch, "affine") not in pc.index:
            continue
        base = pc.loc[(dataset, cls, arch, "affine")]
        rows.append({"dataset": dataset, "class": cls, "head": arch, "coupling": coupling,
                     "d_mean": row["mean"] - base["mean"], "d_std": row["std"] - base["std"]})
    return pd.DataFrame(rows, columns=["dataset", "class", "head", "coupling", "d_mean", "d_std"])


def _class_list(dataset: str, classes) -> str:
    """``"bottle"``, ``"bottle, cable"``, ``"7 of 15 classes"`` or ``"all 15 classes"``."""
    classes, n_all = sorted(set(classes)), len(DATASET_CLASSES[dataset])
    if set(classes) >= set(DATASET_CLASSES[dataset]):
        return f"all {n_all} classes"
    return ", ".join(classes) if len(classes) <= 3 else f"{len(classes)} of {n_all} classes"


def average_label(dataset: str, classes) -> str:
    """The label of a class-average row, naming the classes it averages: e.g.
    ``"average of bottle (1 of 15)"``, ``"average of 7 of 15 classes"``, ``"average of all 15 classes"``."""
    n, n_all = len(set(classes)), len(DATASET_CLASSES[dataset])
    return f"average of {_class_list(dataset, classes)}" + (f" ({n} of {n_all})" if n <= 3 and n < n_all else "")


def paper_reference(dataset: str, metric: str, classes) -> tuple[dict, str]:
    """The paper's ``{(coupling, arch): (mean, std)}`` averaged over ``classes`` and a label saying where
    it comes from: Table 1 when all classes ran, else the per-class Table 2-5 of ``(dataset, metric)``
    (e.g. ``"paper, Table 2: bottle"``, ``"paper, Table 3: mean over bottle, cable"``)."""
    classes = sorted(set(classes))
    values = paper_numbers.class_averaged(dataset, metric, classes)
    names = _class_list(dataset, classes)
    if set(classes) >= set(DATASET_CLASSES[dataset]):
        return values, f"paper, Table 1: {names}"
    table = PAPER_TABLES[(dataset, metric)]
    return values, f"paper, Table {table}: {names if len(classes) == 1 else 'mean over ' + names}"


def per_class_tables(df: pd.DataFrame) -> dict[tuple[str, str], pd.DataFrame]:
    """Tables 2–5: ``(dataset, metric) -> mean ± std`` per class (rows) and (coupling, arch) (columns),
    main experiment only, with the class average as the last row; each of our columns is followed by
    the paper's value for the same class and column (arXiv 2510.09452, Tables 2–5), so the two sit side
    by side.  The average row averages the classes that ran, ours and the paper's alike (the paper's
    column over the classes that have a value in our column beside it), and its label names them
    (:func:`average_label`)."""
    out = {}
    main = df[df["experiment"] == "main"]
    labels = {(COUPLING_LABELS[c], ARCH_LABELS[a]): (c, a) for c in COUPLING_LABELS for a in ARCH_LABELS}
    for dataset in main["dataset"].unique():
        for metric in ("image_auroc", "pixel_auroc"):
            sub = main[main["dataset"] == dataset]
            pc = per_class(sub, metric)
            table = wide(pc, ["class"])
            avg_row = average_label(dataset, table.index)
            avg = wide(class_averaged(sub, metric), ["dataset"])
            avg.index = [avg_row]
            ours = pd.concat([table, avg])
            paper = paper_numbers.PER_CLASS.get((dataset, metric), {})
            columns = {}
            for col in ours.columns:
                columns[(*col, "ours")] = ours[col]
                coupling, arch = key = labels[col]
                ran = pc.loc[(pc["coupling"] == coupling) & (pc["head"] == arch), "class"]
                averaged = paper_numbers.class_averaged(dataset, metric, sorted(ran)) if len(ran) else {}
                columns[(*col, "paper")] = [fmt(*paper[cls][key]) if key in paper.get(cls, {}) else "–"
                                            for cls in table.index] \
                    + [fmt(*averaged[key]) if key in averaged else "–"]
            out[(dataset, metric)] = pd.DataFrame(columns, index=ours.index)
    return out


def compare_table1(df: pd.DataFrame, records: list[results.RunRecord]) -> pd.DataFrame:
    """Table 1, ours beside the paper's (arXiv 2510.09452, Table 1), with the conditions of our
    runs in the table itself: backbone weights, classes used, input size, epochs.  When only some
    classes ran, the paper columns average the paper's Tables 2–5 over the same classes; the column
    "paper values from" says which table and classes (:func:`paper_reference`)."""
    main = df[df["experiment"] == "main"]
    rec = [row for row in (r.row() for r in records) if row.get("experiment", "main") == "main"]
    rows = []
    for dataset in main["dataset"].unique():
        sub = main[main["dataset"] == dataset]
        n_all = len(DATASET_CLASSES[dataset])
        for metric in ("image_auroc", "pixel_auroc"):
            ours = class_averaged(sub, metric).set_index(["head", "coupling"])
            classes = sorted(sub["class"].unique())
            paper, source = paper_reference(dataset, metric, classes)  # Table 1, or Tables 2-5 rows
            for arch in [a for a in ARCH_LABELS if a in set(sub["head"])]:
                rs = [r for r in rec if r["dataset"] == dataset and r["head"] == arch]
                row = {"dataset": DATASET_LABELS[dataset], "metric": METRIC_LABELS[metric],
                       "architecture": ARCH_LABELS[arch]}
                for c in COUPLING_LABELS:
                    if (arch, c) in ours.index:
                        row[f"ours: {COUPLING_LABELS[c]}"] = fmt(ours.loc[(arch, c), "mean"],
                                                                 ours.loc[(arch, c), "std"])
                for c in ("affine", "additive_lu"):
                    row[f"paper: {COUPLING_LABELS[c]}"] = fmt(*paper[(c, arch)]) if (c, arch) in paper else "–"
                row["paper values from"] = source.removeprefix("paper, ")
                weights = sorted({"ImageNet" if r.get("pretrained") else "random" for r in rs})
                row["weights (ours)"] = "/".join(weights) + " (paper: ImageNet)"
                row["classes (ours)"] = f"{sub['class'].nunique()} of {n_all}"
                sizes = sorted({r['image_size'] for r in rs})
                row["input px (ours)"] = "/".join(map(str, sizes))
                eps = [r.get("epochs_run") for r in rs if r.get("epochs_run")]
                span = f"{min(eps)}" if min(eps, default=0) == max(eps, default=0) else f"{min(eps)}–{max(eps)}"
                row["epochs run (ours)"] = f"{span} of {rs[0]['epochs']}" if eps else "–"
                backbones = sorted({r.get("backbone") or HEADS[arch].defaults["backbone"] for r in rs})
                row["backbone (ours)"] = "/".join(backbones)
                rows.append(row)
    return pd.DataFrame(rows)


def ablation_5_2_3(df: pd.DataFrame) -> pd.DataFrame:
    """§5.2.3 on MVTec AD: U-Flow with the log-det prior (vs the main additive + LU runs) and U-Flow
    on ResNet-18 (affine vs additive + LU); class-averaged mean ± std beside the paper's numbers."""
    rows = []
    mv = df[df["dataset"] == "mvtec"]
    for metric in ("image_auroc", "pixel_auroc"):
        def cell(exp, coupling):
            sub = mv[(mv["experiment"] == exp) & (mv["head"] == "uflow") & (mv["coupling"] == coupling)]
            if sub.empty:
                return "–"
            t = class_averaged(sub, metric).iloc[0]
            return fmt(t["mean"], t["std"])
        (p0, p1), q = paper_numbers.LOGDET_PRIOR_UFLOW[metric], paper_numbers.RESNET18_UFLOW[metric]
        rows.append({"metric": metric, "comparison": "U-Flow additive + LU: without -> with log-det prior",
                     "ours": f"{cell('main', 'additive_lu')} -> {cell('logdet_prior', 'additive_lu')}",
                     "paper": f"{fmt(*p0)} -> {fmt(*p1)}"})
        rows.append({"metric": metric, "comparison": "U-Flow on ResNet-18: affine -> additive + LU",
                     "ours": f"{cell('backbone_resnet18', 'affine')} -> {cell('backbone_resnet18', 'additive_lu')}",
                     "paper": f"{fmt(*q['affine'])} -> {fmt(*q['additive_lu'])} (direction inferred, see "
                              "paper_numbers.RESNET18_UFLOW)"})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------
# what a run shows: outcome, convergence, the longer-training benchmark
# --------------------------------------------------------------------------
SUMMARY_COLUMNS = ["dataset", "metric", "architecture", "coupling", "classes", "mean (%)", "std over seeds (pp)",
                   "Δ mean vs affine (pp)", "Δ std vs affine (pp)"]


def variant_summary(df: pd.DataFrame) -> pd.DataFrame:
    """Per dataset, metric, architecture and coupling (main runs): the class-averaged mean and std over
    seeds (:func:`class_averaged`) and, for the USF couplings, their change against the affine baseline of
    the same architecture (positive Δ mean = better, negative Δ std = steadier), readable headers."""
    main = df[df["experiment"] == "main"]
    rows = []
    for dataset in main["dataset"].unique():
        for metric in ("image_auroc", "pixel_auroc"):
            t = class_averaged(main[main["dataset"] == dataset], metric).set_index(["head", "coupling"])
            for arch in [a for a in ARCH_LABELS if a in t.index.get_level_values("head")]:
                base = t.loc[(arch, "affine")] if (arch, "affine") in t.index else None
                for c in [c for c in COUPLING_LABELS if (arch, c) in t.index]:
                    v = t.loc[(arch, c)]
                    usf = c != "affine" and base is not None
                    rows.append(dict(zip(SUMMARY_COLUMNS, [
                        DATASET_LABELS[dataset], METRIC_LABELS[metric], ARCH_LABELS[arch], COUPLING_LABELS[c],
                        int(v["classes"]), v["mean"], v["std"], v["mean"] - base["mean"] if usf else np.nan,
                        v["std"] - base["std"] if usf else np.nan])))
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def _pp(x: float) -> str:
    return f"{abs(x):.1f} pp"


def outcome_sentences(summary: pd.DataFrame) -> list[str]:
    """What :func:`variant_summary` says, in words (values rounded to 0.1 as the table shows them): per
    dataset and metric whether the USF variants beat or trail the affine baseline and whether their std
    over seeds is smaller, then the count against the paper's claim (§5.2.2: USFs improve or keep the
    mean and consistently reduce the run-to-run std)."""
    out, n_all, steadier_all, better_all = [], 0, 0, 0
    base_label = COUPLING_LABELS["affine"]
    for (dataset, metric), g in summary.groupby(["dataset", "metric"], sort=False):
        usf = g[g["Δ mean vs affine (pp)"].notna()]
        if usf.empty:
            continue
        d_mean = usf["Δ mean vs affine (pp)"].round(1)
        affine_std = g[g["coupling"] == base_label].set_index("architecture")["std over seeds (pp)"]
        base_std = usf["architecture"].map(affine_std)
        smaller = usf["std over seeds (pp)"].round(1) < base_std.round(1)
        n_all, steadier_all, better_all = n_all + len(usf), steadier_all + int(smaller.sum()), \
            better_all + int((d_mean > 0).sum())
        if usf["architecture"].nunique() == 1 and len(usf) <= 3:  # few variants: name each one
            arch = usf["architecture"].iloc[0]
            base = g[g["coupling"] == base_label].iloc[0]
            parts = [f"{r['coupling']} {'beats' if d > 0 else 'trails' if d < 0 else 'matches'} it"
                     + (f" by {_pp(d)}" if d else "") for (_, r), d in zip(usf.iterrows(), d_mean)]
            stds = " and ".join(f"{x:.1f}" for x in usf["std over seeds (pp)"])
            k, n = int(smaller.sum()), len(usf)
            which = ("smaller than" if k == n else "not smaller than" if k == 0 else f"smaller for {k} of {n} than")
            out.append(f"{metric[0].upper() + metric[1:]} on {dataset}, {arch}: against the affine baseline "
                       f"({base['mean (%)']:.1f} ± {base['std over seeds (pp)']:.1f}), {', '.join(parts)}; "
                       f"the USF stds over seeds ({stds} pp) are {which} the affine "
                       f"{base['std over seeds (pp)']:.1f} pp.")
        else:
            out.append(f"{metric[0].upper() + metric[1:]} on {dataset}: {int((d_mean > 0).sum())} of {len(usf)} "
                       f"USF variants (architecture × coupling) beat the affine mean (Δ mean "
                       f"{d_mean.min():+.1f} to {d_mean.max():+.1f} pp), and {int(smaller.sum())} of {len(usf)} "
                       f"have a smaller std over seeds.")
    if n_all:
        verdict = "shows" if steadier_all == n_all else "does not show" if steadier_all == 0 else "only partly shows"
        out.append(f"The paper (§5.2.2) finds that USFs improve or keep the mean and consistently reduce the "
                   f"run-to-run std; here {better_all} of {n_all} USF comparisons have the higher mean and "
                   f"{steadier_all} of {n_all} the smaller std, so this run {verdict} the variance reduction.")
    return out


def _loss_share(history: list, last: int) -> float:
    """% of the loss decrease since the first epoch made in the last ``last`` epochs (NaN when the loss
    did not fall overall or fewer than two epochs ran)."""
    h = [float(x) for x in history or [] if x is not None]
    if len(h) < 2 or not h[0] > h[-1]:
        return float("nan")
    k = min(last, len(h) - 1)
    return 100 * (h[-1 - k] - h[-1]) / (h[0] - h[-1])


def convergence(records: list[results.RunRecord], last: int = 3) -> pd.DataFrame:
    """Per main run: epochs run and allowed, whether early stopping ended it, and the share of its loss
    decrease (since epoch 1) made in the last ``last`` epochs: a run whose loss still falls by a large share
    at its end had not converged."""
    rows = []
    for r in records:
        if r.spec.get("experiment", "main") != "main" or not r.ok:
            continue
        hist = r.info.get("loss_history") or []
        rows.append({"dataset": DATASET_LABELS[r.spec["dataset"]], "class": r.spec["class"],
                     "architecture": ARCH_LABELS[r.spec["head"]], "coupling": COUPLING_LABELS[r.spec["coupling"]],
                     "seed": r.spec["seed"], "epochs run": r.epochs_run, "epochs allowed": r.epochs_allowed,
                     "stopped early": bool(r.epochs_run is not None and r.epochs_allowed is not None
                                           and r.epochs_run < r.epochs_allowed),
                     f"last {min(last, max(len(hist) - 1, 1))} epochs' share of the loss decrease (%)":
                         _loss_share(hist, last)})
    return pd.DataFrame(rows)


def convergence_answer(conv: pd.DataFrame, patience: int, flat: float = CONVERGED_SHARE) -> str:
    """Answer "had the runs converged?" from :func:`convergence`: a run counts as converged when early
    stopping ended it (``patience`` epochs without improvement) or its last epochs made less than
    ``flat`` % of its loss decrease."""
    if conv.empty:
        return "No run finished, so there is no training loss to judge."
    share_col = [c for c in conv.columns if c.endswith("share of the loss decrease (%)")][0]
    last = share_col.split()[1]
    n, early = len(conv), int(conv["stopped early"].sum())
    full = conv[~conv["stopped early"]]
    shares = full[share_col].dropna()
    done = early + int((shares < flat).sum())
    answer = "Yes" if done == n else "No" if done == 0 else f"Only {done} of {n} had"
    allowed = sorted(set(full["epochs allowed"]))
    text = (f"{answer}: {early} of {n} runs stopped early ({patience} epochs without a lower training loss)"
            if early else f"{answer}: early stopping ({patience} epochs without a lower training loss) ended "
                          f"none of the {n} runs")
    if len(full):
        budget = "/".join(map(str, allowed))
        text += (f"; {'all ' if not early else 'the other '}{len(full)} used all {budget} allowed epochs")
        if len(shares):
            span = f"{shares.min():.0f}" if round(shares.min()) == round(shares.max()) \
                else f"{shares.min():.0f}–{shares.max():.0f}"
            text += (f", and their last {last} epochs still made {span}% of the loss decrease since epoch 1 "
                     f"(a run counts as converged below {flat:g}%)")
    return text + "."


def load_epoch_benchmark(path: str | Path | None = None) -> dict | None:
    """``benchmarks/image_epochs.json`` (written by ``benchmarks/image_epochs.py``): the quick profile's
    three FastFlow models on MVTec AD bottle trained for a fixed number of epochs, one seed; ``None``
    when the file is not there (e.g. usfkit installed without the repository)."""
    path = Path(path) if path else results.project_root() / "benchmarks" / "image_epochs.json"
    return json.loads(path.read_text()) if path.exists() else None


def epoch_benchmark_table(bench: dict, df: pd.DataFrame | None = None) -> pd.DataFrame:
    """The benchmark's AUROCs per coupling; with ``df`` (:func:`frame` of this run) also this run's mean
    over seeds for the same setting (main runs, FastFlow, MVTec AD bottle, same input size, random
    backbone weights), when it has one."""
    e = bench["epochs"]
    runs = {r["coupling"]: r for r in bench["runs"] if r.get("ok")}
    ours = pd.DataFrame()
    if df is not None:
        ours = df[(df["experiment"] == "main") & (df["dataset"] == "mvtec") & (df["class"] == "bottle")
                  & (df["head"] == "fastflow") & (df["image_size"] == bench["image_size"])
                  & df["weights"].astype(str).str.startswith("random") & df["ok"].astype(bool)]
    rows = []
    for c in [c for c in COUPLING_LABELS if c in runs]:
        row = {"coupling": COUPLING_LABELS[c], f"image AUROC (%), {e} epochs": runs[c]["image_auroc"],
               f"pixel AUROC (%), {e} epochs": runs[c]["pixel_auroc"]}
        mine = ours[ours["coupling"] == c]
        if len(mine):
            n = int(mine["epochs_run"].max())
            row[f"image AUROC (%), this run (≤ {n} epochs)"] = mine["image_auroc"].mean()
            row[f"pixel AUROC (%), this run (≤ {n} epochs)"] = mine["pixel_auroc"].mean()
        rows.append(row)
    if not rows:
        return pd.DataFrame()
    table = pd.DataFrame(rows).set_index("coupling")
    table.attrs["this_run_epochs"] = int(ours["epochs_run"].max()) if len(ours) else None
    return table


def _gap(table: pd.DataFrame, col: str) -> str:
    """How far the USF rows of ``col`` are behind the affine row, in words (from the values rounded to 0.1,
    as the table shows them, so the words and the table agree)."""
    values = table[col].round(1)
    base = values.loc[COUPLING_LABELS["affine"]]
    behind = (base - values.drop(index=COUPLING_LABELS["affine"])).round(1)
    if (behind <= 0).all():
        return "level or ahead"
    lo, hi = behind.min(), behind.max()
    return f"{hi:.1f} pp behind" if lo == hi else f"{lo:.1f} to {hi:.1f} pp behind" if lo > 0 else \
        f"up to {hi:.1f} pp behind"


def epoch_benchmark_sentences(bench: dict, table: pd.DataFrame) -> list[str]:
    """What :func:`epoch_benchmark_table` shows, in words (every number from the table or the JSON)."""
    if table.empty or COUPLING_LABELS["affine"] not in table.index or len(table) < 2:
        return []
    e = bench["epochs"]
    seeds = sorted({s for r in bench["runs"] for s in (r.get("provenance") or {}).get("seeds", [])})
    n_seeds = "one seed" if len(seeds) <= 1 else f"{len(seeds)} seeds"
    seeds = (f", seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}") if seeds else ""
    cols = {m: [c for c in table.columns if c.startswith(m)] for m in ("image", "pixel")}
    first = (f"benchmarks/image_epochs.json trained the same three FastFlow models on MVTec AD bottle at "
             f"{bench['image_size']} px on a random frozen {HEADS['fastflow'].defaults['backbone']} backbone "
             f"for {e} epochs without early stopping{seeds}. "
             f"Compared with the affine flow, the USF variants end {_gap(table, cols['image'][0])} at image level "
             f"and {_gap(table, cols['pixel'][0])} at pixel level")
    if len(cols["image"]) > 1:
        first += (f"; after at most {table.attrs.get('this_run_epochs')} epochs in this run they are "
                  f"{_gap(table, cols['image'][1])} at image level and {_gap(table, cols['pixel'][1])} at pixel level")
    return [first + ".", f"That is one class, {n_seeds} and a random backbone: it shows what longer training "
                         "does to this profile's gap, not whether the paper's claim holds."]


def paper_ablation_sentence(deltas: dict, arch: str = "uflow", dataset: str = "mvtec",
                            metric: str = "image_auroc") -> str:
    """The Δ values the paper quotes in §5.2.3 (``paper_numbers.FIG4_UFLOW_DELTAS``), in words."""
    parts = [f"{COUPLING_LABELS[c]} {d['d_mean']:+.2f} pp mean, {d['d_std']:+.2f} pp std"
             for c, d in deltas.items()]
    return (f"The paper (§5.2.3), {ARCH_LABELS[arch]} on {DATASET_LABELS[dataset]}, {METRIC_LABELS[metric]}, "
            f"class-wise mean change against affine: {'; '.join(parts)}.")


# --------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------
def status(cfg) -> pd.DataFrame:
    """Where a profile's sweep stands: per (experiment, dataset, architecture) the runs of every class of the
    dataset (MVTec AD's 15, VisA's 12, whether found on disk or not), how many are recorded, how many failed
    and how many are missing."""
    grid = profile_specs(cfg, every_class=True)
    paths = sweep.record_paths(CHAPTER, cfg.profile, grid)
    rows = []
    for spec, path in zip(grid, paths):
        ok = results.RunRecord.from_file(path).ok if path.exists() else None
        rows.append({"experiment": spec["experiment"], "dataset": DATASET_LABELS[spec["dataset"]],
                     "architecture": ARCH_LABELS[spec["head"]], "present": ok is not None, "failed": ok is False})
    df = pd.DataFrame(rows)
    out = df.groupby(["experiment", "dataset", "architecture"], sort=False).agg(
        runs=("present", "size"), recorded=("present", "sum"), failed=("failed", "sum")).reset_index()
    out["missing"] = out["runs"] - out["recorded"]
    return out


def run_from_args(args) -> None:
    """What ``usf-images`` does with its parsed arguments (:func:`usfkit.cli.images_parser`) for ``--status``
    and a sweep (``--plan`` and ``--dry-run`` are :mod:`usfkit.experiments.dryrun`'s)."""
    overrides = {k: getattr(args, k) for k in ("datasets", "classes", "archs", "couplings", "seeds", "epochs")}
    # the command line's --profile, not $USFKIT_PROFILE (which stands in for a notebook's parameter)
    cfg = profiles.of(CHAPTER, args.profile, **overrides)
    if args.status:
        table = status(cfg)
        print(table.to_string(index=False))
        print(f"{int(table['missing'].sum())} of {int(table['runs'].sum())} runs missing under "
              f"{sweep.runs_dir(CHAPTER, cfg.profile)}; usf-images --plan estimates their GPU-hours")
        return
    import torch

    if cfg.threads and not torch.cuda.is_available():
        torch.set_num_threads(cfg.threads)
    specs = profile_specs(cfg)
    if not specs:
        raise FileNotFoundError(f"no class of {', '.join(cfg.datasets)} found under the data folder "
                                "($USFKIT_DATA): see the data README for where MVTec AD and VisA go")
    print(f"{len(specs)} runs; finished runs are skipped")
    records = run_benchmark(specs, cfg.profile, devices=args.devices, progress="bar" if args.backend == "local"
                            else "none", allow_cpu=args.allow_cpu, backend=args.backend, address=args.address)
    df = frame(records)
    print(f"{len(df)} runs, {int((~df.ok.astype(bool)).sum())} failed")
    for m in ("image_auroc", "pixel_auroc"):
        print(METRIC_LABELS[m])
        print(wide(class_averaged(df, m), ["dataset"]).to_string())
