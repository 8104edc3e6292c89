"""The image benchmarks' claims (topic "image"): §5.2.2's Table 1 and App. F.1's Tables 2-5 (the paper's cells
beside ours), §5.2.2's variance and mean claims per architecture, §5.2.3's ablations (Figure 4, App. F.2's
Figure 10, the U-Flow deltas, the log-det prior, ResNet-18) and App. D's Figure 9, read from chapter 07's runs.

An image claim is judged only on a complete sweep: every class, architecture, coupling and seed it reads
recorded, finished or failed (:func:`missing_image_runs`); a partial sweep is "not run here", naming the missing
runs, and App. D's failed runs are counted in each row (:func:`image_failures`)."""
from __future__ import annotations

import collections
from typing import Callable

import numpy as np
import pandas as pd

from ... import profiles
from ...image import paper_numbers
from .core import CONTRADICTED, Finding, Loaded, NotRun, Source, claim, finding
from .rules import ALPHA, CELLS_PARTLY, CELLS_REPRODUCED, MIN_PAIRS, MIN_TOL_PP, cells_rule, parts_rule, sign_finding

__all__ = ["IMAGE_SEEDS", "IMAGE_ARCHS", "IMAGE_DATASETS", "USF_COUPLING", "missing_image_runs", "image_failures",
           "side_by_side", "variance_check", "mean_check", "fig4_check"]


#: The runs §5.2 reports: every class of a dataset, three runs per configuration (§5.2.1: "Every configuration is
#: run three times"), here the seeds of chapter 07's full profile.  An image claim is judged only when every run it
#: reads is recorded, finished or failed (:func:`missing_image_runs`); otherwise it is "not run here", saying which
#: runs are missing, with what was found shown anyway: never a verdict on part of a sweep.
IMAGE_SEEDS = tuple(profiles.PROFILES["07_image_benchmarks"]["full"]["seeds"])
IMAGE_ARCHS = ("fastflow", "uflow", "cflow")
IMAGE_DATASETS = ("mvtec", "visa")
USF_COUPLING = "additive_lu"  # the coupling of the paper's "USF" columns (Tables 1-5)


def _ms(mean: float, std: float) -> str:
    return "–" if mean != mean else f"{mean:.2f} ± {std if std == std else 0:.2f}"


def _image(src: Source) -> tuple[Loaded, pd.DataFrame]:
    from .. import images as bench

    loaded = src.runs(bench.CHAPTER)
    return loaded, bench.frame(loaded.data)


def _image_conditions(loaded: Loaded, df: pd.DataFrame) -> str:
    from .. import images as bench

    recs = [r for r in loaded.data if r.spec.get("experiment", "main") == "main"]
    weights = "/".join(sorted({str(r.info.get("weights")).split("-")[0] for r in recs})) or "–"
    sizes = "/".join(map(str, sorted({r.spec.get("image_size") for r in recs})))
    classes = ", ".join(f"{bench.DATASET_LABELS[d]} {g['class'].nunique()} of {len(bench.DATASET_CLASSES[d])}"
                        for d, g in df.groupby("dataset"))
    archs = "/".join(sorted(df["head"].unique()))
    backbones = "/".join(sorted({str(r.spec.get("backbone") or "App. E default") for r in recs}))
    epochs = "/".join(map(str, sorted({r.spec.get("epochs") for r in recs})))
    return (f"backbone weights {weights} (paper: ImageNet); backbones {backbones}; {classes} classes; archs {archs}; "
            f"{df['seed'].nunique()} seed(s) (paper: 3); input {sizes} px; up to {epochs} epochs (paper: 100)")


