"""Sweeps on a real Ray cluster started inside the test: two nodes of one CPU each on this machine, every
address on loopback, no usage statistics, no dashboard.  Skipped (with the reason) without the ``cluster``
extra."""
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from functools import partial
from pathlib import Path

import pytest

assert os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] == "0" and os.environ["RAY_USAGE_STATS_ENABLED"] == "0"  # conftest
ray = pytest.importorskip("ray", reason='Ray is not installed: pip install "usfkit[cluster]"')
from ray.cluster_utils import Cluster  # noqa: E402

from usfkit import cluster as usf_cluster, results, sweep  # noqa: E402
from usfkit.data.checks import DataError  # noqa: E402
from usfkit.results import RunResult  # noqa: E402

ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the run functions below travel by value
LOOPBACK = "127.0.0.1"


@pytest.fixture(scope="module")
def two_nodes():
    """A head and a worker node, one CPU each, and this process connected as the driver."""
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "node_ip_address": LOOPBACK,
                                                      "include_dashboard": False})
    worker = c.add_node(num_cpus=1, node_ip_address=LOOPBACK)
    c.wait_for_nodes()
    assert c.address.startswith(LOOPBACK)
    usf_cluster.connect(c.address)
    assert {n["NodeManagerAddress"] for n in ray.nodes()} == {LOOPBACK}
    assert ray._private.worker.global_worker.node.gcs_address.startswith(LOOPBACK)  # the driver's too
    yield c, worker
    ray.shutdown()
    c.shutdown()


@pytest.fixture
def results_root(tmp_path, monkeypatch):
    monkeypatch.setenv("USFKIT_RESULTS", str(tmp_path / "results"))
    return tmp_path / "results"


def slow_run(spec, log: str, seconds: float = 1.0):
    """A run that notes each attempt (one line per try, in a file every node of this machine sees)."""
    with open(log, "a") as f:  # which run, on which node
        f.write(json.dumps({"i": spec["i"], "node": ray.get_runtime_context().get_node_id()}) + "\n")
    if spec.get("bad"):
        raise DataError(f"bad rows in data file {spec['i']}.npz")
    time.sleep(seconds)
    return RunResult(ok=True, metrics={"auroc": 0.5 + spec["i"] / 100}, epochs_allowed=1, epochs_run=1)


