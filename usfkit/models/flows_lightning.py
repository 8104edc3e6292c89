"""Training a flow of :mod:`usfkit.models.flows` by maximum likelihood (MAP with the App. B.2 prior when the flow
has one): its Lightning module :class:`FlowModule` and :func:`train_flow`, which chapters 01-05 call.

The kernel :mod:`usfkit.models.flows` stays torch only; this module adds what Lightning needs around it.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..train import FitResult, TrainModule, fit
from .flows import Flow, map_loss

__all__ = ["FlowModule", "train_flow"]


class FlowModule(TrainModule):
    """Maximum likelihood (MAP with the log-det prior when the flow has one):
    ``loss = mean NLL - ln prior(w) / n_train`` (:func:`usfkit.models.flows.map_loss`)."""

    compilable = True

    def __init__(self, flow: Flow, lr: float = 1e-3, weight_decay: float = 0.0, n_train: int = 1):
        super().__init__(lr, weight_decay)
        self.flow = flow
        # n_train as a tensor, not an int: a compiled loss then does not depend on the training-set size, and
        # torch's on-disk cache serves every data set of the same width (an int would be baked into the compiled
        # code, one compile per data set).  Exact: float32 holds any n < 2^24.
        self.register_buffer("n_train", torch.tensor(float(n_train)), persistent=False)
        self._last: tuple[Tensor, Tensor] | None = None  # the last batch's (z, ln|det J|), detached

    def loss(self, x: Tensor) -> Tensor:
        z, logdet = self.flow(x)
        self._last = (z.detach(), logdet.detach())
        nll = -(self.flow.base.log_prob(z) + logdet).mean()
        return map_loss(nll, self.flow, self.n_train)

    def diagnosis(self) -> str:
        if self._last is None:
            return ""
        ld = self._last[1]
        finite = ld[torch.isfinite(ld)]
        biggest = f"{finite.abs().max().item():.3g}" if len(finite) else "nan"
        return (f" Largest |ln det J| in the last batch: {biggest}. The flow's determinant exploded: "
                "lower the learning rate, add the log-det prior (prior_sigma=...), tighten the affine "
                "clamp, or use a uniformly scaling flow.")


def train_flow(flow: Flow, x_train: Tensor, x_val: Tensor | None = None, *, lr: float = 1e-3,
               weight_decay: float = 0.0, **kwargs) -> FitResult:
    """Maximum-likelihood training of a (Non)USFlow; see :func:`usfkit.train.fit` for the options."""
    return fit(FlowModule(flow, lr, weight_decay, n_train=len(x_train)), x_train, x_val, **kwargs)
