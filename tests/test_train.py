"""Training: early stopping, failed-run accounting, Deep SVDD's recipe, and Eq. 5 on a trained USF."""
import math

import pytest
import torch

from usfkit.data import AsymmetricGaussianMixture
from usfkit.models.flows import NonUSFlow, USFlow
from usfkit.models.flows_lightning import FlowModule, train_flow
from usfkit.models.oneclass import DeepSVDD, SVDDModule, svdd_widths, train_svdd
from usfkit.train import fit


@pytest.fixture(scope="module")
def mixture():
    gm = AsymmetricGaussianMixture(4)
    return gm, gm.sample(1024, seed=0)[0], gm.sample(512, seed=1)[0]


def test_flow_training_lowers_nll_and_eq5_holds(mixture):
    """Paper Eq. 5: with base N(c, I/2), -ln p(x) = ||phi(x) - c||^2 - ln psi_det(w) + (d/2) ln pi."""
    _, x, xv = mixture
    flow = USFlow(4, blocks=2, hidden=32, center=1.0, scale=math.sqrt(0.5), seed=0)
    with torch.no_grad():
        before = -flow.log_prob(xv).mean().item()
    res = train_flow(flow, x, xv, lr=3e-3, max_epochs=8, batch_size=128, progress="none")
    assert res.ok and res.epochs >= 1 and len(res.history) == res.epochs
    flow = flow.double()
    with torch.no_grad():
        xv = xv.double()
        nll = -flow.log_prob(xv)
        svdd = flow.base.sq_dist(flow.latent(xv))
        logdet = flow.log_abs_det_constant()
    assert nll.mean().item() < before - 0.1
    assert abs(logdet.item()) > 1e-3
    torch.testing.assert_close(nll, svdd - logdet + 2 * math.log(math.pi), atol=1e-10, rtol=0)


def test_early_stopping_stops_before_max_epochs(mixture):
    _, x, _ = mixture
    flow = USFlow(4, blocks=1, hidden=8, seed=0)
    res = train_flow(flow, x, lr=1e-9, max_epochs=50, patience=2, min_delta=1e-3, progress="none")
    assert res.ok and res.epochs == 3  # no improvement > 1e-3 at this learning rate: stop after patience


def test_divergence_is_recorded_not_raised(mixture):
    _, x, _ = mixture
    flow = NonUSFlow(4, blocks=2, hidden=8, seed=0)
    with torch.no_grad():
        flow.layers[-1].log_abs_u.fill_(float("nan"))
    res = fit(FlowModule(flow, lr=1e-3, n_train=len(x)), x, max_epochs=3, progress="none")
    assert not res.ok
    assert "nan" in res.failure and "learning rate" in res.failure
    assert "FAILED" in res.summary()


def test_deep_svdd_recipe_and_center(mixture):
    _, x, xv = mixture
    model = DeepSVDD(4, svdd_widths(4, 3))
    assert all(m.bias is None for m in model.encoder if isinstance(m, torch.nn.Linear))
    res = train_svdd(model, x, xv, pretrain_epochs=2, max_epochs=5, progress="none")
    assert res.ok
    assert (model.center.abs() >= 0.1 - 1e-7).all()
    with torch.no_grad():
        assert model.score(xv).std() > 0  # not collapsed: scores still differ between inputs


def test_svdd_widths_follow_appendix_c():
    assert svdd_widths(3, 2) == [3, 3]
    assert svdd_widths(3, 3) == [3, 6, 3]
    assert svdd_widths(2, 6) == [2, 32, 16, 8, 4, 2]
    with pytest.raises(ValueError):
        svdd_widths(3, 1)


def test_bias_variant_has_bias_and_bounded_variant_is_bounded():
    m = DeepSVDD(4, [8, 2], bias=True, activation="sigmoid")
    out = m(torch.randn(100, 4) * 100)
    assert ((out >= 0) & (out <= 1)).all()
    with pytest.raises(ValueError, match="activation"):
        DeepSVDD(4, [2], activation="gelu")


