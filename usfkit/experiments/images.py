"""The image benchmark of paper §5.2: classes × architectures × couplings × seeds.

One run (:func:`run_one`) builds a model with :func:`usfkit.image.build_model`, trains its
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

Command line (GPU users)::

    python -m usfkit.experiments.images --profile full --classes bottle cable --archs fastflow uflow
    # four GPUs, one shard each:
    for i in 0 1 2 3; do CUDA_VISIBLE_DEVICES=$i python -m usfkit.experiments.images --shard $i/4 & done; wait
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .. import metrics, profiles, results, sweep
from ..data import DataError, MVTEC_CLASSES, VISA_CLASSES, MVTecAD, VisA, mvtec_available, visa_available
from ..flows import seeded
from ..image import ARCHITECTURES, build_model, paper_numbers
from ..image.features import FeatureSet, cached_features
from ..train import fit

CHAPTER = "07_image_benchmarks"
DATASETS = {"mvtec": (MVTecAD, mvtec_available), "visa": (VisA, visa_available)}
DATASET_CLASSES = {"mvtec": MVTEC_CLASSES, "visa": VISA_CLASSES}
DATASET_LABELS = {"mvtec": "MVTec AD", "visa": "VisA"}
ARCH_LABELS = {"fastflow": "FastFlow", "uflow": "U-Flow", "cflow": "CFlow"}
MAP_SIZE = 96  # side of the saved example anomaly maps
COUPLING_LABELS = {"affine": "affine (base flow)", "additive": "additive (USF)", "additive_lu": "additive + LU (USF)"}


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
                        spec = dict(experiment=experiment, dataset=dataset, cls=cls, arch=arch, coupling=coupling,
                                    seed=seed, image_size=image_size or ARCHITECTURES[arch]["image_size"],
                                    epochs=epochs, patience=patience,
                                    batch_size=batch_size, backbone=backbone, pretrained=pretrained,
                                    backbone_seed=backbone_seed, prior_sigma=prior_sigma,
                                    save_maps=save_maps and seed == seeds[0], overrides=overrides or {})
                        specs.append(spec)
    return specs


def profile_specs(cfg, root=None) -> list[dict]:
    """Every spec of a chapter-07 profile (``usfkit.profiles.resolve("07_image_benchmarks", ...)``):
    the main grid (datasets × classes found × archs × couplings × seeds) and the §5.2.3 ablations
    named in ``cfg.ablations`` on MVTec AD: ``"logdet_prior"`` (U-Flow, additive + LU, with the
    App. B.2 prior of scale ``cfg.prior_sigma``) and ``"backbone_resnet18"`` (U-Flow on ResNet-18,
    affine vs additive + LU)."""
    common = dict(image_size=cfg.image_size, epochs=cfg.epochs, patience=cfg.patience, batch_size=cfg.batch_size,
                  pretrained=cfg.pretrained, backbone_seed=cfg.backbone_seed)
    datasets = {d: [c for c in available(d, root) if cfg.classes is None or c in cfg.classes] for d in cfg.datasets}
    datasets = {d: cs for d, cs in datasets.items() if cs}
    specs = []
    for arch in cfg.archs:
        for dataset, classes in datasets.items():  # example maps of the first class of each dataset
            for i, cls in enumerate(classes):
                specs += make_specs({dataset: [cls]}, [arch], cfg.couplings, cfg.seeds, save_maps=i == 0,
                                    backbone=cfg.backbones.get(arch), **common)
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
    return DATASETS[dataset][1](root)


# --------------------------------------------------------------------------
# one run
# --------------------------------------------------------------------------
_BACKBONES: dict = {}   # (arch, backbone, pretrained, backbone_seed, image_size) -> frozen backbone


def _build(spec: dict, root=None):
    """The model of ``spec`` (its head initialised from ``spec["seed"]``) and the frozen backbone
    whose features the head trains on (random weights drawn from ``backbone_seed``, shared by
    every seed and coupling)."""
    kwargs = dict(backbone=spec["backbone"], pretrained=spec["pretrained"], image_size=spec["image_size"],
                  **spec.get("overrides", {}))
    if spec.get("prior_sigma") is not None:  # App. B.2's log-det prior, weighted by 1 / n_train
        n_train = len(DATASETS[spec["dataset"]][0](spec["cls"], "train", spec["image_size"], root))
        kwargs.update(prior_sigma=spec["prior_sigma"], n_train=n_train)
    key = (spec["arch"], spec["backbone"], str(spec["pretrained"]), spec["backbone_seed"], spec["image_size"])
    if key not in _BACKBONES:
        with seeded(spec["backbone_seed"]):
            _BACKBONES[key] = build_model(spec["arch"], coupling=spec["coupling"], **kwargs).backbone
    with seeded(spec["seed"]):
        model = build_model(spec["arch"], coupling=spec["coupling"], **kwargs)
    return model, _BACKBONES[key]


def features_for(spec: dict, backbone, split: str, root=None, device="cpu", cache_folder=None) -> FeatureSet:
    """Cached features of one class and split (computed on the first call, loaded afterwards)."""
    images = DATASETS[spec["dataset"]][0](spec["cls"], split, spec["image_size"], root)
    return cached_features(backbone, images, dataset=spec["dataset"], cls=spec["cls"], split=split,
                           image_size=spec["image_size"], folder=cache_folder, device=device)


@torch.no_grad()
def evaluate(head, test: FeatureSet, image_size: int, batch_size: int = 32, device="cpu") -> dict:
    """Anomaly maps on the test split; image AUROC from ``head.image_score`` and pixel AUROC
    from the maps against the ground-truth masks (§5.2.2).  Returns the AUROCs (fractions),
    the maps ``[N, S, S]`` and the image scores ``[N]``."""
    head = head.to(device).eval()
    maps = []
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
    spread a sweep over several GPUs, run shards of it instead (``--shard`` on the command line).
    ``maps_to``: where to save a few anomaly maps when ``spec["save_maps"]`` is set."""
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
    desc = f"{spec['arch']}/{spec['coupling']} {spec['cls']} s{spec['seed']}"
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


