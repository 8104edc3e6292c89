"""The statistical figures of usfkit.plots show what they claim: Figure 3a's boxes are sorted
by mean with the square at the mean and mean ± std (n) under each box, blue for USF models;
Figure 3b has one point per dataset, coloured and counted as win/tie/loss, and the tie band;
Figure 11 marks the number of valid runs; the Table 1 bars and the Figures 4/10 ablation put
their error bars, paper diamonds and class-wise means where the numbers are."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.collections import PathCollection  # noqa: E402
from matplotlib.colors import to_rgb  # noqa: E402
from matplotlib.markers import MarkerStyle  # noqa: E402

from usfkit import plots  # noqa: E402
from usfkit.plots import tabular as tab  # noqa: E402
from usfkit.results import STD_DDOF  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def wide_table(seed=0, datasets=9):
    rng = np.random.default_rng(seed)
    methods = ["USFlow", "NonUSFlow", "VAE-USFlow", "OneFlow", "DOHSC"]
    w = pd.DataFrame(rng.uniform(0.5, 1.0, (datasets, len(methods))), columns=methods,
                     index=[f"{i}_d" for i in range(datasets)])
    w.iloc[2, 1] = np.nan  # NonUSFlow failed on one dataset
    return w


def scatter_points(ax, n=None):
    """The offsets of the axes' scatter (the PathCollection with ``n`` points when given)."""
    colls = [c for c in ax.collections if isinstance(c, PathCollection) and (n is None or len(c.get_offsets()) == n)]
    assert len(colls) == 1
    return colls[0]


def test_boxplot_sorted_by_mean_with_square_at_the_mean_and_labels():
    w = wide_table()
    ax = plots.benchmark_boxplot(w)
    means = (100 * w).mean().sort_values(ascending=False)
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert [t.split("\n")[0] for t in labels] == list(means.index)
    squares = sorted((l.get_xydata()[0] for l in ax.lines if l.get_marker() == "s"), key=lambda p: p[0])
    assert np.allclose([p[0] for p in squares], range(len(means)))
    assert np.allclose([p[1] for p in squares], means.to_numpy())
    for label, m in zip(labels, means.index):
        col = 100 * w[m].dropna()
        assert label.split("\n")[1:] == [f"{col.mean():.2f} ± {col.std(ddof=STD_DDOF):.2f}", f"(n={len(col)})"]
    assert "(n=8)" in labels[list(means.index).index("NonUSFlow")]
    # one box per method, blue for the uniformly scaling ones (the box centred at x = its position in the order)
    colours = {round(float(p.get_path().get_extents().intervalx.mean())): to_rgb(p.get_facecolor()) for p in ax.patches}
    assert len(colours) == len(means)
    for i, m in enumerate(means.index):
        assert colours[i] == to_rgb(tab.USF_COLOR if m in ("USFlow", "VAE-USFlow", "OneFlow") else tab.OTHER_COLOR)
    # every dataset's value is drawn once (the swarm), no duplicate outlier markers
    drawn = np.concatenate([c.get_offsets()[:, 1] for c in ax.collections if len(c.get_offsets())])
    assert np.allclose(np.sort(drawn), np.sort((100 * w).stack().dropna().to_numpy()))


def test_pairwise_grid_points_outcomes_and_tie_band():
    w = wide_table(1)
    delta = np.array([0.1, -0.1, 0.003, -0.004, 0.02, -0.2, 0.0, 0.2, 0.01])  # USFlow - OneFlow
    w["USFlow"] = np.linspace(0.7, 0.75, len(w))
    w["OneFlow"] = w["USFlow"] - delta
    tie = 0.005
    fig = plots.pairwise_grid(w, methods=("USFlow", "VAE-USFlow"), tie=tie)
    assert len(fig.axes) == 2 * (len(w.columns) - 1)
    titles = [ax.get_title() for ax in fig.axes]
    panel = fig.axes[titles.index("vs OneFlow: 4/3/2")]  # the first such panel: USFlow's row
    assert panel.get_ylabel() == "USFlow (%)"  # wins / ties (|Δ| ≤ 0.005) / losses of USFlow
    points = scatter_points(panel, len(w))
    xy = points.get_offsets()
    assert np.allclose(np.sort(xy[:, 0]), np.sort(100 * w["OneFlow"])) and np.allclose(np.sort(xy[:, 1]),
                                                                                      np.sort(100 * w["USFlow"]))
    colours = [to_rgb(c) for c in points.get_facecolors()]
    expected = {**{to_rgb(c): k for k, c in tab.OUTCOME_COLORS.items()}}
    counts = pd.Series([expected[c] for c in colours]).value_counts()
    assert (counts.get("row method better", 0), counts.get("tie", 0), counts.get("row method worse", 0)) == (4, 3, 2)
    nonus = fig.axes[titles.index(next(t for t in titles if t.startswith("vs NonUSFlow")))]
    assert len(scatter_points(nonus).get_offsets()) == len(w) - 1  # NonUSFlow's missing dataset is left out
    band = [c for c in panel.collections if not isinstance(c, PathCollection)]
    assert len(band) == 1
    v = band[0].get_paths()[0].vertices
    lo_x = v[:, 0].min()
    at_lo = v[np.isclose(v[:, 0], lo_x), 1]
    assert np.isclose(at_lo.max() - at_lo.min(), 2 * 100 * tie)  # the band is |Δ| ≤ tie around y = x


