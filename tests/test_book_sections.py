"""Tests of the functions behind the "At the paper's settings" sections of chapters 01-04: the computed
prose, the tables and the figures drawn from saved records, on constructed inputs."""
import math

import matplotlib
import pandas as pd
import pytest

matplotlib.use("Agg")

from usfkit import book, plots  # noqa: E402
from usfkit.experiments import alignment, collapse, fullruns, lossparts, moons  # noqa: E402


# ---------------------------------------------------------------- chapter 01
def moons_record(auc_usf=0.9, auc_svdd=0.8, n_outliers=100, n_test=1000, n_train=500):
    return {"auroc": {"Deep SVDD": auc_svdd, "USFlow": auc_usf}, "auroc_usf_latent_norm": auc_usf,
            "flagged": {"test normals flagged": {"Deep SVDD": 0.01, "USFlow": 0.02},
                        "outliers flagged": {"Deep SVDD": 0.5, "USFlow": 0.7}},
            "inside_k_sigma": {"expected (chi-square, 2 dof)": {"1 sigma": 0.39, "2 sigma": 0.86, "3 sigma": 0.99},
                               "observed (test normals)": {"1 sigma": 0.30, "2 sigma": 0.90, "3 sigma": 0.99}},
            "usf_density_integral": 1.0, "fits": {"usf": {"epochs": 12}},
            "settings": {"n_train": n_train, "n_test": n_test, "n_outliers": n_outliers, "noise": 0.08, "blocks": 4,
                         "hidden": 64, "layers": 2, "lr": 1e-3, "epochs": 100, "svdd_widths": [8, 2]}}


def test_auroc_se_shrinks_with_the_test_set_and_vanishes_at_a_perfect_auroc():
    small, large = moons.auroc_se(0.9, 50, 500), moons.auroc_se(0.9, 500, 5000)
    assert large < small and large == pytest.approx(small / math.sqrt(10), rel=0.05)
    assert moons.auroc_se(1.0, 50, 500) == 0.0
    # by hand: Q1 = 0.9/1.1, Q2 = 1.62/1.9, var = (0.09 + 49 (Q1 - 0.81) + 49 (Q2 - 0.81)) / 2500
    assert moons.auroc_se(0.9, 50, 50) == pytest.approx(0.03212, abs=1e-4)


def test_describe_full_states_the_aurocs_in_percent_and_the_chi_square_gap():
    text = moons.describe_full(moons_record())
    assert "**90.00 %**" in text and "**80.00 %**" in text and "10.0 pp" in text
    assert "70.0 % of the outliers" in text and "largest gap here is **9.0 pp** (at 1 sigma)" in text
    assert "within 5 pp" in text and "this part **fails**" in text and "**partly reproduced**" in text


def test_figure1_parts_follow_the_report_rule():
    rec = moons_record()  # gaps 9, 4, 0 pp; Deep SVDD flags exactly 50 % of the outliers: not more than half
    assert moons.figure1_parts(rec) == {"Deep SVDD separates the outliers": False, "USFlow separates the outliers": True,
                                        "the USFlow's latents are Gaussian": False}
    rec["flagged"]["outliers flagged"]["Deep SVDD"] = 0.6
    rec["inside_k_sigma"]["observed (test normals)"]["1 sigma"] = 0.35  # largest gap now 4 pp
    assert all(moons.figure1_parts(rec).values()) and "**reproduced**" in moons.describe_gaussian(rec)
    rec["flagged"]["test normals flagged"]["USFlow"] = 0.06  # flags too many normals
    assert not moons.figure1_parts(rec)["USFlow separates the outliers"]


