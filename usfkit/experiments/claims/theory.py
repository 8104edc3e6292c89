"""The theory claims (topic "theory"): §2's Eq. 4, §4.1's Eq. 5, §4.2's Eq. 6, hypersphere collapse and
exploding determinants (§4.2, App. D), the log-det prior of App. B.2 and its sigma0, and §4.3's Proposition 1
(App. B.3), read from chapters 01-03 and, for Eq. 6, computed here (:func:`eq6_check`)."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch

from ... import profiles
from ...models import flows
from .. import tabular
from .core import (CONTRADICTED, NOT_REPRODUCED, NOT_SUPPORTED, REPRODUCED, Finding, Judgement, Loaded, NotRun,
                   Source, claim, finding)
from .rules import parts_rule

__all__ = ["CONSTANT_SPREAD", "COLLAPSED", "USF_SPREAD", "SIGMA0_TOL", "eq6_check", "collapse_parts", "collapse_rows",
           "stress_test", "explode_counts", "prior_scale_parts", "sigma0_judgement"]


@claim("Eq. 4: constant determinant", "theory", "§2, Eq. 4; App. B.1",
       "each block is volume preserving since determinants of A_i and A_i^{-1} cancel each other",
       "additive coupling: ln|det J| = 0; affine coupling: input-dependent",
       "parts: additive coupling's |ln det J| < 1e-5 at every input (autograd); affine coupling's ln|det J| "
       "varies by more than 0.1 nats over the inputs", "01_preliminaries")
def _eq4(src: Source) -> Finding:
    s = src.summary("01_preliminaries", "figure1_moons")
    demo = s.data["coupling_demo"]
    add, aff = demo["additive_max_abs_logdet"], demo["affine_logdet_spread"]
    return finding(parts_rule({"additive coupling has ln|det J| = 0": add < 1e-5,
                               "affine coupling's ln|det J| depends on x": aff > 0.1}),
                   f"additive max |ln det J| = {add:.1e}; affine spread = {aff:.3f} nats", s,
                   "one random coupling layer, 6 inputs, d = 4")


@claim("Eq. 5: NLL = SVDD term - ln psi_det", "theory", "§4.1, Eq. 5",
       "the objectives differ primarily in the \"regularization\" term that depends only to the weights",
       "an identity: NLL = ||phi(x) - c||^2 - ln psi_det(w) + const. for every x",
       "per sample, max relative residual of the identity < 1e-4 in float32 and < 1e-9 in float64 "
       "(both with the layers' and with autograd's Jacobian)", "02_loss_derivation")
def _eq5(src: Source) -> Finding:
    s = src.summary("02_loss_derivation", "eq5_check")
    checks = pd.DataFrame(s.data["usf_checks"])
    res = checks.groupby("precision")["max relative residual"].max()
    parts = {"float32 residual < 1e-4": res.get("float32", np.inf) < 1e-4,
             "float64 residual < 1e-9": res.get("float64", np.inf) < 1e-9}
    d = s.data.get("settings", {}).get("dim")
    return finding(parts_rule(parts), ", ".join(f"{k}: {v:.1e}" for k, v in res.items()), s,
                   f"{int(checks['inputs'].max())} test inputs of a trained USFlow", f"d = {d}", checks)


def eq6_check(dim: int = 4, n: int = 2000, blocks: int = 3, hidden: int = 16, seed: int = 0) -> pd.DataFrame:
    """Eq. 6 numerically, for a USFlow and a NonUSFlow with random weights on the App. C mixture (known
    density ``p_X``), base ``N(1, 1/2 I)``, in float64:

    * ``mean NLL`` = ``E[-ln p_hat(x)]`` from the flow's forward pass and its layers' log-determinants;
    * ``KL`` = ``KL(P_phi(X) || N(c, 1/2 I))`` estimated *in the latent space*,
      ``E_z[ln p_Z(z) - ln N(z)]`` with ``p_Z(z) = p_X(phi^-1(z)) |det J_{phi^-1}(z)|`` from the inverse
      flow and an autograd Jacobian (not from the forward log-determinants);
    * Eq. 6 says ``mean NLL - KL = E[-ln p_X(x)]``, the data's entropy, for every flow.

    One row per flow, on the same ``n`` samples."""
    from ...data import AsymmetricGaussianMixture
    from ..lossparts import jacobian_log_abs_det

    mixture = AsymmetricGaussianMixture(dim)
    x = mixture.sample(n, seed)[0].double()
    entropy = -mixture.log_prob(x.numpy()).mean()
    rows = []
    for name, coupling in flows.PAPER_FLOWS.items():
        flow = flows.build_flow(dim, coupling, blocks=blocks, hidden=hidden, layers=2, center=1.0,
                                scale=math.sqrt(0.5), seed=seed).double().eval()
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():  # random weights (the last conditioner layers start at zero)
            for p in flow.parameters():
                p.add_(0.3 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
            z, logdet = flow(x)
            nll = -(flow.base.log_prob(z) + logdet)
            x_back = flow.inverse(z)
        log_pz = torch.from_numpy(mixture.log_prob(x_back.numpy())) + jacobian_log_abs_det(flow.inverse, z).detach()
        kl = (log_pz - flow.base.log_prob(z)).mean().item()
        rows.append({"flow": name, "mean NLL": nll.mean().item(), "KL (latent space)": kl,
                     "NLL - KL": nll.mean().item() - kl, "data entropy E[-ln p_X]": entropy,
                     "max |phi^-1(phi(x)) - x|": (x_back - x).abs().max().item()})
    return pd.DataFrame(rows).set_index("flow")


@claim("Eq. 6: maximum likelihood = KL minimisation", "theory", "§4.2, Eq. 6",
       "This holds for any base distribution and any flow.",
       "KL(P_phi(X) || N(c, 1/2 I)) = E[-ln p_hat(x)] + C, C = E[ln p_X(x)] independent of the flow; so "
       "NLL - KL = -C = E[-ln p_X(x)], the data's entropy",
       "computed here (eq6_check): for two flows with different KL, |(NLL - KL) - entropy| <= 1e-8 x |entropy| "
       "for each (float64)", "08")
def _eq6(src: Source) -> Finding:
    table = eq6_check() if src.eq6 is None else src.eq6
    gap = ((table["NLL - KL"] - table["data entropy E[-ln p_X]"]).abs()
           / table["data entropy E[-ln p_X]"].abs()).max()
    kl = table["KL (latent space)"]
    parts = {"NLL - KL equals the data entropy for every flow (relative 1e-8)": gap <= 1e-8,
             "the flows differ (KLs apart by > 0.1 nats)": kl.max() - kl.min() > 0.1}
    ours = ", ".join(f"{f}: NLL - KL = {v:.4f}" for f, v in table["NLL - KL"].items())
    return finding(parts_rule(parts), f"{ours}; entropy {table['data entropy E[-ln p_X]'].iloc[0]:.4f} "
                   f"(largest relative gap {gap:.1e})",
                   basis=f"{len(table)} random flows on 2000 mixture samples", detail=table)


CONSTANT_SPREAD = 1e-6  # an encoder whose embeddings spread less than this is constant
COLLAPSED = 0.01  # collapse in the one-class phase: the spread ends below this share of its start
USF_SPREAD = (0.5, 2.0)  # the USF keeps its spread: its latent std within these multiples of the base std


@claim("§4.2: hypersphere collapse", "theory", "§2, §4.2",
       "Deep SVDD's objective admits a degenerate solution",
       "collapse for encoders that can represent a constant; avoided by no biases, fixed c; USFs avoid it",
       f"judged on what happens during Deep SVDD's one-class training, on the variants whose embeddings are not "
       f"constant before it (spread >= {CONSTANT_SPREAD:g}); parts: an encoder with biases shrinks its spread to "
       f"below {COLLAPSED:.0%} of its start; Ruff's bias-free recipe keeps more than {COLLAPSED:.0%} of it; the "
       f"USF's latent std lies within {USF_SPREAD[0]:g}-{USF_SPREAD[1]:g}x its base's std", "03_collapse")
def _collapse(src: Source) -> Finding:
    from ..collapse import SVDD_VARIANTS

    s = src.summary("03_collapse")
    return finding(*collapse_parts(s.data["svdd"], s.data["usf_section1"], SVDD_VARIANTS), s,
                   f"d = {s.data['settings']['dim']}",
                   "the paper shows no experiment for this: the asymmetric mixture of App. C, our design")


def collapse_parts(svdd: list[dict], usf: dict, variants: dict[str, dict]) -> tuple[Judgement, str]:
    """§4.2's collapse judged on the one-class phase: chapter 03's Deep SVDD rows (``svdd``: spread start/end
    per variant), its USFlow (``usf``: latent spread, base std) and the variants' settings (``variants``: which
    have biases).  A variant constant before training (spread < CONSTANT_SPREAD at the start) is set aside: it did
    not collapse through the objective.  Returns the judgement and our numbers in words."""
    rows = pd.DataFrame(svdd).set_index("variant")
    moving = rows[rows["spread start"] >= CONSTANT_SPREAD]
    ratio = moving["spread end"] / moving["spread start"]
    bias = [v for v in moving.index if variants[v]["bias"]]
    ruff = [v for v in moving.index if not variants[v]["bias"]]
    lo, hi = USF_SPREAD[0] * usf["base std"], USF_SPREAD[1] * usf["base std"]
    parts = {"an encoder with biases collapses in training": bool(bias) and bool((ratio[bias] < COLLAPSED).any()),
             "Ruff's bias-free recipe does not collapse": bool(ruff) and bool((ratio[ruff] > COLLAPSED).all()),
             "the USF keeps its spread": lo < usf["latent spread"] < hi}
    fell = ", ".join(f"{v} {100 * ratio[v]:.2g} %" for v in bias + ruff)
    constant = [v for v in rows.index if v not in moving.index]
    ours = (f"spread at the end of training, as % of its start: {fell}"
            + (f"; set aside, constant before training (spread {rows.loc[constant[0], 'spread start']:.1g}, loss "
               f"{rows.loc[constant[0], 'loss start']:.2g} at the start): {', '.join(constant)}" if constant else "")
            + f"; USF latent std {usf['latent spread']:.2f} = {usf['latent spread'] / usf['base std']:.2f}x its base "
            f"std {usf['base std']:.2f} (tolerance {USF_SPREAD[0]:g}-{USF_SPREAD[1]:g}x)")
    return parts_rule(parts), ours


def collapse_rows(src: Source, part: str) -> tuple[Loaded, str, float]:
    """Chapter 03's rows of one sweep, ``part`` ``"explode"`` (§3) or ``"sigma_sweep"`` (§4b), its settings in
    words and its learning rate: from the chapter's full summary when there is one; else from the committed
    full-profile records once that sweep is complete (the full summary waits for all three sweeps); else from
    the quick summary (unless the report reads the full profile only)."""
    from .. import collapse

    try:
        s = src.summary("03_collapse")
    except NotRun:
        s = None
    if s is None or s.profile != "full":
        full = collapse.full_sweep_runs(part)
        if full is not None:
            runs, provenance, st = full
            return (Loaded(runs, "full", provenance), f"d = {st['dim']}, lr {st['lr']}, {st['epochs']} epochs",
                    st["lr"])
    if s is None:
        raise NotRun("no saved 'summary' of chapter 03_collapse and no complete full-profile sweep: run the chapter")
    st = s.data["settings"]
    key = "explode" if part == "explode" else "sweep"
    return (Loaded(s.data[part], s.profile, s.provenance),
            f"d = {st[f'{key}_dim']}, lr {st[f'{key}_lr']}, {st[f'{key}_epochs']} epochs", st[f"{key}_lr"])


def stress_test(lr: float) -> bool:
    """Whether a chapter 03 run is our stress test: a learning rate above the paper's largest
    (:data:`usfkit.experiments.collapse.PAPER_MAX_LR`), as chapter 03 splits its runs."""
    from ..collapse import PAPER_MAX_LR

    return lr > PAPER_MAX_LR


@claim("§4.2: exploding determinants", "theory", "§4.2; App. D",
       "normalizing flows are susceptible to a related pathology",
       "NonUSFs: failed runs; USFlows: \"no such instabilities\"",
       "parts, on chapter 03's flow runs at the paper's learning rates (at most collapse.PAPER_MAX_LR): no USF run "
       "fails (App. D's failed run, FAILED_RUN) or diverges (finite losses, ending worse than untrained); at least one "
       "NonUSF run does (same data, learning rate, seeds). Our stress test (a learning rate above the paper's) is "
       "listed apart, not judged", "03_collapse",
       section="3 · Exploding determinants of NonUSFlows", label="exploding determinants")
def _explode(src: Source) -> Finding:
    groups = {}
    for part in ("explode", "sigma_sweep"):
        try:
            groups[part] = collapse_rows(src, part)
        except NotRun:
            continue
    paper = {k: g for k, g in groups.items() if not stress_test(g[2])}
    stress = {k: g for k, g in groups.items() if stress_test(g[2])}
    if not paper:
        raise NotRun("no flow runs of chapter 03 at the paper's learning rates")
    bad, ours = explode_counts([r for s_, _, _ in paper.values() for r in s_.data])
    parts = {"no USF run fails or diverges": bad.get("usf", 0) == 0,
             "a NonUSF run fails or diverges": bad.get("nonusf", 0) > 0}
    text = (f"at the paper's learning rates ({', '.join(f'lr {g[2]:g}' for g in paper.values())}; the paper trains "
            f"its flows at 1e-4 (§5.1) and its image baselines at up to 1e-3 (App. E)): {ours}")
    for s_, setting, lr in stress.values():
        text += f"; apart, our stress test ({setting}, above the paper's, not judged): {explode_counts(s_.data)[1]}"
    first = next(iter(paper.values()))
    return finding(parts_rule(parts), text, first[0],
                   f"{sum(len(g[0].data) for g in paper.values())} runs at the paper's learning rates",
                   "; ".join(g[1] for g in paper.values()))


def explode_counts(rows: list[dict]) -> tuple[dict[str, int], str]:
    """Chapter 03 flow runs (``rows``: status per run): per kind the runs that failed or diverged, and in words
    (USF first)."""
    runs = pd.DataFrame(rows).assign(kind=["usf" if r["constant_det"] else "nonusf" for r in rows])
    names = {"usf": "USF", "nonusf": "NonUSF"}
    out, bad = [], {}
    for kind in names:
        st = runs.loc[runs["kind"] == kind, "status"]
        bad[kind] = int((st != "ok").sum())
        out.append(f"{names[kind]} {int((st == 'failed').sum())} failed and {int((st == 'diverged').sum())} diverged "
                   f"of {len(st)}")
    return bad, ", ".join(out)


@claim("App. B.2: the log-det prior bounds the determinant", "theory", "§4.2; App. B.2",
       "placing a log-normal prior on the absolute value of the determinant to regularize its scale",
       "the prior regularizes the determinant's scale",
       "the USF's mean ln|det J| (nats, last epoch) with the smallest prior scale is below half of the unregularised "
       "one", "03_collapse", label="log-det prior bounds the determinant")
def _prior_scale(src: Source) -> Finding:
    s = src.summary("03_collapse")
    judged, ours = prior_scale_parts(s.data["sigma_sweep"], profiles.PROFILES[tabular.CHAPTER]["full"]["prior_sigma"])
    return finding(judged, ours, s, f"{s.data['settings']['sweep_runs']} seeds per scale",
                   "data on a low-dimensional subspace, where the likelihood is unbounded (our design)")


def prior_scale_parts(sweep_rows: list[dict], used: float | None = None) -> tuple[Judgement, str]:
    """App. B.2's prior scale on chapter 03's sweep (``sweep_rows``: one run per row, ``sigma`` as text, "no
    prior" without one): the USF's mean ln|det J| (nats) per prior scale, whether the smallest scale halves it,
    how little the scale ``used`` by the tabular flows (chapter 05's) changes it, and what the smallest scale costs
    in test NLL (nats)."""
    sw = pd.DataFrame(sweep_rows).assign(kind=["usf" if r["constant_det"] else "nonusf" for r in sweep_rows])
    usf = sw[sw["kind"] == "usf"].groupby("sigma")[["ln_det_mean", "test_nll"]].mean()
    sigmas = sorted((x for x in usf.index if x != "no prior"), key=float)
    smallest, free = usf.loc[sigmas[0]], usf.loc["no prior"]
    why = (f"USF mean ln|det J|: σ = {sigmas[0]} -> {smallest['ln_det_mean']:.3g} nats, no prior -> "
           f"{free['ln_det_mean']:.3g} nats")
    ok = smallest["ln_det_mean"] < 0.5 * free["ln_det_mean"]
    ours = ("USF mean ln|det J| (nats): " + ", ".join(f"σ = {k} {usf.loc[k, 'ln_det_mean']:.3g}" for k in sigmas)
            + f", no prior {free['ln_det_mean']:.3g}")
    mid = next((k for k in sigmas if used is not None and float(k) == used), None)
    if mid is not None:
        ours += (f"; σ = {mid} (chapter 05's) barely changes it ({usf.loc[mid, 'ln_det_mean']:.0f} vs "
                 f"{free['ln_det_mean']:.0f})")
    ours += (f"; σ = {sigmas[0]} costs {smallest['test_nll'] - free['test_nll']:+.3g} nats of mean test NLL "
             f"({smallest['test_nll']:.3g} vs {free['test_nll']:.3g})")
    return (Judgement(REPRODUCED, why) if ok else Judgement(NOT_REPRODUCED, why, NOT_SUPPORTED)), ours


SIGMA0_TOL = 0.05  # the sampled variance of ln|det J| within this share of sigma^2


@claim("App. B.2: sigma0 = sigma/(chw) gives ln|det J| ~ N(0, sigma^2)", "theory", "App. B.2",
       "with $\\sigma_0 = \\sigma/(chw)$ on each $u_i := U_{ii}$",
       "|det J_C(x)| ~ LogNormal(0, sigma^2)",
       f"the sampled variance of ln|det J| with the paper's sigma0 within {SIGMA0_TOL:.0%} of sigma^2 -> reproduced; "
       "else not reproduced (contradicted: the formula as stated gives another variance); the corrected sigma0 = "
       "sigma/(hw sqrt(c)) (usfkit.models.flows.lu_prior_sigma0 rule 'exact') shown beside", "03_collapse",
       label="App. B.2: σ₀ = σ/(chw) gives variance σ²")
def _sigma0(src: Source) -> Finding:
    s = src.summary("03_collapse")
    shape = s.data["settings"]["prior_shape"]
    judged = sigma0_judgement(s.data["prior_samples"], shape[0])
    return finding(judged, judged.why, s,
                   f"{s.data['settings']['prior_samples']:,} sampled LU maps of shape {' × '.join(map(str, shape))}")


def sigma0_judgement(rows: list[dict], c: int) -> Judgement:
    """App. B.2's sigma0 from chapter 03's sampled LU maps (``rows``: ``rule`` "paper"/"exact", ``sample var /
    sigma^2``), ``c`` channels: reproduced when the paper's formula gives sigma^2 within SIGMA0_TOL, else
    contradicted, with both variances and the theory's 1/c."""
    t = pd.DataFrame(rows).set_index("rule")["sample var / sigma^2"]
    paper, exact = t["paper"], t.get("exact", math.nan)
    why = (f"the paper's σ₀ gives a variance of {paper:.3g} σ² (theory: σ²/c = σ²/{c}, {1 / paper:.0f}x too small)"
           if abs(paper - 1) > SIGMA0_TOL else f"the paper's σ₀ gives a variance of {paper:.3g} σ²")
    why += f"; the corrected σ₀ = σ/(hw√c) gives {exact:.3g} σ²"
    if abs(paper - 1) <= SIGMA0_TOL:
        return Judgement(REPRODUCED, why)
    return Judgement(NOT_REPRODUCED, why, CONTRADICTED)


@claim("Prop. 1: density inversion at vanishing loss", "theory", "§4.3, Prop. 1; App. B.3",
       "where a less likely input is mapped closer to the center c than a more likely one",
       "L(N, F_alpha) = 1/(alpha^2 (d-2)) -> 0, while |F(x) - c| inverts the density order",
       "parts: Monte-Carlo loss within 3% of 1/(d-2) for every d > 4 (finite variance); quadrature within 1e-6 "
       "(relative); Spearman(-ln N(x), |F(x) - c|) < -0.9999", "03_collapse")
def _prop1(src: Source) -> Finding:
    s = src.summary("03_collapse")
    per_d = pd.DataFrame(s.data["prop1_per_d"])
    fin = per_d[per_d["finite_variance"].astype(bool)]
    quad = (per_d["quadrature"] - per_d["1/(d-2)"]).abs() <= 1e-6 * per_d["1/(d-2)"]
    inv = s.data["inversion"]["spearman_score"]
    parts = {"Monte Carlo matches 1/(d-2)": len(fin) > 0 and bool((fin["rel_error"] < 0.03).all()),
             "quadrature matches 1/(d-2)": bool(quad.all()), "the density order is inverted": inv < -0.9999}
    return finding(parts_rule(parts), f"largest Monte-Carlo relative error {fin['rel_error'].max():.2%} (d = "
                   f"{', '.join(str(int(d)) for d in fin['d'])}); Spearman {inv:+.4f}", s,
                   f"{s.data['settings']['mc_samples']:,} samples per d", detail=per_d)