def run_benchmark(specs: list[dict], profile: str, chapter: str = CHAPTER, desc: str = "image runs",
                  **run_kw) -> list[results.RunRecord]:
    """Run every spec not finished yet (resumable, see :func:`usfkit.sweep.run_sweep`); return all records.
    An image spec carries every setting that changes its result itself (see :func:`make_specs`)."""
    def run_fn(spec):
        return run_one(spec, maps_to=maps_path(chapter, profile, spec), **run_kw)
    return sweep.run_sweep(chapter, profile, specs, run_fn, settings={}, desc=desc)


def load_maps(spec: dict, profile: str, chapter: str = CHAPTER) -> dict | None:
    path = maps_path(chapter, profile, spec)
    return torch.load(path, weights_only=False) if path.exists() else None


# --------------------------------------------------------------------------
# tables
# --------------------------------------------------------------------------
def frame(records: list[results.RunRecord]) -> pd.DataFrame:
    """One row per run: the spec, ok, and the two AUROCs in % (the records hold fractions)."""
    cols = ["experiment", "dataset", "cls", "arch", "backbone", "coupling", "seed", "ok", "image_auroc",
            "pixel_auroc", "epochs_run", "train_time_s", "weights", "failure"]
    df = sweep.frame(records).reindex(columns=cols)
    for m in ("image_auroc", "pixel_auroc"):
        df[m] = 100 * pd.to_numeric(df[m], errors="coerce")
    return df


