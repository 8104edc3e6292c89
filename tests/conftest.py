"""Helpers shared by the unit tests."""
import torch


def randomise(module, scale=0.3, seed=0):
    """Give every parameter (also the zero-initialised last conditioner layers) random values."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn(p.shape, generator=gen))
    return module
