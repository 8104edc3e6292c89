"""Progress displays that suit where the code runs.

* In a terminal: tqdm bars (one over a sweep's runs; Lightning draws its own bar per run).
* In a notebook: ONE output per sweep (or per lone training), rewritten in place through an
  IPython display id, so the saved notebook keeps one output in its last state instead of
  one output per refresh.  While a sweep's display is open, each training in it writes
  its epoch line into that display instead of adding an output of its own.

Notebooks never get ``tqdm.auto``/``tqdm.notebook`` (their widget needs ipywidgets and
warns without it).

>>> bar = runs_bar(total=3, desc="runs")      # tqdm in a terminal, RunsDisplay in a notebook
>>> bar.update(); bar.set_postfix_str("1 failed"); bar.close()  # the bar writes to stderr: no output here
"""
from __future__ import annotations

import time
from typing import Callable, Iterable, Iterator

from tqdm import tqdm

__all__ = ["in_notebook", "Line", "MIN_INTERVAL", "RunsDisplay", "runs_bar", "track", "run_display"]


def in_notebook() -> bool:
    """True inside a Jupyter kernel (papermill, nbval, JupyterLab, Colab)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()  # a Jupyter kernel's shell is a ZMQInteractiveShell (Colab's subclasses it)
    return any(cls.__name__ == "ZMQInteractiveShell" for cls in type(shell).__mro__)


def _cell() -> int | None:
    """The number of the notebook cell being run (None outside IPython)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    return getattr(get_ipython(), "execution_count", None)


class Line:
    """One notebook output, rewritten in place: ``line = Line("start"); line("later")``."""

    def __init__(self, text: str = ""):
        from IPython.display import Pretty, display
        self._pretty = Pretty
        self._handle = display(Pretty(text), display_id=True)

    def __call__(self, text: str) -> None:
        self._handle.update(self._pretty(text))


MIN_INTERVAL = 0.5  # seconds between redraws of a sweep display for a training's epoch line
_open_sweep: RunsDisplay | None = None  # the notebook sweep display that trainings report into


class RunsDisplay:
    """A sweep's progress over its runs as one in-place notebook output, with tqdm's
    interface (``update``, ``set_postfix_str``, ``close``).  Trainings started while it is
    open show their epoch line in it (:func:`run_display`); ``close`` leaves a summary."""

    def __init__(self, total: int, desc: str = "runs", initial: int = 0):
        global _open_sweep
        self.total, self.desc, self.initial, self.n = total, desc, initial, initial
        self.postfix, self.run = "", ""
        self.start = self._drawn = time.time()
        self.cell = _cell()
        self.line = Line(self._text())
        _open_sweep = self

    def _text(self) -> str:
        meter = tqdm.format_meter(self.n, self.total, time.time() - self.start, ncols=80, prefix=self.desc,
                                  postfix=self.postfix or None, initial=self.initial)
        return meter + (f"\n  {self.run}" if self.run else "")

    def _draw(self, force: bool = True) -> None:
        if force or time.time() - self._drawn >= MIN_INTERVAL:
            self.line(self._text())
            self._drawn = time.time()

    def run_status(self, text: str) -> None:
        """The current run's line (e.g. its epoch and loss), shown under the bar."""
        self.run = text
        self._draw(force=False)

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        self.postfix = s
        if refresh:
            self._draw()

    def update(self, n: int = 1) -> None:
        self.n, self.run = self.n + n, ""
        self._draw()

    def close(self) -> None:
        global _open_sweep
        if _open_sweep is self:
            _open_sweep = None
        saved = f" ({self.initial} loaded from saved results)" if self.initial else ""
        extra = f"; {self.postfix}" if self.postfix else ""
        wall = tqdm.format_interval(time.time() - self.start)
        self.line(f"{self.desc}: {self.n}/{self.total} done in {wall}{saved}{extra}")


def runs_bar(total: int, desc: str = "runs", initial: int = 0, enabled: bool = True):
    """The progress over a sweep's runs: a :class:`RunsDisplay` in a notebook, a tqdm bar
    elsewhere (disabled when ``enabled`` is false)."""
    if enabled and in_notebook():
        return RunsDisplay(total, desc, initial)
    return tqdm(total=total, desc=desc, initial=initial, disable=not enabled, mininterval=1.0, dynamic_ncols=True)


def track(items: Iterable, desc: str = "runs", enabled: bool = True) -> Iterator:
    """``for item in track(items, "runs"): train(item)``: a loop over a sweep's runs with one
    progress display (:func:`runs_bar`); trainings inside the loop write their epoch line into it."""
    items = list(items)
    bar = runs_bar(len(items), desc, enabled=enabled)
    try:
        for item in items:
            yield item
            bar.update()
    finally:
        bar.close()


def run_display() -> Callable[[str], None]:
    """Where one training in a notebook shows its epoch line: the open sweep's display when
    this cell opened one, otherwise a new in-place output of its own."""
    sweep = _open_sweep
    if sweep is not None and sweep.cell == _cell():  # a sweep that a failed cell left open does not count
        return sweep.run_status
    return Line()
