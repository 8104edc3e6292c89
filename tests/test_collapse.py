"""Tests of usfkit.experiments.collapse: the probes and run bookkeeping of chapter 3."""
import math
from types import SimpleNamespace

import pytest
import torch

from usfkit.data import anomaly_data
from usfkit.experiments import collapse
from usfkit.models.flows import NonUSFlow, USFlow, build_flow
from usfkit.models.flows_lightning import FlowModule, train_flow
from usfkit.models.oneclass import DeepSVDD, train_svdd
from usfkit.train import FitResult, fit


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


# --------------------------------------------------------------------------
# Reading trajectories and the sentences chapter 03 prints from them
# --------------------------------------------------------------------------
def test_explode_table_and_its_sentences_name_the_runs_that_went_wrong():
    """§3's table takes the best epoch from the test NLL (a NaN epoch is never best) and the largest LU
    condition number of any epoch; the sentence per flow counts the runs that went wrong and describes them."""
    def run(coupling, seed, status, nll, cond):
        trajectory = [{"epoch": float(e), "logdet_mean": -1.0, "logdet_std": 0.0, "logdet_absmax": 2.0 + e,
                       "nll": n, "lu_cond": c} for e, (n, c) in enumerate(zip(nll, cond))]
        return {"coupling": coupling, "seed": seed, "constant_det": coupling == "additive_lu", "status": status,
                "epochs": len(nll) - 1, "final_nll": min(x for x in nll if x == x), "failure": None,
                "trajectory": trajectory}

    runs = [run("additive_lu", 0, "ok", [10.0, 5.0, 6.0], [1.0, 3.0, 2.0]),
            run("additive_lu", 1, "diverged", [10.0, 4.0, 1e7], [1.0, 2.0, 4e8]),
            run("affine_lu", 0, "failed", [10.0, float("nan"), float("nan")], [1.0, 5e6, 1.0])]
    table = collapse.explode_table(runs)
    assert table["best epoch"].tolist() == [1, 1, 0]
    assert table["max LU cond"].tolist() == [3.0, 4e8, 5e6] and table["max |ln det J|"].tolist() == [4.0, 4.0, 4.0]
    usf, nonusf = collapse.describe_explode(table)
    assert usf.startswith("USFlows: 1 of 2 runs went wrong (seed 1 diverged): best test NLL at epoch 1")
    assert "condition number 4e+08 or more, last test NLL 1e+07 or more" in usf and "the 1 good runs: best epoch 1" in usf
    assert nonusf.startswith("NonUSFlows: 1 of 1 runs went wrong (seed 0 failed)") and "good" not in nonusf
    assert "last test NLL not finite in 1," in nonusf


def _traj(key_values: dict[str, list[float]]) -> list[dict]:
    n = len(next(iter(key_values.values())))
    return [{"epoch": float(i), **{k: float(v[i]) for k, v in key_values.items()}} for i in range(n)]


def test_first_epoch_and_tail_change():
    t = _traj({"spread": [1.0, 1e-3, 0.0, 0.0], "x": [10.0, 8.0, 6.0, 5.0]})
    assert collapse.first_epoch(t, "spread", 0.0) == 2
    assert collapse.first_epoch(t, "spread", 1e-2) == 1
    assert collapse.first_epoch(t, "x", 1.0) is None
    assert collapse.tail_change(t, "x", last=1) == (1, pytest.approx(-1 / 6))
    assert collapse.tail_change(t, "x") == (3, pytest.approx(-0.5))  # default window capped at the epochs run
    long = _traj({"x": [100.0 - i for i in range(101)]})
    k, change = collapse.tail_change(long, "x")
    assert k == 10 and change == pytest.approx((0 - 10) / 10)  # max(5, 100 // 10) epochs
    with pytest.raises(ValueError):
        collapse.tail_change(long[:1], "x")


