"""usfkit.book: the frame every chapter shares (settings, threads, provenance, full results, completion)."""
import json
import re
from pathlib import Path

import pandas as pd
import pytest
import torch

from usfkit import book, results, sweep

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def results_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("USFKIT_RESULTS", str(tmp_path))
    monkeypatch.delenv("USFKIT_PROFILE", raising=False)
    return tmp_path


@pytest.fixture
def cpu_threads(monkeypatch):
    """Pretend to run on a CPU with two torch threads; restore the thread count afterwards."""
    before = torch.get_num_threads()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def test_start_resolves_settings_with_overrides_and_prints_them(results_dir, capsys):
    chapter = book.start("04_alignment", "quick", epochs=3, search_runs=None)
    assert (chapter.cfg.profile, chapter.cfg.epochs, chapter.cfg.search_runs) == ("quick", 3, 1)
    assert chapter.name == "04_alignment"
    out = capsys.readouterr().out
    assert "04_alignment, profile quick" in out and "epochs=3" in out
    with pytest.raises(TypeError):
        book.start("04_alignment", "quick", no_such_setting=1)


def test_thread_policy(results_dir, cpu_threads):
    book.start("01_preliminaries", "quick")  # no `threads` setting: one thread on a CPU
    assert torch.get_num_threads() == 1
    torch.set_num_threads(2)
    book.start("07_image_benchmarks", "full")  # threads=None: torch's default stays
    assert torch.get_num_threads() == 2
    book.start("07_image_benchmarks", "quick")  # threads=1
    assert torch.get_num_threads() == 1


def test_save_with_provenance_then_finish(results_dir, capsys):
    chapter = book.start("02_loss_derivation", "quick", seed=5)
    chapter.started -= 2.0  # the chapter has been running for two seconds
    table = chapter.save("check", {"x": torch.tensor([1.5, 2.5])}, seeds=[chapter.cfg.seed])
    saved = json.loads((results_dir / "quick" / "02_loss_derivation" / "check.json").read_text())
    assert saved["data"] == {"x": [1.5, 2.5]}
    assert saved["provenance"]["seeds"] == [5] and saved["provenance"]["wall_time_s"] >= 2.0
    assert table.columns.tolist() == ["this run"] and table.loc["seeds", "this run"] == [5]
    assert not results.is_complete("02_loss_derivation", "quick")
    chapter.finish()
    assert results.is_complete("02_loss_derivation", "quick")
    done = results.load("02_loss_derivation", "complete", "quick")["provenance"]
    assert done["seeds"] == [5] and done["wall_time_s"] >= 2.0
    assert int(re.search(r"chapter finished in (\d+) s", capsys.readouterr().out)[1]) >= 2


def test_full_results_absent_then_present(results_dir, capsys):
    chapter = book.start("06_vae_usflow", "quick")
    assert chapter.full_results("summary") is None and chapter.full_results() is None
    out = capsys.readouterr().out
    assert out.count("No full-profile results of this chapter are committed yet") == 1  # no run records
    assert "The full-profile summary of this chapter is not committed yet" in out  # runs may exist, the summary not
    assert out.count("usf-reproduce 06_vae_usflow --profile full") == 2

    results.save("06_vae_usflow", "summary", {"auroc": 0.9}, "full", seeds=[0, 1, 2], started=0.0)
    record = results.RunRecord(ok=True, metrics={"auroc": 0.8}, chapter="06_vae_usflow", key="a", spec={"seed": 0})
    folder = sweep.runs_dir("06_vae_usflow", "full")
    folder.mkdir(parents=True)
    (folder / "a.json").write_text(record.to_json())
    capsys.readouterr()
    assert chapter.full_results("summary")["data"] == {"auroc": 0.9}
    assert [r.metrics for r in chapter.full_results()] == [{"auroc": 0.8}]
    out = capsys.readouterr().out
    assert "Committed full-profile results (" in out and "Committed full-profile results: 1 runs, 0 failed" in out

    full_run = book.start("06_vae_usflow", "full")  # a full run does not show itself as committed results
    capsys.readouterr()
    assert full_run.full_results("summary") is None
    assert "This run is the full profile" in capsys.readouterr().out


