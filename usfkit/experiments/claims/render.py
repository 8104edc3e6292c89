"""The report as the page shows it: the report table's effect columns, links to the chapter sections the rows
read, the verdicts in words (totals, headline, summary, notes, rules), the styled tables and detail tables, and
the colours and words the report's figure is given (:data:`FIGURE`; the figure itself is
:func:`usfkit.plots.report.claims_figure`).  Everything here is written from the report's table or a
:class:`~.core.Finding`; nothing reads a record."""
from __future__ import annotations

import functools
import math
import re
from typing import Any

import numpy as np
import pandas as pd

from ... import results
from ...data import adbench
from .. import tabular
from .core import (CHAPTER, CONTRADICTED, DIRECTIONS, HELD, NOT_REPRODUCED, NOT_RUN, NOT_SUPPORTED, PARTLY, PP,
                   RANGE, REPRODUCED, USF_FAVOUR, Claim, Effect, Finding)
from .rules import (ALPHA, BOOTSTRAP, BOOTSTRAP_SEED, CELLS_PARTLY, CELLS_REPRODUCED, MET, MIN_DATASETS, MIN_PAIRS,
                    MIN_TOL_PP, MISSING_RANGE, NOT_MET, PAPER_TABULAR_DATASETS, SEED_SDS)

__all__ = ["BENCHMARK", "LEAK_FREE", "PRIMARY_PROTOCOL_REASON", "SHORT_LABELS", "ALT", "statement_effect",
           "effect_columns", "AT_PAPER_SETTINGS", "SECTIONS", "chapter_headings", "anchor", "section_link",
           "claim_link", "verdict_label", "counts", "counts_shown", "effect_text", "totals_text", "quick_text",
           "devices_text", "notes_text", "verdict_text", "summary_text", "aggregate_text", "headline_text",
           "rules_text", "TOPICS", "CLAIM_COLUMNS", "RULE_COLUMNS", "TABULAR_COLUMNS", "TABULAR_RULE_COLUMNS",
           "COLOURS", "FIGURE_COLOURS", "FIGURE", "plain_math", "styled", "tabular_common_text", "detail_view",
           "readable"]


#: The two protocols every tabular claim is judged under, side by side; the first is the primary one.
BENCHMARK, LEAK_FREE = "ADBench's protocol", "without the leak"
PRIMARY_PROTOCOL_REASON = (
    "ADBench's protocol gives the primary verdict: §5.1 benchmarks \"the classical tabular benchmark from ADBench\" "
    "with a 70/30 split and the anomalies removed from training, which is what ADBench's own data generator does, "
    f"and names no change to it. That generator resamples the sets under {adbench.MIN_ROWS} rows with replacement, "
    "copying test normals into training (chapter 05), so every tabular row also gives the verdict without the leak.")


#: Short names for the figure's rows whose key is long (a claim's own ``label`` wins).
SHORT_LABELS = {
    "Eq. 5: NLL = SVDD term - ln psi_det": "Eq. 5: NLL = SVDD term − ln ψ_det",
    "Eq. 6: maximum likelihood = KL minimisation": "Eq. 6: max. likelihood = min. KL",
    "Prop. 1: density inversion at vanishing loss": "Prop. 1: density inversion",
    "Figure 1: one-class map vs flow on moons": "Figure 1: one-class map vs flow",
    "§4.3: the latent norm ranks like the likelihood": "§4.3: latent norm ranks as NLL",
    "Figure 5: USFs keep latent norm and density monotone": "Figure 5: norm–density monotone",
    "Figure 6: both flows estimate the likelihood": "Figure 6: both flows fit ln p",
    "Figures 7/8: where the volume changes": "Figures 7/8: where volume changes",
    "App. D: failed NonUSF runs in the mixture search": "App. D: NonUSF failures (ch. 04)",
    "Figure 11: VAE-USFlow above VAE-NonUSFlow": "Figure 11: VAE-USFlow higher",
    "Figure 11: VAE-USFlow is more stable": "Figure 11: VAE-USFlow steadier",
}
ALT = "without the leak"  # the suffix of the report's columns for a tabular claim's leak-free judgement


