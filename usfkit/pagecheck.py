"""What a reader of the built book has to wade through, counted per chapter page from its HTML.

``python -m usfkit.pagecheck [_build/executed/_build/html]`` prints one row per page and exits 1 when a page
shows any of: a path of the machine that built the book, a download line, a banner or a progress-bar warning,
an error, papermill's injected-parameters cell; more than :data:`LIMITS` allows of progress blocks, prose
printed as program output, or unrounded numbers in tables; or when the maths needs the internet (MathJax
from a CDN).  The book test runs it on the book it builds.
"""
from __future__ import annotations

import html
import re
import sys
from html.parser import HTMLParser
from pathlib import Path

__all__ = ["MACHINE_PATH", "BANNER", "UNROUNDED", "NOISE", "LIMITS", "count", "mathjax_offline", "check", "main"]

MACHINE_PATH = re.compile(r"/tmp/|/root/|/home/|site-packages|/\.venv/")
BANNER = re.compile(r"([!=#*])\1{9,}")
UNROUNDED = re.compile(r"(?<![\w.])-?\d+\.\d{5,}(?![\w.])|(?<![\w.])-?\d\.\d{4,}e[-+]\d+(?![\w.])")
NOISE = ("Downloading", "TqdmWarning", "IProgress not found")
#: The most of each count a page may show (a deliberate precision check may show a few long numbers).
LIMITS = {"progress": 20, "paths": 0, "noise": 0, "prose": 2, "raw": 5, "params": 0, "errors": 0}


class _Outputs(HTMLParser):
    """Collects the text (and table cells) of every ``<div class="output ...">`` of a page."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.blocks: list[dict] = []  # {"kind", "text", "cells"}
        self._depth = 0  # div depth inside the current output block (0: outside)
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag != "div" and not self._depth:
            return
        if tag == "div":
            classes = (dict(attrs).get("class") or "").split()
            if self._depth:
                self._depth += 1
            elif classes[:1] == ["output"] and len(classes) > 1:
                self.blocks.append({"kind": classes[1], "text": "", "cells": []})
                self._depth = 1
        elif tag == "td":
            self._cell = []

    def handle_endtag(self, tag):
        if tag == "div" and self._depth:
            self._depth -= 1
        elif tag == "td" and self._cell is not None and self._depth:
            self.blocks[-1]["cells"].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        if self._depth:
            self.blocks[-1]["text"] += data
            if self._cell is not None:
                self._cell.append(data)


def count(page_html: str) -> tuple[dict[str, int], dict[str, str]]:
    """The counts of one page (keys of :data:`LIMITS`, plus ``outputs``) and an example of each found."""
    parser = _Outputs()
    parser.feed(page_html)
    n = dict.fromkeys(["outputs", *LIMITS], 0)
    seen: dict[str, str] = {}

    def hit(what: str, example: str) -> None:
        n[what] += 1
        seen.setdefault(what, example.strip()[:80])

    for block in parser.blocks:
        n["outputs"] += 1
        text = block["text"]
        if re.search(r"\d+%\|", text) or "it/s]" in text or "s/it]" in text:
            hit("progress", text)
        if MACHINE_PATH.search(text):
            hit("paths", text)
        if any(word in text for word in NOISE) or BANNER.search(text):
            hit("noise", text)
        if block["kind"] == "stream" and len(text) >= 200 and \
                sum(ch.isalpha() or ch == " " for ch in text) / len(text) > 0.75:
            hit("prose", text)
        for cell in block["cells"]:
            if UNROUNDED.search(cell) or cell.startswith(("{'", "[{")):
                hit("raw", cell)
        if block["kind"] == "error":
            hit("errors", text)
    n["params"] = page_html.count("tag_injected-parameters")
    if "Traceback" in page_html or "An Exception was encountered" in page_html:
        n["errors"] = max(n["errors"], 1)
    return n, seen


def mathjax_offline(html_root: Path) -> bool:
    """Whether the book serves MathJax itself (readers offline still see the maths)."""
    intro = (html_root / "intro.html").read_text(errors="ignore") if (html_root / "intro.html").exists() else ""
    sources = re.findall(r'<script[^>]+src="([^"]*mathjax[^"]*)"', intro, flags=re.I)
    return bool(sources) and not any(s.startswith("http") for s in sources)


def check(html_root: Path) -> tuple[dict[str, dict[str, int]], list[str]]:
    """Counts per chapter page of the book built in ``html_root``, and what is over its limit."""
    html_root = Path(html_root)
    if not (html_root / "index.html").exists():
        raise FileNotFoundError(f"no built book in {html_root}: build it with `make book` first")
    table, problems = {}, []
    for page in sorted(html_root.glob("chapters/*.html")):
        n, seen = count(page.read_text(errors="ignore"))
        table[page.name] = n
        problems += [f"{page.name}: {what} {n[what]} (at most {limit})"
                     + (f", e.g. {html.unescape(seen[what])!r}" if what in seen else "")
                     for what, limit in LIMITS.items() if n[what] > limit]
    if not mathjax_offline(html_root):
        problems.append("the maths needs the internet (MathJax not served with the book)")
    return table, problems


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:
        table, problems = check(Path(args[0] if args else "_build/executed/_build/html"))
    except FileNotFoundError as err:
        print(f"usfkit.pagecheck: {err}", file=sys.stderr)
        return 2
    cols = ["outputs", *LIMITS]
    print(f"{'page':34s}" + "".join(f"{c:>9s}" for c in cols))
    for page, n in table.items():
        print(f"{page:34s}" + "".join(f"{n[c]:9d}" for c in cols))
    print("\n".join(["", "to fix:", *problems]) if problems else "\nclean")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