def per_class(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Mean, std (over seeds, successful runs only) and number of valid runs per
    (dataset, class, architecture, coupling): the content of Tables 2–5."""
    ok = df[df["ok"].astype(bool)]
    g = ok.groupby(["dataset", "cls", "arch", "coupling"])[metric]
    return pd.DataFrame({"mean": g.mean(), "std": g.std(ddof=results.STD_DDOF), "n": g.size()}).reset_index()


def class_averaged(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Table 1: per (dataset, architecture, coupling) the mean over classes of the per-class means
    ± the mean over classes of the per-class stds (the paper's "class-averaged" values: Table 2's
    Average row averages the class stds)."""
    pc = per_class(df, metric)
    g = pc.groupby(["dataset", "arch", "coupling"])
    return pd.DataFrame({"mean": g["mean"].mean(), "std": g["std"].mean(), "classes": g.size()}).reset_index()


def fmt(mean: float, std: float) -> str:
    return "–" if mean is None or np.isnan(mean) else f"{mean:.1f} ± {std:.1f}"


def wide(table: pd.DataFrame, index: list[str]) -> pd.DataFrame:
    """``mean ± std`` strings with one column per (coupling, architecture), paper column order."""
    t = table.assign(value=[fmt(m, s) for m, s in zip(table["mean"], table["std"])])
    out = t.pivot_table(index=index, columns=["coupling", "arch"], values="value", aggfunc="first")
    order = [(c, a) for c in COUPLING_LABELS for a in ARCH_LABELS if (c, a) in out.columns]
    out = out[order]
    out.columns = pd.MultiIndex.from_tuples([(COUPLING_LABELS[c], ARCH_LABELS[a]) for c, a in order])
    return out


def ablation(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Figures 4/10: per class and architecture, Δ mean and Δ std of each USF coupling against
    the affine baseline (positive Δ mean = better, negative Δ std = more stable)."""
    pc = per_class(df, metric).set_index(["dataset", "cls", "arch", "coupling"])
    rows = []
    for (dataset, cls, arch, coupling), row in pc.iterrows():
        if coupling == "affine" or (dataset, cls, arch, "affine") not in pc.index:
            continue
        base = pc.loc[(dataset, cls, arch, "affine")]
        rows.append({"dataset": dataset, "cls": cls, "arch": arch, "coupling": coupling,
                     "d_mean": row["mean"] - base["mean"], "d_std": row["std"] - base["std"]})
    return pd.DataFrame(rows, columns=["dataset", "cls", "arch", "coupling", "d_mean", "d_std"])


def per_class_tables(df: pd.DataFrame) -> dict[tuple[str, str], pd.DataFrame]:
    """Tables 2–5: ``(dataset, metric) -> mean ± std`` per class (rows) and (coupling, arch) (columns),
    main experiment only, with the class average as the last row; each of our columns is followed by
    the paper's value for the same class and column (arXiv 2510.09452, Tables 2–5), so the two sit side
    by side.  The paper's "Average" row averages all of its classes, ours the classes that ran."""
    out = {}
    main = df[df["experiment"] == "main"]
    for dataset in main["dataset"].unique():
        for metric in ("image_auroc", "pixel_auroc"):
            sub = main[main["dataset"] == dataset]
            table = wide(per_class(sub, metric), ["cls"])
            avg = wide(class_averaged(sub, metric), ["dataset"])
            avg.index = ["Average"]
            ours = pd.concat([table, avg])
            paper = paper_numbers.PER_CLASS.get((dataset, metric), {})
            labels = {(COUPLING_LABELS[c], ARCH_LABELS[a]): (c, a) for c in COUPLING_LABELS for a in ARCH_LABELS}
            columns = {}
            for col in ours.columns:
                columns[(*col, "ours")] = ours[col]
                key = labels[col]
                columns[(*col, "paper")] = [fmt(*paper[cls][key]) if key in paper.get(cls, {}) else "–"
                                            for cls in ours.index]
            out[(dataset, metric)] = pd.DataFrame(columns, index=ours.index)
    return out


def compare_table1(df: pd.DataFrame, records: list[results.RunRecord]) -> pd.DataFrame:
    """Table 1, ours beside the paper's (arXiv 2510.09452, Table 1), with the conditions of our
    runs in the table itself: backbone weights, classes used, input size, epochs.  When only some
    classes ran, the paper column averages the paper's Tables 2–5 over the same classes."""
    main = df[df["experiment"] == "main"]
    rec = [row for row in (r.row() for r in records) if row.get("experiment", "main") == "main"]
    rows = []
    for dataset in main["dataset"].unique():
        sub = main[main["dataset"] == dataset]
        n_all = len(DATASET_CLASSES[dataset])
        for metric in ("image_auroc", "pixel_auroc"):
            ours = class_averaged(sub, metric).set_index(["arch", "coupling"])
            classes = sorted(sub["cls"].unique())
            paper = paper_numbers.class_averaged(dataset, metric, classes)  # Table 1, or Tables 2-5 rows
            for arch in [a for a in ARCH_LABELS if a in set(sub["arch"])]:
                rs = [r for r in rec if r["dataset"] == dataset and r["arch"] == arch]
                row = {"dataset": DATASET_LABELS[dataset], "metric": metric.replace("_auroc", ""),
                       "arch": ARCH_LABELS[arch]}
                for c in COUPLING_LABELS:
                    if (arch, c) in ours.index:
                        row[f"ours: {c}"] = fmt(ours.loc[(arch, c), "mean"], ours.loc[(arch, c), "std"])
                same = "" if len(classes) == n_all else " (same classes)"
                for c in ("affine", "additive_lu"):
                    row[f"paper: {c}{same}"] = fmt(*paper[(c, arch)]) if (c, arch) in paper else "–"
                weights = sorted({"ImageNet" if r.get("pretrained") else "random" for r in rs})
                row["weights (ours)"] = "/".join(weights) + " (paper: ImageNet)"
                row["classes (ours)"] = f"{sub['cls'].nunique()} of {n_all}"
                sizes = sorted({r['image_size'] for r in rs})
                row["input px (ours)"] = "/".join(map(str, sizes))
                eps = [r.get("epochs_run") for r in rs if r.get("epochs_run")]
                row["epochs run (ours, max)"] = (f"{min(eps)}–{max(eps)} ({rs[0]['epochs']})" if eps else "–")
                backbones = sorted({r.get("backbone") or "App. E default" for r in rs})
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
            sub = mv[(mv["experiment"] == exp) & (mv["arch"] == "uflow") & (mv["coupling"] == coupling)]
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
# command line
# --------------------------------------------------------------------------
def main(argv=None) -> None:
    p = argparse.ArgumentParser(description="Run the §5.2 image sweep (resumable) into results/<profile>/" + CHAPTER)
    p.add_argument("--profile", default="full")
    p.add_argument("--datasets", nargs="*", default=None, help="mvtec visa (default: the profile's)")
    p.add_argument("--classes", nargs="*", default=None, help="restrict to these classes")
    p.add_argument("--archs", nargs="*", default=None)
    p.add_argument("--couplings", nargs="*", default=None)
    p.add_argument("--seeds", nargs="*", type=int, default=None)
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--devices", default="1", help="GPUs per run (Lightning devices)")
    p.add_argument("--strategy", default="auto")
    p.add_argument("--shard", default="0/1", help="i/n: run every n-th spec starting at i, e.g. one shard per GPU "
                   "with CUDA_VISIBLE_DEVICES=i; records are separate files, so shards never collide")
    a = p.parse_args(argv)
    overrides = {k: getattr(a, k) for k in ("datasets", "classes", "archs", "couplings", "seeds", "epochs")}
    cfg = profiles.resolve(CHAPTER, a.profile, **overrides)
    if cfg.threads and not torch.cuda.is_available():
        torch.set_num_threads(cfg.threads)
    specs = profile_specs(cfg)
    i, n = map(int, a.shard.split("/"))
    devices = int(a.devices) if a.devices.isdigit() else a.devices
    records = run_benchmark(specs[i::n], cfg.profile, devices=devices, strategy=a.strategy, progress="bar")
    df = frame(records)
    print(f"{len(df)} runs, {int((~df.ok.astype(bool)).sum())} failed")
    for m in ("image_auroc", "pixel_auroc"):
        print(m)
        print(wide(class_averaged(df, m), ["dataset"]).to_string())


if __name__ == "__main__":
    main()