def missing_image_runs(df: pd.DataFrame, datasets, archs, couplings, experiment: str = "main",
                       seeds=IMAGE_SEEDS) -> list[str]:
    """What the image runs of ``df`` (:func:`usfkit.experiments.images.frame`) lack for a claim over ``datasets``
    × every class × ``archs`` × ``couplings`` × ``seeds`` of ``experiment``: one phrase per incomplete dataset,
    e.g. ``"VisA: none of its 216 main runs"`` or ``"MVTec AD: 15 of 270 main runs missing (U-Flow affine seed 2:
    all 15 classes)"``; empty when every run is recorded.  A failed run is a recorded run (App. D)."""
    from .. import images as bench

    sub = df[df["experiment"] == experiment]
    have = set(zip(sub["dataset"], sub["class"], sub["head"], sub["coupling"], sub["seed"]))
    out = []
    for ds in datasets:
        want = [(ds, c, a, cp, s) for c in bench.DATASET_CLASSES[ds] for a in archs for cp in couplings for s in seeds]
        lost = [w for w in want if w not in have]
        if len(lost) == len(want):
            out.append(f"{bench.DATASET_LABELS[ds]}: none of its {len(want)} {experiment} runs")
        elif lost:
            groups = collections.defaultdict(list)
            for _, c, a, cp, s in lost:
                groups[(a, cp, s)].append(c)
            parts = [f"{bench.ARCH_LABELS[a]} {cp} seed {s}: {bench._class_list(ds, cs)}"
                     for (a, cp, s), cs in sorted(groups.items())]
            out.append(f"{bench.DATASET_LABELS[ds]}: {len(lost)} of {len(want)} {experiment} runs missing ("
                       + "; ".join(parts[:3]) + ("; ..." if len(parts) > 3 else "") + ")")
    return out


def _require_runs(loaded: Loaded, df: pd.DataFrame, datasets, archs, couplings, experiment: str = "main",
                  **found) -> None:
    """:class:`~.core.NotRun` naming the missing runs (:func:`missing_image_runs`) unless the claim's runs are all
    there."""
    lost = missing_image_runs(df, datasets, archs, couplings, experiment)
    if lost:
        raise NotRun(f"incomplete sweep, judged only on every class with {len(IMAGE_SEEDS)} seeds: " + "; ".join(lost),
                     basis=loaded.profile, conditions=_image_conditions(loaded, df), **found)


def image_failures(df: pd.DataFrame, archs=IMAGE_ARCHS, couplings=("affine", USF_COUPLING),
                   experiment: str = "main", datasets=IMAGE_DATASETS) -> str:
    """App. D's failed runs (:data:`~.core.FAILED_RUN`) among the runs a claim reads, per coupling, in words (shown in
    its "ours"): e.g. ``"failed runs (App. D): affine 2 of 405, additive_lu 0 of 405"``.  Per-class means and
    stds are over the valid runs, as the paper's Figure 11 counts them."""
    sub = df[(df["experiment"] == experiment) & df["head"].isin(archs) & df["dataset"].isin(datasets)]
    parts = [f"{c} {int((~g['ok'].astype(bool)).sum())} of {len(g)}"
             for c in couplings for g in [sub[sub["coupling"] == c]]]
    return "failed runs (App. D): " + ", ".join(parts)


def _pretrained_only(loaded: Loaded, df: pd.DataFrame, **found) -> None:
    weights = {str(r.info.get("weights")).split("-")[0] for r in loaded.data}
    if weights != {"imagenet"}:
        raise NotRun(f"backbone weights {'/'.join(sorted(weights))}, not ImageNet (none can be downloaded on these "
                     "machines): absolute AUC-ROCs are not comparable with the paper's", basis=loaded.profile,
                     conditions=_image_conditions(loaded, df), **found)