def _svdd_runs(collapse_at: int | None, loss_rises: bool) -> dict[str, dict]:
    """Fake section-1 runs: every variant shrinks; the strong-decay bounded one reaches spread 0 at
    ``collapse_at`` (None: never)."""
    rng = torch.Generator().manual_seed(0)

    def run(spread0, factor, auroc0, auroc1, decay=1e-6, loss0=None):
        spreads = [spread0 * factor ** (i / 4) for i in range(5)]
        loss = [(loss0 if loss0 is not None else 8 * s * s) for s in spreads]
        t = _traj({"spread": spreads, "loss": loss, "mean_dist": [math.sqrt(v) for v in loss],
                   "auroc": torch.linspace(auroc0, auroc1, 5).tolist()})
        return {"trajectory": t, "initial": t[0], "final": dict(t[-1]), "weight_decay": decay}

    runs = {collapse.RUFF: run(1.4, 0.15, 0.59, 0.78), collapse.BIASED: run(1.5, 0.03, 0.59, 0.83),
            collapse.BOUNDED: run(0.47, 0.01, 0.38, 0.81), collapse.RUFF_DECAY: run(1.4, 0.2, 0.55, 0.77, 1e-2)}
    spreads = [1e-6 * float(torch.rand(1, generator=rng)) + 1e-7 for _ in range(5)]
    if collapse_at is not None:
        spreads[collapse_at:] = [0.0] * (5 - collapse_at)
    loss = [1e-11] + [4e-8 if loss_rises else 1e-12] * 4
    t = _traj({"spread": spreads, "loss": loss, "mean_dist": [math.sqrt(v) for v in loss],
               "auroc": [0.88 if s > 0 else 0.5 for s in spreads]})
    runs[collapse.BOUNDED_DECAY] = {"trajectory": t, "initial": t[0], "final": dict(t[-1]), "weight_decay": 1e-2}
    return runs


def test_describe_svdd_says_when_the_bounded_network_collapsed_and_why_its_loss_rose():
    text = " ".join(collapse.describe_svdd(_svdd_runs(collapse_at=3, loss_rises=True)))
    assert "at epoch 3 of 4 of one-class training and stayed so" in text
    assert "test AUROC of 0.880 at the start" in text
    assert "Its loss rose from 1e-11, measured before the first one-class epoch" in text and "to 4e-08" in text
    assert "is the whole loss" in text
    assert "none of the three" in text
    assert "'with bias (leaky ReLU)' 0.830 (higher)" in text
    start = " ".join(collapse.describe_svdd(_svdd_runs(collapse_at=0, loss_rises=False)))
    assert "**constant from the start** of one-class training" in start and "rose" not in start
    assert "happened during the pretraining, not during one-class training" in start
    assert "**collapsed during one-class training**" in text and "**collapsed during" not in start
    probed = _svdd_runs(collapse_at=0, loss_rises=False)  # with the pretraining probed: where it became constant
    probed[collapse.BOUNDED_DECAY]["pretrain_trajectory"] = _traj({"spread": [5e-4, 1e-6, 0.0, 0.0, 0.0]})
    text = " ".join(collapse.describe_svdd(probed))
    assert "at initialisation its spread was 0.0005" in text and "exactly constant from its epoch 2 of 4" in text
    never = " ".join(collapse.describe_svdd(_svdd_runs(collapse_at=None, loss_rises=True)))
    assert "never became exactly constant in the 4 epochs" in never and "is the whole loss" not in never


def test_describe_usf_fit_reports_the_gap_and_whether_training_levelled_off():
    dim, std = 8, math.sqrt(0.5)
    falling = _traj({"sq_dist": [20.0 - 0.5 * i for i in range(31)], "logdet_mean": [-0.1 * i for i in range(31)],
                     "latent_spread": [0.8] * 31})
    text = " ".join(collapse.describe_usf_fit(falling, dim, std))
    assert "E‖φ(x) − c‖² = 5 against d/2 = 4" in text and "(+25.0%)" in text
    assert "last 5 of 30 epochs" in text and "had not converged" in text
    flat = _traj({"sq_dist": [4.1] * 31, "logdet_mean": [-3.0] * 31, "latent_spread": [0.72] * 31})
    text = " ".join(collapse.describe_usf_fit(flat, dim, std))
    assert "levelled off" in text and "not converged" not in text and "+0.0%" in text


