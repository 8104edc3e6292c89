"""Training with Lightning, for every model of the book: :class:`TrainModule`, the base of each model's
Lightning module (which sits beside its model in :mod:`usfkit.models`), and :func:`fit`, which wraps the
trainer the way every chapter needs.  This module knows no model.

* early stopping on a monitored loss (``patience`` epochs without an improvement
  larger than ``min_delta``; the paper's tabular rule is 5 and 1e-4 on the
  training loss, App. C selects by validation loss) and restoring the best weights;
* one progress display per run: an epoch-level line that updates in place in a
  notebook (inside a sweep's display when a sweep runs it), Lightning's own bar in a
  terminal;
* a NaN/inf loss ends the run (at the end of that epoch) and comes back as a failed :class:`FitResult`
  with a message saying what to do, instead of an exception that kills a sweep;
* no host synchronisation inside a training step (no ``.item()``, ``bool(tensor)``, per-step
  ``self.log``): on a GPU the host queues steps without waiting for them (tests/test_host_sync.py).
"""
from __future__ import annotations

import contextlib
import copy
import functools
import logging
import math
import os
import time
import warnings
from dataclasses import dataclass, field

import torch

with warnings.catch_warnings():  # some torch/lightning pairs warn about LeafSpec on import: silenced here only
    warnings.filterwarnings("ignore", message=".*treespec, LeafSpec.*")
    import lightning as L
    from lightning.pytorch.callbacks import Callback, EarlyStopping, TQDMProgressBar
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, TensorDataset
from tqdm import tqdm

from .data.checks import check_finite_input
from .progress import in_notebook, run_display

__all__ = ["TrainModule", "fit", "FitResult", "Diverged", "adam", "loader", "Rows", "DivergenceGuard", "History",
           "EpochBar", "COMPILE_MIN_STEPS", "can_compile", "use_compile", "compiled_loss"]

#: Lightning's messages that say nothing about a run of this book (small in-memory data sets, CPU runs),
#: and a deprecation that torch's own compiler (inductor) raises while it compiles a loss.
_NOISE = (".*treespec, LeafSpec.*", ".*does not have many workers.*", ".*GPU available but not used.*",
          ".*is smaller than the logging interval.*", ".*but have no `val_dataloader`.*",
          ".*torch._prims_common.check.*is deprecated.*")


