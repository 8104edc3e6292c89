"""The image flow heads of paper §5.2 (FastFlow, CFlow, U-Flow) and their ``coupling=`` switch.

Defining properties checked numerically: exact inverses, a log-determinant that is the
same for every input exactly when the coupling is additive (uniformly scaling), equal
to ``slogdet`` of the autograd Jacobian, maps/scores of the right shapes, a decreasing
loss, and that the switch changes nothing but the coupling.
"""
from __future__ import annotations

import socket
import warnings

import pytest
import torch
from torch.utils.data import TensorDataset

from usfkit.models.flows import AffineCoupling, GlobalAffine, LUAffine, SplitConditioner, lu_prior_sigma0
from usfkit.image import ARCHITECTURES, COUPLINGS, build_model
from usfkit.image import backbones
from usfkit.image.backbones import PretrainedUnavailable, build_backbone
from usfkit.models.heads.cflow import CflowHead
from usfkit.models.heads.couplings import count_parameters
from usfkit.models.heads.fastflow import FastflowHead
from usfkit.models.heads.uflow import UflowHead
from usfkit.train import TrainModule

torch.set_num_threads(1)

# tiny feature pyramids: (C, H, W) per scale, each scale half the previous one
SHAPES = {"fastflow": [(6, 4, 4), (8, 2, 2)], "cflow": [(6, 4, 4), (8, 2, 2)], "uflow": [(8, 4, 4), (16, 2, 2)]}
FLOWS = {"fastflow": "flows", "cflow": "decoders", "uflow": "stages"}  # each head's per-scale flows (Chains)


def make_head(arch: str, coupling: str, shapes=None, seed: int = 0, **kw):
    torch.manual_seed(seed)
    shapes = shapes or SHAPES[arch]
    if arch == "fastflow":
        return FastflowHead(shapes, coupling, blocks=4, **kw)
    if arch == "cflow":
        return CflowHead(shapes, coupling, blocks=4, condition_dim=8, **kw)
    return UflowHead(shapes, coupling, blocks=4, layer_norm=True, **kw)


