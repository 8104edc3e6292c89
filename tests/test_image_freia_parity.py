"""Parity guard: the affine FastFlow, CFlow and U-Flow heads are anomalib v2.0.0's flows.

anomalib builds FastFlow's and CFlow's flows as a FrEIA ``SequenceINN`` of ``AllInOneBlock``s
(affine coupling with soft clamping, global affine scaling, fixed random permutation); CFlow's
blocks also see the positional encoding as a condition.  U-Flow is a FrEIA ``GraphINN``: per
scale, coarsest first, a stage of ``AllInOneBlock``s, then ``Split`` (a part of the channels goes
up), ``IRevNetUpsampling`` and ``Concat`` with the next finer scale's features; each split's rest
and the finest stage's output are the latents.  We build these references here (with FrEIA's own
modules; anomalib 2.0.0 copies ``AllInOneBlock`` unchanged apart from drawing the permutation
with ``torch.randperm``), copy the head's weights into them and check that both have the same
number of trainable parameters and give the same latents and log-determinants.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

from usfkit.models.flows import ChannelPermutation, GlobalAffine, SplitConditioner
from usfkit.models.heads.cflow import CflowHead
from usfkit.models.heads.couplings import count_parameters
from usfkit.models.heads.fastflow import FastflowHead
from usfkit.models.heads.uflow import UflowHead

Ff = pytest.importorskip("FrEIA.framework")
Fm = pytest.importorskip("FrEIA.modules")

torch.set_num_threads(1)


# ---- the reference, as anomalib 2.0.0 builds it ---------------------------------------
def anomalib_conv_subnet(kernel_size: int, hidden_ratio: float):
    """anomalib's ``subnet_conv_func``: zero padding, conv, ReLU, zero padding, conv."""
    def make(in_channels: int, out_channels: int) -> nn.Module:
        hidden = int(in_channels * hidden_ratio)
        pad = (kernel_size // 2 - (1 + kernel_size) % 2, kernel_size // 2) * 2
        return nn.Sequential(nn.ZeroPad2d(pad), nn.Conv2d(in_channels, hidden, kernel_size), nn.ReLU(),
                             nn.ZeroPad2d(pad), nn.Conv2d(hidden, out_channels, kernel_size))
    return make


def anomalib_fastflow_block(shape, blocks: int, hidden_ratio: float, clamp: float, conv3x3_only: bool = False):
    """anomalib's ``create_fast_flow_block``: kernels 3, 1, 3, 1, ... (3 only if ``conv3x3_only``)."""
    inn = Ff.SequenceINN(*shape)
    for i in range(blocks):
        k = 1 if i % 2 == 1 and not conv3x3_only else 3
        inn.append(Fm.AllInOneBlock, subnet_constructor=anomalib_conv_subnet(k, hidden_ratio),
                   affine_clamping=clamp, permute_soft=False)
    return inn


def anomalib_fc_subnet(in_features: int, out_features: int) -> nn.Module:
    return nn.Sequential(nn.Linear(in_features, 2 * in_features), nn.ReLU(), nn.Linear(2 * in_features, out_features))


def anomalib_cflow_head(condition_dim: int, blocks: int, clamp: float, channels: int):
    """anomalib's ``cflow_head``: the condition is input 0 of every block."""
    inn = Ff.SequenceINN(channels)
    for _ in range(blocks):
        inn.append(Fm.AllInOneBlock, cond=0, cond_shape=(condition_dim,), subnet_constructor=anomalib_fc_subnet,
                   affine_clamping=clamp, global_affine_type="SOFTPLUS", permute_soft=False)
    return inn


def anomalib_uflow_subnet(kernel_size: int, ratio: float):
    """anomalib's ``AffineCouplingSubnet``: conv(k, "same"), ReLU, conv(k, "same")."""
    def make(in_channels: int, out_channels: int) -> nn.Module:
        mid = int(in_channels * ratio)
        return nn.Sequential(nn.Conv2d(in_channels, mid, kernel_size, padding="same"), nn.ReLU(),
                             nn.Conv2d(mid, out_channels, kernel_size, padding="same"))
    return make


def anomalib_uflow_graph(shapes, flow_steps: int, clamp: float, ratio: float = 1.0):
    """anomalib's ``UflowModel.build_flow`` on inputs of ``shapes`` (finest first): the ``GraphINN`` and its
    ``AllInOneBlock`` nodes, stage by stage, coarsest first."""
    def stage(in_node):
        nodes = []
        for step in range(flow_steps):
            in_node = Ff.Node(in_node, Fm.AllInOneBlock, {"subnet_constructor": anomalib_uflow_subnet(
                3 if step % 2 == 0 else 1, ratio), "affine_clamping": clamp, "permute_soft": False})
            nodes.append(in_node)
        return nodes

    inputs = [Ff.InputNode(*s, name=f"cond_{k}") for k, s in enumerate(shapes)]
    nodes, outputs, stages = [], [], []
    last = inputs[-1]
    for i in reversed(range(1, len(inputs))):
        flows = stage(last)
        volume = flows[-1].output_dims[0][0]
        split = Ff.Node(flows[-1], Fm.Split, {"section_sizes": (volume // 8 * 4, volume - volume // 8 * 4), "dim": 0})
        outputs.append(Ff.OutputNode(split.out1))
        up = Ff.Node(split.out0, Fm.IRevNetUpsampling, {})
        last = Ff.Node([inputs[i - 1].out0, up.out0], Fm.Concat, {"dim": 0})
        nodes.extend([*flows, split, up, last])
        stages.append(flows)
    flows = stage(last)
    outputs.append(Ff.OutputNode(flows[-1]))
    nodes.extend(flows)
    stages.append(flows)
    return Ff.GraphINN(inputs + nodes + outputs[::-1]), [[node.module for node in st] for st in stages]


# ---- copying the head's weights into the reference -------------------------------------
def _weighted(module: nn.Module) -> list[nn.Module]:
    return [m for m in module.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def _parts(flow: nn.Module, kind: type) -> list[nn.Module]:
    return [m for m in flow.modules() if isinstance(m, kind)]


def copy_into_reference(flow: nn.Module, blocks) -> None:
    """Weights of one of our per-scale flows -> FrEIA's ``AllInOneBlock``s (a ``SequenceINN``'s ``module_list``
    or one U-Flow stage), block by block.

    FrEIA's subnet predicts (log-scale, shift), ours (shift, log-scale): the rows of the
    last layer swap halves.  The global scaling's raw parameter, its offset and the
    permutation carry over as they are."""
    subnets = [m.subnet for m in _parts(flow, SplitConditioner)]
    scalings, perms = _parts(flow, GlobalAffine), _parts(flow, ChannelPermutation)
    assert len(subnets) == len(scalings) == len(perms) == len(blocks)
    with torch.no_grad():
        for block, subnet, scaling, perm in zip(blocks, subnets, scalings, perms):
            ours, theirs = _weighted(subnet), _weighted(block.subnet)
            assert len(ours) == len(theirs)
            for k, (a, b) in enumerate(zip(ours, theirs)):
                w, bias = a.weight, a.bias
                if k == len(ours) - 1:
                    half = w.shape[0] // 2
                    w, bias = torch.cat([w[half:], w[:half]]), torch.cat([bias[half:], bias[:half]])
                b.weight.copy_(w)
                b.bias.copy_(bias)
            block.global_scale.copy_(scaling.raw_scale.view_as(block.global_scale))
            block.global_offset.copy_(scaling.offset.view_as(block.global_offset))
            eye = torch.eye(len(perm.perm), dtype=block.w_perm.dtype)
            block.w_perm.copy_(eye[perm.perm].view_as(block.w_perm))  # y_i = x_perm[i]
            block.w_perm_inv.copy_(eye[perm.perm].T.reshape(block.w_perm_inv.shape))


def trainable(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def perturb(module: nn.Module, scale: float = 0.3, seed: int = 1) -> nn.Module:
    """Move every weight off its initialisation: the subnets' zero-initialised last layers
    would otherwise make every coupling the identity."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            if p.dtype.is_floating_point:
                p.add_(scale * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    return module


def _features(shapes, batch: int = 3, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, *s, generator=gen, dtype=torch.float64) for s in shapes]


# ---- the checks ------------------------------------------------------------------------
FASTFLOW_SHAPES = [(6, 4, 4), (7, 2, 2)]  # an odd channel count: the split is ceil / floor
CFLOW_SHAPES = [(6, 3, 2), (7, 2, 2)]


@pytest.mark.parametrize("conv3x3_only", [False, True])
def test_fastflow_affine_head_equals_anomalib_freia_flow(conv3x3_only):
    torch.manual_seed(0)
    head = FastflowHead(FASTFLOW_SHAPES, "affine", blocks=4, hidden_ratio=1.0, clamp=2.0, conv3x3_only=conv3x3_only)
    perturb(head).double().eval()
    torch.manual_seed(0)
    refs = [anomalib_fastflow_block(s, 4, 1.0, 2.0, conv3x3_only) for s in FASTFLOW_SHAPES]
    for flow, ref in zip(head.flows, refs):
        assert trainable(flow) == trainable(ref)
        copy_into_reference(flow, ref.module_list)
        ref.double().eval()
    feats = _features(FASTFLOW_SHAPES)
    with torch.no_grad():
        latents, logdets = head(feats)
        for x, z, ld, ref in zip(head.flow_inputs(feats), latents, logdets, refs):
            z_ref, ld_ref = ref(x)
            torch.testing.assert_close(z, z_ref, atol=1e-10, rtol=1e-10)
            torch.testing.assert_close(ld, ld_ref, atol=1e-10, rtol=1e-10)
            assert ld.std() > 1e-3  # the affine couplings really act
            torch.testing.assert_close(ref(z, rev=True)[0], x, atol=1e-9, rtol=1e-9)
    # the whole head: the flows plus anomalib's LayerNorms
    assert count_parameters(head, trainable_only=True) == sum(map(trainable, refs)) + trainable(head.norms)


def test_cflow_affine_head_equals_anomalib_freia_decoders():
    torch.manual_seed(0)
    head = CflowHead(CFLOW_SHAPES, "affine", blocks=4, clamp=1.9, condition_dim=8)
    perturb(head).double().eval()
    torch.manual_seed(0)
    refs = [anomalib_cflow_head(8, 4, 1.9, c) for c, _, _ in CFLOW_SHAPES]
    for dec, ref in zip(head.decoders, refs):
        assert trainable(dec) == trainable(ref)
        copy_into_reference(dec, ref.module_list)
        ref.double().eval()
    assert count_parameters(head, trainable_only=True) == sum(map(trainable, refs))
    feats = _features(CFLOW_SHAPES)
    with torch.no_grad():
        latents, logdets = head(feats)
        for f, z, ld, ref in zip(feats, latents, logdets, refs):
            x, cond = head.fibers(f)
            z_ref, ld_ref = ref(x, c=[cond])
            torch.testing.assert_close(z, z_ref, atol=1e-10, rtol=1e-10)
            torch.testing.assert_close(ld, ld_ref, atol=1e-10, rtol=1e-10)
            assert ld.std() > 1e-3
            torch.testing.assert_close(ref(z, c=[cond], rev=True)[0], x, atol=1e-9, rtol=1e-9)


# finest first; the stages, coarsest first, act on 16, 10 + (16 // 8 * 4) / 4 = 12 and 6 + (12 // 8 * 4) / 4 = 7
# channels (7: odd, so the coupling split is uneven)
UFLOW_SHAPES = [(6, 8, 8), (10, 4, 4), (16, 2, 2)]


@pytest.mark.parametrize("layer_norm", [False, True])
def test_uflow_affine_head_equals_anomalib_freia_graph(layer_norm):
    """The whole U-shaped flow, not only its steps: the splits, the upsampling (FrEIA's ``IRevNetUpsampling`` is
    ``pixel_shuffle``'s channel order), the concatenations, the latents' order and the total log-determinant."""
    torch.manual_seed(0)
    head = UflowHead(UFLOW_SHAPES, "affine", blocks=4, clamp=2.0, hidden_ratio=1.0, layer_norm=layer_norm)
    perturb(head).double().eval()
    torch.manual_seed(0)
    ref, stages = anomalib_uflow_graph(UFLOW_SHAPES, 4, 2.0)
    assert len(stages) == len(head.stages)
    for ours, blocks in zip(head.stages, stages):  # coarsest first in both
        assert trainable(ours) == sum(map(trainable, blocks))
        copy_into_reference(ours, blocks)
    assert count_parameters(head, trainable_only=True) == trainable(ref) + (trainable(head.norms) if layer_norm else 0)
    ref.double().eval()
    feats = _features(UFLOW_SHAPES, seed=2)
    with torch.no_grad():
        latents, logdet = head(feats)
        ref_latents, ref_logdet = ref(head.flow_inputs(feats))
        assert len(latents) == len(ref_latents) == len(UFLOW_SHAPES)
        for z, z_ref in zip(latents, ref_latents):  # finest first
            torch.testing.assert_close(z, z_ref, atol=1e-10, rtol=1e-10)
        torch.testing.assert_close(logdet, ref_logdet, atol=1e-10, rtol=1e-10)
        assert logdet.std() > 1e-3  # the affine couplings really act
        for x, x_ref in zip(head.flow_inputs(feats), ref(list(latents), rev=True)[0]):
            torch.testing.assert_close(x_ref, x, atol=1e-9, rtol=1e-9)