def test_compare_runs_measures_the_difference_in_standard_errors_and_lists_what_differs():
    full, this = moons_record(0.93, n_outliers=300, n_test=5000, n_train=5000), moons_record(0.95, n_outliers=60)
    text = moons.compare_runs(full, this)
    se = math.hypot(moons.auroc_se(0.95, 60, 1000), moons.auroc_se(0.93, 300, 5000))
    assert f"{0.02 / se:.1f} combined standard errors" in text and "within ±2" in text
    assert "training points 500 vs 5000" in text and "test outliers 60 vs 300" in text
    widths = moons.compare_runs(full, {**this, "settings": {**this["settings"], "svdd_widths": [64, 2]}})
    assert "Deep SVDD widths 64-2 vs 8-2" in widths and "[" not in widths
    far = moons.compare_runs(full, moons_record(0.70, n_outliers=60))
    assert "outside ±2" in far.split(";")[0]


def test_key_table_one_column_per_run_rounded():
    table = moons.key_table({"full": moons_record(0.93456), "quick": moons_record()})
    assert list(table.columns) == ["full", "quick"]
    assert table.loc["AUROC USFlow (%)", "full"] == "93.46" and table.loc["USFlow epochs", "quick"] == 12


def test_figure1_summary_draws_three_panels_with_error_bars():
    fig = plots.figure1_summary({"full": moons_record(), "quick": moons_record(0.95)})
    assert len(fig.axes) == 3 and len(fig.axes[0].containers) >= 2
    assert [t.get_text() for t in fig.axes[0].texts] or fig.axes[0].get_ylim()[1] == 100
    # the flagged bars: normals and outliers in two colours, told apart by a legend
    legend = [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    assert legend == ["test normals", "outliers"]
    colors = {tuple(b.get_facecolor()) for b in fig.axes[1].patches}
    assert len(colors) == 2 and min(t.get_fontsize() for t in fig.axes[1].get_xticklabels()) >= 10


# ---------------------------------------------------------------- chapter 02
def history(svdd_terms, val_losses):
    return [{"epoch": i + 1, "svdd_term": s, "val_loss": v, "train_loss": 40 - i}
            for i, (s, v) in enumerate(zip(svdd_terms, val_losses))]


def test_stationarity_finds_the_restored_epoch_and_the_rescaling_gain():
    h = history([20, 18, 17, 16.5, 16.1], [30, 29, 28.5, 28.7, 29])
    st = lossparts.stationarity(17.0, 32, h)
    assert st["gap"] == pytest.approx(17 / 16 - 1) and st["slope"] == pytest.approx(2.0)
    assert st["alpha"] == pytest.approx(math.sqrt(16 / 17))
    assert st["gain"] == pytest.approx(17 - 16 - 16 * math.log(17 / 16))
    assert st["restored"]["epoch"] == 3 and st["last"]["epoch"] == 5
    at_d_half = lossparts.stationarity(16.0, 32, h)
    assert at_d_half["gain"] == pytest.approx(0) and at_d_half["slope"] == 0


def test_describe_stationarity_says_whether_training_had_converged():
    h = history([20, 18, 17, 16.5, 16.1], [30, 29, 28.5, 28.7, 29])
    text = lossparts.describe_stationarity(lossparts.stationarity(17.0, 32, h))
    assert "**17.00**" in text and "**+6.2 %**" in text and "epoch 3" in text and "**not converged**" in text
    assert "17.00 in epoch 3" in text and "to 16.100 in epoch 5 (+0.63 % from d/2)" in text and "a gap of 6.2 %" in text
    # the relative gap comes from the unrounded term: 16.005 is +0.03 % (not the +0.06 % of a rounded 16.01)
    near = lossparts.describe_stationarity(lossparts.stationarity(17.0, 32, history([20, 18, 17, 16.5, 16.0054],
                                                                                    [30, 29, 28.5, 28.7, 29])))
    assert "to 16.005 in epoch 5 (+0.03 % from d/2)" in near and "same weights measured after training" in near
    flat = [{**r, "train_loss": 30.0} for r in h]
    assert "levelled off" in lossparts.describe_stationarity(lossparts.stationarity(17.0, 32, flat))


def eq5_record():
    checks = [{"precision": p, "ln|det J| from": w, "inputs": 100, "max relative residual": r}
              for p, w, r in (("float32", "layers", 1e-7), ("float64", "autograd", 3e-16))]
    flow = {"std of ln|det J(x)|": 1e-6, "range of ln|det J(x)|": 0.0, "max |NLL - (SVDD + const + best constant)|": 1e-5,
            "Spearman(NLL, latent norm)": 1.0, "mean test NLL": 10.0, "true mean -ln p(x)": 9.5}
    non = dict(flow, **{"std of ln|det J(x)|": 2.5, "range of ln|det J(x)|": 9.0, "Spearman(NLL, latent norm)": 0.7,
                        "max |NLL - (SVDD + const + best constant)|": 4.0, "mean test NLL": 9.8})
    return {"settings": {"dim": 4, "n_train": 1000, "blocks": 2, "layers": 2, "hidden": 8}, "usf_checks": checks,
            "comparison": {"USFlow": flow, "NonUSFlow": non}, "nonusf_component_logdet_gap": 1.5,
            "component_log_volume_gap": 2.0, "usf_mean_sq_dist_train": 2.1,
            "history": {"usf": history([3, 2.5, 2.2], [12, 11, 11.5])}}


def test_describe_eq5_full_names_every_check_and_the_nonusf_spread():
    text = lossparts.describe_eq5_full(eq5_record())
    assert "float32, ln|det J| from layers (100 inputs): 1.0e-07" in text and "3.0e-16" in text
    assert "2.50 nats" in text and "75 %" in text and "0.700" in text
    assert text.count("\n* ") == 5 and "lower on the wide mixture component" in text and "(d/4) ln 2.5 = 2.00" in text


def test_eq5_run_marks_the_restored_epoch():
    fig = plots.eq5_run(eq5_record())
    assert len(fig.axes) == 3
    assert any(line.get_xdata()[0] == 2 for line in fig.axes[1].lines if len(set(line.get_xdata())) == 1)


# ---------------------------------------------------------------- chapter 03
def collapse_summary(usf_wrong_in_stress=True):
    runs = []
    for seed in range(4):
        runs.append({"flow": "affine_lu", "seed": seed, "constant_det": False, "status": "diverged" if seed < 2 else "ok",
                     "std over inputs": 5.0, "max LU cond": 1e4, "test NLL (last epoch)": 1e9})
        bad = usf_wrong_in_stress and seed == 1
        runs.append({"flow": "additive_lu", "seed": seed, "constant_det": True, "status": "diverged" if bad else "ok",
                     "std over inputs": 1e-5, "max LU cond": 2e9 if bad else 100.0, "test NLL (last epoch)": 8e6 if bad else 50.0})
    sweep = [{"coupling": c, "sigma": s, "seed": i, "status": "failed" if (c, s, i) == ("affine_lu", "0.1", 0) else "ok",
              "ln_det_mean": 2.0 if (c, s) == ("additive_lu", "0.1") else 200.0, "ln_det_spread": 0.0,
              "ln_det_growth_last_quarter": 0.1, "test_nll": 30.0}
             for c in ("additive_lu", "affine_lu") for s in ("0.1", "no prior") for i in range(2)]
    svdd = [{"variant": v, "weight decay": wd, "spread start": 0.0 if v == collapse.BOUNDED_DECAY else 1.0,
             "spread end": e, "AUROC end": a, "loss start": 3.5e-13}
            for v, wd, e, a in ((collapse.RUFF, 1e-6, 0.2, 0.99), (collapse.BIASED, 1e-6, 1e-3, 0.9),
                                (collapse.BOUNDED, 1e-6, 1e-4, 0.6), (collapse.RUFF_DECAY, 1e-2, 0.3, 0.99),
                                (collapse.BOUNDED_DECAY, 1e-2, 0.0, 0.5))]
    return {"settings": {"explode_lr": 0.01, "sweep_lr": 0.001, "dim": 8, "flow_lr": 1e-3, "flow_epochs": 10, "svdd_lr": 3e-3,
                         "mc_samples": 1000, "explode_dim": 128, "explode_blocks": 10, "explode_runs": 4,
                         "prior_shape": [16, 4, 4], "prior_sigma": 1.0, "sweep_rank": 4, "sweep_dim": 16},
            "explode": runs, "sigma_sweep": sweep, "svdd": svdd,
            "usf_section1": {"latent spread": 0.8, "base std": 0.7071, "E||phi(x)-c||^2": 5.0, "d/2": 4.0,
                             "AUROC (latent norm)": 0.99},
            "prop1_per_d": [{"d": 3, "rel_error": 0.05, "finite_variance": False},
                            {"d": 5, "rel_error": 0.002, "finite_variance": True}],
            "inversion": {"spearman_score": -1.0, "auroc_tail": 0.0},
            "prior_samples": [{"rule": "exact", "sample variance": 0.99}, {"rule": "paper", "sample variance": 0.0625}]}


def test_failure_groups_split_the_stress_test_from_the_paper_learning_rates():
    g = collapse.failure_groups(collapse_summary()).set_index(["part", "flow"])
    stress = g.xs("section 3: high-learning-rate runs")
    assert not stress["paper's lr"].any() and g.xs("section 4b: prior-scale sweep")["paper's lr"].all()
    assert stress.loc["USFlow", "diverged"] == 1 and stress.loc["NonUSFlow", "diverged"] == 2
    assert g.loc[("section 4b: prior-scale sweep", "NonUSFlow"), "failed"] == 1 and (g["runs"] == 4).all()


def test_describe_full_counts_failures_per_group_and_names_the_diverged_usflow():
    text = collapse.describe_full(collapse_summary())
    assert "section 4b: prior-scale sweep (lr 0.001): USFlow 0 of 4, NonUSFlow 1 of 4 (1 failed) went wrong" in text
    assert "section 3: high-learning-rate runs (lr 0.01): USFlow 1 of 4 (1 diverged), NonUSFlow 2 of 4 (2 diverged)" in text
    assert "10 times the paper's largest" in text and "seed 1" in text and "2.0e+09" in text
    assert "Deep SVDD (section 1) 0.003 (above the paper's), USFlow (section 1) 0.001 (within the paper's)" in text
    assert "§3" not in text and "§4b" not in text and "§1 " not in text
    assert "holds in 4 of 4 of our USFlow runs at the paper's learning rates, not in every run of the stress test" in text
    # the bounded, strongly decayed network constant from the start vs collapsed during one-class training
    assert "**constant from the start** of one-class training" in text and "in the autoencoder pretraining" in text
    pre = collapse.describe_full(collapse_summary(), {"init_spread": 5.4e-4, "constant_at": 3})
    assert "spread of only 0.00054" in pre and "after pretraining epoch 3" in pre
    during = collapse_summary()
    during["svdd"][4]["spread start"] = 0.02
    assert "**collapsed during one-class training**" in collapse.describe_full(during)
    # the USFlow's spread is stated against a fit of the base: 0.8 / 0.7071 and 5 / 4
    assert "fits its base poorly" in text and "1.13× and 1.2× those" in text
    calm = collapse.describe_full(collapse_summary(usf_wrong_in_stress=False))
    assert "not in every run" not in calm and "seed 1" not in calm


def test_sweep_summary_counts_status_and_averages_per_flow_and_sigma():
    t = collapse.sweep_summary(collapse_summary()["sigma_sweep"])
    assert t.loc[("affine_lu", "0.1"), "failed"] == 1 and t.loc[("affine_lu", "0.1"), "ok"] == 1
    assert t.loc[("additive_lu", "0.1"), "ln_det_mean"] == 2.0 and t.loc[("additive_lu", "no prior"), "runs"] == 2


def test_prop1_and_prior_views_round_for_reading():
    per_d = pd.DataFrame([{"d": 5, "E[1/||x||^2] (MC)": 0.3336708, "1/(d-2)": 1 / 3, "rel_error": 0.0010125,
                           "std_err": 0.000327, "finite_variance": True, "quadrature": 0.33333333}]).set_index("d")
    html = collapse.prop1_view(per_d).to_html()
    assert "3.337e-01" in html and "0.10%" in html and "3.3e-04" in html and "0.3336708" not in html
    html = collapse.prior_view([{"rule": "exact", "sigma0": 0.001953125, "sample mean": 0.000369,
                                 "rel. error of variance": 0.00057}]).to_html()
    assert "1.95e-03" in html and "3.69e-04" in html and "0.06%" in html and "0.001953125" not in html


def test_readable_keeps_three_digits_and_no_long_decimals():
    assert collapse.readable(0.000406) == "4.06e-04" and collapse.readable(5.1313) == "5.13"
    assert collapse.readable(2.24e9) == "2.24e+09" and collapse.readable(0.0) == "0"
    assert collapse.readable(float("nan")) == "–" and collapse.readable(0.0123) == "0.0123"


def test_collapse_overview_hatches_the_stress_test():
    s = collapse_summary()
    fig = plots.collapse_overview(s["svdd"], collapse.failure_groups(s))
    bars = fig.axes[1].patches
    assert any(b.get_hatch() == "//" for b in bars) and any(not b.get_hatch() for b in bars)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert sum("constant from the start" in t for t in texts) == 1  # only the variant with spread 0 at the start
    assert all(t.get_fontsize() >= 9 for t in fig.axes[0].texts + fig.axes[1].texts)
    assert [t.get_text().split(":")[0] for t in fig.axes[1].get_yticklabels()][0] == "section 3"


# ---------------------------------------------------------------- chapter 04
def test_config_label_reads_dicts_and_their_saved_text():
    assert alignment.config_label({"blocks": 8, "layers": 3, "lr": 1e-4, "batch_size": 256}) == \
        "8 blocks, 3 layers, lr 1e-4, batch 256"
    assert alignment.config_label("{'depth': 4, 'lr': 0.0003, 'batch_size': 128}") == "depth 4, lr 3e-4, batch 128"
    assert alignment.config_label("8 blocks") == "8 blocks" and alignment.config_label(None) == "–"


def alignment_data():
    rows, trials = [], []
    for d, (svdd, non, usf) in {2: (-0.2, 0.87, 0.99), 128: (0.02, 0.54, 0.98)}.items():
        for m, r in (("Deep SVDD", svdd), ("NonUSFlow", non), ("USFlow", usf)):
            rows.append({"d": d, "method": m, alignment.RHO: r, alignment.TAU: r - 0.1,
                         alignment.RHO_EST: "nan" if m == "Deep SVDD" else 0.99, "failed runs": 0,
                         "config": "{'blocks': 8, 'layers': 3, 'lr': 0.0001, 'batch_size': 256}"})
            for run in range(2):
                trials.append({"dim": d, "method": m, "run": run, "ok": not (m == "NonUSFlow" and d == 128 and run),
                               "val_loss": 1.0 + run, "config": {"blocks": 2 + run, "layers": 2, "lr": 1e-3,
                                                                  "batch_size": 128}})
    return {"table": rows, "trials": trials, "search": "full search"}


def test_styled_turns_the_config_into_words():
    html = alignment.styled(alignment_data()["table"]).to_html()
    assert "8 blocks, 3 layers, lr 1e-4, batch 256" in html and "{'blocks'" not in html


def test_describe_full_alignment_ranges_and_failures():
    text = alignment.describe_full(alignment_data())
    assert "0.980 to 0.990" in text and "from 0.870 (d = 2) to 0.540 (d = 128)" in text
    assert "best-aligned model at d = 2, 128" in text and "1 of 4 NonUSFlow trainings failed" in text
    assert "12 trainings, 1 failed (NonUSFlow d=128)" in text and "holds here at every dimension" in text
    assert "1 of 4 NonUSFlow trainings failed. That is weak evidence either way" in text
    assert "test points" not in text  # no test size recorded, none stated
    assert "(each on the 1,000 test points of its dimension)" in alignment.describe_full(
        {**alignment_data(), "settings": {"n_test": 1000}})
    assert "hardly related" in text
    data = alignment_data()
    data["table"][2][alignment.RHO] = 0.5  # the USFlow at d = 2 now trails the NonUSFlow
    assert "holds here only at d = 128" in alignment.describe_full(data)


def test_search_table_picks_the_lowest_valid_validation_loss():
    t = alignment.search_table(alignment_data()["trials"]).set_index(["d", "method"])
    row = t.loc[(128, "NonUSFlow")]
    assert row["failed"] == 1 and row["chosen config"] == "2 blocks, 2 layers, lr 1e-3, batch 128"
    assert t.loc[(2, "USFlow"), "val. loss (worst valid)"] == 2.0


def test_alignment_summary_one_panel_per_statistic_no_deep_svdd_on_the_estimate():
    fig = plots.alignment_summary(alignment_data()["table"], (alignment.RHO, alignment.TAU, alignment.RHO_EST))
    assert len(fig.axes) == 3
    assert {l.get_label() for l in fig.axes[2].lines if not l.get_label().startswith("_")} == {"NonUSFlow", "USFlow"}
    # one legend for the figure, all three methods, readable; the third panel says why Deep SVDD is missing
    assert all(ax.get_legend() is None for ax in fig.axes) and len(fig.legends) == 1
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["Deep SVDD", "NonUSFlow", "USFlow"]
    assert fig.legends[0].get_texts()[0].get_fontsize() >= 10 and "no density" in fig.axes[2].get_title()


def test_describe_failures_weighs_our_count_against_the_paper():
    trials = [{"method": "NonUSFlow", "ok": True}] * 40 + [{"method": "USFlow", "ok": False}]
    text = alignment.describe_failures(trials)
    assert "0 of 40 NonUSFlow trainings failed" in text and "weak evidence either way" in text
    assert f"probability {100 * (1 - 2 / 40) ** 40:.0f} %" in text and "no failure in 40" in text
    two = alignment.describe_failures([{"method": "NonUSFlow", "ok": i >= 2} for i in range(40)])
    assert "2 of 40" in two and "2 or fewer failures in 40" in two


# ---------------------------------------------------------------- shared
def test_committed_reads_a_record_or_says_it_is_missing(tmp_path, monkeypatch):
    from usfkit import results
    monkeypatch.setattr(results, "load", lambda chapter, name, profile: None)
    data, line = fullruns.committed("01_preliminaries", "figure1_moons")
    assert data is None and "not committed yet" in line
    record = {"data": {"x": 1}, "provenance": {"device": "cpu", "wall_time_s": 12.3, "git_commit": "abcdef123",
                                                "finished_at": "2026-11-30T08:24:55+00:00"}}
    monkeypatch.setattr(results, "load", lambda chapter, name, profile: record)
    data, line = fullruns.committed("01_preliminaries", "figure1_moons")
    assert data == {"x": 1} and "commit abcdef1" in line and "2026-11-30" in line and "12 s" in line


def test_expectations_list_each_verdict_and_stop_the_quick_profile_on_a_miss(capsys):
    text = book.expectations({"a holds": True, "b fails": False}, "full")
    assert text == "* holds: a holds\n* **does NOT hold**: b fails" and capsys.readouterr().out == ""
    with pytest.raises(AssertionError, match="b fails"):
        book.expectations({"a holds": True, "b fails": False}, "quick")
