"""Lightning glue for the CFlow head: Adam, lr 1e-4, no weight decay (App. E).

As the original (and anomalib), each batch of feature maps is cut into random
batches of ``fiber_batch_size`` feature vectors per layer, with one optimiser step
each (manual optimisation).
"""
from __future__ import annotations

import torch

from ...flows import map_loss
from ..lightning_base import HeadModule
from .loss import cflow_loss

__all__ = ["CflowModule"]


class CflowModule(HeadModule):
    def __init__(self, head, lr: float = 1e-4, weight_decay: float = 0.0, fiber_batch_size: int = 64):
        super().__init__(head, lr, weight_decay)
        self.fiber_batch_size = fiber_batch_size
        self.automatic_optimization = False

    def training_step(self, batch, batch_idx):
        opt = self.optimizers()
        total, count = 0.0, 0
        for layer, feature in enumerate(batch):
            x, cond = self.head.fibers(feature)
            perm = torch.randperm(len(x), device=x.device)
            n = max(len(x) // self.fiber_batch_size, 1)  # the last fiber batch takes the remainder
            for i in range(n):
                idx = perm[i * self.fiber_batch_size: (i + 1) * self.fiber_batch_size if i < n - 1 else len(x)]
                loss = cflow_loss(self.head.fiber_log_prob(layer, x[idx], cond[idx])).mean()
                opt.zero_grad()
                self.manual_backward(map_loss(loss, self.head, self.head.n_train))
                opt.step()
                total, count = total + loss.detach() * len(idx), count + len(idx)
        mean = total / count
        self._last_loss = mean
        self.log_epoch_mean("train_loss", mean, len(batch[0]))  # summed on the device, logged once an epoch
        self.log_epoch_means(batch_idx)
        return mean
