"""A tabular file too small for the one-class protocol is refused before anything trains, with a DataError
naming the file, its counts and the minimum (usfkit.data.adbench.check_sizes)."""
from __future__ import annotations

import numpy as np
import pytest

from usfkit import profiles
from usfkit.data import adbench
from usfkit.data.checks import DataError
from usfkit.experiments import tabular


def write(folder, n_normal: int, n_anomalous: int, name: str = "4_breastw"):
    """An ADBench-format file of ``n_normal`` + ``n_anomalous`` distinct rows under ``folder``."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    file = folder / f"{name}.npz"
    y = np.r_[np.zeros(n_normal), np.ones(n_anomalous)].astype(int)
    np.savez(file, X=rng.normal(size=(len(y), 3)), y=y)
    return file


@pytest.mark.parametrize("protocol", adbench.PROTOCOLS)
def test_two_normal_and_two_anomalous_rows_are_refused(tmp_path, protocol):
    file = write(tmp_path, 2, 2)
    with pytest.raises(DataError) as err:
        adbench.split("4_breastw", seed=1, protocol=protocol, root=tmp_path, download=False)
    text = str(err.value)
    assert str(file) in text and "2 normal and 2 anomalous rows" in text
    assert f"at least {adbench.MIN_TRAIN_NORMALS} needed" in text and "distinct training normals" in text


def test_copies_from_resampling_do_not_count_as_rows(tmp_path):
    """ADBench's generator resamples this file to 1000 rows, about 700 of them training rows, but they are
    copies of at most 12 normal rows: refused under either protocol."""
    write(tmp_path, 12, 4)
    with pytest.raises(DataError, match=r"'adbench'"):
        adbench.check_sizes("f.npz", np.r_[np.zeros(12), np.ones(4)].astype(int), seed=1)
    train, _ = adbench.adbench_rows(np.r_[np.zeros(12), np.ones(4)].astype(int), 1, resample=True)
    assert len(train) == 700  # what the training part would have held
    with pytest.raises(DataError):
        adbench.split("4_breastw", protocol="adbench", root=tmp_path, download=False)


def test_the_minimum_is_where_the_training_normals_run_out(tmp_path):
    """Just enough normal rows: accepted, and the training part holds at least the minimum of distinct rows;
    a few fewer: refused."""
    y_ok = np.r_[np.zeros(30), np.ones(3)].astype(int)
    adbench.check_sizes("ok.npz", y_ok, seed=1)
    write(tmp_path, 30, 3)
    s = adbench.split("4_breastw", protocol="adbench-noresample", root=tmp_path, download=False)
    assert adbench.MIN_TRAIN_NORMALS <= len(s.x_train) < 30 and s.y_test.sum() >= 1 and (s.y_test == 0).sum() >= 1
    with pytest.raises(DataError, match="distinct training normals"):
        adbench.check_sizes("small.npz", np.r_[np.zeros(25), np.ones(3)].astype(int), seed=1)


def test_run_one_refuses_before_training(tmp_path, monkeypatch):
    file = write(tmp_path / adbench.FOLDER, 2, 2)
    monkeypatch.setenv("USFKIT_DATA", str(tmp_path))
    monkeypatch.setattr(tabular, "build_and_train", lambda *a, **k: pytest.fail("trained on a refused file"))
    cfg = profiles.resolve("05_tabular_benchmark", "quick", epochs=1)
    with pytest.raises(DataError, match="2 normal and 2 anomalous rows") as err:
        tabular.run_one({"dataset": "4_breastw", "method": "USFlow", "seed": 1}, cfg, progress="none")
    assert str(file) in str(err.value)
