"""Defining properties of the tabular one-class baselines of §5.1: OneFlow, DOHSC, DO2HSC."""
import math
import os

import numpy as np
import pytest
import torch
from scipy import stats

from conftest import SHARED_DATA, randomise
from usfkit.data import adbench
from usfkit.models.dohsc import DO2HSC, DOHSC, OrthogonalProjection, train_dohsc
from usfkit.metrics import auroc
from usfkit.models.oneflow import OneFlow, bernstein_quantile, log_unit_ball_volume, train_oneflow

torch.set_num_threads(1)
QUIET = dict(progress="none")


def adbench_split(name: str, seed: int = 0):
    """The paper's split (usfkit.data.adbench.split); skips, saying why, without the real data."""
    if not (SHARED_DATA / "adbench_classical").is_dir() and "USFKIT_DATA" not in os.environ:
        pytest.skip("real data not found: set USFKIT_DATA to the folder holding adbench_classical/")
    os.environ.setdefault("USFKIT_DATA", str(SHARED_DATA))
    s = adbench.split(name, seed=seed)
    return s.x_train, s.x_test, s.y_test


# --------------------------------------------------------------------------
# OneFlow
# --------------------------------------------------------------------------
def test_bernstein_quantile_matches_empirical_quantile():
    values = torch.randn(20_000, generator=torch.Generator().manual_seed(0)).double()
    for q in (0.05, 0.5, 0.95):
        assert bernstein_quantile(values, q).item() == pytest.approx(np.quantile(values.numpy(), q), abs=0.02)
    assert bernstein_quantile(torch.full((50,), 3.0), 0.9).item() == pytest.approx(3.0)  # weights sum to 1


def test_bernstein_quantile_gradient_lives_near_the_quantile():
    values = torch.linspace(0, 1, 1000, dtype=torch.float64, requires_grad=True)
    bernstein_quantile(values, 0.95).backward()
    grad = values.grad
    assert grad.sum().item() == pytest.approx(1.0)
    assert grad[:800].abs().max() < 1e-6  # points far below the boundary get no gradient
    assert abs(grad.argmax().item() - 0.95 * 999) <= 2


def test_oneflow_flow_has_constant_log_det():
    model = randomise(OneFlow(5, hidden=32, layers=2))
    assert model.flow.constant_det
    _, logdet = model(torch.randn(64, 5) * 3)
    assert logdet.abs().max() > 1e-3  # the final LU map makes it non-trivial ...
    assert torch.allclose(logdet, logdet[0].expand_as(logdet), atol=1e-5)  # ... but the same for every input


def test_oneflow_loss_is_the_input_space_volume_of_the_region():
    """Monte Carlo: the volume of {x : ||phi(x)|| <= R} equals exp(loss)."""
    torch.manual_seed(0)
    model = randomise(OneFlow(2, nu=0.1, hidden=16, layers=2), scale=0.2)
    x = torch.randn(2000, 2)
    with torch.no_grad():
        log_vol = model.log_volume(x).item()
        radius = bernstein_quantile(model.score(x), 0.9)
        boundary = model.flow.inverse(radius * torch.nn.functional.normalize(torch.randn(4000, 2), dim=1))
        lo, hi = boundary.min(0).values - 0.1, boundary.max(0).values + 0.1
        u = lo + (hi - lo) * torch.rand(200_000, 2)
        inside = (model.score(u) <= radius).double().mean().item()
    mc_log_vol = math.log(inside * (hi - lo).prod().item())
    assert mc_log_vol == pytest.approx(log_vol, abs=0.03)


def test_oneflow_training_finds_the_minimal_volume_region_of_a_gaussian():
    """For N(0, S) the smallest region holding 95% of the mass is the ellipsoid x'S^-1x <= chi2_d(0.95)."""
    d, nu = 2, 0.05
    gen = torch.Generator().manual_seed(0)
    chol = torch.tensor([[2.0, 0.0], [1.2, 0.5]])
    x_train, x_test = (torch.randn(n, d, generator=gen) @ chol.T for n in (3000, 3000))
    optimum = (log_unit_ball_volume(d) + 0.5 * d * math.log(stats.chi2.ppf(1 - nu, d))
               + torch.logdet(chol @ chol.T).item() / 2)
    model = OneFlow(d, nu=nu, blocks=2, hidden=32, layers=2, seed=0)
    with torch.no_grad():
        start = model.log_volume(x_train).item()
    result = train_oneflow(model, x_train, lr=3e-3, max_epochs=15, batch_size=500, patience=15, **QUIET)
    assert result.ok
    with torch.no_grad():
        learned = model.log_volume(x_train).item()
        inside_test = model.inside(x_test).float().mean().item()
    assert start - optimum > 0.5  # the untrained region is far from minimal ...
    assert abs(learned - optimum) < 0.1  # ... the trained one is (nearly) the optimum
    assert inside_test == pytest.approx(1 - nu, abs=0.02)  # and holds 1 - nu of unseen data


