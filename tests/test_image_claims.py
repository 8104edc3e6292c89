"""The image claims of the report (§5.2, Tables 1-5, Figures 4, 9, 10) on constructed full-profile records of
chapter 07: every run of the full profile (15 MVTec AD and 12 VisA classes x FastFlow, U-Flow, CFlow x affine,
additive, additive + LU x 3 seeds, and the §5.2.3 ablations), written where and under the name the real sweep
writes it (``usfkit.sweep.record_paths`` of ``images.profile_specs``), with AUROCs built from the paper's numbers
(``usfkit.image.paper_numbers``) plus chosen offsets and seeded noise.  For each claim: each verdict its rule can
give, the direction of the comparison, "not run here" on a partial sweep (saying what is missing), App. D's failed
runs counted; and chapter 07's and chapter 08's functions run on the same records with no further step."""
import re

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from usfkit import plots, profiles, results, sweep  # noqa: E402
from usfkit.data import MVTEC_CLASSES, VISA_CLASSES  # noqa: E402
from usfkit.experiments import claims  # noqa: E402
from usfkit.experiments import images as bench  # noqa: E402
from usfkit.image import paper_numbers  # noqa: E402

CH = bench.CHAPTER
METRICS = ("image_auroc", "pixel_auroc")
Z = {0: -1.0, 1: 0.0, 2: 1.0}  # seed -> offset in stds: three values whose sample std is exactly the std asked for


@pytest.fixture(autouse=True)
def results_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("USFKIT_RESULTS", str(tmp_path / "results"))
    monkeypatch.delenv("USFKIT_PROFILE", raising=False)
    return tmp_path / "results"


@pytest.fixture(scope="module")
def specs(tmp_path_factory):
    """Every spec of chapter 07's full profile, as ``images.profile_specs`` makes them on a machine holding every
    class of both datasets (empty class folders stand in for the data: only their names are read)."""
    root = tmp_path_factory.mktemp("data")
    for cls in (*MVTEC_CLASSES, *VISA_CLASSES):
        (root / cls).mkdir()
    out = bench.profile_specs(profiles.of(CH, "full"), root=root)
    assert len(out) == 27 * 3 * 3 * 3 + 15 * 3 + 15 * 2 * 3  # main grid + log-det prior + ResNet-18 ablations
    return out


def paper_cell(spec: dict, metric: str) -> tuple[float, float]:
    """The paper's (mean, std) for a spec: Tables 2-5 (additive: the paper prints only additive + LU, so its value),
    the ResNet-18 ablation's class average, and for the log-det prior the main additive + LU cell."""
    if spec["experiment"] == "backbone_resnet18":
        return paper_numbers.RESNET18_UFLOW[metric][spec["coupling"]]
    coupling = "additive_lu" if spec["coupling"] == "additive" else spec["coupling"]
    return paper_numbers.PER_CLASS[(spec["dataset"], metric)][spec["class"]][(coupling, spec["head"])]


def zero(spec, metric):
    return 0.0


def write(specs, *, mean=None, std=None, shift=zero, keep=None, fail=None, weights="imagenet", noise=0.05):
    """Write one record per spec (``keep``: which specs ran at all) as the sweep writes it: AUROC (%) = ``mean`` +
    ``shift`` + ``std`` x (-1, 0, +1 for seeds 0, 1, 2) + seeded noise of scale ``noise``, clipped to [0, 100];
    ``mean``/``std`` default to the paper's cell (:func:`paper_cell`); ``fail``: which runs failed (App. D)."""
    paths = sweep.record_paths(CH, "full", specs, {})  # the names run_benchmark's sweep gives them (settings={})
    paths[0].parent.mkdir(parents=True, exist_ok=True)
    n = 0
    for spec, path in zip(specs, paths):
        if keep is not None and not keep(spec):
            continue
        ok = fail is None or not fail(spec)
        rng = np.random.default_rng(int(path.stem[-8:], 16))  # the noise of a run depends on the run only
        metrics = {}
        for m in METRICS:
            mu = mean(spec, m) if mean else paper_cell(spec, m)[0]
            sd = std(spec, m) if std else paper_cell(spec, m)[1]
            value = mu + shift(spec, m) + sd * Z[spec["seed"]] + noise * rng.standard_normal()
            metrics[m] = float(np.clip(value, 0, 100)) / 100 if ok else None
        rec = results.RunRecord(
            ok=ok, failure=None if ok else "loss became NaN at epoch 4", metrics=metrics, epochs_allowed=100,
            epochs_run=4 if not ok else 20 + spec["seed"], train_time_s=60.0,
            info={"weights": weights, "pretrained": weights == "imagenet", "backbone_desc": "constructed",
                  "loss_history": [5.0, 3.0, 2.0, 1.9, 1.9, 1.9, 1.9][: 4 if not ok else 7]},
            chapter=CH, key=path.stem, spec=dict(spec), settings={},
            provenance={"profile": "full", "device": "constructed in a test", "seeds": spec["seed"]})
        path.write_text(rec.to_json())
        n += 1
    return n


