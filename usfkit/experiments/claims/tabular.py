"""The tabular benchmark's claims (topic "tabular"): §5.1.2 and Figure 3 (USFlow's 47-set mean, its rank by mean,
std and IQR, its median against OneFlow's, the USF variants against their NonUSF counterparts and their stability
(the abstract), DOHSC/DO2HSC trailing the flows, VAE-USFlow against USFlow, the pairwise wins), read from
chapter 05's runs.

Every claim here is judged twice (:func:`tab_claim`): under ADBench's protocol (the primary verdict) and without
its resampling leak (``Finding.alt``), on at least :data:`~.rules.MIN_DATASETS` datasets; VAE runs are read by
:data:`usfkit.experiments.tabular.PRIMARY_VAE_SCORE`."""
from __future__ import annotations

from dataclasses import replace
from typing import Callable

import numpy as np
import pandas as pd

from ... import profiles, results
from ...data import adbench
from ...models import usf_pairs
from .. import tabular
from .core import (NOT_REPRODUCED, NOT_RUN, NOT_SUPPORTED, PARTLY, PP, RANGE, REPRODUCED, USF_FAVOUR, Effect,
                   Finding, Judgement, Loaded, NotRun, Source, claim, finding)
from .rules import (ALPHA, MIN_DATASETS, MISSING_RANGE, PAPER_TABULAR_DATASETS, SEED_SDS, aggregate_range,
                    bootstrap_ci, held_effect, interval_direction, parts_rule, range_rule, sign_effect, sign_rule)

__all__ = ["TIE", "NON_VAE", "SPREAD", "tab_claim", "range_table", "rank_judge", "pair_judge", "stability_judge",
           "trail_judge", "wins_judge"]


#: The win/tie/loss margin (AUC-ROC) of every tabular count, chapter 05's: a difference of at most this is a tie.
TIE = profiles.PROFILES[tabular.CHAPTER]["full"]["tie"]
NON_VAE = tuple(m for m in tabular.METHODS if m not in tabular.VAE_METHODS)

def _tab_view(src: Source, methods: tuple[str, ...], leak_free: bool) -> tuple[Loaded, pd.DataFrame, str, str]:
    """Chapter 05's runs of ``methods`` as chapter 05 reads them: one of :func:`tabular.paper_settings_views`
    (ADBench's generator, or ``leak_free``: without the leak), cut to the (dataset, seed) pairs where every method
    ran, the VAEs scored by :data:`tabular.PRIMARY_VAE_SCORE` on the datasets where all their runs have that score
    (:func:`tabular.vae_scored`), so that this page and chapter 05 compare the same datasets.  Returns the
    records, the runs of ``methods`` on the datasets where each has a run (``attrs["vae_scored"]``: the datasets
    whose VAE runs count, ``attrs["datasets"]``: the view's datasets), a basis and a conditions text."""
    loaded = src.runs(tabular.CHAPTER)
    label = tabular.LEAK_FREE_VIEW if leak_free else tabular.ADBENCH_VIEW
    protocol = (f"without the leak (adbench-noresample on the sets under {adbench.MIN_ROWS} rows, adbench elsewhere)"
                if leak_free else "adbench (ADBench's generator)")
    view = tabular.paper_settings_views(loaded.data).get(label)
    if view is None or view.empty:
        raise NotRun(f"no runs of every method under protocol {protocol} ({loaded.profile} profile)")
    vae = any(m in tabular.VAE_METHODS for m in methods)
    score = tabular.PRIMARY_VAE_SCORE
    scored = tabular.vae_scored(view, score) if vae else view
    runs = tabular.comparable(scored[scored["method"].isin(methods)], methods)
    if runs.empty:
        raise NotRun(f"no dataset has runs of {', '.join(methods)} under protocol {protocol} ({loaded.profile} "
                     "profile)" + (f" whose VAE runs all have the '{score}' score" if vae else ""))
    runs.attrs["datasets"] = view["dataset"].nunique()
    runs.attrs["vae_scored"] = runs["dataset"].nunique() if vae else None
    keep = set(zip(runs["dataset"], runs["method"], runs["seed"]))
    chosen = tabular.leak_free(loaded.data) if leak_free else \
        [r for r in loaded.data if r.settings.get("protocol") == "adbench"]
    records = [r for r in chosen if (r.spec["dataset"], r.spec["method"], r.spec["seed"]) in keep]
    loaded = Loaded(records, loaded.profile, [r.provenance for r in records])
    epochs = sorted({r.settings.get("epochs") for r in records})
    basis = (f"{runs['dataset'].nunique()} of {PAPER_TABULAR_DATASETS} datasets (chapter 05's; "
             f"{tabular.seeds_text(runs)}), {len(runs)} runs")
    cond = (f"protocol {protocol}; up to {'/'.join(map(str, epochs))} epochs (paper: 200)"
            + (f"; VAE runs scored by '{score}' on the datasets where all of them have it (chapter 05's rule)"
               if vae else ""))
    return loaded, runs, basis, cond