def started(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def attempts(log: Path) -> dict[int, int]:
    counts: dict[int, int] = {}
    for row in started(log):
        counts[row["i"]] = counts.get(row["i"], 0) + 1
    return counts


def test_both_nodes_work_and_ray_gives_the_local_records(two_nodes, results_root, shared_data, monkeypatch, capsys):
    """``usf-tabular --backend ray`` on the cluster gives the local backend's AUROCs (to float tolerance)."""
    import torch
    from usfkit import cli

    c, _ = two_nodes
    torch.set_num_threads(1)
    assert sum(n["Alive"] for n in ray.nodes()) == 2 and ray.cluster_resources()["CPU"] == 2
    argv = ["--profile", "quick", "--datasets", "4_breastw", "29_Pima", "--methods", "USFlow", "OneFlow",
            "--seeds", "1", "--epochs", "2"]
    cli.tabular(argv + ["--backend", "local", "--workers", "1"])
    local = sweep.load_runs("05_tabular_benchmark", "quick")  # sorted by file name (the run key)
    monkeypatch.setenv("USFKIT_RESULTS", str(results_root.parent / "results_ray"))
    cli.tabular(argv + ["--backend", "ray", "--address", c.address])
    on_ray = sweep.load_runs("05_tabular_benchmark", "quick")
    assert "4 runs, Ray tasks" in capsys.readouterr().out
    assert len(local) == len(on_ray) == 4 and all(r.ok for r in on_ray)
    assert [r.key for r in on_ray] == [r.key for r in local]
    assert [r.metrics["auroc"] for r in on_ray] == pytest.approx([r.metrics["auroc"] for r in local], abs=1e-6)


def test_usf_images_runs_an_image_run_as_a_task(two_nodes, results_root, shared_data, tmp_path, monkeypatch):
    """One quick image run (features cached by the task, maps saved by the run) through ``usf-images``."""
    from usfkit import cli

    c, _ = two_nodes
    if not (shared_data / "mvtec_ad" / "bottle").is_dir() and not list(shared_data.glob("mvtec*/bottle")):
        pytest.skip("MVTec AD bottle is not in the data folder")
    monkeypatch.setenv("USFKIT_FEATURE_CACHE", str(tmp_path / "features"))
    cli.images(["--profile", "quick", "--couplings", "additive_lu", "--seeds", "0", "--epochs", "1",
                "--backend", "ray", "--address", c.address])
    (record,) = sweep.load_runs("07_image_benchmarks", "quick")
    assert record.ok and 0 <= record.metrics["image_auroc"] <= 1 and record.spec["coupling"] == "additive_lu"


def test_a_node_killed_mid_sweep_loses_no_run(two_nodes, results_root, tmp_path):
    c, worker = two_nodes
    log = tmp_path / "attempts.log"
    specs = [{"i": i} for i in range(6)]
    path = sweep.runs_dir("ch", "quick")

    def kill_while_it_runs_a_task():
        deadline = time.time() + 60
        while not any(row["node"] == worker.node_id for row in started(log)) and time.time() < deadline:
            time.sleep(0.02)
        time.sleep(0.3)  # its run sleeps 1.5 s: the node dies in the middle of it
        c.remove_node(worker)

    killer = threading.Thread(target=kill_while_it_runs_a_task)
    killer.start()
    records = sweep.run_sweep("ch", "quick", specs, partial(slow_run, log=str(log), seconds=1.5),
                              settings={}, backend="ray", progress=False)
    killer.join()
    assert [r.spec["i"] for r in records] == list(range(6)) and all(r.ok for r in records)
    assert len(list(path.glob("*.json"))) == 6 and not list(path.glob("*.tmp"))  # each run once, none lost
    tries = attempts(log)
    assert set(tries) == set(range(6)) and max(tries.values()) == 2  # the killed node's run ran again elsewhere
    c.add_node(num_cpus=1, node_ip_address=LOOPBACK)  # back to two nodes for the next tests
    c.wait_for_nodes()


def test_a_restarted_driver_resumes_without_retraining(two_nodes, results_root, tmp_path):
    """A driver killed mid-sweep: the runs it saved are not trained again by the next driver."""
    c, _ = two_nodes
    log = tmp_path / "attempts.log"
    specs = [{"i": i} for i in range(6)]
    driver = textwrap.dedent(f"""
        import sys, functools
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        import test_cluster as t
        from usfkit import cluster, sweep
        cluster.connect({c.address!r})
        sweep.run_sweep("ch", "quick", {specs!r}, functools.partial(t.slow_run, log={str(log)!r}, seconds=1.0),
                        settings={{}}, backend="ray", progress=False)
    """)
    proc = subprocess.Popen([sys.executable, "-c", driver], env={**os.environ})
    path = sweep.runs_dir("ch", "quick")
    deadline = time.time() + 120
    while not (path.is_dir() and len(list(path.glob("*.json"))) >= 2) and time.time() < deadline:
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    saved = {p.name: p.read_bytes() for p in path.glob("*.json")}
    assert 2 <= len(saved) < 6
    before = attempts(log)
    records = sweep.run_sweep("ch", "quick", specs, partial(slow_run, log=str(log), seconds=0.2),
                              settings={}, backend="ray", progress=False)
    assert all(r.ok for r in records) and len(list(path.glob("*.json"))) == 6
    assert all(path.joinpath(name).read_bytes() == data for name, data in saved.items())  # untouched
    after = attempts(log)
    saved_i = {results.RunRecord.from_file(path / n).spec["i"] for n in saved}
    assert all(after[i] == before[i] == 1 for i in saved_i)  # no saved run trained again


def test_a_data_error_in_a_task_stops_the_sweep_with_that_error(two_nodes, results_root, tmp_path):
    log = tmp_path / "attempts.log"
    specs = [{"i": 0, "bad": True}] + [{"i": i} for i in range(1, 4)]
    with pytest.raises(DataError, match=r"bad rows in data file 0\.npz"):
        sweep.run_sweep("ch", "quick", specs, partial(slow_run, log=str(log), seconds=0.5), settings={},
                        backend="ray", progress=False)
    assert attempts(log)[0] == 1  # a run's own error is not retried


def test_an_unknown_backend_is_refused_before_any_run(results_root, monkeypatch):
    with pytest.raises(ValueError, match="unknown backend 'spark'"):
        sweep.run_sweep("ch", "quick", [{"i": 0}], slow_run, settings={}, backend="spark")
    monkeypatch.setenv("USFKIT_BACKEND", "dask")
    with pytest.raises(ValueError, match=r"unknown \$USFKIT_BACKEND 'dask'"):
        sweep.run_sweep("ch", "quick", [{"i": 0}], slow_run, settings={})


def _notebook(path: Path, code: str) -> None:
    import nbformat

    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('profile = "quick"')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(textwrap.dedent(code))]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