def check(key: str, profile: str = "quick") -> claims.Finding:
    found = [c for c in claims.CLAIMS if c.key == key]
    assert len(found) == 1, key
    finding = claims.evaluate(found[0], claims.Source(profile))
    assert not finding.error, finding.why
    return finding


IMAGE_KEYS = [c.key for c in claims.CLAIMS if c.topic == "image"]
ARCHS = {"fastflow": "FastFlow", "uflow": "U-Flow", "cflow": "CFlow"}
TABLES = ["Table 1: MVTec AD", "Table 1: VisA", "Table 2: MVTec AD image, per class",
          "Table 3: MVTec AD pixel, per class", "Table 4: VisA image, per class", "Table 5: VisA pixel, per class"]
VAR = {a: f"§5.2.2: USFs reduce run-to-run variance: {n}" for a, n in ARCHS.items()}
MEAN = {a: f"§5.2.2: USFs improve the mean or leave it unchanged: {n}" for a, n in ARCHS.items()}
FIG = {(c, m): f"Figures 4/10: both USF variants gain over affine: {n} ({f})"
       for c, n in (("additive", "additive"), ("additive_lu", "additive + LU"))
       for m, f in (("image_auroc", "Figure 4, image"), ("pixel_auroc", "Figure 10, pixel"))}
DELTAS, PRIOR, R18, FIG9 = ("§5.2.3: U-Flow ablation deltas", "§5.2.3: the log-det prior has no significant effect",
                            "§5.2.3: U-Flow on ResNet-18", "Figure 9: U-Flow layers per class")


def test_every_image_claim_is_covered_here():
    assert sorted(IMAGE_KEYS) == sorted([*TABLES, *VAR.values(), *MEAN.values(), *FIG.values(), DELTAS, PRIOR,
                                         R18, FIG9])


def test_no_records_no_verdict():
    for key in IMAGE_KEYS:
        f = check(key)
        assert f.verdict == claims.NOT_RUN and "no run records of chapter 07" in f.why


# --------------------------------------------------------------------------
# Tables 1-5: the cells rule
# --------------------------------------------------------------------------
def test_tables_as_the_paper_reproduced(specs):
    write(specs)
    for key in TABLES:
        f = check(key)
        assert f.verdict == claims.REPRODUCED, (key, f.why)
        assert f.basis.startswith("full") and "0 of" in f.ours  # no failed runs, said
    assert "15 of 15" in check("Table 1: MVTec AD").conditions


def test_tables_all_cells_off_not_reproduced(specs):
    write(specs, shift=lambda s, m: -20.0)
    for key in TABLES:
        f = check(key)
        assert (f.verdict, f.direction) == (claims.NOT_REPRODUCED, claims.NOT_SUPPORTED), (key, f.why)


def test_tables_half_the_cells_off_partly(specs):
    write(specs, shift=lambda s, m: -20.0 if s["coupling"] == "affine" else 0.0)  # the base flow columns only
    f = check("Table 1: MVTec AD")
    assert f.verdict == claims.PARTLY and "6 of 12 cells" in f.why
    for key in TABLES[2:]:
        assert check(key).verdict == claims.PARTLY, key


