"""Bad input gets the truth: a broken data file raises DataError naming the file, the rows
at fault and what to do, not a model failure (NaN "determinant exploded") or a raw error."""
import re

import numpy as np
import pytest
import torch

from usfkit.experiments import vae as vae_experiments
from usfkit.data import DataError, adbench, check_finite_input, validate_xy


def _data(n=50, d=4, n_anomalies=5, seed=0):
    x = np.random.default_rng(seed).normal(size=(n, d))
    y = np.zeros(n, dtype=np.int64)
    y[-n_anomalies:] = 1
    return x, y


def _nan_rows(x, y):
    x[5, 1] = x[17, 0] = x[40, 3] = np.nan
    return {"X": x, "y": y}


def _inf_row(x, y):
    x[7, 2] = -np.inf
    return {"X": x, "y": y}


def _beyond_float32(x, y):
    x[12, 0] = 1e39  # finite as float64, inf as the float32 the models train on
    return {"X": x, "y": y}


def _many_nan_rows(x, y):
    x[:20, 0] = np.nan
    return {"X": x, "y": y}


def _bad_label(x, y):
    y[3] = y[9] = 2
    return {"X": x, "y": y}


def _nan_label(x, y):
    return {"X": x, "y": np.where(np.arange(len(y)) == 4, np.nan, y)}


BAD_FILES = {  # case: (what the file holds, what the message must say)
    "nan in X": (_nan_rows, r"X has 3 non-finite values .* in 0-based rows 5, 17, 40; clean or drop these rows"),
    "inf in X": (_inf_row, r"X has 1 non-finite value .* in 0-based row 7; clean or drop"),
    "beyond float32": (_beyond_float32, r"non-finite .* in 0-based row 12;"),
    "many bad rows": (_many_nan_rows, r"rows 0, 1, 2, 3, 4, 5, 6, 7, 8, 9 \(first 10 of 20 shown\);"),
    "1-D X": (lambda x, y: {"X": x[:, 0], "y": y}, r"X has shape \(50,\); expected 2-D .*reshape it to \[n, 1\]"),
    "label 2": (_bad_label, r"y must be 0 \(normal\) or 1 \(anomaly\); found 2 in 0-based rows 3, 9; relabel or drop"),
    "NaN label": (_nan_label, r"found nan in 0-based row 4;"),
    "no normals": (lambda x, y: {"X": x, "y": np.ones_like(y)}, r"no normal rows \(y == 0\) among its 50 rows"),
    "no anomalies": (lambda x, y: {"X": x, "y": np.zeros_like(y)}, r"no anomalous rows \(y == 1\)"),
    "no rows": (lambda x, y: {"X": x[:0], "y": y[:0]}, r"no normal rows \(y == 0\) among its 0 rows"),
    "length mismatch": (lambda x, y: {"X": x, "y": y[:-1]}, r"X has 50 rows but y has shape \(49,\)"),
    "missing y": (lambda x, y: {"X": x, "labels": y}, r"has no array y \(it holds X, labels\)"),
    "text X": (lambda x, y: {"X": x.astype(str), "y": y}, r"X has dtype <U\d+; expected numbers"),
}


@pytest.mark.parametrize("case", BAD_FILES)
def test_bad_file_raises_data_error_naming_file_and_fix(tmp_path, case):
    make, expected = BAD_FILES[case]
    file = tmp_path / "7_bad.npz"
    np.savez(file, **make(*_data()))
    with pytest.raises(DataError) as err:
        adbench.read_npz(file)
    assert str(file) in str(err.value)
    assert re.search(expected, str(err.value)), str(err.value)


def test_not_an_npz_archive(tmp_path):
    file = tmp_path / "broken.npz"
    file.write_text("not a zip")
    with pytest.raises(DataError, match=re.escape(str(file))):
        adbench.read_npz(file)


def test_an_empty_or_truncated_npz_is_a_data_error_naming_the_file(tmp_path):
    x, y = _data()
    good = tmp_path / "good.npz"
    np.savez(good, X=x, y=y)
    empty, cut = tmp_path / "empty.npz", tmp_path / "cut.npz"
    empty.write_bytes(b"")
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])  # a download broken off half-way
    with pytest.raises(DataError, match=re.escape(f"{empty}: is empty (0 bytes)")):
        adbench.read_npz(empty)
    with pytest.raises(DataError, match=re.escape(f"{cut}: is not a readable .npz archive")) as err:
        adbench.read_npz(cut)
    assert "download it again" in str(err.value)


