"""Tests of usfkit.collapse: Proposition 1, the log-det prior of App. B.2, the probes and
run bookkeeping of chapter 3."""
import math

import numpy as np
import pytest
import torch

from usfkit import collapse
from usfkit.data import AsymmetricGaussianMixture
from usfkit.flows import LUAffine, NonUSFlow, USFlow, build_flow
from usfkit.oneclass import DeepSVDD
from usfkit.train import FitResult, FlowModule, fit, train_flow, train_svdd


# ----------------------------------------------------------------------------- Proposition 1
@pytest.mark.parametrize("dim", [3, 5, 10, 50])
def test_prop1_closed_form_matches_quadrature(dim):
    for alpha in (0.5, 2.0):
        assert collapse.prop1_quadrature(dim, alpha) == pytest.approx(collapse.prop1_closed_form(dim, alpha),
                                                                      rel=1e-6)


def test_prop1_needs_d_above_two():
    with pytest.raises(ValueError):
        collapse.prop1_closed_form(2, 1.0)


@pytest.mark.parametrize("dim", [5, 10, 50])
def test_prop1_monte_carlo_matches_closed_form(dim):
    rows = collapse.prop1_monte_carlo(dim, [0.5, 1.0, 4.0], n=200_000, seed=1)
    for r in rows:
        assert r["finite_variance"]
        assert r["rel_error"] < 0.03
        # within 5 standard errors (the variance is finite for d > 4, so the CLT applies)
        assert abs(r["monte_carlo"] - r["closed_form"]) < 5 * r["std_err"]
    # the loss scales as alpha^-2
    assert rows[0]["monte_carlo"] / rows[2]["monte_carlo"] == pytest.approx(64.0)


def test_prop1_monte_carlo_would_catch_a_wrong_formula():
    r = collapse.prop1_monte_carlo(10, [1.0], n=200_000, seed=2)[0]
    assert abs(r["monte_carlo"] - 1 / 10) / (1 / 10) > 0.1  # 1/d is not the loss, 1/(d-2) is


def test_density_inversion_reverses_the_ranking():
    inv = collapse.density_inversion(5, 2.0, n=5000, seed=0)
    assert inv["spearman_score"] == pytest.approx(-1.0)
    assert inv["spearman_density"] == pytest.approx(1.0)
    assert inv["auroc_tail"] == pytest.approx(0.0)


# ----------------------------------------------------------------------------- LU prior (App. B.2)
@pytest.mark.parametrize("channels,h,w", [(8, 3, 3), (16, 1, 1), (1, 4, 4)])
def test_prior_log_det_distribution(channels, h, w):
    sigma, n = 0.7, 40_000
    for rule, expected in (("exact", sigma**2), ("paper", sigma**2 / channels)):
        s = collapse.sample_lu_log_dets(sigma, channels, h, w, n=n, rule=rule, seed=3).numpy()
        assert collapse.lu_log_det_variance(sigma, channels, h * w, rule) == pytest.approx(expected)
        assert abs(s.mean()) < 5 * math.sqrt(expected / n)
        assert s.var() == pytest.approx(expected, rel=0.05)


def test_paper_rule_differs_from_exact_rule_when_channels_exceed_one():
    a = collapse.sample_lu_log_dets(1.0, 8, 2, 2, n=20_000, rule="exact", seed=0).var()
    b = collapse.sample_lu_log_dets(1.0, 8, 2, 2, n=20_000, rule="paper", seed=0).var()
    assert (a / b).item() == pytest.approx(8.0, rel=0.05)


def test_sampled_log_det_is_the_determinant_of_the_full_map():
    """The slogdet of the full 1x1-conv map equals h*w*sum(ln|u_i|), which is what LUAffine uses."""
    torch.manual_seed(0)
    lu = LUAffine(6, init_scale=1.0)
    with torch.no_grad():
        lu.log_abs_u.copy_(torch.randn(6) * 0.5)
    x = torch.randn(2, 6, 3, 4)
    _, ld = lu(x)
    full = 12 * torch.linalg.slogdet(lu.matrix().double()).logabsdet
    assert ld[0].item() == pytest.approx(full.item(), abs=1e-4)


