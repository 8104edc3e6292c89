"""The Lightning module the three heads share (a :class:`usfkit.train.TrainModule`).

A batch is the tuple of per-scale feature tensors of a few images (cached backbone
features); the loss is ``head.loss(features)``.
"""
from __future__ import annotations

import torch

from ...train import TrainModule, adam

__all__ = ["HeadModule"]


class HeadModule(TrainModule):
    """Trains a :class:`~usfkit.models.heads.base.FlowHead` on cached features with Adam on its trainable
    parameters; a diverged run's message names the head's coupling."""

    def __init__(self, head: torch.nn.Module, lr: float, weight_decay: float = 0.0):
        super().__init__(lr, weight_decay)
        self.head = head
        self._last_loss = None

    def loss(self, features) -> torch.Tensor:
        return self.head.loss(list(features))

    def configure_optimizers(self):
        params = [p for p in self.head.parameters() if p.requires_grad]
        return adam(params, self.lr, self.weight_decay)

    def training_step(self, batch, batch_idx):
        loss = self.loss(batch)
        self._last_loss = loss.detach()
        self.log_epoch_mean("train_loss", loss, len(batch[0]))  # summed on the device, logged once an epoch
        self.log_epoch_means(batch_idx)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self.loss(batch), on_step=False, on_epoch=True, batch_size=len(batch[0]))

    def diagnosis(self) -> str:
        coupling = getattr(self.head, "coupling", "?")
        hint = " Lower the learning rate." if getattr(self.head, "constant_det", True) else (
            " The affine coupling's input-dependent determinant exploded: this is the instability "
            "of App. D; the uniformly scaling variants ('additive', 'additive_lu') avoid it.")
        return f" Head coupling: {coupling}.{hint}"
