"""ADBench registry and loader, the paper's split protocol, and the tabular sweep's
bookkeeping (chapter 05)."""
import hashlib
import json

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import MinMaxScaler

from usfkit import cli, metrics, profiles
from usfkit.experiments import tabular
from usfkit.data import adbench
from usfkit.train import FitResult


def test_registry_lists_all_47_and_checksums_match_the_files(shared_data):
    assert len(adbench.NAMES) == 47 and adbench.NAMES[0] == "1_ALOI" and adbench.NAMES[-1] == "47_yeast"
    present = adbench.available()
    assert len(present) >= 40
    for name in present[:3] + ["4_breastw"]:
        digest = hashlib.sha256(adbench.path(name, download=False).read_bytes()).hexdigest()
        assert digest == adbench.SHA256[name]
    assert all(adbench.SHA256[n] for n in present)  # every file we could hash has a checksum


def test_names_resolve_and_wrong_names_say_what_exists():
    assert adbench.resolve_name("breastw") == adbench.resolve_name(4) == adbench.resolve_name("4_breastw") == "4_breastw"
    assert adbench.resolve_name("magic.gamma") == "22_magic.gamma"
    with pytest.raises(KeyError, match="Did you mean.*breastw"):
        adbench.resolve_name("breastv")


def test_missing_file_offline_says_where_to_put_it(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"github\.com/Minqi824/ADBench.*4_breastw\.npz"):
        adbench.load("breastw", root=tmp_path, download=False)


def _adbench_transcription(x, y, seed):
    """ADBench's ``DataGenerator.generator`` (defaults, ``la=0.0``), its random calls in their order on
    NumPy's *global* generator, reduced to what decides the rows: seed; resample small sets; subsample
    large ones; split; MinMax on the training split."""
    from sklearn.preprocessing import MinMaxScaler

    np.random.seed(seed)  # utils.set_seed(seed)
    if len(y) < 1000:
        np.random.seed(seed)
        idx = np.random.choice(np.arange(len(y)), 1000, replace=True)
        x, y = x[idx], y[idx]
    if len(y) > 10000:
        np.random.seed(seed)
        idx = np.random.choice(np.arange(len(y)), 10000, replace=False)
        x, y = x[idx], y[idx]
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.3, shuffle=True, stratify=y)
    scaler = MinMaxScaler().fit(x_train)
    return scaler.transform(x_train), scaler.transform(x_test), y_train, y_test


@pytest.mark.parametrize("n", [300, 5000, 12000])  # resampled, as is, subsampled
def test_adbench_rows_are_the_rows_adbench_draws(n):
    gen = np.random.default_rng(n)
    x = gen.normal(size=(n, 3))
    x[:, 0] = np.arange(n)  # the row number, to identify rows
    y = (gen.random(n) < 0.1).astype(int)
    for seed in (1, 2, 3):
        ref_train, ref_test, ref_ytrain, ref_ytest = _adbench_transcription(x, y, seed)
        train, test = adbench.adbench_rows(y, seed)
        scaler = MinMaxScaler().fit(x[train])
        np.testing.assert_array_equal(scaler.transform(x[train]), ref_train)
        np.testing.assert_array_equal(scaler.transform(x[test]), ref_test)
        assert np.array_equal(y[train], ref_ytrain) and np.array_equal(y[test], ref_ytest)
        assert len(train) + len(test) == min(max(n, 1000), 10000)


@pytest.mark.parametrize("n", [999, 1000, 5000, 12000])
def test_the_protocols_draw_the_same_rows_unless_adbench_resamples(n):
    """What :func:`tabular.leak_free` rests on: only a set under 1000 rows is split differently."""
    y = (np.random.default_rng(n).random(n) < 0.1).astype(int)
    for seed in (1, 2, 3):
        (a_train, a_test), (c_train, c_test) = (adbench.adbench_rows(y, seed, resample=r) for r in (True, False))
        same = np.array_equal(a_train, c_train) and np.array_equal(a_test, c_test)
        assert same == (n >= 1000)


def test_leak_free_keeps_runs_without_copied_test_normals_preferring_the_control():
    from usfkit.results import RunRecord

    def rec(dataset, protocol, leaked, auroc):
        return RunRecord(ok=True, metrics={"auroc": auroc}, spec={"dataset": dataset, "method": "USFlow", "seed": 1},
                         settings={"protocol": protocol}, info={"leaked_test_normals": leaked})
    records = [rec("small", "adbench", 212, 0.99), rec("small", "adbench-noresample", 0, 0.80),
               rec("large", "adbench", 0, 0.90), rec("only-leaky", "adbench", 5, 0.95)]
    chosen = {r.spec["dataset"]: r.metrics["auroc"] for r in tabular.leak_free(records)}
    assert chosen == {"small": 0.80, "large": 0.90}  # the leaky runs are out, the large set keeps its one run
    twice = tabular.leak_free([rec("large", "adbench-noresample", 0, 0.91)] + records)  # either order: the control
    assert {r.spec["dataset"]: r.metrics["auroc"] for r in twice}["large"] == 0.91


def test_split_follows_adbench_and_measures_the_resampling_leak(shared_data):
    x, y = adbench.load("29_Pima")  # 768 rows: under ADBench's generator resampled to 1000
    s = adbench.split("29_Pima", seed=1)
    assert len(s.x_train) + s.n_anomalies_removed == 700 and len(s.y_test) == 300
    n_anomalies = s.n_anomalies_removed + s.y_test.sum()  # of the 1000 resampled rows
    assert s.y_test.mean() == pytest.approx(n_anomalies / 1000, abs=1 / 300)  # stratified
    # MinMax on the training part (anomalies included): training normals lie in [0, 1]
    assert s.x_train.min() >= 0 and s.x_train.max() <= 1 + 1e-6
    # the resampling copies most test normals into training; without it nothing is copied
    assert s.leaked_test_normals > 0.5 * (s.y_test == 0).sum()
    clean = adbench.split("29_Pima", seed=1, protocol="adbench-noresample")
    n_train = len(clean.x_train) + clean.n_anomalies_removed
    assert n_train == pytest.approx(0.7 * len(x), abs=1) and clean.leaked_test_normals == 0
    again, other = adbench.split("29_Pima", seed=1), adbench.split("29_Pima", seed=2)
    assert torch.equal(again.x_train, s.x_train) and not torch.equal(other.x_train, s.x_train)
    with pytest.raises(ValueError, match="unknown protocol"):
        adbench.split("29_Pima", protocol="zscore")


