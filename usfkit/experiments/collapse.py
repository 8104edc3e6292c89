"""Failure modes of Deep SVDD and of flows, and the log-det prior (chapter 3).

Paper: Abu Zaid et al., arXiv 2510.09452, §4.2 (hypersphere collapse, exploding
determinants), §4.3 / App. B.3 (Proposition 1, density inversion), App. B.2 (the
bilateral log-normal prior on the LU diagonals) and App. D (training instabilities
of NonUSFlows).

What is here:

* :func:`anomaly_data` — the asymmetric Gaussian mixture of App. C as normal data,
  with anomalies taken from its low-density region (Eq. 1); :func:`subspace_data` — the
  mixture on a low-dimensional subspace, where the likelihood is unbounded;
* :class:`EpochProbe` — a Lightning callback that evaluates a function of the model
  after every epoch (passed to :func:`usfkit.train.fit` through ``callbacks=``);
  :func:`svdd_stats` and :func:`flow_stats` are what this chapter probes;
* :func:`run_svdd` and :func:`run_flow` — one training run each, returning a plain
  dict (fit result, per-epoch trajectory, final statistics) ready for a table;
  :func:`run_status` classifies a flow run as ok, failed (NaN/inf) or diverged;
* Proposition 1: :func:`prop1_closed_form`, :func:`prop1_quadrature`,
  :func:`prop1_monte_carlo`, :func:`density_inversion`;
* the prior of App. B.2: :func:`sample_lu_log_dets` draws LU maps with diagonals from
  the prior and returns their ``ln|det J|``; :func:`lu_log_det_variance` is the
  analytic variance for either rule of :func:`usfkit.flows.lu_prior_sigma0`.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from scipy import integrate, stats
from torch import Tensor

from .data import AsymmetricGaussianMixture
from .flows import Flow, build_flow, lu_prior_sigma0
from .metrics import auroc, spearman
from .oneclass import DeepSVDD, svdd_widths
from .train import FitResult, train_flow, train_svdd

# --------------------------------------------------------------------------
# Data with anomalies
# --------------------------------------------------------------------------
def anomaly_data(dim: int, n_train: int, n_test: int, n_anomalies: int, quantile: float = 0.01,
                 broad_scale: float = 3.0, seed: int = 0) -> dict[str, Tensor]:
    """Normal data from :class:`~usfkit.data.AsymmetricGaussianMixture` and anomalies from
    its low-density region, following the level-set definition of Eq. 1.

    Anomalies are draws from a broad Gaussian ``N(0, broad_scale^2 I)`` kept only when
    their true mixture density is below the ``quantile`` of the densities of normal
    training points (rejection sampling).  Returns ``x_train`` (normal only), ``x_test``
    (normal test points followed by the anomalies) and ``y_test`` (1 = anomaly).
    """
    mix = AsymmetricGaussianMixture(dim)
    x_train, _ = mix.sample(n_train, seed=seed)
    x_normal, _ = mix.sample(n_test, seed=seed + 1)
    threshold = np.quantile(mix.log_prob(x_train.numpy()), quantile)
    rng = np.random.default_rng(seed + 2)
    kept: list[np.ndarray] = []
    while sum(len(k) for k in kept) < n_anomalies:
        cand = rng.normal(0.0, broad_scale, size=(4 * n_anomalies, dim))
        kept.append(cand[mix.log_prob(cand) < threshold])
    anomalies = torch.from_numpy(np.concatenate(kept)[:n_anomalies].astype(np.float32))
    return {"x_train": x_train, "x_test": torch.cat([x_normal, anomalies]),
            "y_test": torch.cat([torch.zeros(n_test), torch.ones(n_anomalies)]).long(),
            "log_density_threshold": float(threshold)}


def subspace_data(dim: int, rank: int, n_train: int, n_test: int, seed: int = 0) -> dict[str, Tensor]:
    """The asymmetric mixture in ``rank`` dimensions, embedded in ``R^dim`` by a random matrix
    ``Q`` with orthonormal columns: ``x = Q y``.  The data fill only a ``rank``-dimensional
    subspace, so their density in ``R^dim`` is degenerate and maximum likelihood has no
    maximum — a flow can raise the likelihood without bound by squeezing the ``dim - rank``
    empty directions, i.e. by inflating ``|det J|`` (§4.2)."""
    if not 1 <= rank < dim:
        raise ValueError(f"need 1 <= rank < dim, got rank={rank}, dim={dim}")
    g = torch.Generator().manual_seed(seed + 3)
    q, _ = torch.linalg.qr(torch.randn(dim, rank, generator=g))
    mix = AsymmetricGaussianMixture(rank)
    y_train, _ = mix.sample(n_train, seed=seed)
    y_test, _ = mix.sample(n_test, seed=seed + 1)
    return {"x_train": y_train @ q.T, "x_test": y_test @ q.T, "basis": q}


# --------------------------------------------------------------------------
# A per-epoch probe
# --------------------------------------------------------------------------
class EpochProbe(Callback):
    """Evaluates ``probe()`` (no arguments, returns a dict of numbers) at the start of
    training and after every training epoch, in eval mode without gradients.

    ``rows[0]`` (``epoch`` 0) is the state training starts from.  The rows are cleared
    when a new fit starts, so a probe shared by Deep SVDD's pretraining and its one-class
    training keeps only the latter.  Pass it as ``fit(..., callbacks=[probe])``.
    """

    def __init__(self, probe: Callable[[], dict]):
        self.probe = probe
        self.rows: list[dict] = []

    def _record(self, epoch: int, pl_module) -> None:
        was_training = pl_module.training
        pl_module.eval()
        with torch.no_grad():
            row = self.probe()
        pl_module.train(was_training)
        self.rows.append({"epoch": epoch, **{k: float(v) for k, v in row.items()}})

    def on_train_start(self, trainer, pl_module):
        self.rows = []
        self._record(0, pl_module)

    def on_train_epoch_end(self, trainer, pl_module):
        self._record(trainer.current_epoch + 1, pl_module)


# --------------------------------------------------------------------------
# Deep SVDD: how collapsed is it?
# --------------------------------------------------------------------------
SVDD_VARIANTS: dict[str, dict] = {
    "Ruff (no bias, leaky ReLU)": dict(bias=False, activation="leaky_relu"),
    "with bias (leaky ReLU)": dict(bias=True, activation="leaky_relu"),
    "bounded (sigmoid, bias)": dict(bias=True, activation="sigmoid"),
    "Ruff, strong decay": dict(bias=False, activation="leaky_relu", weight_decay=1e-2),
    "bounded, strong decay": dict(bias=True, activation="sigmoid", weight_decay=1e-2),
}
"""The Deep SVDD variants of §2/§4.2: Ruff et al.'s anti-collapse recipe and the two
architectural choices that admit the constant solution ``omega(x) = c``; the last two add
a strong weight decay (Eq. 2's ``lambda = 1e-2``), which pulls the weights to 0: for a
network with biases that *is* the constant map, for Ruff's bias-free one it is
``omega = 0 != c``.  A ``weight_decay`` entry overrides :func:`run_svdd`'s."""


def svdd_stats(model: DeepSVDD, x: Tensor, y: Tensor) -> dict[str, float]:
    """Collapse diagnostics on an evaluation set ``x`` with labels ``y`` (1 = anomaly).

    * ``loss``: mean squared distance of the *normal* points to ``c`` (Eq. 2 without decay);
    * ``mean_dist``: their mean distance ``||omega(x) - c||``;
    * ``spread``: the standard deviation of their embeddings, averaged over coordinates
      (0 when every input is mapped to the same point);
    * ``auroc``: of the score ``||omega(x) - c||^2`` for telling anomalies from normal points.
    """
    x = x.to(model.center.device)  # the probe also runs while the model sits on a GPU
    normal = (y == 0).to(x.device)
    emb = model(x)
    score = (emb - model.center).pow(2).sum(1)
    return {"loss": score[normal].mean().item(), "mean_dist": score[normal].sqrt().mean().item(),
            "spread": emb[normal].std(0).mean().item(), "auroc": auroc(y, score)}


def run_svdd(variant: dict, x_train: Tensor, x_test: Tensor, y_test: Tensor, *, depth: int = 3,
             lr: float = 1e-3, weight_decay: float = 1e-6, epochs: int = 40, pretrain_epochs: int = 10,
             batch_size: int = 128, seed: int = 0, desc: str = "svdd") -> dict:
    """Pretrain, centre and train one Deep SVDD (``variant``: keyword arguments of
    :class:`~usfkit.oneclass.DeepSVDD`, plus an optional ``weight_decay``) with early
    stopping off (``patience = epochs``), so every variant gets the same number of epochs.
    Returns the model, the :class:`~usfkit.train.FitResult`, the per-epoch
    :func:`svdd_stats` on the test set (``trajectory``, epoch 0 = after pretraining and
    centring), the weight decay used and the final stats."""
    variant = dict(variant)
    weight_decay = variant.pop("weight_decay", weight_decay)
    torch.manual_seed(seed)
    dim = x_train.shape[1]
    model = DeepSVDD(dim, svdd_widths(dim, depth), **variant)
    probe = EpochProbe(lambda: svdd_stats(model, x_test, y_test))
    result = train_svdd(model, x_train, lr=lr, weight_decay=weight_decay, pretrain_epochs=pretrain_epochs,
                        max_epochs=epochs, patience=epochs, batch_size=batch_size, seed=seed, desc=desc,
                        callbacks=[probe])
    with torch.no_grad():
        final = svdd_stats(model, x_test, y_test)
    return {"model": model, "fit": result, "trajectory": probe.rows, "final": final,
            "initial": probe.rows[0] if probe.rows else None, "weight_decay": weight_decay}


# --------------------------------------------------------------------------
# Flows: determinants along training
# --------------------------------------------------------------------------
def lu_condition_number(flow: Flow) -> float:
    """The largest condition number among the flow's LU matrices ``M = L U``.

    In a block ``A^{-1} C A`` the LU determinant cancels, but an ill-conditioned ``A``
    turns the coupling's bounded, coordinate-wise scaling into a strongly input-dependent
    stretch: App. D's observation that LU layers amplify the instability of affine coupling.
    A flow without LU maps (``coupling="additive"`` or ``"affine"``) gives 1.
    """
    matrices = [lu.matrix() for lu in flow.lu_layers()]
    if not all(torch.isfinite(m).all() for m in matrices):
        return math.inf
    return max((torch.linalg.cond(m).item() for m in matrices), default=1.0)


def flow_stats(flow: Flow, x: Tensor) -> dict[str, float]:
    """Per-input log-determinants and latent geometry of ``flow`` on ``x``.

    ``logdet_mean`` / ``logdet_std`` / ``logdet_absmax``: mean, standard deviation over the
    inputs, and largest absolute value of ``ln|det J_phi(x)|`` (for a USF the std is 0 and
    the mean is ``ln psi_det(w)``); ``sq_dist``: mean ``||phi(x) - c||^2`` (the Deep SVDD
    term of Eq. 5); ``latent_spread``: std of the latents averaged over coordinates;
    ``nll``: mean negative log-likelihood; ``lu_cond``: :func:`lu_condition_number`.
    Non-finite values are kept as ``nan``/``inf`` (a diverged flow).
    """
    z, logdet = flow(x.to(flow.base.center.device))  # the probe also runs while the flow sits on a GPU
    nll = -(flow.base.log_prob(z) + logdet)
    return {"logdet_mean": logdet.mean().item(), "logdet_std": logdet.std().item(),
            "logdet_absmax": logdet.abs().max().item(), "sq_dist": flow.base.sq_dist(z).mean().item(),
            "latent_spread": z.flatten(1).std(0).mean().item(), "nll": nll.mean().item(),
            "lu_cond": lu_condition_number(flow)}


def run_flow(coupling: str, x_train: Tensor, x_test: Tensor, *, lr: float = 1e-3, epochs: int = 30,
             prior_sigma: float | None = None, prior_rule: str = "exact", blocks: int = 4, hidden: int = 64,
             layers: int = 2, clamp: float = 2.0, scale: float = math.sqrt(0.5), batch_size: int = 128,
             patience: int | None = None, seed: int = 0, desc: str | None = None) -> dict:
    """Train one flow of :func:`usfkit.flows.build_flow` with ``coupling`` (``"additive_lu"``: a
    USFlow, ``"affine_lu"``: a NonUSFlow; :data:`usfkit.flows.COUPLINGS`) by maximum likelihood
    (MAP with the log-det prior when ``prior_sigma`` is set) and probe it on ``x_test`` after
    every epoch with :func:`flow_stats`.

    The base is ``N(0, scale^2 I)``, by default ``scale^2 = 1/2`` as in Eq. 5.  Early
    stopping is off unless ``patience`` is given.  A NaN/inf loss does not raise: the run
    comes back with ``fit.ok == False`` and the message in ``fit.failure``.
    """
    flow = build_flow(x_train.shape[1], coupling, blocks=blocks, hidden=hidden, layers=layers, clamp=clamp,
                      scale=scale, prior_sigma=prior_sigma, prior_rule=prior_rule, seed=seed)
    probe = EpochProbe(lambda: flow_stats(flow, x_test))
    result = train_flow(flow, x_train, lr=lr, max_epochs=epochs, patience=patience or epochs,
                        batch_size=batch_size, seed=seed, desc=desc or f"{coupling} seed {seed}", callbacks=[probe])
    with torch.no_grad():
        final = flow_stats(flow, x_test)
    return {"flow": flow, "fit": result, "trajectory": probe.rows, "final": final}


def run_status(result: FitResult, trajectory: list[dict]) -> str:
    """``"failed"``: the fit stopped on a NaN/inf loss (``FitResult.ok`` is False, the
    message is in ``FitResult.failure``).  ``"diverged"``: every loss stayed finite, but
    after the last epoch the test NLL (probed by :func:`run_flow`) is non-finite or worse
    than that of the untrained flow (epoch 0) — training made the model worse than doing
    nothing.  Otherwise ``"ok"``."""
    if not result.ok:
        return "failed"
    first, last = trajectory[0]["nll"], trajectory[-1]["nll"]
    if not math.isfinite(last) or last > first:
        return "diverged"
    return "ok"


# --------------------------------------------------------------------------
# Proposition 1: density inversion
# --------------------------------------------------------------------------
def prop1_closed_form(dim: int, alpha: float) -> float:
    """``L(N, F_alpha) = 1 / (alpha^2 (d - 2))`` (App. B.3); needs ``d > 2``."""
    if dim <= 2:
        raise ValueError(f"the loss is finite only for d > 2, got d = {dim}")
    return 1.0 / (alpha**2 * (dim - 2))


def prop1_quadrature(dim: int, alpha: float) -> float:
    """The same loss by numerical integration over ``r = ||x||^2 ~ chi^2(d)``:
    ``alpha^-2 * integral of r^-1 chi2_d(r) dr`` — an independent check of the closed form."""
    value, _ = integrate.quad(lambda r: stats.chi2.pdf(r, dim) / r, 0, np.inf)
    return value / alpha**2


def prop1_monte_carlo(dim: int, alphas: list[float], n: int, seed: int = 0, chunk: int = 250_000) -> list[dict]:
    """Monte-Carlo estimate of the Deep SVDD loss ``E ||F_alpha(x) - c||^2`` with ``c = 0``,
    ``F_alpha(x) = 1/(alpha ||x||)`` and ``x ~ N(0, I_d)`` (float64).

    The same ``n`` draws serve every ``alpha`` (the loss is ``alpha^-2`` times one
    expectation, so the relative error does not depend on ``alpha``).  ``std_err`` is the
    usual ``std / sqrt(n)``; it is meaningful only when ``Var(1/||x||^2)`` is finite, i.e.
    ``d > 4`` (``finite_variance``); for ``d = 3, 4`` the estimate still converges, but
    slowly and with rare large jumps (a heavy-tailed average).  Samples are drawn in chunks
    of ``chunk`` rows, so memory stays small for large ``n`` and ``d``.
    """
    g = torch.Generator().manual_seed(seed)
    total, total_sq, done = 0.0, 0.0, 0
    while done < n:
        m = min(chunk, n - done)
        inv_sq = 1.0 / torch.randn(m, dim, generator=g, dtype=torch.float64).pow(2).sum(1)  # ||F_1(x)||^2
        total, total_sq, done = total + inv_sq.sum().item(), total_sq + inv_sq.pow(2).sum().item(), done + m
    mean = total / n
    std_err = math.sqrt(max(total_sq / n - mean**2, 0.0) * n / (n - 1) / n)
    rows = []
    for a in alphas:
        exact = prop1_closed_form(dim, a)
        rows.append({"d": dim, "alpha": a, "monte_carlo": mean / a**2, "closed_form": exact,
                     "rel_error": abs(mean / a**2 - exact) / exact, "std_err": std_err / a**2,
                     "finite_variance": dim > 4})
    return rows


def density_inversion(dim: int, alpha: float, n: int, seed: int = 0) -> dict:
    """Samples ``x ~ N(0, I_d)`` with their true log-density and the Deep SVDD distance
    ``|F_alpha(x) - 0| = 1/(alpha ||x||)``.  Returns the arrays and the rank correlations:
    ``spearman_score`` between the true anomaly score ``-ln N(x)`` and the distance (-1:
    the ranking is exactly reversed), ``spearman_density`` between density and distance
    (+1; a faithful detector has -1), and the AUROC of the distance for flagging the 5 %
    least likely points (0: every anomaly is ranked as the most normal)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, dim, generator=g, dtype=torch.float64)
    norm = x.norm(dim=1)
    log_density = -0.5 * norm**2 - 0.5 * dim * math.log(2 * math.pi)
    distance = 1.0 / (alpha * norm)
    tail = (log_density < torch.quantile(log_density, 0.05)).long()
    return {"norm": norm.numpy(), "log_density": log_density.numpy(), "distance": distance.numpy(),
            "spearman_score": spearman(-log_density, distance),
            "spearman_density": spearman(log_density, distance),
            "auroc_tail": auroc(tail, distance)}


# --------------------------------------------------------------------------
# The bilateral log-normal prior on LU diagonals (App. B.2)
# --------------------------------------------------------------------------
def sample_lu_log_dets(sigma: float, channels: int, height: int = 1, width: int = 1, n: int = 10000,
                       rule: str = "exact", offdiag_scale: float = 0.5, seed: int = 0,
                       chunk: int = 4096) -> Tensor:
    """``ln|det J|`` of ``n`` random 1x1-convolution LU maps on a ``channels x height x
    width`` input, with the diagonal of ``U`` drawn from the prior of App. B.2.

    Each map has ``M = L U``: ``L`` unit lower triangular, ``U`` upper triangular with
    Gaussian off-diagonal entries (``offdiag_scale``; they do not change the determinant)
    and diagonal ``u_i = s_i |u_i|`` with a random sign ``s_i`` and
    ``ln|u_i| ~ N(0, sigma0^2)`` — a bilateral log-normal, ``sigma0`` from
    :func:`usfkit.flows.lu_prior_sigma0` with ``rule``.  The log-determinant is computed
    from the full matrix, ``h w ln|det M|`` (``slogdet``, float64), not from the diagonal.
    Maps are built ``chunk`` at a time to bound memory.
    """
    c, spatial = channels, height * width
    s0 = lu_prior_sigma0(sigma, c, spatial, rule)
    g = torch.Generator().manual_seed(seed)
    eye = torch.eye(c, dtype=torch.float64)
    out = []
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        log_abs_u = torch.randn(m, c, generator=g, dtype=torch.float64) * s0
        sign = torch.randint(0, 2, (m, c), generator=g).double() * 2 - 1
        lower = torch.tril(torch.randn(m, c, c, generator=g, dtype=torch.float64) * offdiag_scale, -1) + eye
        upper = (torch.triu(torch.randn(m, c, c, generator=g, dtype=torch.float64) * offdiag_scale, 1)
                 + torch.diag_embed(sign * log_abs_u.exp()))
        out.append(spatial * torch.linalg.slogdet(lower @ upper).logabsdet)
    return torch.cat(out)


def lu_log_det_variance(sigma: float, channels: int, spatial: int = 1, rule: str = "exact") -> float:
    """Analytic ``Var(ln|det J|) = spatial^2 * channels * sigma0^2``: ``sigma^2`` for the exact
    rule, ``sigma^2 / channels`` for the appendix's literal ``sigma0 = sigma/(c h w)``."""
    return spatial**2 * channels * lu_prior_sigma0(sigma, channels, spatial, rule) ** 2
