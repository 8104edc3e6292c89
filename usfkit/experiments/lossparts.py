"""The two terms of a flow's negative log-likelihood (paper Eq. 5, §4.1).

With the base ``N(c, s^2 I)`` the change of variables (Eq. 3) splits the NLL of a
flow ``phi`` into

    -ln p(x) = ||phi(x) - c||^2 / (2 s^2)  -  ln|det J_phi(x)|  +  (d/2) ln(2 pi s^2)
               \\_____ svdd_term ______/     \\__ logdet __/      \\___ constant ___/

For ``s^2 = 1/2`` the first term is exactly Deep SVDD's squared distance and the
constant is ``(d/2) ln(pi)``.  For a uniformly scaling flow (USF) the log-determinant
is the same number ``ln psi_det(w)`` for every input, so the whole input dependence of
the NLL sits in the distance term: that is Eq. 5.  For a non-USF it does not.

* :func:`decompose` returns the terms per sample, with the weight-only term taken
  from :meth:`~usfkit.models.flows.Flow.log_abs_det_constant` (USF) and a residual that says how far the
  NLL is from ``svdd_term + logdet_term + constant``;
* :func:`jacobian_log_abs_det` computes ``ln|det J(x)|`` by brute force (the full
  autograd Jacobian), independently of the layers' own log-det bookkeeping;
* :func:`train_flow_decomposed` trains a flow exactly like :func:`usfkit.models.flows_lightning.train_flow`
  and records both terms of Eq. 5 per epoch in the history.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor

from ..models.flows import Flow
from ..models.flows_lightning import FlowModule
from ..train import FitResult, fit

__all__ = ["jacobian_log_abs_det", "gaussian_constant", "decompose", "max_relative_residual",
           "DecomposedFlowModule", "train_flow_decomposed", "stationarity", "describe_stationarity",
           "describe_eq5_full"]


def jacobian_log_abs_det(f: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """``ln|det J_f(x_i)|`` for every row of ``x`` (shape ``(n, d)``), from the full
    ``d x d`` Jacobian computed by autograd (``torch.func``) and ``slogdet``.

    ``f`` maps a batch ``(m, d)`` to a batch ``(m, d)``; it is called on single rows.
    Cost grows like ``d^3`` per sample: meant for checks on small ``d``, not for training.
    """
    def single(v: Tensor) -> Tensor:
        return f(v.unsqueeze(0)).squeeze(0)

    jac = torch.func.vmap(torch.func.jacrev(single))(x)  # (n, d, d)
    return torch.linalg.slogdet(jac).logabsdet


def gaussian_constant(flow: Flow) -> float:
    """``(d/2) ln(2 pi s^2)``: the part of ``-ln N(z; c, s^2 I)`` that depends on nothing.
    For ``s^2 = 1/2`` it is ``(d/2) ln(pi)``."""
    return 0.5 * flow.base.dim * math.log(2 * math.pi * flow.base.scale**2)


@torch.no_grad()
def decompose(flow: Flow, x: Tensor, jacobian: str = "layers", batch_size: int = 4096) -> dict[str, Tensor]:
    """Split the flow's NLL on ``x`` into the terms of Eq. 5, per sample.

    Returns a dict of tensors of shape ``(n,)`` (``constant`` and ``logdet_term`` are
    0-d tensors, the same for every sample):

    * ``nll``: ``-ln N(phi(x); c, s^2 I) - ln|det J_phi(x)|`` (Eq. 3);
    * ``sq_dist``: ``||phi(x) - c||^2``;
    * ``svdd_term``: ``||phi(x) - c||^2 / (2 s^2)`` (equal to ``sq_dist`` when ``s^2 = 1/2``);
    * ``log_abs_det``: ``ln|det J_phi(x)|`` per sample;
    * ``logdet_term``: the weight-only term, ``-ln psi_det(w) = -flow.log_abs_det_constant()``
      for a USF.  A non-USF has no such term; there it is ``-mean(ln|det J_phi(x)|)`` over
      ``x``, the constant closest to the per-sample values in mean square, so the residual
      is the *least* a constant can leave;
    * ``constant``: ``(d/2) ln(2 pi s^2)``;
    * ``residual``: ``nll - (svdd_term + logdet_term + constant)``: zero (up to rounding)
      exactly when Eq. 5 holds sample by sample.

    ``jacobian="layers"`` takes ``ln|det J|`` from the layers' own formulas (what training
    uses); ``"autograd"`` from :func:`jacobian_log_abs_det` (vector inputs only), so the NLL
    is Eq. 3 evaluated literally, independent of those formulas.
    """
    if jacobian not in ("layers", "autograd"):
        raise ValueError(f"jacobian must be 'layers' or 'autograd', got {jacobian!r}")
    flow.eval()
    z_parts, ld_parts = [], []
    for chunk in x.split(batch_size):
        z, logdet = flow(chunk)
        if jacobian == "autograd":
            with torch.enable_grad():
                logdet = jacobian_log_abs_det(lambda v: flow(v)[0], chunk)
        z_parts.append(z)
        ld_parts.append(logdet)
    z, log_abs_det = torch.cat(z_parts), torch.cat(ld_parts)

    nll = -(flow.base.log_prob(z) + log_abs_det)
    sq_dist = flow.base.sq_dist(z)
    svdd_term = sq_dist / (2 * flow.base.scale**2)
    constant = torch.tensor(gaussian_constant(flow), dtype=z.dtype)
    if flow.constant_det:
        logdet_term = -flow.log_abs_det_constant()
    else:
        logdet_term = -log_abs_det.mean()
    residual = nll - (svdd_term + logdet_term + constant)
    return {"nll": nll, "sq_dist": sq_dist, "svdd_term": svdd_term, "log_abs_det": log_abs_det,
            "logdet_term": logdet_term, "constant": constant, "residual": residual}


def max_relative_residual(parts: dict[str, Tensor]) -> float:
    """``max_i |residual_i| / max(|nll_i|, 1)``: the size of the Eq. 5 mismatch relative to
    the NLL itself (absolute when the NLL is smaller than 1 nat)."""
    return (parts["residual"].abs() / parts["nll"].abs().clamp_min(1.0)).max().item()


class DecomposedFlowModule(FlowModule):
    """:class:`usfkit.models.flows_lightning.FlowModule` that also logs, per epoch, the mean of the two
    terms of Eq. 5: ``svdd_term`` (``||phi(x) - c||^2 / (2 s^2)``) and ``logdet_term``
    (``-ln|det J|``, averaged over the batch; for a USF the same for every sample).
    The loss and the optimisation are unchanged, so
    ``train_loss = svdd_term + logdet_term + constant`` (minus the prior term, if any)."""

    def step_terms(self) -> dict[str, Tensor]:
        z, logdet = self._last
        return {"svdd_term": (self.flow.base.sq_dist(z) / (2 * self.flow.base.scale**2)).mean(),
                "logdet_term": -logdet.mean()}


def train_flow_decomposed(flow: Flow, x_train: Tensor, x_val: Tensor | None = None, *, lr: float = 1e-3,
                          weight_decay: float = 0.0, **kwargs) -> FitResult:
    """:func:`usfkit.models.flows_lightning.train_flow` with the Eq. 5 terms in ``FitResult.history``:
    every row has ``train_loss``, ``svdd_term`` and ``logdet_term`` (epoch means)."""
    module = DecomposedFlowModule(flow, lr, weight_decay, n_train=len(x_train))
    return fit(module, x_train, x_val, **kwargs)


# --------------------------------------------------------------------------
# What a saved run says about Eq. 5 (the chapter's computed prose)
# --------------------------------------------------------------------------
def stationarity(mean_sq: float, dim: int, history: list[dict]) -> dict:
    """How far a trained USF with base ``N(c, 1/2 I)`` is from a stationary point of Eq. 5 along the one
    direction the chapter's derivation looks at: rescaling the latents about ``c`` by ``alpha``, which turns
    the training loss into ``L(alpha) = alpha^2 S - d ln alpha + const`` with ``S = mean_sq`` (the mean
    SVDD term on the training data).  Returns

    * ``gap``: ``S / (d/2) - 1`` (0 at a stationary point);
    * ``slope``: ``dL/d ln alpha`` at ``alpha = 1``, ``2 S - d`` (nats);
    * ``alpha``: the optimal rescaling ``sqrt(d / (2 S))``, and ``gain``: what it would lower the training
      loss by, ``S - d/2 - (d/2) ln(2S/d)`` (nats per sample, >= 0);
    * from ``history`` (per-epoch ``train_loss``, ``val_loss``, ``svdd_term``): the ``restored`` epoch
      (lowest validation loss, the weights early stopping keeps), the ``last`` epoch run, and the
      training loss, validation loss and epoch-mean SVDD term at both.
    """
    half = dim / 2
    out = {"S": mean_sq, "d_half": half, "gap": mean_sq / half - 1, "slope": 2 * mean_sq - dim,
           "alpha": math.sqrt(half / mean_sq), "gain": mean_sq - half - half * math.log(mean_sq / half)}
    best = min(history, key=lambda r: r["val_loss"])
    for name, row in (("restored", best), ("last", history[-1])):
        out[name] = {k: row[k] for k in ("epoch", "train_loss", "val_loss", "svdd_term")}
    return out


def describe_stationarity(st: dict, label: str = "The restored model") -> str:
    """Markdown for :func:`stationarity`: the mean SVDD term of the restored model on the whole training set
    against ``d/2`` and the relative gap, which epoch early stopping restored and where the training loss went
    after it (with the epoch-mean SVDD term, a different measurement: the mean over the epoch's training batches
    while the weights were still changing), and how much a rescaling of the latents would still lower the
    training loss.  Relative gaps are computed from the unrounded numbers, shown to three decimals where
    rounding to two would change them."""
    r, l = st["restored"], st["last"]
    after = l["epoch"] - r["epoch"]
    converged = abs(l["train_loss"] - r["train_loss"]) < 1e-3 * abs(r["train_loss"])
    last_gap = l["svdd_term"] / st["d_half"] - 1
    text = (f"{label} (the weights early stopping kept, evaluated after training on the whole training set) has a "
            f"mean ‖φ(x) − c‖² of **{st['S']:.2f}** against d/2 = {st['d_half']:g}, **{100 * st['gap']:+.1f} %**. "
            f"Eq. 5 predicts exactly d/2 at a stationary point of the training loss. Early stopping kept the weights "
            f"of epoch {r['epoch']:g} (lowest validation NLL, {r['val_loss']:.2f}) out of {l['epoch']:g} epochs run")
    if after > 0:
        text += (f". The training log records, per epoch, the mean SVDD term over that epoch's training batches, "
                 f"taken while the weights were still moving: {r['svdd_term']:.2f} in epoch {r['epoch']:g} (so it "
                 f"differs from the {st['S']:.2f} of the same weights measured after training). In the {after:g} "
                 f"epochs after the kept one the training NLL went from {r['train_loss']:.2f} to "
                 f"{l['train_loss']:.2f} and the epoch-mean SVDD term to {l['svdd_term']:.3f} in epoch "
                 f"{l['epoch']:g} ({100 * last_gap:+.2f} % from d/2), while the validation NLL rose to "
                 f"{l['val_loss']:.2f}")
    if converged:
        text += (". The training loss had levelled off (it changed by less than 0.1 % after the kept epoch), so the "
                 "gap is that of a converged run.")
    else:
        text += (". So the training loss had **not converged** at the kept epoch: the stopping rule watches the "
                 "validation data, not the stationary point of the training loss that the derivation describes.")
    text += (f" Along the rescaling direction of the derivation the slope of the training loss is 2S − d = "
             f"{st['slope']:.2f} nats; the best rescaling (α = {st['alpha']:.3f}) would lower it by "
             f"{st['gain']:.2g} nats per sample, {100 * st['gain'] / abs(r['train_loss']):.2g} % of the training NLL: "
             f"the loss is flat near its stationary point, so a gap of {100 * abs(st['gap']):.1f} % in the SVDD term "
             "costs little.")
    return text


def describe_eq5_full(data: dict) -> str:
    """Markdown for a saved ``eq5_check`` record (``data``): the settings, then a short list: how exactly
    Eq. 5 held per sample (largest relative residual per precision and Jacobian), the USFlow's and the
    NonUSFlow's spread of ``ln|det J(x)|`` and what the best constant leaves for the NonUSFlow, its
    latent-norm ranking, how it splits the volume change between the two mixture components, and how well
    both flows fit the density."""
    s = data["settings"]
    checks = "; ".join(f"{c['precision']}, ln|det J| from {c['ln|det J| from']} ({c['inputs']:,} inputs): "
                       f"{c['max relative residual']:.1e}" for c in data["usf_checks"])
    usf, non = data["comparison"]["USFlow"], data["comparison"]["NonUSFlow"]
    true = usf["true mean -ln p(x)"]
    gap, volume = data["nonusf_component_logdet_gap"], data["component_log_volume_gap"]
    items = [
        f"**Eq. 5 holds per sample for the USFlow**, up to float rounding. Largest relative residual "
        f"|NLL − (sum of the three terms)| / |NLL|: {checks}. The paper's Eq. 5 is an exact identity (residual 0); "
        f"ours are at each float type's machine precision.",
        f"**Determinants.** The USFlow's ln|det J(x)| varies over the test inputs by a standard deviation of "
        f"{usf['std of ln|det J(x)|']:.1e} nats (rounding), the NonUSFlow's by {non['std of ln|det J(x)|']:.2f} nats "
        f"(range {non['range of ln|det J(x)|']:.1f}); even the best constant leaves the NonUSFlow per-sample errors up "
        f"to {non['max |NLL - (SVDD + const + best constant)|']:.2f} nats.",
        f"**Ranking.** The NonUSFlow's latent norm ranks the inputs with Spearman ρ = "
        f"{non['Spearman(NLL, latent norm)']:.3f} against its own NLL (USFlow: {usf['Spearman(NLL, latent norm)']:.6f}).",
        f"**Where the NonUSFlow puts the volume.** Its mean ln|det J(x)| is {gap:.2f} nats lower on the wide mixture "
        f"component than on the narrow one: it shrinks the wide component more, so both land in the same Gaussian "
        f"base. That is {100 * gap / volume:.0f} % of the difference in the components' log-volume, "
        f"½ ln(det Σ₂ / det Σ₁) = (d/4) ln 2.5 = {volume:.2f} nats. A USFlow has to put that difference into the "
        f"latent positions.",
        f"**Both flows fit the density:** mean test NLL {usf['mean test NLL']:.2f} (USFlow) and "
        f"{non['mean test NLL']:.2f} (NonUSFlow) against the true {true:.2f} nats.",
    ]
    return (f"**At the full profile** (d = {s['dim']}, {s['n_train']:,} training points, flows of {s['blocks']} "
            f"blocks with {s['layers']}-layer conditioners of {s['hidden']} units):\n\n"
            + "\n".join(f"* {item}" for item in items))