def test_run_one_trains_and_scores_a_real_dataset(shared_data):
    cfg = profiles.resolve("05_tabular_benchmark", "quick", epochs=3, datasets=["42_WBC"])
    out = tabular.run_one({"dataset": "42_WBC", "method": "USFlow", "seed": 0}, cfg, progress="none")
    assert out.ok and out.failure is None and 0.8 < out.metrics["auroc"] <= 1.0
    assert out.epochs_allowed == 3 and 1 <= out.epochs_run <= 3
    assert out.info["n_train"] + out.info["n_test"] < 223 and out.info["dim"] == 9


def test_vae_runs_record_what_each_part_of_their_score_ranks(shared_data):
    cfg = profiles.resolve("05_tabular_benchmark", "quick", epochs=2, blocks=2, hidden=16, layers=1)
    spec = {"dataset": "42_WBC", "method": "VAE-USFlow", "seed": 0}
    out = tabular.run_one(spec, cfg, progress="none")
    data = tabular._split("42_WBC", 0, cfg.protocol)
    model, _, _ = tabular.build_and_train("VAE-USFlow", data.x_train, cfg, 0, progress="none")  # the same run again
    parts = model.score(data.x_test, "all")
    assert out.metrics["auroc_latent"] == pytest.approx(metrics.auroc(data.y_test, parts["latent"].numpy()))
    assert out.metrics["auroc_reconstruction"] == pytest.approx(
        metrics.auroc(data.y_test, parts["reconstruction"].numpy()))
    assert 0 <= out.metrics["auroc_balanced"] <= 1 and out.metrics["std_reconstruction"] > 0
    assert out.metrics["std_latent"] == pytest.approx(float(parts["latent"].std()), rel=1e-5)
    flow = tabular.run_one({**spec, "method": "USFlow"}, cfg, progress="none")
    assert set(flow.metrics) == {"auroc"}  # only the VAEs' score has parts


@pytest.mark.parametrize("method,constant_det", [("USFlow", True), ("NonUSFlow", False), ("VAE-USFlow", True),
                                                  ("VAE-NonUSFlow", False), ("OneFlow", True)])
def test_flow_methods_build_the_papers_lu_conjugated_flows(method, constant_det):
    """USFlow and its relatives are ``coupling="additive_lu"``, NonUSFlow ``"affine_lu"``
    (:data:`usfkit.models.flows.PAPER_FLOWS`): LU maps, and ``constant_det`` exactly for the additive ones."""
    cfg = profiles.resolve("05_tabular_benchmark", "quick", epochs=1, blocks=2, hidden=8, layers=1,
                           accelerator="cpu")
    x = torch.rand(32, 4, generator=torch.Generator().manual_seed(0))
    model, fit, _ = tabular.build_and_train(method, x, cfg, seed=0, progress="none")
    flow = model.prior if method.startswith("VAE") else model.flow if method == "OneFlow" else model
    assert fit.ok and flow.constant_det is constant_det and len(flow.lu_layers()) == cfg.blocks + 1


def test_non_finite_scores_make_a_failed_run_not_a_crash(shared_data, monkeypatch):
    def fake(method, x, cfg, seed, desc="", progress="auto"):
        return None, FitResult(True, 1, 0.1, 0.0), lambda x: torch.full((len(x),), float("nan"))

    monkeypatch.setattr(tabular, "build_and_train", fake)
    cfg = profiles.resolve("05_tabular_benchmark", "quick")
    out = tabular.run_one({"dataset": "42_WBC", "method": "NonUSFlow", "seed": 0}, cfg)
    assert not out.ok and "not finite" in out.failure and out.metrics["auroc"] is None


def test_summaries_count_wins_ties_losses_and_failures():
    rows = []
    for d, (a, b) in {"1_x": (0.9, 0.8), "2_y": (0.7, 0.702), "3_z": (0.6, 0.65)}.items():
        rows += [{"dataset": d, "method": "USFlow", "seed": 0, "ok": True, "auroc": a},
                 {"dataset": d, "method": "OneFlow", "seed": 0, "ok": True, "auroc": b}]
    rows.append({"dataset": "3_z", "method": "OneFlow", "seed": 1, "ok": False, "auroc": None, "failure": "nan"})
    runs = pd.DataFrame(rows)
    wtl = tabular.pairwise(runs, "USFlow", tie=0.005).iloc[0]
    assert (wtl["wins"], wtl["ties"], wtl["losses"]) == (1, 1, 1)
    agg = tabular.aggregate(runs)
    assert agg.loc["USFlow", "mean"] == pytest.approx(100 * np.mean([0.9, 0.7, 0.6]))
    assert agg.loc["OneFlow", "failed runs"] == 1 and agg.loc["OneFlow", "runs"] == 4
    per = tabular.per_dataset(runs).set_index(["dataset", "method"])
    assert per.loc[("3_z", "OneFlow"), "valid"] == 1 and per.loc[("3_z", "OneFlow"), "runs"] == 2
    usf = [100 * v for v in (0.9, 0.7, 0.6)]
    comparison = tabular.paper_comparison(runs, 3).set_index("method").loc["USFlow"]
    assert comparison["our mean (%)"] == pytest.approx(round(np.mean(usf), 2))
    assert comparison["our std (%)"] == pytest.approx(round(np.std(usf, ddof=1), 2))  # results.STD_DDOF
    assert (comparison["paper mean (%)"], comparison["paper std (%)"]) == (85.61, 13.54)
    assert comparison["our datasets"] == 3 and comparison["paper datasets"] == 47