def _table_cells(df: pd.DataFrame, dataset: str, metric: str, per_class: bool) -> pd.DataFrame:
    """The paper's cells beside ours (NaN where we have none): one row per (class, arch, coupling) of the
    paper's Tables 2-5 (``per_class``), or per (arch, coupling) of Table 1 averaged over the classes we ran.
    ``all_failed``: the cell ran but has no value because every run of it (Table 1: of one of its classes)
    failed."""
    from .. import images as bench

    main = df[(df["experiment"] == "main") & (df["dataset"] == dataset)]
    ran_any = main.groupby(["class", "head", "coupling"])["ok"].apply(lambda ok: not ok.astype(bool).any())
    dead = {k for k, v in ran_any.items() if v}  # (cls, arch, coupling) whose every run failed
    if per_class:
        paper = {c: cols for c, cols in paper_numbers.PER_CLASS[(dataset, metric)].items() if c != "Average"}
        ours = bench.per_class(main, metric) if len(main) else None
    else:
        ran, every = sorted(main["class"].unique()), paper_numbers.PER_CLASS[(dataset, metric)]
        n_all = len([c for c in every if c != "Average"])
        label = "Average" if not ran or len(ran) == n_all else \
            f"average of {', '.join(ran) if len(ran) <= 3 else f'{len(ran)} classes'} ({len(ran)} of {n_all})"
        paper = {label: paper_numbers.class_averaged(dataset, metric, ran or None)}
        ours = bench.class_averaged(main, metric).assign(**{"class": label}) if len(main) else None
        dead = {(label, a, cp) for _, a, cp in dead}
    found = {} if ours is None else {(r["class"], r["head"], r["coupling"]): (r["mean"], r["std"]) for r in ours.to_dict("records")}
    return pd.DataFrame([{"class": c, "head": a, "coupling": cp, "paper_mean": pm, "paper_std": ps,
                          "our_mean": found.get((c, a, cp), (np.nan, np.nan))[0],
                          "our_std": found.get((c, a, cp), (np.nan, np.nan))[1], "all_failed": (c, a, cp) in dead}
                         for c, cols in paper.items() for (cp, a), (pm, ps) in cols.items()])


def side_by_side(cells: pd.DataFrame) -> pd.DataFrame:
    """``_table_cells`` as the paper prints it: a row per (metric, class), and per (arch, coupling) the
    paper's ``mean ± std`` beside ours ("–" where we have no run, "failed" where every run failed)."""
    def text(mean, std, failed=False):
        return "failed" if failed else "–" if mean != mean else f"{mean:.1f} ± {0.0 if std != std else std:.1f}"

    failed = cells["all_failed"] if "all_failed" in cells else [False] * len(cells)
    t = cells.assign(paper=[text(m, s) for m, s in zip(cells["paper_mean"], cells["paper_std"])],
                     ours=[text(m, s, f) for m, s, f in zip(cells["our_mean"], cells["our_std"], failed)])
    wide = t.pivot_table(index=["metric", "class"], columns=["head", "coupling"], values=["paper", "ours"],
                         aggfunc="first", sort=False)
    wide = wide.reorder_levels([1, 2, 0], axis=1)
    return wide[[(a, c, w) for a, c in dict.fromkeys(zip(t["head"], t["coupling"])) for w in ("paper", "ours")]]


def _table_claim(dataset: str, metrics: tuple[str, ...], per_class: bool):
    def check(src: Source) -> Finding:
        from .. import images as bench

        loaded, df = _image(src)
        cells = pd.concat([_table_cells(df, dataset, m, per_class).assign(metric=m) for m in metrics])
        if dataset not in set(df["dataset"]):
            raise NotRun(f"no {bench.DATASET_LABELS[dataset]} runs in chapter 07's records "
                         f"({bench.DATASET_LABELS[dataset]} data is not on this machine, or the profile "
                         "leaves it out)", basis=loaded.profile, detail=side_by_side(cells))
        ran = cells.dropna(subset=["our_mean"])
        gap = (ran["our_mean"] - ran["paper_mean"]).abs()
        ours = (f"{len(ran)} of the paper's {len(cells)} cells ({', '.join(sorted(set(ran['head'])))}; "
                f"{ran['class'].nunique()} class row(s)); |ours - paper| median {gap.median():.1f}, "
                f"max {gap.max():.1f} pp; {image_failures(df, datasets=(dataset,))}")
        _pretrained_only(loaded, df, ours=ours, detail=side_by_side(cells))
        _require_runs(loaded, df, (dataset,), IMAGE_ARCHS, ("affine", USF_COUPLING), ours=ours,
                      detail=side_by_side(cells))
        return finding(cells_rule(cells), ours, loaded, f"{len(ran)} cells", _image_conditions(loaded, df),
                       side_by_side(cells))
    return check


_CELL_RULE = (f"each cell (mean over seeds) within the larger of the paper's and our std, at least {MIN_TOL_PP} pp: "
              f">= {CELLS_REPRODUCED:.0%} of cells -> reproduced, >= {CELLS_PARTLY:.0%} -> partly; a cell whose runs "
              f"all failed counts as outside; judged only with ImageNet backbone weights and every class, "
              f"architecture and seed ({len(IMAGE_SEEDS)}) of the table recorded")