def perturb(head, scale: float = 0.3, seed: int = 1):
    """Move every weight away from its initialisation (global scalings != 1, LU != I,
    LayerNorm affine != identity) so the checks are not passed by an identity map."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in head.parameters():
            p.add_(scale * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    return head


def features(shapes, batch: int = 3, seed: int = 0, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, *s, generator=gen, dtype=dtype) for s in shapes]


def logdets(head, feats) -> list:
    """Log-determinants per scale, each per sample ``[B]`` (CFlow: per feature vector);
    U-Flow has one, of its whole multi-scale flow."""
    _, ld = head(feats)
    return ld if isinstance(ld, list) else [ld]


@pytest.mark.parametrize("arch", ["fastflow", "cflow", "uflow"])
@pytest.mark.parametrize("coupling", COUPLINGS)
def test_exact_inverse_and_logdet(arch, coupling):
    head = perturb(make_head(arch, coupling)).double().eval()
    f1, f2 = features(SHAPES[arch], seed=0), features(SHAPES[arch], seed=1)
    latents, _ = head(f1)
    recon = head.inverse(latents)
    for x, y in zip(head.flow_inputs(f1), recon):
        assert torch.allclose(x, y, atol=1e-9, rtol=0), (x - y).abs().max()
    for ld1, ld2 in zip(logdets(head, f1), logdets(head, f2)):
        if coupling == "affine":
            assert not head.constant_det
            assert (ld1 - ld2).abs().max() > 1e-3, "affine coupling: log-det must depend on the input"
            assert (ld1 - ld1[0]).abs().max() > 1e-3
        else:
            assert head.constant_det
            assert ld1.abs().max() > 1e-2, "perturbed global scalings give a non-zero constant log-det"
            assert torch.allclose(ld1, ld1[0].expand_as(ld1), atol=1e-9, rtol=0)
            assert torch.allclose(ld1, ld2, atol=1e-9, rtol=0)


def _jacobian_logdet(fn, x):
    jac = torch.autograd.functional.jacobian(fn, x)
    return torch.linalg.slogdet(jac.reshape(x.numel(), x.numel()))[1]


@pytest.mark.parametrize("coupling", COUPLINGS)
def test_logdet_equals_slogdet_of_jacobian(coupling):
    # FastFlow flow on one (4, 2, 2) map: 16 dimensions
    head = perturb(make_head("fastflow", coupling, shapes=[(4, 2, 2)])).double()
    x = features([(4, 2, 2)], batch=1, seed=3)[0]
    flow = head.flows[0]
    expected = _jacobian_logdet(lambda v: flow(v.unsqueeze(0))[0].flatten(), x[0])
    assert torch.allclose(flow(x)[1][0], expected, atol=1e-8)
    # U-Flow's whole two-scale flow (split, upsampling, concatenation): 64 + 32 dimensions
    shapes = [(4, 4, 4), (8, 2, 2)]
    head = perturb(make_head("uflow", coupling, shapes=shapes)).double()
    x0, x1 = (f[0] for f in features(shapes, batch=1, seed=4))
    n0 = x0.numel()

    def uflow_fn(v):
        head.norms = None  # the flow proper, without the (non-bijective) LayerNorm
        z, _ = head([v[:n0].reshape(1, *shapes[0]), v[n0:].reshape(1, *shapes[1])])
        return torch.cat([t.flatten() for t in z])

    v = torch.cat([x0.flatten(), x1.flatten()])
    expected = _jacobian_logdet(uflow_fn, v)
    head.norms = None
    assert torch.allclose(head([x0[None], x1[None]])[1][0], expected, atol=1e-8)
    # CFlow: one 6-d feature vector with its condition
    head = perturb(make_head("cflow", coupling, shapes=[(6, 2, 2)])).double()
    xf, cond = head.fibers(features([(6, 2, 2)], batch=1, seed=5)[0])
    dec = head.decoders[0]
    expected = _jacobian_logdet(lambda v: dec(v[None], cond[:1])[0].flatten(), xf[0])
    assert torch.allclose(dec(xf[:1], cond[:1])[1][0], expected, atol=1e-8)


@pytest.mark.parametrize("arch", ["fastflow", "cflow", "uflow"])
def test_maps_scores_and_loss_decreases(arch):
    head = make_head(arch, "affine")
    feats = features(SHAPES[arch], batch=4, dtype=torch.float32)
    image_size = (16, 12)
    amap = head.anomaly_map(feats, image_size)
    assert amap.shape == (4, *image_size)
    assert head.image_score(amap).shape == (4,)
    for coupling in COUPLINGS:
        head = make_head(arch, coupling)
        opt = torch.optim.Adam([p for p in head.parameters() if p.requires_grad], lr=1e-3)
        losses = []
        for _ in range(6):
            loss = head.loss(feats)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        assert all(torch.isfinite(torch.tensor(losses))), losses
        assert losses[-1] < losses[0], (arch, coupling, losses)


def test_anomaly_map_ranks_outliers_higher():
    """A feature map far from the training ones gets a higher score from every head."""
    for arch in ("fastflow", "cflow", "uflow"):
        head = make_head(arch, "additive").eval()
        feats = features(SHAPES[arch], batch=3, dtype=torch.float32)
        odd = [f.clone() for f in feats]
        for f in odd:  # a local defect: one corner of image 2 replaced by large values
            f[2, :, :1, :1] = 10 * torch.randn(f.shape[1], 1, 1, generator=torch.Generator().manual_seed(0))
        scores = head.image_score(head.anomaly_map(odd, (8, 8)))
        assert scores[2] > scores[:2].max(), (arch, scores)


def test_lightning_modules_train_on_cached_features():
    """``model.lightning_module()`` trains the head on batches of cached per-scale features
    (CFlow with its manual fiber-batch optimisation, U-Flow with its scheduler)."""
    import lightning as L
    from torch.utils.data import DataLoader
    from usfkit.image import ImageModel
    for arch in ("fastflow", "cflow", "uflow"):
        head = make_head(arch, "additive_lu")
        config = dict(ARCHITECTURES[arch], fiber_batch_size=16)
        module = ImageModel(arch, "additive_lu", None, head, config).lightning_module()
        assert isinstance(module, TrainModule)
        assert module.lr == ARCHITECTURES[arch]["lr"] and module.weight_decay == ARCHITECTURES[arch]["weight_decay"]
        before = [p.detach().clone() for p in head.parameters()]
        data = TensorDataset(*features(SHAPES[arch], batch=4, dtype=torch.float32))
        trainer = L.Trainer(max_epochs=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                            enable_model_summary=False, accelerator="cpu")
        trainer.fit(module, DataLoader(data, batch_size=2))
        assert torch.isfinite(trainer.callback_metrics["train_loss"])
        assert any(not torch.equal(a, b) for a, b in zip(before, head.parameters()))


def _last_layers(head):
    return [m.subnet[-1] for m in head.modules() if isinstance(m, SplitConditioner)]


@pytest.mark.parametrize("arch", ["fastflow", "cflow", "uflow"])
def test_coupling_switch_changes_only_the_coupling(arch):
    heads = {c: make_head(arch, c) for c in COUPLINGS}
    n = {c: count_parameters(h) for c, h in heads.items()}
    # affine -> additive: the subnet's last layer predicts only shifts, not shifts and log-scales
    last = sum(p.numel() for layer in _last_layers(heads["additive"]) for p in layer.parameters())
    assert n["affine"] - n["additive"] == last
    # additive -> additive_lu: exactly the LU maps are added
    lu = sum(p.numel() for m in heads["additive_lu"].modules() if isinstance(m, LUAffine) for p in m.parameters())
    assert lu > 0 and n["additive_lu"] - n["additive"] == lu
    # every other parameter has the same name and shape
    def shapes(h, drop_lu=False):
        out = {}
        for k, p in h.named_parameters():
            if drop_lu and ".affine." in k:  # the LU maps of A^{-1} o C o A
                continue
            out[k.replace(".coupling.", ".")] = tuple(p.shape)  # the coupling inside A^{-1} o C o A
        return out
    a, b, c = shapes(heads["affine"]), shapes(heads["additive"]), shapes(heads["additive_lu"], drop_lu=True)
    assert a.keys() == b.keys() == c.keys()
    differing = [k for k in a if a[k] != b[k]]
    assert len(differing) == 2 * len(_last_layers(heads["additive"]))  # weight and bias of each last layer
    assert all(b[k] == c[k] for k in b)


def test_backbone_feature_shapes():
    size = 64
    r18 = build_backbone("resnet18", ("layer1", "layer2", "layer3"), size, pretrained=False)
    x = torch.randn(2, 3, size, size)
    out = r18(x)
    assert [tuple(f.shape[1:]) for f in out] == r18.feature_shapes(size) == [(64, 16, 16), (128, 8, 8), (256, 4, 4)]
    assert not any(p.requires_grad for p in r18.parameters()) and not r18.training
    r18.train()
    assert not r18.training  # stays frozen
    assert not out[0].requires_grad
    with torch.device("meta"):  # shapes only: skip initialising 69M weights
        wrn = build_backbone("wide_resnet50_2", ("layer2", "layer3", "layer4"), size, pretrained=False)
        out = wrn(torch.empty(2, 3, size, size))
    assert [tuple(f.shape[1:]) for f in out] == wrn.feature_shapes(size) == [(512, 8, 8), (1024, 4, 4), (2048, 2, 2)]
    cait = build_backbone("cait_xxs24_224", None, size, pretrained=False)
    assert [tuple(f.shape[1:]) for f in cait(x)] == cait.feature_shapes(size) == [(192, 4, 4), (192, 2, 2)]
    assert "RANDOM" in cait.describe() and cait.pretrained_loaded is False


def _no_network(*args, **kwargs):
    raise OSError("network disabled by the test")


def test_pretrained_true_without_internet_raises(monkeypatch):
    monkeypatch.setattr(socket, "getaddrinfo", _no_network)
    monkeypatch.setattr(backbones, "_FAILED", {})  # no earlier failure in this process
    try:
        bb = build_backbone("resnet18", ("layer1",), 64, pretrained=True)
    except PretrainedUnavailable as err:
        assert "pretrained=False" in str(err)
    else:
        pytest.skip(f"ImageNet weights were found in a local cache ({bb.describe()})")
    with pytest.warns(UserWarning, match="RANDOM BACKBONE WEIGHTS"):
        bb = build_backbone("resnet18", ("layer1",), 64, pretrained="auto")
    assert bb.pretrained_loaded is False and "RANDOM" in bb.describe()
    with warnings.catch_warnings():  # "auto" tries once per process: no second attempt, no second warning
        warnings.simplefilter("error")
        again = build_backbone("resnet18", ("layer1",), 64, pretrained="auto")
    assert again.pretrained_loaded is False


def test_build_model_interface():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = build_model("fastflow", "additive", pretrained=False, image_size=64, blocks=2)
    assert model.config["blocks"] == 2 and model.config["lr"] == 1e-3 and model.backbone.name == "resnet18"
    with torch.no_grad():
        amap = model.head.eval().anomaly_map(model.backbone(torch.randn(2, 3, 64, 64)), (64, 64))
    score = model.head.image_score(amap)
    assert amap.shape == (2, 64, 64) and score.shape == (2,)
    assert model.constant_det and model.constant_det is model.head.constant_det
    with pytest.raises(ValueError, match="coupling"):
        build_model("fastflow", "volume_preserving", pretrained=False)
    with pytest.raises(ValueError, match="App. D"):
        build_model("fastflow", "affine_lu", pretrained=False)
    with pytest.raises(TypeError, match="unknown override"):
        build_model("fastflow", pretrained=False, image_size=64, flow_stepz=3)
    assert set(ARCHITECTURES) == {"fastflow", "cflow", "uflow"} and COUPLINGS == ("affine", "additive", "additive_lu")


@pytest.mark.parametrize("arch,clamp", [("fastflow", 2.0), ("cflow", 1.9), ("uflow", 2.0)])
def test_affine_log_scale_is_soft_clamped(arch, clamp):
    """The original clamping: every affine coupling's log-scale lies in (-clamp, clamp), and
    saturates there when the subnet's output is large."""
    head = make_head(arch, "affine", clamp=clamp)
    with torch.no_grad():
        for m in head.modules():
            if isinstance(m, SplitConditioner):
                m.subnet[-1].weight.mul_(1e3)  # drive the log-scales into saturation
    couplings = [m for m in head.modules() if isinstance(m, AffineCoupling)]
    assert couplings and all(c.clamp == clamp and c.activation == "allinone" for c in couplings)
    x = torch.randn(5, int(couplings[0].mask.numel()), *([4, 4] if arch != "cflow" else []))
    context = torch.randn(5, 8) if arch == "cflow" else None
    _, log_scale = couplings[0]._shift_log_scale(x, context)
    assert log_scale.abs().max() <= clamp and log_scale.abs().max() > 0.99 * clamp


