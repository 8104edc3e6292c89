"""Smoke tests of benchmarks/: the timing functions run and return sane numbers."""
from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench_flows():
    """The module, run on one CPU thread: tiny models on a busy 2-core machine are many
    times slower with two threads, which wait on each other at every op."""
    pytest.importorskip("FrEIA")
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield _load("bench_flows")
    torch.set_num_threads(threads)


def test_rates_positive_and_finite(bench_flows):
    rows = bench_flows.benchmark(dim=4, blocks=2, hidden=16, layers=2, batch=8, steps=3, warmup=1,
                                 infer_batch=32, infer_iters=2, repeats=2, device="cpu")
    assert [r["model"] for r in rows] == ["USFlow", "NonUSFlow", "FrEIA AllInOne"]
    for r in rows:
        assert r["params"] > 0
        for key in ("train_steps_per_s", "infer_samples_per_s"):
            assert math.isfinite(r[key]) and r[key] > 0, (r["model"], key, r[key])


@pytest.mark.parametrize("dim,blocks,hidden,layers", [(32, 4, 256, 4), (8, 2, 32, 2)])
def test_freia_model_is_comparable_in_size(bench_flows, dim, blocks, hidden, layers):
    models = bench_flows.build_models(dim, blocks, hidden, layers)
    counts = {name: bench_flows.n_params(m) for name, m in models.items()}
    ratio = counts["FrEIA AllInOne"] / counts["USFlow"]
    assert 0.5 < ratio < 2.0, counts


def test_freia_log_prob_is_a_density(bench_flows):
    """With zero-initialised subnets every AllInOneBlock starts as a permutation, so the
    flow's log_prob must be the standard normal's."""
    import torch
    model = bench_flows.FrEIAFlow(dim=6, blocks=2, hidden=8, layers=1)
    x = torch.randn(5, 6)
    expected = torch.distributions.Normal(0.0, 1.0).log_prob(x).sum(1)
    torch.testing.assert_close(model.log_prob(x), expected)


def test_compiled_training_loss_is_the_eager_one(bench_flows):
    """``--compile`` times every model with its loss through ``torch.compile``: the same loss."""
    import torch
    from usfkit.train import can_compile

    if not can_compile():
        pytest.skip("torch.compile does not work on this machine (no C++ compiler)")
    torch.manual_seed(0)
    model = bench_flows.FrEIAFlow(dim=4, blocks=1, hidden=8, layers=1)
    x = torch.randn(16, 4, generator=torch.Generator().manual_seed(1))
    eager, compiled = bench_flows.nll(model)(x), bench_flows.nll(model, compile=True)(x)
    torch.testing.assert_close(compiled, eager)


def test_cli_writes_json(bench_flows, tmp_path, capsys):
    out = tmp_path / "bench.json"
    bench_flows.main(["--dim", "4", "--blocks", "1", "--hidden", "8", "--layers", "1", "--steps", "2",
                      "--warmup", "1", "--infer-batch", "16", "--infer-iters", "1", "--repeats", "1",
                      "--device", "cpu", "--json", str(out)])
    data = json.loads(out.read_text())
    assert {"torch", "device", "threads", "date", "git_commit"} <= set(data["provenance"])
    assert len(data["results"]) == 3
    assert "USFlow" in capsys.readouterr().out


def test_time_chapters_on_a_dummy_notebook(tmp_path, monkeypatch):
    monkeypatch.setenv("USFKIT_RESULTS", str(tmp_path / "before"))  # main() repoints it; undone after the test
    nbformat = pytest.importorskip("nbformat")
    pytest.importorskip("papermill")
    pytest.importorskip("ipykernel")
    time_chapters = _load("time_chapters")
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('profile: str = "full"')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell('assert profile == "quick"')]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp_path / "01_dummy.ipynb")
    (tmp_path / "notes.ipynb").write_text("{}")  # not a chapter: ignored

    out = tmp_path / "times.json"
    assert time_chapters.main(["--chapters-dir", str(tmp_path), "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert [c["chapter"] for c in data["chapters"]] == ["01_dummy"]
    assert data["chapters"][0]["status"] == "ok" and data["total_seconds"] > 0


def test_time_chapters_without_chapters(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("USFKIT_RESULTS", str(tmp_path / "before"))
    time_chapters = _load("time_chapters")
    assert time_chapters.main(["--chapters-dir", str(tmp_path)]) == 1
    assert "no chapter notebooks" in capsys.readouterr().err


def test_seed_batching_computes_what_one_seed_at_a_time_computes(tmp_path, monkeypatch):
    """The batched seeds (vmap over stacked weights, one Adam) give every seed the losses it gets alone."""
    import torch

    threads = torch.get_num_threads()
    out = tmp_path / "batching.json"
    monkeypatch.setattr(sys, "argv", ["seed_batching", "--dim", "6", "--seeds", "2", "--steps", "4", "--repeats", "1",
                                      "--out", str(out)])
    try:
        _load("seed_batching").main()
    finally:
        torch.set_num_threads(threads)
    rep = json.loads(out.read_text())["repeats"][0]
    assert rep["max_rel_loss_diff"] < 1e-5 and rep["speedup"] > 0


def test_step_breakdown_times_every_matrix_product_and_the_bare_step():
    """The GEMM timer sees the forward product and both backward products of a linear layer, and the
    bare loop's parts are no larger than its whole step."""
    import torch
    from usfkit.models import flows
    from usfkit.models.flows_lightning import FlowModule
    step_breakdown = _load("step_breakdown")
    torch.set_num_threads(1)
    lin, x = torch.nn.Linear(4, 3), torch.randn(5, 4, requires_grad=True)
    with step_breakdown.GemmTimer() as timer:
        lin(x).sum().backward()
    assert timer.calls == 3 and timer.seconds > 0
    flow = flows.USFlow(3, blocks=1, hidden=8, layers=1)
    parts = step_breakdown.bare_step(FlowModule(flow, n_train=32), torch.randn(32, 3), batch_size=8, steps=4)
    assert parts["gemm_calls"] > 0
    assert 0 < parts["gemm_s"] < parts["bare_step_s"] and 0 < parts["optimizer_s"] < parts["bare_step_s"]
