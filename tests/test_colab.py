"""Colab: one repository address (``_config.yml``), the same first cell in every chapter, and that cell run
with a stand-in ``google.colab`` against a local clone gives a chapter its committed results."""
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from usfkit import colab

ROOT = Path(__file__).resolve().parents[1]


def first_code_cell(path: Path) -> str:
    nb = json.loads(path.read_text())
    return "".join(next(c for c in nb["cells"] if c["cell_type"] == "code")["source"])


def test_every_chapter_installs_from_the_repository_the_launch_buttons_name():
    url = colab.repository_url(ROOT)
    chapters = sorted((ROOT / "chapters").glob("[0-9][0-9]_*.ipynb"))
    assert chapters
    wrong = [p.name for p in chapters if first_code_cell(p) != colab.cell_source(url)]
    assert not wrong, (f"the Colab cell of {wrong} does not install from _config.yml's repository.url {url}: "
                       "run `python -m usfkit.colab`")
    readme = (ROOT / "README.md").read_text()
    assert url.removeprefix("https://github.com/") in readme  # the README's Colab address is the same repository


def test_sync_cells_rewrites_a_chapter_whose_cell_disagrees(tmp_path):
    (tmp_path / "chapters").mkdir()
    (tmp_path / "_config.yml").write_text("repository:\n  url: https://example.org/me/book\n")
    nb = {"cells": [{"cell_type": "markdown", "metadata": {}, "source": ["# t"]},
                    {"cell_type": "code", "metadata": {}, "source": ["old"], "outputs": [], "execution_count": None}],
          "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    path = tmp_path / "chapters" / "01_x.ipynb"
    path.write_text(json.dumps(nb))
    assert colab.sync_cells(tmp_path) == [path]
    assert 'REPOSITORY = "https://example.org/me/book"' in first_code_cell(path)
    assert colab.sync_cells(tmp_path) == []  # in agreement now
    (tmp_path / "_config.yml").write_text("title: x\n")
    with pytest.raises(KeyError, match="repository.url"):
        colab.repository_url(tmp_path)


def test_colab_cells_clone_install_and_find_the_committed_results(tmp_path):
    """Chapter 01's first cells as Colab runs them: a stand-in ``google.colab`` module, the repository's
    address rewritten by git to a local clone of this one, pip's install recorded instead of run (this
    environment has usfkit already); the chapter must then read its committed full-profile results."""
    if not (ROOT / "results" / "full" / "01_preliminaries" / "figure1_moons.json").exists():
        pytest.skip("chapter 01's full results are not committed in this checkout")
    url = colab.repository_url(ROOT)
    fake = tmp_path / "fake"
    (fake / "google" / "colab").mkdir(parents=True)
    (fake / "google" / "__init__.py").write_text("")
    (fake / "google" / "colab" / "__init__.py").write_text("")
    cells = json.loads((ROOT / "chapters" / "01_preliminaries.ipynb").read_text())["cells"]
    code = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"][1:3]  # parameters, start
    code = [colab.cell_source(url), *code]  # the Colab cell every chapter holds (the first test checks that)
    script = textwrap.dedent("""
        import json, subprocess, sys
        import google.colab  # the stand-in
        real, installs = subprocess.run, []
        def run(cmd, *args, **kwargs):
            if cmd[1:4] == ["-m", "pip", "install"]:
                installs.append(cmd)
                return subprocess.CompletedProcess(cmd, 0)
            return real(cmd, *args, **kwargs)
        subprocess.run = run
        cells = json.loads(sys.argv[1])
        for cell in cells:
            exec(cell)
        import os
        from usfkit import results
        print(json.dumps({"cwd": os.getcwd(), "results": str(results.results_root()), "installs": installs,
                          "full": chapter.full_results("figure1_moons") is not None}))
    """)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": str(fake),
           "GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": f"url.file://{ROOT}.insteadOf", "GIT_CONFIG_VALUE_0": url,
           "GIT_CONFIG_NOSYSTEM": "1", "MPLBACKEND": "Agg"}
    run = subprocess.run([sys.executable, "-c", script, json.dumps(code)], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    clone = tmp_path / colab.CLONE
    assert (clone / ".git" / "shallow").exists()  # a shallow clone
    assert Path(out["cwd"]) == clone / "chapters" and Path(out["results"]) == clone / "results"
    assert out["full"], "the clone's committed results were not found"
    assert out["installs"] == [[sys.executable, "-m", "pip", "install", "-q", f"./{colab.CLONE}"]]  # no torch pin