def test_log_det_prior_override():
    """``prior_sigma`` adds the App. B.2 prior on the constant log-det (divided by n_train)."""
    feats = features(SHAPES["uflow"], batch=2, dtype=torch.float32)
    plain = make_head("uflow", "additive_lu")
    with_prior = make_head("uflow", "additive_lu", prior_sigma=1.0, n_train=10)
    perturb(plain, seed=2), perturb(with_prior, seed=2)
    penalty = with_prior.loss(feats) - plain.loss(feats)
    assert torch.isfinite(penalty) and penalty.abs() > 1e-3
    assert torch.allclose(penalty, -with_prior.log_prior() / 10, rtol=1e-4)


@pytest.mark.parametrize("arch", ["fastflow", "cflow", "uflow"])
@pytest.mark.parametrize("coupling", COUPLINGS)
def test_constant_det_flag(arch, coupling):
    """The words of :data:`usfkit.models.flows.COUPLINGS` mean the same here: ``constant_det`` is True
    exactly for the additive couplings (on the head, each per-scale flow and each step), and
    only ``"additive_lu"`` has LU maps."""
    head = make_head(arch, coupling)
    usf = coupling.startswith("additive")
    assert head.constant_det is usf
    for flow in getattr(head, FLOWS[arch]):
        assert flow.constant_det is usf and all(step.constant_det is usf for step in flow.layers)
    assert any(isinstance(m, LUAffine) for m in head.modules()) is coupling.endswith("_lu")