# ----------------------------------------------------------------------------- data, stats, probes
def test_anomalies_lie_below_the_density_threshold():
    data = collapse.anomaly_data(4, 500, 200, 50, quantile=0.02, seed=0)
    assert data["x_test"].shape == (250, 4) and int(data["y_test"].sum()) == 50
    logp = AsymmetricGaussianMixture(4).log_prob(data["x_test"].numpy())
    assert (logp[data["y_test"].numpy() == 1] < data["log_density_threshold"]).all()


def test_svdd_stats_of_a_collapsed_network():
    """With bias terms the constant map omega(x) = c exists: zero weights, last bias = c.
    Without bias, zero weights give omega(x) = 0 != c and the loss stays ||c||^2."""
    torch.manual_seed(0)
    x = torch.randn(100, 4)
    y = torch.cat([torch.zeros(80), torch.ones(20)]).long()
    biased = DeepSVDD(4, [8, 3], bias=True)
    biased.init_center(x)
    with torch.no_grad():
        for m in biased.encoder:
            if isinstance(m, torch.nn.Linear):
                m.weight.zero_()
                m.bias.zero_()
        biased.encoder[-1].bias.copy_(biased.center)
    s = collapse.svdd_stats(biased, x, y)
    assert s["loss"] == 0 and s["spread"] == 0 and s["auroc"] == 0.5

    plain = DeepSVDD(4, [8, 3], bias=False)
    plain.init_center(x)
    with torch.no_grad():
        for p in plain.encoder.parameters():
            p.zero_()
    s = collapse.svdd_stats(plain, x, y)
    assert s["loss"] == pytest.approx(plain.center.pow(2).sum().item())


def test_flow_stats_usf_has_constant_log_det():
    torch.manual_seed(0)
    x = torch.randn(64, 6)
    usf, non = USFlow(6, blocks=2, hidden=16, seed=0), NonUSFlow(6, blocks=2, hidden=16, seed=0)
    with torch.no_grad():  # move the couplings away from their identity initialisation
        for f in (usf, non):
            for p in f.parameters():
                p.add_(0.3 * torch.randn_like(p))
        a, b = collapse.flow_stats(usf, x), collapse.flow_stats(non, x)
    assert a["logdet_std"] < 1e-4 and b["logdet_std"] > 1e-2
    assert a["logdet_mean"] == pytest.approx(usf.log_abs_det_constant().item(), abs=1e-4)
    assert a["lu_cond"] >= 1.0


def test_epoch_probe_records_every_epoch_through_fit_callbacks():
    torch.manual_seed(0)
    x = torch.randn(64, 4)
    flow = USFlow(4, blocks=1, hidden=8, seed=0)
    probe = collapse.EpochProbe(lambda: {"ld": flow.log_abs_det_constant()})
    res = train_flow(flow, x, lr=1e-2, max_epochs=3, patience=10, progress="none", callbacks=[probe])
    assert res.ok
    assert [r["epoch"] for r in probe.rows] == [0, 1, 2, 3]
    assert probe.rows[0]["ld"] == 0.0 and probe.rows[-1]["ld"] != 0.0


def test_epoch_probe_keeps_only_the_last_fit_of_svdd():
    torch.manual_seed(0)
    x = torch.randn(64, 4)
    model = DeepSVDD(4, [4, 2])
    probe = collapse.EpochProbe(lambda: {"c0": model.center[0]})
    train_svdd(model, x, pretrain_epochs=2, max_epochs=3, patience=10, progress="none", callbacks=[probe])
    assert [r["epoch"] for r in probe.rows] == [0, 1, 2, 3]
    assert all(r["c0"] == pytest.approx(model.center[0].item()) for r in probe.rows)  # centre set before