def statement_effect(f: Finding) -> Effect | None:
    """A judged finding without an effect of its own, as the share of its statements that hold: the parts
    rule's MET/NOT_MET list, else 100 % (reproduced), 50 % (partly: one of two) or 0 % (not reproduced)."""
    if f.verdict == NOT_RUN:
        return None
    held, failed = f.why.count(f"{MET}: "), f.why.count(f"{NOT_MET}: ")
    if held + failed:
        return Effect(100 * held / (held + failed), unit=HELD, n=held + failed, of="statements")
    return Effect({REPRODUCED: 100.0, PARTLY: 50.0, NOT_REPRODUCED: 0.0}[f.verdict], unit=HELD)


def effect_columns(f: Finding) -> dict[str, Any]:
    e = f.effect if f.effect is not None or f.verdict == NOT_RUN else statement_effect(f)
    if e is None:
        return {"effect": math.nan, "low": math.nan, "high": math.nan, "unit": "", "p": math.nan, "n": 0, "n of": "",
                "effect is": "", "reference": math.nan, "by": ""}
    return {"effect": e.value, "low": e.low, "high": e.high, "unit": e.unit, "p": e.p, "n": e.n, "n of": e.of,
            "effect is": e.what, "reference": e.reference, "by": e.by}


# --------------------------------------------------------------------------
# links to the chapter sections the rows read
# --------------------------------------------------------------------------
AT_PAPER_SETTINGS = "At the paper's settings"
#: The heading each claim reads when its chapter has no AT_PAPER_SETTINGS section (by key prefix).
SECTIONS = {
    "Eq. 4": "Coupling layers: additive versus affine", "Eq. 5": "Checking Eq. 5 sample by sample",
    "Eq. 6": "Eq. 6, checked here", "§4.2: hypersphere collapse": "1 · Hypersphere collapse of Deep SVDD",
    "App. B.2: the log-det prior": "4b · Sweeping the prior scale where the likelihood is unbounded",
    "App. B.2: sigma0": "4a · Sampling LU maps from the prior",
    "Prop. 1": "2 · Proposition 1: low loss, inverted ranking",
    "Figure 1": "Figure 1, with trained models", "§4.3: the latent norm": "Checking Eq. 5 sample by sample",
    "Figure 2": "Figure 2: the latent spaces in two dimensions",
    "Figure 5": "Figure 5: true log-likelihood against latent norm",
    "Figure 6": "Figure 6: estimated against true log-likelihood",
    "Figures 7/8": "A NonUSFlow: where the identity fails", "App. D: failed NonUSF runs": "The models and the search",
    "Figure 11": "Per-class image AUC-ROC (Figure 11)", "Table": "Beside the paper's Table 1",
    "§5.2": "Image and pixel AUROC per variant", "Figure 9": "Image and pixel AUROC per variant",
}


@functools.lru_cache(maxsize=None)
def chapter_headings(chapter: str) -> tuple[str, ...]:
    """The Markdown headings (without the #s) of a chapter notebook of the book, in order; () when absent."""
    import json

    path = results.project_root() / "chapters" / f"{chapter}.ipynb"
    if not path.exists():
        return ()
    cells = json.loads(path.read_text())["cells"]
    return tuple(line.lstrip("#").strip() for c in cells if c["cell_type"] == "markdown"
                 for line in "".join(c["source"]).splitlines() if line.startswith("#"))


def anchor(heading: str) -> str:
    """The id Sphinx gives a section titled ``heading`` (docutils' make_id: "At the paper's settings" ->
    "at-the-paper-s-settings")."""
    from docutils.nodes import make_id

    return make_id(heading)


def section_link(chapter: str, section: str = "") -> str:
    """A relative link to a chapter page of the book (``NN_name.html#anchor``): its AT_PAPER_SETTINGS section when
    it has one (the committed full runs the report reads), else ``section`` when that heading exists, else the page."""
    headings = chapter_headings(chapter)
    for heading in (AT_PAPER_SETTINGS, section):
        if heading and heading in headings:
            return f"{chapter}.html#{anchor(heading)}"
    return f"{chapter}.html"


def claim_link(c: Claim) -> str:
    """The chapter section a claim's row reads (chapter 08's own checks: this page; App. D's count over
    chapters 04-07: chapter 05's failed runs)."""
    chapter = {"08": CHAPTER, "03-07": tabular.CHAPTER}.get(c.chapter, c.chapter)
    section = c.section or ("Failed runs" if c.chapter == "03-07" else
                            next((v for k, v in SECTIONS.items() if c.key.startswith(k)), ""))
    if chapter == CHAPTER:
        return f"#{anchor(section)}" if section else ""
    return section_link(chapter, section)


