"""Lightning glue for the U-Flow head (App. E): Adam, lr 1e-3, weight decay 1e-5, and the
learning rate decayed linearly to 40% over 25,000 iterations (stepped every optimiser
step; anomalib v2.0.0 hands the scheduler to Lightning without an interval, which steps
it once per epoch -- with at most 100 epochs either way the rate barely moves)."""
from __future__ import annotations

import torch

from ..lightning_base import HeadModule

__all__ = ["UflowModule"]


class UflowModule(HeadModule):
    def __init__(self, head, lr: float = 1e-3, weight_decay: float = 1e-5, end_factor: float = 0.4,
                 decay_iters: int = 25_000):
        super().__init__(head, lr, weight_decay)
        self.end_factor, self.decay_iters = end_factor, decay_iters

    def configure_optimizers(self):
        opt = super().configure_optimizers()
        sched = torch.optim.lr_scheduler.LinearLR(opt, start_factor=1.0, end_factor=self.end_factor,
                                                  total_iters=self.decay_iters)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