@contextlib.contextmanager
def _quiet_lightning():
    """Lightning's info logs and the warnings in :data:`_NOISE`, silenced for one ``fit`` only:
    importing usfkit changes no global warning filter or logger."""
    loggers = [logging.getLogger(n) for n in ("lightning.pytorch", "lightning.fabric", "lightning")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            for message in _NOISE:
                warnings.filterwarnings("ignore", message=message)
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


class Diverged(RuntimeError):
    """The loss became NaN or infinite."""


class _Adam(torch.optim.Adam):
    """torch's Adam without one per-step cost on machines whose torch build has CUDA but no GPU:
    before every step torch checks that no CUDA graph is being captured, and that check asks the
    NVIDIA driver library for the device count (a ``dlopen``, about 0.3 ms) because torch caches
    the count only once CUDA is initialised.  No graph can be captured before CUDA is initialised,
    so the check runs only after that."""

    def _accelerator_graph_capture_health_check(self) -> None:
        if torch.cuda.is_initialized():
            super()._accelerator_graph_capture_health_check()


def adam(params, lr: float, weight_decay: float = 0.0) -> torch.optim.Adam:
    """Adam as every chapter trains with it, in its fused form: one kernel for all parameters
    instead of a Python loop over tensors.  The same update up to float rounding (test_train.py
    checks the losses of a short run against a plain PyTorch loop), about 1.2-1.4x faster per step
    for the small tabular flows on a CPU, where the per-tensor loop is a quarter of the step."""
    return _Adam(params, lr=lr, weight_decay=weight_decay, fused=True)


# --------------------------------------------------------------------------
# The base of every model's Lightning module
# --------------------------------------------------------------------------
class TrainModule(L.LightningModule):
    """The Lightning module a model of the book is trained through; a new model's module subclasses it.

    A subclass defines ``loss(x) -> Tensor`` (the mean loss of a batch of inputs ``x``) and keeps its model as
    an attribute; this base supplies Adam (:func:`adam`, ``lr`` and ``weight_decay``), a training step that
    logs ``train_loss`` (and :meth:`step_terms`) as epoch means without reading a value back to the host, a
    validation step logging ``val_loss``, and the hooks :func:`fit` uses: :attr:`compilable` and
    :meth:`compile_target` (what ``fit(compile=...)`` compiles), :meth:`diagnosis` (a hint added to the
    message of a diverged run).  Override ``configure_optimizers`` to train only some parameters, and the
    steps when a batch is not a tensor of inputs (an image head's batch is a tuple of feature maps).

    Examples of subclasses: :class:`usfkit.models.flows_lightning.FlowModule`,
    :class:`usfkit.models.oneclass.SVDDModule`, :class:`usfkit.models.vae.VAEModule`."""

    #: whether ``fit(compile="auto")`` may compile this module's loss (see :func:`~usfkit.train.compiled_loss`)
    compilable = False

    def __init__(self, lr: float, weight_decay: float = 0.0):
        super().__init__()
        self.lr, self.weight_decay = lr, weight_decay
        self._epoch_sums: dict[str, tuple[Tensor, int]] = {}

    def configure_optimizers(self):
        return adam(self.parameters(), self.lr, self.weight_decay)

    def log_epoch_mean(self, name: str, value: Tensor, batch_size: int) -> None:
        """``self.log(name, value, on_epoch=True, batch_size=batch_size)`` done cheaply: the batch-size
        weighted epoch mean, summed here in float32 as Lightning sums it and logged once, at the epoch's
        last batch.  A ``self.log`` call costs about a millisecond, a twentieth of a tabular step."""
        total, count = self._epoch_sums.get(name, (value.new_zeros((), dtype=torch.float32), 0))
        self._epoch_sums[name] = (total + value.detach().float() * batch_size, count + batch_size)

    def compile_target(self) -> tuple[nn.Module, str]:
        """``(owner, method name)``: what :func:`compiled_loss` compiles, the whole loss unless a module
        says otherwise."""
        return self, "loss"

    def step_terms(self) -> dict[str, Tensor]:
        """Parts of the last training batch's loss to log as epoch means besides ``train_loss``
        (read from what ``loss`` kept, outside a compiled loss)."""
        return {}

    def log_epoch_means(self, batch_idx: int) -> None:
        """At the epoch's last batch, log the epoch means :meth:`log_epoch_mean` summed (the only
        ``self.log`` of an epoch; no step reads a value back to the host)."""
        if batch_idx + 1 == self.trainer.num_training_batches:
            for name, (total, count) in self._epoch_sums.items():
                self.log(name, total / count, on_step=False, on_epoch=True, batch_size=1)
            self._epoch_sums = {}

    def training_step(self, batch, batch_idx):
        loss = self.loss(batch[0])
        for name, value in {"train_loss": loss, **self.step_terms()}.items():
            self.log_epoch_mean(name, value, len(batch[0]))
        self.log_epoch_means(batch_idx)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self.loss(batch[0]), on_step=False, on_epoch=True, batch_size=len(batch[0]))

    def diagnosis(self) -> str:
        return ""


# --------------------------------------------------------------------------
# Callbacks
# --------------------------------------------------------------------------
class DivergenceGuard(Callback):
    """Ends training with :class:`Diverged` at the end of an epoch in which a batch loss was NaN or inf.

    Without reading anything back to the host during a step: each batch folds "is my loss finite?" into
    flags that stay on the loss's device (the first bad batch's number and loss), and the host reads them
    once, at the epoch's end.  On a GPU a per-batch check (``if not torch.isfinite(loss)``) would stop the
    host at every step until the GPU caught up.  The price: a run that diverges trains on to the end of that
    epoch (on NaN weights, which change nothing of the outcome).  An error that such weights cause before
    the epoch ends (e.g. a decomposition of a NaN matrix) is reported as the divergence it follows
    (:meth:`pending`, read by :func:`fit`)."""

    def __init__(self):
        self._first: Tensor | None = None  # the first non-finite batch's index, -1 while none
        self._value: Tensor | None = None  # its loss

    def on_train_epoch_start(self, trainer, pl_module):
        self._first = self._value = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is None:
            return
        value = loss.detach().float().sum()  # non-finite when any element is
        if self._first is None:
            self._first = torch.full((), -1, dtype=torch.long, device=value.device)
            self._value = value
        new = (self._first < 0) & ~torch.isfinite(value)
        self._first = torch.where(new, batch_idx, self._first)
        self._value = torch.where(new, value, self._value)

    def pending(self, trainer, pl_module) -> Diverged | None:
        """The :class:`Diverged` error for the current epoch if one of its batch losses was not finite."""
        if self._first is None or int(self._first) < 0:  # one read per epoch
            return None
        return Diverged(f"loss became {float(self._value)} at epoch {trainer.current_epoch + 1}, "
                        f"batch {int(self._first) + 1}.{pl_module.diagnosis()}")

    def on_train_epoch_end(self, trainer, pl_module):
        err = self.pending(trainer, pl_module)
        if err is not None:
            raise err


