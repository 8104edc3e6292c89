"""Saving and loading results with provenance, and the one record every training run writes.

Layout: ``<results root>/<profile>/<chapter>/<name>.json``.  The root is
``$USFKIT_RESULTS`` or ``results/`` in the project (the folder holding
``_toc.yml``), found from the working directory upwards.  ``results/full`` is
committed; ``results/quick`` is not.

Conventions, stated once for every chapter and table:

* metrics are stored as fractions (an AUC-ROC of 0.91, not 91); tables show percent;
* a standard deviation over seeds (and over datasets or classes) is the sample standard
  deviation, ``ddof = STD_DDOF = 1``, as ``pandas`` computes it (with one value it is
  undefined and shown as NaN);
* a run *fails* when the model fails (its loss or its scores become NaN/inf); a fault in
  the data raises :class:`usfkit.data.checks.DataError` instead and is never a failed run.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import subprocess
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import sys

import numpy as np

__all__ = ["COMPLETE", "STD_DDOF", "project_root", "results_root", "chapter_dir", "ensure_writable", "git_commit",
           "device_description", "provenance", "write_atomic", "save", "load", "mark_complete", "is_complete",
           "RunResult", "RunRecord"]

COMPLETE = "complete.json"
STD_DDOF = 1  # sample standard deviation, everywhere (see the module docstring)


def project_root(start: Path | None = None) -> Path:
    """The folder holding ``_toc.yml`` (the book's root), searched upwards; else the cwd."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "_toc.yml").exists() and (folder / "usfkit").is_dir():
            return folder
    return here


def results_root() -> Path:
    env = os.environ.get("USFKIT_RESULTS")
    return Path(env) if env else project_root() / "results"


def chapter_dir(chapter: str, profile: str) -> Path:
    return results_root() / profile / chapter


def ensure_writable(folder: Path) -> Path:
    """Create ``folder`` if needed and check that a file can be written in it, before any work whose results
    would go there (a sweep, a chapter): an error that names the folder now rather than a trained run lost at
    its save.  Writes and removes a probe file (permission bits alone do not tell, e.g. for root)."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise PermissionError(f"cannot write results to {folder} ({type(err).__name__}: {err}); make it writable "
                              "or point $USFKIT_RESULTS at a folder that is") from err
    return folder


def git_commit() -> str:
    """The commit the code ran at (``+dirty`` when the tree had changes), or ``unknown``."""
    root = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        if sha.returncode != 0:
            return "unknown"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return sha.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def device_description() -> str:
    """``cuda: <GPU name>``, or ``cpu: <model name>, <n> logical cores``."""
    import torch  # here, not at the top: console scripts read records without importing torch

    if torch.cuda.is_available():
        return f"cuda: {torch.cuda.get_device_name(0)}"
    cpu = platform.processor() or platform.machine()
    try:  # the model name says more than "x86_64"
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"cpu: {cpu}, {os.cpu_count()} logical cores"


def provenance(profile: str, seeds: list[int] | int | None = None, started: float | None = None,
               cpu_time_s: float | None = None, started_commit: str | None = None) -> dict[str, Any]:
    """Where a result came from: profile, seeds, device, wall time, versions, git commit.
    ``cpu_time_s`` (run records): the CPU seconds the run's process used, all its threads; with one
    thread, a wall time well above it means the run shared its core with other work.
    ``started_commit``: the commit the code was at when the run started; kept (as
    ``git_commit_started``) only when it differs from the commit at the end (``git_commit``)."""
    seeds = [seeds] if isinstance(seeds, int) else seeds
    out = {
        "profile": profile,
        "seeds": list(seeds) if seeds is not None else None,
        "device": device_description(),
        "wall_time_s": round(time.time() - started, 2) if started is not None else None,
        "git_commit": git_commit(),
        "torch": __import__("torch").__version__,
        "python": platform.python_version(),
        "finished_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    if cpu_time_s is not None:
        out["cpu_time_s"] = round(cpu_time_s, 2)
    if started_commit is not None and started_commit != out["git_commit"]:
        out["git_commit_started"] = started_commit
    return out


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    torch = sys.modules.get("torch")  # a tensor can only exist when torch is imported
    if torch is not None and isinstance(obj, torch.Tensor):
        return obj.detach().cpu().tolist()
    if isinstance(obj, float) and not np.isfinite(obj):
        return str(obj)
    return obj


def write_atomic(path: Path, data: str | bytes) -> Path:
    """Write ``data`` to ``path`` so that no reader ever sees half of it and a killed writer leaves no partial
    file: into a temporary file beside ``path``, unique to this process and thread (so concurrent writers of one
    path never share it), then renamed onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    try:
        tmp.write_bytes(data.encode() if isinstance(data, str) else data)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def save(chapter: str, name: str, data: dict[str, Any], profile: str, seeds=None, started=None) -> Path:
    """Write ``data`` plus provenance to ``<root>/<profile>/<chapter>/<name>.json`` (atomically)."""
    payload = {"data": _jsonable(data), "provenance": provenance(profile, seeds, started)}
    return write_atomic(chapter_dir(chapter, profile) / f"{name}.json", json.dumps(payload, indent=1))


def load(chapter: str, name: str, profile: str) -> dict[str, Any] | None:
    """The saved ``{"data", "provenance"}`` record, or ``None`` when there is none."""
    path = chapter_dir(chapter, profile) / f"{name}.json"
    if not path.exists():
        return None
    return json.loads(path.read_text())


def mark_complete(chapter: str, profile: str, seeds=None, started=None) -> Path:
    """Record that a chapter ran to its end in this profile (``usf-reproduce`` skips it next time)."""
    return save(chapter, COMPLETE[:-5], {"chapter": chapter}, profile, seeds, started)


def is_complete(chapter: str, profile: str) -> bool:
    return (chapter_dir(chapter, profile) / COMPLETE).exists()


# --------------------------------------------------------------------------
# The run record
# --------------------------------------------------------------------------
@dataclass
class RunResult:
    """What one training run returns to the sweep.

    ``metrics``: the run's measurements, fractions for AUC-ROCs (``None`` when the run failed);
    ``epochs_allowed``/``epochs_run``: the epoch budget and the epochs actually trained (early
    stopping ends runs before the budget); ``info``: descriptive values that are not metrics
    (sizes, dimensions, a loss history).  ``rerun``: set only on a saved record that was trained
    again later (e.g. to measure what the first run did not): the rerun's metrics, provenance and
    whether it reproduced the record's metrics; both values are kept."""
    ok: bool
    failure: str | None = None
    metrics: dict[str, float | None] = field(default_factory=dict)
    epochs_allowed: int | None = None
    epochs_run: int | None = None
    train_time_s: float | None = None
    info: dict[str, Any] = field(default_factory=dict)
    rerun: dict[str, Any] | None = None

    def __post_init__(self):
        if not self.ok and not self.failure:
            raise ValueError("a failed run must say why (failure=...)")
        for name, value in self.metrics.items():
            if value is not None and "auroc" in name and not 0.0 <= value <= 1.0:
                raise ValueError(f"metric {name}={value} is not a fraction in [0, 1]: store AUC-ROCs as fractions")

    @classmethod
    def from_fit(cls, fit, epochs_allowed: int, **kwargs) -> "RunResult":
        """A result from a :class:`usfkit.train.FitResult` (ok, failure, epochs, wall time); ``info``
        also says whether the loss was compiled (``torch.compile``: the same maths, faster)."""
        out = cls(ok=fit.ok, failure=fit.failure, epochs_allowed=epochs_allowed, epochs_run=fit.epochs,
                  train_time_s=round(fit.wall_time_s, 3), **kwargs)
        out.info.setdefault("compiled", bool(getattr(fit, "compiled", False)))
        return out

    def fail(self, reason: str) -> "RunResult":
        """This result turned into a failed run (e.g. scores that are not finite)."""
        self.ok, self.failure = False, reason
        self.metrics = {k: None for k in self.metrics}
        return self


@dataclass
class RunRecord(RunResult):
    """A :class:`RunResult` with what identifies it: the chapter, the run's coordinates
    (``spec``: dataset, method, seed, ...), every setting that changes its result
    (``settings``), its file ``key`` (a hash of spec and settings) and its provenance."""
    chapter: str = ""
    key: str = ""
    spec: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(_jsonable(asdict(self)), indent=1)

    @classmethod
    def from_file(cls, path: Path) -> "RunRecord":
        try:
            return cls(**json.loads(Path(path).read_text()))
        except (TypeError, ValueError) as err:
            raise ValueError(f"{path} is not a run record of this usfkit version ({err}); "
                             "delete it (or its folder) and rerun the sweep") from err

    def row(self) -> dict[str, Any]:
        """One flat table row: spec, outcome, metrics and info side by side."""
        return {**self.settings, **self.spec, "ok": self.ok, "failure": self.failure, **self.metrics,
                "epochs_allowed": self.epochs_allowed, "epochs_run": self.epochs_run,
                "train_time_s": self.train_time_s, **self.info}
