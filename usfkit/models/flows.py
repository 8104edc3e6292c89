"""The flow kernel: uniformly scaling flows (USFlow), their affine counterpart (NonUSFlow),
and the parts the image heads (FastFlow, CFlow, U-Flow) are built from.

Paper: Abu Zaid et al., "On Uniformly Scaling Flows", arXiv 2510.09452, App. B.1, B.2.

Every part is a :class:`Transform`:

* ``forward(x, context=None) -> (y, log_abs_det)`` with ``log_abs_det`` of shape ``(batch,)``;
* ``inverse(y, context=None) -> x``, exact;
* ``constant_det``: whether the Jacobian determinant is the same for every input;
* ``log_prior()``: the log-density of its weights under its prior (App. B.2), a scalar;
  zero when it has none.  One sign convention everywhere: a MAP loss *subtracts* it.

``context`` is an optional conditioning input (CFlow's positional encoding); only the
couplings read it, every other transform passes it by.  Tensors are ``(batch, channels)``
for vectors or ``(batch, channels, *spatial)`` for feature maps; the LU map acts on the
channel axis, so on a feature map it is a 1x1 convolution.

A USFlow is ``phi = A_{n+1} o B_n o ... o B_1`` with blocks ``B_i = A_i^{-1} o C_i o A_i``
(A: :class:`LUAffine`, C: a masked coupling, the block: :class:`ConjugateBlock`), a
:class:`Chain` with a Gaussian base (:class:`Flow`).  USFlow and NonUSFlow share every part
except the coupling: additive (constant determinant) versus affine (input-dependent).

One vocabulary names the variants in every chapter, the ``coupling`` argument
(:data:`COUPLINGS`); the suffix ``_lu`` means "each coupling conjugated by LU maps,
blocks ``A^{-1} o C o A`` (App. B.1)".  Whether a model is a USF is its ``constant_det``,
never its name.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..rng import seeded

__all__ = ["Transform", "LUAffine", "GlobalAffine", "ChannelPermutation", "AdditiveCoupling", "AffineCoupling",
           "ConjugateBlock", "Chain", "GaussianBase", "Flow", "MLPConditioner", "ConvConditioner",
           "SplitConditioner", "make_conditioner", "channel_mask", "half_mask", "lu_prior_sigma0",
           "sample_lu_log_dets", "lu_log_det_variance", "log_normal_prior", "map_loss", "COUPLINGS", "PAPER_FLOWS",
           "check_coupling", "build_flow", "USFlow", "NonUSFlow"]


def _spatial_size(x: Tensor) -> int:
    return math.prod(x.shape[2:])


def _per_channel(v: Tensor, x: Tensor) -> Tensor:
    """A ``(channels,)`` vector shaped to broadcast over ``x``'s channel axis."""
    return v.view(1, -1, *([1] * (x.dim() - 2)))


def lu_prior_sigma0(sigma: float, channels: int, spatial: int = 1, rule: str = "exact") -> float:
    """Standard deviation of ``ln|u_i|`` for the bilateral log-normal prior of App. B.2.

    ``ln|det J| = spatial * sum_i ln|u_i|`` over ``channels`` independent terms.
    ``rule="exact"`` picks ``sigma0 = sigma / (spatial * sqrt(channels))`` so that
    ``ln|det J| ~ N(0, sigma^2)`` as the appendix states; ``rule="paper"`` is the
    appendix's literal formula ``sigma0 = sigma / (channels * spatial)``, under
    which ``ln|det J| ~ N(0, sigma^2 / channels)`` (the two agree for one channel).
    """
    if rule == "exact":
        return sigma / (spatial * math.sqrt(channels))
    if rule == "paper":
        return sigma / (channels * spatial)
    raise ValueError(f"rule must be 'exact' or 'paper', got {rule!r}")