def _tab_one(src: Source, methods: tuple[str, ...], judge: Callable, leak_free: bool) -> Finding:
    """One protocol's finding: ``judge(runs)`` -> (Judgement, ours, Effect[, detail]) on :func:`_tab_view`'s runs;
    "not run here" (with what was found) on fewer than MIN_DATASETS datasets."""
    try:
        loaded, runs, basis, cond = _tab_view(src, methods, leak_free)
    except NotRun as err:
        return Finding(NOT_RUN, why=err.why)
    found = {"basis": f"{loaded.profile}; {basis}", "conditions": cond}
    try:
        judged, ours, effect, *detail = judge(runs)
    except NotRun as err:
        return Finding(NOT_RUN, err.found.get("ours", ""), err.why, **found)
    detail = detail[0] if detail else None
    n = effect.n if effect is not None and effect.of == "datasets" else runs["dataset"].nunique()
    if n < MIN_DATASETS:
        scored = runs.attrs.get("vae_scored")
        vae = "" if scored is None else (
            f" (chapter 05 compares the VAEs on the {scored} of its {runs.attrs['datasets']} datasets where all their "
            f"runs have the '{tabular.PRIMARY_VAE_SCORE}' score; a rerun adds it to the others)")
        return Finding(NOT_RUN, ours, f"rests on n = {n} datasets{vae}, fewer than the {MIN_DATASETS} a claim over "
                       f"the paper's {PAPER_TABULAR_DATASETS} needs (the rule would give: {judged[0]})", detail=detail,
                       **found)
    return finding(judged, ours, loaded, basis, cond, detail, effect)


def tab_claim(key: str, where: str, says: str, paper: str, rule: str, methods: tuple[str, ...] = NON_VAE,
              section: str = "", label: str = ""):
    """Register a tabular claim judged by the decorated ``judge(runs)`` on ``methods``, under ADBench's protocol
    (the finding) and without the leak (its ``alt``), on at least MIN_DATASETS datasets."""
    def register(judge: Callable):
        def check(src: Source) -> Finding:
            primary = _tab_one(src, methods, judge, leak_free=False)
            primary.alt = _tab_one(src, methods, judge, leak_free=True)
            return primary
        claim(key, "tabular", where, says, paper, f"{rule} (on {', '.join(methods)})", tabular.CHAPTER,
              section=section, label=label)(check)
        return judge
    return register


@tab_claim("§5.1.2: USFlow 85.61 ± 13.54", "§5.1.2, Figure 3a",
           "USFlow attains the highest mean AUC-ROC (85.61%)",
           "USFlow mean AUC-ROC 85.61 ± 13.54 % over 47 datasets",
           f"the paper's mean lies in the range our runs allow for the 47-set mean: our datasets' means, the missing "
           f"ones anywhere in {MISSING_RANGE[0]:g}-{MISSING_RANGE[1]:g} %, widened by {SEED_SDS} seed-to-seed stds "
           f"of the mean", methods=("USFlow",), section="Beside the paper", label="USFlow's 47-set mean 85.61 % (range rule)")