@pytest.mark.parametrize("arch", ["fastflow", "cflow", "uflow"])
@pytest.mark.parametrize("coupling", ["affine_lu", "usf", "USF", "NonUSF", "nonusf"])
def test_unsupported_couplings_are_rejected_saying_why(arch, coupling):
    """``"affine_lu"`` is a valid word but App. D left it out of the image ablation; old names are not words."""
    match = "App. D excluded it" if coupling == "affine_lu" else "'additive_lu': additive coupling in LU-conjugated"
    with pytest.raises(ValueError, match=match):
        make_head(arch, coupling)


@pytest.mark.parametrize("arch", ["fastflow", "cflow", "uflow"])
def test_log_prior_is_the_global_scalings_log_normal(arch):
    """``prior_sigma``: every step's global scaling ``ln s_i ~ N(0, sigma0^2)`` with
    ``sigma0 = lu_prior_sigma0(sigma, C, h*w)`` of the positions it acts on (CFlow: one);
    the head's ``log_prior`` is their sum and zero without a prior."""
    assert make_head(arch, "additive_lu").log_prior().item() == 0.0
    head = perturb(make_head(arch, "additive_lu", prior_sigma=0.7))
    flows = getattr(head, FLOWS[arch])
    # U-Flow's stages, coarsest first: 16 channels at 2x2, then 8 + 8 // 4 (pixel-shuffled) at 4x4
    shapes = SHAPES[arch] if arch != "uflow" else [(16, 2, 2), (10, 4, 4)]
    expected = 0.0
    for flow, (c, h, w) in zip(flows, shapes):
        spatial = 1 if arch == "cflow" else h * w
        for g in (m for m in flow.modules() if isinstance(m, GlobalAffine)):
            normal = torch.distributions.Normal(0.0, lu_prior_sigma0(0.7, c, spatial))
            expected = expected + normal.log_prob(g.scale().log()).sum()
    torch.testing.assert_close(head.log_prior(), expected)


