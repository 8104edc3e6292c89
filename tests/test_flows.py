"""The flow claims of the book, checked numerically (paper Eq. 3-5, App. B.1-B.2)."""
import math

import pytest
import torch
from torch.autograd.functional import jacobian

from usfkit.models.flows import (COUPLINGS, PAPER_FLOWS, AdditiveCoupling, AffineCoupling, Chain, ChannelPermutation,
                          ConjugateBlock, GlobalAffine, LUAffine, NonUSFlow, SplitConditioner, USFlow, build_flow,
                          channel_mask, half_mask, lu_log_det_variance, lu_prior_sigma0, make_conditioner,
                          sample_lu_log_dets)
from conftest import randomise

SHAPES = [2, 5, 16, (4, 3, 3), (6, 2, 4)]


def _batch(shape, n=7, seed=1):
    shape = (shape,) if isinstance(shape, int) else shape
    return torch.randn(n, *shape, generator=torch.Generator().manual_seed(seed))


def _autograd_logdet(flow, x):
    """ln|det J| of the flow at each sample, from the full autograd Jacobian."""
    out = []
    for xi in x:
        jac = jacobian(lambda v: flow(v.unsqueeze(0))[0][0], xi)
        d = xi.numel()
        out.append(torch.linalg.slogdet(jac.reshape(d, d)).logabsdet)
    return torch.stack(out)


@pytest.mark.parametrize("shape", SHAPES)
def test_usflow_logdet_is_constant_and_matches_autograd(shape):
    flow = randomise(USFlow(shape, blocks=3, hidden=16, seed=0)).double()
    x = _batch(shape).double() * 2
    _, logdet = flow(x)
    assert flow.constant_det
    assert torch.allclose(logdet, logdet[0].expand_as(logdet), atol=1e-12)
    assert abs(logdet[0].item()) > 1e-3  # the final LU map really scales volume
    torch.testing.assert_close(_autograd_logdet(flow, x), logdet, atol=1e-8, rtol=1e-8)
    assert flow.log_abs_det_constant().item() == pytest.approx(logdet[0].item(), abs=1e-12)


@pytest.mark.parametrize("shape", SHAPES)
def test_nonusflow_logdet_varies_and_matches_autograd(shape):
    flow = randomise(NonUSFlow(shape, blocks=3, hidden=16, seed=0)).double()
    x = _batch(shape).double() * 2
    _, logdet = flow(x)
    assert not flow.constant_det
    assert logdet.std() > 1e-3
    torch.testing.assert_close(_autograd_logdet(flow, x), logdet, atol=1e-8, rtol=1e-8)
    with pytest.raises(ValueError, match="not uniformly scaling"):
        flow.log_abs_det_constant()


@pytest.mark.parametrize("coupling", list(COUPLINGS))
@pytest.mark.parametrize("shape", SHAPES)
def test_inverse_is_exact(shape, coupling):
    flow = randomise(build_flow(shape, coupling=coupling, blocks=4, hidden=16, seed=0)).eval()
    x = _batch(shape, n=64)
    with torch.no_grad():
        z, _ = flow.double()(x.double())  # float64: exact up to rounding
        assert (flow.inverse(z) - x.double()).abs().max() < 1e-9
        assert (flow(flow.inverse(z))[0] - z).abs().max() < 1e-9
    flow = randomise(build_flow(shape, coupling=coupling, blocks=4, hidden=16, seed=0), scale=0.05).eval()
    with torch.no_grad():  # float32 through 9 layers: rounding (eps 1.2e-7) adds up to ~1e-6
        assert (flow.inverse(flow(x)[0]) - x).abs().max() < 1e-5