for _ds, _label in (("mvtec", "MVTec AD"), ("visa", "VisA")):
    _paper = ", ".join(f"{m.split('_')[0]} {c} / {a} {v[0]} ± {v[1]}" for m in ("image_auroc", "pixel_auroc")
                       for (c, a), v in paper_numbers.TABLE1[(_ds, m)].items() if a == "fastflow")
    claim(f"Table 1: {_label}", "image", "§5.2.2, Table 1",
          "Mean AUC-ROC and stdev. (%) over three seeds; dataset values are class-averaged.",
          f"class averages of FastFlow, CFlow and U-Flow, e.g. {_paper}",
          _CELL_RULE, "07_image_benchmarks")(
        _table_claim(_ds, ("image_auroc", "pixel_auroc"), per_class=False))
for _n, _ds, _m in ((2, "mvtec", "image_auroc"), (3, "mvtec", "pixel_auroc"), (4, "visa", "image_auroc"),
                    (5, "visa", "pixel_auroc")):
    _classes = [c for c in paper_numbers.PER_CLASS[(_ds, _m)] if c != "Average"]
    _paper = ", ".join(f"{c} / {a} {v[0]} ± {v[1]}" for (c, a), v in paper_numbers.PER_CLASS[(_ds, _m)][_classes[0]].items()
                       if a == "fastflow")
    claim(f"Table {_n}: {'MVTec AD' if _ds == 'mvtec' else 'VisA'} {_m.split('_')[0]}, per class", "image",
          f"App. F.1, Table {_n}", "The USF variants show improved average performance and stability.",
          f"{len(_classes)} classes × {len(paper_numbers.PER_CLASS[(_ds, _m)][_classes[0]])} models, mean ± std over 3 "
          "seeds, "
          f"e.g. {_classes[0]}, FastFlow: {_paper}", _CELL_RULE, "07_image_benchmarks")(
        _table_claim(_ds, (_m,), per_class=True))


def _pairs(df: pd.DataFrame, stat: str, coupling: str = USF_COUPLING, archs=IMAGE_ARCHS,
           datasets=IMAGE_DATASETS, metrics=("image_auroc", "pixel_auroc")) -> pd.Series:
    """Per (dataset, class, arch, metric) of ``datasets`` x ``archs`` x ``metrics``: ``stat`` ("mean" or "std" over
    the valid runs) of ``coupling`` minus that of affine (main experiment); pairs without both values are dropped."""
    from .. import images as bench

    main = df[(df["experiment"] == "main") & df["head"].isin(archs) & df["dataset"].isin(datasets)]
    out = []
    for metric in metrics:
        pc = bench.per_class(main, metric).set_index(["dataset", "class", "head", "coupling"])[stat].unstack("coupling")
        if {coupling, "affine"} <= set(pc.columns):
            out.append((pc[coupling] - pc["affine"]).reset_index(drop=True))
    return pd.concat(out, ignore_index=True).dropna() if out else pd.Series(dtype=float)


def variance_check(arch: str) -> Callable[[Source], Finding]:
    """§5.2.2's variance claim for one architecture: the sign rule on its per-class std differences USF - affine
    over both datasets x every class x image/pixel."""
    def check(src: Source) -> Finding:
        from .. import images as bench

        loaded, df = _image(src)
        d = _pairs(df, "std", archs=(arch,))
        ours = (f"{bench.ARCH_LABELS[arch]}: median std difference {d.median():+.2f} pp over {len(d)} cells"
                if len(d) else "no paired cells") + f"; {image_failures(df, archs=(arch,))}"
        _require_runs(loaded, df, IMAGE_DATASETS, (arch,), ("affine", USF_COUPLING), ours=ours)
        return sign_finding(d, -1, "std difference (pp)", ours, loaded, _image_conditions(loaded, df), of="cells")
    return check


