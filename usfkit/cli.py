"""Console scripts that answer ``--help`` (and refuse a bad argument) at once: their arguments are parsed before
torch, Lightning and the experiments are imported.

``usf-tabular`` is :func:`tabular`; the work itself is :func:`usfkit.experiments.tabular.run_from_args`.
"""
from __future__ import annotations

import argparse

from .profiles import ADBENCH_PROTOCOLS, TABULAR_METHODS


def positive(text: str) -> int:
    """An argparse type: a whole number >= 1 (``--epochs -1`` would train without end, ``0`` not at all)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def tabular_parser() -> argparse.ArgumentParser:
    """``usf-tabular``: run (or resume) the tabular sweep of chapter 05 from a terminal (CPU: one worker process
    per core)::

        usf-tabular --profile full                       # everything, 3 seeds
        usf-tabular --profile full --datasets 4_breastw 29_Pima --methods USFlow OneFlow
        usf-tabular --status                             # what the full sweeps still miss (which datasets), and how long
    """
    p = argparse.ArgumentParser(prog="usf-tabular", description=tabular_parser.__doc__.split("\n")[0].strip("`: "),
                                epilog="\n".join(tabular_parser.__doc__.split("\n")[3:]).strip(),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profile", default="full", choices=["quick", "full"], help="settings (default: full)")
    p.add_argument("--datasets", nargs="+", help="ADBench names or numbers (default: the profile's)")
    p.add_argument("--methods", nargs="+", choices=TABULAR_METHODS, help="default: the profile's")
    p.add_argument("--seed", type=int, help="first seed (default: the profile's; full: 1)")
    p.add_argument("--seeds", type=positive, help="number of seeds from the first (default: the profile's)")
    p.add_argument("--epochs", type=positive, help="maximum epochs (default: the profile's)")
    p.add_argument("--protocol", choices=ADBENCH_PROTOCOLS, help="data protocol (default: the profile's)")
    p.add_argument("--workers", type=positive, default=None,
                   help="runs trained at once, one process with one torch thread each (default: one per CPU core "
                        "without a GPU, 1 with one)")
    p.add_argument("--status", action="store_true",
                   help="print where the full profile's sweeps stand (present, missing, estimated hours) and exit")
    return p


def tabular(argv: list[str] | None = None) -> None:
    """``usf-tabular``: parse, then import the experiment and run it."""
    parser = tabular_parser()
    args = parser.parse_args(argv)
    from .data.checks import DataError
    from .experiments.tabular import run_from_args

    try:
        run_from_args(args)
    except (FileNotFoundError, DataError) as err:  # missing or bad data: say which file, no traceback
        parser.exit(2, f"usf-tabular: {err}\n")