def test_a_compiled_oneflow_run_computes_what_an_eager_run_computes():
    """A long OneFlow run compiles its flow, not the quantile (``OneFlowModule.compile_target``): a short
    compiled run's epoch losses equal the eager run's to float rounding, and its scores rank alike.  The
    weights start random (``randomise``), so every gradient is a real one: at OneFlow's own start the
    conjugating LU maps get only rounding residues, which Adam scales up to full steps, and then any
    change of rounding (another CPU, another kernel) sends a run elsewhere (see ``OneFlowModule``)."""
    from usfkit import train
    from usfkit.models.oneflow import OneFlowModule

    if not train.can_compile():
        pytest.skip("torch.compile does not work on this machine (no C++ compiler)")
    gen = torch.Generator().manual_seed(7)
    x, x_test = torch.randn(600, 4, generator=gen), 1.5 * torch.randn(200, 4, generator=gen)
    runs = {}
    for compiled in (False, True):
        model = randomise(OneFlow(4, blocks=2, hidden=16, layers=2, seed=3), scale=0.1)
        result = train_oneflow(model, x, lr=1e-3, max_epochs=4, batch_size=64, patience=10, seed=5,
                               compile=compiled, **QUIET)
        assert result.ok and result.compiled is compiled
        with torch.no_grad():
            runs[compiled] = [row["train_loss"] for row in result.history], model.score(x_test)
    assert runs[True][0] == pytest.approx(runs[False][0], rel=1e-4)
    assert torch.allclose(runs[True][1], runs[False][1], rtol=1e-3)
    module = OneFlowModule(model)
    with train.compiled_loss(module, True):
        assert "forward" in vars(model.flow) and "loss" not in vars(module)  # the flow is compiled, the loss not
    assert "forward" not in vars(model.flow)


def test_bernstein_weights_are_kept_and_sum_to_one():
    from usfkit.models.oneflow import bernstein_weights

    w = bernstein_weights(64, 0.95)
    assert w is bernstein_weights(64, 0.95) and w.dtype == torch.float32
    assert w.sum().item() == pytest.approx(1.0, abs=1e-6) and w.argmax().item() == round(0.95 * 63)


# --------------------------------------------------------------------------
# DOHSC / DO2HSC
# --------------------------------------------------------------------------
def test_orthogonal_projection_makes_the_training_batch_orthonormal():
    gen = torch.Generator().manual_seed(0)
    h = torch.randn(256, 8, generator=gen) @ torch.randn(8, 8, generator=gen) + 3.0
    proj = OrthogonalProjection(8).train()
    z = proj(h)
    assert torch.allclose(z.T @ z / len(z), torch.eye(8), atol=1e-3)
    assert not proj.weight.requires_grad
    # eval mode reuses the stored W: scores of a sub-batch do not depend on the batch
    proj.eval()
    assert torch.allclose(proj(h[:5]), z[:5], atol=1e-5)


@pytest.mark.parametrize("seed", range(30))
def test_dohsc_encoder_output_is_orthonormal_on_the_training_batch(seed):
    """Over many initialisations (the default N(0, 0.02^2) weights make the features tiny and
    often badly conditioned): the projected training batch is orthonormal on the directions
    the projection keeps, and every direction it drops is numerically absent from the batch."""
    torch.manual_seed(seed)
    model = DOHSC(6, widths=(64, 8, 8)).train()
    x = torch.randn(300, 6, generator=torch.Generator().manual_seed(seed))
    z = model(x).double()
    h = model.features(x).double()
    kept = z.abs().sum(0) > 0
    gram = z.T @ z / len(z)
    assert torch.allclose(gram, torch.diag(kept.double()), atol=1e-3)
    lam = torch.linalg.eigvalsh(h.T @ h / len(h))
    assert int(kept.sum()) == int((lam > 1e-6 * lam.max()).sum())  # dropped = below the stated rtol
    assert all(lin.bias is None for lin in model.layers)  # bias-free encoder (§5.1.1)


def test_orthogonal_projection_is_a_pseudo_inverse_on_rank_deficient_batches():
    gen = torch.Generator().manual_seed(0)
    h = torch.randn(500, 3, generator=gen) @ torch.randn(3, 8, generator=gen)  # rank 3 in 8 dimensions
    proj = OrthogonalProjection(8).train()
    z = proj(h).double()
    assert proj.rank(h) == 3
    eig = torch.linalg.eigvalsh(z.T @ z / len(z))
    assert torch.allclose(eig, torch.tensor([0.0] * 5 + [1.0] * 3, dtype=torch.float64), atol=1e-4)
    assert torch.isfinite(z).all() and z.abs().max() < 100  # null directions are not inflated


def test_orthogonal_projection_threshold_is_relative_to_the_feature_scale():
    gen = torch.Generator().manual_seed(1)
    h = torch.randn(400, 8, generator=gen) @ torch.randn(8, 8, generator=gen)
    for scale in (1e-6, 1.0, 1e4):  # the same batch at very different scales: the same projected batch
        z = OrthogonalProjection(8).train()(h * scale).double()
        assert torch.allclose(z.T @ z / len(z), torch.eye(8, dtype=torch.float64), atol=1e-3)