def test_fused_adam_computes_the_same_training_run(mixture):
    """usfkit.train.adam (fused) against the per-tensor loop: the same losses to float32 rounding over a
    short run of the tabular USFlow configuration, and the same test ranking."""
    from usfkit import metrics
    from usfkit.models.flows import build_flow

    _, x, x_test = mixture
    runs = []
    for fused in (False, True):
        flow = build_flow(4, coupling="additive_lu", blocks=2, hidden=64, layers=2, prior_sigma=1.0, seed=0)
        opt = torch.optim.Adam(flow.parameters(), lr=1e-3, fused=fused)
        losses = []
        for i in range(60):
            xb = x[(i * 64) % len(x):][:64]
            loss = -flow.log_prob(xb).mean() - flow.log_prior() / len(x)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        with torch.no_grad():
            runs.append((losses, -flow.log_prob(x_test)))
    (plain, s_plain), (fused, s_fused) = runs
    assert plain != pytest.approx([plain[0]] * len(plain))  # it trained
    assert fused == pytest.approx(plain, rel=1e-5, abs=1e-5)
    labels = (torch.arange(len(x_test)) % 2).numpy()  # any fixed labelling: equal scores give equal AUROCs
    assert metrics.ranking_agreement(s_plain, s_fused, labels, rtol=1e-4)["discordant"] == 0
    import usfkit.train as train
    assert train.adam(flow.parameters(), 1e-3).defaults["fused"] is True


def test_importing_usfkit_changes_no_global_warning_filter_or_logger():
    import subprocess
    import sys

    code = ("import logging, warnings; import torch, lightning, sklearn, timm, torchvision, matplotlib; "
            "before, level = list(warnings.filters), logging.getLogger('lightning.pytorch').level; "
            "import usfkit.train, usfkit.experiments.tabular, usfkit.image, usfkit.models.vae; "
            "assert warnings.filters == before, 'warning filters changed'; "
            "assert logging.getLogger('lightning.pytorch').level == level, 'logger level changed'")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]


def test_fit_hands_the_model_back_on_its_device_and_restores_the_logger(mixture):
    import logging

    _, x, _ = mixture
    flow = USFlow(4, blocks=1, hidden=8, layers=1, seed=0)
    level = logging.getLogger("lightning.pytorch").level
    result = train_flow(flow, x[:128], max_epochs=1, batch_size=64, progress="none")
    assert result.ok and next(flow.parameters()).device.type == "cpu"
    assert logging.getLogger("lightning.pytorch").level == level


def _plain_loop(flow, x, epochs, batch_size, seed, lr):
    """The training run of ``fit`` written as a plain PyTorch loop: per-tensor Adam, a DataLoader over a
    TensorDataset shuffled by a generator seeded with ``seed``, epoch loss = batch-size weighted mean."""
    from torch.utils.data import DataLoader, TensorDataset

    torch.manual_seed(seed)
    opt = torch.optim.Adam(flow.parameters(), lr=lr)
    batches = DataLoader(TensorDataset(x), batch_size=batch_size, shuffle=True,
                         generator=torch.Generator().manual_seed(seed))
    means = []
    for _ in range(epochs):
        total, count = 0.0, 0
        for (xb,) in batches:
            loss = -flow.log_prob(xb).mean() - flow.log_prior() / len(x)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total, count = total + loss.item() * len(xb), count + len(xb)
        means.append(total / count)
    return means