def _tab_mean(runs: pd.DataFrame):
    ok = runs[runs["ok"].astype(bool)]
    per_seed = ok.pivot_table(index="dataset", columns="seed", values="auroc").dropna() * 100
    means = tabular.wide(runs)["USFlow"].dropna() * 100
    r = aggregate_range(means, per_seed.mean().to_numpy() if per_seed.shape[1] >= 2 else [])
    paper = tabular.PAPER["USFlow"]["mean"]
    ours = (f"{r['our mean']:.2f} ± {means.std(ddof=results.STD_DDOF):.2f} on {r['datasets']} datasets; with the "
            f"{r['missing']} missing at {MISSING_RANGE[0]:g}-{MISSING_RANGE[1]:g} % the 47-set mean lies in "
            f"{r['low']:.2f}-{r['high']:.2f}, {r['wide low']:.2f}-{r['wide high']:.2f} with ± {SEED_SDS} seed stds "
            f"({r['seed sd']:.2f} pp over {r['seeds']} seeds)")
    effect = Effect(r["our mean"], r["wide low"], r["wide high"], RANGE, n=r["datasets"],
                    what=f"our mean over {r['datasets']} datasets; the 47-set mean's range", reference=paper,
                    by="range rule")
    return range_rule(paper, r), ours, effect, range_table(r)


def range_table(r: dict[str, float]) -> pd.DataFrame:
    """:func:`~.rules.aggregate_range`'s numbers for the page: one row per quantity, in words (AUC-ROC %, pp)."""
    rows = {"our mean (%)": f"{r['our mean']:.2f}", "datasets (ours, missing)": f"{r['datasets']}, {r['missing']}",
            "range of the 47-set mean (%)": f"{r['low']:.2f}–{r['high']:.2f}",
            f"seed-to-seed std of our mean (pp, {r['seeds']} seeds)": f"{r['seed sd']:.2f}",
            f"range ± {SEED_SDS} seed stds (%)": f"{r['wide low']:.2f}–{r['wide high']:.2f}"}
    out = pd.DataFrame({"value": rows})
    out.attrs.update(r)  # the numbers themselves (aggregate_text reads them)
    return out


#: The statistics over datasets that Figure 3a ranks by, as functions of a datasets x methods array.
SPREAD = {"mean": lambda a: np.nanmean(a, axis=0),
          "std": lambda a: np.nanstd(a, axis=0, ddof=results.STD_DDOF),
          "IQR": lambda a: np.nanpercentile(a, 75, axis=0) - np.nanpercentile(a, 25, axis=0)}


def rank_judge(stat: str, smaller: bool) -> Callable:
    """Judge "USFlow ranks first by ``stat``" (``smaller``: the smallest is first): reproduced at rank 1; the
    effect is USFlow's lead over the best other method (pp, > 0: USFlow first), bootstrapped over datasets."""
    def judge(runs: pd.DataFrame):
        w = tabular.wide(runs) * 100
        usf = "USFlow"
        cols = [usf] + [c for c in w.columns if c != usf]
        values = pd.Series(SPREAD[stat](w[cols].to_numpy()), index=cols)

        def lead(a: np.ndarray) -> float:
            v = SPREAD[stat](a)
            return float(v[1:].min() - v[0]) if smaller else float(v[0] - v[1:].max())

        low, high = bootstrap_ci(w[cols].to_numpy(), lead)
        rank = int(values.rank(ascending=smaller, method="min")[usf])
        why = f"USFlow ranks {rank} of {len(values)} by {stat}"
        judged = Judgement(REPRODUCED, why) if rank == 1 else \
            Judgement(NOT_REPRODUCED, why, interval_direction(low, high))
        best = values.drop(usf).idxmin() if smaller else values.drop(usf).idxmax()
        return (judged, f"USFlow {values[usf]:.2f}; best other: {best} {values[best]:.2f} ({stat} over {len(w)} "
                f"datasets, %)", Effect(lead(w[cols].to_numpy()), low, high, PP, n=len(w),
                                        what=f"USFlow's lead in {stat} over the best other", by="rank rule"))
    return judge


_VS_OTHERS, _VS_VAE = ", ".join(m for m in NON_VAE if m != "USFlow"), ", ".join(tabular.VAE_METHODS)
for _stat, _smaller, _says, _paper in (
        ("mean", False, "USFlow attains the highest mean AUC-ROC", "rank 1 of 7 by mean"),
        ("std", True, "while also exhibiting the smallest standard deviation (13.54%)",
         "rank 1 of 7 by std over datasets"),
        ("IQR", True, "and the narrowest interquartile range", "rank 1 of 7 by IQR")):
    _name = {"mean": "the highest mean", "std": "the smallest std", "IQR": "the narrowest IQR"}[_stat]
    for _methods, _vs in ((NON_VAE, _VS_OTHERS), (("USFlow",) + tabular.VAE_METHODS, _VS_VAE)):
        tab_claim(f"§5.1.2: USFlow has {_name}: vs {_vs}", "§5.1.2, Figure 3a", _says, _paper,
                  f"USFlow's {_stat} over datasets is the {'smallest' if _smaller else 'largest'} (rank 1)",
                  methods=_methods, section="Figure 3a: AUC-ROC per method over datasets",
                  label=f"USFlow {_name.removeprefix('the ')} vs {'VAE variants' if _vs == _VS_VAE else 'others'}"
                  )(rank_judge(_stat, _smaller))


