"""Helpers shared by the unit tests."""
import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch

# Ray (tests/test_cluster.py) reads these when it is imported: test clusters stay on loopback (a local address
# is not replaced by this machine's network address) and send no usage statistics.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


@pytest.fixture(autouse=True)
def seeded():
    """Every test starts from the same seeds of torch, NumPy and ``random``, whatever ran before it,
    so the suite gives the same results in any order (tests that need several draws also pass their
    own generators)."""
    torch.manual_seed(0)
    np.random.seed(0)
    random.seed(0)


def randomise(module, scale=0.3, seed=0):
    """Give every parameter (also the zero-initialised last conditioner layers) random values."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn(p.shape, generator=gen))
    return module


SHARED_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


@pytest.fixture
def shared_data(monkeypatch) -> Path:
    """The real data folder (``$USFKIT_DATA``, else ``../shared/data`` beside the project);
    tests that need real data skip, saying why, when neither exists."""
    env = os.environ.get("USFKIT_DATA")
    root = Path(env) if env else SHARED_DATA
    if not root.is_dir():
        pytest.skip(f"real data not found: set USFKIT_DATA (looked in {root})")
    monkeypatch.setenv("USFKIT_DATA", str(root))
    return root