def test_protocol_comparison_changes_and_ranks():
    rows = []
    for proto, shift in (("adbench", 0.10), ("adbench-noresample", 0.0)):
        for d, (u, n) in {"1_a": (0.7, 0.6), "2_b": (0.8, 0.75)}.items():
            for seed in (1, 2):
                rows += [{"dataset": d, "method": "USFlow", "seed": seed, "protocol": proto, "ok": True,
                          "auroc": u + shift},
                         {"dataset": d, "method": "NonUSFlow", "seed": seed, "protocol": proto, "ok": True,
                          "auroc": n + shift / 2}]
    rows.append({"dataset": "3_c", "method": "USFlow", "seed": 1, "protocol": "adbench", "ok": True, "auroc": 0.9})
    out = tabular.protocol_comparison(pd.DataFrame(rows))
    assert out["datasets"] == ["1_a", "2_b"]  # 3_c has no leak-free run: left out
    per = out["per_method"]
    assert per.loc["USFlow", "leak adds (pp)"] == pytest.approx(10.0)
    assert per.loc["NonUSFlow", "leak adds (pp)"] == pytest.approx(5.0)
    assert per.loc["USFlow", "rank, ADBench"] == 1 and per["datasets"].tolist() == [2, 2]
    assert list(per.columns) == ["ADBench (%)", "no leak (%)", "leak adds (pp)", "rank, ADBench", "rank, no leak",
                                 "datasets"]
    lead = out["usf_lead"].loc["USFlow − NonUSFlow"]
    assert lead["adbench-noresample"] == pytest.approx(7.5) and lead["adbench"] == pytest.approx(12.5)
    with pytest.raises(ValueError, match="both protocols"):
        tabular.protocol_comparison(pd.DataFrame(rows[:4]))
    # a third seed that ran under one protocol only is left out, so both means are over the same seeds
    extra = [{"dataset": d, "method": m, "seed": 3, "protocol": "adbench-noresample", "ok": True, "auroc": 0.0}
             for d in ("1_a", "2_b") for m in ("USFlow", "NonUSFlow")]
    again = tabular.protocol_comparison(pd.DataFrame(rows + extra))
    assert again["per_method"].equals(per) and again["seeds"] == [1, 2]
    spread = out["seed_spread"]  # seeds 1 and 2 differ nowhere here: every std is 0
    assert spread.loc["USFlow", ("adbench", "datasets")] == 2 and (spread.xs("mean seed std (pp)", 1, 1) == 0).all().all()


def test_protocol_comparison_leaves_a_method_on_fewer_datasets_unranked():
    rows = [{"dataset": d, "method": m, "seed": 1, "protocol": p, "ok": True, "auroc": v}
            for p in ("adbench", "adbench-noresample") for d in ("1_a", "2_b")
            for m, v in (("USFlow", 0.8), ("NonUSFlow", 0.7), ("VAE-USFlow", 0.9), ("VAE-NonUSFlow", 0.6))
            if not (m.startswith("VAE") and d == "2_b")]  # the VAEs: one dataset (their score pending on 2_b)
    out = tabular.protocol_comparison(pd.DataFrame(rows))
    per = out["per_method"]
    assert per.loc["VAE-USFlow", "datasets"] == 1 and per.loc["USFlow", "datasets"] == 2
    assert pd.isna(per.loc["VAE-USFlow", "rank, ADBench"]) and per.loc["USFlow", "rank, no leak"] == 1
    assert out["usf_lead"]["datasets"].tolist() == [2, 1]


def test_split_table_and_per_dataset_table_are_narrow(shared_data):
    table = tabular.split_table(["29_Pima"], seed=1, protocol="adbench-noresample")
    assert list(table.columns) == ["dim", "train", "anomalies dropped", "test", "test anomalies", "constant features"]
    assert table.loc["29_Pima", "dim"] == 8
    runs = pd.DataFrame([{"dataset": "14_b", "method": "USFlow", "seed": s, "ok": True, "auroc": v}
                         for s, v in ((1, 0.9), (2, 0.8))]
                        + [{"dataset": "4_a", "method": m, "seed": 1, "ok": m != "DOHSC", "auroc": 0.75}
                           for m in ("DOHSC", "USFlow")]
                        + [{"dataset": "4_a", "method": "USFlow", "seed": 2, "ok": False, "auroc": np.nan}])
    per = tabular.per_dataset_table(runs)
    assert list(per.index) == ["4_a", "14_b"] and list(per.columns) == ["USFlow", "DOHSC"]
    assert per.loc["14_b", "USFlow"] == "85.0" and per.loc["4_a", "USFlow"] == "75.0 (1/2)"
    assert per.loc["4_a", "DOHSC"] == "failed"


def test_leak_table_counts_copied_test_normals(shared_data):
    table = tabular.leak_table(["15_Hepatitis", "29_Pima"])
    assert table.loc["15_Hepatitis", "copied (%)"] == pytest.approx(100.0)  # every test normal has a copy
    assert 50 < table.loc["29_Pima", "copied (%)"] < 100
    assert (table["copied, no resampling"] == 0).all()
    assert list(table.columns) == ["rows", "test normals", "copied", "copied (%)", "copied, no resampling"]


