"""CFlow (Gudovskiy et al. 2022) as in anomalib v2.0.0, with a ``coupling=`` switch."""
from .lightning_model import CflowModule
from .torch_model import CflowHead

__all__ = ["CflowHead", "CflowModule"]