def test_the_good_file_passes_and_is_cast(tmp_path):
    x, y = _data()
    file = tmp_path / "good.npz"
    np.savez(file, X=x, y=y[:, None].astype(np.int32))  # a column of labels is fine
    x2, y2 = adbench.read_npz(file)
    assert x2.dtype == np.float32 and y2.dtype == np.int64 and y2.shape == (50,)
    np.testing.assert_allclose(x2, x, rtol=1e-6)
    assert validate_xy(x, np.zeros(50), "normals only", need_both_classes=False)[1].sum() == 0


def test_adbench_load_and_split_name_the_file(tmp_path):
    x, y = _data()
    file = tmp_path / "4_breastw.npz"
    np.savez(file, **_nan_rows(x, y))
    with pytest.raises(DataError, match=re.escape(str(file)) + ".*rows 5, 17, 40"):
        adbench.load("breastw", root=tmp_path, download=False)
    with pytest.raises(DataError, match=re.escape(str(file))):
        adbench.split("breastw", root=tmp_path, download=False)
    # one normal row: no stratified split
    x, y = _data(n_anomalies=49)
    np.savez(file, X=x, y=y)
    with pytest.raises(DataError, match=re.escape(str(file)) + ": 1 normal and 49 anomalous rows"):
        adbench.split("breastw", root=tmp_path, download=False)
    # two normals among 200 rows would train on one normal row: refused, saying the minimum
    x, y = _data(n=200, n_anomalies=198)
    np.savez(file, X=x, y=y)
    for protocol in ("adbench", "adbench-noresample"):
        with pytest.raises(DataError, match=re.escape(str(file)) + ".*at least 20 needed"):
            adbench.split("breastw", root=tmp_path, download=False, protocol=protocol)


def test_embeddings_loader_rejects_a_bad_label(tmp_path, monkeypatch):
    monkeypatch.setenv("USFKIT_DATA", str(tmp_path))
    folder = tmp_path / vae_experiments.EMBEDDING_FOLDER
    folder.mkdir()
    file = folder / "MVTec-AD_widget.npz"
    x, y = _data(n=40, d=8)
    np.savez(file, X=x.astype(np.float32), y=y)
    xs, ys = vae_experiments.load_embeddings("widget")
    assert xs.shape == (40, 8) and ys.tolist() == y.tolist()
    # rewritten in place (another size): read again, not served from the cache, and the 2 is an error
    y[[3, 30]] = 2
    np.savez(file, X=x[:39].astype(np.float32), y=y[:39])
    with pytest.raises(DataError, match=re.escape(str(file)) + r".*found 2 in 0-based rows 3, 30;"):
        vae_experiments.load_embeddings("widget")


def test_check_finite_input_names_the_rows():
    x = torch.randn(8, 3, generator=torch.Generator().manual_seed(0))
    check_finite_input(x, "x_train")  # finite: passes
    x[2, 1] = float("nan")
    x[6, 0] = float("inf")
    with pytest.raises(DataError, match=r"x_train: 2 non-finite values \(NaN or inf\) in 0-based rows 2, 6; clean"):
        check_finite_input(x, "x_train")
    with pytest.raises(DataError, match=r"x_val: 1 non-finite value \(NaN or inf\) in 0-based row 2;"):
        check_finite_input(x.numpy()[:4], "x_val")
    images = torch.zeros(2, 3, 4, 4)
    images[1, 2, 3, 3] = float("nan")
    with pytest.raises(DataError, match="in 0-based row 1;"):
        check_finite_input(images, "images")


def test_training_on_non_finite_input_is_a_data_error_not_a_failed_run():
    """NaN in the training data must not be reported as "the flow's determinant exploded"."""
    from usfkit.models.flows import build_flow
    from usfkit.models.flows_lightning import train_flow

    x = torch.randn(64, 4, generator=torch.Generator().manual_seed(0))
    x[[3, 50], 1] = float("nan")
    with pytest.raises(DataError, match=r"x_train: 2 non-finite values .*rows 3, 50"):
        train_flow(build_flow(4, "additive_lu", blocks=1, hidden=8, layers=1, seed=0), x, max_epochs=1, progress="none")


