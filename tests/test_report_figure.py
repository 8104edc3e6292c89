"""Chapter 08's figure (usfkit.plots.report.claims_figure) on a constructed report table."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.colors as mcolors  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from usfkit.experiments import claims  # noqa: E402
from usfkit.plots import report  # noqa: E402


def table() -> pd.DataFrame:
    nan = np.nan
    rows = [  # claim, topic, verdict, direction, effect, low, high, unit, alt verdict
        ("gain", "tabular", claims.REPRODUCED, "", 0.3, 0.04, 1.2, claims.PP, claims.NOT_REPRODUCED),
        ("median", "tabular", claims.NOT_REPRODUCED, claims.USF_FAVOUR, -2.5, -10.0, 1.0, claims.PP, None),
        ("mean", "tabular", claims.REPRODUCED, "", 3.7, -0.6, 5.6, claims.FROM_PAPER, claims.REPRODUCED),
        ("identity", "theory", claims.REPRODUCED, "", 100.0, nan, nan, claims.HELD, None),
        ("count", "vae", claims.NOT_REPRODUCED, claims.CONTRADICTED, 0.0, nan, nan, claims.HELD, None),
        ("vae pair", "tabular", claims.NOT_RUN, "", nan, nan, nan, "", claims.NOT_RUN),
    ]
    out = []
    for key, topic, verdict, direction, effect, low, high, unit, alt in rows:
        row = {"claim": key, "label": key, "topic": topic, "verdict": verdict, "direction": direction,
               "effect": effect, "low": low, "high": high, "unit": unit}
        if alt:
            row.update({f"verdict {claims.ALT}": alt,
                        f"direction {claims.ALT}": claims.CONTRADICTED if alt == claims.NOT_REPRODUCED else "",
                        f"effect {claims.ALT}": -1.0, f"low {claims.ALT}": -2.0, f"high {claims.ALT}": -0.5})
        out.append(row)
    return pd.DataFrame(out)


def test_one_row_per_judged_comparison_coloured_by_verdict():
    fig = report.claims_figure(table())
    top, bottom = fig.axes[:2]
    labels = [t.get_text() for t in top.get_yticklabels()]
    # the pp rows on top, in the report's topic order; rows not run here are not drawn
    assert labels == ["gain", "median", "mean (ours − paper)"]
    assert [t.get_text() for t in bottom.get_yticklabels()] == ["identity", "count"]  # theory before vae
    hollow = [line for line in top.lines if line.get_marker() == "o" and line.get_markerfacecolor() == "white"]
    assert len(hollow) == 2  # the leak-free judgements of "gain" and "mean", beside their rows
    assert mcolors.to_hex(hollow[0].get_color()) == report.VERDICT_COLOURS[claims.CONTRADICTED]
    filled = [line for line in top.lines if line.get_marker() == "o" and line.get_markerfacecolor() != "white"]
    assert [mcolors.to_hex(line.get_color()) for line in filled] == [
        report.VERDICT_COLOURS[claims.REPRODUCED], report.VERDICT_COLOURS[claims.USF_FAVOUR],
        report.VERDICT_COLOURS[claims.REPRODUCED]]
    xs = [line.get_xdata()[0] for line in filled]
    assert xs == [0.3, -2.5, 3.7]
    bars = [mcolors.to_hex(p.get_facecolor()) for p in bottom.patches]
    assert bars == [report.VERDICT_COLOURS[claims.REPRODUCED], report.VERDICT_COLOURS[claims.CONTRADICTED]]
    plt.close(fig)


def test_verdict_colour_splits_not_reproduced_by_direction():
    assert report.verdict_colour(claims.NOT_REPRODUCED, claims.NOT_SUPPORTED) != \
        report.verdict_colour(claims.NOT_REPRODUCED, claims.CONTRADICTED)
    assert report.verdict_colour(claims.PARTLY) == report.VERDICT_COLOURS[claims.PARTLY]