def test_chapters_open_with_one_colab_cell_then_parameters_then_start():
    """Every chapter: title, the same Colab cell, the literal parameters cell, then book.start."""
    colab = set()
    for path in sorted((ROOT / "chapters").glob("0[1-7]_*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        colab.add(("".join(cells[1]["source"]), json.dumps(cells[1]["metadata"], sort_keys=True)))
        assert cells[1]["metadata"].get("tags") == ["remove-cell"], path.name
        assert cells[2]["metadata"].get("tags") == ["parameters"], path.name
        assert f'book.start("{path.stem}", profile' in "".join(cells[3]["source"]), path.name
    assert len(colab) == 1, "the chapters' Colab cells differ"


def test_papermill_infers_every_parameter_of_every_chapter():
    """``papermill --help-notebook`` and batch runs read the parameters cell with papermill's own parser, which
    gives up on a line it cannot parse (a help comment holding ' = ' was one): every assignment must come through."""
    import ast

    import papermill

    for path in sorted((ROOT / "chapters").glob("0[1-8]_*.ipynb")):
        cell = next(c for c in json.loads(path.read_text())["cells"] if "parameters" in c["metadata"].get("tags", []))
        names = [n.target.id for n in ast.parse("".join(cell["source"])).body if isinstance(n, ast.AnnAssign)]
        assert "profile" in names, path.name
        assert list(papermill.inspect_notebook(str(path))) == names, path.name


def test_full_runs_says_which_runs_are_present_and_which_missing(results_dir, capsys):
    from usfkit.results import RunResult

    settings = {"epochs": 200}
    specs = [{"dataset": d, "method": m, "seed": s} for s in (1, 2) for m in ("A", "B") for d in ("x", "y", "z")]
    have = [s for s in specs if s["seed"] == 1 and not (s["method"] == "B" and s["dataset"] == "z")]
    sweep.run_sweep("05_tabular_benchmark", "full", have,
                    lambda s: RunResult(ok=s["dataset"] != "y" or s["method"] != "A", failure="nan loss",
                                        metrics={"auroc": 0.5},
                                        info={"status": "diverged" if s["dataset"] == "x" else "ok"}),
                    settings=settings, progress=False)
    chapter = book.Chapter(cfg=__import__("usfkit").profiles.of("05_tabular_benchmark", "quick"))
    found = chapter.full_runs(specs, settings)
    out = " ".join(capsys.readouterr().out.split())  # the lines are wrapped to the book's column
    assert [r.spec for r in found] == have
    assert "5 of 12 present, 1 of them failed" in out
    assert "Outcomes: 2 diverged, 3 ok." in out  # a measured outcome (a diverged flow) is not a failed run
    assert "method B x seed 1: dataset z (1)" in out and "method A/B x seed 2: dataset x, y, z (3)" in out
    assert chapter.full_runs(specs, {"epochs": 3}) == []  # other settings: other runs, none of them present
    assert "0 of 12 present" in capsys.readouterr().out


def test_describe_specs_lists_long_groups_briefly():
    specs = [{"class": f"c{i}", "seed": 0} for i in range(9)]
    assert book.describe_specs(specs, limit=3) == "seed 0: class c0, c1, c2, ... 6 more (9)"
    assert book.describe_specs([]) == "none"
    # combinations that are not a full grid are listed one by one, not merged into a grid they are not
    odd = [{"d": "x", "m": "A", "s": 1}, {"d": "x", "m": "B", "s": 2}]
    assert book.describe_specs(odd) == "m A, s 1: d x (1); m B, s 2: d x (1)"


def test_expect_prints_each_outcome_and_stops_only_the_quick_profile(capsys):
    book.expect({"a holds": True, "b holds": False}, "full")  # a result at the full profile, not an error
    out = capsys.readouterr().out
    assert "holds: a holds" in out and "does NOT hold: b holds" in out
    book.expect({"a holds": True}, "quick")
    with pytest.raises(AssertionError, match="no longer shows: b holds"):
        book.expect({"a holds": True, "b holds": False}, "quick")


def test_compact_prints_the_columns_that_never_change_and_drops_them(capsys):
    table = pd.DataFrame({"dataset": ["MVTec AD"] * 2, "coupling": ["affine", "additive"], "AUROC": [94.1, 84.8]})
    narrow = book.compact(table)
    assert list(narrow.columns) == ["coupling", "AUROC"]
    assert "same in every row: dataset MVTec AD" in capsys.readouterr().out
    assert list(book.compact(table.iloc[:1]).columns) == list(table.columns)  # one row: nothing is "the same"
