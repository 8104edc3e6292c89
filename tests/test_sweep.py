"""The resumable sweep: every record is saved at once, finished specs are skipped,
failures are recorded and the sweep goes on."""
import json

import pytest

from usfkit import sweep


@pytest.fixture(autouse=True)
def results_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("USFKIT_RESULTS", str(tmp_path))


def test_sweep_saves_skips_and_records_failures(tmp_path):
    calls = []

    def run(spec):
        calls.append(spec)
        if spec["method"] == "bad":
            return {"ok": False, "failure": "loss became nan", "auroc": None}
        return {"ok": True, "auroc": 0.5 + spec["seed"] / 10}

    specs = [{"dataset": "d", "method": m, "seed": s} for m in ("good", "bad") for s in (0, 1)]
    records = sweep.run_sweep("ch", "quick", specs, run, progress=False)
    assert len(calls) == 4 and [r["method"] for r in records] == ["good", "good", "bad", "bad"]
    assert [r["ok"] for r in records] == [True, True, False, False]
    assert records[0]["failure"] is None and records[2]["failure"] == "loss became nan"
    assert records[1]["auroc"] == pytest.approx(0.6) and records[1]["provenance"]["seeds"] == [1]
    files = sorted((tmp_path / "quick" / "ch" / "runs").glob("*.json"))
    assert len(files) == 4 and all(json.loads(f.read_text())["dataset"] == "d" for f in files)

    # a rerun with one more spec runs only the new one and returns all five, in order
    more = specs + [{"dataset": "e", "method": "good", "seed": 0}]
    again = sweep.run_sweep("ch", "quick", more, run, progress=False)
    assert len(calls) == 5 and calls[-1]["dataset"] == "e"
    assert [r["dataset"] for r in again] == ["d"] * 4 + ["e"]
    assert len(sweep.load_runs("ch", "quick")) == 5
    sweep.run_sweep("ch", "quick", specs[:1], run, force=True, progress=False)
    assert len(calls) == 6


def test_spec_key_is_unique_and_readable():
    a = sweep.spec_key({"dataset": "22_magic.gamma", "method": "USFlow", "seed": 0})
    b = sweep.spec_key({"dataset": "22_magic.gamma", "method": "USFlow", "seed": 1})
    assert a != b and a.startswith("22_magic.gamma_USFlow_0_")


def test_run_fn_must_say_ok():
    with pytest.raises(KeyError, match="'ok'"):
        sweep.run_sweep("ch", "quick", [{"a": 1}], lambda s: {"auroc": 1.0}, progress=False)


def test_summarize_counts_valid_and_failed_runs_per_group():
    import pandas as pd

    runs = pd.DataFrame([
        {"dataset": "a", "method": "m", "ok": True, "auroc": 0.6},
        {"dataset": "a", "method": "m", "ok": True, "auroc": 0.8},
        {"dataset": "a", "method": "m", "ok": False, "auroc": None},
        {"dataset": "b", "method": "m", "ok": False, "auroc": None},
    ])
    table = sweep.summarize(runs, ["dataset", "method"], "auroc").set_index("dataset")
    assert table.loc["a", "mean"] == pytest.approx(0.7) and table.loc["a", "std"] == pytest.approx(0.1)
    assert (table.loc["a", "valid"], table.loc["a", "failed"], table.loc["a", "runs"]) == (2, 1, 3)
    assert table.loc["b", "valid"] == 0 and table.loc["b", "failed"] == 1 and pd.isna(table.loc["b", "mean"])