@tab_claim("§5.1.2: median slightly below OneFlow's", "§5.1.2, Figure 3a",
           "Although its median is slightly lower than that of OneFlow", "USFlow median < OneFlow median (figure)",
           "OneFlow's median minus USFlow's is in (0, 2] pp -> reproduced; > 2 pp -> partly; <= 0 -> not reproduced "
           "(USFlow's median is the higher: in USF's favour)", methods=("USFlow", "OneFlow"),
           section="Figure 3a: AUC-ROC per method over datasets", label="USFlow median below OneFlow's")
def _tab_median(runs: pd.DataFrame):
    w = tabular.wide(runs) * 100
    a = w[["OneFlow", "USFlow"]].to_numpy()

    def gap(rows: np.ndarray) -> float:
        return float(np.nanmedian(rows[:, 0]) - np.nanmedian(rows[:, 1]))

    g, (low, high) = gap(a), bootstrap_ci(a, gap)
    why = f"OneFlow median - USFlow median = {g:+.2f} pp"
    judged = Judgement(REPRODUCED if 0 < g <= 2 else PARTLY, why) if g > 0 else \
        Judgement(NOT_REPRODUCED, why, USF_FAVOUR if g < 0 else NOT_SUPPORTED)
    return (judged, f"median over {len(w)} datasets: USFlow {np.nanmedian(a[:, 1]):.2f} %, OneFlow "
            f"{np.nanmedian(a[:, 0]):.2f} %", Effect(g, low, high, PP, n=len(w), what="OneFlow's median − USFlow's",
                                                   by="point rule"))


def pair_judge(usf: str, nonusf: str) -> Callable:
    """The sign rule on the per-dataset mean AUC-ROC differences ``usf - nonusf`` (pp), expected > 0; the
    win/tie/loss counts by chapter 05's margin (:data:`TIE`)."""
    def judge(runs: pd.DataFrame):
        w = tabular.wide(runs) * 100
        d = (w[usf] - w[nonusf]).dropna()
        row = tabular.pairwise(runs, usf, [nonusf], tie=TIE).iloc[0]
        return (sign_rule(d, +1, "difference (pp)"), f"{usf} − {nonusf}: mean {d.mean():+.2f} pp, median "
                f"{d.median():+.2f} pp; {usf} wins {row['wins']}, ties {row['ties']}, loses {row['losses']} of "
                f"{len(d)} datasets (a tie: within {100 * TIE:g} pp)", sign_effect(d, +1))
    return judge


def stability_judge(usf: str, nonusf: str) -> Callable:
    """The sign rule on the per-dataset seed-std differences ``usf - nonusf`` (pp), expected < 0, on the
    datasets where both have 2 or more seeds."""
    def judge(runs: pd.DataFrame):
        table = tabular.seed_std(runs)
        if table.empty:
            raise NotRun(f"no dataset has two or more seeds of every method yet (seeds present: "
                         f"{', '.join(map(str, sorted(runs['seed'].unique())))})")
        spread = tabular.seed_spread(runs)
        d = table[usf] - table[nonusf]

        def ms(m: str) -> str:
            return f"{m} {spread.loc[m, 'mean seed std (pp)']:.2f} / {spread.loc[m, 'median seed std (pp)']:.2f}"
        effect = sign_effect(d, -1)
        return (sign_rule(d, -1, "seed-std difference (pp)"),
                f"mean / median seed std (pp): {ms(usf)} vs {ms(nonusf)}, over {len(table)} datasets with 2+ seeds",
                replace(effect, what="median per-dataset seed-std reduction (NonUSF − USF)"), spread.round(2))
    return judge