def test_command_line_passes_every_setting_to_the_sweep(shared_data, monkeypatch):
    """``usf-tabular --seed 2 --seeds 1 --protocol ...``: one later seed alone, e.g. seed 2 after seed 1."""
    seen = {}

    class Stop(Exception):
        pass

    def fake_run(cfg, progress="auto", workers=1, backend=None, address=None):
        seen["cfg"], seen["workers"], seen["backend"] = cfg, workers, (backend, address)
        raise Stop

    monkeypatch.setattr(tabular, "run", fake_run)
    with pytest.raises(Stop):
        cli.tabular(["--profile", "full", "--seed", "2", "--seeds", "1", "--datasets", "4_breastw",
                      "--protocol", "adbench-noresample", "--epochs", "7", "--workers", "3"])
    cfg = seen["cfg"]
    assert seen["workers"] == 3 and seen["backend"] == ("local", None)
    assert (cfg.seed, cfg.seeds, cfg.protocol, cfg.epochs, cfg.datasets) == (2, 1, "adbench-noresample", 7,
                                                                              ["4_breastw"])
    assert [s["seed"] for s in tabular.specs(cfg)][:1] == [2]


def test_seed_spread_and_complete_datasets():
    rows = [{"dataset": d, "method": m, "seed": s, "ok": True, "auroc": a}
            for d, m, s, a in [("1_a", "USFlow", 1, 0.80), ("1_a", "USFlow", 2, 0.82), ("1_a", "NonUSFlow", 1, 0.70),
                               ("1_a", "NonUSFlow", 2, 0.80), ("2_b", "USFlow", 1, 0.9), ("2_b", "NonUSFlow", 1, 0.9),
                               ("3_c", "USFlow", 1, 0.6)]]
    runs = pd.DataFrame(rows)
    spread = tabular.seed_spread(runs)
    assert list(spread.index) == ["USFlow", "NonUSFlow"]  # the most stable first
    assert spread.loc["USFlow", "mean seed std (pp)"] == pytest.approx(100 * np.std([0.80, 0.82], ddof=1))
    assert spread.loc["NonUSFlow", "datasets"] == 1  # only 1_a has two seeds
    # a second seed in progress (USFlow only on 2_b) counts nowhere until every method has it
    more = pd.concat([runs, pd.DataFrame([{"dataset": "2_b", "method": "USFlow", "seed": 2, "ok": True, "auroc": 0.5}])])
    assert tabular.seed_spread(more).equals(spread)
    assert tabular.seed_spread(runs[runs["seed"] == 1]).empty
    assert tabular.complete_datasets(runs, methods=("USFlow", "NonUSFlow")) == ["1_a", "2_b"]
    same = tabular.comparable(more, methods=("USFlow", "NonUSFlow"))  # 2_b's seed 2 has USFlow only: left out
    assert len(same) == 6 and not ((same["dataset"] == "2_b") & (same["seed"] == 2)).any()


def test_full_sweeps_name_the_full_profiles_runs(shared_data, monkeypatch):
    monkeypatch.setenv("USFKIT_PROFILE", "quick")  # a quick run still names the full profile's runs
    sweeps = tabular.full_sweeps()
    specs, settings = sweeps["adbench"]
    assert settings(specs[0])["protocol"] == "adbench" and settings(specs[0])["epochs"] == 200
    assert len(specs) == len(adbench.available()) * 7 * 3 and {s["seed"] for s in specs} == {1, 2, 3}
    small, small_settings = sweeps["adbench-noresample"]
    assert small_settings(small[0])["protocol"] == "adbench-noresample"
    assert {s["dataset"] for s in small} == set(tabular.small_datasets()) and "15_Hepatitis" in tabular.small_datasets()
    assert all(len(adbench.load(d)[1]) < 1000 for d in tabular.small_datasets())


def test_seeds_text_counts_a_seed_only_where_every_method_has_it():
    rows = [{"dataset": d, "method": m, "seed": s} for d in ("a", "b") for m in ("A", "B") for s in (1, 2, 3)]
    rows = [r for r in rows if not (r["dataset"] == "b" and r["seed"] > 1)]
    rows.remove({"dataset": "a", "method": "B", "seed": 3})  # a seed only some methods have does not count
    rows += [{"dataset": "c", "method": m, "seed": 1} for m in ("A", "B")]
    assert tabular.seeds_text(pd.DataFrame(rows)) == "2 seeds on 1 dataset, 1 seed on 2"


def test_status_counts_missing_runs_and_estimates_them_from_other_seeds(tmp_path, monkeypatch, capsys):
    from usfkit import sweep
    from usfkit.results import RunResult

    monkeypatch.setenv("USFKIT_RESULTS", str(tmp_path))
    settings = {"epochs": 200, "protocol": "adbench"}
    todo = [{"dataset": d, "method": m, "seed": s} for d in ("a", "b") for m in ("USFlow", "DOHSC") for s in (1, 2)]
    monkeypatch.setattr(tabular, "full_sweeps", lambda: {"adbench": (todo, settings)})
    monkeypatch.setattr(tabular.adbench, "available", lambda root=None: ["a", "b"])
    seconds = {("a", "USFlow"): 3600.0, ("a", "DOHSC"): 360.0}
    done = [sp for sp in todo if sp["seed"] == 1 and sp["dataset"] == "a"]
    sweep.run_sweep(tabular.CHAPTER, "full", done, lambda sp: RunResult(
        ok=True, metrics={"auroc": 0.9}, train_time_s=seconds[sp["dataset"], sp["method"]]),
        settings=settings, progress=False)
    table = tabular.status()
    est = "estimated hours (missing runs with a record of another seed)"
    assert table.loc[("adbench", 1)].to_dict() == {"present": 2, "missing": 2, est: 0.0,
                                                   "missing runs without an estimate": 2}
    assert table.loc[("adbench", 2)].to_dict() == {"present": 0, "missing": 4, est: 1.1,
                                                   "missing runs without an estimate": 2}
    assert table.attrs["missing"] == {"adbench": ["seed 1: 1 dataset, 2 runs: b", "seed 2: 2 datasets, 4 runs: a, b"]}
    cli.tabular(["--status"])  # the command line prints the table and names the datasets still to run
    out = capsys.readouterr().out
    assert "missing under protocol adbench:\n  seed 1: 1 dataset, 2 runs: b\n" in out
    monkeypatch.setattr(tabular.adbench, "available", lambda root=None: [])
    with pytest.raises(FileNotFoundError, match="USFKIT_DATA"):  # no data: a clear error, not an empty table
        tabular.status()


