"""Chapter 08's figure (usfkit.plots.report.claims_figure) on a constructed report table, given the report's words
(claims.FIGURE: the view imports nothing from experiments)."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.colors as mcolors  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from usfkit.experiments import claims  # noqa: E402
from usfkit.plots import report  # noqa: E402

COLOURS = claims.FIGURE_COLOURS


def colour(verdict: str, direction: str = "") -> str:
    return COLOURS[f"{verdict}: {direction}" if direction else verdict]


def table() -> pd.DataFrame:
    nan = np.nan
    rows = [  # claim, topic, verdict, direction, effect, low, high, unit, alt verdict, by
        ("gain", "tabular", claims.REPRODUCED, "", 0.3, 0.04, 1.2, claims.PP, claims.NOT_REPRODUCED, ""),
        ("median", "tabular", claims.NOT_REPRODUCED, claims.USF_FAVOUR, -2.5, -10.0, 1.0, claims.PP, None,
         "point rule"),
        ("mean", "tabular", claims.REPRODUCED, "", 89.3, 85.0, 91.2, claims.RANGE, claims.REPRODUCED, "range rule"),
        ("identity", "theory", claims.REPRODUCED, "", 100.0, nan, nan, claims.HELD, None, ""),
        ("count", "failures", claims.NOT_REPRODUCED, claims.CONTRADICTED, 0.0, nan, nan, claims.HELD, None, ""),
        ("vae pair", "tabular", claims.NOT_RUN, "", nan, nan, nan, "", claims.NOT_RUN, ""),
        ("trail", "tabular", claims.REPRODUCED, "", 22.4, 16.9, 27.2, claims.PP, None, "rank rule"),
    ]
    out = []
    for key, topic, verdict, direction, effect, low, high, unit, alt, by in rows:
        row = {"claim": key, "label": key, "topic": topic, "verdict": verdict, "direction": direction,
               "effect": effect, "low": low, "high": high, "unit": unit, "by": by,
               "reference": 85.61 if unit == claims.RANGE else nan}
        if alt:
            row.update({f"verdict {claims.ALT}": alt,
                        f"direction {claims.ALT}": claims.CONTRADICTED if alt == claims.NOT_REPRODUCED else "",
                        f"effect {claims.ALT}": -1.0, f"low {claims.ALT}": -2.0, f"high {claims.ALT}": -0.5})
            if unit == claims.RANGE:
                row.update({f"effect {claims.ALT}": 86.3, f"low {claims.ALT}": 82.5, f"high {claims.ALT}": 88.1})
        out.append(row)
    return pd.DataFrame(out)


def test_one_row_per_judged_comparison_coloured_by_verdict():
    fig = report.claims_figure(table(), **claims.FIGURE)
    top, ranges, bottom = fig.axes[:3]
    labels = [t.get_text() for t in top.get_yticklabels()]
    # the pp rows on top, in the report's topic order, a rank or point rule said in the label; not run: not drawn
    assert labels == ["gain", "median (point rule)", "trail (rank rule)"]
    assert [t.get_text() for t in ranges.get_yticklabels()] == ["mean"]  # the range row apart, never "ours − paper"
    assert [t.get_text() for t in bottom.get_yticklabels()] == ["identity", "count"]  # theory before failures
    hollow = [line for line in top.lines if line.get_marker() == "o" and line.get_markerfacecolor() == "white"]
    assert len(hollow) == 1  # the leak-free judgement of "gain", beside its row
    assert mcolors.to_hex(hollow[0].get_color()) == colour(claims.NOT_REPRODUCED, claims.CONTRADICTED)
    filled = [line for line in top.lines if line.get_marker() == "o" and line.get_markerfacecolor() != "white"]
    assert [mcolors.to_hex(line.get_color()) for line in filled] == [
        colour(claims.REPRODUCED), colour(claims.NOT_REPRODUCED, claims.USF_FAVOUR), colour(claims.REPRODUCED)]
    xs = [line.get_xdata()[0] for line in filled]
    assert xs == [0.3, -2.5, report.XLIM_PP]  # +22.4 is off the axis: drawn at its edge ...
    assert any(t.get_text() == "+22.4 pp" for t in top.texts)  # ... with its value written
    assert top.get_xlim() == (-report.XLIM_PP, report.XLIM_PP)
    diamond = [line for line in ranges.lines if line.get_marker() == "D"]
    assert len(diamond) == 1 and diamond[0].get_xdata()[0] == 85.61  # the paper's value against our range
    bars = [mcolors.to_hex(p.get_facecolor()) for p in bottom.patches]
    assert bars == [colour(claims.REPRODUCED), colour(claims.NOT_REPRODUCED, claims.CONTRADICTED)]
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["reproduced", "partly", "not reproduced: contradicted", "not reproduced: not supported",
                      "not reproduced: differs in USF's favour", "tabular, without the leak"]
    plt.close(fig)


def test_long_labels_wrap_and_are_never_cut():
    t = table()
    t.loc[0, "label"] = "a label much longer than the width the figure gives a row label before it wraps"
    fig = report.claims_figure(t, **claims.FIGURE)
    label = fig.axes[0].get_yticklabels()[0].get_text()
    assert "…" not in label and "\n" in label and label.replace("\n", " ") == t.loc[0, "label"]
    plt.close(fig)


def test_clipped_cuts_an_interval_to_the_axis():
    assert report.clipped(0.5, -1.0, 2.0) == (0.5, -1.0, 2.0, False)
    assert report.clipped(22.4, 16.9, 27.2, lim=8) == (8.0, 8.0, 8.0, True)
    assert report.clipped(2.3, -9.7, 4.5, lim=8) == (2.3, -8.0, 4.5, True)


def test_verdict_colour_splits_not_reproduced_by_direction():
    assert report.verdict_colour(COLOURS, claims.NOT_REPRODUCED, claims.NOT_SUPPORTED) != \
        report.verdict_colour(COLOURS, claims.NOT_REPRODUCED, claims.CONTRADICTED)
    assert report.verdict_colour(COLOURS, claims.PARTLY) == COLOURS[claims.PARTLY]
    assert report.verdict_colour(COLOURS, claims.NOT_RUN) is None  # not drawn
    # every verdict the report gives, in every direction, has a colour (except not run here)
    assert all(report.verdict_colour(COLOURS, claims.NOT_REPRODUCED, d) for d in claims.DIRECTIONS)


def test_the_view_imports_nothing_from_experiments():
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(report))
    modules = [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    modules += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    assert not [m for m in modules if "experiments" in m], modules
