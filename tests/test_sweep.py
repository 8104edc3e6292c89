"""The resumable sweep: every record is saved at once, finished specs are skipped,
failures are recorded and the sweep goes on."""
import json

import pytest

from usfkit import sweep
from usfkit.results import RunRecord, RunResult


@pytest.fixture(autouse=True)
def results_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("USFKIT_RESULTS", str(tmp_path))


def test_sweep_saves_skips_and_records_failures(tmp_path):
    calls = []

    def run(spec):
        calls.append(spec)
        if spec["method"] == "bad":
            return RunResult(ok=False, failure="loss became nan", metrics={"auroc": None})
        return RunResult(ok=True, metrics={"auroc": 0.5 + spec["seed"] / 10}, epochs_allowed=spec["epochs"],
                         epochs_run=2)

    settings = {"epochs": 3}
    specs = [{"dataset": "d", "method": m, "seed": s} for m in ("good", "bad") for s in (0, 1)]
    records = sweep.run_sweep("ch", "quick", specs, run, settings=settings, progress=False)
    assert len(calls) == 4 and calls[0] == {"epochs": 3, "dataset": "d", "method": "good", "seed": 0}
    assert [r.spec["method"] for r in records] == ["good", "good", "bad", "bad"]
    assert [r.ok for r in records] == [True, True, False, False]
    assert records[0].failure is None and records[2].failure == "loss became nan"
    assert records[1].metrics["auroc"] == pytest.approx(0.6) and records[1].provenance["seeds"] == [1]
    assert records[0].settings == settings and records[0].epochs_allowed == 3 and records[0].chapter == "ch"
    files = sorted((tmp_path / "quick" / "ch" / "runs").glob("*.json"))
    assert len(files) == 4 and all(json.loads(f.read_text())["spec"]["dataset"] == "d" for f in files)

    # a rerun with one more spec runs only the new one and returns all five, in order
    more = specs + [{"dataset": "e", "method": "good", "seed": 0}]
    again = sweep.run_sweep("ch", "quick", more, run, settings=settings, progress=False)
    assert len(calls) == 5 and calls[-1]["dataset"] == "e"
    assert [r.spec["dataset"] for r in again] == ["d"] * 4 + ["e"]
    assert len(sweep.load_runs("ch", "quick")) == 5
    sweep.run_sweep("ch", "quick", specs[:1], run, settings=settings, force=True, progress=False)
    assert len(calls) == 6
    table = sweep.frame(again)
    assert list(table["auroc"].iloc[:2]) == pytest.approx([0.5, 0.6]) and table["epochs"].eq(3).all()


def test_a_changed_setting_is_a_new_run_not_a_finished_one():
    """``--epochs 1`` and then ``--epochs 3`` on the same dataset trains twice (and keeps both records)."""
    calls = []

    def run(spec):
        calls.append(spec["epochs"])
        return RunResult(ok=True, metrics={"auroc": 0.5}, epochs_allowed=spec["epochs"], epochs_run=spec["epochs"])

    spec = [{"dataset": "d", "method": "USFlow", "seed": 0}]
    first = sweep.run_sweep("ch", "quick", spec, run, settings={"epochs": 1}, progress=False)
    second = sweep.run_sweep("ch", "quick", spec, run, settings={"epochs": 3}, progress=False)
    sweep.run_sweep("ch", "quick", spec, run, settings={"epochs": 3}, progress=False)  # finished: skipped
    assert calls == [1, 3] and first[0].key != second[0].key and second[0].epochs_run == 3
    with pytest.raises(ValueError, match="both in the specs and in the settings"):
        sweep.run_sweep("ch", "quick", spec, run, settings={"seed": 1}, progress=False)


def test_run_results_refuse_percentages_and_silent_failures(tmp_path):
    with pytest.raises(ValueError, match="fraction"):
        RunResult(ok=True, metrics={"auroc": 91.0})
    with pytest.raises(ValueError, match="must say why"):
        RunResult(ok=False)
    bad = tmp_path / "old.json"
    bad.write_text(json.dumps({"dataset": "d", "ok": True, "auroc": 0.5}))  # a record of the old flat format
    with pytest.raises(ValueError, match="old.json.*delete it"):
        RunRecord.from_file(bad)


def test_spec_key_is_unique_and_readable():
    a = sweep.spec_key({"dataset": "22_magic.gamma", "method": "USFlow", "seed": 0})
    b = sweep.spec_key({"dataset": "22_magic.gamma", "method": "USFlow", "seed": 1})
    assert a != b and a.startswith("22_magic.gamma_USFlow_0_")


def test_run_fn_must_return_a_run_result():
    with pytest.raises(TypeError, match="RunResult"):
        sweep.run_sweep("ch", "quick", [{"a": 1}], lambda s: {"ok": True, "auroc": 1.0}, settings={}, progress=False)


