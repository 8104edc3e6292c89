"""No host synchronisation inside a training step: on a GPU every value read back to Python (``.item()``,
``bool(t)``, ``if t:``), data-dependent shape (boolean-mask indexing) or host-to-device copy stops the host
until the GPU has caught up.  On this CPU nothing waits, but the same aten operations run: they are counted
with ``benchmarks/host_sync.py``'s profiler counter inside each middle step of :func:`usfkit.train.fit`
(Lightning's loop, the module's ``training_step``, the optimizer step, the callbacks ``fit`` attaches).  Copies
from the host, invisible on a CPU-only run, are caught by running each loss on the ``meta`` device, where a CPU
tensor moved to the model's device shows up as a copy between two devices.

The changes that made the step sync-free must not change a single bit of training: the losses of a seeded
``fit`` equal, bitwise, those of a plain loop over the reference formula (``torch.distributions.Normal`` for the
App. B.2 prior)."""
from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import pytest
import torch
from lightning.pytorch.callbacks import Callback
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.data import TensorDataset

from usfkit import train
from usfkit.models import dohsc, flows, oneflow, vae
from usfkit.models.flows_lightning import FlowModule, train_flow
from usfkit.models.oneclass import DeepSVDD, svdd_widths, train_svdd
from usfkit.models.heads.cflow import CflowHead, CflowModule
from usfkit.models.heads.fastflow import FastflowHead, FastflowModule
from usfkit.models.heads.uflow import UflowHead, UflowModule

BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "host_sync.py"


