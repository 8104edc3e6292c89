"""The ``quick`` and ``full`` settings of every chapter, in one place.

``quick`` runs each chapter on a 2-core laptop CPU in a few minutes (the default,
used by the tests); ``full`` follows the paper's settings and is meant for a GPU.
A chapter's parameters cell sets ``profile`` and optional overrides; the cell after
it calls :func:`resolve`.  The environment variable ``USFKIT_PROFILE``, when set,
replaces the notebook's ``profile`` (nbval cannot pass parameters).
"""
from __future__ import annotations

import os
from types import SimpleNamespace
from typing import Any

__all__ = ["ADBENCH_PROTOCOLS", "PROFILES", "resolve", "of", "pick"]

#: ADBench's two data protocols, named here beside the settings that use them so that a command line lists them
#: without importing torch (usfkit.data.adbench.PROTOCOLS is this).
ADBENCH_PROTOCOLS = ("adbench", "adbench-noresample")

PROFILES: dict[str, dict[str, dict[str, Any]]] = {
    "01_preliminaries": {
        "quick": dict(n_train=1000, n_test=1000, n_outliers=60, noise=0.08, epochs=200, blocks=4, hidden=64,
                      layers=2, lr=3e-3, batch_size=128, patience=20, svdd_widths=[64, 32, 2], svdd_epochs=100,
                      svdd_pretrain_epochs=30, svdd_lr=1e-3, seed=0),
        "full": dict(n_train=5000, n_test=5000, n_outliers=300, noise=0.08, epochs=300, blocks=8, hidden=128,
                     layers=3, lr=1e-3, batch_size=128, patience=20, svdd_widths=[128, 64, 2], svdd_epochs=300,
                     svdd_pretrain_epochs=50, svdd_lr=1e-3, seed=0),
    },
    "02_loss_derivation": {
        "quick": dict(dim=8, n_train=4000, n_val=1000, n_test=2000, n_jacobian=500, epochs=60, patience=10, blocks=4,
                      hidden=64, layers=2, clamp=2.0, lr=2e-3, batch_size=128, center=1.0, seed=0),
        "full": dict(dim=32, n_train=20000, n_val=5000, n_test=10000, n_jacobian=2000, epochs=200, patience=10, blocks=8,
                     hidden=128, layers=3, clamp=2.0, lr=1e-3, batch_size=256, center=1.0, seed=0),
    },
    "03_collapse": {
        # threads: torch CPU threads (1 = fastest for these small models on a shared CPU; None = torch default).
        # §1 Deep SVDD collapse vs USFlow on the asymmetric mixture (dim) with low-density anomalies;
        # §2 Prop. 1 Monte Carlo; §3 NonUSF vs USF at a high learning rate without prior (explode_*);
        # §4 LU prior samples (prior_*) and a prior-scale sweep (sigmas, sweep_runs seeds) on data that fill a
        # sweep_rank-dimensional subspace of R^sweep_dim (sweep_*), where the likelihood is unbounded.
        "quick": dict(dim=8, n_train=2000, n_test=1000, n_anomalies=200, anomaly_quantile=0.01,
                      svdd_depth=3, svdd_epochs=40, pretrain_epochs=10, svdd_lr=3e-3,
                      flow_epochs=30, flow_lr=2e-3, blocks=4, hidden=64, layers=2, batch_size=128,
                      mc_samples=200_000, prop1_dims=[3, 5, 10, 50], alphas=[0.5, 1.0, 2.0, 4.0, 8.0],
                      inversion_dim=10, inversion_samples=20_000,
                      explode_dim=32, explode_n_train=1000, explode_epochs=15, explode_lr=0.07, explode_blocks=4,
                      explode_runs=3, prior_shape=[16, 4, 4], prior_sigma=1.0, prior_samples=50_000,
                      sweep_dim=16, sweep_rank=4, sweep_n_train=1000, sweep_epochs=40, sweep_lr=1e-2,
                      sigmas=[0.1, 1.0, 10.0, None], sweep_runs=2, threads=1, seed=0),
        "full": dict(dim=32, n_train=20000, n_test=5000, n_anomalies=1000, anomaly_quantile=0.01,
                     svdd_depth=4, svdd_epochs=200, pretrain_epochs=50, svdd_lr=1e-3,
                     flow_epochs=200, flow_lr=1e-3, blocks=8, hidden=128, layers=3, batch_size=256,
                     mc_samples=2_000_000, prop1_dims=[3, 5, 10, 50, 128], alphas=[0.5, 1.0, 2.0, 4.0, 8.0, 16.0],
                     inversion_dim=10, inversion_samples=100_000,
                     explode_dim=128, explode_n_train=20000, explode_epochs=100, explode_lr=1e-2, explode_blocks=10,
                     explode_runs=10, prior_shape=[64, 8, 8], prior_sigma=1.0, prior_samples=200_000,
                     sweep_dim=64, sweep_rank=16, sweep_n_train=20000, sweep_epochs=100, sweep_lr=1e-3,
                     sigmas=[0.01, 0.1, 1.0, 10.0, None], sweep_runs=5, threads=1, seed=0),
    },
    "04_alignment": {
        "quick": dict(dims=[2, 8, 32, 128], n_train=3000, n_val=1000, n_test=2000, epochs=25, patience=5,
                      search_runs=1, blocks=[4], layers=[2], hidden=64, lrs=[2e-3], batch_sizes=[128],
                      svdd_depths=[2], svdd_pretrain_epochs=5, seed=0),
        "full": dict(dims=[2, 8, 32, 128], n_train=20000, n_val=5000, n_test=10000, epochs=300, patience=10,
                     search_runs=10, blocks=[2, 4, 6, 8, 10], layers=[2, 3], hidden=128, lrs=[1e-4, 3e-4, 1e-3],
                     batch_sizes=[128, 256], svdd_depths=[2, 3, 4, 5, 6], svdd_pretrain_epochs=20, seed=0),
    },
    "05_tabular_benchmark": {
        # §5.1.1's shared configuration; datasets: ADBench names (or "all" present), seeds: how many (seed, seed+1, ...;
        # full: 1, 2, 3 as ADBench seeds its generator). protocol: usfkit.data.adbench.PROTOCOLS ("adbench" = ADBench's
        # generator exactly, the closest match to the paper; "adbench-noresample" = without resampling small sets, which
        # leaks test normals into training). tie: |difference| in AUC-ROC counted as a tie in the pairwise comparison.
        "quick": dict(datasets=["4_breastw", "14_glass", "29_Pima", "39_vertebral", "42_WBC", "45_wine"],
                      methods=["USFlow", "NonUSFlow", "VAE-USFlow", "VAE-NonUSFlow", "OneFlow", "DOHSC", "DO2HSC"],
                      seeds=2, epochs=20, patience=5, min_delta=1e-4, batch_size=64, lr=1e-4, blocks=4, hidden=256,
                      layers=4, clamp=2.0, prior_sigma=1.0, nu=0.05, dohsc_lr=1e-4, dohsc_pretrain_epochs=3,
                      tie=0.005, accelerator="auto", protocol="adbench-noresample", seed=1),
        "full": dict(datasets="all",
                     methods=["USFlow", "NonUSFlow", "VAE-USFlow", "VAE-NonUSFlow", "OneFlow", "DOHSC", "DO2HSC"],
                     seeds=3, epochs=200, patience=5, min_delta=1e-4, batch_size=64, lr=1e-4, blocks=4, hidden=256,
                     layers=4, clamp=2.0, prior_sigma=1.0, nu=0.05, dohsc_lr=1e-4, dohsc_pretrain_epochs=10,
                     tie=0.005, accelerator="auto", protocol="adbench", seed=1),
    },
    "06_vae_usflow": {
        # Exp. 1 (MVTec AD ResNet-18 embeddings): classes, seeds per (class, prior), one fixed split (train_frac of the
        # normals, split_seed); latent_dim None = usfkit.models.vae.default_latent_dim (512 -> 32); §5.1.1's training rule.
        # Exp. 2 (MVTec AD images, Wide-ResNet-50-2 encoder): image_classes (a list, or "available" = every class under
        # data_dir()/mvtec_ad), image_* settings; pretrained "auto" | True | False.
        "quick": dict(classes=["bottle", "carpet", "screw"], seeds=2, train_frac=0.7, split_seed=0, latent_dim=None,
                      sigma_min=0.1, lr=1e-3, epochs=40, batch_size=64, patience=5, min_delta=1e-4,
                      image_classes=["bottle"], image_size=32, image_latent_dim=32, pretrained="auto",
                      train_backbone=True, image_lr=1e-3, image_epochs=3, image_batch_size=32, image_patience=3,
                      image_seeds=1),
        "full": dict(classes=["bottle", "cable", "capsule", "carpet", "grid", "hazelnut", "leather", "metal_nut", "pill",
                              "screw", "tile", "toothbrush", "transistor", "wood", "zipper"],
                     seeds=3, train_frac=0.7, split_seed=0, latent_dim=None, sigma_min=0.1, lr=1e-4, epochs=200,
                     batch_size=64, patience=5, min_delta=1e-4,
                     image_classes="available", image_size=256, image_latent_dim=128, pretrained="auto",
                     train_backbone=True, image_lr=1e-4, image_epochs=100, image_batch_size=32, image_patience=3,
                     image_seeds=3),
    },
    "07_image_benchmarks": {
        # datasets/classes: what is searched under the data dir (classes=None: every class found);
        # backbones: per-architecture backbone replacing App. E's (quick: U-Flow on ResNet-18, §5.2.3's ablation
        # backbone, because MS-CaiT is far too slow on a CPU); pretrained: "auto" = ImageNet weights when they can
        # be downloaded, else random (said in every record); backbone_seed: the random backbone's seed;
        # image_size=None: each architecture's input size (256 px, U-Flow 448 px); ablations: §5.2.3;
        # speedup_epochs: epochs of the feature-cache timing.
        "quick": dict(datasets=["mvtec"], classes=["bottle"], archs=["fastflow"],
                      couplings=["affine", "additive", "additive_lu"], seeds=[0, 1], image_size=48, epochs=12,
                      patience=3, batch_size=32, pretrained=False, backbone_seed=0, backbones={"uflow": "resnet18"},
                      ablations=[], prior_sigma=1.0, speedup_epochs=2, threads=1),
        "full": dict(datasets=["mvtec", "visa"], classes=None, archs=["fastflow", "uflow", "cflow"],
                     couplings=["affine", "additive", "additive_lu"], seeds=[0, 1, 2], image_size=None, epochs=100,
                     patience=3, batch_size=32, pretrained="auto", backbone_seed=0, backbones={},
                     ablations=["logdet_prior", "backbone_resnet18"], prior_sigma=1.0, speedup_epochs=3,
                     threads=None),
    },
    "08_reproduction_report": {
        # The profile picks the results the report reads (quick: each chapter's full results when committed, else
        # its quick ones; full: full only).  eq6_*: the Eq. 6 check computed in the chapter (usfkit.experiments.claims.eq6_check).
        "quick": dict(eq6_dim=4, eq6_samples=2000, eq6_blocks=3, eq6_hidden=16, seed=0),
        "full": dict(eq6_dim=4, eq6_samples=2000, eq6_blocks=3, eq6_hidden=16, seed=0),
    },
}


