"""The tabular methods of §5.1 as :data:`usfkit.models.METHODS` builds, trains and scores them: each function
reads from ``cfg`` only the settings its :class:`~usfkit.models.MethodSpec` declares.

* ``USFlow`` / ``NonUSFlow``: :func:`usfkit.models.flows.build_flow` with §5.1.1's shared configuration (4 blocks,
  conditioners of 4 hidden layers x 256, Adam 1e-4) and the log-det prior; score ``-ln p(x)``;
* ``VAE-USFlow`` / ``VAE-NonUSFlow``: :mod:`usfkit.models.vae` (App. B.4), scored by the VAE;
* ``OneFlow``: :mod:`usfkit.models.oneflow` (Maziarka et al., 2022), the same flow configuration;
* ``DOHSC`` / ``DO2HSC``: :mod:`usfkit.models.dohsc` (Zhang et al., 2024), encoder 500-30-30, ν = 0.05.
"""
from __future__ import annotations

from ..rng import seeded
from . import dohsc, flows, flows_lightning, oneflow, vae

__all__ = ["build_flow", "train_flow", "flow_score", "build_vae", "train_vae", "build_oneflow", "train_oneflow",
           "build_dohsc", "build_do2hsc", "train_dohsc", "own_score"]


def build_flow(dim: int, coupling: str, cfg, seed: int) -> flows.Flow:
    return flows.build_flow(dim, coupling=coupling, blocks=cfg.blocks, hidden=cfg.hidden, layers=cfg.layers,
                            clamp=cfg.clamp, prior_sigma=cfg.prior_sigma, seed=seed)


def train_flow(model, x_train, cfg, fit: dict):
    return flows_lightning.train_flow(model, x_train, lr=cfg.lr, **fit)


def flow_score(model):
    """A flow's anomaly score: its negative log-density."""
    return lambda x: -model.log_prob(x)


def build_vae(dim: int, coupling: str, cfg, seed: int):
    return vae.tabular_vae(dim, coupling, seed=seed, blocks=cfg.blocks, flow_hidden=cfg.hidden, flow_layers=cfg.layers)


def train_vae(model, x_train, cfg, fit: dict):
    return vae.train_vae(model, x_train, lr=cfg.lr, **fit)


def build_oneflow(dim: int, coupling: str, cfg, seed: int):
    return oneflow.OneFlow(dim, blocks=cfg.blocks, hidden=cfg.hidden, layers=cfg.layers, seed=seed)


def train_oneflow(model, x_train, cfg, fit: dict):
    return oneflow.train_oneflow(model, x_train, lr=cfg.lr, **fit)


def build_dohsc(dim: int, coupling: str, cfg, seed: int):
    with seeded(seed):
        return dohsc.DOHSC(dim, nu=cfg.nu)


def build_do2hsc(dim: int, coupling: str, cfg, seed: int):
    with seeded(seed):
        return dohsc.DO2HSC(dim, nu=cfg.nu)


def train_dohsc(model, x_train, cfg, fit: dict):
    return dohsc.train_dohsc(model, x_train, lr=cfg.dohsc_lr, pretrain_epochs=cfg.dohsc_pretrain_epochs, **fit)


def own_score(model):
    """The model's own anomaly score (``model.score``)."""
    return model.score
