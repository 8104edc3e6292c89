"""``usf-reproduce``: run the chapters with papermill, then (``--book``) build the book.

Examples::

    usf-reproduce                        # every chapter, quick profile, into _build/executed
    usf-reproduce 4 --profile full       # chapter 04_alignment with the paper's settings
    usf-reproduce --book                 # run what is not complete yet, then build the HTML book
    usf-reproduce --profile full --backend ray --address auto   # every chapter a task on a Ray cluster

A chapter whose results are complete (it called ``usfkit.results.mark_complete`` at
its end) and whose executed copy is in ``--out`` is skipped unless ``--force``.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat
import yaml
from tqdm.auto import tqdm

from usfkit import results

__all__ = ["BOOK_FILES", "CHAPTER_EXTRAS", "Outcome", "find_root", "find_chapters", "executed_ok", "run_chapter",
           "RUN_LAST", "run_chapters", "error_cells", "hide_injected_parameters", "build_book", "main"]

BOOK_FILES = ("_config.yml", "_toc.yml", "intro.md", "hardware.md", "hardware_numbers.md", "api.md", "references.bib")
CHAPTER_EXTRAS = ("*.md", "*.png", "*.svg", "*.jpg")  # non-notebook files in chapters/ the book needs


@dataclass
class Outcome:
    chapter: str
    status: str  # "done", "skipped" or "failed"
    seconds: float = 0.0
    error: str = ""


def find_root() -> Path:
    """The project folder (holding ``_toc.yml`` and ``chapters/``): from the cwd, else from usfkit's location."""
    root = results.project_root()
    if not (root / "chapters").is_dir():
        root = results.project_root(Path(__file__).resolve().parent)
    return root


def find_chapters(names: list[str] | None = None, chapters_dir: Path | None = None) -> list[Path]:
    """The chapter notebooks to run, in order: all ``NN_*.ipynb`` when ``names`` is empty.

    A name is a chapter's stem (``04_alignment``), a file name, or its number (``4``, ``04``).
    """
    chapters_dir = Path(chapters_dir) if chapters_dir else find_root() / "chapters"
    available = sorted(p for p in chapters_dir.glob("[0-9][0-9]_*.ipynb"))
    if not names:
        return available
    chosen = []
    for name in names:
        stem = Path(name).name.removesuffix(".ipynb")
        matches = [p for p in available if p.stem == stem or (stem.isdigit() and int(p.stem[:2]) == int(stem))]
        if not matches:
            known = ", ".join(p.stem for p in available) or f"none (no NN_*.ipynb in {chapters_dir})"
            raise ValueError(f"unknown chapter {name!r}; available chapters: {known}")
        chosen += [p for p in matches if p not in chosen]
    return sorted(chosen)


def executed_ok(path: Path, src: Path | None = None) -> bool:
    """Whether ``path`` is a notebook papermill ran to its end without an exception (after ``src`` changed)."""
    if not path.exists() or (src is not None and src.stat().st_mtime > path.stat().st_mtime):
        return False
    meta = nbformat.read(path, as_version=4).metadata.get("papermill", {})
    return not meta.get("exception")


@contextlib.contextmanager
def _profile_env(profile: str):
    """Make ``USFKIT_PROFILE`` agree with the profile papermill passes (the kernel inherits it)."""
    old = os.environ.get("USFKIT_PROFILE")
    os.environ["USFKIT_PROFILE"] = profile
    try:
        yield
    finally:
        if old is None:
            del os.environ["USFKIT_PROFILE"]
        else:
            os.environ["USFKIT_PROFILE"] = old