def test_usf_reproduce_runs_chapters_as_tasks_and_the_driver_writes_their_results(two_nodes, results_root, tmp_path):
    """Two chapters as Ray tasks (their results come back to the driver), then the report here, reading them."""
    from usfkit import reproduce

    project = tmp_path / "project"
    (project / "chapters").mkdir(parents=True)
    (project / "usfkit").mkdir()  # what marks a project folder (with _toc.yml): chapters find results/ from it
    (project / "_toc.yml").write_text("root: intro\n")
    for n in ("01_one", "02_two"):
        _notebook(project / "chapters" / f"{n}.ipynb", f"""
            from usfkit import results
            folder = results.chapter_dir("{n}", profile)
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "answer.json").write_text('{{"n": "{n}"}}')
            results.mark_complete("{n}", profile)""")
    _notebook(project / "chapters" / "08_reproduction_report.ipynb", """
        import json
        from usfkit import results
        assert [json.loads((results.chapter_dir(n, profile) / "answer.json").read_text())["n"]
                for n in ("01_one", "02_two")] == ["01_one", "02_two"]""")
    chapters = reproduce.find_chapters([], project / "chapters")
    outcomes = list(reproduce.run_chapters(chapters, tmp_path / "out", "quick", backend="ray", progress=False))
    assert all(o.status == "done" for o in outcomes), [o.error for o in outcomes]
    assert \
        sorted(o.chapter for o in outcomes) == [c.stem for c in chapters]
    assert outcomes[-1].chapter == "08_reproduction_report"  # after the others, on the driver
    for n in ("01_one", "02_two"):  # written by the driver into its results folder, not by the task
        assert (results_root / "quick" / n / "answer.json").exists() and results.is_complete(n, "quick")
        assert (tmp_path / "out" / "chapters" / f"{n}.ipynb").exists()
    again = list(reproduce.run_chapters(chapters[:2], tmp_path / "out", "quick", backend="ray", progress=False))
    assert [o.status for o in again] == ["skipped", "skipped"]  # decided by the driver, before any task


def where_run(spec):
    return RunResult(ok=True, metrics={"auroc": 0.5}, info={"pid": os.getpid()})


def test_usfkit_backend_sends_a_chapters_own_sweeps_to_ray(two_nodes, results_root, monkeypatch):
    """``$USFKIT_BACKEND=ray`` (e.g. ``USFKIT_BACKEND=ray papermill chapters/03_collapse.ipynb ...``): a sweep
    that names no backend, as the chapters' do, runs its runs as Ray tasks."""
    monkeypatch.setenv("USFKIT_BACKEND", "ray")
    records = sweep.run_sweep("ch", "quick", [{"i": i} for i in range(2)], where_run, settings={}, progress=False)
    assert all(r.ok and r.info["pid"] != os.getpid() for r in records)  # trained in Ray's worker processes