def mean_check(arch: str) -> Callable[[Source], Finding]:
    """§5.2.2's mean claim for one architecture: per Table 1 cell (dataset x image/pixel), the class-averaged mean
    of USF minus affine is at least -MIN_TOL_PP ("effectively unchanged") or higher."""
    def check(src: Source) -> Finding:
        from .. import images as bench

        loaded, df = _image(src)
        main = df[(df["experiment"] == "main") & (df["head"] == arch)]
        parts = {}
        for ds in IMAGE_DATASETS:
            for metric in ("image_auroc", "pixel_auroc"):
                sub = main[main["dataset"] == ds]
                t = bench.class_averaged(sub, metric).set_index("coupling")["mean"] if len(sub) \
                    else pd.Series(dtype=float)
                if {"affine", USF_COUPLING} <= set(t.index):
                    delta = t[USF_COUPLING] - t["affine"]
                    parts[f"{bench.DATASET_LABELS[ds]} {metric.split('_')[0]} USF - affine {delta:+.2f} pp "
                          f">= -{MIN_TOL_PP:g}"] = bool(delta >= -MIN_TOL_PP)
        ours = (f"{bench.ARCH_LABELS[arch]}: class-averaged USF - affine: "
                + ", ".join(k.split(" >=")[0].replace(" USF - affine", "") for k in parts)
                + f"; {image_failures(df, archs=(arch,))}")
        _require_runs(loaded, df, IMAGE_DATASETS, (arch,), ("affine", USF_COUPLING), ours=ours)
        return finding(parts_rule(parts, none_is=CONTRADICTED), ours, loaded,
                       conditions=_image_conditions(loaded, df))
    return check


for _arch, _name in (("fastflow", "FastFlow"), ("uflow", "U-Flow"), ("cflow", "CFlow")):
    claim(f"§5.2.2: USFs reduce run-to-run variance: {_name}", "image", "§5.2.2, Tables 1-5",
          "while consistently and substantially reducing run-to-run variance",
          f"smaller std for the USF column of {_name} in Table 1 (all 4 cells) and most cells of Tables 2-5",
          f"sign rule on {_name}'s per-class std differences USF (additive + LU) - affine over MVTec AD and VisA x "
          f"every class x image/pixel (paired Wilcoxon, {ALPHA}, at least {MIN_PAIRS} pairs); judged only with every "
          f"class and {len(IMAGE_SEEDS)} seeds recorded", "07_image_benchmarks",
          label=f"{_name}: USF steadier")(variance_check(_arch))
    claim(f"§5.2.2: USFs improve the mean or leave it unchanged: {_name}", "image", "§5.2.2, Table 1",
          "either improves mean performance or leaves it effectively unchanged",
          f"{_name}: USF mean >= affine mean (up to noise) in each of Table 1's 4 rows",
          f"parts, one per Table 1 row (MVTec AD / VisA x image / pixel): {_name}'s class-averaged USF - affine mean "
          f">= -{MIN_TOL_PP:g} pp (\"effectively unchanged\"); all -> reproduced, some -> partly, "
          "none -> contradicted; "
          f"judged only with every class and {len(IMAGE_SEEDS)} seeds recorded", "07_image_benchmarks",
          label=f"{_name}: USF mean kept")(mean_check(_arch))


def fig4_check(coupling: str, metric: str) -> Callable[[Source], Finding]:
    """The sign rule on the per-class mean differences ``coupling`` - affine on MVTec AD, all architectures, one
    metric: Figure 4 (image) or Figure 10 (pixel)."""
    def check(src: Source) -> Finding:
        loaded, df = _image(src)
        d = _pairs(df, "mean", coupling, datasets=("mvtec",), metrics=(metric,))
        ours = (f"{coupling}: median {d.median():+.2f} pp over {len(d)} cells" if len(d) else "no paired cells") \
            + f"; {image_failures(df, couplings=('affine', coupling), datasets=('mvtec',))}"
        _require_runs(loaded, df, ("mvtec",), IMAGE_ARCHS, ("affine", coupling), ours=ours)
        return sign_finding(d, +1, "mean difference (pp)", ours, loaded, _image_conditions(loaded, df), of="cells")
    return check


