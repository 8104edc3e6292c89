"""Figure 3a from the full runs (usfkit.plots.tabular.figure3a): one panel per protocol, the paper's USFlow
beside ours, one method order in every panel, and a method shown on fewer datasets (the VAEs while their score is
pending) hatched and apart, unranked; Figure 11 (usfkit.plots.vae.vae_class_auroc) in %."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from usfkit.plots import tabular as tab  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def wide(shift=0.0, datasets=8):
    rng = np.random.default_rng(1)
    w = pd.DataFrame(rng.uniform(0.6, 0.9, (datasets, 3)), columns=["USFlow", "VAE-USFlow", "DOHSC"],
                     index=[f"{i}_d" for i in range(datasets)])
    w["USFlow"] = 0.95 - shift  # the highest mean: the first box
    w.loc[w.index[:3], "VAE-USFlow"] = np.nan  # its score is pending on three datasets
    return w


def test_figure3a_one_panel_per_table_paper_beside_usflow_fewer_datasets_hatched():
    paper = {"USFlow": {"mean": 85.61, "std": 13.54}}
    fig = tab.figure3a({"ADBench's generator": wide(), "without the leak": wide(0.02)}, paper=paper)
    axes = fig.axes
    assert [ax.get_title() for ax in axes] == ["ADBench's generator", "without the leak"]
    for ax in axes:
        labels = [t.get_text().split("\n")[0] for t in ax.get_xticklabels()]
        assert labels[0] == "USFlow"
        diamonds = [line for line in ax.lines if line.get_marker() == "D"]
        assert len(diamonds) == 1  # one paper value: USFlow's, just right of its box at its mean
        x, y = diamonds[0].get_xydata()[0]
        assert x == pytest.approx(0.36) and y == pytest.approx(85.61)
        assert "85.61 ± 13.54" in ax.get_legend().get_texts()[0].get_text()
        hatched = {round(float(p.get_path().get_extents().intervalx.mean())) for p in ax.patches if p.get_hatch()}
        assert hatched == {labels.index("VAE-USFlow")}  # 5 datasets of 8
        assert "(n=5)" in ax.get_xticklabels()[labels.index("VAE-USFlow")].get_text()
        # apart: right of a dashed line after an empty slot, under "n = 5 datasets, not ranked"
        assert labels == ["USFlow", "DOHSC", "", "VAE-USFlow"]
        assert [line.get_xdata()[0] for line in ax.lines if line.get_linestyle() == "--"] == [2]
        assert "n = 5 datasets, not ranked" in [t.get_text() for t in ax.texts]


def test_figure3a_keeps_the_first_panels_order_in_every_panel():
    first = wide()
    second = wide()
    second["DOHSC"] = 0.99  # without the leak DOHSC would lead by mean
    first["VAE-NonUSFlow"], second["VAE-NonUSFlow"] = 0.5, 0.99  # apart too (fewer datasets): in column order
    first.loc[first.index[:2], "VAE-NonUSFlow"] = second.loc[second.index[:2], "VAE-NonUSFlow"] = np.nan
    fig = tab.figure3a({"one": first, "two": second})
    for ax in fig.axes:  # both panels: USFlow first (the first panel's means), DOHSC second
        assert [t.get_text().split("\n")[0] for t in ax.get_xticklabels()] == ["USFlow", "DOHSC", "", "VAE-USFlow",
                                                                               "VAE-NonUSFlow"]
        assert "n = 5 / 6 datasets, not ranked" in [t.get_text() for t in ax.texts]


def test_vae_class_auroc_in_percent():
    from usfkit.plots import vae as pv

    summary = pd.DataFrame({"class": ["a", "a", "b", "b"], "method": ["VAE-USFlow", "VAE-NonUSFlow"] * 2,
                            "mean": [0.9, 0.8, 0.7, np.nan], "std": [0.01, 0.02, 0.03, np.nan],
                            "valid": [3, 3, 3, 0], "runs": [3, 3, 3, 3]})
    ax = pv.vae_class_auroc(summary, percent=True)
    assert ax.get_ylabel() == "image AUC-ROC (%)"
    low, high = ax.get_ylim()
    assert low <= 40 and high == pytest.approx(102)
    ys = sorted(y for c in ax.collections for y in c.get_offsets()[:, 1] if len(c.get_offsets()) == 4)
    assert ys == pytest.approx([50, 70, 80, 90])  # no valid run: a cross at chance, 50 %
    assert [line.get_ydata()[0] for line in ax.lines if line.get_linestyle() == "--"] == [50]


def test_boxplot_without_paper_draws_no_paper_marker_or_legend():
    ax = tab.benchmark_boxplot(wide().dropna())
    assert not [line for line in ax.lines if line.get_marker() == "D"] and ax.get_legend() is None
    assert not [p for p in ax.patches if p.get_hatch()]  # every box on the same datasets