def run_chapter(src: Path, out: Path, profile: str = "quick", force: bool = False,
                kernel: str = "python3", progress_bar: bool | dict = True) -> Outcome:
    """Execute one chapter notebook into ``out/chapters/<name>.ipynb`` (cwd: the notebook's folder)."""
    import papermill  # here: `usf-reproduce --help` answers without importing papermill and its kernel machinery
    from papermill.exceptions import PapermillExecutionError, strip_color

    src, chapter = Path(src), Path(src).stem
    target = Path(out) / "chapters" / src.name
    if not force and results.is_complete(chapter, profile) and executed_ok(target, src):
        return Outcome(chapter, "skipped")
    target.parent.mkdir(parents=True, exist_ok=True)
    started = time.time()
    try:
        with _profile_env(profile):
            papermill.execute_notebook(str(src), str(target), parameters={"profile": profile},
                                       cwd=str(src.parent), kernel_name=kernel, progress_bar=progress_bar)
    except PapermillExecutionError as err:
        where = f"cell {err.cell_index} (In [{err.exec_count}])"
        tb = strip_color("\n".join(err.traceback[-3:]))
        return Outcome(chapter, "failed", time.time() - started, f"{where}: {err.ename}: {err.evalue}\n{tb}")
    except Exception as err:  # kernel died, missing kernel, unreadable notebook, ...
        return Outcome(chapter, "failed", time.time() - started, f"{type(err).__name__}: {err}")
    return Outcome(chapter, "done", time.time() - started)


#: Chapters that read the others' results: on Ray they start when every other chapter has finished.
RUN_LAST = ("08_reproduction_report",)


def _chapter_task(src: str, profile: str, force: bool, kernel: str) -> tuple[Outcome, bytes, dict[str, bytes]]:
    """A Ray task: run one chapter into a scratch folder on the node that runs it, and return its outcome,
    the executed notebook and every file of the chapter's results folder, for the driver to write."""
    import tempfile

    chapter = Path(src).stem
    os.chdir(Path(src).parent.parent)  # the project: results/ is found from here, as in usf-reproduce
    with tempfile.TemporaryDirectory() as scratch:
        outcome = run_chapter(Path(src), Path(scratch), profile, force=True, kernel=kernel, progress_bar=False)
        executed = Path(scratch) / "chapters" / Path(src).name
        notebook = executed.read_bytes() if executed.exists() else b""
    folder = results.chapter_dir(chapter, profile)
    files = {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()} \
        if folder.is_dir() else {}
    return outcome, notebook, files


def _write_if_changed(path: Path, data: bytes) -> None:
    """Write ``data`` atomically (temporary file + rename), unless ``path`` already holds exactly it (a
    cluster on this machine, or on shared storage, wrote it already)."""
    if not (path.exists() and path.read_bytes() == data):
        results.write_atomic(path, data)


