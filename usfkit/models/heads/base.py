"""What the three flow heads of §5.2 share: :class:`FlowHead`.

FastFlow, CFlow and U-Flow each transform backbone features with chains (:class:`usfkit.models.flows.Chain`) of
flow steps (:func:`~usfkit.models.heads.couplings.flow_step`); they differ in how the chains are laid out over the scales
and in their likelihood loss and anomaly map.  The base holds the rest: the coupling (checked once), whether the
head is uniformly scaling (``constant_det``, read from its chains), the App. B.2 prior over all its chains and
the MAP loss that subtracts it (:func:`usfkit.models.flows.map_loss`, weighted by ``1 / n_train``), and the image
score (the maximum of the anomaly map).
"""
from __future__ import annotations

from typing import Sequence

from torch import Tensor, nn

from ..flows import Chain, map_loss
from .couplings import check_coupling

__all__ = ["FlowHead", "size_pair"]


def size_pair(size: int | Sequence[int]) -> tuple[int, int]:
    """An image size as ``(height, width)``: ``256`` -> ``(256, 256)``."""
    return (size, size) if isinstance(size, int) else tuple(size)


class FlowHead(nn.Module):
    """The base of a flow head on ``feature_shapes`` (``[(C, H, W), ...]`` of the backbone scales).

    A head subclasses it and defines :meth:`chains` (its flows, in a fixed order), :meth:`likelihood_loss`
    (its training loss of a batch of features, without the prior), ``forward``, ``inverse`` and
    ``anomaly_map(features, image_size)``.  ``prior_sigma`` is handed by the head to its flow steps (the
    App. B.2 prior on the steps' global scalings); ``n_train``, the number of training images, weighs the
    prior in :meth:`loss`."""

    def __init__(self, feature_shapes: Sequence[Sequence[int]], coupling: str, prior_sigma: float | None = None,
                 n_train: int = 1):
        super().__init__()
        self.coupling = check_coupling(coupling)
        self.feature_shapes = [tuple(s) for s in feature_shapes]
        self.prior_sigma, self.n_train = prior_sigma, n_train

    def chains(self) -> Sequence[Chain]:
        """The head's flows (per scale, per layer or per stage)."""
        raise NotImplementedError(f"{type(self).__name__} must say which chains it is made of")

    def likelihood_loss(self, features: list[Tensor]) -> Tensor:
        """The head's own training loss of a batch of features, before the prior."""
        raise NotImplementedError(f"{type(self).__name__} must define its likelihood loss")

    @property
    def constant_det(self) -> bool:
        """Whether every chain has an input-independent determinant: the head is uniformly scaling."""
        return all(chain.constant_det for chain in self.chains())

    def log_prior(self) -> Tensor:
        """The App. B.2 log-prior of all chains (zero unless ``prior_sigma`` is set)."""
        return sum(chain.log_prior() for chain in self.chains())

    def loss(self, features: list[Tensor]) -> Tensor:
        """:meth:`likelihood_loss` minus the log-prior / ``n_train``: the MAP loss."""
        return map_loss(self.likelihood_loss(features), self, self.n_train)

    def image_score(self, anomaly_map: Tensor) -> Tensor:
        """An image's anomaly score: the maximum of its anomaly map, ``[B, H, W]`` -> ``[B]``."""
        return anomaly_map.amax(dim=(-2, -1))