def test_vae_score_parts_pairs_the_two_vaes_and_says_which_part_ranks():
    def row(method, dataset, auroc, rec, lat, std_rec=100.0):
        return {"dataset": dataset, "method": method, "seed": 1, "protocol": "adbench", "ok": True, "auroc": auroc,
                "auroc_reconstruction": rec, "auroc_latent": lat, "auroc_balanced": (rec + lat) / 2,
                "std_reconstruction": std_rec, "std_latent": 1.0}
    rows = [row("VAE-USFlow", "a", 0.90, 0.90, 0.80), row("VAE-NonUSFlow", "a", 0.90, 0.90, 0.70),
            row("VAE-USFlow", "b", 0.80, 0.795, 0.60, 300.0), row("VAE-NonUSFlow", "b", 0.70, 0.70, 0.60, 50.0),
            row("VAE-USFlow", "c", 0.10, 0.10, 0.10),  # its partner did not run: left out
            {"dataset": "a", "method": "USFlow", "seed": 1, "protocol": "adbench", "ok": True, "auroc": 0.95}]
    def frame(rs):  # as runs_frame gives it: every column, NaN where a run has no value
        return pd.DataFrame(rs).reindex(columns=tabular.runs_frame([]).columns)
    table = tabular.vae_score_parts(frame(rows))
    assert table.loc["VAE-USFlow", "runs"] == 2 and table.loc["VAE-USFlow", "score (combined)"] == pytest.approx(85)
    assert table.loc["USF - NonUSF (pp)", "latent part alone"] == pytest.approx(5)
    assert table.loc["VAE-USFlow", "largest |score - reconstruction part| (pp)"] == pytest.approx(0.5)
    assert table.loc["VAE-NonUSFlow", "reconstruction / latent spread (median)"] == pytest.approx(75)
    text = tabular.vae_parts_sentence(table)
    assert "Over 2 runs per VAE" in text and "alike (AUC-ROC apart by at most 0.50 pp)" in text and "75 times" in text
    table.loc["VAE-USFlow", "largest |score - reconstruction part| (pp)"] = 3.0
    assert "differently by up to 3.00 pp" in tabular.vae_parts_sentence(table)
    assert tabular.vae_score_parts(frame(rows[-1:])).empty  # no VAE run: nothing to show


def test_training_lengths_count_early_stops_and_runs_below_chance():
    runs = pd.DataFrame({"method": ["USFlow"] * 2 + ["DOHSC"] * 3, "ok": [True, True, True, True, False],
                         "epochs_run": [200, 200, 8, 20, 3], "epochs_allowed": [200] * 5,
                         "auroc": [0.9, 0.8, 0.4, 0.7, None]})
    t = tabular.training_lengths(runs)
    assert list(t.index) == ["USFlow", "DOHSC"]  # the book's method order; the failed run does not count
    assert t.loc["DOHSC"].to_dict() == {"median epochs run": 14.0, "stopped early (%)": 100.0,
                                        "AUC-ROC below 0.5 (%)": 50.0, "runs": 2}
    assert t.loc["USFlow", "stopped early (%)"] == 0 and t.loc["USFlow", "AUC-ROC below 0.5 (%)"] == 0


def test_all_epochs_pairs_set_the_longer_runs_beside_the_shared_rule(tmp_path):
    """benchmarks/dohsc_epochs.py's file joined with the committed runs: same dataset, method and seed only,
    failed runs either way left out; the summary counts better / worse runs and runs below chance."""
    runs = pd.DataFrame({"dataset": ["a", "b", "c", "a", "d", "a"],
                         "method": ["DOHSC", "DOHSC", "DOHSC", "USFlow", "DO2HSC", "DOHSC"],
                         "seed": [1, 1, 1, 1, 1, 1], "ok": [True, True, True, True, False, True],
                         "auroc": [0.40, 0.80, 0.70, 0.9, None, 0.55], "epochs_run": [8, 20, 12, 200, 3, 5],
                         "protocol": ["adbench"] * 5 + ["adbench-noresample"],  # the last: another protocol
                         "epochs_allowed": [200] * 6})
    path = tmp_path / "dohsc_epochs.json"
    assert tabular.all_epochs_pairs(runs, path).empty  # not run yet
    longer = [{"dataset": d, "method": m, "seed": s, "ok": ok, "auroc": a, "epochs_run": 200, "failure": None}
              for d, m, s, ok, a in [("a", "DOHSC", 1, True, 0.60), ("b", "DOHSC", 1, True, 0.70),
                                     ("c", "DOHSC", 2, True, 0.99),  # another seed: no partner
                                     ("d", "DO2HSC", 1, True, 0.90),  # its rule run failed
                                     ("c", "DOHSC", 1, False, None)]]  # failed here
    path.write_text(json.dumps({"epochs": 200, "protocol": "adbench", "runs": longer}))
    pairs = tabular.all_epochs_pairs(runs, path)
    assert sorted(pairs["dataset"]) == ["a", "b"]
    shorter = runs.assign(epochs_allowed=20)  # a quick-profile run is not the same run
    assert tabular.all_epochs_pairs(shorter, path).empty
    s = tabular.all_epochs_summary(pairs, runs).loc["DOHSC"]
    assert s["runs"] == 2 and s["better by > 0.5 pp"] == 1 and s["worse by > 0.5 pp"] == 1 and s["identical"] == 0
    assert s["changed by <= 0.5 pp"] == 0 and s["USFlow, same runs (%)"] == pytest.approx(90)  # USFlow ran on a only
    assert s["below 0.5, rule"] == 1 and s["below 0.5, all epochs"] == 0
    assert s["mean AUC-ROC, rule (%)"] == pytest.approx(60) and s["mean AUC-ROC, all epochs (%)"] == pytest.approx(65)
    assert s["median epochs (rule)"] == 14
    path.write_text("{not json")
    with pytest.raises(ValueError, match="dohsc_epochs.json is not a file that benchmarks/dohsc_epochs.py wrote"):
        tabular.all_epochs_pairs(runs, path)
    runs.loc[len(runs)] = ["b", "USFlow", 1, True, 0.8, 200, "adbench", 200]
    pairs = tabular.all_epochs_pairs(runs, tmp_path / "absent.json")
    assert pairs.empty


