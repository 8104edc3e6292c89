"""Chapter 08's figure: every judged claim of the reproduction report as a row, coloured by verdict
(``usfkit.experiments.claims.report``'s table): the effects in percentage points with their 95% intervals, the
paper's 47-set mean against the range our runs allow, and the claims without a common unit as the share of their
statements that are met.  The report's words (its verdicts' colours, its units, topics and the suffix of the
leak-free columns) are passed in, ``claims_figure(table, **claims.FIGURE)``: this view imports nothing from
experiments."""
from __future__ import annotations

import textwrap
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

__all__ = ["LABEL_WIDTH", "XLIM_PP", "verdict_colour", "clipped", "claims_figure"]

LABEL_WIDTH = 46  # a row label longer than this wraps onto a second line (never cut)
XLIM_PP = 8.0  # the effect axis spans ±this many pp; an effect or interval beyond it ends in an arrow at the edge


def verdict_colour(colours: dict[str, str], verdict: str, direction: str = "") -> str | None:
    """The colour of a verdict: ``colours`` keyed by the verdict, or ``"<verdict>: <direction>"`` for one with a
    direction ("not reproduced: contradicted"); None for a verdict the figure does not draw (not run here)."""
    return colours.get(verdict) or colours.get(f"{verdict}: {direction}")


def _label(row: pd.Series, pp: str) -> str:
    """The row's label, wrapped (not cut); a verdict that follows a rank or a point value says so."""
    text = str(row["label"]) + (f" ({row['by']})" if row.get("by") and row["unit"] == pp else "")
    return textwrap.fill(text, LABEL_WIDTH)


def _rows(table: pd.DataFrame, unit: str, colours: dict[str, str], topics: Sequence[str]) -> pd.DataFrame:
    """The drawn rows (a verdict with a colour) with an effect in ``unit``, grouped by topic in ``topics``' order."""
    drawn = [verdict_colour(colours, v, d) is not None for v, d in zip(table["verdict"], table["direction"])]
    rows = table[pd.Series(drawn, index=table.index, dtype=bool) & (table["unit"] == unit)]
    order = {t: i for i, t in enumerate(topics)}
    return rows.assign(_t=rows["topic"].map(order)).sort_values("_t", kind="stable").drop(columns="_t")


def _topic_bands(ax, rows: pd.DataFrame) -> None:
    """A line between topics and the topic's name right of the axes, clear of the bars and markers."""
    for topic, idx in rows.groupby("topic", sort=False).indices.items():
        ax.text(1.03, np.mean(idx), topic, transform=ax.get_yaxis_transform(), va="center", ha="left",
                fontsize=8, color="0.35")
        if idx.min() > 0:
            ax.axhline(idx.min() - 0.5, color="0.8", lw=0.8)


def clipped(x: float, lo: float, hi: float, lim: float = XLIM_PP) -> tuple[float, float, float, bool]:
    """An effect ``x`` with its interval ``lo``-``hi`` cut to ±``lim``, and whether anything was cut."""
    cut = any(abs(v) > lim for v in (x, lo, hi) if v == v)
    return (*(float(np.clip(v, -lim, lim)) if v == v else v for v in (x, lo, hi)), cut)


def _interval(ax, x, lo, hi, y, colour, hollow=False):
    """One effect with its interval, cut at the axis edge; what is cut ends in an arrow and the value is written."""
    xc, loc, hic, _ = clipped(x, lo, hi)
    err = None if loc != loc else [[max(xc - loc, 0)], [max(hic - xc, 0)]]
    ax.errorbar(xc, y, xerr=err, fmt="o", ms=5, color=colour, mfc="white" if hollow else colour, capsize=2, lw=1.2)
    for end in (hic, loc):
        if end == end and abs(end) >= XLIM_PP:
            ax.plot(end, y, marker=">" if end > 0 else "<", color=colour, ms=6, clip_on=False)
    if abs(x) > XLIM_PP:  # the effect itself is off the axis: its value beside the arrow
        ax.annotate(f"{x:+.1f} pp", (xc, y), xytext=(-8 if xc > 0 else 8, 0), textcoords="offset points",
                    ha="right" if xc > 0 else "left", va="center", fontsize=7, color=colour)