def vae_summary():
    rows = []
    rng = np.random.default_rng(3)
    for cls, valid_non in zip(["bottle", "cable", "grid", "pill"], [3, 2, 1, 0]):
        rows.append({"class": cls, "method": "VAE-USFlow", "mean": rng.uniform(0.6, 0.9), "std": 0.05, "valid": 3,
                     "failed": 0, "runs": 3})
        rows.append({"class": cls, "method": "VAE-NonUSFlow", "mean": rng.uniform(0.4, 0.9) if valid_non else np.nan,
                     "std": 0.1 if valid_non > 1 else np.nan, "valid": valid_non, "failed": 3 - valid_non, "runs": 3})
    return pd.DataFrame(rows)


def test_vae_class_auroc_marks_the_number_of_valid_runs():
    summary = vae_summary()
    ax = plots.vae_class_auroc(summary)
    points = scatter_points(ax, len(summary))
    xy = points.get_offsets()

    def path_of(marker):
        m = MarkerStyle(marker)
        return m.get_path().transformed(m.get_transform()).vertices

    for (x, y), path, (_, r) in zip(xy, points.get_paths(), summary.iterrows()):
        expected = {3: "o", 2: "s", 1: "^", 0: "X"}[r["valid"]]
        assert path.vertices.shape == path_of(expected).shape and np.allclose(path.vertices, path_of(expected))
        assert y == pytest.approx(r["mean"] if r["valid"] else 0.5)  # no valid run: a cross at chance
        assert round(x) == ["bottle", "cable", "grid", "pill"].index(r["class"])
    usf = xy[summary["method"].to_numpy() == "VAE-USFlow", 0]
    non = xy[summary["method"].to_numpy() == "VAE-NonUSFlow", 0]
    assert (usf < non).all()  # the two methods side by side within a class
    legend = [t.get_text() for t in ax.get_legend().texts]
    assert {"3/3", "2/3", "1/3", "0/3", "VAE-USFlow", "VAE-NonUSFlow"} <= set(legend)
    one = plots.vae_class_auroc(summary[summary["class"] == "bottle"])  # one class: its pair sits mid-axis,
    lo, hi = one.get_xlim()                                              # not at the two edges
    assert lo < -0.5 and hi > 0.5
    # error bars (± std) only where at least two runs were valid
    segments = [s for c in ax.collections if not isinstance(c, PathCollection) for s in c.get_segments()]
    spans = sorted(round(float(s[1, 1] - s[0, 1]), 6) for s in segments if len(s))  # NaN std: no segment
    assert spans == sorted([0.1] * 4 + [0.2] * 2)


def test_mean_std_bars_error_bars_and_paper_diamonds():
    table = pd.DataFrame([{"dataset": "mvtec", "arch": a, "coupling": c, "mean": 80 + 3 * i + j, "std": 1 + j,
                           "classes": 15} for i, a in enumerate(["fastflow", "uflow"])
                          for j, c in enumerate(["affine", "additive"])])
    paper = {("affine", "fastflow"): (91.3, 1.5)}
    fig = plots.mean_std_bars(table, paper=paper)
    ax = fig.axes[0]
    bars = {(round(b.get_x() + b.get_width() / 2, 6)): b.get_height() for b in ax.patches if b.get_height() > 0}
    assert sorted(bars.values()) == sorted(table["mean"])
    segments = [s for c in ax.collections for s in getattr(c, "get_segments", lambda: [])()]
    for s in segments:
        x = round(float(s[0, 0]), 6)
        row = table[np.isclose(table["mean"], bars[x])].iloc[0]
        assert np.allclose(s[:, 1], [row["mean"] - row["std"], row["mean"] + row["std"]])
    assert len(segments) == len(table)
    diamonds = np.concatenate([c.get_offsets() for c in ax.collections if isinstance(c, PathCollection)])
    diamonds = diamonds[~np.isnan(diamonds[:, 1])]
    assert diamonds.shape == (1, 2) and diamonds[0, 1] == 91.3
    assert bars[round(float(diamonds[0, 0]), 6)] == 80  # on the affine FastFlow bar
    assert [t.get_text() for t in ax.get_legend().texts][:2] == ["affine (base)", "additive (USF)"]