def resolve(chapter: str, profile: str = "quick", **overrides: Any) -> SimpleNamespace:
    """Settings of ``chapter`` in ``profile`` (replaced by ``$USFKIT_PROFILE`` when it is set);
    overrides that are not ``None`` replace them.

    >>> cfg = resolve("04_alignment", "quick", epochs=3)
    >>> cfg.profile, cfg.epochs
    ('quick', 3)
    """
    return of(chapter, os.environ.get("USFKIT_PROFILE") or profile, **overrides)


def of(chapter: str, profile: str, **overrides: Any) -> SimpleNamespace:
    """``chapter``'s settings in ``profile`` as :func:`resolve` gives them, but never replaced by
    ``$USFKIT_PROFILE``: what a quick run needs to name the full profile's runs (and show them)."""
    if chapter not in PROFILES:
        raise KeyError(f"unknown chapter {chapter!r}; known chapters: {', '.join(PROFILES)}")
    if profile not in PROFILES[chapter]:
        raise ValueError(f"unknown profile {profile!r} for {chapter}: use one of {', '.join(PROFILES[chapter])}")
    settings = dict(PROFILES[chapter][profile])
    unknown = set(overrides) - set(settings)
    if unknown:
        raise TypeError(f"{chapter} has no setting(s) {sorted(unknown)}; settings are {sorted(settings)}")
    given = {k: v for k, v in overrides.items() if v is not None}
    for key, value in given.items():
        least = _least(key)
        if isinstance(settings[key], list) and least is not None:  # a list of seeds (chapter 07), not a count
            if not isinstance(value, list) or not value or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value):
                raise ValueError(f"{chapter}: {key} must be a non-empty list of whole numbers >= 0, got {value!r}")
        elif least is not None and (isinstance(value, bool) or not isinstance(value, int) or value < least):
            raise ValueError(f"{chapter}: {key} must be a whole number >= {least}, got {value!r}"
                             + (" (a training needs at least one epoch)" if least == 1 and "epochs" in key else ""))
    settings.update(given)
    return SimpleNamespace(profile=profile, chapter=chapter, **settings)


def _least(key: str) -> int | None:
    """The smallest value a count setting may take (``None``: not a count): epoch budgets, seeds and runs at
    least 1 (``epochs=-1`` would train without end, ``0`` record an untrained model), pretraining epochs 0."""
    if key.endswith("epochs"):
        return 0 if "pretrain" in key else 1
    return 1 if key in ("seeds", "search_runs", "explode_runs", "sweep_runs", "image_seeds") else None


def pick(cfg: SimpleNamespace, names) -> dict[str, Any]:
    """The settings ``names`` of ``cfg``, in that order: what a run reads, and so what its key hashes besides
    its spec (:func:`usfkit.sweep.run_sweep`).  Naming them, rather than taking every setting but some, keeps a
    setting added to a profile for one experiment out of every other run's key."""
    return {k: getattr(cfg, k) for k in names}