def test_table_views_have_short_two_level_headers():
    import pandas as pd

    svdd = pd.DataFrame([{"variant": "a", "weight decay": 1e-6, "loss start": 1.0, "loss end": 0.5,
                          "spread start": 1.0, "spread end": 0.1, "AUROC start": 0.5, "AUROC end": 0.81234}]
                        ).set_index("variant")
    view = collapse.svdd_view(svdd)
    assert list(view.data.columns) == [("weight decay", "λ"), ("loss", "start"), ("loss", "end"),
                                       ("spread", "start"), ("spread", "end"), ("AUROC", "start"), ("AUROC", "end")]
    assert "0.812" in view.to_html() and "0.81234" not in view.to_html()

    row = {"flow": "affine_lu", "seed": 0, "status": "ok", "epochs": 15, "mean ln|det J|": -31.0,
           "std over inputs": 1.8, "max |ln det J|": 130.3, "test NLL (last epoch)": 61.7,
           "test NLL (best epoch)": 61.7, "best epoch": 15, "max LU cond": 2.01e4, "failure": ""}
    quiet = collapse.explode_view(pd.DataFrame([row, {**row, "seed": 1}]))
    assert ("run", "failure") not in quiet.data.columns and len(quiet.data.columns) == 6
    assert quiet.data.index.get_level_values("flow").tolist() == ["NonUSFlow", "NonUSFlow"]
    loud = collapse.explode_view(pd.DataFrame([row, {**row, "seed": 1, "status": "failed",
                                                     "failure": "loss became nan at epoch 3, batch 2. " * 5}]))
    fails = loud.data[("run", "failure")].tolist()
    assert fails[0] == "–" and fails[1].startswith("loss became nan") and fails[1].endswith("…")

    sweep = pd.DataFrame([{"coupling": "additive_lu", "sigma": "0.1", "runs": 2, "ok": 2, "failed": 0, "diverged": 0,
                           "ln_det_mean": 9.9, "ln_det_spread": 9.5e-7, "growth_last_quarter": -0.003,
                           "test_nll": -0.69},
                          {"coupling": "affine_lu", "sigma": "0.1", "runs": 2, "ok": 1, "failed": 1, "diverged": 0,
                           "ln_det_mean": 30.0, "ln_det_spread": 3.0, "growth_last_quarter": 1.0, "test_nll": -10.0}]
                         ).set_index(["coupling", "sigma"])
    view = collapse.sweep_view(sweep)
    assert view.data[("", "runs")].tolist() == ["2 ok", "1 ok, 1 failed"]
    assert not any("_" in part for col in view.data.columns for part in col)
    assert list(view.data.index.names) == ["flow", "σ"] and list(sweep.index.names) == ["coupling", "sigma"]
    assert view.data.index.get_level_values("flow").tolist() == ["USFlow", "NonUSFlow"]


def test_pretraining_collapse_finds_the_epoch_the_bounded_decayed_network_became_constant():
    from types import SimpleNamespace

    cfg = SimpleNamespace(dim=4, n_train=256, n_test=64, n_anomalies=16, anomaly_quantile=0.05, seed=0,
                          svdd_depth=2, svdd_lr=3e-2, pretrain_epochs=30, batch_size=64)
    out = collapse.pretraining_collapse(cfg)
    assert out["init_spread"] > 0 and out["spreads"][0] == out["init_spread"]
    assert out["epochs_run"] == len(out["spreads"]) - 1 <= 30
    if out["constant_at"] is not None:  # it stops at the first exactly constant epoch
        assert out["spreads"][-1] == 0 and out["epochs_run"] == out["constant_at"] and min(out["spreads"][:-1]) > 0
    ruff = collapse.pretraining_collapse(cfg, collapse.RUFF)  # Ruff's recipe never becomes constant
    assert ruff["constant_at"] is None and ruff["epochs_run"] == 30