def test_run_status():
    traj_ok = [{"nll": 100.0}, {"nll": 50.0}]
    traj_bad = [{"nll": 100.0}, {"nll": 1e9}]
    traj_nan = [{"nll": 100.0}, {"nll": float("nan")}]
    ok = FitResult(ok=True, epochs=1, wall_time_s=0.0, best_loss=1.0)
    failed = FitResult(ok=False, epochs=1, wall_time_s=0.0, best_loss=1.0, failure="loss became nan")
    assert collapse.run_status(ok, traj_ok) == "ok"
    assert collapse.run_status(ok, traj_bad) == "diverged"
    assert collapse.run_status(ok, traj_nan) == "diverged"
    assert collapse.run_status(failed, traj_ok) == "failed"


def test_run_flow_returns_trajectory_and_rejects_unknown_coupling():
    data = collapse.anomaly_data(4, 256, 64, 8, seed=0)
    run = collapse.run_flow("additive_lu", data["x_train"], data["x_test"], epochs=2, blocks=1, hidden=8,
                            prior_sigma=1.0, seed=0)
    assert len(run["trajectory"]) == 3 and run["fit"].ok
    assert run["flow"].prior_sigma == 1.0 and run["flow"].constant_det
    for old in ("USF", "NonUSF", "RealNVP"):
        with pytest.raises(ValueError, match="'affine_lu': affine coupling in LU-conjugated blocks"):
            collapse.run_flow(old, data["x_train"], data["x_test"], epochs=1)


def test_lu_condition_number_of_a_flow_without_lu_maps_is_one():
    assert collapse.lu_condition_number(build_flow(4, "affine", blocks=2, hidden=8, seed=0)) == 1.0
    assert collapse.lu_condition_number(build_flow(4, "affine_lu", blocks=2, hidden=8, seed=0)) >= 1.0


def test_fit_without_callbacks_still_works():
    x = torch.randn(32, 3)
    module = FlowModule(USFlow(3, blocks=1, hidden=4, seed=0), 1e-3, n_train=32)
    res = fit(module, x, max_epochs=1, progress="none")
    assert res.ok and res.epochs == 1


def test_sampled_log_dets_are_reproducible():
    a = collapse.sample_lu_log_dets(1.0, 4, n=100, seed=5)
    b = collapse.sample_lu_log_dets(1.0, 4, n=100, seed=5)
    assert torch.equal(a, b) and np.isfinite(a.numpy()).all()


def test_subspace_data_is_rank_deficient():
    sub = collapse.subspace_data(8, 3, 300, 100, seed=0)
    assert sub["x_train"].shape == (300, 8) and sub["x_test"].shape == (100, 8)
    assert torch.linalg.matrix_rank(sub["x_train"].double(), atol=1e-4) == 3
    q = sub["basis"]
    assert torch.allclose(q.T @ q, torch.eye(3), atol=1e-5)
    with pytest.raises(ValueError):
        collapse.subspace_data(4, 4, 10, 10)


def test_run_svdd_takes_weight_decay_from_the_variant():
    data = collapse.anomaly_data(4, 256, 64, 16, seed=0)
    variant = collapse.SVDD_VARIANTS["bounded, strong decay"]
    run = collapse.run_svdd(variant, data["x_train"], data["x_test"], data["y_test"], epochs=2, pretrain_epochs=1,
                            depth=2, seed=0)
    assert run["weight_decay"] == 1e-2 and "weight_decay" in variant  # used, and the shared dict is untouched
    assert [r["epoch"] for r in run["trajectory"]] == [0, 1, 2]
    plain = collapse.run_svdd(collapse.SVDD_VARIANTS["Ruff (no bias, leaky ReLU)"], data["x_train"], data["x_test"],
                              data["y_test"], epochs=1, pretrain_epochs=0, depth=2, weight_decay=3e-5, seed=0)
    assert plain["weight_decay"] == 3e-5
