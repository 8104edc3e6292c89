"""Tests of usfkit.experiments.collapse: the probes and run bookkeeping of chapter 3."""
import math
from types import SimpleNamespace

import pytest
import torch

from usfkit.data import anomaly_data
from usfkit.experiments import collapse
from usfkit.flows import NonUSFlow, USFlow, build_flow
from usfkit.oneclass import DeepSVDD
from usfkit.train import FitResult, FlowModule, fit, train_flow, train_svdd


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
    data = anomaly_data(4, 256, 64, 8, seed=0)
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


def test_run_svdd_takes_weight_decay_from_the_variant():
    data = anomaly_data(4, 256, 64, 16, seed=0)
    variant = collapse.SVDD_VARIANTS["bounded, strong decay"]
    run = collapse.run_svdd(variant, data["x_train"], data["x_test"], data["y_test"], epochs=2, pretrain_epochs=1,
                            depth=2, seed=0)
    assert run["weight_decay"] == 1e-2 and "weight_decay" in variant  # used, and the shared dict is untouched
    assert [r["epoch"] for r in run["trajectory"]] == [0, 1, 2]
    plain = collapse.run_svdd(collapse.SVDD_VARIANTS["Ruff (no bias, leaky ReLU)"], data["x_train"], data["x_test"],
                              data["y_test"], epochs=1, pretrain_epochs=0, depth=2, weight_decay=3e-5, seed=0)
    assert plain["weight_decay"] == 3e-5


def test_chapter_loops_are_resumable_sweeps_whose_records_keep_the_trajectories(tmp_path, monkeypatch):
    """Chapter 03's three loops run through usfkit.sweep: a rerun reads every run back (trajectories,
    status, NaN/inf values included) without training, and a changed setting trains anew."""
    from usfkit import profiles
    from usfkit.data import anomaly_data, subspace_data

    monkeypatch.setenv("USFKIT_RESULTS", str(tmp_path))
    cfg = profiles.resolve("03_collapse", "quick", svdd_epochs=2, pretrain_epochs=1, explode_epochs=2, explode_runs=1,
                           sweep_epochs=2, sweep_runs=1, n_train=200, n_test=100, n_anomalies=20, explode_n_train=100,
                           sweep_n_train=100, explode_dim=6, sigmas=[1.0, None])
    data = anomaly_data(cfg.dim, cfg.n_train, cfg.n_test, cfg.n_anomalies, quantile=cfg.anomaly_quantile, seed=0)
    sub = subspace_data(cfg.sweep_dim, cfg.sweep_rank, cfg.sweep_n_train, cfg.n_test, seed=0)
    ex = anomaly_data(cfg.explode_dim, cfg.explode_n_train, cfg.n_test, cfg.n_anomalies, seed=0)
    first = (collapse.svdd_variants(cfg, data["x_train"], data["x_test"], data["y_test"]),
             collapse.explode_runs(cfg, ex["x_train"], ex["x_test"]),
             collapse.prior_sweep(cfg, sub["x_train"], sub["x_test"]))
    svdd, explode, prior = first
    assert list(svdd) == list(collapse.SVDD_VARIANTS) and len(svdd["bounded (sigmoid, bias)"]["trajectory"]) == 3
    assert [(r["coupling"], r["seed"]) for r in explode] == [("affine_lu", 0), ("additive_lu", 0)]
    assert [(r["sigma"], r["coupling"]) for r in prior] == [(1.0, "additive_lu"), (1.0, "affine_lu"),
                                                           (None, "additive_lu"), (None, "affine_lu")]
    assert all(r["constant_det"] == r["coupling"].startswith("additive") for r in explode + prior)
    assert all(isinstance(v, float) for r in explode for row in r["trajectory"] for v in row.values())

    from usfkit import sweep
    folder = sweep.runs_dir(collapse.CHAPTER, "quick")
    named = [folder / f"{sweep.spec_key(s, settings)}.json" for specs, settings in collapse.sweeps(cfg).values()
             for s in specs]
    assert len(named) == 5 + 2 + 4 and all(p.exists() for p in named)  # sweeps() names exactly the runs made

    monkeypatch.setattr(collapse, "run_svdd", lambda *a, **k: pytest.fail("trained again"))
    monkeypatch.setattr(collapse, "run_flow", lambda *a, **k: pytest.fail("trained again"))
    again = (collapse.svdd_variants(cfg, data["x_train"], data["x_test"], data["y_test"]),
             collapse.explode_runs(cfg, ex["x_train"], ex["x_test"]),
             collapse.prior_sweep(cfg, sub["x_train"], sub["x_test"]))
    assert again == first
    longer = SimpleNamespace(**{**vars(cfg), "explode_epochs": 3})
    with pytest.raises(pytest.fail.Exception):  # another epoch budget is another run: it trains
        collapse.explode_runs(longer, ex["x_train"], ex["x_test"])


def test_records_turn_non_finite_strings_back_into_floats():
    rows = collapse._numbers([{"epoch": 1, "nll": "nan", "logdet_absmax": "inf", "logdet_mean": "-inf"}])
    assert rows[0]["epoch"] == 1.0 and math.isnan(rows[0]["nll"]) and rows[0]["logdet_absmax"] == math.inf
    assert rows[0]["logdet_mean"] == -math.inf