def test_do2hsc_training_radii_use_the_per_batch_projection():
    """The shell radii of the training stage are percentiles of the distances the training loss
    sees (projection recomputed on each batch), so 2 nu of the data start outside the shell."""
    gen = torch.Generator().manual_seed(0)
    x = torch.distributions.StudentT(3.0).sample((512, 6)) * torch.rand(6, generator=gen)
    model = DO2HSC(6, widths=(32, 8, 8), nu=0.05)
    model.init_center(x)
    model.fit_radii(x, batch_size=64)
    model.train()
    with torch.no_grad():
        dist = torch.cat([model.sq_dist(xb) for xb in x.split(64)]).sqrt().double().numpy()
    assert model.r_max.item() == pytest.approx(np.quantile(dist, 0.95), rel=1e-5)
    assert model.r_min.item() == pytest.approx(np.quantile(dist, 0.05), rel=1e-5)
    outside = (dist < model.r_min.item()) | (dist > model.r_max.item())
    assert outside.mean() == pytest.approx(0.10, abs=2 / len(x))


@pytest.fixture(scope="module")
def breastw():
    return adbench_split("4_breastw")


@pytest.fixture(scope="module")
def trained_dohsc(breastw):
    x_train, _, _ = breastw
    torch.manual_seed(0)  # a module fixture is built when a test first asks for it: seed it itself
    model = DOHSC(x_train.shape[1], nu=0.05)
    result = train_dohsc(model, x_train, pretrain_epochs=3, max_epochs=5, batch_size=64, **QUIET)
    return model, result


@pytest.fixture(scope="module")
def trained_do2hsc(breastw):
    x_train, _, _ = breastw
    torch.manual_seed(0)
    model = DO2HSC(x_train.shape[1], nu=0.05)
    result = train_dohsc(model, x_train, pretrain_epochs=3, warmup_epochs=3, max_epochs=5, batch_size=64, **QUIET)
    return model, result


def test_dohsc_radius_is_the_nu_percentile(breastw, trained_dohsc):
    x_train, _, _ = breastw
    model, result = trained_dohsc
    assert result.ok and result.epochs == 5
    with torch.no_grad():
        dist = (model(x_train) - model.center).norm(dim=1).double()
        outside = (model.score(x_train) > 0).double().mean().item()
    assert model.radius.item() == pytest.approx(np.quantile(dist.numpy(), 0.95), rel=1e-5)
    assert outside == pytest.approx(0.05, abs=1.5 / len(x_train))
    # scores use the projection frozen on the training set: independent of batching and mode
    model.train()
    try:
        with torch.no_grad():
            assert torch.allclose(model.score(x_train[:7]), model.score(x_train)[:7], atol=1e-4)
    finally:
        model.eval()


def test_do2hsc_radii_and_shell_score(breastw, trained_do2hsc):
    x_train, _, _ = breastw
    model, result = trained_do2hsc
    assert result.ok
    with torch.no_grad():
        dist = (model(x_train) - model.center).norm(dim=1).double().numpy()
        score = model.score(x_train).double().numpy()
    assert model.r_max.item() == pytest.approx(np.quantile(dist, 0.95), rel=1e-5)
    assert model.r_min.item() == pytest.approx(np.quantile(dist, 0.05), rel=1e-5)
    r_min, r_max, tol = model.r_min.item(), model.r_max.item(), 1e-4  # tol: float32 radii
    in_shell = (dist > r_min + tol) & (dist < r_max - tol)
    off_shell = (dist < r_min - tol) | (dist > r_max + tol)
    assert (score[in_shell] < 0).all() and (score[off_shell] > 0).all()
    assert 0.05 < off_shell.mean() <= 0.10 + 2 / len(x_train)  # (breastw has duplicate rows: ties)
    # the shell loss ignores points inside the shell and penalises the others
    inside, outside = torch.tensor(in_shell), torch.tensor(off_shell)
    assert model.loss(x_train[inside]).item() == 0.0
    assert model.loss(x_train[outside]).item() > 0.0


def test_train_dohsc_rejects_other_models():
    with pytest.raises(TypeError, match="DOHSC or DO2HSC"):
        train_dohsc(OneFlow(3), torch.randn(10, 3))


# --------------------------------------------------------------------------
# All three detect anomalies on a real ADBench dataset
# --------------------------------------------------------------------------
def test_oneflow_detects_anomalies_on_breastw(breastw):
    x_train, x_test, y_test = breastw
    model = OneFlow(x_train.shape[1], seed=0)
    result = train_oneflow(model, x_train, max_epochs=4, batch_size=64, **QUIET)
    assert result.ok
    with torch.no_grad():
        assert auroc(y_test, model.score(x_test)) > 0.9


@pytest.mark.parametrize("which", ["dohsc", "do2hsc"])
def test_dohsc_family_detects_anomalies_on_breastw(breastw, trained_dohsc, trained_do2hsc, which):
    _, x_test, y_test = breastw
    model, _ = trained_dohsc if which == "dohsc" else trained_do2hsc
    with torch.no_grad():
        assert auroc(y_test, model.score(x_test)) > 0.9