# --------------------------------------------------------------------------
# the verdicts in words
# --------------------------------------------------------------------------
def verdict_label(verdict: str, direction: str = "") -> str:
    return f"{verdict} ({direction})" if direction else verdict


def counts(table: pd.DataFrame) -> pd.DataFrame:
    """Verdict counts per topic and in all (rows: topics + "all"), one row per judged comparison; "not
    reproduced" split by direction (columns: reproduced, partly, one per direction, not run here)."""
    cols = [REPRODUCED, PARTLY, *(f"{NOT_REPRODUCED}: {d}" for d in DIRECTIONS), NOT_RUN]
    kind = [f"{v}: {d}" if v == NOT_REPRODUCED else v for v, d in zip(table["verdict"], table["direction"])]
    by = pd.crosstab(table["topic"], pd.Series(kind, index=table.index, name="verdict"))
    by = by.reindex(columns=cols, fill_value=0)
    by = by.reindex([t for t in dict.fromkeys(table["topic"])])
    by.loc["all"] = by.sum()
    return by


def counts_shown(table: pd.DataFrame) -> pd.DataFrame:
    """:func:`counts` for the page: "not reproduced" as one header over its three directions."""
    by = counts(table)
    by.columns = pd.MultiIndex.from_tuples([tuple(col.split(": ")) if ": " in col else (col, "") for col in by.columns])
    by.columns.names = [None, None]
    by.index.name = None
    return by


def effect_text(row: pd.Series | dict, suffix: str = "") -> str:
    """A row's numbers in words: which statistic the effect is (a median or a mean of what), its value with its
    95% interval, p and n; a range row's paper value against our range; a row of statements, how many are met
    (empty for a claim not run)."""
    get = (lambda k: row.get(f"{k} {suffix}" if suffix else k))  # noqa: E731
    unit, value = get("unit"), get("effect")
    if not unit or value != value:
        return ""
    n = f"n = {int(get('n'))} {get('n of')}" if get("n") else ""
    if unit == HELD:
        k, n_all = round(value * get("n") / 100), int(get("n") or 0)
        return (f"{k} of {n_all} statement{'s' * (n_all != 1)} met" if n_all else
                {100.0: MET, 0.0: NOT_MET, 50.0: "claim half met"}.get(value, f"{value:.0f} % met"))
    if unit == RANGE:
        return (f"the paper's {get('reference'):.2f} % against our range {get('low'):.2f}–{get('high'):.2f} % for the "
                f"47-set mean (our mean {value:.2f} % over {n.removeprefix('n = ')})")
    interval = f" [{get('low'):+.2f}, {get('high'):+.2f}]" if get("low") == get("low") else ""
    p = f"p = {get('p'):.2g}" if get("p") == get("p") else ""
    by = f" ({get('by')})" if get("by") else ""
    if by and interval and get("low") <= 0 <= get("high"):  # the rank holds, but its margin is not clear of 0
        by = f" ({get('by')}; the interval includes 0)"
    return ", ".join(x for x in (f"{get('effect is') or 'effect'} {value:+.2f} pp{interval}{by}", p, n) if x)


def totals_text(table: pd.DataFrame) -> str:
    """The totals in one sentence, written from :func:`counts`: one row per judged comparison, "not
    reproduced" with its directions."""
    total = counts(table).loc["all"]
    failed = {d: total[f"{NOT_REPRODUCED}: {d}"] for d in DIRECTIONS}
    n_failed = sum(failed.values())
    checked = total[REPRODUCED] + total[PARTLY] + n_failed
    return (f"Of the paper's claims, split into {len(table)} comparisons (a claim over two pairs is two rows), "
            f"{checked} could be judged on the results this book holds: **{total[REPRODUCED]} reproduced, "
            f"{total[PARTLY]} partly and {n_failed} not reproduced** ("
            + ", ".join(f"{k} {d}" for d, k in failed.items()) + f"); {total[NOT_RUN]} could not be run here.")