def test_all_epochs_sentence_reads_the_summary_against_usflow_on_the_same_runs():
    runs = pd.DataFrame({"dataset": ["a", "b", "c"], "method": ["USFlow"] * 3, "seed": [1, 1, 1], "ok": [True] * 3,
                         "auroc": [0.9, 0.7, 0.1]})
    pairs = pd.DataFrame({"dataset": ["a", "b"], "method": ["DOHSC"] * 2, "seed": [1, 1],
                          "auroc (rule)": [0.4, 0.6], "epochs_run (rule)": [8, 12],
                          "auroc (all epochs)": [0.5, 0.6], "epochs_run (all epochs)": [200, 200]})
    summary = tabular.all_epochs_summary(pairs, runs)
    assert summary.loc["DOHSC", ["better by > 0.5 pp", "worse by > 0.5 pp", "changed by <= 0.5 pp",
                                 "identical"]].sum() == 2  # every run counted once
    nudged = pairs.assign(**{"auroc (all epochs)": [0.402, 0.6]})  # 0.2 pp: changed, within the tie
    assert tabular.all_epochs_summary(nudged, tie=0.005).loc["DOHSC", "changed by <= 0.5 pp"] == 1
    text = tabular.all_epochs_sentence(pairs, summary)
    assert text.startswith("Trained for all 200 epochs instead") and "seed 1," in text
    assert "DOHSC (2 runs, a median of 10 epochs under the rule) goes from 50.0 to 55.0 %" in text
    assert "median change +5.00 pp; 1 runs better, 0 worse, 0 changed by at most 0.5 pp, 1 identical; below chance 1 → 0" in text
    assert "its gap to USFlow on the same runs (80.0 %) goes from 30.0 to 25.0 pp" in text  # c is not among the pairs


# --------------------------------------------------------------------------
# At the paper's settings: the full runs read for chapter 05's first section
# --------------------------------------------------------------------------
def _bench_runs(values: dict, seeds=(1, 2), protocol="adbench", parts=True):
    """A runs_frame-like table: ``values[method] = [AUC-ROC per dataset]`` (seed s adds 0.01 * (s - 1)); the VAEs
    carry a balanced score 0.05 below their ELBO when ``parts``."""
    rows = []
    for method, per_dataset in values.items():
        for i, v in enumerate(per_dataset):
            for s in seeds:
                row = {"dataset": f"{i + 1}_d{i}", "method": method, "seed": s, "protocol": protocol, "ok": True,
                       "auroc": v + 0.01 * (s - 1)}
                if method in tabular.VAE_METHODS and parts:
                    row.update(auroc_balanced=v - 0.05, auroc_reconstruction=v, auroc_latent=0.6)
                rows.append(row)
    return pd.DataFrame(rows).reindex(columns=tabular.runs_frame([]).columns)


BENCH = {"USFlow": [0.90, 0.80, 0.70], "NonUSFlow": [0.85, 0.80, 0.60], "VAE-USFlow": [0.90, 0.75, 0.70],
         "VAE-NonUSFlow": [0.88, 0.70, 0.70], "OneFlow": [0.95, 0.70, 0.60], "DOHSC": [0.6, 0.5, 0.55],
         "DO2HSC": [0.6, 0.52, 0.5]}


def test_vae_scored_keeps_the_vaes_only_where_all_their_runs_have_the_score():
    runs = _bench_runs(BENCH)
    lacking = (runs["dataset"] == "2_d1") & (runs["method"] == "VAE-USFlow") & (runs["seed"] == 2)
    runs.loc[lacking, "auroc_balanced"] = np.nan  # its rerun is pending
    assert tabular.unscored_datasets(runs) == ["2_d1"] and tabular.unscored_datasets(runs, "elbo") == []
    scored = tabular.vae_scored(runs)
    vae = scored[scored["method"].isin(tabular.VAE_METHODS)]
    assert set(vae["dataset"]) == {"1_d0", "3_d2"}  # both VAEs leave 2_d1, not only the run that lacks the score
    assert vae["auroc"].tolist() == pytest.approx(vae["auroc_balanced"].tolist())
    assert set(scored.loc[scored["method"] == "USFlow", "dataset"]) == {"1_d0", "2_d1", "3_d2"}