@pytest.mark.parametrize("compiled", [False, True])
def test_fit_computes_what_a_plain_pytorch_loop_computes(mixture, compiled):
    """The lean training step (fused Adam, one indexing per batch, epoch means logged once, optionally the
    compiled loss) changes nothing but speed: the epoch losses of ``fit`` equal a plain loop's to float32
    rounding (1e-5 relative; 1e-4 compiled, whose kernels sum in another order), and the test scores rank
    the same.  1000 rows in batches of 64: the last batch is shorter, as in real runs."""
    from usfkit import metrics, train
    from usfkit.models.flows import build_flow

    if compiled and not train.can_compile():
        pytest.skip("torch.compile does not work on this machine (no C++ compiler)")
    _, x, x_test = mixture
    x = x[:1000]
    make = lambda: build_flow(4, coupling="additive_lu", blocks=2, hidden=16, layers=2, prior_sigma=1.0, seed=3)  # noqa: E731
    plain_flow, flow = make(), make()
    plain = _plain_loop(plain_flow, x, epochs=4, batch_size=64, seed=5, lr=1e-3)
    result = train_flow(flow, x, lr=1e-3, max_epochs=4, patience=10, batch_size=64, seed=5, progress="none",
                        compile=compiled)
    assert result.compiled is compiled
    losses = [row["train_loss"] for row in result.history]
    assert losses == pytest.approx(plain, rel=1e-4 if compiled else 1e-5)
    assert losses[-1] == min(losses)  # the restored best weights are the last ones, as in the plain loop
    with torch.no_grad():
        s_plain, s_fit = -plain_flow.log_prob(x_test), -flow.log_prob(x_test)
    labels = (torch.arange(len(x_test)) % 2).numpy()
    assert metrics.ranking_agreement(s_plain, s_fit, labels, rtol=1e-3)["discordant"] == 0
    module = FlowModule(flow)
    with train.compiled_loss(module, True):
        assert "loss" in vars(module)  # the compiled loss shadows the method inside the block ...
    assert "loss" not in vars(module)  # ... and is gone after it


def test_rows_loader_gives_the_batches_a_tensor_dataset_gives():
    from torch.utils.data import DataLoader, TensorDataset

    from usfkit.train import loader

    x = torch.arange(70.0).reshape(35, 2)
    ours = [b[0] for b in loader(x, 8, shuffle=True, seed=4)]
    ref = [b[0] for b in DataLoader(TensorDataset(x), batch_size=8, shuffle=True,
                                    generator=torch.Generator().manual_seed(4))]
    assert len(ours) == len(ref) == 5 and all(torch.equal(a, b) for a, b in zip(ours, ref))


def test_adam_skips_the_cuda_driver_query_on_a_machine_without_cuda(monkeypatch):
    """torch asks the driver library for the device count before every step (0.3 ms) until CUDA is
    initialised; usfkit's Adam skips that check when CUDA is not initialised, and still trains."""
    from usfkit import train

    if torch.cuda.is_initialized():
        pytest.skip("CUDA is initialised in this process: the check runs, as it should")
    w = torch.nn.Parameter(torch.ones(3))
    opt = train.adam([w], lr=0.1)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: pytest.fail("the driver was asked"))
    (w ** 2).sum().backward()
    opt.step()
    assert (w < 1).all()


def test_use_compile_decides_by_run_length_module_and_environment(monkeypatch):
    from usfkit import train

    monkeypatch.delenv("USFKIT_COMPILE", raising=False)
    monkeypatch.setattr(train, "can_compile", lambda: True)
    flow_module = FlowModule(USFlow(4, blocks=1, hidden=4, layers=1))
    svdd_module = SVDDModule(DeepSVDD(4, [4, 2]))
    assert train.use_compile(flow_module, train.COMPILE_MIN_STEPS, "auto")
    assert not train.use_compile(flow_module, train.COMPILE_MIN_STEPS - 1, "auto")
    assert not train.use_compile(svdd_module, 10**9, "auto")
    assert not train.use_compile(flow_module, 10**9, False) and train.use_compile(svdd_module, 1, True)
    monkeypatch.setenv("USFKIT_COMPILE", "0")
    assert not train.use_compile(flow_module, 10**9, "auto")
    monkeypatch.setenv("USFKIT_COMPILE", "1")
    assert train.use_compile(flow_module, 1, "auto") and not train.use_compile(svdd_module, 1, "auto")
    monkeypatch.setattr(train, "can_compile", lambda: False)  # no compiler: eager, whatever was asked
    assert not train.use_compile(flow_module, 10**9, True)