def quick_text(table: pd.DataFrame) -> str:
    """Which rows read a chapter's quick-profile results (column ``quick from``, set by
    :func:`~.evaluation.report`), per chapter; empty when none did."""
    if "quick from" not in table:
        return ""
    per: dict[str, list[str]] = {}
    for key, chapters in zip(table["claim"], table["quick from"]):
        for ch in filter(None, str(chapters).split(", ")):
            per.setdefault(ch, []).append(key)
    if not per:
        return ""
    parts = [f"chapter {ch[:2]} ({len(keys)} rows)" if len(keys) > 2 else
             f"chapter {ch[:2]} (in {' and '.join(keys)})" for ch, keys in per.items()]
    return (f"Read from the quick profile, where the full profile has committed nothing of what a row reads: "
            f"{'; '.join(parts)}. "
            "Quick runs are smaller than the paper's, so what rests on them is indicative only, and no count at the "
            "paper's settings includes them.")


def devices_text(table: pd.DataFrame) -> str:
    """The devices the results read ran on, stated once (``table.attrs["devices"]``, set by
    :func:`~.evaluation.report`)."""
    seen: dict[str, list[str]] = {}
    for (chapter, _), devices in sorted(table.attrs.get("devices", {}).items()):
        for d in devices:
            seen.setdefault(d, [])
            if chapter[:2] not in seen[d]:
                seen[d].append(chapter[:2])
    if not seen:
        return ""
    return "The results read here ran on " + "; ".join(
        f"{d} (chapter{'s' * (len(ch) > 1)} {', '.join(ch)})" for d, ch in seen.items()) + "."


def notes_text(table: pd.DataFrame) -> str:
    """What the totals rest on: the two protocols of the tabular rows (which is primary and why, and which
    verdicts change without the leak), which results come from the quick profile, and the devices (Markdown)."""
    parts = []
    if f"verdict {ALT}" in table:
        tab = table.dropna(subset=[f"verdict {ALT}"])
        alt = tab[f"verdict {ALT}"] + tab[f"direction {ALT}"].fillna("")
        flips = tab[(tab["verdict"] + tab["direction"]) != alt]
        parts.append(f"The {len(tab)} tabular rows are judged under both protocols. {PRIMARY_PROTOCOL_REASON} "
                     + (f"Without the leak, {len(flips)} of them read differently: " + "; ".join(
                         f"{r['label']}: {verdict_label(r['verdict'], r['direction'])} → "
                         f"{verdict_label(r[f'verdict {ALT}'], r[f'direction {ALT}'])}" for _, r in flips.iterrows())
                        + "." if len(flips) else "Without the leak every one of them reads the same."))
    parts += [t for t in (quick_text(table), devices_text(table)) if t]
    return "\n\n".join(parts)


def verdict_text(table: pd.DataFrame) -> str:
    """:func:`totals_text`, then :func:`notes_text`."""
    return "\n\n".join(t for t in (totals_text(table), notes_text(table)) if t)


def _alt_text(row, short: bool = False) -> str:
    """A tabular row's leak-free verdict (and, unless ``short``, its numbers); empty for other rows."""
    if not isinstance(row.get(f"verdict {ALT}"), str):
        return ""
    said = verdict_label(row[f"verdict {ALT}"], row[f"direction {ALT}"])
    alt = effect_text(row, ALT) or str(row.get(f"ours {ALT}") or "")
    if short and row.get(f"effect {ALT}") == row.get(f"effect {ALT}") and row.get(f"unit {ALT}") == PP:
        alt = f"{row[f'effect {ALT}']:+.2f} pp" + (f", p = {row[f'p {ALT}']:.2g}" if row[f"p {ALT}"] == row[f"p {ALT}"]
                                                   else "")
    return f"*{ALT}*: {said}" + (f", {alt}" if alt else "")


def summary_text(table: pd.DataFrame) -> str:
    """Every verdict with its numbers (which statistic, its interval, p, n, then our numbers in words) and a link
    to the chapter section its row reads, grouped by verdict (Markdown); the claims not run here grouped by their
    reason."""
    def name(row) -> str:
        return f"[{row['claim']}]({row['link']})" if row["link"] else row["claim"]

    def line(row) -> str:
        numbers = effect_text(row)
        said = numbers if row["unit"] != HELD or not row["ours"] else f"{row['ours']} ({numbers})"
        if row["unit"] == PP and row["ours"] and numbers:
            said += f"; {row['ours']}"
        text = f"- {name(row)}: {said or row['ours']}"
        if isinstance(row.get("setup"), str) and row["setup"]:
            text += f" — on {row['setup']}"
        alt = _alt_text(row)
        return text + (f" · {alt}" if alt else "")

    out = []
    for verdict in (REPRODUCED, PARTLY, NOT_REPRODUCED):
        for direction in (DIRECTIONS if verdict == NOT_REPRODUCED else ("",)):
            rows = table[(table["verdict"] == verdict) & (table["direction"] == direction)]
            if len(rows):
                out.append(f"**{verdict_label(verdict, direction)}** ({len(rows)})\n\n"
                           + "\n".join(line(r) for _, r in rows.iterrows()))
    not_run = table[table["verdict"] == NOT_RUN]
    if len(not_run):
        reasons = not_run.groupby("why", sort=False)  # one line per reason
        out.append(f"**{NOT_RUN}** ({len(not_run)})\n\n" + "\n".join(
            f"- {', '.join(name(r) for _, r in g.iterrows())}: {g['why'].iloc[0]}" for _, g in reasons))
    return "\n\n".join(out)


