"""Progress displays: in a notebook a sweep is ONE output updated in place (its trainings
add none of their own), a lone training is one output; in a terminal, tqdm bars."""
import types

import pytest
import torch
from tqdm import tqdm

from usfkit import progress, sweep, train
from usfkit.models.flows import USFlow
from usfkit.models.flows_lightning import train_flow
from usfkit.results import RunResult


class FakeHandle:
    def __init__(self, log):
        self.log = log

    def update(self, obj):
        self.log.append(("update", obj.data))


@pytest.fixture(autouse=True)
def results_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("USFKIT_RESULTS", str(tmp_path))


@pytest.fixture
def notebook(monkeypatch):
    """A fake notebook kernel: records every ``display`` (a new output) and every update of one."""
    import IPython.display
    log = []

    def display(obj, display_id=None):
        assert display_id is True, "notebook progress must be updatable in place"
        log.append(("display", obj.data))
        return FakeHandle(log)

    monkeypatch.setattr(IPython.display, "display", display)
    monkeypatch.setattr(progress, "in_notebook", lambda: True)
    monkeypatch.setattr(train, "in_notebook", lambda: True)
    monkeypatch.setattr(progress, "_cell", lambda: 7)  # every call below runs in the same cell
    monkeypatch.setattr(progress, "MIN_INTERVAL", 0.0)  # draw every epoch line
    monkeypatch.setattr(progress, "_open_sweep", None)  # no sweep display left over from another test
    return log


def tiny_fit(spec):
    """One real (tiny) training through usfkit.train.fit with its default progress."""
    x = torch.randn(64, 2, generator=torch.Generator().manual_seed(spec["seed"]))
    res = train_flow(USFlow(2, blocks=1, hidden=8, seed=spec["seed"]), x, max_epochs=2, batch_size=32,
                     seed=spec["seed"], accelerator="cpu", desc=f"run {spec['seed']}")
    return RunResult(ok=res.ok, failure=res.failure)


def test_notebook_sweep_is_one_output_updated_in_place(notebook):
    specs = [{"kind": "fit", "seed": 0}, {"kind": "fail", "seed": 1}, {"kind": "fit", "seed": 2}]

    def run(spec):
        if spec["kind"] == "fail":
            return RunResult(ok=False, failure="loss became nan")
        return tiny_fit(spec)

    records = sweep.run_sweep("ch", "quick", specs, run, settings={}, desc="tiny runs")
    assert [r.ok for r in records] == [True, False, True]
    assert [kind for kind, _ in notebook].count("display") == 1  # one output, not one per run or refresh
    assert len(notebook) > len(specs)  # ... updated for every finished run
    epoch_lines = [text for kind, text in notebook if "run 0" in text]
    assert epoch_lines and all(text.startswith("tiny runs") for text in epoch_lines)  # trainings fold in
    final = notebook[-1][1]
    assert final.startswith("tiny runs: 3/3 done") and "1 failed" in final and "%|" not in final
    assert progress._open_sweep is None

    notebook.clear()  # a rerun loads every record and still shows one output
    sweep.run_sweep("ch", "quick", specs, run, settings={}, desc="tiny runs")
    assert [kind for kind, _ in notebook].count("display") == 1
    assert "3 loaded from saved results" in notebook[-1][1]


def test_lone_fit_in_a_notebook_is_one_output(notebook):
    tiny_fit({"seed": 0})
    assert [kind for kind, _ in notebook].count("display") == 1 and len(notebook) >= 3
    assert "run 0" in notebook[-1][1]


def test_a_sweep_left_open_by_a_failed_cell_is_not_reused(notebook, monkeypatch):
    bar = progress.runs_bar(2, "broken")  # never closed, as when run_fn raised
    monkeypatch.setattr(progress, "_cell", lambda: 8)  # the reader runs the next cell
    tiny_fit({"seed": 0})
    assert [kind for kind, _ in notebook].count("display") == 2
    assert bar.run == ""


def test_terminal_uses_tqdm(capsys):
    assert not progress.in_notebook()
    bar = progress.runs_bar(3, "runs")
    assert isinstance(bar, tqdm)
    bar.close()
    sweep.run_sweep("ch", "quick", [{"seed": s} for s in range(3)], lambda s: RunResult(ok=True), settings={},
                     desc="terminal runs")
    assert "terminal runs: 100%" in capsys.readouterr().err


def test_track_makes_a_loop_of_trainings_one_output(notebook):
    done = [tiny_fit({"seed": s}) for s in progress.track(range(3), "three trainings")]
    assert all(r.ok for r in done)
    assert sum(1 for kind, _ in notebook if kind == "display") == 1  # one output for the whole loop
    assert "three trainings: 3/3 done" in notebook[-1][1]


def test_epoch_bar_ends_an_early_stopped_fit_without_a_half_full_bar():
    shown = []
    bar = train.EpochBar(total=50, desc="USFlow")
    bar.show = shown.append
    stopped = types.SimpleNamespace(current_epoch=3, callback_metrics={"train_loss": torch.tensor(1.25)})
    bar.on_train_end(stopped, None)
    assert shown[-1].startswith("USFlow: stopped early after 3 of at most 50 epochs [")
    assert "train_loss 1.25" in shown[-1] and "%|" not in shown[-1]
    bar.on_train_end(types.SimpleNamespace(current_epoch=50, callback_metrics={}), None)
    assert shown[-1].startswith("USFlow: all 50 epochs [") and "%|" not in shown[-1] and "stopped" not in shown[-1]


def test_epoch_bar_says_when_training_broke_off():
    shown = []
    bar = train.EpochBar(total=10, desc="NonUSFlow")
    bar.show = shown.append
    bar.on_exception(types.SimpleNamespace(current_epoch=2), None, FloatingPointError("loss is nan"))
    assert shown[-1] == "NonUSFlow: broke off in epoch 3 of at most 10 (FloatingPointError)"
