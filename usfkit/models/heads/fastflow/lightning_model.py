"""Lightning glue for the FastFlow head: Adam, lr 1e-3, weight decay 1e-5 (App. E)."""
from __future__ import annotations

from ..lightning_base import HeadModule

__all__ = ["FastflowModule"]


class FastflowModule(HeadModule):
    """Trains a :class:`~usfkit.models.heads.fastflow.torch_model.FastflowHead` on cached features."""

    def __init__(self, head, lr: float = 1e-3, weight_decay: float = 1e-5):
        super().__init__(head, lr, weight_decay)