def test_compiled_loss_compiles_every_model_of_a_long_process():
    """torch keeps compiled code per function and stops compiling it after ``recompile_limit`` shapes,
    running it eagerly without a word; ``compiled_loss`` starts every model afresh, so a run marked
    compiled was compiled however many models the process compiled before (here the limit is 1)."""
    from usfkit import train

    if not train.can_compile():
        pytest.skip("torch.compile does not work here (no C++ compiler)")
    frames = torch._dynamo.utils.counters["frames"]
    with torch._dynamo.config.patch(recompile_limit=1):  # torch's own way to set its config for a block
        for dim in (3, 5):
            module = FlowModule(USFlow(dim, blocks=1, hidden=4, layers=1))
            before = frames["ok"]
            with train.compiled_loss(module, True):
                module.loss(torch.randn(8, dim, generator=torch.Generator().manual_seed(dim))).backward()
            assert frames["ok"] > before, f"the d = {dim} model ran eagerly"


def test_a_compiled_flow_loss_is_reused_for_another_training_set_size():
    """The loss divides by ``n_train`` held as a tensor, so its compiled code does not depend on the
    training-set size: a second model of the same shape, trained on a different number of rows, reads
    the first one's compiled graph from torch's cache (an int would be baked in: a compile per data set)."""
    from torch._dynamo.utils import counters

    from usfkit import train

    if not train.can_compile():
        pytest.skip("torch.compile does not work here (no C++ compiler)")
    hits = []
    for n_train in (100, 300):
        module = FlowModule(USFlow(3, blocks=1, hidden=4, layers=1, prior_sigma=1.0, seed=0), n_train=n_train)
        before = counters["aot_autograd"]["autograd_cache_hit"]
        with train.compiled_loss(module, True):
            module.loss(torch.randn(8, 3, generator=torch.Generator().manual_seed(n_train))).backward()
        hits.append(counters["aot_autograd"]["autograd_cache_hit"] - before)
    assert hits[1] == 1, f"the second model compiled afresh (cache hits per model: {hits})"


@pytest.mark.parametrize("coupling", ["additive", "affine", "additive_lu", "affine_lu"])
@pytest.mark.parametrize("prior_sigma", [None, 0.5])
def test_flow_module_map_loss_is_bitwise_the_old_formula(coupling, prior_sigma):
    """``FlowModule.loss`` through :func:`usfkit.models.flows.map_loss` equals, bit for bit, the formula it had
    written out: ``mean NLL - flow.log_prior() / n_train`` with ``n_train`` a float32 buffer."""
    from usfkit.models.flows import build_flow
    flow = build_flow(5, coupling, blocks=2, hidden=8, layers=1, prior_sigma=prior_sigma, seed=4)
    with torch.no_grad():  # LU diagonals off zero: a non-zero prior term
        for lu in flow.lu_layers():
            lu.log_abs_u.normal_(0.0, 0.3, generator=torch.Generator().manual_seed(2))
    assert bool(flow.log_prior().abs() > 1e-3) is (prior_sigma is not None and coupling.endswith("_lu"))
    gen = torch.Generator().manual_seed(1)
    for n_train in (7, 777, 12345):
        module = FlowModule(flow, n_train=n_train)
        for _ in range(3):
            x = torch.randn(32, 5, generator=gen)
            z, logdet = flow(x)
            old = -(flow.base.log_prob(z) + logdet).mean() - flow.log_prior() / torch.tensor(float(n_train))
            assert torch.equal(module.loss(x), old)
