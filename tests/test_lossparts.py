"""Eq. 5 (paper §4.1): with base N(c, 1/2 I) the NLL of a uniformly scaling flow is, per sample,
||phi(x) - c||^2 - ln psi_det(w) + (d/2) ln(pi); for a non-USF the log-determinant varies with x."""
import copy
import math

import pytest
import torch

from usfkit import data
from usfkit.experiments import lossparts
from usfkit.models.flows import NonUSFlow, USFlow
from conftest import randomise

HALF = math.sqrt(0.5)


def _mixture(dim, n, seed=0):
    return data.AsymmetricGaussianMixture(dim).sample(n, seed=seed)[0]


def _reference_nll(flow, x):
    """Eq. 3 computed independently of usfkit's formulas: torch's Gaussian density of the latent
    plus the log-determinant of autograd's full Jacobian."""
    z = flow.latent(x).detach()
    d = z.shape[1]
    base = torch.distributions.MultivariateNormal(flow.base.center.expand(d),
                                                  covariance_matrix=flow.base.scale**2 * torch.eye(d, dtype=z.dtype))
    logdet = lossparts.jacobian_log_abs_det(lambda v: flow(v)[0], x).detach()
    return -(base.log_prob(z) + logdet)


def test_jacobian_log_abs_det_of_a_linear_map():
    gen = torch.Generator().manual_seed(0)
    m = torch.randn(5, 5, generator=gen, dtype=torch.float64)
    x = torch.randn(4, 5, generator=gen, dtype=torch.float64)
    out = lossparts.jacobian_log_abs_det(lambda v: v @ m.T + 1.0, x)
    torch.testing.assert_close(out, torch.linalg.slogdet(m).logabsdet.expand(4))


@pytest.mark.parametrize("dim", [2, 5, 8])
def test_decomposition_is_exact_for_a_random_usf(dim):
    flow = randomise(USFlow(dim, blocks=3, hidden=16, center=1.0, scale=HALF, seed=0))
    x = 2 * _mixture(dim, 64)
    parts = lossparts.decompose(flow, x)

    assert float(parts["constant"]) == pytest.approx(dim / 2 * math.log(math.pi))
    torch.testing.assert_close(parts["svdd_term"], parts["sq_dist"])  # s^2 = 1/2: no factor
    assert abs(float(parts["logdet_term"])) > 1e-2  # a non-trivial volume change
    assert float(parts["logdet_term"]) == pytest.approx(-flow.log_abs_det_constant().item())
    assert lossparts.max_relative_residual(parts) < 1e-5

    # Eq. 5 against Eq. 3 evaluated independently (torch's Gaussian, autograd's Jacobian)
    expected = parts["sq_dist"] - flow.log_abs_det_constant() + dim / 2 * math.log(math.pi)
    torch.testing.assert_close(_reference_nll(flow, x), expected, rtol=1e-5, atol=1e-4)

    flow64 = copy.deepcopy(flow).double()
    for how in ("layers", "autograd"):
        p64 = lossparts.decompose(flow64, x.double(), jacobian=how)
        assert p64["nll"].dtype == torch.float64
        assert lossparts.max_relative_residual(p64) < 1e-10, how


def test_decomposition_with_another_base_scale():
    flow = randomise(USFlow(4, blocks=2, hidden=16, center=-0.5, scale=1.0, seed=1))
    x = _mixture(4, 32)
    parts = lossparts.decompose(flow, x)
    torch.testing.assert_close(parts["svdd_term"], parts["sq_dist"] / 2)
    assert float(parts["constant"]) == pytest.approx(2 * math.log(2 * math.pi))
    assert lossparts.max_relative_residual(parts) < 1e-5


def test_decomposition_is_exact_for_a_briefly_trained_usf():
    dim = 6
    x = _mixture(dim, 512)
    flow = USFlow(dim, blocks=3, hidden=32, center=1.0, scale=HALF, seed=0)
    before = flow.log_abs_det_constant().item()
    fit = lossparts.train_flow_decomposed(flow, x, lr=5e-3, max_epochs=4, batch_size=128, progress="none")
    assert fit.ok and fit.epochs == 4
    assert flow.log_abs_det_constant().item() != pytest.approx(before, abs=1e-3)  # training moved psi_det

    parts = lossparts.decompose(flow, _mixture(dim, 256, seed=1))
    assert lossparts.max_relative_residual(parts) < 1e-5
    assert parts["log_abs_det"].std() < 1e-5
    ref = _reference_nll(flow, _mixture(dim, 256, seed=1)[:32])
    torch.testing.assert_close(ref, parts["nll"][:32], rtol=1e-5, atol=1e-4)

    # the recorded epoch means add up to the training loss
    const = lossparts.gaussian_constant(flow)
    for row in fit.history:
        assert {"svdd_term", "logdet_term", "train_loss"} <= set(row)
        assert row["train_loss"] == pytest.approx(row["svdd_term"] + row["logdet_term"] + const, rel=1e-5)
    # the SVDD term falls as the flow contracts the data towards c
    assert fit.history[-1]["svdd_term"] < fit.history[0]["svdd_term"]


def test_nonusf_logdet_varies_across_inputs():
    dim = 6
    flow = randomise(NonUSFlow(dim, blocks=3, hidden=16, center=1.0, scale=HALF, seed=0)).double()
    x = 2 * _mixture(dim, 128).double()
    parts = lossparts.decompose(flow, x)
    ld = parts["log_abs_det"]
    assert ld.std() > 1e-2
    # the best constant leaves exactly the input-dependent part of the log-determinant
    torch.testing.assert_close(parts["residual"], -(ld - ld.mean()), rtol=1e-9, atol=1e-9)
    assert parts["residual"].abs().max() > 1e-2
    torch.testing.assert_close(_reference_nll(flow, x[:16]), parts["nll"][:16], rtol=1e-9, atol=1e-9)
    with pytest.raises(ValueError, match="not uniformly scaling"):
        flow.log_abs_det_constant()


def test_briefly_trained_nonusf_logdet_varies():
    dim = 6
    x = _mixture(dim, 512)
    flow = NonUSFlow(dim, blocks=3, hidden=32, center=1.0, scale=HALF, seed=0)
    fit = lossparts.train_flow_decomposed(flow, x, lr=5e-3, max_epochs=4, batch_size=128, progress="none")
    assert fit.ok
    parts = lossparts.decompose(flow, _mixture(dim, 256, seed=1))
    assert parts["log_abs_det"].std() > 1e-2


def test_decompose_rejects_an_unknown_jacobian_mode():
    flow = USFlow(2, blocks=1, hidden=8, seed=0)
    with pytest.raises(ValueError, match="jacobian"):
        lossparts.decompose(flow, torch.zeros(3, 2), jacobian="numeric")