class History(Callback):
    """Records the epoch losses and keeps a copy of the weights with the best monitored loss."""

    def __init__(self, monitor: str):
        self.monitor, self.rows, self.best, self.best_state = monitor, [], math.inf, None

    def on_train_epoch_end(self, trainer, pl_module):
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
        self.rows.append({"epoch": trainer.current_epoch + 1, **metrics})
        value = metrics.get(self.monitor, math.inf)
        if value < self.best:
            self.best, self.best_state = value, copy.deepcopy(pl_module.state_dict())


class EpochBar(Callback):
    """Epoch-level progress in a notebook: one output updated in place (the saved notebook
    keeps only its last state), or, inside a notebook sweep, a line in the sweep's display
    (see :mod:`usfkit.progress`)."""

    def __init__(self, total: int, desc: str):
        self.total, self.desc, self.show, self.start = total, desc, None, time.time()

    @staticmethod
    def _losses(metrics: dict) -> str:
        return "  ".join(f"{k} {float(v):.4g}" for k, v in sorted(metrics.items()))

    def _text(self, n: int, metrics: dict) -> str:
        bar = tqdm.format_meter(n, self.total, time.time() - self.start, ncols=60, prefix=self.desc)
        return bar + "  " + self._losses(metrics)

    def on_train_start(self, trainer, pl_module):
        self.start, self.show = time.time(), run_display()
        self.show(self._text(0, {}))

    def on_train_epoch_end(self, trainer, pl_module):
        self.show(self._text(trainer.current_epoch + 1, trainer.callback_metrics))

    def on_train_end(self, trainer, pl_module):
        # a finished training leaves a line, not a bar (a saved notebook, and the book, would show a full bar;
        # after early stopping a half-full bar with a time left would look like a broken-off run)
        n, elapsed = trainer.current_epoch, tqdm.format_interval(time.time() - self.start)
        done = f"stopped early after {n} of at most {self.total} epochs" if n < self.total else f"all {n} epochs"
        self.show(f"{self.desc}: {done} [{elapsed}]  " + self._losses(trainer.callback_metrics))

    def on_exception(self, trainer, pl_module, exception):
        if self.show is not None:  # training broke off (e.g. a NaN loss): say so instead of leaving the bar open
            self.show(f"{self.desc}: broke off in epoch {trainer.current_epoch + 1} of at most {self.total} "
                      f"({type(exception).__name__})")


# --------------------------------------------------------------------------
# Compiling the loss (same maths, fewer and fused kernels)
# --------------------------------------------------------------------------
#: ``fit(compile="auto")`` compiles runs with at least this many training steps (batches x max epochs).
#: Measured on a 2-core CPU (benchmarks/speedup.py, chapter 05's flows on 30_satellite, d = 36, batch 64): the
#: compiled step is 1.1-1.4x faster than the eager one, and compiling costs 25-60 s the first time a model shape
#: (method and width) is seen on a machine and 2-4 s once torch's on-disk cache has it, whatever the data set's
#: size.  A lone cold run pays back after about 6,000-8,000 steps; a sweep's three seeds of one data set (one
#: cold compile, two warm ones) after about 2,000-3,000 steps each.  Shorter runs (every quick profile) train eagerly.
COMPILE_MIN_STEPS = 5_000


