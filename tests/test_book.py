"""The whole book builds: every chapter runs (quick profile) and jupyter-book passes with -W -n."""
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from usfkit import pagecheck
from usfkit.reproduce import _toc_files

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.book
def test_book_builds(tmp_path):
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    chapters = [f for f in _toc_files(toc) if f.startswith("chapters/")]
    missing = [f for f in chapters if not (ROOT / f"{f}.ipynb").exists() and not (ROOT / f"{f}.md").exists()]
    assert not missing, f"_toc.yml lists chapters that do not exist: {missing}"

    out = tmp_path / "executed"
    cmd = [sys.executable, "-m", "usfkit.reproduce", "--book", "--profile", "quick", "--out", str(out)]
    run = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, f"usf-reproduce --book failed:\n{run.stdout[-5000:]}\n{run.stderr[-5000:]}"

    html = out / "_build" / "html"
    assert (html / "index.html").exists() and (html / "intro.html").exists()
    for chapter in chapters:
        assert (html / f"{chapter}.html").exists(), f"no page for {chapter}"
    assert "_static/usf.css" in (html / "chapters" / "05_tabular_benchmark.html").read_text()  # printed output wraps

    # what a reader sees: no machine path, download line, banner, error or injected-parameters cell on any page,
    # few unrounded numbers or prose printed as output (usfkit.pagecheck; and the project's own checker when
    # this checkout sits beside it)
    counts, problems = pagecheck.check(html)
    assert not problems, "the built book shows what a reader should not wade through:\n" + "\n".join(problems)
    shared = ROOT.parent / "shared" / "tools" / "check-built-book"
    if shared.exists():
        run = subprocess.run([sys.executable, str(shared), str(html)], capture_output=True, text=True)
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
