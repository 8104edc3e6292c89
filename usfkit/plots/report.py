"""Chapter 08's figure: every judged claim of the reproduction report as a row, its effect with a 95% interval,
coloured by verdict (``usfkit.experiments.claims.report``'s table)."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from ..experiments import claims as c

#: One colour per verdict, "not reproduced" by direction.
VERDICT_COLOURS = {c.REPRODUCED: "#2ca02c", c.PARTLY: "#e6a700", c.CONTRADICTED: "#d62728",
                   c.NOT_SUPPORTED: "#ff9896", c.USF_FAVOUR: "#9467bd"}
LABEL_CHARS = 44  # a row label longer than this is cut


def verdict_colour(verdict: str, direction: str = "") -> str:
    return VERDICT_COLOURS[direction if verdict == c.NOT_REPRODUCED else verdict]


def _label(row: pd.Series) -> str:
    text = str(row["label"])
    text = text if len(text) <= LABEL_CHARS else text[:LABEL_CHARS - 1] + "…"
    return f"{text} (ours − paper)" if row["unit"] == c.FROM_PAPER else text


def _rows(table: pd.DataFrame, units: tuple[str, ...]) -> pd.DataFrame:
    """The judged rows with an effect in ``units``, grouped by topic in the report's topic order."""
    rows = table[(table["verdict"] != c.NOT_RUN) & table["unit"].isin(units)]
    order = {t: i for i, t in enumerate(c.TOPICS)}
    return rows.assign(_t=rows["topic"].map(order)).sort_values("_t", kind="stable").drop(columns="_t")


def _topic_bands(ax, rows: pd.DataFrame) -> None:
    """A line between topics and the topic's name at the right edge of its rows."""
    for topic, idx in rows.groupby("topic", sort=False).indices.items():
        ax.text(1.0, np.mean(idx), f" {topic}", transform=ax.get_yaxis_transform(), va="center", ha="left",
                fontsize=8, color="0.35")
        if idx.min() > 0:
            ax.axhline(idx.min() - 0.5, color="0.8", lw=0.8)


def _interval(ax, x, lo, hi, y, colour, hollow=False):
    err = None if lo != lo else [[max(x - lo, 0)], [max(hi - x, 0)]]
    ax.errorbar(x, y, xerr=err, fmt="o", ms=5, color=colour, mfc="white" if hollow else colour, capsize=2, lw=1.2)


def claims_figure(table: pd.DataFrame, width: float = 7.6):
    """Every judged row of ``table`` (``claims.report``): top, the rows whose effect is in percentage points —
    the effect in the direction the paper claims (> 0: as the paper says; for a stated value, ours minus the
    paper's) with its 95% interval (bootstrap over datasets or classes, or the range our runs allow); the
    leak-free judgement of a tabular row as a hollow marker just below.  Bottom, the rows without a common
    unit (identities, counts, claims of several statements): the share of their statements that hold.
    Colour: the verdict, "not reproduced" by direction."""
    top, bottom = _rows(table, (c.PP, c.FROM_PAPER)), _rows(table, (c.HELD,))
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(width, 0.21 * (len(top) + len(bottom)) + 2.0),
                                   gridspec_kw={"height_ratios": [len(top) + 2, len(bottom) + 2]})
    alt = f"verdict {c.ALT}"
    for y, (_, row) in enumerate(top.iterrows()):
        _interval(ax1, row["effect"], row["low"], row["high"], y, verdict_colour(row["verdict"], row["direction"]))
        if isinstance(row.get(alt), str) and row[alt] != c.NOT_RUN:
            _interval(ax1, row[f"effect {c.ALT}"], row[f"low {c.ALT}"], row[f"high {c.ALT}"], y + 0.35,
                      verdict_colour(row[alt], row[f"direction {c.ALT}"]), hollow=True)
    ax1.axvline(0, color="0.3", lw=0.8)
    ax1.set_yticks(range(len(top)), [_label(r) for _, r in top.iterrows()])
    ax1.set_ylim(len(top) - 0.4, -0.8)
    ax1.set_xlabel("effect in the claimed direction (pp), with its 95% interval")
    _topic_bands(ax1, top)

    colours = [verdict_colour(v, d) for v, d in zip(bottom["verdict"], bottom["direction"])]
    ax2.barh(range(len(bottom)), bottom["effect"], color=colours, height=0.55)
    ax2.scatter(bottom["effect"], range(len(bottom)), color=colours, s=22, zorder=3, clip_on=False)  # 0 % shows too
    ax2.set_yticks(range(len(bottom)), [_label(r) for _, r in bottom.iterrows()])
    ax2.set_ylim(len(bottom) - 0.4, -0.8)
    ax2.set_xlim(0, 100)
    ax2.set_xlabel("share of the claim's statements that hold (%)")
    _topic_bands(ax2, bottom)
    for ax in (ax1, ax2):
        ax.tick_params(axis="y", labelsize=8)
        ax.grid(axis="y", visible=False)

    handles = [Line2D([], [], marker="o", ls="", color=col, label=name) for name, col in
               [(c.REPRODUCED, VERDICT_COLOURS[c.REPRODUCED]), (c.PARTLY, VERDICT_COLOURS[c.PARTLY])]
               + [(f"not reproduced: {d}", VERDICT_COLOURS[d]) for d in c.DIRECTIONS]]
    handles.append(Line2D([], [], marker="o", ls="", color="0.4", mfc="white", label=f"tabular, {c.ALT}"))
    fig.legend(handles=handles, loc="upper center", ncol=3, fontsize=8, bbox_to_anchor=(0.5, 1.0))
    fig.tight_layout(rect=(0, 0, 0.9, 0.95))
    return fig