def test_count_settings_below_their_least_value_are_refused_before_any_training():
    from usfkit import cli, profiles
    from usfkit.experiments import tabular

    for bad in (-1, 0, 2.5, True):
        with pytest.raises(ValueError, match=r"epochs must be a whole number >= 1"):
            profiles.of("05_tabular_benchmark", "quick", epochs=bad)
    with pytest.raises(ValueError, match="seeds must be a whole number >= 1"):
        profiles.of("05_tabular_benchmark", "quick", seeds=0)
    assert profiles.of("05_tabular_benchmark", "quick", epochs=1, dohsc_pretrain_epochs=0).epochs == 1
    for flag in ("--epochs", "--seeds", "--workers"):
        with pytest.raises(SystemExit) as err:
            cli.tabular([flag, "-1"])
        assert err.value.code == 2  # argparse's usage error, before any data is read


def test_an_unwritable_results_folder_stops_a_sweep_before_its_first_run(tmp_path, monkeypatch):
    from usfkit import results, sweep

    monkeypatch.setenv("USFKIT_RESULTS", str(tmp_path))
    (tmp_path / "quick" / "ch").mkdir(parents=True)
    (tmp_path / "quick" / "ch" / "runs").write_text("a file where the runs folder should be")
    calls = []
    with pytest.raises(PermissionError, match=re.escape(str(tmp_path / "quick" / "ch" / "runs"))):
        sweep.run_sweep("ch", "quick", [{"seed": 0}], lambda s: calls.append(s), settings={}, progress=False)
    assert calls == []  # nothing trained
    assert results.ensure_writable(tmp_path / "fine") == tmp_path / "fine"


def test_usf_reproduce_refuses_an_unwritable_results_folder_before_running_a_chapter(tmp_path, monkeypatch, capsys):
    from usfkit import reproduce

    blocked = tmp_path / "results"
    blocked.write_text("not a folder")
    monkeypatch.setenv("USFKIT_RESULTS", str(blocked))
    ran = []
    monkeypatch.setattr(reproduce, "run_chapter", lambda *a, **k: ran.append(a))
    with pytest.raises(SystemExit) as err:
        reproduce.main(["1", "--out", str(tmp_path / "out")])
    assert err.value.code == 2 and ran == [] and "cannot write results to" in capsys.readouterr().err


