"""Console scripts that answer ``--help`` (and refuse a bad argument) at once: their arguments are parsed before
torch, Lightning and the experiments are imported.

``usf-tabular`` is :func:`tabular` (the work: :func:`usfkit.experiments.tabular.run_from_args`); ``usf-images``
is :func:`images` (:func:`usfkit.experiments.images.run_from_args`, :mod:`usfkit.experiments.dryrun`).  Both take
``--backend local|ray`` and ``--address`` (:func:`usfkit.sweep.run_sweep`), and print a one-line error for a
data fault, a missing file, an unreachable cluster or a bad setting (``--debug`` shows the traceback).
"""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

from .models import HEADS, METHODS
from .profiles import ADBENCH_PROTOCOLS

__all__ = ["IMAGE_DATASETS", "IMAGE_COUPLINGS", "positive", "add_backend_arguments", "tabular_parser",
           "images_parser", "tabular", "images"]

IMAGE_DATASETS = ("mvtec", "visa")
IMAGE_COUPLINGS = ("affine", "additive", "additive_lu")


def positive(text: str) -> int:
    """An argparse type: a whole number >= 1 (``--epochs -1`` would train without end, ``0`` not at all)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _parser(prog: str, doc: str) -> argparse.ArgumentParser:
    """A parser whose description is the first line of ``doc`` and whose epilog is its examples."""
    lines = doc.split("\n")
    return argparse.ArgumentParser(prog=prog, description=lines[0].strip("`: "),
                                   epilog="\n".join(lines[3:]).strip(),
                                   formatter_class=argparse.RawDescriptionHelpFormatter)


def add_backend_arguments(p: argparse.ArgumentParser) -> None:
    """``--backend``, ``--address`` and ``--debug``, shared by the console scripts."""
    p.add_argument("--backend", choices=["local", "ray"], default="local",
                   help='local: processes on this machine (default); ray: every run a Ray task (pip install '
                        '"usfkit[cluster]")')
    p.add_argument("--address", help='with --backend ray: the cluster to join ("auto", "host:port"; default: '
                                     "$RAY_ADDRESS, else a new Ray instance on this machine)")
    p.add_argument("--debug", action="store_true", help="show the traceback of an error, not one line")


def tabular_parser() -> argparse.ArgumentParser:
    """``usf-tabular``: run (or resume) the tabular sweep of chapter 05 from a terminal (CPU: one worker process
    per core; on a Ray cluster: every run a task)::

        usf-tabular --profile full                       # everything, 3 seeds
        usf-tabular --profile full --datasets 4_breastw 29_Pima --methods USFlow OneFlow
        usf-tabular --profile full --backend ray --address auto   # on a running Ray cluster
        usf-tabular --status                             # what the full sweeps still miss (which datasets), and how long
    """
    p = _parser("usf-tabular", tabular_parser.__doc__)
    p.add_argument("--profile", default="full", choices=["quick", "full"], help="settings (default: full)")
    p.add_argument("--datasets", nargs="+", help="ADBench names or numbers (default: the profile's)")
    p.add_argument("--methods", nargs="+", choices=list(METHODS), help="default: the profile's")
    p.add_argument("--seed", type=int, help="first seed (default: the profile's; full: 1)")
    p.add_argument("--seeds", type=positive, help="number of seeds from the first (default: the profile's)")
    p.add_argument("--epochs", type=positive, help="maximum epochs (default: the profile's)")
    p.add_argument("--protocol", choices=ADBENCH_PROTOCOLS, help="data protocol (default: the profile's)")
    p.add_argument("--workers", type=positive, default=None,
                   help="local backend: runs trained at once, one process with one torch thread each (default: one "
                        "per CPU core without a GPU, 1 with one)")
    p.add_argument("--status", action="store_true",
                   help="print where the full profile's sweeps stand (present, missing, estimated hours) and exit")
    add_backend_arguments(p)
    return p


def images_parser() -> argparse.ArgumentParser:
    """``usf-images``: the image benchmark of paper §5.2 (chapter 07) from a terminal: run or resume its sweep
    on a GPU box or a Ray cluster, say what is missing, dry-run it at the paper's sizes, estimate its GPU-hours::

        usf-images --status                              # which runs of the full profile exist, which are missing
        usf-images --plan --gpu A100                     # GPU-hours of §5.2, per table, from the committed dry run
        usf-images --dry-run                             # every configuration at the paper's sizes, random weights, CPU
        usf-images --profile full                        # the sweep on this machine's GPU(s)
        usf-images --profile full --backend ray --address auto --weights /shared/imagenet-weights
    """
    p = _parser("usf-images", images_parser.__doc__)
    p.add_argument("--profile", default="full", choices=["quick", "full"], help="settings (default: full)")
    p.add_argument("--datasets", nargs="+", choices=IMAGE_DATASETS, help="default: the profile's")
    p.add_argument("--classes", nargs="+", help="only these classes (default: every class found)")
    p.add_argument("--archs", nargs="+", choices=list(HEADS), help="default: the profile's")
    p.add_argument("--couplings", nargs="+", choices=IMAGE_COUPLINGS, help="default: the profile's")
    p.add_argument("--seeds", nargs="+", type=int, help="default: the profile's (full: 0 1 2)")
    p.add_argument("--epochs", type=positive, help="maximum epochs (default: the profile's)")
    p.add_argument("--devices", type=positive, default=1, help="GPUs per run (Lightning devices; default 1)")
    p.add_argument("--allow-cpu", action="store_true", help="train the full profile even without a GPU (slow)")
    p.add_argument("--weights", metavar="DIR",
                   help="ImageNet weights from this folder (torchvision checkpoints, a Hugging Face hub cache for "
                        "timm), checked against their published SHA-256; default: the libraries' download")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--status", action="store_true", help="print which runs of the profile exist and exit")
    what.add_argument("--plan", action="store_true", help="print the GPU-hours of §5.2 from the dry run and exit")
    what.add_argument("--dry-run", action="store_true",
                      help="build every configuration at the paper's sizes with random weights, run one training "
                           "step and one evaluation batch here, record parameters, FLOPs and memory, and exit")
    p.add_argument("--gpu", help="with --plan: one GPU model (default: every GPU the plan knows)")
    add_backend_arguments(p)
    return p


def _main(parser: argparse.ArgumentParser, argv: list[str] | None, work: Callable[[argparse.Namespace], None],
          before: Callable[[argparse.Namespace], None] | None = None) -> None:
    """Parse, then run ``work(args)``; a data fault, a missing file, a bad setting or an unreachable cluster
    is one line on stderr and exit status 2 (the traceback with ``--debug``)."""
    args = parser.parse_args(argv)
    if before:
        before(args)
    from .cluster import ClusterUnavailable  # light: Ray itself is imported only when a sweep asks for it

    try:
        work(args)
    except Exception as err:
        checks = sys.modules.get("usfkit.data.checks")  # a DataError exists only once the data code is imported
        expected = (FileNotFoundError, NotADirectoryError, PermissionError, ClusterUnavailable, KeyError, ValueError,
                    RuntimeError) + ((checks.DataError,) if checks else ())
        if args.debug or not isinstance(err, expected):
            raise
        text = err.args[0] if isinstance(err, KeyError) and err.args else err
        parser.exit(2, f"{parser.prog}: {text}\n  (--debug shows the traceback)\n")


def tabular(argv: list[str] | None = None) -> None:
    """``usf-tabular``: parse, then import the experiment and run it."""
    def work(args):
        from .experiments.tabular import run_from_args
        run_from_args(args)
    _main(tabular_parser(), argv, work)


def images(argv: list[str] | None = None) -> None:
    """``usf-images``: parse, then dry-run, plan, report the status of, or run the §5.2 sweep."""
    def weights(args):
        if args.weights:  # an environment variable, so that Ray workers and notebook kernels see it too
            os.environ["USFKIT_WEIGHTS"] = os.path.abspath(args.weights)

    def work(args):
        if args.plan:  # JSON and pandas only: answers without importing torch
            from . import gpuplan
            print(gpuplan.plan_text(gpu=args.gpu))
        elif args.dry_run:
            from . import gpuplan
            from .experiments import dryrun
            dry = dryrun.run_dry_run(archs=args.archs, couplings=args.couplings, progress=True)
            print(gpuplan.dry_run_table(dry).to_string())
        else:
            from .experiments.images import run_from_args
            run_from_args(args)
    _main(images_parser(), argv, work, before=weights)
