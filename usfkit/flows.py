"""Uniformly scaling flows (USFlow) and their affine counterpart (NonUSFlow).

Paper: Abu Zaid et al., "On Uniformly Scaling Flows", arXiv 2510.09452, App. B.1.

Every layer maps ``x -> (y, log_abs_det)`` where ``log_abs_det`` has shape
``(batch,)``, has an exact ``inverse`` and a class attribute
``constant_det`` that says whether its Jacobian determinant is the same for
every input.  Tensors are ``(batch, channels)`` for vectors or
``(batch, channels, *spatial)`` for feature maps; the LU map acts on the
channel axis, so on a feature map it is a 1x1 convolution.

A flow is ``phi = A_{n+1} o B_n o ... o B_1`` with blocks
``B_i = A_i^{-1} o C_i o A_i`` (A: LU affine map, C: masked coupling).
USFlow and NonUSFlow share every part except the coupling:
additive (constant determinant) versus affine (input-dependent determinant).
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor, nn


def _spatial_size(x: Tensor) -> int:
    return math.prod(x.shape[2:])


def _to_channels_last(x: Tensor) -> Tensor:
    return x.movedim(1, -1)


def _to_channels_first(x: Tensor) -> Tensor:
    return x.movedim(-1, 1)


# --------------------------------------------------------------------------
# LU-decomposed affine map (dense and 1x1-convolution in one class)
# --------------------------------------------------------------------------
class LUAffine(nn.Module):
    """Bijective affine map ``A(x) = M x + b`` with ``M = L U`` on the channel axis.

    ``L`` is unit lower triangular, ``U`` upper triangular with diagonal
    ``u = sign * exp(log_abs_u)``; so ``ln|det M| = sum(log_abs_u)`` and, on a
    ``c x h x w`` feature map, ``ln|det J| = h * w * sum(log_abs_u)`` for every
    input.  ``log_abs_u`` is the parameter the bilateral log-normal prior acts on.
    """

    constant_det = True

    def __init__(self, channels: int, init_scale: float = 0.1, generator: torch.Generator | None = None):
        super().__init__()
        c = channels
        self.channels = c
        self.lower = nn.Parameter(torch.randn(c, c, generator=generator) * init_scale / math.sqrt(c))
        self.upper = nn.Parameter(torch.randn(c, c, generator=generator) * init_scale / math.sqrt(c))
        self.log_abs_u = nn.Parameter(torch.zeros(c))
        self.bias = nn.Parameter(torch.zeros(c))
        self.register_buffer("sign", torch.ones(c))
        self.register_buffer("eye", torch.eye(c))

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

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        lower, upper = self.factors()  # x M^T = (x U^T) L^T: two products, no c x c x c matrix product
        y = _to_channels_first((_to_channels_last(x) @ upper.T) @ lower.T + self.bias)
        logdet = self.log_abs_det_matrix() * _spatial_size(x)
        return y, logdet.expand(x.shape[0])

    def inverse(self, y: Tensor) -> Tensor:
        lower, upper = self.factors()
        rhs = (_to_channels_last(y) - self.bias).reshape(-1, self.channels).T  # (c, n)
        z = torch.linalg.solve_triangular(lower, rhs, upper=False, unitriangular=True)
        x = torch.linalg.solve_triangular(upper, z, upper=True)
        return _to_channels_first(x.T.reshape(_to_channels_last(y).shape))


# --------------------------------------------------------------------------
# Masks and conditioners
# --------------------------------------------------------------------------
def channel_mask(channels: int, parity: int) -> Tensor:
    """A {0,1} mask over channels: every other channel, starting at ``parity``."""
    return ((torch.arange(channels) + parity) % 2).float()


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


def _broadcast_mask(mask: Tensor, x: Tensor) -> Tensor:
    return mask.view(1, -1, *([1] * (x.dim() - 2)))


# --------------------------------------------------------------------------
# Coupling layers
# --------------------------------------------------------------------------
class AdditiveCoupling(nn.Module):
    """``C(x) = x + (1 - m) * f(m * x)``: volume preserving, ``ln|det J| = 0``."""

    constant_det = True

    def __init__(self, mask: Tensor, conditioner: nn.Module):
        super().__init__()
        self.register_buffer("mask", mask)
        self.conditioner = conditioner

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        m = _broadcast_mask(self.mask, x)
        y = x + (1 - m) * self.conditioner(m * x)
        return y, x.new_zeros(x.shape[0])

    def inverse(self, y: Tensor) -> Tensor:
        m = _broadcast_mask(self.mask, y)
        return y - (1 - m) * self.conditioner(m * y)


class AffineCoupling(nn.Module):
    """``C(x) = m*x + (1-m) * (exp(s(m*x)) * x + t(m*x))``: the determinant depends on x.

    ``activation`` says how the conditioner's raw output becomes the log-scale ``s``:

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

    Either way a single layer cannot change a determinant by more than ``exp(clamp)``
    per transformed dimension.
    """

    constant_det = False

    def __init__(self, mask: Tensor, conditioner: nn.Module, clamp: float = 2.0, activation: str = "tanh"):
        super().__init__()
        if activation not in ("tanh", "softplus"):
            raise ValueError(f"activation must be 'tanh' or 'softplus', got {activation!r}")
        self.register_buffer("mask", mask)
        self.conditioner = conditioner
        self.clamp = clamp
        self.activation = activation

    def _shift_log_scale(self, x_masked: Tensor, m: Tensor) -> tuple[Tensor, Tensor]:
        shift, raw = self.conditioner(x_masked).chunk(2, dim=1)
        if self.activation == "tanh":
            log_scale = self.clamp * torch.tanh(raw / self.clamp)
        else:  # softplus scale, identity at raw = 0, log cut to [-clamp, clamp]
            scale = nn.functional.softplus(raw + math.log(math.e - 1))
            log_scale = scale.clamp(math.exp(-self.clamp), math.exp(self.clamp)).log()
        return (1 - m) * shift, (1 - m) * log_scale

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        m = _broadcast_mask(self.mask, x)
        shift, log_scale = self._shift_log_scale(m * x, m)
        y = x * log_scale.exp() + shift
        return y, log_scale.flatten(1).sum(1)

    def inverse(self, y: Tensor) -> Tensor:
        m = _broadcast_mask(self.mask, y)
        shift, log_scale = self._shift_log_scale(m * y, m)
        return (y - shift) * torch.exp(-log_scale)


# --------------------------------------------------------------------------
# Blocks and flows
# --------------------------------------------------------------------------
class ConjugateBlock(nn.Module):
    """``B = A^{-1} o C o A``: the LU map's determinant cancels inside the block."""

    def __init__(self, affine: LUAffine, coupling: nn.Module):
        super().__init__()
        self.affine = affine
        self.coupling = coupling
        self.constant_det = coupling.constant_det

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h, ld_a = self.affine(x)
        h, ld_c = self.coupling(h)
        return self.affine.inverse(h), ld_a + ld_c - ld_a

    def inverse(self, y: Tensor) -> Tensor:
        h, _ = self.affine(y)
        return self.affine.inverse(self.coupling.inverse(h))


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


