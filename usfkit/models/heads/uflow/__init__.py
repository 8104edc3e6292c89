"""U-Flow (Tailanian et al. 2024) as in anomalib v2.0.0, with a ``coupling=`` switch."""
from .lightning_model import UflowModule
from .torch_model import UflowHead

__all__ = ["UflowHead", "UflowModule"]
