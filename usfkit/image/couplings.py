"""The flow step shared by FastFlow, CFlow and U-Flow, with the coupling as one argument.

All three methods in anomalib v2.0.0 (the code the paper ran, §5.2.1) stack FrEIA's
``AllInOneBlock``: a coupling on a channel split, then a learned per-channel
"global affine" scaling (an ActNorm) and a fixed random channel permutation.  We build
the same step from :mod:`usfkit.flows` parts so that the swap studied in §5.2 is one
visible argument (paper §5.2, §5.2.3, App. D):

* ``"affine"``      -- the original: affine coupling, soft-clamped log-scale
                       ``clamp * tanh(a)`` (FastFlow/U-Flow 2.0, CFlow 1.9);
                       the log-determinant depends on the input;
* ``"additive"``    -- only the coupling swapped for an additive one: the step is
                       uniformly scaling (the global scaling and the permutation have
                       input-independent determinants);
* ``"additive_lu"`` -- additive coupling conjugated by an LU-parameterised affine map,
                       ``A^{-1} o C o A`` (``usfkit.flows.ConjugateBlock``), with the
                       LU diagonal magnitudes fixed at 1 ("LU-parameterized bijective
                       affine transforms with fixed diagonal magnitudes", §5.2).

Every module maps ``x -> (y, log_abs_det)`` with ``log_abs_det`` of shape ``(batch,)``,
has an exact ``inverse`` and a ``constant_det`` flag, as in :mod:`usfkit.flows`.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..flows import AdditiveCoupling, AffineCoupling, ConjugateBlock, LUAffine

COUPLINGS = ("affine", "additive", "additive_lu")

Subnet = Callable[[int, int], nn.Module]  # subnet(in_channels, out_channels)


def check_coupling(coupling: str) -> str:
    if coupling not in COUPLINGS:
        raise ValueError(f"coupling must be one of {COUPLINGS}, got {coupling!r}")
    return coupling


class SplitConditioner(nn.Module):
    """The coupling network of FrEIA's AllInOneBlock as a :mod:`usfkit.flows` conditioner.

    The coupling layers of :mod:`usfkit.flows` call ``conditioner(m * x)`` and expect
    ``out_factor * channels`` outputs.  Here the subnet sees only the channels the mask
    keeps (``mask == 1``) and predicts values only for the channels it transforms; they
    are written back in place, the rest stay zero.  The output is scaled by 0.1 as in
    AllInOneBlock, so the parameter count equals the original's.
    """

    def __init__(self, mask: Tensor, subnet: nn.Module, out_factor: int, out_scale: float = 0.1):
        super().__init__()
        channels = len(mask)
        passive = torch.nonzero(mask == 0).squeeze(1)
        self.register_buffer("active", torch.nonzero(mask).squeeze(1))
        self.register_buffer("targets", torch.cat([k * channels + passive for k in range(out_factor)]))
        self.subnet, self.out_factor, self.out_scale, self.channels = subnet, out_factor, out_scale, channels

    def forward(self, x_masked: Tensor) -> Tensor:
        a = self.out_scale * self.subnet(x_masked.index_select(1, self.active))
        out = a.new_zeros(a.shape[0], self.out_factor * self.channels, *a.shape[2:])
        return out.index_copy(1, self.targets, a)


class SoftClampAffineCoupling(AffineCoupling):
    """:class:`usfkit.flows.AffineCoupling` with AllInOneBlock's clamping,
    ``s = clamp * tanh(a)`` (``a`` already scaled by 0.1), instead of ``clamp * tanh(a / clamp)``."""

    def _shift_log_scale(self, x_masked: Tensor, m: Tensor) -> tuple[Tensor, Tensor]:
        shift, raw = self.conditioner(x_masked).chunk(2, dim=1)
        return (1 - m) * shift, (1 - m) * self.clamp * torch.tanh(raw)


class GlobalAffine(nn.Module):
    """AllInOneBlock's learned per-channel scaling ``y = s * x + b`` with
    ``s = 0.1 * softplus_{beta=0.5}(g)`` (initialised to ``s = 1``).

    ``ln|det J| = (h * w) * sum(ln s)`` -- the same for every input."""

    constant_det = True

    def __init__(self, channels: int):
        super().__init__()
        init = 2.0 * math.log(math.exp(5.0) - 1.0)  # 0.1 * softplus_{0.5}(init) == 1
        self.raw_scale = nn.Parameter(torch.full((channels,), init))
        self.offset = nn.Parameter(torch.zeros(channels))

    def _view(self, v: Tensor, x: Tensor) -> Tensor:
        return v.view(1, -1, *([1] * (x.dim() - 2)))

    def scale(self) -> Tensor:
        return 0.1 * F.softplus(self.raw_scale, beta=0.5)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        s = self.scale()
        y = x * self._view(s, x) + self._view(self.offset, x)
        logdet = s.log().sum() * math.prod(x.shape[2:])
        return y, logdet.expand(x.shape[0])

    def inverse(self, y: Tensor) -> Tensor:
        return (y - self._view(self.offset, y)) / self._view(self.scale(), y)


class ChannelPermutation(nn.Module):
    """A fixed random channel permutation (AllInOneBlock's ``permute_soft=False``): ``|det| = 1``."""

    constant_det = True

    def __init__(self, channels: int):
        super().__init__()
        perm = torch.randperm(channels)
        self.register_buffer("perm", perm)
        self.register_buffer("inv", torch.argsort(perm))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return x.index_select(1, self.perm), x.new_zeros(x.shape[0])

    def inverse(self, y: Tensor) -> Tensor:
        return y.index_select(1, self.inv)


def half_mask(channels: int, cond_channels: int = 0) -> Tensor:
    """AllInOneBlock's split: the first ``ceil(c/2)`` channels condition the last ``floor(c/2)``.
    Conditioning channels (CFlow's positional encoding) are appended and always kept."""
    keep = channels - channels // 2
    return torch.cat([torch.ones(keep), torch.zeros(channels // 2), torch.ones(cond_channels)])


def make_coupling(coupling: str, channels: int, subnet: Subnet, clamp: float,
                  cond_channels: int = 0) -> nn.Module:
    """The coupling layer alone: ``SoftClampAffineCoupling`` or ``AdditiveCoupling`` on
    ``channels (+ cond_channels)`` inputs.  The affine subnet predicts shift and
    log-scale (twice as many outputs), the additive one only the shift."""
    check_coupling(coupling)
    mask = half_mask(channels, cond_channels)
    out_factor = 2 if coupling == "affine" else 1
    net = subnet(int(mask.sum()), out_factor * (channels // 2))
    conditioner = SplitConditioner(mask, net, out_factor)
    if coupling == "affine":
        return SoftClampAffineCoupling(mask, conditioner, clamp)
    return AdditiveCoupling(mask, conditioner)


def make_lu(coupling: str, channels: int, fixed_diag: bool = True) -> LUAffine | None:
    """The LU map of ``"additive_lu"`` (``None`` otherwise); ``fixed_diag`` keeps
    ``|u_ii| = 1`` (the diagonal magnitudes are not trained)."""
    if coupling != "additive_lu":
        return None
    lu = LUAffine(channels)
    lu.log_abs_u.requires_grad_(not fixed_diag)
    return lu


class FlowStep(nn.Module):
    """One AllInOneBlock-style step: coupling (``A^{-1} o C o A`` for ``"additive_lu"``),
    then :class:`GlobalAffine`, then :class:`ChannelPermutation`."""

    def __init__(self, coupling: str, channels: int, subnet: Subnet, clamp: float,
                 lu_fixed_diag: bool = True):
        super().__init__()
        couple = make_coupling(coupling, channels, subnet, clamp)
        lu = make_lu(coupling, channels, lu_fixed_diag)
        self.coupling = couple if lu is None else ConjugateBlock(lu, couple)
        self.scale = GlobalAffine(channels)
        self.permute = ChannelPermutation(channels)
        self.constant_det = couple.constant_det

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x, ld_c = self.coupling(x)
        x, ld_s = self.scale(x)
        x, _ = self.permute(x)
        return x, ld_c + ld_s

    def inverse(self, y: Tensor) -> Tensor:
        return self.coupling.inverse(self.scale.inverse(self.permute.inverse(y)))


class StepSequence(nn.Module):
    """A chain of steps (FrEIA's ``SequenceINN``): ``z = f_n o ... o f_1 (x)``.
    Extra positional arguments (CFlow's condition) are passed to every step."""

    def __init__(self, steps: list[nn.Module]):
        super().__init__()
        self.steps = nn.ModuleList(steps)

    @property
    def constant_det(self) -> bool:
        return all(step.constant_det for step in self.steps)

    def forward(self, x: Tensor, *cond: Tensor) -> tuple[Tensor, Tensor]:
        logdet = x.new_zeros(x.shape[0])
        for step in self.steps:
            x, ld = step(x, *cond)
            logdet = logdet + ld
        return x, logdet

    def inverse(self, z: Tensor, *cond: Tensor) -> Tensor:
        for step in reversed(self.steps):
            z = step.inverse(z, *cond)
        return z


def lu_maps(module: nn.Module) -> list[LUAffine]:
    return [m for m in module.modules() if isinstance(m, LUAffine)]


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def scale_log_prior(flow: nn.Module, sigma: float | None, spatial: int) -> Tensor:
    """Bilateral log-normal prior of App. B.2 on the constant part of the log-determinant.

    In these steps the input-independent volume change is the per-channel
    :class:`GlobalAffine` scaling (inside ``A^{-1} o C o A`` the LU determinant cancels
    and its diagonal magnitudes are fixed), so the prior acts on ``ln s_i`` with the
    standard deviation ``usfkit.flows.lu_prior_sigma0(sigma, channels, spatial)``.
    Zero when ``sigma`` is None.
    """
    from ..flows import lu_prior_sigma0
    total = torch.zeros(())
    if sigma is None:
        return total
    for g in flow.modules():
        if isinstance(g, GlobalAffine):
            log_s = g.scale().log()
            s0 = lu_prior_sigma0(sigma, len(log_s), spatial)
            total = total.to(log_s) + torch.distributions.Normal(0.0, s0).log_prob(log_s).sum()
    return total