class Flow(nn.Module):
    """A normalizing flow ``phi`` with an isotropic Gaussian base.

    ``forward(x)`` returns the latent ``z = phi(x)`` and ``ln|det J_phi(x)|``;
    ``log_prob(x) = ln N(z; c, s^2 I) + ln|det J_phi(x)|`` (Eq. 3).
    """

    def __init__(self, layers: Sequence[nn.Module], base: GaussianBase,
                 prior_sigma: float | None = None, prior_rule: str = "exact"):
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.base = base
        self.prior_sigma = prior_sigma
        self.prior_rule = prior_rule

    @property
    def constant_det(self) -> bool:
        """True when every layer has a constant determinant: the flow is a USF (Eq. 4)."""
        return all(layer.constant_det for layer in self.layers)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        logdet = x.new_zeros(x.shape[0])
        for layer in self.layers:
            x, ld = layer(x)
            logdet = logdet + ld
        return x, logdet

    def inverse(self, z: Tensor) -> Tensor:
        for layer in reversed(self.layers):
            z = layer.inverse(z)
        return z

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

    def log_det_prior(self) -> Tensor:
        """Log-density of the bilateral log-normal prior on every LU diagonal, on the
        ``ln|u_i|`` scale: ``sum N(ln|u_i|; 0, sigma0^2)`` (App. B.2).  Zero when the
        flow has no prior (``prior_sigma=None``)."""
        total = self.base.center.new_zeros(())
        if self.prior_sigma is None:
            return total
        spatial = math.prod(self.base.shape[1:])
        for lu in self.lu_layers():
            s0 = lu_prior_sigma0(self.prior_sigma, lu.channels, spatial, self.prior_rule)
            total = total + torch.distributions.Normal(0.0, s0).log_prob(lu.log_abs_u).sum()
        return total

    def log_abs_det_constant(self) -> Tensor:
        """``ln psi_det(w)`` for a USF: the log-determinant, which depends only on the weights."""
        if not self.constant_det:
            raise ValueError("this flow is not uniformly scaling: its log-determinant depends on the input")
        probe = self.base.center.unsqueeze(0)
        return self(probe)[1][0]


