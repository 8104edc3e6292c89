"""The papermill batch runner: chapter discovery, skipping, forcing, failures."""
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from usfkit import reproduce, results

CHAPTERS = ["01_preliminaries", "02_loss_derivation", "03_collapse", "04_alignment"]


def write_notebook(path: Path, chapter: str, fail: bool = False) -> Path:
    """A tiny chapter: a parameters cell, optionally a failing cell, then ``mark_complete``."""
    cells = [
        new_markdown_cell(f"# {chapter}"),
        new_code_cell('profile: str = "quick"  # quick or full', metadata={"tags": ["parameters"]}),
        new_code_cell("from usfkit import results\nprint('running with', profile)"),
    ]
    if fail:
        cells.append(new_code_cell("1 / 0"))
    cells.append(new_code_cell(f"results.mark_complete({chapter!r}, profile)"))
    kernelspec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(new_notebook(cells=cells, metadata={"kernelspec": kernelspec}), path)
    return path


@pytest.fixture
def chapters_dir(tmp_path):
    folder = tmp_path / "chapters"
    folder.mkdir()
    for name in CHAPTERS:
        (folder / f"{name}.ipynb").write_text("{}")
    (folder / "notes.ipynb").write_text("{}")  # not a chapter: no NN_ prefix
    return folder


def test_find_chapters_default_is_every_chapter_in_order(chapters_dir):
    assert [p.stem for p in reproduce.find_chapters([], chapters_dir)] == CHAPTERS


@pytest.mark.parametrize("name", ["04_alignment", "4", "04", "04_alignment.ipynb", "chapters/04_alignment.ipynb"])
def test_find_chapters_by_name_or_number(chapters_dir, name):
    assert reproduce.find_chapters([name], chapters_dir) == [chapters_dir / "04_alignment.ipynb"]


def test_find_chapters_sorted_and_deduplicated(chapters_dir):
    found = reproduce.find_chapters(["3", "01_preliminaries", "03"], chapters_dir)
    assert [p.stem for p in found] == ["01_preliminaries", "03_collapse"]


def test_find_chapters_unknown_chapter_is_a_clear_error(chapters_dir):
    with pytest.raises(ValueError, match=r"unknown chapter '9'.*01_preliminaries, 02_loss_derivation"):
        reproduce.find_chapters(["9"], chapters_dir)
    with pytest.raises(ValueError, match="unknown chapter 'alignment'"):
        reproduce.find_chapters(["alignment"], chapters_dir)


def test_cli_rejects_unknown_chapter(capsys):
    with pytest.raises(SystemExit) as exit_:
        reproduce.main(["99"])
    assert exit_.value.code == 2
    assert "unknown chapter '99'" in capsys.readouterr().err


@pytest.fixture
def results_dir(tmp_path, monkeypatch):
    folder = tmp_path / "results"
    monkeypatch.setenv("USFKIT_RESULTS", str(folder))  # the kernel inherits it
    monkeypatch.delenv("USFKIT_PROFILE", raising=False)
    return folder


def test_run_chapter_executes_skips_and_forces(tmp_path, results_dir):
    src = write_notebook(tmp_path / "src" / "05_tiny.ipynb", "05_tiny")
    out = tmp_path / "executed"
    executed = out / "chapters" / "05_tiny.ipynb"

    first = reproduce.run_chapter(src, out, "quick", progress_bar=False)
    assert first.status == "done", first.error
    assert executed.exists() and results.is_complete("05_tiny", "quick")
    assert (results_dir / "quick" / "05_tiny" / "complete.json").exists()
    nb = nbformat.read(executed, as_version=4)
    assert any("running with quick" in o.get("text", "") for c in nb.cells for o in c.get("outputs", []))

    assert reproduce.run_chapter(src, out, "quick", progress_bar=False).status == "skipped"

    mtime = executed.stat().st_mtime_ns
    forced = reproduce.run_chapter(src, out, "quick", force=True, progress_bar=False)
    assert forced.status == "done", forced.error
    assert executed.stat().st_mtime_ns > mtime


def test_run_chapter_passes_the_profile(tmp_path, results_dir, monkeypatch):
    monkeypatch.setenv("USFKIT_PROFILE", "quick")  # must not override the profile asked for
    src = write_notebook(tmp_path / "src" / "05_tiny.ipynb", "05_tiny")
    outcome = reproduce.run_chapter(src, tmp_path / "executed", "full", progress_bar=False)
    assert outcome.status == "done", outcome.error
    assert results.is_complete("05_tiny", "full") and not results.is_complete("05_tiny", "quick")


def test_run_chapter_reports_a_failing_cell(tmp_path, results_dir):
    src = write_notebook(tmp_path / "src" / "06_broken.ipynb", "06_broken", fail=True)
    out = tmp_path / "executed"
    outcome = reproduce.run_chapter(src, out, "quick", progress_bar=False)
    assert outcome.chapter == "06_broken" and outcome.status == "failed"
    assert "ZeroDivisionError" in outcome.error and "1 / 0" in outcome.error
    assert not results.is_complete("06_broken", "quick")
    # the executed copy keeps the error for inspection, and the book refuses to build from it
    assert reproduce.error_cells(out / "chapters" / "06_broken.ipynb")


def test_main_exits_nonzero_when_a_chapter_fails_but_runs_the_others(tmp_path, results_dir, monkeypatch):
    project = tmp_path / "project"
    (project / "usfkit").mkdir(parents=True)
    (project / "_toc.yml").write_text("format: jb-book\nroot: intro\n")
    write_notebook(project / "chapters" / "01_broken.ipynb", "01_broken", fail=True)
    write_notebook(project / "chapters" / "02_fine.ipynb", "02_fine")
    monkeypatch.chdir(project)
    assert reproduce.main(["--out", str(tmp_path / "executed")]) == 1
    assert results.is_complete("02_fine", "quick") and not results.is_complete("01_broken", "quick")


def test_the_book_does_not_show_papermills_injected_parameters(tmp_path):
    import nbformat

    from usfkit.reproduce import hide_injected_parameters

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("profile = 'quick'", metadata={"tags": ["parameters"]}),
                                         nbformat.v4.new_code_cell("profile = 'full'",
                                                                   metadata={"tags": ["injected-parameters"]})])
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, path)
    assert hide_injected_parameters(path) and not hide_injected_parameters(path)  # once: tagged, then unchanged
    tags = [c.metadata.get("tags", []) for c in nbformat.read(path, as_version=4).cells]
    assert tags == [["parameters"], ["injected-parameters", "remove-cell"]]