def test_a_failed_weight_download_prints_no_download_line_only_the_warning(capsys):
    """Offline, torchvision prints ``Downloading: <url>`` and then fails: the line would sit on a book page
    above the warning that already says what happened."""
    import torch.nn as nn

    from usfkit.image import backbones

    def build_pretrained():
        print('Downloading: "https://download.example/resnet.pth" to /root/.cache/x')
        raise OSError("no network")

    with pytest.warns(UserWarning, match="RANDOM BACKBONE WEIGHTS"):
        net, loaded = backbones._load("toy-net-offline", "auto", build_pretrained, nn.Identity)
    assert not loaded and isinstance(net, nn.Identity)
    assert capsys.readouterr().out == ""
    backbones._FAILED.pop("toy-net-offline", None)

    def build_ok():
        print("Downloading: fine")
        return nn.Linear(1, 1)

    net, loaded = backbones._load("toy-net-online", "auto", build_ok, nn.Identity)
    assert loaded and capsys.readouterr().out == "Downloading: fine\n"  # said after a download that worked


# ----------------------------------------------------------------------------- the MAP loss, bit for bit
def _old_loss(arch: str, head, feats):
    """Each head's loss as it was written before :func:`usfkit.models.flows.map_loss` and
    :class:`usfkit.models.heads.base.FlowHead` (its own log-prior sum, its own subtraction)."""
    from usfkit.models.heads.cflow.loss import cflow_loss
    from usfkit.models.heads.fastflow.loss import fastflow_loss
    from usfkit.models.heads.uflow.loss import uflow_loss
    if arch == "fastflow":
        loss = fastflow_loss(*head(feats))
        return loss - sum(flow.log_prior() for flow in head.flows).to(loss) / head.n_train
    if arch == "cflow":
        loss = sum(cflow_loss(head.fiber_log_prob(k, *head.fibers(f))).mean() for k, f in enumerate(feats))
        return loss - sum(d.log_prior() for d in head.decoders).to(loss) / head.n_train
    loss = uflow_loss(*head(feats))
    return loss - sum(s.log_prior() for s in head.stages).to(loss) / head.n_train