for _u, _n in usf_pairs():  # the registry's USF / NonUSF pairs: USFlow/NonUSFlow, VAE-USFlow/VAE-NonUSFlow
    tab_claim(f"§5.1.2: USF variants beat their non-USF counterparts: {_u} vs {_n}", "§5.1.2, Figure 3",
              "In both cases, the USF variants clearly outperform their non-USF counterparts.",
              "USFlow > NonUSFlow and VAE-USFlow > VAE-NonUSFlow",
              f"sign rule on the per-dataset AUC-ROC differences {_u} - {_n} (paired Wilcoxon, {ALPHA}); the paper's "
              f"\"clearly\" names no size, so the rule asks for a significant positive median",
              methods=(_u, _n), section="Figure 3b: pairwise comparisons", label=f"{_u} > {_n}")(pair_judge(_u, _n))
for _u, _n in usf_pairs():
    tab_claim(f"Abstract: USFs make tabular training more stable: {_u} vs {_n}", "Abstract; §5.1",
              "this substitution yields consistent performance gains and substantially improved training stability "
              "across multiple benchmarks and model backbones for",
              "... both tabular and image anomaly detection: a smaller run-to-run spread of the USF variants (§5.1 "
              "gives no tabular number)",
              f"sign rule on the per-dataset differences of the seed std {_u} - {_n} (paired Wilcoxon, {ALPHA}) on "
              f"the datasets where both have 2 or more seeds; each seed is also a different split, the same for both",
              methods=(_u, _n), section="Beside the paper", label=f"{_u} steadier than {_n}")(stability_judge(_u, _n))


def trail_judge(runs: pd.DataFrame):
    """DOHSC and DO2HSC below every flow of ``runs`` by mean: parts per (baseline, flow); the effect is the
    smallest flow mean minus the largest baseline mean (pp), bootstrapped over datasets."""
    w = tabular.wide(runs) * 100
    base = [m for m in w.columns if m.startswith("DO")]
    flows_ = [m for m in w.columns if m not in base]
    means = w.mean()
    parts = {f"{b} < {f}": bool(means[b] < means[f]) for b in base for f in flows_}

    def margin(a: np.ndarray) -> float:
        m = np.nanmean(a, axis=0)
        return float(m[len(base):].min() - m[:len(base)].max())

    a = w[base + flows_].to_numpy()
    low, high = bootstrap_ci(a, margin)
    judged = parts_rule(parts, interval_direction(low, high))
    ours = ", ".join(f"{m} {means[m]:.1f}" for m in means.sort_values(ascending=False).index)
    longer = tabular.all_epochs_pairs(runs) if "USFlow" in w.columns else pd.DataFrame()
    if len(longer):  # the same baseline runs trained for every epoch (chapter 05)
        s = tabular.all_epochs_summary(longer, runs)
        seeds = ", ".join(str(x) for x in sorted(longer["seed"].unique()))
        ours += (f"; trained for every epoch instead of the shared early stop (chapter 05, seed "
                 f"{seeds}): " + ", ".join(
                     f"{m} {s.loc[m, 'mean AUC-ROC, all epochs (%)']:.1f} (under the rule "
                     f"{s.loc[m, 'mean AUC-ROC, rule (%)']:.1f}; USFlow {s.loc[m, 'USFlow, same runs (%)']:.1f}) on "
                     f"the same {s.loc[m, 'runs']} runs" for m in s.index))
    return judged, ours, Effect(margin(a), low, high, PP, n=len(w), what="lowest flow mean − highest baseline mean",
                                by="rank rule")


for _methods, _vs in ((NON_VAE, "USFlow, NonUSFlow, OneFlow"), (("DOHSC", "DO2HSC") + tabular.VAE_METHODS, _VS_VAE)):
    tab_claim(f"§5.1.2: DOHSC and DO2HSC trail all flows: vs {_vs}", "§5.1.2, Figure 3a",
              "The Deep SVDD-based baselines DOHSC and DO2HSC trail all flow-based methods.",
              "both below every flow method by mean",
              "share of the (baseline, flow) pairs where the baseline's mean is lower: all -> reproduced",
              methods=_methods, section="Figure 3a: AUC-ROC per method over datasets",
              label=f"DOHSC/DO2HSC trail {'VAE flows' if _vs == _VS_VAE else 'flows'}")(trail_judge)