@pytest.mark.parametrize("coupling", list(COUPLINGS))
@pytest.mark.parametrize("shape", [5, (4, 3, 2)])
def test_coupling_vocabulary(coupling, shape):
    """One meaning per word: ``constant_det`` is True exactly for the additive couplings, the
    suffix ``_lu`` adds LU maps (one per block plus the last one) and nothing else does, and
    the log-determinant is the autograd Jacobian's for every variant."""
    blocks = 3
    flow = randomise(build_flow(shape, coupling, blocks=blocks, hidden=8, seed=0)).double()
    additive, lu = coupling.startswith("additive"), coupling.endswith("_lu")
    assert flow.constant_det is additive
    assert len(flow.lu_layers()) == (blocks + 1 if lu else 0)
    assert all(isinstance(layer, ConjugateBlock) is lu for layer in flow.layers[:blocks])
    couplings = [m for m in flow.modules() if isinstance(m, (AdditiveCoupling, AffineCoupling))]
    assert len(couplings) == blocks and all(isinstance(c, AdditiveCoupling) is additive for c in couplings)
    x = _batch(shape).double() * 2
    _, logdet = flow(x)
    torch.testing.assert_close(_autograd_logdet(flow, x), logdet, atol=1e-8, rtol=1e-8)
    if coupling == "additive":  # no LU map at all: volume preserving
        assert logdet.abs().max().item() < 1e-12
    elif additive:  # the last LU map sets one volume change for every input
        assert logdet.std().item() < 1e-10 and abs(logdet[0].item()) > 1e-3
    else:
        assert logdet.std().item() > 1e-3


def test_paper_flows_are_the_lu_variants():
    assert PAPER_FLOWS == {"USFlow": "additive_lu", "NonUSFlow": "affine_lu"}
    for name, coupling in PAPER_FLOWS.items():
        named = {"USFlow": USFlow, "NonUSFlow": NonUSFlow}[name](4, blocks=2, hidden=8, seed=0)
        built = build_flow(4, coupling, blocks=2, hidden=8, seed=0)
        assert [type(m) for m in named.modules()] == [type(m) for m in built.modules()]
        for a, b in zip(named.parameters(), built.parameters()):
            assert torch.equal(a, b)


def test_flows_differ_only_in_coupling():
    us, non = USFlow(6, blocks=3, hidden=8, seed=0), NonUSFlow(6, blocks=3, hidden=8, seed=0)
    kinds = lambda f: [type(m).__name__ for m in f.modules()]  # noqa: E731
    swap = {"AffineCoupling": "AdditiveCoupling"}
    assert [swap.get(k, k) for k in kinds(non)] == kinds(us)
    assert sum(p.numel() for p in non.parameters()) > sum(p.numel() for p in us.parameters())


def test_lu_affine_logdet_and_inverse_dense_and_conv():
    lu = randomise(LUAffine(5, init_scale=1.0)).double()
    m = lu.matrix()
    assert lu.log_abs_det_matrix().item() == pytest.approx(torch.linalg.slogdet(m).logabsdet.item(), abs=1e-10)
    x = _batch(5).double()
    y, ld = lu(x)
    torch.testing.assert_close(y, x @ m.T + lu.bias)
    torch.testing.assert_close(lu.inverse(y), x)
    fmap = _batch((5, 3, 4)).double()
    y, ld = lu(fmap)  # a 1x1 convolution: ln|det| is h*w times the matrix's
    assert ld[0].item() == pytest.approx(12 * lu.log_abs_det_matrix().item())
    conv = torch.nn.functional.conv2d(fmap, m[:, :, None, None], lu.bias)
    torch.testing.assert_close(y, conv)
    torch.testing.assert_close(lu.inverse(y), fmap)


def test_couplings_leave_masked_part_unchanged():
    mask = channel_mask(6, 0)
    for layer in (AdditiveCoupling(mask, make_conditioner((6,), 1, 8, 1)),
                  AffineCoupling(mask, make_conditioner((6,), 2, 8, 1), clamp=1.5)):
        randomise(layer)
        x = _batch(6)
        y, _ = layer(x)
        assert torch.equal(y * mask, x * mask)
        assert not torch.allclose(y, x)