def test_tables_random_backbone_not_run(specs):
    write(specs, weights="random-0123456789")
    f = check("Table 2: MVTec AD image, per class")
    assert f.verdict == claims.NOT_RUN and "not ImageNet" in f.why and f.detail is not None
    # the relative claims (USF against its own base flow on the same features) are still judged, their
    # conditions saying which weights
    g = check(VAR["uflow"])
    assert g.verdict != claims.NOT_RUN and "backbone weights random" in g.conditions


def test_tables_partial_sweeps_not_run(specs):
    write(specs, keep=lambda s: s["dataset"] != "visa")  # no VisA at all
    f = check("Table 1: VisA")
    assert f.verdict == claims.NOT_RUN and "no VisA runs" in f.why
    assert check("Table 1: MVTec AD").verdict == claims.REPRODUCED  # MVTec AD is complete: judged


def test_tables_one_seed_or_one_class_missing_not_run(specs, results_dir):
    write(specs, keep=lambda s: not (s["seed"] == 2 and s["head"] == "uflow" and s["coupling"] == "affine"))
    f = check("Table 1: MVTec AD")
    assert f.verdict == claims.NOT_RUN
    assert "15 of 270 main runs missing (U-Flow affine seed 2: all 15 classes)" in f.why, f.why
    assert f.ours and f.detail is not None  # what was found is still shown
    for path in sweep.runs_dir(CH, "full").glob("*.json"):
        path.unlink()
    write(specs, keep=lambda s: not (s["class"] == "cable" and s["head"] == "cflow" and s["coupling"] == "additive_lu"
                                     and s["seed"] == 0))
    f = check("Table 3: MVTec AD pixel, per class")
    assert f.verdict == claims.NOT_RUN and "CFlow additive_lu seed 0: cable" in f.why, f.why
    assert check("Table 4: VisA image, per class").verdict == claims.REPRODUCED


def test_tables_failed_runs_counted_not_dropped(specs):
    # every affine U-Flow and CFlow run on MVTec AD fails: 30 of Table 2's 90 cells have no value
    dead = lambda s: s["dataset"] == "mvtec" and s["coupling"] == "affine" and s["head"] in ("uflow", "cflow")  # noqa
    write(specs, fail=dead)
    f = check("Table 2: MVTec AD image, per class")
    assert f.verdict == claims.PARTLY, f.why  # dropping them would leave 60 of 60 cells: "reproduced"
    assert "30 cell(s) without a value because every run failed" in f.why
    assert "affine 90 of 135" in f.ours  # App. D's failed runs, counted in what we show
    assert (f.detail == "failed").to_numpy().sum() == 30
    assert check("Table 2: MVTec AD image, per class", "full").verdict == claims.PARTLY  # the full profile alike


def test_one_failed_seed_is_a_recorded_run(specs):
    write(specs, fail=lambda s: s["class"] == "bottle" and s["head"] == "cflow" and s["seed"] == 0)
    f = check("Table 1: MVTec AD")
    assert f.verdict == claims.REPRODUCED and "affine 1 of 135, additive_lu 1 of 135" in f.ours


# --------------------------------------------------------------------------
# §5.2.2: variance and mean, one row per architecture
# --------------------------------------------------------------------------
def flat(spec, metric):
    return 80.0 + bench.DATASET_CLASSES[spec["dataset"]].index(spec["class"]) % 7  # no clipping at 0 or 100


def usf(spec) -> bool:
    return spec["coupling"] != "affine"


def test_variance_per_architecture_both_directions(specs):
    better = {"fastflow": True, "uflow": True, "cflow": False}  # CFlow's USF is the noisier one
    write(specs, mean=flat, noise=0.01,
          std=lambda s, m: (0.5 if better[s["head"]] else 3.0) if usf(s) else (3.0 if better[s["head"]] else 0.5))
    for arch in ("fastflow", "uflow"):
        f = check(VAR[arch])
        assert f.verdict == claims.REPRODUCED and f.effect.n == 54 and f.effect.value > 0, f.why
    f = check(VAR["cflow"])
    assert (f.verdict, f.direction) == (claims.NOT_REPRODUCED, claims.CONTRADICTED), f.why
    assert f.effect.value < 0