def sample_lu_log_dets(sigma: float, channels: int, height: int = 1, width: int = 1, n: int = 10000,
                       rule: str = "exact", offdiag_scale: float = 0.5, seed: int = 0,
                       chunk: int = 4096) -> Tensor:
    """``ln|det J|`` of ``n`` random 1x1-convolution LU maps on a ``channels x height x
    width`` input, with the diagonal of ``U`` drawn from the prior of App. B.2.

    Each map has ``M = L U``: ``L`` unit lower triangular, ``U`` upper triangular with
    Gaussian off-diagonal entries (``offdiag_scale``; they do not change the determinant)
    and diagonal ``u_i = s_i |u_i|`` with a random sign ``s_i`` and
    ``ln|u_i| ~ N(0, sigma0^2)`` — a bilateral log-normal, ``sigma0`` from
    :func:`lu_prior_sigma0` with ``rule``.  The log-determinant is computed
    from the full matrix, ``h w ln|det M|`` (``slogdet``, float64), not from the diagonal.
    Maps are built ``chunk`` at a time to bound memory.
    """
    c, spatial = channels, height * width
    s0 = lu_prior_sigma0(sigma, c, spatial, rule)
    g = torch.Generator().manual_seed(seed)
    eye = torch.eye(c, dtype=torch.float64)
    out = []
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        log_abs_u = torch.randn(m, c, generator=g, dtype=torch.float64) * s0
        sign = torch.randint(0, 2, (m, c), generator=g).double() * 2 - 1
        lower = torch.tril(torch.randn(m, c, c, generator=g, dtype=torch.float64) * offdiag_scale, -1) + eye
        upper = (torch.triu(torch.randn(m, c, c, generator=g, dtype=torch.float64) * offdiag_scale, 1)
                 + torch.diag_embed(sign * log_abs_u.exp()))
        out.append(spatial * torch.linalg.slogdet(lower @ upper).logabsdet)
    return torch.cat(out)


def lu_log_det_variance(sigma: float, channels: int, spatial: int = 1, rule: str = "exact") -> float:
    """Analytic ``Var(ln|det J|) = spatial^2 * channels * sigma0^2``: ``sigma^2`` for the exact
    rule, ``sigma^2 / channels`` for the appendix's literal ``sigma0 = sigma/(c h w)``."""
    return spatial**2 * channels * lu_prior_sigma0(sigma, channels, spatial, rule) ** 2


def log_normal_prior(log_scales: Tensor, sigma0: float | None) -> Tensor:
    """``sum_i ln N(ln|s_i|; 0, sigma0^2)``: the bilateral log-normal prior of App. B.2 on
    scales ``s_i``, written on the log scale.  Zero when ``sigma0`` is None (no prior)."""
    if sigma0 is None:
        return log_scales.new_zeros(())
    # Normal(0, sigma0).log_prob's own formula, written out: building a validating Normal every step costs host
    # synchronisations (.item()) that stall a GPU; the arithmetic, and so every bit of the result, is the same
    scale = torch.as_tensor(sigma0, dtype=torch.get_default_dtype())  # a CPU scalar, as Normal(0, sigma0) holds it
    return (-(log_scales**2) / (2 * scale**2) - scale.log() - math.log(math.sqrt(2 * math.pi))).sum()


def map_loss(nll: Tensor, model: nn.Module, n_train: Tensor | float) -> Tensor:
    """The maximum-a-posteriori loss of every flow in the book: ``nll - ln prior(w) / n_train``.

    ``nll``: the mean negative log-likelihood of a batch (or a head's own likelihood loss); ``model``: anything
    with a ``log_prior()`` (a :class:`Transform`, an image head); dividing the prior by the training-set size
    ``n_train`` weighs it once per data set, as App. B.2's posterior does, not once per batch.  Without a prior
    ``log_prior()`` is zero and this is maximum likelihood.  The prior is cast to the loss's dtype, never moved
    to its device (a copy from the host would stall a GPU every step): a prior on the host is a zero scalar,
    which an operation on the device takes as a number."""
    return nll - model.log_prior().to(dtype=nll.dtype) / n_train


