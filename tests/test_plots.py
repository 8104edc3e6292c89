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
    low, high = ax.get_ylim()
    assert low <= 0.4 and high >= 1 and low <= (summary["mean"] - summary["std"].fillna(0)).min()  # all in view
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
    table = pd.DataFrame([{"dataset": "mvtec", "head": a, "coupling": c, "mean": 80 + 3 * i + j, "std": 1 + j,
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
    assert [t.get_text() for t in ax.get_legend().texts] == ["affine (base flow)", "additive (USF)", "paper"]


def test_mean_std_bars_name_the_paper_source_and_show_markers_whole():
    """The legend says where the diamonds come from, and the y-range holds every diamond and error bar
    with room to spare (a paper value of 100 and a bar of 99 ± 2 are not cut at the top)."""
    rng = np.random.default_rng(2)
    table = pd.DataFrame([{"dataset": "mvtec", "head": "fastflow", "coupling": c, "mean": m, "std": s, "classes": 1}
                          for c, m, s in (("affine", 99.0, 2.0), ("additive", rng.uniform(40, 60), 9.0),
                                          ("additive_lu", 88.0, 0.5))])
    paper = {("affine", "fastflow"): (100.0, 0.0), ("additive_lu", "fastflow"): (98.9, 0.2)}
    fig = plots.mean_std_bars(table, paper=paper, paper_label="paper, Table 2: bottle")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_legend().texts][-1] == "paper, Table 2: bottle"
    lo, hi = ax.get_ylim()
    tops = [*(table["mean"] + table["std"]), 100.0]
    bottoms = [*(table["mean"] - table["std"]), 50.0]
    assert hi >= max(tops) + 1 and lo <= min(bottoms) - 1 and lo >= 0


def test_loss_curves_integer_epochs_and_a_title_that_says_what_is_shown():
    from types import SimpleNamespace
    rng = np.random.default_rng(4)
    records = [SimpleNamespace(spec={"head": "fastflow", "coupling": c}, info={"loss_history":
               list(np.cumsum(-rng.uniform(1, 5, size=12)))}) for c in ("affine", "additive", "additive_lu")]
    fig = plots.loss_curves(records, context="MVTec AD bottle, quick profile")
    ax = fig.axes[0]
    assert ax.get_title() == "FastFlow on MVTec AD bottle, quick profile\ntraining loss per epoch"
    fig.canvas.draw()
    ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    assert ticks and all(float(t).is_integer() for t in ticks)


def test_ablation_marks_the_class_wise_mean():
    rng = np.random.default_rng(5)
    classes = ["bottle", "cable", "grid"]
    ab = pd.DataFrame([{"dataset": "mvtec", "class": k, "head": a, "coupling": c, "d_mean": rng.normal(),
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
            want = np.sort(ab[ab["head"] == arch].groupby("coupling")[col].mean().to_numpy())
            assert np.allclose(got, want)
            assert all(np.allclose(to_rgb(c.get_edgecolor()[0]), (0, 0, 0)) for c in marks)  # black marks
            points = [c for c in ax.collections if c.get_offsets().size and c not in marks]
            assert np.allclose(np.sort(np.concatenate([c.get_offsets()[:, 1] for c in points])),
                               np.sort(ab.loc[ab["head"] == arch, col]))  # one point per class and coupling
            assert ax.get_ylabel() == ("Δ mean (pp)" if col == "d_mean" else "Δ std (pp)")  # percentage points


def test_seed_std_pairs_points_and_counts():
    table = pd.DataFrame({"NonUSFlow": [2.0, 1.0, 3.0, np.nan], "USFlow": [1.0, 1.5, 0.5, 0.2],
                          "VAE-NonUSFlow": [1.0, 1.0, 1.0, 0.0], "VAE-USFlow": [2.0, 2.0, 2.0, 0.0]},
                         index=["a", "b", "c", "d"])
    fig = plots.seed_std_pairs(table)
    assert [" ".join(ax.get_title().split()) for ax in fig.axes] == [
        "USFlow steadier on 2, less steady on 1, level on 0 of 3 datasets",
        "VAE-USFlow steadier on 0, less steady on 3, level on 1 of 4 datasets"]
    assert {ax.get_xscale() for ax in fig.axes} == {ax.get_yscale() for ax in fig.axes} == {"symlog"}
    xy = scatter_points(fig.axes[0], 3).get_offsets()
    assert np.allclose(xy, table[["NonUSFlow", "USFlow"]].dropna().to_numpy())  # x: the partner, y: the USF
    colours = [to_rgb(c) for c in scatter_points(fig.axes[1], 4).get_facecolors()]
    assert colours.count(to_rgb(tab.OUTCOME_COLORS["row method worse"])) == 3
    assert colours.count(to_rgb(tab.OUTCOME_COLORS["tie"])) == 1  # equal spread (both 0): neither colour
    plt.close(fig)


def test_rho_by_dim_one_colour_per_method_one_style_per_run():
    rows = lambda shift: [{"d": d, "method": m, "Spearman rho (ln p, -||z||)": r + shift}  # noqa: E731
                          for d in (2, 8) for m, r in (("USFlow", 0.9), ("NonUSFlow", 0.5))]
    fig = plots.rho_by_dim({"full": rows(0.0), "quick": rows(-0.1)}, "Spearman rho (ln p, -||z||)")
    ax = fig.axes[0]
    lines = {ln.get_label(): ln for ln in ax.get_lines() if not ln.get_label().startswith("_")}
    assert sorted(lines) == ["NonUSFlow (full)", "NonUSFlow (quick)", "USFlow (full)", "USFlow (quick)"]
    assert lines["USFlow (full)"].get_color() == lines["USFlow (quick)"].get_color()
    assert lines["USFlow (full)"].get_linestyle() != lines["USFlow (quick)"].get_linestyle()
    assert np.allclose(lines["NonUSFlow (quick)"].get_ydata(), [0.4, 0.4])
    plt.close(fig)


# --------------------------------------------------------------------------
# Chapter 03's figures: limits from the data, legends off the data, widths the book can show
# --------------------------------------------------------------------------
def _svdd_runs(seed=0):
    rng = np.random.default_rng(seed)
    runs = {}
    for k, name in enumerate(["Ruff", "with bias", "bounded", "Ruff, decay", "bounded, decay"]):
        spread = np.geomspace(1.0, 10.0 ** -(k + 1), 6)
        if name == "bounded, decay":
            spread[3:] = 0.0  # exactly constant from epoch 3
        auroc = np.clip(rng.uniform(0.3, 0.9, 6), 0, 1)
        runs[name] = {"history": [{"epoch": e, "train_loss": float(s) + 1e-9} for e, s in enumerate(spread) if e],
                      "trajectory": [{"epoch": e, "spread": float(s), "auroc": float(a)}
                                     for e, (s, a) in enumerate(zip(spread, auroc))]}
    return runs


def _inside(fig, artist, ax) -> bool:
    fig.canvas.draw()
    a, b = artist.get_window_extent(), ax.get_window_extent()
    return a.x0 < b.x1 and a.x1 > b.x0 and a.y0 < b.y1 and a.y1 > b.y0


def test_svdd_collapse_curves_auroc_limits_from_data_legend_under_the_panels_and_zero_markers():
    runs = _svdd_runs()
    runs["bounded"]["trajectory"][2]["auroc"] = 0.21
    fig = plots.svdd_collapse_curves(runs)
    lo, hi = fig.axes[2].get_ylim()
    assert lo < 0.21 and hi >= 1.0
    assert all(ax.get_legend() is None for ax in fig.axes) and len(fig.legends) == 1
    assert not any(_inside(fig, fig.legends[0], ax) for ax in fig.axes)
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels[:5] == list(runs) and labels[-1] == "spread exactly 0 (float32)"
    marks = [c for c in fig.axes[1].collections if isinstance(c, PathCollection)]
    assert len(marks) == 1 and len(marks[0].get_offsets()) == 3  # epochs 3, 4, 5
    assert fig.get_figwidth() <= 10
    runs["bounded"]["trajectory"][0]["spread"] = 0.0  # constant when one-class training started: said in the legend
    labels = [t.get_text() for t in plots.svdd_collapse_curves(runs).legends[0].get_texts()]
    assert "bounded (constant from the start)" in labels


def test_auroc_limits_keep_chance_and_the_lowest_value_visible():
    assert plots.collapse.auroc_limits([0.7, 0.9])[0] < 0.5
    assert plots.collapse.auroc_limits([0.384, np.nan, 0.9])[0] < 0.384
    assert plots.collapse.auroc_limits([0.01])[0] == 0.0


def _flow_runs(sigmas=(0.1, 1.0, 10.0, None), seeds=(0, 1)):
    rng = np.random.default_rng(1)
    runs = []
    for s in sigmas:
        for c in ("additive_lu", "affine_lu"):
            for seed in seeds:
                traj = [{"epoch": e, "logdet_mean": float(e * rng.uniform(0.5, 1)),
                         "logdet_std": 0.0 if c == "additive_lu" else 1.0, "nll": float(100 - e),
                         "logdet_absmax": float(e), "lu_cond": 1.0 + e}
                        for e in range(11)]
                runs.append({"coupling": c, "sigma": s, "seed": seed, "status": "ok", "trajectory": traj})
    return runs


def test_sigma_sweep_colours_are_distinct_and_the_legend_sits_beside_the_axes():
    runs = _flow_runs()
    fig = plots.sigma_sweep_plot(runs)
    top = fig.axes[0]
    colours = {to_rgb(ln.get_color()) for ln in top.get_lines()}
    assert len(colours) == 4
    distances = [np.abs(np.subtract(a, b)).sum() for a in colours for b in colours if a < b]
    assert min(distances) > 0.3  # clearly different, not neighbours on one colour map
    leg = top.get_legend()
    assert leg is not None and not any(_inside(fig, leg, ax) for ax in fig.axes)
    assert [t.get_text() for t in leg.get_texts()] == ["0.1", "1", "10", "no prior", "USFlow", "NonUSFlow"]
    assert fig.get_figwidth() <= 10
    with pytest.raises(ValueError, match="at most"):
        plots.collapse.sigma_colors(range(1, 20))


def test_chapter_03_figures_fit_the_book_column():
    runs = _flow_runs(sigmas=(None,), seeds=(0,))
    traj = [{"epoch": e, "sq_dist": 10.0 - e, "logdet_mean": -0.3 * e, "latent_spread": 1 - 0.02 * e}
            for e in range(11)]
    figs = [plots.logdet_trajectories(runs), plots.usf_no_collapse(traj, 0.7071, dim=8)]
    assert all(f.get_figwidth() <= 10 for f in figs)
    # the trajectories' legend explains colours and line styles above the panels, over none of them
    assert all(ax.get_legend() is None for ax in figs[0].axes) and len(figs[0].legends) == 1
    legend = figs[0].legends[0]
    assert [t.get_text() for t in legend.get_texts()] == ["USFlow", "NonUSFlow", "run ok", "run went wrong"]
    assert not any(_inside(figs[0], legend, ax) for ax in figs[0].axes if ax.axison)
    assert "section 3" in figs[0]._suptitle.get_text()
    ref = [ln for ln in figs[1].axes[0].get_lines() if "perfect fit" in ln.get_label()]
    assert len(ref) == 1 and np.allclose(ref[0].get_ydata(), 8 * 0.7071 ** 2)