def test_paper_settings_text_states_each_claim_per_view_from_the_runs():
    views = {tabular.ADBENCH_VIEW: _bench_runs(BENCH), tabular.LEAK_FREE_VIEW: _bench_runs(BENCH, protocol="x")}
    views[tabular.LEAK_FREE_VIEW].loc[lambda r: r["method"] == "USFlow", "auroc"] -= 0.1
    facts = tabular.view_facts(views[tabular.ADBENCH_VIEW], tie=0.005)
    u = 100 * np.array([0.905, 0.805, 0.705])
    assert facts["agg"].loc["USFlow", "mean"] == pytest.approx(u.mean())
    # std: DOHSC (5.0) and DO2HSC (5.3) spread less than USFlow (10.0); IQR: they (5, 5) and VAE-NonUSFlow (9) too
    assert facts["ranks"] == {"mean": 1, "std": 3, "IQR": 4} and len(facts["full_cover"]) == 7
    assert facts["USFlow"]["wtl"] == (2, 1, 0) and facts["USFlow"]["mean"]["mean"] == pytest.approx(5.0)
    assert facts["USFlow"]["seed std"] == pytest.approx((100 * 0.01 / np.sqrt(2),) * 2)  # every seed +0.01
    text = tabular.paper_settings_text(views, tie=0.005)
    assert (f"USFlow {u.mean():.2f} ± {u.std(ddof=1):.2f} % (mean ± std over all 3 datasets, seeds 1-2); rank 1 of 7 "
            "by mean") in text
    assert "medians over all 3 datasets: USFlow 80.50 %, OneFlow 70.50 %: USFlow's is 10.00 pp above" in text
    assert ("on all 3 datasets, USFlow 80.50 % and NonUSFlow 75.50 % (means); USFlow − NonUSFlow: mean +5.00 pp, "
            "median +5.00 pp; USFlow wins 2, ties 1, loses 0") in text
    assert "VAE-USFlow − VAE-NonUSFlow: mean +2.33 pp" in text  # the balanced scores, 0.05 below the ELBO's
    assert "they trail every flow" in text and text.count("  - Ours, without the leak:") == 6
    assert text.count("- **Paper: ") == 6  # every claim: the paper's words first, ours under them
    # VAE-USFlow's balanced scores 85, 70, 65 against USFlow's 90.5, 80.5, 70.5: -5.5, -10.5, -5.5
    assert ("VAE-USFlow − USFlow: mean -7.17 pp, median -5.50 pp; VAE-USFlow wins 0, ties 0, loses 3") in text
    # without the leak USFlow drops by 10 pp: below NonUSFlow, both VAEs and OneFlow (whose median it equals)
    assert "rank 5 of 7 by mean" in text and "USFlow − NonUSFlow: mean -5.00 pp" in text
    assert "USFlow 70.50 %, OneFlow 70.50 %: the same" in text


def test_paper_settings_text_counts_ties_as_figure_3b_and_names_the_vae_subset():
    """One win/tie/loss rule (|Δ| <= tie) for the sentence, the tables and Figure 3b; a VAE comparison on fewer
    datasets names them and gives USFlow's mean on exactly those."""
    # VAE-USFlow's balanced scores 90.8, 80, 65 against USFlow's 90.5, 80.5, 70.5: +0.3 and -0.5 are ties
    runs = _bench_runs({**BENCH, "VAE-USFlow": [0.958, 0.85, 0.70]})
    runs.loc[(runs["dataset"] == "3_d2") & (runs["method"] == "VAE-NonUSFlow") & (runs["seed"] == 2),
             "auroc_balanced"] = np.nan  # its rerun is pending: 3_d2 leaves both VAEs' comparisons
    facts = tabular.view_facts(runs, tie=0.005)
    c = facts["VAE vs USFlow"]
    assert (c["n"], c["wins"], c["ties"], c["losses"]) == (2, 0, 2, 0)
    assert c["first_mean"] == pytest.approx(100 * np.mean([0.908, 0.80])) and c["second_mean"] == pytest.approx(85.5)
    grid = tabular.pairwise(tabular.vae_scored(runs), "VAE-USFlow", ["USFlow"], tie=0.005).iloc[0]
    assert (grid["wins"], grid["ties"], grid["losses"]) == (c["wins"], c["ties"], c["losses"])  # Figure 3b's count
    text = tabular.paper_settings_text({tabular.ADBENCH_VIEW: runs}, tie=0.005)
    assert ("on the 2 datasets whose VAE runs all have the balanced score, VAE-USFlow 85.40 % and USFlow 85.50 % "
            "(means); VAE-USFlow − USFlow: mean -0.10 pp, median -0.10 pp; VAE-USFlow wins 0, ties 2, loses 0") in text
    assert "a tie is |Δ| ≤ 0.5 pp, as in Figure 3b" in text


def test_outcomes_is_one_rule_with_the_tie_in_the_values_unit():
    from usfkit.paired import outcomes, paired_test

    d = np.array([0.6, 0.5, 0.5 + 1e-12, -0.5, -0.50001, 0.0])
    assert outcomes(d, 0.5).tolist() == ["higher", "equal", "equal", "equal", "lower", "equal"]
    assert outcomes(d / 100, 0.005).tolist() == outcomes(d, 0.5).tolist()  # fractions and pp agree
    out = paired_test(d, tie=0.5)
    assert (out["higher"], out["equal"], out["lower"]) == (1, 4, 1)
    assert paired_test(d)["p"] == out["p"]  # the test does not depend on the tie


def _record(method, seed, metrics, rerun=None, protocol="adbench", ok=True):
    from usfkit.results import RunRecord

    return RunRecord(ok=ok, failure=None if ok else "nan", metrics=metrics, rerun=rerun, chapter=tabular.CHAPTER,
                     spec={"dataset": "4_breastw", "method": method, "seed": seed}, settings={"protocol": protocol})


def test_vae_scores_and_rescoring_text_count_the_runs_and_their_reruns():
    parts = {"auroc_balanced": 0.8, "auroc_reconstruction": 0.7, "auroc_latent": 0.6}
    records = [
        _record("VAE-USFlow", 1, {"auroc": 0.7, **parts}),  # recorded its parts when it ran
        _record("VAE-NonUSFlow", 1, {"auroc": 0.7, **parts},
                rerun={"ok": True, "reproduced_auroc": True, "metrics": {"auroc": 0.7}}),
        _record("VAE-USFlow", 2, {"auroc": 0.9, **parts},
                rerun={"ok": True, "reproduced_auroc": False, "metrics": {"auroc": 0.65}}),
        _record("VAE-NonUSFlow", 2, {"auroc": 0.75}),  # pending
        _record("VAE-NonUSFlow", 3, {"auroc": None}, ok=False),  # failed: not a VAE score to wait for
        _record("USFlow", 1, {"auroc": 0.9})]
    scores = tabular.vae_scores(records)
    assert len(scores) == 4
    assert scores["parts_from"].tolist() == ["first run", "rerun, reproduced", "rerun, not reproduced", "pending"]
    assert scores["elbo"].tolist() == pytest.approx([0.7, 0.7, 0.65, 0.75])  # the rerun's model: its own ELBO
    assert scores["balanced"].isna().tolist() == [False, False, False, True]
    text = tabular.rescoring_text(records)
    assert "3 of the 4 valid VAE runs committed have the balanced score so far (1 recorded it when they ran, 2 got " \
           "it from a rerun); the other 1 lack it: the first runs recorded only the ELBO" in text
    assert "Of the 2 reruns so far, 1 reproduced the first run's ELBO AUC-ROC (to 1e-6) and 1 did not" in text
    assert "of those 1, 0 first ran on another machine, 0 on this one with a compiled loss" in text  # no provenance
    assert "rerun's model" in text