@functools.cache
def can_compile() -> bool:
    """Whether ``torch.compile`` works in this process (on a CPU it needs a C++ compiler): a tiny
    function is compiled once and the answer kept."""
    try:
        with _quiet_lightning():
            return bool(torch.compile(lambda a: a * 2 + 1)(torch.ones(3)).sum() == 9)
    except Exception:  # no compiler, unsupported platform: train eagerly
        return False


def use_compile(module: TrainModule, steps: int, compile: bool | str = "auto") -> bool:
    """Decide whether :func:`fit` compiles ``module``'s loss.  ``compile``: ``True``, ``False`` or
    ``"auto"`` (the module is :attr:`~TrainModule.compilable`, the run has at least :data:`COMPILE_MIN_STEPS`
    steps and compiling works here).  ``$USFKIT_COMPILE=0`` turns ``"auto"`` off, ``=1`` makes it compile
    every compilable module's loss whatever the run's length."""
    if compile == "auto":
        env = os.environ.get("USFKIT_COMPILE", "")
        compile = module.compilable and (env == "1" or (env != "0" and steps >= COMPILE_MIN_STEPS))
    return bool(compile) and can_compile()


@contextlib.contextmanager
def compiled_loss(module: TrainModule, enabled: bool):
    """Inside the block ``module.loss`` (or the part :meth:`TrainModule.compile_target` names) is
    ``torch.compile``'d: the flow's many small operations become a few fused kernels, forward and
    backward.  The same maths up to float rounding: random draws
    inside the loss (the VAE's) come from torch's eager generator (``fallback_random``), so a seeded
    run draws the same numbers compiled or not; shapes are dynamic, so an epoch's shorter last batch
    does not compile a second graph; Python floats (the base's variance, the prior's ``sigma0``) are
    compiled as constants (``specialize_float``: otherwise torch traces them as symbols first, finds it
    cannot, and traces the whole loss a second time).  On leaving, the module's own method is back.

    Each block starts from an empty in-process cache (``torch._dynamo.reset()``; torch's on-disk cache
    stays): torch keeps the compiled code per function and, after ``recompile_limit`` (8) models of
    other shapes, silently runs that function eagerly, so a long sweep's later runs would be marked
    compiled while they ran eagerly.  The price: a later run of a shape already seen pays a warm
    compile (2-4 s) instead of none."""
    if not enabled:
        yield
        return
    torch._dynamo.reset()
    owner, name = module.compile_target()
    setattr(owner, name, torch.compile(getattr(owner, name), dynamic=True, options={"fallback_random": True}))
    try:
        with torch._dynamo.config.patch(specialize_float=True):  # torch compiles lazily, at the first step
            yield
    finally:
        delattr(owner, name)


# --------------------------------------------------------------------------
# fit
# --------------------------------------------------------------------------
@dataclass
class FitResult:
    """What :func:`fit` returns: whether the run finished (``ok``; else ``failure`` says why), the epochs it
    trained, its wall time, the best monitored loss and the per-epoch ``history`` of logged losses."""

    ok: bool
    epochs: int
    wall_time_s: float
    best_loss: float
    history: list[dict] = field(default_factory=list)
    failure: str | None = None
    compiled: bool = False  # the loss ran through torch.compile (same maths, float rounding aside)

    def summary(self) -> str:
        state = "ok" if self.ok else f"FAILED ({self.failure})"
        return f"{state}: {self.epochs} epochs, best loss {self.best_loss:.4g}, {self.wall_time_s:.1f} s"


class Rows(TensorDataset):
    """``TensorDataset(x)`` that hands the loader a whole batch in one indexing operation
    (``__getitems__``) instead of ``batch_size`` single rows stacked again: the same batches."""

    def __getitems__(self, indices: list[int]) -> list[Tensor]:
        return [t[torch.as_tensor(indices)] for t in self.tensors]


def _as_batch(rows: list[Tensor]) -> list[Tensor]:
    return rows