for _coupling, _name in (("additive", "additive"), ("additive_lu", "additive + LU")):
    for _metric, _fig in (("image_auroc", "Figure 4, image"), ("pixel_auroc", "Figure 10, pixel")):
        claim(f"Figures 4/10: both USF variants gain over affine: {_name} ({_fig})", "image",
              "§5.2.3, Figure 4" if _fig.startswith("Figure 4") else "App. F.2, Figure 10",
              "Both ablations yield modest but consistent gains compared to the non-USF version.",
              f"class-wise mean change > 0 for {_name} on MVTec AD ({_fig.split(', ')[0]})",
              f"sign rule on the per-class mean differences {_name} - affine, MVTec AD {_fig.split(', ')[1]} AUC-ROC, "
              f"over classes x archs (paired Wilcoxon, {ALPHA}, at least {MIN_PAIRS} pairs); judged only with every "
              f"class, architecture and {len(IMAGE_SEEDS)} seeds recorded", "07_image_benchmarks",
              section="The ablation of Figures 4 and 10: change against the affine baseline",
              label=f"{_name} gains over affine ({_fig.split(', ')[1]})")(fig4_check(_coupling, _metric))


@claim("§5.2.3: U-Flow ablation deltas", "image", "§5.2.3, Figure 4",
       "improves mean AUC-ROC by +2.09 while reducing the run-to-run standard deviation by -3.93",
       "U-Flow image: additive +2.09 / -3.93, additive + LU +1.83 / -3.96 (mean / std change, pp)",
       "parts: our U-Flow class-wise mean change of mean and of std has the paper's sign, for both couplings "
       f"(4 signs); judged only with every MVTec AD class and {len(IMAGE_SEEDS)} seeds recorded",
       "07_image_benchmarks")
def _uflow_deltas(src: Source) -> Finding:
    from .. import images as bench

    loaded, df = _image(src)
    ab = bench.ablation(df[(df["experiment"] == "main") & (df["dataset"] == "mvtec")], "image_auroc")
    ab = ab[ab["head"] == "uflow"]
    mean = ab.groupby("coupling")[["d_mean", "d_std"]].mean()
    ours = "; ".join(f"{c}: {r['d_mean']:+.2f} / {r['d_std']:+.2f}" for c, r in mean.iterrows()) or "no U-Flow pairs"
    _require_runs(loaded, df, ("mvtec",), ("uflow",), ("affine", "additive", "additive_lu"), ours=ours)
    parts = {f"{c} {k}": bool(c in mean.index and np.sign(mean.loc[c, k]) == np.sign(v))
             for c, ref in paper_numbers.FIG4_UFLOW_DELTAS.items() for k, v in ref.items()}
    failures = image_failures(df, ("uflow",), ("affine", "additive", "additive_lu"), datasets=("mvtec",))
    return finding(parts_rule(parts), f"{ours}; {failures}",
                   loaded, f"{ab['class'].nunique()} classes", _image_conditions(loaded, df))


def _uflow_cell(df: pd.DataFrame, experiment: str, coupling: str, metric: str) -> tuple[float, float]:
    from .. import images as bench

    sub = df[(df["experiment"] == experiment) & (df["head"] == "uflow") & (df["coupling"] == coupling)
             & (df["dataset"] == "mvtec")]
    if sub.empty:
        raise NotRun(f"no U-Flow {coupling} runs of the {experiment!r} experiment in chapter 07's records")
    t = bench.class_averaged(sub, metric)
    if t.empty:
        raise NotRun(f"every U-Flow {coupling} run of the {experiment!r} experiment failed: no value to compare")
    t = t.iloc[0]
    return t["mean"], t["std"]


@claim("§5.2.3: the log-det prior has no significant effect", "image", "§5.2.3",
       "Integrating the log determinant prior showed no significant effect on aggregated performance",
       "U-Flow (USF) image 94.50 ± 0.40 -> 94.63 ± 0.22; pixel 96.97 ± 0.21 -> 96.55 ± 0.13",
       f"parts: with vs without the prior, class-averaged mean changes by at most {MIN_TOL_PP} pp (image, pixel); "
       f"judged only with every MVTec AD class and {len(IMAGE_SEEDS)} seeds recorded for both",
       "07_image_benchmarks")