class Transform(nn.Module):
    """Base class: a bijection with its log-determinant, inverse and log-prior (see module doc)."""

    constant_det = True

    def log_prior(self) -> Tensor:
        return torch.zeros(())


# --------------------------------------------------------------------------
# Volume-changing linear maps: LU map (dense and 1x1), per-channel scaling, permutation
# --------------------------------------------------------------------------
class LUAffine(Transform):
    """Bijective affine map ``A(x) = M x + b`` with ``M = L U`` on the channel axis.

    ``L`` is unit lower triangular, ``U`` upper triangular with diagonal
    ``u = sign * exp(log_abs_u)``; so ``ln|det M| = sum(log_abs_u)`` and, on a
    ``c x h x w`` feature map, ``ln|det J| = h * w * sum(log_abs_u)`` for every
    input.  ``prior_sigma0``: the App. B.2 prior ``ln|u_i| ~ N(0, sigma0^2)`` (None: no prior).
    """

    def __init__(self, channels: int, init_scale: float = 0.1, generator: torch.Generator | None = None,
                 prior_sigma0: float | None = None):
        super().__init__()
        c = channels
        self.channels = c
        self.lower = nn.Parameter(torch.randn(c, c, generator=generator) * init_scale / math.sqrt(c))
        self.upper = nn.Parameter(torch.randn(c, c, generator=generator) * init_scale / math.sqrt(c))
        self.log_abs_u = nn.Parameter(torch.zeros(c))
        self.bias = nn.Parameter(torch.zeros(c))
        self.register_buffer("sign", torch.ones(c))
        self.register_buffer("eye", torch.eye(c))
        self.prior_sigma0 = prior_sigma0

    def factors(self) -> tuple[Tensor, Tensor]:
        lower = torch.tril(self.lower, -1) + self.eye
        upper = torch.triu(self.upper, 1) + torch.diag(self.sign * self.log_abs_u.exp())
        return lower, upper

    def matrix(self) -> Tensor:
        lower, upper = self.factors()
        return lower @ upper

    def log_abs_det_matrix(self) -> Tensor:
        """``ln|det M|`` of the channel matrix (a scalar)."""
        return self.log_abs_u.sum()

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        logdet = self.log_abs_det_matrix() * _spatial_size(x)
        return self.apply(x, *self.factors()), logdet.expand(x.shape[0])

    def inverse(self, y: Tensor, context: Tensor | None = None) -> Tensor:
        return self.solve(y, *self.factors())

    def apply(self, x: Tensor, lower: Tensor, upper: Tensor) -> Tensor:
        """``M x + b`` from given factors (a block that needs ``A`` and ``A^{-1}`` builds them once)."""
        # x M^T = (x U^T) L^T: two products, no c x c x c matrix product
        return ((x.movedim(1, -1) @ upper.T) @ lower.T + self.bias).movedim(-1, 1)

    def solve(self, y: Tensor, lower: Tensor, upper: Tensor) -> Tensor:
        """``M^{-1} (y - b)`` from given factors: two triangular solves."""
        y_last = y.movedim(1, -1)
        rhs = (y_last - self.bias).reshape(-1, self.channels).T  # (c, n)
        z = torch.linalg.solve_triangular(lower, rhs, upper=False, unitriangular=True)
        x = torch.linalg.solve_triangular(upper, z, upper=True)
        return x.T.reshape(y_last.shape).movedim(-1, 1)

    def log_prior(self) -> Tensor:
        return log_normal_prior(self.log_abs_u, self.prior_sigma0)