def run_chapters(chapters: list[Path], out: Path, profile: str = "quick", force: bool = False,
                 kernel: str = "python3", backend: str = "local", address: str | None = None,
                 progress: bool = True):
    """Run ``chapters``, yielding each :class:`Outcome` as it comes.

    ``backend="local"``: one after another in this process's kernels.  ``backend="ray"``: every chapter a Ray
    task (one CPU; chapter 07 one GPU when the cluster has GPUs), all at once, except :data:`RUN_LAST`, which
    run here when the rest have finished (they read the others' results); this process (the driver) writes
    each executed notebook and the chapter's results as its task returns, so the nodes need the project at
    the same path but no shared results folder.  Skipped chapters (results complete, executed copy present) are decided here, before any
    task is submitted."""
    out = Path(out)
    bar = tqdm(total=len(chapters), desc=f"chapters ({profile})", unit="chapter", position=0, disable=not progress)

    def report(outcome: Outcome) -> Outcome:
        if outcome.status == "skipped":
            msg = f"{outcome.chapter}: skipped, results are complete (--force re-runs it)"
        elif outcome.status == "done":
            msg = f"{outcome.chapter}: done in {outcome.seconds:.0f} s"
        else:
            msg = (f"{outcome.chapter}: FAILED after {outcome.seconds:.0f} s, {outcome.error}\n"
                   f"  (the executed copy with the error: {out / 'chapters' / (outcome.chapter + '.ipynb')})")
        if progress:
            tqdm.write(msg)
        bar.update()
        return outcome

    todo = []
    for src in chapters:
        if not force and results.is_complete(src.stem, profile) and executed_ok(out / "chapters" / src.name, src):
            yield report(Outcome(src.stem, "skipped"))
        else:
            todo.append(src)
    remote = [s for s in todo if s.stem not in RUN_LAST] if backend == "ray" else []
    if remote:
        from . import cluster

        ray = cluster.connect(address)
        gpus = ray.cluster_resources().get("GPU", 0)
        task = ray.remote(_chapter_task)
        refs = {task.options(num_cpus=1, num_gpus=1 if gpus and s.stem.startswith("07") else 0,
                             max_retries=cluster.MAX_RETRIES).remote(str(s), profile, force, kernel): s
                for s in remote}
        while refs:
            done, _ = ray.wait(list(refs), num_returns=1)
            src = refs.pop(done[0])
            outcome, notebook, files = ray.get(done[0])
            if notebook:
                _write_if_changed(out / "chapters" / src.name, notebook)
            folder = results.chapter_dir(src.stem, profile)
            for rel, data in files.items():
                _write_if_changed(folder / rel, data)
            yield report(outcome)
    for src in todo:  # the local backend, and the chapters that read the others' results (here, where they are)
        if src not in remote:
            bar.set_postfix_str(src.stem)
            yield report(run_chapter(src, out, profile, True, kernel,
                                     progress_bar={"desc": src.stem, "position": 1, "leave": False} if progress else False))
    bar.close()


def error_cells(path: Path) -> list[int]:
    """Indices of the cells of an executed notebook that hold an error output (not tagged ``raises-exception``).

    With ``execute_notebooks: "off"`` Jupyter Book renders such a cell without a warning, so
    :func:`build_book` refuses to build from a notebook that has one.
    """
    nb = nbformat.read(path, as_version=4)
    return [i for i, cell in enumerate(nb.cells)
            if cell.cell_type == "code" and "raises-exception" not in cell.metadata.get("tags", [])
            and any(o.get("output_type") == "error" for o in cell.get("outputs", []))]


def hide_injected_parameters(path: Path) -> bool:
    """Tag papermill's ``injected-parameters`` cell of an executed notebook ``remove-cell``, so the book does
    not show it under the chapter's own parameters cell (the chapter prints the settings it ran with).
    Returns whether the notebook changed."""
    nb = nbformat.read(path, as_version=4)
    changed = False
    for cell in nb.cells:
        tags = cell.metadata.setdefault("tags", [])
        if "injected-parameters" in tags and "remove-cell" not in tags:
            tags.append("remove-cell")
            changed = True
    if changed:
        nbformat.write(nb, path)
    return changed


def _toc_files(entry) -> list[str]:
    """Every ``file:`` named in a ``_toc.yml`` structure."""
    if isinstance(entry, dict):
        own = [entry["file"]] if "file" in entry else []
        return own + [f for key, value in entry.items() if key != "file" for f in _toc_files(value)]
    if isinstance(entry, list):
        return [f for item in entry for f in _toc_files(item)]
    return []


