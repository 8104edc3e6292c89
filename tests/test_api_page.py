"""api.md maps every usfkit module to the chapters that import it: the table must match
the chapters' import statements, and list every top-level module of the package and every
chapter experiment (``usfkit.experiments.*``)."""
import ast
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _is_module(name: str) -> bool:
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def chapter_imports(notebook: Path) -> set[str]:
    """The usfkit modules a notebook imports (``from usfkit.experiments import images`` is
    ``usfkit.experiments.images``, ``from usfkit.image import COUPLINGS`` is ``usfkit.image``)."""
    found = set()
    for cell in json.loads(notebook.read_text())["cells"]:
        if cell["cell_type"] != "code":
            continue
        source = re.sub(r"^(\s*)[%!].*$", r"\1pass", "".join(cell["source"]), flags=re.M)  # IPython magics
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name.split(".")[0] == "usfkit"}
            elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "usfkit":
                found |= {f"{node.module}.{a.name}" if _is_module(f"{node.module}.{a.name}") else node.module
                          for a in node.names}
    return found


def page_rows() -> dict[str, set[str]]:
    """api.md's table: module -> the chapters its row links to."""
    rows = {}
    for line in (ROOT / "api.md").read_text().splitlines():
        match = re.match(r"\|\s*`(usfkit[\w.]*)`\s*\|", line)
        if match:
            rows[match[1]] = set(re.findall(r"<chapters/(\w+)>", line))
    return rows


def test_api_page_lists_what_each_chapter_imports():
    expected: dict[str, set[str]] = {}
    for notebook in sorted((ROOT / "chapters").glob("*.ipynb")):
        for module in chapter_imports(notebook):
            expected.setdefault(module, set()).add(notebook.stem)
    rows = page_rows()
    wrong = {m: f"chapters import it: {sorted(ch)}; api.md says: {sorted(rows.get(m, []))}"
             for m, ch in expected.items() if rows.get(m) != ch}
    wrong |= {m: f"no chapter imports it, api.md links {sorted(ch)}" for m, ch in rows.items()
              if ch and m not in expected}
    assert not wrong, "update api.md's table:\n" + "\n".join(f"{m}: {why}" for m, why in sorted(wrong.items()))


def test_api_page_lists_every_module():
    """Every top-level module and subpackage, and every module of ``usfkit.experiments`` (one per chapter)."""
    package = ROOT / "usfkit"
    names = {p.stem for p in package.glob("*.py")} | {p.parent.name for p in package.glob("*/__init__.py")}
    names |= {f"experiments.{p.stem}" for p in (package / "experiments").glob("*.py")}
    rows = page_rows()
    missing = sorted(f"usfkit.{name}" for name in names - {"__init__", "experiments.__init__"}
                     if f"usfkit.{name}" not in rows)
    assert not missing, f"modules missing from api.md: {missing}"
    assert all(_is_module(m) for m in rows), [m for m in rows if not _is_module(m)]