def _row(table: pd.DataFrame, key: str) -> pd.Series | None:
    rows = table[table["claim"] == key]
    return rows.iloc[0] if len(rows) else None


def _answer(row: pd.Series | None, numbers: str = "") -> str:
    """``verdict (direction)``, then ``numbers`` (default: the row's effect, else its ``ours``)."""
    if row is None:
        return "no such row"
    said = f"*{verdict_label(row['verdict'], row['direction'])}*"
    if row["verdict"] == NOT_RUN:
        return f"{said}: {row['why']}"
    return f"{said}: {numbers or effect_text(row) or row['ours']}"


_UNDER = {BENCHMARK: f"under {BENCHMARK}", LEAK_FREE: LEAK_FREE}


def aggregate_text(finding: Finding) -> str:
    """What our runs can say about §5.1.2's 47-set mean (the finding of "§5.1.2: USFlow 85.61 ± 13.54"): the
    range of the mean under each protocol, and which range holds the paper's value (Markdown)."""
    paper = tabular.PAPER["USFlow"]["mean"]
    ranges = {name: f.detail.attrs for name, f in ((BENCHMARK, finding), (LEAK_FREE, finding.alt))
              if f is not None and f.detail is not None and f.detail.attrs}
    if not ranges:
        return f"*{NOT_RUN}*: {finding.why}"
    r0 = next(iter(ranges.values()))
    text = "; ".join(f"{_UNDER[name]} {r['low']:.2f}–{r['high']:.2f} % ({r['wide low']:.2f}–{r['wide high']:.2f} "
                     f"with ± {SEED_SDS} seed stds of {r['seed sd']:.2f} pp)" for name, r in ranges.items())
    wide = [_UNDER[n] for n, r in ranges.items() if r["wide low"] <= paper <= r["wide high"]]
    bare = [_UNDER[n] for n, r in ranges.items() if r["low"] <= paper <= r["high"]]
    return (f"our runs cover {int(r0['datasets'])} of the {PAPER_TABULAR_DATASETS} datasets; whatever the "
            f"{int(r0['missing'])} others score ({MISSING_RANGE[0]:g}–{MISSING_RANGE[1]:g} %), the "
            f"{PAPER_TABULAR_DATASETS}-set mean lies in: {text}. The paper's {paper:.2f} lies within the widened range "
            f"{' and '.join(wide) if wide else 'of neither protocol'}, and within the range before widening "
            f"{'only ' if len(bare) == 1 else ''}{' and '.join(bare) if bare else 'of neither'}")


