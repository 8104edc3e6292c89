"""The chapters' first cell, which makes a chapter run on Google Colab.

Colab opens one notebook, alone: no ``usfkit``, no ``results/full``.  So on Colab (and only there) the first
cell clones the book's repository (shallow), installs it with pip without pinning torch (Colab's own torch
satisfies ``usfkit``'s range and stays), and moves into the clone's ``chapters/`` folder, from which usfkit
finds the committed results (:func:`usfkit.results.project_root`).

The repository's address lives in one place, ``_config.yml``'s ``repository.url``, which also makes the
book's launch buttons.  :func:`cell_source` writes the cell from it, :func:`sync_cells` puts that cell into
every chapter, and a test fails when a chapter's cell and ``_config.yml`` disagree.

>>> print(cell_source("https://github.com/me/book").splitlines()[3])
    REPOSITORY = "https://github.com/me/book"  # _config.yml's repository.url (a test keeps them equal)
"""
from __future__ import annotations

import json
from pathlib import Path

import yaml

__all__ = ["CLONE", "repository_url", "cell_source", "sync_cells"]

CLONE = "usf-book"  # the clone's folder under Colab's working directory


def repository_url(root: Path) -> str:
    """``repository.url`` of the book's ``_config.yml`` in ``root``."""
    config = yaml.safe_load((Path(root) / "_config.yml").read_text())
    try:
        return config["repository"]["url"]
    except (KeyError, TypeError):
        raise KeyError(f"{Path(root) / '_config.yml'} has no repository.url: set it to the book's git "
                       "repository (it makes the launch buttons and the chapters' Colab cell)") from None


def cell_source(url: str) -> str:
    """The first cell of every chapter, for the repository at ``url``."""
    return f'''import sys
if "google.colab" in sys.modules:  # on Colab: clone the book (its committed results come with it) and install it
    import os, subprocess
    REPOSITORY = "{url}"  # _config.yml's repository.url (a test keeps them equal)
    if not os.path.isdir("{CLONE}"):
        subprocess.run(["git", "clone", "-q", "--depth", "1", REPOSITORY, "{CLONE}"], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "./{CLONE}"], check=True)  # keeps Colab's torch
    os.chdir("{CLONE}/chapters")  # usfkit finds the book's results/ from its chapters/ folder'''


def sync_cells(root: Path) -> list[Path]:
    """Write :func:`cell_source` (from ``_config.yml``) as the first code cell of every chapter in ``root``;
    return the notebooks that changed."""
    root = Path(root)
    source, changed = cell_source(repository_url(root)), []
    for path in sorted((root / "chapters").glob("[0-9][0-9]_*.ipynb")):
        nb = json.loads(path.read_text())
        cell = next(c for c in nb["cells"] if c["cell_type"] == "code")
        if "".join(cell["source"]) != source:
            cell["source"] = source.splitlines(keepends=True)
            path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
            changed.append(path)
    return changed


if __name__ == "__main__":  # python -m usfkit.colab: after changing _config.yml's repository.url
    from .results import project_root

    for p in sync_cells(project_root()):
        print(f"updated {p}")