class GlobalAffine(Transform):
    """Learned per-channel scaling ``y = s * x + b`` with ``s = 0.1 * softplus_{beta=0.5}(g)``,
    initialised to ``s = 1``: FrEIA's ``AllInOneBlock`` "global affine" (ActNorm-like) step.

    ``ln|det J| = (h * w) * sum(ln s)`` for every input.  ``prior_sigma0``: the App. B.2
    prior ``ln s_i ~ N(0, sigma0^2)`` (None: no prior)."""

    def __init__(self, channels: int, prior_sigma0: float | None = None):
        super().__init__()
        init = 2.0 * math.log(math.exp(5.0) - 1.0)  # 0.1 * softplus_{0.5}(init) == 1
        self.raw_scale = nn.Parameter(torch.full((channels,), init))
        self.offset = nn.Parameter(torch.zeros(channels))
        self.prior_sigma0 = prior_sigma0

    def scale(self) -> Tensor:
        return 0.1 * F.softplus(self.raw_scale, beta=0.5)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        s = self.scale()
        logdet = s.log().sum() * _spatial_size(x)
        return x * _per_channel(s, x) + _per_channel(self.offset, x), logdet.expand(x.shape[0])

    def inverse(self, y: Tensor, context: Tensor | None = None) -> Tensor:
        return (y - _per_channel(self.offset, y)) / _per_channel(self.scale(), y)

    def log_prior(self) -> Tensor:
        return log_normal_prior(self.scale().log(), self.prior_sigma0)


class ChannelPermutation(Transform):
    """A fixed random channel permutation ``y_i = x_{perm[i]}`` (AllInOneBlock with
    ``permute_soft=False``): ``|det J| = 1``."""

    def __init__(self, channels: int):
        super().__init__()
        perm = torch.randperm(channels)
        self.register_buffer("perm", perm)
        self.register_buffer("inv", torch.argsort(perm))

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return x.index_select(1, self.perm), x.new_zeros(x.shape[0])

    def inverse(self, y: Tensor, context: Tensor | None = None) -> Tensor:
        return y.index_select(1, self.inv)


# --------------------------------------------------------------------------
# Masks and conditioners
# --------------------------------------------------------------------------
def channel_mask(channels: int, parity: int) -> Tensor:
    """A {0,1} mask over channels: every other channel, starting at ``parity``."""
    return ((torch.arange(channels) + parity) % 2).float()