def test_ablation_marks_the_class_wise_mean():
    rng = np.random.default_rng(5)
    classes = ["bottle", "cable", "grid"]
    ab = pd.DataFrame([{"dataset": "mvtec", "cls": k, "arch": a, "coupling": c, "d_mean": rng.normal(),
                        "d_std": rng.normal()} for a in ("fastflow", "uflow") for k in classes
                       for c in ("additive", "additive_lu")])
    fig = plots.image_ablation(ab)
    axes = np.array(fig.axes).reshape(2, 2)
    for i, arch in enumerate(("fastflow", "uflow")):
        for j, col in enumerate(("d_mean", "d_std")):
            ax = axes[i, j]
            assert [t.get_text() for t in axes[-1, j].get_xticklabels()] == classes + ["mean"]
            marks = [c for c in ax.collections if c.get_offsets().size and np.all(c.get_offsets()[:, 0] > 2.5)]
            got = np.sort(np.concatenate([c.get_offsets()[:, 1] for c in marks]))  # the "mean" column
            want = np.sort(ab[ab["arch"] == arch].groupby("coupling")[col].mean().to_numpy())
            assert np.allclose(got, want)
            assert all(np.allclose(to_rgb(c.get_edgecolor()[0]), (0, 0, 0)) for c in marks)  # black marks
            points = [c for c in ax.collections if c.get_offsets().size and c not in marks]
            assert np.allclose(np.sort(np.concatenate([c.get_offsets()[:, 1] for c in points])),
                               np.sort(ab.loc[ab["arch"] == arch, col]))  # one point per class and coupling


def test_seed_std_pairs_points_and_counts():
    table = pd.DataFrame({"NonUSFlow": [2.0, 1.0, 3.0, np.nan], "USFlow": [1.0, 1.5, 0.5, 0.2],
                          "VAE-NonUSFlow": [1.0, 1.0, 1.0, 0.0], "VAE-USFlow": [2.0, 2.0, 2.0, 0.0]},
                         index=["a", "b", "c", "d"])
    fig = plots.seed_std_pairs(table)
    assert [" ".join(ax.get_title().split()) for ax in fig.axes] == [
        "USFlow steadier on 2, less steady on 1 of 3 datasets", "VAE-USFlow steadier on 0, less steady on 3 of 4 datasets"]
    xy = scatter_points(fig.axes[0], 3).get_offsets()
    assert np.allclose(xy, table[["NonUSFlow", "USFlow"]].dropna().to_numpy())  # x: the partner, y: the USF
    colours = [to_rgb(c) for c in scatter_points(fig.axes[1], 4).get_facecolors()]
    assert colours.count(to_rgb(tab.OUTCOME_COLORS["row method worse"])) == 3
    assert colours.count(to_rgb(tab.OUTCOME_COLORS["tie"])) == 1  # equal spread (both 0): neither colour
    plt.close(fig)


def test_rho_by_dim_one_colour_per_method_one_style_per_run():
    rows = lambda shift: [{"d": d, "method": m, "Spearman rho (ln p, -||z||)": r + shift}  # noqa: E731
                          for d in (2, 8) for m, r in (("USFlow", 0.9), ("NonUSFlow", 0.5))]
    fig = plots.rho_by_dim({"full": rows(0.0), "quick": rows(-0.1)})
    ax = fig.axes[0]
    lines = {ln.get_label(): ln for ln in ax.get_lines() if not ln.get_label().startswith("_")}
    assert sorted(lines) == ["NonUSFlow (full)", "NonUSFlow (quick)", "USFlow (full)", "USFlow (quick)"]
    assert lines["USFlow (full)"].get_color() == lines["USFlow (quick)"].get_color()
    assert lines["USFlow (full)"].get_linestyle() != lines["USFlow (quick)"].get_linestyle()
    assert np.allclose(lines["NonUSFlow (quick)"].get_ydata(), [0.4, 0.4])
    plt.close(fig)
