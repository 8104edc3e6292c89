"""The flow step of FastFlow, CFlow and U-Flow, with the coupling as one argument.

All three methods in anomalib v2.0.0 (the code the paper ran, §5.2.1) stack FrEIA's
``AllInOneBlock``: a coupling on a channel split, then a learned per-channel "global
affine" scaling and a fixed random channel permutation.  :func:`flow_step` builds the
same step as a :class:`usfkit.models.flows.Chain` of :mod:`usfkit.models.flows` transforms, so that the
swap studied in §5.2 is one visible argument (paper §5.2, §5.2.3, App. D):

* ``"affine"``      -- the non-USF baseline, as anomalib: affine coupling with
                       AllInOneBlock's soft-clamped log-scale ``clamp * tanh(a)``
                       (FastFlow/U-Flow 2.0, CFlow 1.9); the log-determinant depends on
                       the input;
* ``"additive"``    -- only the coupling swapped for an additive one (determinant 1):
                       the step is uniformly scaling (the global scaling and the
                       permutation have input-independent determinants);
* ``"additive_lu"`` -- the paper's full USF: the additive coupling conjugated by an
                       LU-parameterised affine map, ``A^{-1} o C o A``
                       (:class:`usfkit.models.flows.ConjugateBlock`), with the LU diagonal
                       magnitudes fixed at 1 ("LU-parameterized bijective affine
                       transforms with fixed diagonal magnitudes", §5.2).

The words mean what they mean everywhere (:data:`usfkit.models.flows.COUPLINGS`).  The fourth
value, ``"affine_lu"`` (the NonUSFlow of the other chapters), is rejected here: App. D
excluded affine coupling + LU maps from the image ablation because its runs were unstable.
"""
from __future__ import annotations

from typing import Callable

from torch import nn

from .. import flows
from ..flows import (AdditiveCoupling, AffineCoupling, Chain, ChannelPermutation, ConjugateBlock, GlobalAffine,
                     LUAffine, SplitConditioner, half_mask, lu_prior_sigma0)

__all__ = ["COUPLINGS", "Subnet", "check_coupling", "flow_step", "count_parameters"]

#: The couplings the image heads support: every value of :data:`usfkit.models.flows.COUPLINGS` but ``"affine_lu"``.
COUPLINGS = ("affine", "additive", "additive_lu")

Subnet = Callable[[int, int], nn.Module]  # subnet(in_channels, out_channels), as FrEIA's subnet_constructor


def check_coupling(coupling: str) -> str:
    """``coupling`` if the image heads support it; a ValueError that says why otherwise."""
    if coupling == "affine_lu":
        raise ValueError("coupling 'affine_lu' (affine coupling in LU-conjugated blocks) is not supported by the "
                         "image heads: App. D excluded it from the image ablation because its runs were unstable "
                         f"(exploding determinants, runs converging to the same poor solution); use one of {COUPLINGS}")
    return flows.check_coupling(coupling, COUPLINGS)


def flow_step(coupling: str, channels: int, subnet: Subnet, clamp: float, *, context_channels: int = 0,
              lu_fixed_diag: bool = True, prior_sigma: float | None = None, spatial: int = 1) -> Chain:
    """One AllInOneBlock: coupling on ``channels`` (the first ``ceil(c/2)`` condition the
    rest; ``A^{-1} o C o A`` for ``"additive_lu"``), then :class:`~usfkit.models.flows.GlobalAffine`,
    then :class:`~usfkit.models.flows.ChannelPermutation`.

    ``subnet(n_in, n_out)`` builds the coupling network: it sees the kept channels and the
    ``context_channels`` (CFlow's condition) and predicts shift and log-scale (``"affine"``)
    or only the shift.  ``lu_fixed_diag`` keeps the LU map's ``|u_ii| = 1`` (not trained).
    ``prior_sigma`` puts the App. B.2 prior on the constant part of the log-determinant,
    the global scaling's ``ln s_i`` (inside ``A^{-1} o C o A`` the LU determinant cancels),
    with ``sigma0 = lu_prior_sigma0(prior_sigma, channels, spatial)`` for inputs of
    ``spatial`` positions.
    """
    check_coupling(coupling)
    mask = half_mask(channels)
    out_factor = 2 if coupling == "affine" else 1
    conditioner = SplitConditioner(mask, subnet(int(mask.sum()) + context_channels, out_factor * (channels // 2)),
                                   out_factor)
    if coupling == "affine":
        couple = AffineCoupling(mask, conditioner, clamp, activation="allinone")
    else:
        couple = AdditiveCoupling(mask, conditioner)
    if coupling == "additive_lu":
        lu = LUAffine(channels)
        lu.log_abs_u.requires_grad_(not lu_fixed_diag)
        couple = ConjugateBlock(lu, couple)
    sigma0 = None if prior_sigma is None else lu_prior_sigma0(prior_sigma, channels, spatial)
    return Chain([couple, GlobalAffine(channels, sigma0), ChannelPermutation(channels)])


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
