"""Random numbers without side effects: :func:`seeded` builds a model from its own seed and leaves torch's
global generator as it found it, so one seeded model changes nobody else's draws."""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch

__all__ = ["seeded"]


@contextlib.contextmanager
def seeded(seed: int | None) -> Iterator[None]:
    """Inside the block torch's CPU generator starts from ``seed``; on leaving, it is back in the
    state it had before, so building a seeded model changes no one else's random numbers (the
    same seed gives the same weights as ``torch.manual_seed(seed)`` before building).
    ``seed=None``: no seeding, the draws advance the global generator as usual.

    >>> import torch
    >>> _ = torch.manual_seed(1); expected = torch.rand(1)
    >>> _ = torch.manual_seed(1)
    >>> with seeded(0):
    ...     weights = torch.rand(2)  # drawn from seed 0
    >>> torch.equal(torch.rand(1), expected)  # the global generator goes on as if nothing had been drawn
    True
    """
    if seed is None:
        yield
        return
    with torch.random.fork_rng(devices=[]):
        torch.random.default_generator.manual_seed(seed)  # CPU only: leaves GPU generators alone
        yield