def headline_text(table: pd.DataFrame, findings: dict[str, Finding] | None = None) -> str:
    """The abstract's headline claims, one line each (verdict, then the effect with what it is, its interval, p and
    n, or the statements met), computed from the report's rows (Markdown); the details are in
    :func:`summary_text`.  ``findings`` is accepted for compatibility (the 47-set mean reads its row)."""
    t = functools.partial(_row, table)

    def item(title: str, key: str, note: str = "", numbers: str = "") -> str:
        row = t(key)
        if row is None:
            return f"**{title}** no such row"
        if row["verdict"] == NOT_RUN:
            why = str(row["why"]).split(" (")[0]
            return f"**{title}** *{NOT_RUN}*: {why}"
        alt = _alt_text(row, short=True)
        setup = f" (on {row['setup']})" if isinstance(row.get("setup"), str) and row["setup"] else ""
        said = _answer(row) + (f" ({numbers})" if numbers else "")
        return f"**{title}**{setup}{note} {said}" + (f"; {alt}" if alt else "")

    def ours(key: str, prefix: str = "") -> str:  # a row's own numbers, for a headline whose effect is a count
        row = t(key)
        return f"{prefix}{row['ours']}" if row is not None and row["verdict"] != NOT_RUN and row["ours"] else ""

    image = table[table["topic"] == "image"]
    image_line = (f"**Image benchmarks** *{NOT_RUN}*: none of the {len(image)} image claims: no runs at the paper's "
                  "settings (no GPU, no ImageNet weights on these machines)"
                  if len(image) and (image["verdict"] == NOT_RUN).all() else
                  "**Image benchmarks** " + "; ".join(f"{r['label']}: {_answer(r)}" for _, r in image.iterrows()))
    lines = [
        item("Eq. 5, USF likelihood = Deep SVDD + a weight-only term:", "Eq. 5: NLL = SVDD term - ln psi_det",
             numbers=ours("Eq. 5: NLL = SVDD term - ln psi_det", "largest relative residual ")),
        item("USFs prevent representational collapse (§4.2):", "§4.2: hypersphere collapse",
             numbers=ours("§4.2: hypersphere collapse", "Deep SVDD's latent ").split(";")[0]),
        item("Tighter NLL–latent-norm alignment (Figure 5):", "Figure 5: USFs keep latent norm and density monotone",
             numbers=ours("Figure 2: alignment in 2-D", "Spearman ρ at d = 2: ")),
        item("VAE hybrid, Figure 11, VAE-USFlow above VAE-NonUSFlow", "Figure 11: VAE-USFlow above VAE-NonUSFlow",
             ":"),
        item("VAE hybrid on the tabular benchmark:",
             "§5.1.2: USF variants beat their non-USF counterparts: VAE-USFlow vs VAE-NonUSFlow"),
        item("Drop-in gain, tabular, USFlow over NonUSFlow:",
             "§5.1.2: USF variants beat their non-USF counterparts: USFlow vs NonUSFlow"),
        item("Drop-in stability, tabular, USFlow vs NonUSFlow:",
             "Abstract: USFs make tabular training more stable: USFlow vs NonUSFlow"),
        image_line,
        _aggregate_headline(t("§5.1.2: USFlow 85.61 ± 13.54"), (findings or {}).get("§5.1.2: USFlow 85.61 ± 13.54"))
        or item("USFlow's mean AUC-ROC 85.61 % over 47 datasets (§5.1.2):", "§5.1.2: USFlow 85.61 ± 13.54"),
    ]
    return "\n".join(f"- {line}" for line in lines)


def _aggregate_headline(row: pd.Series | None, finding: Finding | None) -> str:
    """The 47-set mean's headline: its verdict, then :func:`aggregate_text` (both protocols' ranges, before and
    after widening, and which holds the paper's value), so that a verdict that rests on the widening says so;
    empty when the row or its ranges are missing."""
    if row is None or finding is None or row["verdict"] == NOT_RUN:
        return ""
    return (f"**USFlow's mean AUC-ROC 85.61 % over 47 datasets (§5.1.2):** "
            f"*{verdict_label(row['verdict'], row['direction'])}*: {aggregate_text(finding)}")


def rules_text() -> str:
    """The shared tolerance rules with their constants, as Markdown (the chapter shows it)."""
    return "\n".join([
        f"* **sign rule**: the median of the paired differences (over datasets, classes or table cells) has the "
        f"sign the paper states, and a two-sided paired Wilcoxon test gives p < {ALPHA} -> reproduced; the sign "
        f"holds without significance -> partly; the other sign -> not reproduced. It needs {MIN_PAIRS} pairs or "
        f"more (fewer cannot reach p < {ALPHA}): else not run here.",
        f"* **cells rule**: a table cell passes when our mean over seeds lies within the larger of the two "
        f"run-to-run stds (the paper's or ours), at least {MIN_TOL_PP:g} AUC-ROC point, of the paper's mean; "
        f"{CELLS_REPRODUCED:.0%} of the cells or more -> reproduced, {CELLS_PARTLY:.0%} or more -> partly. "
        f"Absolute image AUC-ROCs are judged only with ImageNet backbone weights.",
        "* **parts rule**: a claim made of several statements: all hold -> reproduced, some -> partly, none -> "
        "not reproduced.",
        "* **count rule** / **within rule**: a count equals the paper's; a value lies within a stated tolerance.",
        f"* A claim over the paper's {PAPER_TABULAR_DATASETS} ADBench datasets is judged on {MIN_DATASETS} "
        f"datasets or more; on fewer it is not run here (with our numbers shown).",
        f"* **range rule** (the paper's 47-set mean): the range the mean over {PAPER_TABULAR_DATASETS} datasets "
        f"takes with our datasets' means and the missing ones anywhere in {MISSING_RANGE[0]:g}-{MISSING_RANGE[1]:g} %, "
        f"widened on each side by {SEED_SDS} standard deviations of the mean over our seeds; reproduced when the "
        f"paper's value lies inside.",
        f"* **effects** (the figure and the summary): signed so that > 0 is the direction the paper claims, with a "
        f"95% percentile interval from {BOOTSTRAP} bootstrap resamples of the datasets or classes (seed "
        f"{BOOTSTRAP_SEED}); the p of the rule's test where it has one.",
    ])