@tab_claim("§5.1.2: VAE-USFlow slightly weaker than USFlow", "§5.1.2, Figure 3a",
           "VAE-USFlow remains competitive but shows slightly weaker performance.",
           "VAE-USFlow mean < USFlow mean",
           "VAE-USFlow's mean over datasets is below USFlow's by at most 10 pp -> reproduced; by more -> partly; "
           "above -> not reproduced", methods=("USFlow", "VAE-USFlow"),
           section="Figure 3a: AUC-ROC per method over datasets", label="VAE-USFlow below USFlow")
def _tab_vae(runs: pd.DataFrame):
    w = tabular.wide(runs) * 100
    a = w[["USFlow", "VAE-USFlow"]].to_numpy()

    def gap(rows: np.ndarray) -> float:
        m = np.nanmean(rows, axis=0)
        return float(m[0] - m[1])

    g, (low, high) = gap(a), bootstrap_ci(a, gap)
    why = f"USFlow - VAE-USFlow = {g:+.2f} pp"
    judged = Judgement(REPRODUCED if g <= 10 else PARTLY, why) if g > 0 else \
        Judgement(NOT_REPRODUCED, why, interval_direction(low, high))
    return (judged, f"mean over {len(w)} datasets: USFlow {np.nanmean(a[:, 0]):.2f} %, VAE-USFlow "
            f"{np.nanmean(a[:, 1]):.2f} %", Effect(g, low, high, PP, n=len(w), what="USFlow's mean − VAE-USFlow's",
                                                 by="point rule"))


def wins_judge(runs: pd.DataFrame):
    """USFlow wins at least as many datasets as it loses against each other method of ``runs``."""
    wtl = tabular.pairwise(runs, "USFlow", tie=TIE)
    parts = {f"vs {r['versus']}": bool(r["wins"] >= r["losses"]) for _, r in wtl.iterrows()}
    return parts_rule(parts), "wins/ties/losses of USFlow (a tie: within " + f"{100 * TIE:g} pp): " + "; ".join(
        f"vs {r['versus']} {r['wins']}/{r['ties']}/{r['losses']} of {r['datasets']}" for _, r in wtl.iterrows()), \
        held_effect(parts)


for _methods, _vs in ((NON_VAE, _VS_OTHERS), (("USFlow",) + tabular.VAE_METHODS, _VS_VAE)):
    tab_claim(f"Figure 3b: USFlow's pairwise wins: vs {_vs}", "§5.1.2, Figure 3b",
              "Pairwise comparison of USFlow and USVAEFlow against each other and different baselines.",
              "win/tie/loss counts per pair (given in the figure only, not in the text)",
              "USFlow wins at least as many datasets as it loses against each other method (ties: the chapter's "
              "margin): share of the pairs", methods=_methods, section="Figure 3b: pairwise comparisons",
              label=f"pairwise wins vs {'VAE variants' if _vs == _VS_VAE else 'the others'}")(wins_judge)


@tab_claim("§5.1.2: USFlow wins the harder datasets against OneFlow", "§5.1.2, Figure 3b",
           "we observe that USFlow performs better on the more challenging datasets",
           "USFlow's wins on hard datasets, OneFlow's on simple ones (figure)",
           "split the datasets at the median of the two methods' mean AUC-ROC; parts: on the harder half USFlow wins "
           "more datasets than OneFlow; OneFlow wins more on the easier half than on the harder",
           methods=("USFlow", "OneFlow"), section="Figure 3b: pairwise comparisons", label="wins the harder datasets")
def _tab_hard(runs: pd.DataFrame):
    w = tabular.wide(runs)
    usf = "USFlow"
    both = w[[usf, "OneFlow"]].dropna()
    hard = both.mean(axis=1) < both.mean(axis=1).median()
    d = both[usf] - both["OneFlow"]
    tie = TIE
    usf_hard, one_hard = int((d[hard] > tie).sum()), int((d[hard] < -tie).sum())
    one_easy = int((d[~hard] < -tie).sum())
    parts = {"USFlow wins more of the harder half": usf_hard > one_hard,
             "OneFlow's wins lie mostly in the easier half": one_easy > one_hard}
    return parts_rule(parts), (f"harder half ({int(hard.sum())} datasets): USFlow {usf_hard} wins, OneFlow "
                               f"{one_hard}; easier half ({int((~hard).sum())}): OneFlow {one_easy} wins (a tie: within "
                               f"{100 * tie:g} pp)"), held_effect(parts)

