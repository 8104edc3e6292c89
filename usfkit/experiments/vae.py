"""Chapter 06's experiments: VAE-USFlow vs VAE-NonUSFlow on MVTec AD (paper App. B.4, F.3,
Figure 11), with every failed run counted (App. D).

* Experiment 1 (:func:`run_embeddings`): image-level anomaly detection on ADBench's
  512-d ImageNet ResNet-18 embeddings of the 15 MVTec AD classes
  (``data_dir()/adbench_mvtec_resnet18/MVTec-AD_<class>.npz``; train and test pooled,
  ``y = 1`` defective).  One fixed split per class: ``train_frac`` of the normal samples,
  drawn with ``split_seed``, for training; the other normals and all anomalies for
  testing.  The model seed varies the initialisation only, so the spread over seeds is
  run-to-run stability, as in Figure 11.
* Experiment 2 (:func:`run_images`): the image model of App. B.4 (Wide-ResNet-50-2
  encoder, transposed-convolution decoder) end to end on MVTec AD images in their
  published layout, read with :mod:`usfkit.data.mvtec` (``data_dir()/mvtec_ad/<class>``
  or the other folder names listed there).

Every run goes through :func:`usfkit.sweep.run_sweep`: saved as it finishes under
``results/<profile>/06_vae_usflow/runs/`` and skipped when the chapter is run again.
"""
from __future__ import annotations

import contextlib
import functools
import io
import sys
from pathlib import Path
from typing import Callable

import pandas as pd
import torch

from .. import metrics, sweep
from ..models import vae
from ..data import adbench, data_dir, file_signature
from ..results import RunResult
from .tabular import PRIMARY_VAE_SCORE

__all__ = ["CHAPTER", "PRIORS", "EMBEDDING_FOLDER", "load_embeddings", "split_indices", "split_table",
           "run_embedding", "embedding_settings", "embedding_specs", "run_embeddings", "runs_frame", "summarize",
           "part_table", "prior_comparison", "failure_counts", "load_images", "image_classes", "run_image",
           "image_settings", "image_specs", "run_images", "SCORE_LABELS", "PRIMARY_SCORE", "IDENTICAL",
           "embedding_scores", "prior_pairs", "score_sensitivity", "identical_text", "paper_settings_text",
           "image_run_table", "committed_embeddings", "coverage_text", "class_table", "weights_text"]

CHAPTER = "06_vae_usflow"
#: The flow prior of each method, by its ``coupling`` (:data:`usfkit.models.flows.COUPLINGS`).
PRIORS = {"additive_lu": "VAE-USFlow", "affine_lu": "VAE-NonUSFlow"}
EMBEDDING_FOLDER = "adbench_mvtec_resnet18"