# --------------------------------------------------------------------------
# the tables and the figure's colours
# --------------------------------------------------------------------------
TOPICS = {"theory": "Theory: §4 and App. B", "synthetic": "Synthetic data: Figures 1, 2, 5-8, App. C and D",
          "tabular": "Tabular benchmark: §5.1, Figure 3", "vae": "VAE-USFlow: Figure 11, App. D",
          "failures": "Failed runs in every chapter: App. D",
          "image": "Image benchmarks: §5.2, Tables 1-5, Figures 4, 9, 10"}
CLAIM_COLUMNS = ["verdict", "where", "the paper says", "paper", "ours"]  # the verdict first: seen without scrolling
RULE_COLUMNS = ["rule", "why", "read from", "conditions (ours)"]
#: The tabular rows: both protocols side by side, so the quote moves to the rules table (5 columns each).
TABULAR_COLUMNS = ["verdict", "ours", "without the leak"]  # the row's label names the claim
TABULAR_RULE_COLUMNS = ["rule", "why"]  # the rest, shared by every tabular row, is said once: tabular_common_text
COLOURS = {REPRODUCED: "#d5efd5", PARTLY: "#fff0c2", NOT_REPRODUCED: "#f7d0d0", NOT_RUN: "#e6e6e6"}
#: The figure's colours (usfkit.plots.report.claims_figure), one per verdict it draws, "not reproduced" by direction
#: (keyed "not reproduced: <direction>", the words of :func:`counts`' columns and of the figure's legend); a verdict
#: without a colour (not run here) is not drawn.
FIGURE_COLOURS = {REPRODUCED: "#2ca02c", PARTLY: "#e6a700", f"{NOT_REPRODUCED}: {CONTRADICTED}": "#d62728",
                  f"{NOT_REPRODUCED}: {NOT_SUPPORTED}": "#ff9896", f"{NOT_REPRODUCED}: {USF_FAVOUR}": "#9467bd"}
#: What the figure needs to know of the report's words, passed in (views import nothing from experiments):
#: ``plots.claims_figure(table, **claims.FIGURE)``.
FIGURE = {"colours": FIGURE_COLOURS, "units": (PP, RANGE, HELD), "topics": tuple(TOPICS), "alt": ALT}


_TEX = {"\\sigma": "σ", "\\phi": "φ", "_0": "₀", "_{ii}": "_ii", "$": ""}


def plain_math(text: Any) -> Any:
    """A paper quote's inline TeX (``$\\sigma_0 = \\sigma/(chw)$``) as plain text (σ₀ = σ/(chw)): a table
    cell in the book is HTML that no maths renderer reads."""
    if not isinstance(text, str) or "$" not in text:
        return text
    for tex, plain in _TEX.items():
        text = text.replace(tex, plain)
    return text


def styled(table: pd.DataFrame, topic: str, columns: list[str]):
    """The claims of ``topic`` with ``columns``, one row per claim, verdicts (with their direction) coloured,
    text left-aligned, inline TeX of the quotes as plain text.  The column ``ALT`` ("without the leak") shows a
    tabular row's leak-free verdict and its effect; the tabular rows are named by their short label (their
    shared protocol, basis and conditions: :func:`tabular_common_text`)."""
    t = table[table["topic"] == topic]
    t = t.set_index("label" if topic == "tabular" else "claim").rename_axis(None)
    t = t.assign(verdict=[verdict_label(v, d) for v, d in zip(t["verdict"], t["direction"])])
    if ALT in columns:
        t[ALT] = [_alt_text(r).removeprefix(f"*{ALT}*: ") for _, r in t.iterrows()]
    style = t[columns].style.format(plain_math).set_table_styles(
        [{"selector": "td, th", "props": "text-align: left; vertical-align: top;"}])
    for col in ("verdict", ALT):
        if col in columns:
            style = style.map(lambda v: f"background-color: {COLOURS.get(str(v).split(' (')[0].split(',')[0], '')}",
                              subset=[col])
    return style


