"""ADBench registry and loader, the paper's split protocol, and the tabular sweep's
bookkeeping (chapter 05)."""
import hashlib

import numpy as np
import pandas as pd
import pytest
import torch

from usfkit import profiles, tabular
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


def test_split_follows_the_papers_protocol(shared_data):
    x, y = adbench.load("29_Pima")
    s = adbench.split("29_Pima", seed=3)
    n_train = len(s.x_train) + s.n_anomalies_removed
    assert n_train == pytest.approx(0.7 * len(x), abs=1) and len(s.y_test) == len(x) - n_train
    # stratified: the test part keeps the anomaly rate; no anomaly is left in training
    assert s.y_test.mean() == pytest.approx(y.mean(), abs=0.01)
    assert len(s.x_train) == n_train - s.n_anomalies_removed and s.n_anomalies_removed > 0
    # standardisation fitted on the training normals only: they have mean 0 and std 1, the test part does not
    assert torch.allclose(s.x_train.mean(0), torch.zeros(s.dim), atol=1e-5)
    assert torch.allclose(s.x_train.std(0, unbiased=False), torch.ones(s.dim), atol=1e-4)
    assert not torch.allclose(s.x_test.mean(0), torch.zeros(s.dim), atol=1e-2)
    again, other = adbench.split("29_Pima", seed=3), adbench.split("29_Pima", seed=4)
    assert torch.equal(again.x_train, s.x_train) and not torch.equal(other.x_train, s.x_train)


def test_run_one_trains_and_scores_a_real_dataset(shared_data):
    cfg = profiles.resolve("05_tabular_benchmark", "quick", epochs=3, datasets=["42_WBC"])
    out = tabular.run_one({"dataset": "42_WBC", "method": "USFlow", "seed": 0}, cfg, progress="none")
    assert out["ok"] and out["failure"] is None and 0.8 < out["auroc"] <= 1.0
    assert out["epochs"] == 3 and out["n_train"] + out["n_test"] < 223 and out["dim"] == 9


def test_non_finite_scores_make_a_failed_run_not_a_crash(shared_data, monkeypatch):
    def fake(method, x, cfg, seed, desc="", progress="auto"):
        return None, FitResult(True, 1, 0.1, 0.0), lambda x: torch.full((len(x),), float("nan"))

    monkeypatch.setattr(tabular, "build_and_train", fake)
    cfg = profiles.resolve("05_tabular_benchmark", "quick")
    out = tabular.run_one({"dataset": "42_WBC", "method": "NonUSFlow", "seed": 0}, cfg)
    assert not out["ok"] and "not finite" in out["failure"] and out["auroc"] is None


def test_summaries_count_wins_ties_losses_and_failures():
    rows = []
    for d, (a, b) in {"1_x": (0.9, 0.8), "2_y": (0.7, 0.702), "3_z": (0.6, 0.65)}.items():
        rows += [{"dataset": d, "method": "USFlow", "seed": 0, "ok": True, "auroc": a},
                 {"dataset": d, "method": "OneFlow", "seed": 0, "ok": True, "auroc": b}]
    rows.append({"dataset": "3_z", "method": "OneFlow", "seed": 1, "ok": False, "auroc": None, "failure": "nan"})
    runs = tabular.runs_frame(rows)
    wtl = tabular.pairwise(runs, "USFlow", tie=0.005).iloc[0]
    assert (wtl["wins"], wtl["ties"], wtl["losses"]) == (1, 1, 1)
    agg = tabular.aggregate(runs)
    assert agg.loc["USFlow", "mean"] == pytest.approx(100 * np.mean([0.9, 0.7, 0.6]))
    assert agg.loc["OneFlow", "failed runs"] == 1 and agg.loc["OneFlow", "runs"] == 4
    per = tabular.per_dataset(runs).set_index(["dataset", "method"])
    assert per.loc[("3_z", "OneFlow"), "valid"] == 1 and per.loc[("3_z", "OneFlow"), "runs"] == 2
    assert isinstance(tabular.paper_comparison(runs, 3), pd.DataFrame)