def test_affine_log_scale_is_bounded_by_clamp():
    layer = randomise(AffineCoupling(channel_mask(4, 1), make_conditioner((4,), 2, 8, 1), clamp=0.5), scale=5.0)
    _, logdet = layer(_batch(4, n=256) * 10)
    assert logdet.abs().max() <= 0.5 * 2 + 1e-6  # two transformed coordinates, |s| < clamp each


def test_log_prob_is_change_of_variables_and_sampling_roundtrips():
    flow = randomise(USFlow(3, blocks=2, hidden=8, center=1.0, scale=0.5, seed=0)).double()
    x = _batch(3).double()
    z, logdet = flow(x)
    gauss = torch.distributions.MultivariateNormal(torch.ones(3, dtype=torch.float64),
                                                   0.25 * torch.eye(3, dtype=torch.float64))
    torch.testing.assert_close(flow.log_prob(x), gauss.log_prob(z) + logdet)
    samples = flow.sample(5, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(flow.inverse(flow(samples)[0]), samples)


def test_latent_norm_ranks_exactly_like_density_for_usf():
    flow = randomise(USFlow(4, blocks=3, hidden=16, seed=0)).double()
    x = _batch(4, n=200).double() * 3
    lp, norm = flow.log_prob(x), flow.latent_norm(x)
    assert torch.equal(torch.argsort(lp, descending=True), torch.argsort(norm))


def test_prior_sigma0_rules():
    assert lu_prior_sigma0(1.0, 4, 9, "exact") == pytest.approx(1 / (9 * 2))
    assert lu_prior_sigma0(1.0, 4, 9, "paper") == pytest.approx(1 / 36)
    assert lu_prior_sigma0(2.0, 1, 1, "exact") == lu_prior_sigma0(2.0, 1, 1, "paper") == 2.0
    with pytest.raises(ValueError):
        lu_prior_sigma0(1.0, 4, 1, "other")


@pytest.mark.parametrize("rule,factor", [("exact", 1.0), ("paper", None)])
def test_prior_induces_lognormal_determinant(rule, factor):
    """ln|u_i| ~ N(0, sigma0^2) i.i.d.  =>  ln|det J| of a c x h x w LU map ~ N(0, sigma^2)
    with the exact rule, and N(0, sigma^2 / c) with the appendix's literal sigma0."""
    sigma, c, h, w, n = 0.7, 6, 3, 2, 20000
    s0 = lu_prior_sigma0(sigma, c, h * w, rule)
    log_u = torch.randn(n, c, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * s0
    lu = LUAffine(c).double()
    fmap = torch.zeros(1, c, h, w, dtype=torch.float64)
    samples = []
    with torch.no_grad():
        for row in log_u[:2000]:  # through the real layer
            lu.log_abs_u.copy_(row)
            samples.append(lu(fmap)[1][0])
    samples = torch.stack(samples)
    torch.testing.assert_close(samples, h * w * log_u[:2000].sum(1))
    ld = h * w * log_u.sum(1)
    expected_var = sigma**2 * (factor if factor else 1.0 / c)
    assert abs(ld.mean().item()) < 4 * math.sqrt(expected_var / n)
    assert ld.var().item() == pytest.approx(expected_var, rel=0.05)


def test_log_prior_is_normal_log_density():
    flow = USFlow((4, 2, 2), blocks=2, hidden=8, prior_sigma=0.5, seed=0)
    s0 = lu_prior_sigma0(0.5, 4, 4)
    n_lu = len(flow.lu_layers())
    assert n_lu == 3
    expected = n_lu * 4 * torch.distributions.Normal(0.0, s0).log_prob(torch.tensor(0.0))
    assert flow.log_prior().item() == pytest.approx(expected.item(), rel=1e-6)
    assert all(lu.prior_sigma0 == s0 for lu in flow.lu_layers())
    assert USFlow(4, blocks=2, seed=0).log_prior().item() == 0.0


@pytest.mark.parametrize("old", ["spline", "usf", "nonusf", "USF", "NonUSF", "USFlow", "additive+lu", None])
def test_unknown_coupling_lists_the_four_values_and_their_meaning(old):
    with pytest.raises(ValueError) as err:
        build_flow(4, coupling=old)
    text = str(err.value)
    assert all(repr(c) in text for c in COUPLINGS) and "LU-conjugated blocks" in text and "USFlow" in text


def test_bad_arguments_say_what_to_do():
    with pytest.raises(TypeError, match="coupling"):  # no default: the variant is always named
        build_flow(4)
    with pytest.raises(ValueError, match="at least 2 channels"):
        USFlow(1)
    with pytest.raises(ValueError, match="feature maps"):
        USFlow((3, 4))


def test_each_transform_owns_its_log_prior_and_chains_sum_them():
    """One sign convention: ``log_prior()`` is a log-density (a MAP loss subtracts it).
    LU maps and global scalings carry the App. B.2 prior on their log-diagonal; couplings
    and permutations have none; a conjugated block counts its LU map once; chains add up."""
    lu = randomise(LUAffine(4, prior_sigma0=0.2))
    scaling = randomise(GlobalAffine(4, prior_sigma0=0.3))
    coupling = AdditiveCoupling(channel_mask(4, 0), make_conditioner((4,), 1, 8, 1))
    normal = torch.distributions.Normal
    torch.testing.assert_close(lu.log_prior(), normal(0.0, 0.2).log_prob(lu.log_abs_u).sum())
    torch.testing.assert_close(scaling.log_prior(), normal(0.0, 0.3).log_prob(scaling.scale().log()).sum())
    assert coupling.log_prior().item() == ChannelPermutation(4).log_prior().item() == 0.0
    assert LUAffine(4).log_prior().item() == 0.0  # no prior_sigma0: no prior
    block = ConjugateBlock(lu, coupling)
    torch.testing.assert_close(block.log_prior(), lu.log_prior())
    chain = Chain([block, Chain([scaling, ChannelPermutation(4)])])
    torch.testing.assert_close(chain.log_prior(), lu.log_prior() + scaling.log_prior())
    assert LUAffine(4, prior_sigma0=0.2).log_prior().item() > 0  # at its mode, a narrow prior's density is > 1


def test_chain_passes_the_context_to_the_couplings():
    """A chain with a context (CFlow's condition): the couplings' conditioners see it as
    extra channels; the other transforms pass it by; the inverse needs the same context."""
    c, p = 5, 3
    mask = half_mask(c)
    assert mask.tolist() == [1, 1, 1, 0, 0]
    subnet = torch.nn.Sequential(torch.nn.Linear(3 + p, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2 * 2))
    coupling = AffineCoupling(mask, SplitConditioner(mask, subnet, 2), 1.5, "allinone")
    chain = Chain([ConjugateBlock(LUAffine(c), coupling), GlobalAffine(c), ChannelPermutation(c)])
    chain = randomise(chain).double()
    x, ctx = _batch(c).double(), _batch(p, seed=2).double()
    z, logdet = chain(x, ctx)
    assert not torch.allclose(z, chain(x, 2 * ctx)[0])  # the output depends on the context
    torch.testing.assert_close(chain.inverse(z, ctx), x)
    jac = torch.stack([torch.linalg.slogdet(jacobian(lambda v: chain(v[None], ci[None])[0][0], xi)).logabsdet
                       for xi, ci in zip(x, ctx)])
    torch.testing.assert_close(logdet, jac)
    assert not chain.constant_det


def test_allinone_log_scale_is_clamp_tanh_of_raw():
    """``activation="allinone"``: FrEIA AllInOneBlock's ``s = clamp * tanh(raw)``."""
    mask = channel_mask(4, 0)
    layer = AffineCoupling(mask, make_conditioner((4,), 2, 8, 1), clamp=1.5, activation="allinone")
    randomise(layer, scale=3.0)
    x = _batch(4)
    _, raw = layer.conditioner(mask * x).chunk(2, dim=1)
    _, log_scale = layer._shift_log_scale(x)
    torch.testing.assert_close(log_scale, (1 - mask) * 1.5 * torch.tanh(raw))


# ----------------------------------------------------------------------------- LU prior sampling (App. B.2)
@pytest.mark.parametrize("channels,h,w", [(8, 3, 3), (16, 1, 1), (1, 4, 4)])
def test_prior_log_det_distribution(channels, h, w):
    sigma, n = 0.7, 40_000
    for rule, expected in (("exact", sigma**2), ("paper", sigma**2 / channels)):
        s = sample_lu_log_dets(sigma, channels, h, w, n=n, rule=rule, seed=3).numpy()
        assert lu_log_det_variance(sigma, channels, h * w, rule) == pytest.approx(expected)
        assert abs(s.mean()) < 5 * math.sqrt(expected / n)
        assert s.var() == pytest.approx(expected, rel=0.05)


def test_paper_rule_differs_from_exact_rule_when_channels_exceed_one():
    a = sample_lu_log_dets(1.0, 8, 2, 2, n=20_000, rule="exact", seed=0).var()
    b = sample_lu_log_dets(1.0, 8, 2, 2, n=20_000, rule="paper", seed=0).var()
    assert (a / b).item() == pytest.approx(8.0, rel=0.05)


def test_sampled_log_det_is_the_determinant_of_the_full_map():
    """The slogdet of the full 1x1-conv map equals h*w*sum(ln|u_i|), which is what LUAffine uses."""
    torch.manual_seed(0)
    lu = LUAffine(6, init_scale=1.0)
    with torch.no_grad():
        lu.log_abs_u.copy_(torch.randn(6) * 0.5)
    x = torch.randn(2, 6, 3, 4)
    _, ld = lu(x)
    full = 12 * torch.linalg.slogdet(lu.matrix().double()).logabsdet
    assert ld[0].item() == pytest.approx(full.item(), abs=1e-4)


def test_sampled_log_dets_are_reproducible():
    a = sample_lu_log_dets(1.0, 4, n=100, seed=5)
    b = sample_lu_log_dets(1.0, 4, n=100, seed=5)
    assert torch.equal(a, b) and torch.isfinite(a).all()


# ----------------------------------------------------------------------------- seeding
@pytest.mark.parametrize("coupling", sorted(COUPLINGS))
def test_seeded_build_leaves_the_global_generator_alone(coupling):
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a = build_flow(4, coupling, blocks=2, hidden=8, seed=7)
    assert torch.equal(torch.get_rng_state(), before)
    torch.manual_seed(7)  # same seed, same weights as seeding the global generator before an unseeded build
    b = build_flow(4, coupling, blocks=2, hidden=8)
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(p, q), name


def test_the_log_normal_prior_is_normal_log_prob_bit_for_bit_without_a_host_sync():
    """App. B.2's prior, computed every training step: the same bits as torch's Normal.log_prob, and no
    ``.item()``-style synchronisation (a stall per call on a GPU)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    from usfkit.models import flows

    class Syncs(TorchDispatchMode):
        n = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            Syncs.n += func is torch.ops.aten._local_scalar_dense.default
            return func(*args, **(kwargs or {}))

    g = torch.Generator().manual_seed(0)
    for dtype in (torch.float32, torch.float64):
        x = torch.randn(7, 5, generator=g, dtype=dtype) * 3
        for sigma0 in (0.01, 0.37, 1.0, 10.0):
            with Syncs():
                ours = flows.log_normal_prior(x, sigma0)
            assert torch.equal(ours, torch.distributions.Normal(0.0, sigma0).log_prob(x).sum())
    assert Syncs.n == 0
    with Syncs():  # what it replaced synchronises when it validates (torch's default): the counter can see it
        torch.distributions.Normal(0.0, 0.5, validate_args=True).log_prob(x)
    assert Syncs.n > 0