def tabular_common_text(table: pd.DataFrame) -> str:
    """What every tabular row shares, said once (Markdown): the datasets rule, the two protocols, the runs read
    and the conditions that differ from the paper's, from the rows' own columns."""
    tab = table[table["topic"] == "tabular"]
    if tab.empty:
        return ""
    judged = tab[tab["verdict"] != NOT_RUN]
    first = (judged if len(judged) else tab).iloc[0]
    conditions = str(first["conditions (ours)"]).split("; VAE runs")[0]
    return (f"Every tabular row is judged on at least {MIN_DATASETS} of the paper's {PAPER_TABULAR_DATASETS} datasets, "
            f"under {BENCHMARK} (the primary verdict) and {LEAK_FREE}, on chapter 05's datasets: the (dataset, seed) "
            f"pairs that every method ran, the VAEs only where all their runs have the '{tabular.PRIMARY_VAE_SCORE}' "
            f"score. Read from: {re.sub(r', [0-9]+ runs$', '', str(first['read from']))}. Our conditions: "
            f"{conditions}. A row's rule names its methods.")


_HEADERS = {"rel_error": "relative error", "std_err": "standard error", "finite_variance": "finite variance",
            "usf": "USF", "nonusf": "NonUSF", "additive_lu": "additive + LU", "affine_lu": "affine + LU",
            "image_auroc": "image AUC-ROC", "pixel_auroc": "pixel AUC-ROC", "fastflow": "FastFlow",
            "cflow": "CFlow", "uflow": "U-Flow"}


def _header(v: Any) -> Any:
    """A column or row name as the page shows it: the words for a known code, else underscores as spaces."""
    if not isinstance(v, str):
        return v
    return _HEADERS.get(v, v.replace("_", " ") if re.fullmatch(r"[a-z]+(_[a-z0-9]+)+", v) else v)


def detail_view(detail: pd.DataFrame):
    """A detail table as the page shows it (:func:`readable` numbers): names in words (no snake_case), "–" for a
    missing value, no bare 0, 1, 2 index; a table of the paper's cells (3 column levels) gets its architecture
    moved into the rows and the columns that hold nothing dropped; a table much wider than long is transposed, so
    that it stays within the text column."""
    d = detail.copy().replace({"nan": "–", "NaN": "–"})  # a value saved as the text "nan" is a missing one too
    if d.columns.nlevels == 3:  # the paper's Tables 1-5: (arch, coupling, paper/ours) -> arch into the rows
        d = d.stack(level=0, future_stack=True)
        d = d.loc[:, [c for c in d.columns if not (d[c].isna() | (d[c] == "–")).all()]]
    elif d.shape[1] > 7 and d.shape[0] < d.shape[1]:
        d = d.T
    d = d.rename(columns=_header, index=_header)
    if d.columns.nlevels > 1:
        d.columns = d.columns.set_levels([[_header(v) for v in lev] for lev in d.columns.levels])
    if d.index.nlevels > 1:
        d.index = d.index.set_levels([[_header(v) for v in lev] for lev in d.index.levels])
    d.index.names = [_header(n) for n in d.index.names]
    style = readable(d)
    return style.hide(axis="index") if isinstance(detail.index, pd.RangeIndex) and d.index.equals(detail.index) \
        else style


def readable(detail: pd.DataFrame):
    """A detail table for the page, floats shortened so that precision checks stay readable: 4 significant
    digits from 1 up (``22.65``), 4 decimals below (``0.0208``), e-notation under 0.001 (``7.63e-06``)."""
    def fmt(v: Any) -> Any:
        if v is None or (isinstance(v, (float, np.floating)) and v != v):
            return "–"
        if not isinstance(v, (float, np.floating)):
            return v
        return f"{v:.4g}" if abs(v) >= 1 else f"{v:.4f}" if v == 0 or abs(v) >= 1e-3 else f"{v:.2e}"
    return detail.style.format(fmt, na_rep="–")