@pytest.mark.parametrize("script", ["tabular", "images"])
def test_console_scripts_answer_help_and_bad_arguments_without_importing_torch(script):
    """The console scripts parse before they import torch, Lightning and the experiments (issue: 5.8 s for
    --help)."""
    import subprocess
    import sys

    code = ("import sys\nfrom usfkit import cli\n"
            "for argv in (['--help'], ['--epochs', '0'], ['--backend', 'spark'], ['--status', '--plan']):\n"
            f"    try:\n        cli.{script}(argv)\n    except SystemExit as e:\n        print(argv[0], e.code)\n"
            "print('torch loaded' if 'torch' in sys.modules else 'torch not loaded')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    last = ["--help 0", "--epochs 2", "--backend 2", "--status 2"]  # tabular: no --plan; images: not both
    assert out.stdout.splitlines()[-len(last) - 1:] == last + ["torch not loaded"]
    assert "must be at least 1, got 0" in out.stderr and "invalid choice: 'spark'" in out.stderr


@pytest.mark.parametrize("script", ["tabular", "images"])
def test_status_answers_without_importing_torch(script, shared_data):
    """``--status`` reads the run grid and the records, not the models: no torch, Lightning, scikit-learn or
    SciPy (they were 4.8 s of its 5.8 s)."""
    import subprocess
    import sys

    code = (f"import sys\nfrom usfkit import cli\ncli.{script}(['--status'])\n"
            "print(sorted(m for m in ('torch', 'lightning', 'sklearn', 'scipy', 'torchvision') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1] == "[]" and "missing" in out.stdout


def test_usf_reproduce_answers_help_without_importing_papermill_or_torch():
    import subprocess
    import sys

    code = ("import sys\nfrom usfkit import reproduce\ntry:\n    reproduce.main(['--help'])\n"
            "except SystemExit as e:\n    print(e.code)\n"
            "print(sorted(m for m in ('torch', 'papermill') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.splitlines()[-2:] == ["0", "[]"], out.stderr
    assert "--backend {local,ray}" in out.stdout


def test_an_error_is_one_line_and_debug_shows_the_traceback(tmp_path, monkeypatch, capsys):
    from usfkit import cli

    monkeypatch.setenv("USFKIT_DATA", str(tmp_path))
    monkeypatch.setenv("USFKIT_RESULTS", str(tmp_path / "results"))
    with pytest.raises(SystemExit) as err:
        cli.images(["--profile", "quick", "--epochs", "1", "--datasets", "mvtec"])
    message = capsys.readouterr().err
    assert err.value.code == 2 and message.startswith("usf-images: no class of mvtec found")
    assert "Traceback" not in message and "--debug shows the traceback" in message
    with pytest.raises(FileNotFoundError, match="no class of mvtec found"):
        cli.images(["--profile", "quick", "--epochs", "1", "--datasets", "mvtec", "--debug"])


def test_usf_images_status_counts_the_paper_grid_whatever_is_on_disk(tmp_path, monkeypatch, capsys):
    from usfkit import cli

    monkeypatch.setenv("USFKIT_DATA", str(tmp_path))  # no image data at all: the grid is still the paper's
    monkeypatch.setenv("USFKIT_RESULTS", str(tmp_path / "results"))
    cli.images(["--status"])
    out = capsys.readouterr().out
    # 15 MVTec AD + 12 VisA classes x 3 architectures x 3 couplings x 3 seeds, and the two §5.2.3 ablations
    assert "864 of 864 runs missing" in out and "backbone_resnet18" in out


def test_backend_ray_without_ray_installed_is_one_line(tmp_path, monkeypatch, capsys, shared_data):
    import sys

    from usfkit import cli

    monkeypatch.setenv("USFKIT_RESULTS", str(tmp_path))
    monkeypatch.setitem(sys.modules, "ray", None)  # as if the cluster extra were not installed
    with pytest.raises(SystemExit) as err:
        cli.tabular(["--profile", "quick", "--datasets", "4_breastw", "--methods", "USFlow", "--epochs", "1",
                     "--backend", "ray"])
    message = capsys.readouterr().err
    assert err.value.code == 2 and "Traceback" not in message and 'pip install "usfkit[cluster]"' in message
    assert not list(tmp_path.rglob("*.json"))  # nothing trained


def test_a_list_of_seeds_is_checked_as_a_list():
    """Chapter 07's seeds are a list (``usf-images --seeds 0 1``), the other chapters' a count."""
    from usfkit import profiles

    assert profiles.of("07_image_benchmarks", "full", seeds=[0, 2]).seeds == [0, 2]
    for bad in ([], [-1], [0.5], 3):
        with pytest.raises(ValueError, match="seeds must be a non-empty list"):
            profiles.of("07_image_benchmarks", "full", seeds=bad)


def test_a_bad_file_stops_the_tabular_sweep_before_any_run_trains(tmp_path, monkeypatch, shared_data):
    """The driver reads and splits every dataset with a pending run first: a truncated file among good ones
    stops the sweep, naming it, before the first run (on Ray: before any task is submitted)."""
    import shutil

    from usfkit import profiles
    from usfkit.experiments import tabular

    data = tmp_path / "data" / "adbench_classical"
    data.mkdir(parents=True)
    shutil.copy(shared_data / "adbench_classical" / "4_breastw.npz", data)
    good = (shared_data / "adbench_classical" / "29_Pima.npz").read_bytes()
    (data / "29_Pima.npz").write_bytes(good[: len(good) // 2])
    monkeypatch.setenv("USFKIT_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("USFKIT_RESULTS", str(tmp_path / "results"))
    trained = []
    monkeypatch.setattr(tabular, "run_one", lambda spec, cfg, progress="auto": trained.append(spec))
    cfg = profiles.resolve("05_tabular_benchmark", "quick", datasets=["4_breastw", "29_Pima"], methods=["USFlow"],
                           seeds=1, epochs=1)
    with pytest.raises(DataError, match=re.escape(str(data / "29_Pima.npz"))):
        tabular.run(cfg, progress="none")
    assert trained == [] and not list((tmp_path / "results").rglob("*.json"))


def test_usf_images_plan_answers_without_importing_torch():
    """``usf-images --plan`` reads the committed dry run with JSON and pandas only (about a second)."""
    import subprocess
    import sys

    code = ("import sys\nfrom usfkit import cli\ncli.images(['--plan', '--gpu', 'A100'])\n"
            "print('torch loaded' if 'torch' in sys.modules else 'torch not loaded')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "h on A100" in out.stdout and out.stdout.splitlines()[-1] == "torch not loaded"