def _mostly(spec, negatives: int) -> bool:
    """True for ``negatives`` of the 27 classes (the first of each dataset's list) x 2 metrics = 2 x negatives."""
    i = bench.DATASET_CLASSES[spec["dataset"]].index(spec["class"])
    return i < (negatives // 2 + negatives % 2 if spec["dataset"] == "mvtec" else negatives // 2)


@pytest.mark.parametrize("negatives,verdict,direction", [(14, claims.PARTLY, ""),
                                                         (13, claims.NOT_REPRODUCED, claims.NOT_SUPPORTED)])
def test_variance_not_significant(specs, negatives, verdict, direction):
    # 28 (or 26) of the 54 U-Flow cells have a USF std 0.5 pp below affine's, the rest 0.5 pp above: the median has
    # the claimed sign (or not) and the Wilcoxon test is far from significant
    write(specs, mean=flat, noise=0.01,
          std=lambda s, m: 2.0 + ((-0.5 if _mostly(s, negatives) else 0.5) if usf(s) else 0.0))
    f = check(VAR["uflow"])
    assert (f.verdict, f.direction) == (verdict, direction), f.why
    assert f.effect.p > 0.2


def test_mean_per_architecture_and_direction(specs):
    gain = {"fastflow": 3.0, "uflow": -0.5, "cflow": -3.0}  # better, "effectively unchanged", worse
    write(specs, mean=flat, std=lambda s, m: 1.0, shift=lambda s, m: gain[s["head"]] if usf(s) else 0.0)
    assert check(MEAN["fastflow"]).verdict == claims.REPRODUCED
    f = check(MEAN["uflow"])
    shown = float(re.search(r"MVTec AD image ([-+]?\d+\.\d+) pp", f.ours)[1])  # the runs' noise moves it a little
    assert f.verdict == claims.REPRODUCED and abs(shown + 0.5) < 0.1, f.ours
    f = check(MEAN["cflow"])
    assert (f.verdict, f.direction) == (claims.NOT_REPRODUCED, claims.CONTRADICTED), f.why


def test_mean_worse_on_one_dataset_only_partly(specs):
    write(specs, mean=flat, std=lambda s, m: 1.0,
          shift=lambda s, m: -3.0 if usf(s) and s["dataset"] == "visa" else 0.0)
    f = check(MEAN["fastflow"])
    assert f.verdict == claims.PARTLY and f.why.count(claims.NOT_MET) == 2, f.why


def test_mean_as_the_paper(specs):
    write(specs)
    for arch in ARCHS:  # the paper's own Table 1: no USF mean more than 1 pp below its base flow's
        assert check(MEAN[arch]).verdict == claims.REPRODUCED, check(MEAN[arch]).why


def test_variance_and_mean_need_both_datasets(specs):
    write(specs, keep=lambda s: s["dataset"] == "mvtec")
    for key in (*VAR.values(), *MEAN.values()):
        f = check(key)
        assert f.verdict == claims.NOT_RUN and "VisA: none of its 72 main runs" in f.why, f.why
        assert f.ours  # what MVTec AD alone shows is still given


# --------------------------------------------------------------------------
# Figures 4/10, the U-Flow deltas and Figure 9 (MVTec AD)
# --------------------------------------------------------------------------
def test_figures_4_10_split_by_metric_and_mvtec_only(specs):
    def shift(s, m):
        if s["coupling"] != "additive":
            return 0.0
        if s["dataset"] == "visa":
            return -5.0  # VisA is not in Figures 4/10: must not count
        return 2.0 if m == "image_auroc" else -2.0
    write(specs, mean=flat, std=lambda s, m: 1.0, shift=shift, noise=0.3)
    f = check(FIG[("additive", "image_auroc")])
    assert f.verdict == claims.REPRODUCED and f.effect.n == 45, f.why  # 15 classes x 3 architectures
    f = check(FIG[("additive", "pixel_auroc")])
    assert (f.verdict, f.direction) == (claims.NOT_REPRODUCED, claims.CONTRADICTED), f.why
    f = check(FIG[("additive_lu", "image_auroc")])  # no change at all: the median is a tie or noise
    assert f.verdict in (claims.PARTLY, claims.NOT_REPRODUCED) and f.direction != claims.CONTRADICTED


def test_figures_4_10_need_the_additive_runs(specs):
    write(specs, keep=lambda s: s["coupling"] != "additive")
    f = check(FIG[("additive", "image_auroc")])
    assert f.verdict == claims.NOT_RUN and "MVTec AD: 135 of 270 main runs missing (CFlow additive seed 0" in f.why
    assert check(FIG[("additive_lu", "image_auroc")]).verdict != claims.NOT_RUN


@pytest.mark.parametrize("gain,usf_std,verdict", [(2.0, 0.5, claims.REPRODUCED), (2.0, 4.0, claims.PARTLY),
                                                  (-2.0, 4.0, claims.NOT_REPRODUCED)])
def test_uflow_deltas(specs, gain, usf_std, verdict):
    write(specs, mean=flat, std=lambda s, m: usf_std if usf(s) else 2.0,
          shift=lambda s, m: gain if usf(s) else 0.0)
    f = check(DELTAS)
    assert f.verdict == verdict, f.why
    assert float(re.search(r"additive: ([+-][\d.]+)", f.ours)[1]) == pytest.approx(gain, abs=0.1)  # class-wise Δ mean


@pytest.mark.parametrize("stds,verdict", [({"additive": 0.5, "additive_lu": 0.5}, claims.REPRODUCED),
                                          ({"additive": 0.5, "additive_lu": 4.0}, claims.PARTLY),
                                          ({"additive": 4.0, "additive_lu": 4.0}, claims.NOT_REPRODUCED)])
def test_figure9(specs, stds, verdict):
    write(specs, mean=flat, std=lambda s, m: stds.get(s["coupling"], 2.0))
    assert check(FIG9).verdict == verdict


def test_uflow_claims_need_every_uflow_run(specs):
    write(specs, keep=lambda s: not (s["head"] == "uflow" and s["class"] == "zipper" and s["coupling"] == "additive"))
    for key in (DELTAS, FIG9):
        f = check(key)
        assert f.verdict == claims.NOT_RUN and "U-Flow additive seed" in f.why and "zipper" in f.why, f.why
    assert check(VAR["uflow"]).verdict != claims.NOT_RUN  # additive is not part of the variance claim


# --------------------------------------------------------------------------
# §5.2.3: the log-det prior and ResNet-18
# --------------------------------------------------------------------------
@pytest.mark.parametrize("change,verdict", [({"image_auroc": 0.3, "pixel_auroc": -0.3}, claims.REPRODUCED),
                                            ({"image_auroc": 0.3, "pixel_auroc": -3.0}, claims.PARTLY),
                                            ({"image_auroc": 3.0, "pixel_auroc": -3.0}, claims.NOT_REPRODUCED)])
def test_logdet_prior(specs, change, verdict):
    write(specs, shift=lambda s, m: change[m] if s["experiment"] == "logdet_prior" else 0.0)
    assert check(PRIOR).verdict == verdict, check(PRIOR).why


def test_logdet_prior_missing_not_run(specs):
    write(specs, keep=lambda s: not (s["experiment"] == "logdet_prior" and s["seed"] == 1))
    f = check(PRIOR)
    assert f.verdict == claims.NOT_RUN and "15 of 45 logdet_prior runs missing" in f.why, f.why


def test_resnet18_as_the_paper_and_swapped(specs):
    write(specs)  # the paper's numbers, read as USF -> non-USF (paper_numbers.RESNET18_UFLOW)
    f = check(R18)
    assert f.verdict == claims.REPRODUCED, f.why
    for path in sweep.runs_dir(CH, "full").glob("*.json"):
        path.unlink()
    other = {"affine": "additive_lu", "additive_lu": "affine"}
    swapped = {m: {c: paper_numbers.RESNET18_UFLOW[m][other[c]] for c in other} for m in METRICS}
    write(specs, mean=lambda s, m: swapped[m][s["coupling"]][0] if s["experiment"] == "backbone_resnet18"
          else paper_cell(s, m)[0])
    f = check(R18)
    assert (f.verdict, f.direction) == (claims.NOT_REPRODUCED, claims.NOT_SUPPORTED), f.why


def test_resnet18_pixel_much_weaker_partly_and_missing(specs):
    write(specs, shift=lambda s, m: -3.0 if s["experiment"] == "backbone_resnet18" and usf(s)
          and m == "pixel_auroc" else 0.0)
    assert check(R18).verdict == claims.PARTLY
    for path in sweep.runs_dir(CH, "full").glob("*.json"):
        path.unlink()
    write(specs, keep=lambda s: s["experiment"] != "backbone_resnet18")
    f = check(R18)
    assert f.verdict == claims.NOT_RUN and "backbone_resnet18" in f.why


# --------------------------------------------------------------------------
# App. D: failed USF runs of chapter 07 counted at the paper's settings
# --------------------------------------------------------------------------
def test_app_d_counts_the_image_runs(specs):
    key = "App. D: no USF run fails anywhere"
    write(specs, fail=lambda s: s["coupling"] == "affine" and s["seed"] == 0)  # base flows may fail
    f = check(key)
    assert f.verdict == claims.REPRODUCED and "0 of 576 USF runs" in f.ours, f.ours  # 486 main + 45 + 45 ablation
    for path in sweep.runs_dir(CH, "full").glob("*.json"):
        path.unlink()
    write(specs, fail=lambda s: s["coupling"] == "additive" and s["class"] == "screw" and s["seed"] == 1)
    f = check(key)
    assert (f.verdict, f.direction) == (claims.NOT_REPRODUCED, claims.CONTRADICTED)
    assert "3 of 576 USF runs" in f.ours


def test_ablation_rows_count_their_failed_runs(specs):
    write(specs, fail=lambda s: s["head"] == "uflow" and s["class"] == "pill" and s["seed"] == 0)
    f = check(PRIOR)
    assert f.verdict == claims.REPRODUCED  # a failed run is a recorded run: the sweep is complete
    assert "logdet_prior: failed runs (App. D): additive_lu 1 of 45" in f.ours, f.ours
    assert "additive_lu 1 of 45" in check(R18).ours and "affine 1 of 45, additive 1 of 45" in check(FIG9).ours


def test_missing_image_runs_text(specs):
    write(specs, keep=lambda s: s["dataset"] == "mvtec" and not (s["head"] == "cflow" and s["seed"] == 2))
    df = bench.frame(sweep.load_runs(CH, "full"))
    lost = claims.missing_image_runs(df, ("mvtec", "visa"), ("cflow",), ("affine",))
    assert lost == ["MVTec AD: 15 of 45 main runs missing (CFlow affine seed 2: all 15 classes)",
                    "VisA: none of its 36 main runs"]
    assert claims.missing_image_runs(df, ("mvtec",), ("fastflow", "uflow"), ("affine", "additive_lu")) == []


# --------------------------------------------------------------------------
# "no further step": chapter 07's and chapter 08's calls on full records
# --------------------------------------------------------------------------
def test_chapter_07_reads_full_records_without_training(specs):
    n = write(specs, fail=lambda s: s["class"] == "screw" and s["head"] == "cflow" and s["coupling"] == "affine"
              and s["seed"] == 0)
    cfg = profiles.of(CH, "full")
    bench.check_can_train(specs, "full")  # nothing missing: no GPU needed to read them
    records = bench.run_benchmark(specs, "full")  # every record is there: nothing trains (no data here)
    assert len(records) == n == len(specs)
    runs = bench.frame(records)
    assert int((~runs.ok.astype(bool)).sum()) == 1
    assert len(bench.runs_table(runs)) == len(specs)
    assert bench.run_context(runs, "full") == "MVTec AD (all 15 classes) and VisA (all 12 classes), full profile"

    table1 = bench.compare_table1(runs, records)
    assert len(table1) == 2 * 2 * 3 and set(table1["classes (ours)"]) == {"15 of 15", "12 of 12"}
    assert set(table1["paper values from"]) == {"Table 1: all 15 classes", "Table 1: all 12 classes"}
    row = table1[(table1.dataset == "VisA") & (table1.metric == "pixel AUROC") & (table1.architecture == "CFlow")]
    assert row["paper: additive + LU (USF)"].item() == "98.2 ± 0.0"  # Table 1 itself, not a mean of classes
    assert set(table1["weights (ours)"]) == {"ImageNet (paper: ImageNet)"}

    tables = bench.per_class_tables(runs)
    assert set(tables) == {(d, m) for d in ("mvtec", "visa") for m in METRICS}
    mv = tables[("mvtec", "image_auroc")]
    assert len(mv) == 16 and mv.index[-1] == "average of all 15 classes"
    assert mv.loc["average of all 15 classes", ("affine (base flow)", "CFlow", "paper")] == "72.5 ± 12.8"
    assert len(tables[("visa", "pixel_auroc")]) == 13

    for metric in METRICS:
        table = bench.class_averaged(runs[runs.experiment == "main"], metric)
        assert len(table) == 2 * 3 * 3 and set(table["classes"]) == {15, 12}
        ab = bench.ablation(runs[(runs.experiment == "main") & (runs.dataset == "mvtec")], metric)
        assert len(ab) == 15 * 3 * 2
        plots.image_ablation(ab, title=bench.METRIC_LABELS[metric])
        paper, source = bench.paper_reference("mvtec", metric, MVTEC_CLASSES)
        plots.mean_std_bars(table[table.dataset == "mvtec"], "AUROC (%)", paper=paper, paper_label=source)
        plt.close("all")
    ab523 = bench.ablation_5_2_3(runs)
    assert len(ab523) == 4 and not ab523["ours"].str.contains("–").any()

    summary = bench.variant_summary(runs)
    assert len(summary) == 2 * 2 * 3 * 3 and set(summary["classes"]) == {15, 12}
    sentences = bench.outcome_sentences(summary)
    assert sentences[-1].startswith("The paper (§5.2.2)") and "of 24 USF comparisons" in sentences[-1]
    conv = bench.convergence([r for r in records if r.spec["experiment"] == "main"])
    assert len(conv) == 729 - 1
    assert bench.convergence_answer(conv, cfg.patience).startswith("Yes")
    # Figure 9's example maps are optional: records without them read the same
    assert bench.load_maps(next(s for s in specs if s["save_maps"]), "full") is None
    # a quick run of chapter 07 shows the committed full records the same way (its last section)
    assert len(sweep.load_runs(CH, "full")) == len(specs)


@pytest.mark.parametrize("profile", ["quick", "full"])
def test_chapter_08_reads_full_records(specs, profile):
    write(specs)
    cfg = claims.settings(profile)
    table, findings = claims.report(cfg, eq6=claims.eq6_check(dim=3, n=300, blocks=2, hidden=8))
    image = table[table.topic == "image"]
    assert len(image) == len(IMAGE_KEYS)
    assert not [k for k, f in findings.items() if f.error]
    assert (image["verdict"] != claims.NOT_RUN).all(), image.loc[image.verdict == claims.NOT_RUN, ["claim", "why"]]
    assert image["read from"].str.startswith("full").all() and (image["quick from"] == "").all()
    assert (image.loc[image["verdict"] == claims.NOT_REPRODUCED, "direction"].isin(claims.DIRECTIONS)).all()
    text = claims.headline_text(table, findings)
    assert "none of the" not in text.split("**Image benchmarks**")[1].split("\n")[0]
    claims.styled(table, "image", claims.CLAIM_COLUMNS)
    claims.summary_text(table)
    plots.claims_figure(table, **claims.FIGURE)
    plt.close("all")