def _old_cflow_step(self, batch, batch_idx):
    """CFlow's manual fiber-batch step as it was written before ``map_loss``."""
    from usfkit.models.heads.cflow.loss import cflow_loss
    opt = self.optimizers()
    total, count = 0.0, 0
    for layer, feature in enumerate(batch):
        x, cond = self.head.fibers(feature)
        perm = torch.randperm(len(x), device=x.device)
        n = max(len(x) // self.fiber_batch_size, 1)
        for i in range(n):
            idx = perm[i * self.fiber_batch_size: (i + 1) * self.fiber_batch_size if i < n - 1 else len(x)]
            loss = cflow_loss(self.head.fiber_log_prob(layer, x[idx], cond[idx])).mean()
            opt.zero_grad()
            self.manual_backward(loss - self.head.log_prior().to(loss) / self.head.n_train)
            opt.step()
            total, count = total + loss.detach() * len(idx), count + len(idx)
    mean = total / count
    self.log_epoch_mean("train_loss", mean, len(batch[0]))
    self.log_epoch_means(batch_idx)
    return mean


@pytest.mark.parametrize("arch", ["fastflow", "cflow", "uflow"])
@pytest.mark.parametrize("coupling", COUPLINGS)
def test_map_loss_and_training_are_bitwise_the_old_formula(arch, coupling):
    """The one MAP-loss helper changed no bit: each head's loss (with the App. B.2 prior, ``n_train`` = 7) equals
    the formula the head had written out, and a short ``fit`` through its Lightning module (CFlow: its manual
    fiber-batch steps) gives the same losses and weights as the same module running the old formula."""
    from lightning.pytorch.callbacks import Callback
    from usfkit.models.heads.base import FlowHead
    from usfkit.models.heads.cflow import CflowModule
    from usfkit.models.heads.fastflow import FastflowModule
    from usfkit.models.heads.uflow import UflowModule
    from usfkit.train import fit

    head = perturb(make_head(arch, coupling, prior_sigma=0.5, n_train=7))
    assert isinstance(head, FlowHead)
    feats = features(SHAPES[arch], batch=3, dtype=torch.float32)
    assert head.log_prior().abs() > 1e-3  # the prior term is really there
    assert torch.equal(head.loss(feats), _old_loss(arch, head, feats))

    module_cls = {"fastflow": FastflowModule, "cflow": CflowModule, "uflow": UflowModule}[arch]

    class Old(module_cls):
        if arch == "cflow":
            training_step = _old_cflow_step
        else:
            def loss(self, features):
                return _old_loss(arch, self.head, list(features))

    class Keep(Callback):
        def __init__(self):
            self.losses = []

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            self.losses.append((outputs["loss"] if isinstance(outputs, dict) else outputs).detach().clone())

    data = TensorDataset(*features(SHAPES[arch], batch=4, seed=5, dtype=torch.float32))
    runs = []
    for cls in (module_cls, Old):
        trained, keep = perturb(make_head(arch, coupling, prior_sigma=0.5, n_train=7)), Keep()
        kw = {"fiber_batch_size": 8} if arch == "cflow" else {}
        fit(cls(trained, lr=1e-3, **kw), data, max_epochs=2, batch_size=2, seed=3, progress="none", callbacks=[keep],
            accelerator="cpu")
        runs.append((torch.stack(keep.losses), torch.cat([p.detach().flatten() for p in trained.parameters()])))
    (losses, weights), (old_losses, old_weights) = runs
    assert len(losses) == 4 and torch.isfinite(losses).all()
    assert torch.equal(losses, old_losses) and torch.equal(weights, old_weights)