def _logdet_prior(src: Source) -> Finding:
    loaded, df = _image(src)
    for experiment in ("main", "logdet_prior"):
        _require_runs(loaded, df, ("mvtec",), ("uflow",), ("additive_lu",), experiment)
    parts, ours = {}, []
    for metric in ("image_auroc", "pixel_auroc"):
        m0, s0 = _uflow_cell(df, "main", "additive_lu", metric)
        m1, s1 = _uflow_cell(df, "logdet_prior", "additive_lu", metric)
        parts[f"{metric}: |change| <= {MIN_TOL_PP} pp"] = abs(m1 - m0) <= MIN_TOL_PP
        ours.append(f"{metric.split('_')[0]} {_ms(m0, s0)} -> {_ms(m1, s1)}")
    ours += [f"{e}: {image_failures(df, ('uflow',), ('additive_lu',), e, ('mvtec',))}"
             for e in ("main", "logdet_prior")]
    return finding(parts_rule(parts), "; ".join(ours), loaded, conditions=_image_conditions(loaded, df))


@claim("§5.2.3: U-Flow on ResNet-18", "image", "§5.2.3",
       "we continue to see a clear advantage of USF over non-USF at image-level",
       "image 85.79 ± 10.70 -> 84.15 ± 13.67; pixel 94.83 ± 5.28 -> 94.95 ± 3.78 (the arrow's direction is not "
       "stated; the words say USF is better at image level and slightly weaker at pixel level)",
       f"parts (the paper's words): image USF - affine > 0; pixel USF - affine in [-{MIN_TOL_PP}, 0] pp; judged only "
       f"with every MVTec AD class and {len(IMAGE_SEEDS)} seeds recorded",
       "07_image_benchmarks")
def _resnet18(src: Source) -> Finding:
    loaded, df = _image(src)
    _require_runs(loaded, df, ("mvtec",), ("uflow",), ("affine", "additive_lu"), "backbone_resnet18")
    d = {m: _uflow_cell(df, "backbone_resnet18", "additive_lu", m)[0]
         - _uflow_cell(df, "backbone_resnet18", "affine", m)[0] for m in ("image_auroc", "pixel_auroc")}
    parts = {"image: USF better": d["image_auroc"] > 0,
             "pixel: USF slightly weaker": -MIN_TOL_PP <= d["pixel_auroc"] <= 0}
    failures = image_failures(df, ("uflow",), ("affine", "additive_lu"), "backbone_resnet18", ("mvtec",))
    ours = f"USF - affine: image {d['image_auroc']:+.2f}, pixel {d['pixel_auroc']:+.2f} pp; {failures}"
    return finding(parts_rule(parts), ours, loaded, conditions=_image_conditions(loaded, df))


@claim("Figure 9: U-Flow layers per class", "image", "App. D, Figure 9",
       "across 3 runs for the U-Flow architecture when using different flow layers",
       "per-class means and stds (figure only); the USF layers more stable than affine (§5.2.2)",
       "parts: U-Flow's class-averaged std below affine's, for additive and additive + LU, image and pixel "
       f"(4 comparisons); judged only with every MVTec AD class and {len(IMAGE_SEEDS)} seeds recorded",
       "07_image_benchmarks")
def _fig9(src: Source) -> Finding:
    loaded, df = _image(src)
    _require_runs(loaded, df, ("mvtec",), ("uflow",), ("affine", "additive", "additive_lu"))
    parts, ours = {}, []
    for metric in ("image_auroc", "pixel_auroc"):
        _, s_aff = _uflow_cell(df, "main", "affine", metric)
        for coupling in ("additive", "additive_lu"):
            _, s = _uflow_cell(df, "main", coupling, metric)
            parts[f"{metric} {coupling}"] = s < s_aff
            ours.append(f"{metric.split('_')[0]} {coupling} {s:.2f} vs affine {s_aff:.2f}")
    ours.append(image_failures(df, ("uflow",), ("affine", "additive", "additive_lu"), datasets=("mvtec",)))
    return finding(parts_rule(parts), "; ".join(ours), loaded, conditions=_image_conditions(loaded, df))

