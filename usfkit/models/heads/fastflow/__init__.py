"""FastFlow (Yu et al. 2021) as in anomalib v2.0.0, with a ``coupling=`` switch."""
from .lightning_model import FastflowModule
from .torch_model import FastflowHead

__all__ = ["FastflowHead", "FastflowModule"]