def test_rerun_causes_sorts_the_reruns_by_machine_and_compilation():
    from usfkit.results import RunRecord

    def rec(device, compiled, reproduced):
        info = {} if compiled is None else {"compiled": compiled}
        return RunRecord(ok=True, failure=None, metrics={"auroc": 0.7}, chapter=tabular.CHAPTER, info=info,
                         spec={"dataset": "4_breastw", "method": "VAE-USFlow", "seed": 1}, settings={},
                         provenance={"device": device},
                         rerun={"ok": True, "reproduced_auroc": reproduced, "metrics": {"auroc": 0.7},
                                "provenance": {"device": "here"}})
    records = [rec("elsewhere", None, False), rec("here", True, False), rec("here", False, True),
               rec("here", False, False), _record("VAE-USFlow", 2, {"auroc": 0.7})]  # the last: no rerun
    causes = tabular.rerun_causes(records)
    assert causes.to_dict("records") == [
        {"reproduced": False, "machine": "another", "first run": "not recorded"},
        {"reproduced": False, "machine": "same", "first run": "compiled"},
        {"reproduced": True, "machine": "same", "first run": "eager"},
        {"reproduced": False, "machine": "same", "first run": "eager"}]
    text = tabular.rescoring_text(records)
    assert "Of the 4 reruns so far, 1 reproduced" in text and "of those 3, 1 first ran on another machine, 1 on " \
           "this one with a compiled loss (record info \"compiled\") and 1 on this one without" in text
    assert "none waits for a rerun" not in text and "the other 0" not in text


def test_detail_tables_for_both_views():
    runs = _bench_runs(BENCH)
    views = {tabular.ADBENCH_VIEW: runs}
    table = tabular.summary_table(views)
    assert table.index[0] == "USFlow" and table[(tabular.ADBENCH_VIEW, "datasets")].tolist() == [3] * 7
    assert table.loc["USFlow", (tabular.ADBENCH_VIEW, "mean ± std (%)")] == "80.50 ± 10.00"
    wtl = tabular.pairwise_table(runs, tie=0.005)
    assert list(wtl.columns) == ["datasets", "wins / ties / losses", "mean Δ (pp)", "median Δ (pp)"]
    assert wtl.loc[("USFlow", "NonUSFlow"), "wins / ties / losses"] == "2 / 1 / 0"
    assert wtl.loc[("USFlow", "NonUSFlow"), ["mean Δ (pp)", "median Δ (pp)"]].tolist() == pytest.approx([5.0, 5.0])
    assert wtl.loc[("VAE-USFlow", "VAE-NonUSFlow"), "datasets"] == 3
    runs.loc[(runs["method"] == "VAE-USFlow") & (runs["dataset"] == "1_d0"), "auroc_balanced"] = np.nan
    std = tabular.seed_std_table(runs)
    assert std["USFlow"].notna().sum() == 3 and std["VAE-USFlow"].notna().sum() == 2  # VAEs: scored datasets
    spread = tabular.seed_spread_table(runs)
    assert spread.loc["USFlow", "datasets"] == 3 and spread.loc["VAE-NonUSFlow", "datasets"] == 2


def test_coverage_and_training_text(shared_data):
    records = [_record("USFlow", 1, {"auroc": 0.9}), _record("USFlow", 1, {"auroc": 0.9}, protocol="adbench-noresample"),
               _record("OneFlow", 1, {"auroc": None}, ok=False)]
    text = tabular.coverage_text(records, {"adbench": 3, "adbench-noresample": 0})
    assert "2 under ADBench's generator (1 datasets), 3 not run yet; 1 leak-free control runs" in text
    assert text.endswith("; 1 of them failed.") and "(§5.1.1's settings, 2 methods, seeds 1, on the" in text
    lengths = pd.DataFrame({"median epochs run": [30.0, 8.0, 9.0], "AUC-ROC below 0.5 (%)": [0.0, 40.0, 25.0]},
                           index=["USFlow", "DOHSC", "DO2HSC"])
    text = tabular.training_text(lengths)
    assert "DOHSC stops after a median of 8 epochs and DO2HSC stops after a median of 9 epochs" in text
    assert "USFlow after 30" in text and "40 % of DOHSC's runs and 25 % of DO2HSC's runs" in text


def test_paired_test_counts_and_tests_the_differences():
    from usfkit.paired import p_text, paired_test

    out = paired_test([1.0, 2.0, 3.0, -0.5, 1e-12, np.nan])
    assert (out["n"], out["higher"], out["equal"], out["lower"]) == (5, 3, 1, 1)
    assert out["mean"] == pytest.approx(5.5 / 5) and out["median"] == 1.0
    from scipy import stats
    assert out["p"] == pytest.approx(stats.wilcoxon([1.0, 2.0, 3.0, -0.5]).pvalue)
    assert paired_test([0.0, 0.0])["p"] == 1.0 and p_text(paired_test([])["p"]) == "no test (no pair)"
    assert (p_text(0.2481), p_text(0.0031), p_text(1e-6)) == ("p = 0.248", "p = 0.0031", "p < 0.0001")