def claims_figure(table: pd.DataFrame, colours: dict[str, str], units: tuple[str, str, str], topics: Sequence[str],
                  alt: str, width: float = 7.6):
    """Every judged row of ``table`` (``claims.report``), coloured by verdict (``colours``, "not reproduced" by
    direction: :func:`verdict_colour`; a verdict without a colour is not drawn), in three panels by ``units`` (the
    table's units of percentage points, of the 47-set range and of the share of statements met), the topics in
    ``topics``' order; ``alt`` is the suffix of the leak-free columns of a tabular row:

    * top, the rows whose effect is in percentage points: the effect in the direction the paper claims (> 0: as the
      paper says; each row's label says when its verdict follows a rank or a point value, not the interval) with its
      95% interval, on ±XLIM_PP pp (beyond: an arrow and the numbers); a tabular row's leak-free judgement is the
      hollow marker just below;
    * middle, the paper's 47-set mean (black diamond) against the range our runs allow for it, per protocol;
    * bottom, the rows without a common unit (identities, counts, claims of several statements): the share of their
      statements that are met."""
    pp = units[0]
    top, mid, bottom = (_rows(table, u, colours, topics) for u in units)
    heights = [len(top) + 1.5, max(len(mid), 1) * 0.9 + 1.2, len(bottom) + 1.5]
    fig, (ax1, axr, ax2) = plt.subplots(3, 1, figsize=(width, 0.27 * sum(heights) + 2.4),
                                        gridspec_kw={"height_ratios": heights})
    for y, (_, row) in enumerate(top.iterrows()):
        colour = verdict_colour(colours, row["verdict"], row["direction"])
        _interval(ax1, row["effect"], row["low"], row["high"], y, colour)
        verdict = row.get(f"verdict {alt}")
        colour = verdict_colour(colours, verdict, row[f"direction {alt}"]) if isinstance(verdict, str) else None
        if colour is not None:  # the leak-free judgement, hollow, just below
            _interval(ax1, row[f"effect {alt}"], row[f"low {alt}"], row[f"high {alt}"], y + 0.35, colour, hollow=True)
    ax1.axvline(0, color="0.3", lw=0.8)
    ax1.set_xlim(-XLIM_PP, XLIM_PP)
    ax1.set_yticks(range(len(top)), [_label(r, pp) for _, r in top.iterrows()])
    ax1.set_ylim(len(top) - 0.4, -0.8)
    ax1.set_xlabel(f"effect in the claimed direction (pp), 95% interval; beyond ±{XLIM_PP:g} pp: arrow", fontsize=9)
    _topic_bands(ax1, top)

    for y, (_, row) in enumerate(mid.iterrows()):
        for dy, suffix, hollow in ((0.0, "", False), (0.35, f" {alt}", True)):
            verdict = row.get(f"verdict{suffix}")
            colour = verdict_colour(colours, verdict, row[f"direction{suffix}"]) if isinstance(verdict, str) else None
            if colour is None:
                continue
            axr.plot([row[f"low{suffix}"], row[f"high{suffix}"]], [y + dy] * 2, color=colour, lw=5 if not hollow else 2,
                     solid_capstyle="butt", alpha=0.8)
        axr.plot(row["reference"], y + 0.17, marker="D", color="black", ms=6, ls="")
    axr.set_yticks(range(len(mid)), [_label(r, pp) for _, r in mid.iterrows()])
    axr.set_ylim(max(len(mid), 1) - 0.3, -0.6)
    axr.set_xlabel("47-set mean AUC-ROC (%): our range (thin: without the leak), the paper's ◆", fontsize=9)

    bars = [verdict_colour(colours, v, d) for v, d in zip(bottom["verdict"], bottom["direction"])]
    ax2.barh(range(len(bottom)), bottom["effect"], color=bars, height=0.55)
    ax2.scatter(bottom["effect"], range(len(bottom)), color=bars, s=22, zorder=3, clip_on=False)  # 0 % shows too
    ax2.set_yticks(range(len(bottom)), [_label(r, pp) for _, r in bottom.iterrows()])
    ax2.set_ylim(len(bottom) - 0.4, -0.8)
    ax2.set_xlim(0, 100)
    ax2.set_xlabel("share of the claim's statements that are met (%)", fontsize=9)
    _topic_bands(ax2, bottom)
    for ax in (ax1, axr, ax2):
        ax.tick_params(axis="y", labelsize=8)
        ax.grid(axis="y", visible=False)

    handles = [Line2D([], [], marker="o", ls="", color=col, label=name) for name, col in colours.items()]
    handles.append(Line2D([], [], marker="o", ls="", color="0.4", mfc="white", label=f"tabular, {alt}"))
    fig.legend(handles=handles, loc="upper center", ncol=3, fontsize=8, bbox_to_anchor=(0.5, 1.0))
    fig.subplots_adjust(left=0.43, right=0.87, top=1 - 0.75 / fig.get_figheight(), bottom=0.5 / fig.get_figheight(),
                        hspace=0.9 / np.mean(heights) * 2)
    return fig