def half_mask(channels: int) -> Tensor:
    """AllInOneBlock's split: the first ``ceil(c/2)`` channels are kept (mask 1) and
    condition the last ``floor(c/2)``."""
    keep = channels - channels // 2
    return torch.cat([torch.ones(keep), torch.zeros(channels // 2)])


class MLPConditioner(nn.Module):
    """``f(m*x)`` for vectors: hidden layers with SiLU, last layer initialised to zero
    so that every coupling starts as the identity."""

    def __init__(self, channels: int, out_channels: int, hidden: int = 64, layers: int = 2):
        super().__init__()
        sizes = [channels] + [hidden] * layers
        mods: list[nn.Module] = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            mods += [nn.Linear(a, b), nn.LayerNorm(b), nn.SiLU()]
        last = nn.Linear(sizes[-1], out_channels)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.net = nn.Sequential(*mods, last)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class ConvConditioner(nn.Module):
    """``f(m*x)`` for feature maps: 3x3 convolutions with SiLU, zero-initialised last layer."""

    def __init__(self, channels: int, out_channels: int, hidden: int = 64, layers: int = 2, kernel_size: int = 3):
        super().__init__()
        pad = kernel_size // 2
        sizes = [channels] + [hidden] * layers
        mods: list[nn.Module] = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            mods += [nn.Conv2d(a, b, kernel_size, padding=pad), nn.GroupNorm(1, b), nn.SiLU()]
        last = nn.Conv2d(sizes[-1], out_channels, kernel_size, padding=pad)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.net = nn.Sequential(*mods, last)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def make_conditioner(shape: Sequence[int], out_factor: int, hidden: int, layers: int) -> nn.Module:
    """Conditioner for inputs of ``shape`` (without batch): MLP for vectors, conv for maps."""
    channels = shape[0]
    if len(shape) == 1:
        return MLPConditioner(channels, out_factor * channels, hidden, layers)
    if len(shape) == 3:
        return ConvConditioner(channels, out_factor * channels, hidden, layers)
    raise ValueError(f"inputs must be vectors (C,) or feature maps (C, H, W), got shape {tuple(shape)}")


class SplitConditioner(nn.Module):
    """A FrEIA-style ``subnet`` as a conditioner (the coupling network of ``AllInOneBlock``).

    The subnet sees only the channels the mask keeps, followed by the context channels
    if there are any, and predicts values only for the channels the coupling transforms;
    they are scaled by ``out_scale`` (0.1, as AllInOneBlock) and written in place into the
    ``out_factor * channels`` outputs a coupling expects; the rest stay zero.
    """

    def __init__(self, mask: Tensor, subnet: nn.Module, out_factor: int, out_scale: float = 0.1):
        super().__init__()
        channels = len(mask)
        passive = torch.nonzero(mask == 0).squeeze(1)
        self.register_buffer("active", torch.nonzero(mask).squeeze(1))
        self.register_buffer("targets", torch.cat([k * channels + passive for k in range(out_factor)]))
        self.subnet, self.out_factor, self.out_scale, self.channels = subnet, out_factor, out_scale, channels

    def forward(self, h: Tensor) -> Tensor:
        a = self.out_scale * self.subnet(torch.cat([h.index_select(1, self.active), h[:, self.channels:]], 1))
        out = a.new_zeros(a.shape[0], self.out_factor * self.channels, *a.shape[2:])
        return out.index_copy(1, self.targets, a)


# --------------------------------------------------------------------------
# Coupling layers
# --------------------------------------------------------------------------
class _Coupling(Transform):
    """A masked coupling: channels with ``mask == 1`` pass unchanged and, with the context
    (appended as extra channels), feed the conditioner that transforms the others."""

    def __init__(self, mask: Tensor, conditioner: nn.Module):
        super().__init__()
        self.register_buffer("mask", mask)
        self.conditioner = conditioner

    def _condition(self, x: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        m = _per_channel(self.mask, x)
        h = m * x if context is None else torch.cat([m * x, context], 1)
        return self.conditioner(h), m


class AdditiveCoupling(_Coupling):
    """``C(x) = x + (1 - m) * f(m * x)``: volume preserving, ``ln|det J| = 0``."""

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        shift, m = self._condition(x, context)
        return x + (1 - m) * shift, x.new_zeros(x.shape[0])

    def inverse(self, y: Tensor, context: Tensor | None = None) -> Tensor:
        shift, m = self._condition(y, context)
        return y - (1 - m) * shift


class AffineCoupling(_Coupling):
    """``C(x) = m*x + (1-m) * (exp(s(m*x)) * x + t(m*x))``: the determinant depends on x.

    The conditioner outputs ``(t, raw)``; ``activation`` says how ``raw`` becomes the
    log-scale ``s``:

    * ``"tanh"`` (default): ``s = clamp * tanh(raw / clamp)``, the "scaled tanh with
      configurable scale" of App. B.1; ``|s| < clamp``.
    * ``"softplus"``: the scale itself is a softplus, shifted so that ``raw = 0`` is the
      identity, and its log is then cut to the clamp range,
      ``s = ln clip(softplus(raw + ln(e - 1)), exp(-clamp), exp(clamp))``, so
      ``|s| <= clamp``.  This is our reading of the VAE-NonUSFlow prior of App. B.4
      ("softplus as affine activation and clamping at 2.0, analogous to Anomalib
      defaults"): Anomalib's flows use FrEIA's ``AllInOneBlock``, whose default
      ``global_affine_type="SOFTPLUS"`` passes its (global) scale through a softplus and
      whose ``affine_clamping=2.0`` bounds the coupling's log-scale (there with a tanh);
      App. D describes the clamping as cutting the multiplicative part to a range.
      The scale grows linearly rather than exponentially in ``raw``; beyond the clamp the
      gradient of ``s`` is zero.
    * ``"allinone"``: ``s = clamp * tanh(raw)``, the soft clamping of FrEIA's
      ``AllInOneBlock`` that anomalib's FastFlow, CFlow and U-Flow use (there ``raw`` is
      the subnet's output times 0.1, see :class:`SplitConditioner`); ``|s| < clamp``.

    Either way a single layer cannot change a determinant by more than ``exp(clamp)``
    per transformed dimension.
    """

    constant_det = False
    ACTIVATIONS = ("tanh", "softplus", "allinone")

    def __init__(self, mask: Tensor, conditioner: nn.Module, clamp: float = 2.0, activation: str = "tanh"):
        super().__init__(mask, conditioner)
        if activation not in self.ACTIVATIONS:
            raise ValueError(f"activation must be one of {self.ACTIVATIONS}, got {activation!r}")
        self.clamp = clamp
        self.activation = activation

    def _shift_log_scale(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        out, m = self._condition(x, context)
        shift, raw = out.chunk(2, dim=1)
        if self.activation == "tanh":
            log_scale = self.clamp * torch.tanh(raw / self.clamp)
        elif self.activation == "allinone":
            log_scale = self.clamp * torch.tanh(raw)
        else:  # softplus scale, identity at raw = 0, log cut to [-clamp, clamp]
            scale = F.softplus(raw + math.log(math.e - 1))
            log_scale = scale.clamp(math.exp(-self.clamp), math.exp(self.clamp)).log()
        return (1 - m) * shift, (1 - m) * log_scale

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        shift, log_scale = self._shift_log_scale(x, context)
        return x * log_scale.exp() + shift, log_scale.flatten(1).sum(1)

    def inverse(self, y: Tensor, context: Tensor | None = None) -> Tensor:
        shift, log_scale = self._shift_log_scale(y, context)
        return (y - shift) * torch.exp(-log_scale)


# --------------------------------------------------------------------------
# Conjugated blocks and chains
# --------------------------------------------------------------------------
class ConjugateBlock(Transform):
    """``B = A^{-1} o C o A``: the LU map's determinant cancels inside the block, so the
    block scales volume exactly as the coupling does.  The context goes to the coupling."""

    def __init__(self, affine: LUAffine, coupling: Transform):
        super().__init__()
        self.affine = affine
        self.coupling = coupling

    @property
    def constant_det(self) -> bool:
        return self.coupling.constant_det

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        lu = self.affine.factors()  # built once for A and A^{-1}
        h, logdet = self.coupling(self.affine.apply(x, *lu), context)
        return self.affine.solve(h, *lu), logdet  # ln|det A| + ln|det A^{-1}| = 0

    def inverse(self, y: Tensor, context: Tensor | None = None) -> Tensor:
        lu = self.affine.factors()
        return self.affine.solve(self.coupling.inverse(self.affine.apply(y, *lu), context), *lu)

    def log_prior(self) -> Tensor:
        return self.affine.log_prior() + self.coupling.log_prior()


class Chain(Transform):
    """``z = f_n o ... o f_1 (x)`` (FrEIA's ``SequenceINN``): log-determinants and
    log-priors add up; the context is passed to every transform."""

    def __init__(self, layers: Sequence[Transform]):
        super().__init__()
        self.layers = nn.ModuleList(layers)

    @property
    def constant_det(self) -> bool:
        """True when every layer has a constant determinant: the chain is uniformly scaling (Eq. 4)."""
        return all(layer.constant_det for layer in self.layers)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        logdet = x.new_zeros(x.shape[0])
        for layer in self.layers:
            x, ld = layer(x, context)
            logdet = logdet + ld
        return x, logdet

    def inverse(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        for layer in reversed(self.layers):
            z = layer.inverse(z, context)
        return z

    def log_prior(self) -> Tensor:
        return sum((layer.log_prior() for layer in self.layers), torch.zeros(()))


# --------------------------------------------------------------------------
# Flows: a chain with a Gaussian base
# --------------------------------------------------------------------------
class GaussianBase(nn.Module):
    """Isotropic Gaussian base distribution ``N(c, s^2 I)``.

    ``scale**2 = 0.5`` is the base under which the flow NLL *is* the Deep SVDD
    distance term (paper Eq. 5).
    """

    def __init__(self, shape: Sequence[int], center: float | Tensor = 0.0, scale: float = 1.0):
        super().__init__()
        center_t = torch.as_tensor(center, dtype=torch.float32)
        self.register_buffer("center", torch.ones(*shape) * center_t)
        self.scale = float(scale)
        self.shape = tuple(shape)

    @property
    def dim(self) -> int:
        return math.prod(self.shape)

    def sq_dist(self, z: Tensor) -> Tensor:
        return (z - self.center).flatten(1).pow(2).sum(1)

    def log_prob(self, z: Tensor) -> Tensor:
        var = self.scale**2
        return -self.sq_dist(z) / (2 * var) - 0.5 * self.dim * math.log(2 * math.pi * var)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        eps = torch.randn(n, *self.shape, generator=generator, device=self.center.device)
        return self.center + self.scale * eps


class Flow(Chain):
    """A normalizing flow ``phi`` (a :class:`Chain`) with an isotropic Gaussian base.

    ``forward(x)`` returns the latent ``z = phi(x)`` and ``ln|det J_phi(x)|``;
    ``log_prob(x) = ln N(z; c, s^2 I) + ln|det J_phi(x)|`` (Eq. 3).  ``prior_sigma``
    puts the App. B.2 prior on every LU map's diagonal, with ``sigma0`` from
    :func:`lu_prior_sigma0` (``prior_rule``) for the base's spatial size.
    """

    def __init__(self, layers: Sequence[Transform], base: GaussianBase,
                 prior_sigma: float | None = None, prior_rule: str = "exact"):
        super().__init__(layers)
        self.base = base
        self.prior_sigma = prior_sigma
        self.prior_rule = prior_rule
        if prior_sigma is not None:
            spatial = math.prod(base.shape[1:])
            for lu in self.lu_layers():
                lu.prior_sigma0 = lu_prior_sigma0(prior_sigma, lu.channels, spatial, prior_rule)

    def latent(self, x: Tensor) -> Tensor:
        return self(x)[0]

    def log_prob(self, x: Tensor) -> Tensor:
        z, logdet = self(x)
        return self.base.log_prob(z) + logdet

    def latent_norm(self, x: Tensor) -> Tensor:
        """``||phi(x) - c||``: for a USF it ranks inputs exactly as ``-log_prob`` does."""
        return self.base.sq_dist(self.latent(x)).sqrt()

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        return self.inverse(self.base.sample(n, generator))

    def lu_layers(self) -> list[LUAffine]:
        return [m for m in self.modules() if isinstance(m, LUAffine)]

    def log_abs_det_constant(self) -> Tensor:
        """``ln psi_det(w)`` for a USF: the log-determinant, which depends only on the weights."""
        if not self.constant_det:
            raise ValueError("this flow is not uniformly scaling: its log-determinant depends on the input")
        probe = self.base.center.unsqueeze(0)
        return self(probe)[1][0]


#: The four flow variants, by the value of the ``coupling`` argument.
COUPLINGS = {
    "affine": "affine coupling, no LU maps (not uniformly scaling; the image heads' anomalib baseline)",
    "additive": "additive coupling, no LU maps (uniformly scaling; the image ablation)",
    "additive_lu": "additive coupling in LU-conjugated blocks A^-1 o C o A (uniformly scaling; "
                   "the paper's USFlow and the image heads' full USF)",
    "affine_lu": "affine coupling in LU-conjugated blocks A^-1 o C o A (not uniformly scaling; "
                 "the paper's NonUSFlow)",
}

#: The paper's flow names and their coupling.
PAPER_FLOWS = {"USFlow": "additive_lu", "NonUSFlow": "affine_lu"}


def check_coupling(coupling: str, allowed=tuple(COUPLINGS)) -> str:
    """``coupling`` if it is one of ``allowed``; otherwise a ValueError that lists what each value means."""
    if coupling not in allowed:
        meanings = "; ".join(f"{c!r}: {COUPLINGS[c]}" for c in allowed)
        raise ValueError(f"coupling must be one of {', '.join(map(repr, allowed))}, got {coupling!r}. {meanings}.")
    return coupling


def build_flow(shape: int | Sequence[int], coupling: str, blocks: int = 4,
               hidden: int = 64, layers: int = 2, clamp: float = 2.0,
               center: float | Tensor = 0.0, scale: float = 1.0,
               prior_sigma: float | None = None, prior_rule: str = "exact",
               lu_init_scale: float = 0.1, seed: int | None = None, affine_activation: str = "tanh") -> Flow:
    """A flow of ``blocks`` masked couplings with alternating masks, the variant named by
    ``coupling`` (:data:`COUPLINGS`):

    * ``"additive_lu"`` / ``"affine_lu"``: ``phi = A_{n+1} o B_n o ... o B_1`` of App. B.1,
      blocks ``B_i = A_i^{-1} o C_i o A_i``; the last LU map ``A_{n+1}`` sets the volume
      change.  ``"additive_lu"`` is the paper's USFlow, ``"affine_lu"`` its NonUSFlow;
      nothing else differs (the affine conditioner's last layer is twice as wide, for
      shift and log-scale).
    * ``"additive"`` / ``"affine"``: the couplings alone, ``phi = C_n o ... o C_1``, with no
      LU map at all (not even ``A_{n+1}``); an ``"additive"`` flow therefore preserves volume,
      ``ln|det J| = 0``.

    ``shape`` is ``d`` for vectors or ``(C, H, W)`` for feature maps.
    ``affine_activation`` (``"tanh"`` or ``"softplus"``) picks the affine coupling's
    log-scale bound, see :class:`AffineCoupling`; additive couplings ignore it.
    """
    check_coupling(coupling)
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    if shape[0] < 2:
        raise ValueError(f"coupling layers need at least 2 channels, got shape {shape}")
    additive, lu = coupling.startswith("additive"), coupling.endswith("_lu")
    mods: list[Transform] = []
    with seeded(seed):
        for i in range(blocks):
            cond = make_conditioner(shape, 1 if additive else 2, hidden, layers)
            mask = channel_mask(shape[0], i % 2)
            coup = AdditiveCoupling(mask, cond) if additive else AffineCoupling(mask, cond, clamp, affine_activation)
            mods.append(ConjugateBlock(LUAffine(shape[0], lu_init_scale), coup) if lu else coup)
        if lu:
            mods.append(LUAffine(shape[0], lu_init_scale))
        return Flow(mods, GaussianBase(shape, center, scale), prior_sigma, prior_rule)


def USFlow(shape: int | Sequence[int], **kwargs) -> Flow:
    """The paper's uniformly scaling flow: ``build_flow(shape, "additive_lu")`` (App. B.1)."""
    return build_flow(shape, coupling="additive_lu", **kwargs)


def NonUSFlow(shape: int | Sequence[int], **kwargs) -> Flow:
    """The same architecture with affine coupling, not uniformly scaling: ``build_flow(shape, "affine_lu")``."""
    return build_flow(shape, coupling="affine_lu", **kwargs)