def loader(x: Tensor | Dataset, batch_size: int, shuffle: bool, seed: int = 0) -> DataLoader:
    """Batches of a tensor (each batch a list ``[rows]``, as ``TensorDataset`` gives) or of any
    ``Dataset`` (e.g. cached per-scale image features, each batch a list of tensors).
    Shuffled batches are drawn from a generator seeded with ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    if isinstance(x, Dataset):
        return DataLoader(x, batch_size=batch_size, shuffle=shuffle, generator=gen)
    return DataLoader(Rows(x), batch_size=batch_size, shuffle=shuffle, generator=gen, collate_fn=_as_batch)


def fit(module: TrainModule, x_train: Tensor | Dataset, x_val: Tensor | Dataset | None = None, *,
        max_epochs: int = 100, batch_size: int = 128, patience: int = 5, min_delta: float = 1e-4,
        monitor: str | None = None, seed: int = 0, progress: str = "auto", desc: str = "training",
        accelerator: str = "auto", devices="auto", restore_best: bool = True, callbacks: list | None = None,
        compile: bool | str = "auto", **trainer_kwargs) -> FitResult:
    """Train ``module`` on ``x_train`` with early stopping; never raises on divergence.

    ``x_train``/``x_val``: a tensor of inputs or a ``torch.utils.data.Dataset`` whose items
    the module's ``training_step`` understands (chapter 07 passes cached backbone features).
    ``monitor`` defaults to ``val_loss`` when ``x_val`` is given, else ``train_loss``.
    ``progress``: ``"auto"`` (``"notebook"`` in a notebook, else ``"bar"``), ``"bar"``
    (Lightning's), ``"notebook"`` (one in-place output, or a line in the display of the
    sweep that runs this fit, see :mod:`usfkit.progress`), or ``"none"``.  ``callbacks``:
    extra Lightning callbacks (e.g. a per-epoch probe), appended to the ones ``fit``
    builds.  ``compile``: whether the loss is ``torch.compile``'d (:func:`use_compile`; ``"auto"``
    does it for long runs of compilable modules).  Extra keyword arguments go to
    :class:`lightning.Trainer` (e.g. ``strategy``).
    """
    extra_callbacks = list(callbacks or [])
    check_finite_input(x_train, "x_train")  # bad data is a DataError naming the rows, never a "diverged" run
    check_finite_input(x_val, "x_val")
    device = next(module.parameters(), torch.empty(0)).device  # handed back where it came from
    L.seed_everything(seed, verbose=False)
    monitor = monitor or ("val_loss" if x_val is not None else "train_loss")
    if progress == "auto":
        progress = "notebook" if in_notebook() else "bar"
    history = History(monitor)
    guard = DivergenceGuard()
    callbacks: list[Callback] = [guard, history,
                                 EarlyStopping(monitor, patience=patience, min_delta=min_delta, mode="min",
                                               check_finite=True)]
    if progress == "notebook":
        callbacks.append(EpochBar(max_epochs, desc))
    elif progress == "bar":
        callbacks.append(TQDMProgressBar(refresh_rate=10))
    callbacks += extra_callbacks
    val = loader(x_val, 4 * batch_size, False) if x_val is not None else None
    train = loader(x_train, batch_size, True, seed)
    compiled = use_compile(module, len(train) * max_epochs, compile)
    start, failure = time.time(), None
    module.train()
    with _quiet_lightning(), compiled_loss(module, compiled):
        trainer = L.Trainer(max_epochs=max_epochs, accelerator=accelerator, devices=devices, logger=False,
                            enable_checkpointing=False, enable_model_summary=False,
                            enable_progress_bar=progress == "bar", num_sanity_val_steps=0,
                            callbacks=callbacks, **trainer_kwargs)
        try:
            trainer.fit(module, train, val)
        except Diverged as err:
            failure = str(err)
        except Exception:  # an error caused by a loss that had already become NaN is that divergence
            err = guard.pending(trainer, module)
            if err is None:
                raise
            failure = str(err)
    bad = [row["epoch"] for row in history.rows if not math.isfinite(row.get(monitor, math.inf))]
    if failure is None and bad:
        failure = f"{monitor} became non-finite at epoch {bad[0]}.{module.diagnosis()}"
    if restore_best and history.best_state is not None:
        module.load_state_dict(history.best_state)
    module.to(device).eval()
    return FitResult(ok=failure is None, epochs=len(history.rows), wall_time_s=time.time() - start,
                     best_loss=history.best, history=history.rows, failure=failure, compiled=compiled)