# --------------------------------------------------------------------------
# Experiment 1: MVTec AD embeddings
# --------------------------------------------------------------------------
def load_embeddings(cls: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``(X [n, 512], y [n])`` of one MVTec AD class, ADBench's ResNet-18 embeddings, read and checked
    by :func:`usfkit.data.adbench.read_npz` (the same reader as chapter 05's tabular data): a label
    other than 0/1, a NaN, or no normal or no defective row raises :class:`~usfkit.data.checks.DataError`
    naming the file."""
    path = data_dir() / EMBEDDING_FOLDER / f"MVTec-AD_{cls}.npz"
    if not path.exists():
        raise FileNotFoundError(
            f"{path} not found. Download ADBench's CV_by_ResNet18/MVTec-AD_{cls}.npz "
            "(github.com/Minqi824/ADBench, adbench/datasets/CV_by_ResNet18) into "
            f"{path.parent} or set USFKIT_DATA to the folder that holds {EMBEDDING_FOLDER}/.")
    return _read_embeddings(file_signature(path), path)


@functools.lru_cache(maxsize=16)
def _read_embeddings(signature: str, path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Cached by the file's signature (:func:`usfkit.data.file_signature`): an edited file is read again."""
    x, y = adbench.read_npz(path)
    return torch.from_numpy(x), torch.from_numpy(y)


def split_indices(y: torch.Tensor, train_frac: float, split_seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Train: ``train_frac`` of the normals (seeded permutation); test: the rest + all anomalies."""
    normal = torch.where(y == 0)[0]
    perm = normal[torch.randperm(len(normal), generator=torch.Generator().manual_seed(split_seed))]
    n_train = int(round(train_frac * len(normal)))
    return perm[:n_train], torch.cat([perm[n_train:], torch.where(y == 1)[0]])


def split_table(classes, train_frac: float, split_seed: int) -> pd.DataFrame:
    """Split sizes per class."""
    rows = []
    for cls in classes:
        _, y = load_embeddings(cls)
        tr, te = split_indices(y, train_frac, split_seed)
        rows.append({"class": cls, "train (normal)": len(tr), "test normal": int((y[te] == 0).sum()),
                     "test anomalous": int((y[te] == 1).sum())})
    return pd.DataFrame(rows)


def _evaluate(model: vae.VAEFlow, fit, epochs_allowed: int, x_test: torch.Tensor, y_test: torch.Tensor,
              **info) -> RunResult:
    """AUROC of every score part; non-finite scores turn an 'ok' fit into a failed run."""
    history = [{k: float(f"{v:.5g}") for k, v in row.items()} for row in fit.history]
    out = RunResult.from_fit(fit, epochs_allowed, metrics={f"auroc_{p}": None for p in vae.SCORE_PARTS},
                             info={"best_loss": fit.best_loss, "prior_constant_det": model.constant_det, **info,
                                   "history": history})
    if not fit.ok:
        return out
    if torch.cuda.is_available():  # fit() hands the model back on the CPU; score where it trained
        model.cuda()
    parts = model.score(x_test, "all", batch_size=64)
    bad = {p: int((~torch.isfinite(s)).sum()) for p, s in parts.items()}
    if any(bad.values()):
        return out.fail(f"non-finite test scores {bad}: the prior's determinant or the latent code exploded "
                        "at test time")
    out.metrics.update({f"auroc_{p}": metrics.auroc(y_test, s) for p, s in parts.items()})
    return out


def run_embedding(spec: dict, progress: str = "auto") -> RunResult:
    """Train and evaluate one (class, coupling, seed) on the embeddings."""
    x, y = load_embeddings(spec["class"])
    tr, te = split_indices(y, spec["train_frac"], spec["split_seed"])
    model = vae.tabular_vae(x.shape[1], spec["coupling"], latent_dim=spec["latent_dim"], seed=spec["seed"],
                            sigma_min=spec["sigma_min"])
    fit = vae.train_vae(model, x[tr], lr=spec["lr"], max_epochs=spec["epochs"], batch_size=spec["batch_size"],
                        patience=spec["patience"], min_delta=spec["min_delta"], seed=spec["seed"],
                        progress=progress, desc=f"{PRIORS[spec['coupling']]} · {spec['class']} · seed {spec['seed']}")
    return _evaluate(model, fit, spec["epochs"], x[te], y[te], latent_dim=model.latent_dim, n_train=len(tr),
                     n_test=len(te))


def embedding_settings(cfg) -> dict:
    """Every setting that changes an embedding run's result (the sweep keys runs by them)."""
    return dict(experiment="embeddings", train_frac=cfg.train_frac, split_seed=cfg.split_seed,
                latent_dim=cfg.latent_dim, sigma_min=cfg.sigma_min, lr=cfg.lr, epochs=cfg.epochs,
                batch_size=cfg.batch_size, patience=cfg.patience, min_delta=cfg.min_delta)


def embedding_specs(cfg) -> list[dict]:
    """One spec per (class, prior coupling, seed)."""
    return [{"class": c, "coupling": p, "seed": s} for c in cfg.classes for p in PRIORS for s in range(cfg.seeds)]


def run_embeddings(cfg, progress: str = "auto") -> pd.DataFrame:
    """Experiment 1 as a sweep; one row per run (failed runs included)."""
    records = sweep.run_sweep(CHAPTER, cfg.profile, embedding_specs(cfg), lambda s: run_embedding(s, progress),
                              settings=embedding_settings(cfg), desc="VAE runs (embeddings)")
    return runs_frame(records)


def runs_frame(records: list) -> pd.DataFrame:
    """The sweep's records as a table (the per-epoch ``history`` stays in a column)."""
    df = sweep.frame(records)
    df["method"] = df["coupling"].map(PRIORS)
    return df


def summarize(runs: pd.DataFrame, part: str = "balanced") -> pd.DataFrame:
    """Per class and method: mean ± std image AUROC over the valid runs, and how many runs
    were valid / failed (Figure 11 marks the number of valid runs)."""
    return sweep.summarize(runs, ["class", "method"], f"auroc_{part}")


def part_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean AUROC over valid runs and classes of each score part, per method."""
    ok = runs[runs["ok"]]
    return pd.DataFrame({p: ok.groupby("method")[f"auroc_{p}"].mean() for p in vae.SCORE_PARTS})


def prior_comparison(runs: pd.DataFrame, parts=("balanced", "latent", "reconstruction", "combined")) -> pd.DataFrame:
    """VAE-USFlow minus VAE-NonUSFlow: per class (and the mean over classes), the difference of the mean
    AUC-ROC over valid runs for each score part.  Classes where one prior has no valid run are NaN."""
    ok = runs[runs["ok"].astype(bool)]
    usf, non = (ok[ok["method"] == m].groupby("class")[[f"auroc_{p}" for p in parts]].mean()
                for m in PRIORS.values())
    diff = (usf - non).rename(columns=lambda c: c.removeprefix("auroc_"))
    diff.loc["mean over classes"] = diff.mean()
    return diff


def failure_counts(runs: pd.DataFrame) -> pd.DataFrame:
    """Failed runs per method, with the first failure message."""
    rows = []
    for method, g in runs.groupby("method"):
        bad = g[~g["ok"]]
        rows.append({"method": method, "runs": len(g), "failed": len(bad),
                     "classes with a failure": ", ".join(sorted(bad["class"].unique())),
                     "first failure": bad["failure"].iloc[0] if len(bad) else ""})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------
# Experiment 2: the image model on MVTec AD images
# --------------------------------------------------------------------------
@functools.lru_cache(maxsize=4)
def load_images(cls: str, image_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(x_train [n,3,S,S], x_test, y_test)`` of one MVTec AD class (ImageNet-normalised),
    from the layout ``<root>/<class>/{train,test}/...`` that :mod:`usfkit.data.mvtec` finds."""
    from ..data.mvtec import MVTecAD

    def stack(ds):
        items = [ds[i] for i in range(len(ds))]
        return torch.stack([it["image"] for it in items]), torch.tensor([it["label"] for it in items])

    x_train, _ = stack(MVTecAD(cls, "train", image_size))
    x_test, y_test = stack(MVTecAD(cls, "test", image_size))
    return x_train, x_test, y_test


def image_classes(cfg) -> list[str]:
    """``cfg.image_classes``, or every MVTec AD class found on this machine when it is ``"available"``."""
    if cfg.image_classes == "available":
        from ..data.mvtec import mvtec_available

        found = mvtec_available()
        if not found:
            raise FileNotFoundError(f"no MVTec AD class found under {data_dir()}/mvtec_ad (see usfkit.data.mvtec)")
        return found
    return list(cfg.image_classes)


def _quietly(build: Callable[[], vae.VAEFlow]) -> vae.VAEFlow:
    """``build()`` without torchvision's "Downloading: <url>" line when the download fails: offline, that line only
    precedes the failure to fetch the ImageNet weights, which the random-weights warning says (and every run
    records ``pretrained_loaded``).  Everything else it writes to stdout/stderr is written out, after it."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        model = build()
    for captured, stream in ((out, sys.stdout), (err, sys.stderr)):
        lines = captured.getvalue().splitlines(keepends=True)
        stream.write("".join(line for line in lines
                             if model.encoder.pretrained_loaded or not line.startswith("Downloading")))
    return model


def run_image(spec: dict, progress: str = "auto") -> RunResult:
    """Train and evaluate the image VAE on one class."""
    x_train, x_test, y_test = load_images(spec["class"], spec["image_size"])
    model = _quietly(lambda: vae.image_vae(spec["image_size"], spec["coupling"], latent_dim=spec["latent_dim"],
                                           seed=spec["seed"], pretrained=spec["pretrained"],
                                           train_backbone=spec["train_backbone"], sigma_min=spec["sigma_min"]))
    batch = spec["batch_size"] + (len(x_train) % spec["batch_size"] == 1)  # BatchNorm needs 2+ per batch
    fit = vae.train_vae(model, x_train, lr=spec["lr"], max_epochs=spec["epochs"], batch_size=batch,
                        patience=spec["patience"], min_delta=spec["min_delta"], seed=spec["seed"], progress=progress,
                        desc=f"{PRIORS[spec['coupling']]} (images) · {spec['class']} · seed {spec['seed']}")
    return _evaluate(model, fit, spec["epochs"], x_test, y_test, pretrained_loaded=model.encoder.pretrained_loaded,
                     n_train=len(x_train), n_test=len(x_test))


def image_settings(cfg) -> dict:
    """Every setting that changes an image run's result."""
    return dict(experiment="images", image_size=cfg.image_size, latent_dim=cfg.image_latent_dim,
                pretrained=cfg.pretrained, train_backbone=cfg.train_backbone, sigma_min=cfg.sigma_min,
                lr=cfg.image_lr, epochs=cfg.image_epochs, batch_size=cfg.image_batch_size,
                patience=cfg.image_patience, min_delta=cfg.min_delta)


def image_specs(cfg) -> list[dict]:
    return [{"class": c, "coupling": p, "seed": s} for c in image_classes(cfg) for p in PRIORS
            for s in range(cfg.image_seeds)]


def run_images(cfg, progress: str = "auto") -> pd.DataFrame:
    """Experiment 2 as a sweep; one row per run."""
    records = sweep.run_sweep(CHAPTER, cfg.profile, image_specs(cfg), lambda s: run_image(s, progress),
                              settings=image_settings(cfg), desc="VAE runs (images)")
    return runs_frame(records)


# --------------------------------------------------------------------------
# One VAE score, the paper's; the others as a sensitivity table (chapters 05 and 06)
# --------------------------------------------------------------------------
#: The VAE scores the book compares (chapter 05's ``tabular.VAE_SCORES``), as a table names them.  §4.4:
#: "we combine the latent likelihood with a reconstruction score"; the book reads that as ``balanced`` (both
#: parts standardised on the training normals, then summed: :meth:`usfkit.models.vae.VAEFlow.score`).
SCORE_LABELS = {"balanced": "balanced", "elbo": "negative ELBO", "reconstruction": "reconstruction alone",
                "latent": "latent alone (the prior)"}
PRIMARY_SCORE = PRIMARY_VAE_SCORE  # the one VAE score of the book, as usfkit.experiments.tabular defines it
#: Two AUC-ROCs closer than this are the same ranking (float rounding).
IDENTICAL = 1e-9


def embedding_scores(runs: pd.DataFrame) -> pd.DataFrame:
    """Experiment 1's valid runs, one row each: ``class``, ``seed``, ``method`` and the AUC-ROC of every score
    of :data:`SCORE_LABELS` (``elbo`` is the part ``combined``, the negative ELBO at the posterior mean)."""
    ok = runs[runs["ok"].astype(bool)]
    cols = {s: ok[f"auroc_{'combined' if s == 'elbo' else s}"].to_numpy() for s in SCORE_LABELS}
    return pd.DataFrame({"class": ok["class"].to_numpy(), "seed": ok["seed"].to_numpy(),
                         "method": ok["method"].to_numpy(), **cols})


def prior_pairs(scores: pd.DataFrame, key: list[str], score: str) -> pd.DataFrame:
    """The AUC-ROC under ``score`` of each VAE-USFlow run beside its VAE-NonUSFlow twin (same ``key``), one row
    per pair where both have that score; columns named by method."""
    methods = list(PRIORS.values())
    have = scores.dropna(subset=[score])
    wide = have.pivot_table(index=key, columns="method", values=score)
    if not set(methods) <= set(wide.columns):
        return pd.DataFrame(columns=methods)
    return wide[methods].dropna()


def score_sensitivity(scores: pd.DataFrame, key: list[str], primary: str = PRIMARY_SCORE) -> pd.DataFrame:
    """How the comparison of the two priors depends on the score.  ``scores``: one row per valid run with the
    ``key`` columns that pair a VAE-USFlow run with its VAE-NonUSFlow twin, ``method``, and one AUC-ROC column
    per score of :data:`SCORE_LABELS`.  Over the pairs whose both runs have every score (the same pairs in
    every row), per score (``primary`` first): the mean AUC-ROC (%) of each prior, the mean difference
    USF - NonUSF (pp), rounded to 2 decimals, and in how many pairs USF is higher, equal (to :data:`IDENTICAL`)
    or lower, in one column ``"USF higher / same / lower"`` (a narrow table: AUC-ROC in % with 1 decimal, the
    difference in pp with 2).  Empty when no pair has every score."""
    names = [s for s in SCORE_LABELS if s in scores.columns]
    every = scores.dropna(subset=names)
    usf, non = PRIORS.values()
    rows = {}
    for s in [primary] + [n for n in names if n != primary]:
        w = prior_pairs(every, key, s)
        if w.empty:
            return pd.DataFrame()
        d = w[usf] - w[non]
        rows[SCORE_LABELS[s] + (" (primary)" if s == primary else "")] = {
            f"{usf} (%)": round(100 * w[usf].mean(), 1) + 0, f"{non} (%)": round(100 * w[non].mean(), 1) + 0,
            "mean Δ (pp)": round(100 * d.mean(), 2) + 0,  # + 0: no "-0.0" cells
            "USF higher / same / lower": f"{int((d > IDENTICAL).sum())} / {int((d.abs() <= IDENTICAL).sum())} / "
                                         f"{int((d < -IDENTICAL).sum())}"}
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.index.name = f"score ({len(w)} pairs)"
    return out


def identical_text(scores: pd.DataFrame, key: list[str], primary: str = PRIMARY_SCORE) -> str:
    """How often a score cannot tell the two priors apart, in Markdown: the runs whose negative ELBO ranks the test
    set exactly as its reconstruction part alone does (AUC-ROCs equal to :data:`IDENTICAL`), and per score the
    pairs of :func:`prior_pairs` with equal AUC-ROCs, each over the runs or pairs that have the scores compared."""
    both = scores.dropna(subset=["elbo", "reconstruction"])
    same = int(((both["elbo"] - both["reconstruction"]).abs() <= IDENTICAL).sum())
    usf, non = PRIORS.values()

    def ties(score: str) -> str:
        w = prior_pairs(scores, key, score)
        return f"{int(((w[usf] - w[non]).abs() <= IDENTICAL).sum())} of {len(w)} pairs"
    others = [s for s in SCORE_LABELS if s not in ("elbo", primary)]
    eps = f"{IDENTICAL:.0e}".replace("e-0", "e-")  # 1e-9
    return (f"Under the negative ELBO a VAE's AUC-ROC equals that of its reconstruction part alone in {same} of "
            f"{len(both)} runs, and {usf}'s equals its {non} twin's (to {eps}) in {ties('elbo')}: there the "
            f"score compares two autoencoders, not two priors. Under the {primary} score (the book's) the two priors "
            f"give identical AUC-ROCs in {ties(primary)}; " + "; ".join(f"under the {s} part alone in {ties(s)}"
                                                                       for s in others) + ".")


def paper_settings_text(runs: pd.DataFrame, score: str = PRIMARY_SCORE) -> str:
    """Chapter 06's reading of experiment 1's runs (``runs``: :func:`runs_frame`) against Figure 11 and App. D, in
    Markdown, one bullet "Paper: ..." per claim with "Ours: ..." under it: under ``score``, the mean over classes of
    each prior's per-class mean AUC-ROC, the mean and median per-class difference and on how many classes USF is
    higher (paired Wilcoxon; "not significantly" where p >= 0.05), beside the same count over run pairs (one
    VAE-USFlow run and its VAE-NonUSFlow twin of the same class and seed), the unit of the "One VAE score" table;
    the same for the std over seeds (the run-to-run spread); the failed runs of each prior and the classes below
    chance."""
    from ..paired import p_text, paired_test

    s = summarize(runs, score)
    usf, non = PRIORS.values()
    mean = s.pivot(index="class", columns="method", values="mean") * 100
    std = s.pivot(index="class", columns="method", values="std") * 100
    m, sd = paired_test(mean[usf] - mean[non]), paired_test(std[usf] - std[non])
    pairs = paired_test(prior_pairs(embedding_scores(runs), ["class", "seed"], score).pipe(lambda w: w[usf] - w[non]))
    seeds = runs.groupby(["class", "method"]).size().max()
    failed = runs.assign(failed=~runs["ok"].astype(bool)).groupby("method")["failed"].agg(["sum", "size"])
    below = s[(s["valid"] > 0) & (s["mean"] < 0.5)]
    below_text = ", ".join(f"{r['class']} ({r['method']})" for _, r in below.iterrows()) or "none"

    def verdict(t: dict, word: str, other: str) -> str:
        significant = t["p"] < 0.05
        return (word if t["mean"] > 0 else other) if significant else \
            f"not significantly {word if t['mean'] > 0 else other}"

    return "\n".join([
        f"What the {len(runs)} committed full-profile runs of experiment 1 show ({mean.shape[0]} classes x 2 priors x "
        f"{seeds} seeds, AUC-ROC of the {score} score; p: two-sided Wilcoxon signed-rank test on the paired "
        f"differences). Two units are counted: *classes* (each class's mean over its seeds, {m['n']} pairs) and "
        f"*run pairs* (a {usf} run and its {non} twin of the same class and seed, {pairs['n']} pairs, the unit of the "
        f"\"One VAE score\" table below).",
        "",
        "- **Paper: \"USF consistently achieves higher average performance\"** (Figure 11)",
        f"  - Ours: over the {m['n']} classes, {usf}'s per-class mean AUC-ROC averages {mean[usf].mean():.2f} % "
        f"against {non}'s {mean[non].mean():.2f} % (means over classes): a mean difference of {m['mean']:+.2f} pp "
        f"(median {m['median']:+.2f} pp), {verdict(m, 'higher', 'lower')} ({p_text(m['p'])}). {usf} is higher on "
        f"{m['higher']} of {m['n']} classes and lower on {m['lower']}; counted by run pair instead, higher in "
        f"{pairs['higher']}, equal in {pairs['equal']} and lower in {pairs['lower']} of {pairs['n']} pairs "
        f"({p_text(pairs['p'])}).",
        "- **Paper: \"markedly improved run-to-run performance stability\"** (Figure 11)",
        f"  - Ours: the std over seeds averages {std[usf].mean():.2f} pp for {usf} and {std[non].mean():.2f} pp for "
        f"{non} (means over {sd['n']} classes): a mean difference of {sd['mean']:+.2f} pp (median "
        f"{sd['median']:+.2f} pp), {verdict(sd, 'larger', 'smaller')} ({p_text(sd['p'])}); {usf} varies less on "
        f"{sd['lower']} of {sd['n']} classes and more on {sd['higher']}.",
        "- **Paper: \"VAE-NonUSFlows shows very instable behavior\"** (App. D; Figure 11 marks failed runs)",
        f"  - Ours: {int(failed.loc[usf, 'sum'])} of {int(failed.loc[usf, 'size'])} {usf} runs and "
        f"{int(failed.loc[non, 'sum'])} of {int(failed.loc[non, 'size'])} {non} runs failed; classes whose mean is "
        f"below chance: {below_text}."])


def image_run_table(images: pd.DataFrame, score: str = PRIMARY_SCORE) -> pd.DataFrame:
    """Experiment 2's runs (``images``: :func:`run_images`) as a narrow reader's table, one row per run: class,
    prior, seed, epochs run, whether the encoder had its ImageNet weights, and the AUC-ROC of ``score`` in % with 1
    decimal (``"failed"`` for a failed run; the other parts are :func:`part_table`'s)."""
    auroc = [f"{100 * a:.1f}" if ok and a == a else "failed" for ok, a in zip(images["ok"], images[f"auroc_{score}"])]
    return pd.DataFrame({"class": images["class"].to_numpy(), "prior": images["method"].to_numpy(),
                         "seed": images["seed"].to_numpy(), "epochs": images["epochs_run"].to_numpy(),
                         "ImageNet weights": ["yes" if w else "no" for w in images["pretrained_loaded"].astype(bool)],
                         f"AUC-ROC, {score} (%)": auroc})


def committed_embeddings() -> tuple[list, int]:
    """The full profile's committed run records of experiment 1 (every class x prior x seed of the full profile),
    read without printing, and how many of its runs have no record yet."""
    from .. import profiles
    from ..results import RunRecord

    cfg = profiles.of(CHAPTER, "full")
    paths = sweep.record_paths(CHAPTER, "full", embedding_specs(cfg), embedding_settings(cfg))
    return [RunRecord.from_file(p) for p in paths if p.exists()], sum(not p.exists() for p in paths)


def coverage_text(records: list, missing: int) -> str:
    """What :func:`committed_embeddings` found, in one Markdown sentence, with experiment 2's committed runs."""
    classes = len({r.spec["class"] for r in records})
    seeds = len({r.spec["seed"] for r in records})
    images = [r for r in sweep.load_runs(CHAPTER, "full") if r.settings.get("experiment") == "images"]
    return (f"The full profile's committed runs of experiment 1: {len(records)} ({classes} classes x 2 priors x "
            f"{seeds} seeds{f', {missing} not run yet' if missing else ''}; {sum(not r.ok for r in records)} failed). "
            f"Of experiment 2 (the Wide-ResNet-50-2 image model at 256 px), {len(images)} committed runs"
            + ("" if images else ": at the paper's sizes it needs a GPU, which this project's full runs did not have")
            + ".")


def class_table(summary: pd.DataFrame) -> pd.DataFrame:
    """:func:`summarize` as a reader's table: classes x priors, ``mean ± std`` of the AUC-ROC in % (1 decimal) and the
    valid runs (``valid/runs``)."""
    cells = summary.assign(
        **{"AUC-ROC (%)": [f"{100 * m:.1f} ± {100 * s:.1f}" if v > 1 else f"{100 * m:.1f}" if v else "no valid run"
                           for m, s, v in zip(summary["mean"], summary["std"], summary["valid"])],
           "valid runs": [f"{v}/{n}" for v, n in zip(summary["valid"], summary["runs"])]})
    table = cells.pivot(index="class", columns="method", values=["AUC-ROC (%)", "valid runs"])
    methods = [m for m in PRIORS.values() if m in set(summary["method"])]
    return table.reindex(columns=methods, level=1).reindex(list(dict.fromkeys(summary["class"])))


def weights_text(images: pd.DataFrame) -> str:
    """Whether experiment 2's runs (``images``: :func:`run_images`) had the ImageNet encoder weights, in Markdown."""
    loaded = images["pretrained_loaded"].astype(bool)
    if loaded.all():
        return f"All {len(images)} image runs loaded the ImageNet weights of the Wide-ResNet-50-2 encoder."
    return (f"{int((~loaded).sum())} of the {len(images)} image runs ran with **random** encoder weights (the ImageNet "
            "weights could not be loaded here): their AUC-ROCs test the architecture, they do not reproduce Figure 11.")