def test_summarize_counts_valid_and_failed_runs_per_group():
    import pandas as pd

    runs = pd.DataFrame([
        {"dataset": "a", "method": "m", "ok": True, "auroc": 0.6},
        {"dataset": "a", "method": "m", "ok": True, "auroc": 0.8},
        {"dataset": "a", "method": "m", "ok": False, "auroc": None},
        {"dataset": "b", "method": "m", "ok": False, "auroc": None},
    ])
    table = sweep.summarize(runs, ["dataset", "method"], "auroc").set_index("dataset")
    assert table.loc["a", "mean"] == pytest.approx(0.7) and table.loc["a", "std"] == pytest.approx(0.1 * 2 ** 0.5)
    assert (table.loc["a", "valid"], table.loc["a", "failed"], table.loc["a", "runs"]) == (2, 1, 3)
    assert table.loc["b", "valid"] == 0 and table.loc["b", "failed"] == 1 and pd.isna(table.loc["b", "mean"])


def _square(spec):
    """A picklable run (worker processes import it from this module)."""
    import os

    return RunResult(ok=True, metrics={"auroc": spec["seed"] / 10}, info={"pid": os.getpid()})


def test_two_workers_give_the_records_one_worker_gives(tmp_path, monkeypatch):
    specs = [{"method": "m", "seed": s} for s in range(4)]
    two = sweep.run_sweep("ch", "quick", specs, _square, settings={"epochs": 1}, progress=False, workers=2)
    assert [r.spec for r in two] == specs and [r.metrics["auroc"] for r in two] == [0.0, 0.1, 0.2, 0.3]
    assert len({r.info["pid"] for r in two}) >= 1 and all(r.info["pid"] != __import__("os").getpid() for r in two)
    monkeypatch.setenv("USFKIT_RESULTS", str(tmp_path / "other"))
    one = sweep.run_sweep("ch", "quick", specs, _square, settings={"epochs": 1}, progress=False)
    assert [r.key for r in one] == [r.key for r in two] and [r.metrics for r in one] == [r.metrics for r in two]
    # a rerun with workers finds everything finished and starts no process
    again = sweep.run_sweep("ch", "quick", specs, lambda s: pytest.fail("rerun"), settings={"epochs": 1},
                            progress=False, workers=2)
    assert [r.key for r in again] == [r.key for r in one]


def test_records_say_how_much_of_the_wall_time_was_the_run_s_own_cpu_time():
    """A run that waits (as one sharing its core does) has a wall time well above its CPU time;
    a run that computes has both about equal."""
    import time

    def run(spec):
        if spec["method"] == "waits":
            time.sleep(0.3)
        else:
            end = time.process_time() + 0.3
            while time.process_time() < end:
                pass
        return RunResult(ok=True, metrics={"auroc": 0.5})

    specs = [{"method": m, "seed": 0} for m in ("waits", "computes")]
    waits, computes = sweep.run_sweep("ch", "quick", specs, run, settings={}, progress=False)
    assert waits.provenance["wall_time_s"] >= 0.29 and waits.provenance["cpu_time_s"] < 0.15
    assert computes.provenance["cpu_time_s"] >= 0.29
    assert computes.provenance["wall_time_s"] >= computes.provenance["cpu_time_s"] - 0.02


def test_describe_missing_lists_items_per_group_and_says_which_are_partial():
    specs = [{"dataset": d, "method": m, "seed": s} for s in (1, 2) for d in ("x", "y") for m in ("A", "B", "C")]
    missing = [s for s in specs if s["seed"] == 2 or (s["dataset"] == "y" and s["method"] == "C")]
    assert sweep.describe_missing(missing, specs, "seed", "dataset") == [
        "seed 1: 1 dataset, 1 run: y; y misses 1 of its 3 runs (method C)",
        "seed 2: 2 datasets, 6 runs: x, y"]


def test_a_record_keeps_the_commit_its_run_started_at_when_the_code_moved_on(monkeypatch):
    from usfkit import results

    commits = iter(["aaa", "bbb"])  # the run starts at aaa; by the time it is saved the tree is at bbb
    monkeypatch.setattr(results, "git_commit", lambda: next(commits))
    rec = sweep.run_sweep("ch", "quick", [{"seed": 0}], lambda s: RunResult(ok=True, metrics={"auroc": 0.5}),
                          settings={}, progress=False)[0]
    assert rec.provenance["git_commit"] == "bbb" and rec.provenance["git_commit_started"] == "aaa"
    monkeypatch.setattr(results, "git_commit", lambda: "ccc")
    rec = sweep.run_sweep("ch", "quick", [{"seed": 1}], lambda s: RunResult(ok=True, metrics={"auroc": 0.5}),
                          settings={}, progress=False)[0]
    assert rec.provenance["git_commit"] == "ccc" and "git_commit_started" not in rec.provenance