def build_flow(shape: int | Sequence[int], coupling: str = "additive", blocks: int = 4,
               hidden: int = 64, layers: int = 2, clamp: float = 2.0,
               center: float | Tensor = 0.0, scale: float = 1.0,
               prior_sigma: float | None = None, prior_rule: str = "exact",
               lu_init_scale: float = 0.1, seed: int | None = None, affine_activation: str = "tanh") -> Flow:
    """Build ``phi = A_{n+1} o B_n o ... o B_1`` of App. B.1.

    ``coupling="additive"`` gives a USFlow, ``"affine"`` a NonUSFlow; nothing else
    differs (the affine conditioner's last layer is twice as wide, for shift and
    log-scale).  ``shape`` is ``d`` for vectors or ``(C, H, W)`` for feature maps.
    ``affine_activation`` (``"tanh"`` or ``"softplus"``) picks the affine coupling's
    log-scale bound, see :class:`AffineCoupling`; additive couplings ignore it.
    """
    if coupling not in ("additive", "affine"):
        raise ValueError(f"coupling must be 'additive' (USFlow) or 'affine' (NonUSFlow), got {coupling!r}")
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    if shape[0] < 2:
        raise ValueError(f"coupling layers need at least 2 channels, got shape {shape}")
    if seed is not None:
        torch.manual_seed(seed)
    out_factor = 1 if coupling == "additive" else 2
    mods: list[nn.Module] = []
    for i in range(blocks):
        cond = make_conditioner(shape, out_factor, hidden, layers)
        mask = channel_mask(shape[0], i % 2)
        coup = AdditiveCoupling(mask, cond) if coupling == "additive" else AffineCoupling(mask, cond, clamp, affine_activation)
        mods.append(ConjugateBlock(LUAffine(shape[0], lu_init_scale), coup))
    mods.append(LUAffine(shape[0], lu_init_scale))
    return Flow(mods, GaussianBase(shape, center, scale), prior_sigma, prior_rule)


def USFlow(shape: int | Sequence[int], **kwargs) -> Flow:
    """A uniformly scaling flow: additive coupling + LU maps (App. B.1)."""
    return build_flow(shape, coupling="additive", **kwargs)


def NonUSFlow(shape: int | Sequence[int], **kwargs) -> Flow:
    """The same architecture with affine coupling: not uniformly scaling."""
    return build_flow(shape, coupling="affine", **kwargs)