def build_book(out: Path, root: Path | None = None) -> int:
    """Copy the book's sources next to the executed ``out/chapters`` and run ``jupyter-book build``.

    Returns the exit status of jupyter-book (non-zero also when a page of the toc is missing).
    """
    root, out = Path(root) if root else find_root(), Path(out)
    (out / "chapters").mkdir(parents=True, exist_ok=True)
    for name in BOOK_FILES:
        shutil.copy2(root / name, out / name)
    shutil.copytree(root / "_static", out / "_static", dirs_exist_ok=True)  # the book's CSS (Jupyter Book adds it)
    shutil.copytree(root / "_sphinx", out / "_sphinx", dirs_exist_ok=True)  # the API pages' template and extension
    # api.md's reference pages are written anew by every build: pages left by the last one would count as
    # files outside the toc (only_build_toc_files), which Jupyter Book excludes before they are rewritten
    shutil.rmtree(out / "api", ignore_errors=True)
    for pattern in CHAPTER_EXTRAS:
        for path in (root / "chapters").glob(pattern):
            shutil.copy2(path, out / "chapters" / path.name)
    toc = yaml.safe_load((out / "_toc.yml").read_text())
    pages = [toc["root"], *_toc_files(toc)]
    missing = [f for f in pages if not any((out / (f + s)).exists() for s in ("", ".md", ".ipynb"))]
    if missing:
        print(f"cannot build the book: {', '.join(missing)} missing in {out} "
              "(run usf-reproduce without chapter names first)", file=sys.stderr)
        return 1
    for path in sorted((out / "chapters").glob("*.ipynb")):
        hide_injected_parameters(path)
    broken = {p.name: error_cells(p) for p in sorted((out / "chapters").glob("*.ipynb"))}
    broken = {name: cells for name, cells in broken.items() if cells}
    if broken:
        for name, cells in broken.items():
            print(f"cannot build the book: {out / 'chapters' / name} has errors in cell(s) {cells}", file=sys.stderr)
        return 1
    jb = Path(sys.executable).parent / "jupyter-book"
    cmd = [str(jb)] if jb.exists() else [shutil.which("jupyter-book") or "jupyter-book"]
    cmd += ["build", str(out), "-W", "-n", "--keep-going"]
    print("$", " ".join(cmd), flush=True)
    return subprocess.run(cmd).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="usf-reproduce", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("chapters", nargs="*", help="chapter names or numbers (default: every chapter)")
    parser.add_argument("--profile", choices=["quick", "full"], default="quick", help="settings (default: quick)")
    parser.add_argument("--out", type=Path, default=Path("_build/executed"), help="where executed notebooks go")
    parser.add_argument("--force", action="store_true", help="re-run chapters whose results are complete")
    parser.add_argument("--book", action="store_true", help="then build the book from the executed copies")
    parser.add_argument("--kernel", default="python3", help="Jupyter kernel (default: python3)")
    parser.add_argument("--backend", choices=["local", "ray"], default="local",
                        help="local: chapters one after another here; ray: every chapter a Ray task (default: local)")
    parser.add_argument("--address", help='Ray cluster to join ("auto", "host:port"; default: $RAY_ADDRESS, '
                        "else a new local Ray instance)")
    args = parser.parse_args(argv)

    root = find_root()
    out = args.out if args.out.is_absolute() else Path.cwd() / args.out
    os.chdir(root)  # results live under the project's results/ folder, as in the notebooks
    try:
        chapters = find_chapters(args.chapters, root / "chapters")
    except ValueError as err:
        parser.error(str(err))
    if not chapters:
        parser.error(f"no chapter notebooks (NN_*.ipynb) in {root / 'chapters'}")

    try:  # every chapter saves under results/<profile>/: fail before the first one trains, not at its save
        results.ensure_writable(results.results_root() / args.profile)
    except PermissionError as err:
        parser.error(str(err))
    started = time.time()
    try:
        outcomes = list(run_chapters(chapters, out, args.profile, args.force, args.kernel, args.backend,
                                     args.address))
    except RuntimeError as err:  # e.g. usfkit.cluster.ClusterUnavailable: Ray missing or the cluster unreachable
        parser.exit(2, f"usf-reproduce: {err}\n")

    failed = [o for o in outcomes if o.status == "failed"]
    print(f"executed notebooks: {out / 'chapters'} ({time.time() - started:.0f} s in all)")
    if failed:
        print(f"{len(failed)} chapter(s) failed: {', '.join(o.chapter for o in failed)}"
              + ("; not building the book" if args.book else ""), file=sys.stderr)
        return 1
    if args.book:
        if build_book(out, root) != 0:
            print("jupyter-book build failed", file=sys.stderr)
            return 1
        print(f"book: {out / '_build' / 'html' / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