@pytest.fixture(scope="module")
def host_sync():
    spec = importlib.util.spec_from_file_location("host_sync", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules["host_sync"] = module
    spec.loader.exec_module(module)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield module
    torch.set_num_threads(threads)


X = torch.randn(5 * 16, 6, generator=torch.Generator().manual_seed(0))  # 5 batches of 16: 3 middle steps
SHAPES = [(4, 8, 8), (8, 4, 4)]
FEATURES = TensorDataset(*[torch.randn(5 * 2, *s, generator=torch.Generator().manual_seed(1)) for s in SHAPES])
FIT = dict(max_epochs=2, batch_size=16, patience=5, progress="none")


def small_flow(coupling: str) -> flows.Flow:
    return flows.build_flow(6, coupling=coupling, blocks=2, hidden=8, layers=2, prior_sigma=1.0, seed=0)


def tabular_runs() -> dict:
    """``name -> run(callback)``: each tabular model trained by its own ``train_*`` entry point."""
    def run_flow(coupling):
        return lambda cb: train_flow(small_flow(coupling), X, callbacks=[cb], **FIT)

    def run_vae(coupling):
        model = vae.tabular_vae(6, coupling, latent_dim=2, seed=0, hidden=(8,), flow_hidden=8, flow_layers=1, blocks=2)
        return lambda cb: vae.train_vae(model, X, callbacks=[cb], **FIT)

    def run_oneflow(cb):
        oneflow.train_oneflow(oneflow.OneFlow(6, blocks=2, hidden=8, layers=1, seed=0), X, callbacks=[cb], **FIT)

    def run_svdd(cb):  # Deep SVDD with its autoencoder pretraining (chapters 01, 03)
        train_svdd(DeepSVDD(6, svdd_widths(6, 3)), X, pretrain_epochs=2, callbacks=[cb], **FIT)

    return {"USFlow": run_flow("additive_lu"), "NonUSFlow": run_flow("affine_lu"),
            "VAE-USFlow": run_vae("additive_lu"), "VAE-NonUSFlow": run_vae("affine_lu"), "OneFlow": run_oneflow,
            "Deep SVDD": run_svdd}


HEADS = {"fastflow": (FastflowHead, FastflowModule, {"blocks": 2}),
         "cflow": (CflowHead, CflowModule, {"blocks": 2, "condition_dim": 4}),
         "uflow": (UflowHead, UflowModule, {"blocks": 2})}


def make_head(arch: str, coupling: str):
    head_cls, module_cls, kw = HEADS[arch]
    torch.manual_seed(0)
    return module_cls(head_cls(SHAPES, coupling, **kw), lr=1e-4)


@pytest.mark.parametrize("name", list(tabular_runs()))
def test_tabular_flow_steps_do_not_synchronise(host_sync, name):
    counted = host_sync.count_syncs(tabular_runs()[name])
    assert counted["steps"] == ((2 + 2) * 3 if name == "Deep SVDD" else 2 * 3)  # pretraining: 2 more epochs
    assert counted["by_op"] == {}, counted["places"]


@pytest.mark.parametrize("arch", list(HEADS))
@pytest.mark.parametrize("coupling", ["affine", "additive", "additive_lu"])
def test_image_head_steps_do_not_synchronise(host_sync, arch, coupling):
    def run(cb):
        train.fit(make_head(arch, coupling), FEATURES, **{**FIT, "batch_size": 2}, callbacks=[cb], accelerator="cpu")
    counted = host_sync.count_syncs(run)
    assert counted["steps"] == 2 * 3
    assert counted["by_op"] == {}, counted["places"]


@pytest.mark.parametrize("cls", [dohsc.DOHSC, dohsc.DO2HSC])
def test_dohsc_steps_synchronise_only_in_the_eigendecomposition(host_sync, cls):
    """DOHSC's orthogonal projection is an eigendecomposition of every batch; torch's ``linalg.eigh`` checks its
    result on the host (its documentation says it synchronises on CUDA).  Nothing else in the step does."""
    torch.manual_seed(0)
    model = cls(6, widths=(8, 4, 4))
    counted = host_sync.count_syncs(lambda cb: dohsc.train_dohsc(model, X, pretrain_epochs=1, warmup_epochs=1,
                                                                 callbacks=[cb], **FIT))
    assert counted["places"] == {}  # nothing in usfkit or Lightning reads a value back
    assert set(counted["by_op"]) == {"_local_scalar_dense in aten::linalg_eigh"}
    assert counted["by_op"]["_local_scalar_dense in aten::linalg_eigh"] == counted["steps"]


def test_the_counter_sees_a_per_step_read(host_sync):
    """The counter is not blind: a callback that reads the loss every step is one sync per step, named."""
    class Reads(Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            float(outputs["loss"])

    def run(cb):
        train_flow(small_flow("additive_lu"), X, callbacks=[Reads(), cb], **FIT)
    counted = host_sync.count_syncs(run)
    assert counted["by_op"] == {"_local_scalar_dense in aten::item": counted["steps"]}
    assert all("test_host_sync.py" not in k for k in counted["places"])  # named by the innermost usfkit/lightning frame


# --------------------------------------------------------------------------
# Copies from the host: the losses on the meta device
# --------------------------------------------------------------------------
class CrossDeviceCopies(TorchDispatchMode):
    """Records every copy between two devices (on a GPU: a host-to-device copy, which waits for the queue)."""

    def __init__(self):
        super().__init__()
        self.copies = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        devices = {a.device.type for a in args if isinstance(a, torch.Tensor)}
        if kwargs.get("device") is not None:
            devices.add(torch.device(kwargs["device"]).type)
        if func.overloadpacket.__name__ in ("_to_copy", "copy_") and len(devices) > 1:
            self.copies.append(str(func))
        return func(*args, **kwargs)


def meta_losses():
    """``name -> (Lightning module, a batch)`` for every model, on the meta device."""
    out = {}
    for coupling in ("additive_lu", "affine_lu"):
        out[f"flow {coupling}"] = (FlowModule(small_flow(coupling), n_train=80), [X[:16]])
        out[f"vae {coupling}"] = (vae.VAEModule(vae.tabular_vae(6, coupling, latent_dim=2, hidden=(8,), flow_hidden=8,
                                                                flow_layers=1, blocks=2)), [X[:16]])
    out["oneflow"] = (oneflow.OneFlowModule(oneflow.OneFlow(6, blocks=2, hidden=8, layers=1)), [X[:16]])
    for arch in HEADS:
        for coupling in ("affine", "additive_lu"):
            module = make_head(arch, coupling)
            module.head.prior_sigma = None
            out[f"{arch} {coupling}"] = (module, [t[:2] for t in FEATURES.tensors])
    return out


@pytest.mark.parametrize("name", list(meta_losses()))
def test_losses_copy_nothing_from_the_host(name):
    module, batch = meta_losses()[name]
    module = module.to("meta")
    batch = [t.to("meta") for t in batch]
    loss_of = (lambda: module.loss(batch)) if isinstance(module, (FastflowModule, CflowModule, UflowModule)) \
        else (lambda: module.loss(batch[0]))
    loss_of()  # a first call may build and keep device constants (CFlow's positional encoding)
    with CrossDeviceCopies() as mode:
        loss = loss_of()
        loss.backward()
    assert loss.device.type == "meta" and mode.copies == []


def test_cflow_builds_its_positional_encoding_once_per_size():
    head = CflowHead(SHAPES, "affine", blocks=1, condition_dim=4)
    f = FEATURES.tensors[0][:2]
    first, second = head.encoding(8, 8, f), head.encoding(8, 8, f)
    assert first is second
    from usfkit.models.heads.cflow.torch_model import positional_encoding_2d
    assert torch.equal(first, positional_encoding_2d(4, 8, 8))
    assert head.encoding(8, 8, f.double()).dtype == torch.float64
    assert "_encodings" not in str(head.state_dict().keys())  # a cache, not a checkpoint entry


# --------------------------------------------------------------------------
# Divergence, detected once an epoch
# --------------------------------------------------------------------------
class NaNAfter(FlowModule):
    """A flow whose loss is NaN from global step ``bad`` on; at step ``crash`` (if set) it raises, as a
    decomposition of a NaN matrix would."""

    def __init__(self, bad: int, crash: int | None = None):
        super().__init__(small_flow("additive_lu"), n_train=80)
        self.bad, self.crash, self.calls = bad, crash, 0

    def loss(self, x):
        self.calls += 1
        if self.crash is not None and self.calls >= self.crash:
            raise RuntimeError("linalg.eigh: The algorithm failed to converge")
        loss = super().loss(x)
        return loss * float("nan") if self.calls >= self.bad else loss


def test_divergence_in_a_later_epoch_names_the_epoch_and_batch():
    res = train.fit(NaNAfter(bad=5 + 3), X, max_epochs=4, batch_size=16, progress="none")  # epoch 2, batch 3
    assert not res.ok and res.epochs == 1  # the diverged epoch is not recorded as trained
    assert res.failure.startswith("loss became nan at epoch 2, batch 3.") and "learning rate" in res.failure
    assert [row["epoch"] for row in res.history] == [1]


def test_an_error_after_the_loss_went_nan_is_that_divergence():
    res = train.fit(NaNAfter(bad=2, crash=4), X, max_epochs=3, batch_size=16, progress="none")
    assert not res.ok and res.failure.startswith("loss became nan at epoch 1, batch 2.")


def test_an_error_without_divergence_is_raised():
    with pytest.raises(RuntimeError, match="failed to converge"):
        train.fit(NaNAfter(bad=100, crash=3), X, max_epochs=3, batch_size=16, progress="none")


def test_do2hsc_without_radii_is_refused_before_training():
    torch.manual_seed(0)
    model = dohsc.DO2HSC(6, widths=(8, 4, 4))
    with pytest.raises(RuntimeError, match="r_min/r_max are not set"):
        train.fit(dohsc.DOHSCModule(model), X, max_epochs=1, batch_size=16, progress="none")


# --------------------------------------------------------------------------
# Not a bit of training changed
# --------------------------------------------------------------------------
def test_log_normal_prior_is_normal_log_prob_bitwise():
    v = torch.randn(37, generator=torch.Generator().manual_seed(3)) * 2
    for sigma0 in (0.05, 1.0 / math.sqrt(6), 3.0):
        ref = torch.distributions.Normal(0.0, sigma0).log_prob(v).sum()
        assert torch.equal(flows.log_normal_prior(v, sigma0), ref)


def test_fit_losses_equal_a_plain_reference_loop_bitwise():
    """``fit`` (Lightning, the sync-free guard and logging) against a plain loop whose loss is written from the
    formulas (Eq. 3 with the Gaussian base, the App. B.2 prior by ``torch.distributions.Normal``): the same
    losses, bit for bit."""
    losses, seen = [], []

    class Keep(Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            losses.append(outputs["loss"].detach().clone())
            seen.append(batch[0].clone())

    flow = small_flow("affine_lu")
    ref_flow = small_flow("affine_lu")
    train_flow(flow, X, lr=1e-3, callbacks=[Keep()], max_epochs=2, batch_size=16, patience=5, progress="none",
               seed=7)
    opt = train.adam(ref_flow.parameters(), 1e-3)
    ref = []
    for xb in seen:  # the batches Lightning drew
        z, logdet = ref_flow(xb)
        var, d = ref_flow.base.scale ** 2, z.shape[1]
        log_base = -(z - ref_flow.base.center).pow(2).sum(1) / (2 * var) - 0.5 * d * math.log(2 * math.pi * var)
        prior = sum((torch.distributions.Normal(0.0, lu.prior_sigma0).log_prob(lu.log_abs_u).sum()
                     for lu in ref_flow.lu_layers()), torch.zeros(()))
        loss = -(log_base + logdet).mean() - prior / torch.tensor(float(len(X)))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        ref.append(loss.detach())
    assert len(losses) == len(ref) == 10
    assert torch.equal(torch.stack(losses), torch.stack(ref)), (torch.stack(losses) - torch.stack(ref)).abs().max()
