"""Feature cache, evaluation and the resumable image sweep, on a tiny stand-in head (the real
heads are tested in test_image_heads.py) and the real MVTec AD bottle images."""
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from usfkit import sweep
from usfkit.data import MVTecAD
from usfkit.experiments import images as bench
from usfkit.image import features, paper_numbers
from usfkit.train import TrainModule

torch.set_num_threads(1)
BOTTLE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mvtec_ad_256"
needs_bottle = pytest.mark.skipif(not (BOTTLE / "bottle").is_dir(), reason="real MVTec AD bottle class not present")


class TinyBackbone(nn.Module):
    """Frozen two-scale conv features; counts how many images it has seen."""

    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(3, 4, 4, stride=4), nn.Conv2d(4, 6, 2, stride=2)
        self.name, self.pretrained_loaded, self.images_seen = "tiny", False, 0
        self.requires_grad_(False)

    def describe(self):
        return "tiny conv (random weights)"

    @torch.no_grad()
    def forward(self, x):
        self.images_seen += len(x)
        a = torch.tanh(self.conv1(x))
        return [a, torch.tanh(self.conv2(a))]


class GaussHead(nn.Module):
    """Per-scale diagonal Gaussian over feature vectors: loss = NLL, map = upsampled NLL."""

    def __init__(self, channels=(4, 6)):
        super().__init__()
        self.mu = nn.ParameterList([nn.Parameter(torch.zeros(c)) for c in channels])
        self.log_s = nn.ParameterList([nn.Parameter(torch.zeros(c)) for c in channels])

    def nll(self, feats):
        return [(((f - m[:, None, None]) / s.exp()[:, None, None]) ** 2 / 2 + s[:, None, None]).sum(1)
                for f, m, s in zip(feats, self.mu, self.log_s)]

    def loss(self, feats):
        return sum(n.mean() for n in self.nll(feats))

    def anomaly_map(self, feats, image_size):
        ups = [nn.functional.interpolate(n[:, None], size=image_size, mode="bilinear")[:, 0] for n in self.nll(feats)]
        return sum(ups)

    def image_score(self, amap):
        return amap.flatten(1).amax(1)


class HeadModule(TrainModule):
    def __init__(self, head):
        super().__init__(lr=3e-2)
        self.head = head

    def loss(self, feats):
        return self.head.loss(feats)

    def training_step(self, batch, batch_idx):
        loss = self.head.loss(list(batch))
        self.log("train_loss", loss, on_step=False, on_epoch=True, batch_size=len(batch[0]))
        return loss


BUILT = []


def fake_build_model(arch, coupling="affine", backbone=None, pretrained="auto", image_size=256, **overrides):
    BUILT.append((arch, coupling))
    head = GaussHead()
    return SimpleNamespace(backbone=TinyBackbone(), head=head, lightning_module=lambda lr=None, weight_decay=None:
                           HeadModule(head))


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("USFKIT_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("USFKIT_FEATURE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr("usfkit.image.model.build_model", fake_build_model)  # what bench._build imports
    bench._BACKBONES.clear()
    BUILT.clear()
    return tmp_path


@needs_bottle
def test_cache_computes_features_once(isolated):
    images = MVTecAD("bottle", "test", 32, root=BOTTLE)
    torch.manual_seed(0)
    bb = TinyBackbone()
    first = features.cached_features(bb, images, dataset="mvtec", cls="bottle", split="test", image_size=32)
    assert bb.images_seen == len(images) and not first.info["from_cache"]
    second = features.cached_features(bb, images, dataset="mvtec", cls="bottle", split="test", image_size=32)
    assert bb.images_seen == len(images), "the second call must not run the backbone"
    assert second.info["from_cache"]
    for a, b in zip(first.features, second.features):
        assert torch.equal(a, b)
    assert [f.shape[1:] for f in first.features] == [(4, 8, 8), (6, 4, 4)]
    assert torch.equal(second.masks, torch.stack([images[i]["mask"] for i in range(len(images))]))
    assert len(second[0]) == 2 and second.labels.tolist() == images.labels.tolist()
    # other random weights -> another key -> computed again
    torch.manual_seed(1)
    other = TinyBackbone()
    assert features.cache_key("mvtec", "bottle", "test", other, 32) != first.info["key"]
    features.cached_features(other, images, dataset="mvtec", cls="bottle", split="test", image_size=32)
    assert other.images_seen == len(images)
    # the same weights read at other layers -> another key
    # another file list (e.g. a changed data folder) -> another key -> computed again
    from usfkit.data.mvtec import AnomalyImages
    subset = AnomalyImages(images.samples[:5], 32, "subset")
    part = features.cached_features(other, subset, dataset="mvtec", cls="bottle", split="test", image_size=32)
    assert other.images_seen == len(images) + 5 and len(part) == 5
    before = features.cache_key("mvtec", "bottle", "test", other, 32)
    other.layers = ("layer2", "layer3")
    assert features.cache_key("mvtec", "bottle", "test", other, 32) != before


@needs_bottle
def test_speedup_runs_the_same_training(isolated):
    images = MVTecAD("bottle", "test", 32, root=BOTTLE)
    torch.manual_seed(0)
    bb = TinyBackbone()
    sp = features.measure_speedup(bb, GaussHead(), images, epochs=2, batch_size=32, lr=1e-2)
    assert bb.images_seen == 3 * len(images)  # 2 epochs recomputing + 1 extraction
    assert sp.backbone_images == {"recompute": 2 * len(images), "cached": len(images)}
    assert sp.losses["recompute"] == pytest.approx(sp.losses["cached"], rel=1e-5)
    assert sp.recompute_s > 0 and sp.cached_s > 0 and "faster" in sp.summary()


def test_evaluate_scores_a_perfect_map_as_100(isolated):
    masks = torch.zeros(4, 1, 8, 8)
    masks[2, 0, 1:4, 2:5] = 1
    masks[3, 0, 5:, 5:] = 1

    class MaskHead(nn.Module):  # the "feature" is the mask itself: a perfect detector
        def anomaly_map(self, feats, size):
            return nn.functional.interpolate(feats[0], size=size)[:, 0]

        def image_score(self, amap):
            return amap.flatten(1).amax(1)

    fs = features.FeatureSet([masks.clone()], torch.tensor([0, 0, 1, 1]), masks, ["a"] * 4, ["good"] * 4, {})
    ev = bench.evaluate(MaskHead(), fs, 8, batch_size=3)
    assert ev["image_auroc"] == 1.0 and ev["pixel_auroc"] == 1.0 and ev["maps"].shape == (4, 8, 8)
    fs.features = [1 - masks]
    ev = bench.evaluate(MaskHead(), fs, 8)
    assert ev["pixel_auroc"] == 0.0


@needs_bottle
def test_tiny_sweep_resumes_and_tables(isolated, monkeypatch):
    specs = bench.make_specs({"mvtec": ["bottle"]}, ["fastflow"], ["affine", "additive"], [0, 1], image_size=32,
                                 epochs=2, batch_size=32, pretrained=False, save_maps=True)
    assert len(specs) == 4 and specs[0]["save_maps"] and not specs[1]["save_maps"]
    kw = dict(root=BOTTLE, progress="none", accelerator="cpu")
    records = bench.run_benchmark(specs, "quick", **kw)
    assert len(BUILT) == 5  # one reference backbone + one model per run
    assert all(r.ok for r in records), [r.failure for r in records]
    for r in records:
        assert 0 <= r.metrics["image_auroc"] <= 1 and 0 <= r.metrics["pixel_auroc"] <= 1  # fractions
        assert r.info["weights"].startswith("random-") and r.info["pretrained"] is False
        assert 1 <= r.epochs_run <= 2 and r.epochs_allowed == 2
    assert len({r.info["weights"] for r in records}) == 1  # every run saw the same backbone
    maps = bench.load_maps(specs[0], "quick")
    assert maps["maps"].shape == (4, 32, 32) and maps["labels"].tolist()[:2] == [0, 1]

    BUILT.clear()
    again = bench.run_benchmark(specs, "quick", **kw)
    assert BUILT == [], "a rerun must train nothing"
    assert [r.metrics for r in again] == [r.metrics for r in records]

    df = bench.frame(records)
    from usfkit.image import ARCHITECTURES
    assert (df.backbone == ARCHITECTURES["fastflow"]["backbone"]).all()  # spec None = the App. E backbone, named
    shown = bench.runs_table(df)
    assert "backbone" in shown.columns and not any("_" in c for c in shown.columns)  # readable headers
    t1 = bench.class_averaged(df, "pixel_auroc")
    assert set(t1.coupling) == {"affine", "additive"} and (t1.classes == 1).all()
    seeds = df[(df.coupling == "additive")]["pixel_auroc"]
    assert t1.set_index("coupling").loc["additive", "mean"] == pytest.approx(seeds.mean())
    assert t1.set_index("coupling").loc["additive", "std"] == pytest.approx(seeds.std(ddof=1))
    ab = bench.ablation(df, "pixel_auroc")
    assert len(ab) == 1 and ab.coupling.iloc[0] == "additive"
    assert ab.d_mean.iloc[0] == pytest.approx(seeds.mean() - df[df.coupling == "affine"]["pixel_auroc"].mean())
    w = bench.wide(t1, ["dataset"])
    assert w.shape == (1, 2) and "±" in w.iloc[0, 0]
    assert [r.info["features_from_cache"] for r in records] == [False, True, True, True]

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from usfkit import plots
    for fig in (plots.anomaly_maps({"affine": maps, "additive": bench.load_maps(specs[2], "quick")}),
                plots.mean_std_bars(t1, paper={("affine", "fastflow"): (91.3, 1.5)}), plots.image_ablation(ab),
                plots.loss_curves(records)):
        assert len(fig.axes) > 0
        plt.close(fig)


def test_failed_run_is_recorded(isolated, monkeypatch):
    """A diverging head (NaN loss) is a failed record with a reason, not a crash."""
    class NaNHead(GaussHead):
        def loss(self, feats):
            return super().loss(feats) * float("nan")

    def nan_build(*a, **k):
        m = fake_build_model(*a, **k)
        head = NaNHead()
        return SimpleNamespace(backbone=m.backbone, head=head, lightning_module=lambda **_: HeadModule(head))

    monkeypatch.setattr("usfkit.image.model.build_model", nan_build)
    monkeypatch.setattr(bench, "features_for", lambda spec, bb, split, *a, **k: features.FeatureSet(
        [torch.randn(8, 4, 2, 2), torch.randn(8, 6, 1, 1)], torch.tensor([0] * 4 + [1] * 4),
        torch.zeros(8, 1, 8, 8), ["x"] * 8, ["good"] * 8, {"weights": "random-x", "backbone": "tiny"}))
    spec = bench.make_specs({"mvtec": ["bottle"]}, ["cflow"], ["affine"], [0], image_size=8, epochs=2,
                                pretrained=False)[0]
    rec = bench.run_benchmark([spec], "quick", progress="none", accelerator="cpu")[0]
    assert rec.ok is False and "nan" in rec.failure.lower() and rec.metrics["image_auroc"] is None


def test_paper_table_averages_are_class_averages():
    """Tables 2-5's Average rows are the mean of the class means and of the class stds (the
    convention ``class_averaged`` follows), and Table 1 repeats them."""
    for (dataset, metric), table in paper_numbers.PER_CLASS.items():
        classes = [c for c in table if c != "Average"]
        assert len(classes) == (15 if dataset == "mvtec" else 12)
        for col, (mean, std) in table["Average"].items():
            assert np.mean([table[c][col][0] for c in classes]) == pytest.approx(mean, abs=0.06)
            assert np.mean([table[c][col][1] for c in classes]) == pytest.approx(std, abs=0.06)
            assert paper_numbers.TABLE1[(dataset, metric)][col] == (mean, std)
    bottle = paper_numbers.PER_CLASS[("mvtec", "image_auroc")]["bottle"]
    assert paper_numbers.class_averaged("mvtec", "image_auroc", ["bottle"]) == bottle
    assert paper_numbers.class_averaged("visa", "pixel_auroc") == paper_numbers.TABLE1[("visa", "pixel_auroc")]


def test_per_class_tables_put_the_papers_values_beside_ours():
    from usfkit.image import paper_numbers

    rows = [{"experiment": "main", "dataset": "mvtec", "class": "bottle", "head": "fastflow", "coupling": c,
             "seed": s, "ok": True, "image_auroc": 90.0 + s, "pixel_auroc": 95.0 + s}
            for c in ("affine", "additive_lu") for s in (0, 1, 2)]
    tables = bench.per_class_tables(pd.DataFrame(rows))
    t = tables[("mvtec", "image_auroc")]
    usf = [col for col in t.columns if col[2] == "paper" and "fastflow" in col[1].lower()]
    assert len(usf) == 2 and list(t.index) == ["bottle", "average of bottle (1 of 15)"]
    paper = paper_numbers.PER_CLASS[("mvtec", "image_auroc")]["bottle"]
    assert set(t.loc["bottle", usf]) == {bench.fmt(*paper[("affine", "fastflow")]),
                                          bench.fmt(*paper[("additive_lu", "fastflow")])}
    # one class ran: the average row's paper values are that class's, not the paper's 15-class Average
    assert t.loc[t.index[-1], usf].tolist() == t.loc["bottle", usf].tolist()
    ours = [col for col in t.columns if col[2] == "ours"]
    assert set(t.loc["bottle", ours]) == {"91.0 ± 1.0"}


def fake_runs(classes, couplings, seeds=(0, 1, 2), seed=0, arch="fastflow"):
    """Our runs on ``classes``: random AUROCs (seeded) with a known per-class mean."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame([{"experiment": "main", "dataset": "mvtec", "class": k, "head": arch, "coupling": c,
                          "seed": s, "ok": True, "image_auroc": rng.uniform(60, 99), "pixel_auroc": rng.uniform(60, 99)}
                         for k in classes for c in couplings for s in seeds])


def test_per_class_average_row_uses_the_classes_that_ran():
    """The paper column of the average row averages the paper's values over the same classes as ours
    (not the paper's all-class Average), and the row says which classes those are."""
    df = fake_runs(["bottle", "hazelnut"], ["affine", "additive_lu"], seed=3)
    df = pd.concat([df, fake_runs(["bottle"], ["additive"], seed=4)])  # additive ran on bottle only
    for metric in ("image_auroc", "pixel_auroc"):
        t = bench.per_class_tables(df)[("mvtec", metric)]
        assert list(t.index) == ["bottle", "hazelnut", "average of bottle, hazelnut (2 of 15)"]
        paper = paper_numbers.PER_CLASS[("mvtec", metric)]
        for coupling in ("affine", "additive_lu"):
            col = (bench.COUPLING_LABELS[coupling], "FastFlow", "paper")
            want = [np.mean([paper[k][(coupling, "fastflow")][i] for k in ("bottle", "hazelnut")]) for i in (0, 1)]
            got = [float(x) for x in t.loc[t.index[-1], col].split(" ± ")]
            assert got == pytest.approx(want, abs=0.051)  # printed to 0.1
            assert t.loc[t.index[-1], col] != bench.fmt(*paper["Average"][(coupling, "fastflow")])
            ours = df[(df.coupling == coupling)].groupby("class")[metric]
            assert t.loc[t.index[-1], (*col[:2], "ours")] == bench.fmt(ours.mean().mean(), ours.std().mean())
        assert t.loc[t.index[-1], (bench.COUPLING_LABELS["additive"], "FastFlow", "paper")] == "–"
    one = bench.per_class_tables(fake_runs(["bottle"], ["affine"]))[("mvtec", "image_auroc")]
    assert one.index[-1] == "average of bottle (1 of 15)"
    assert one.iloc[-1, 1] == one.iloc[0, 1] == bench.fmt(*paper_numbers.PER_CLASS[("mvtec", "image_auroc")]
                                                          ["bottle"][("affine", "fastflow")])
    everything = bench.per_class_tables(fake_runs(list(paper_numbers.PER_CLASS[("mvtec", "image_auroc")])[:-1],
                                                  ["affine"], seeds=(0, 1)))[("mvtec", "image_auroc")]
    assert everything.index[-1] == "average of all 15 classes"
    assert everything.iloc[-1, 1] == bench.fmt(*paper_numbers.TABLE1[("mvtec", "image_auroc")][("affine", "fastflow")])


def test_paper_reference_names_table_and_classes():
    values, label = bench.paper_reference("mvtec", "pixel_auroc", ["bottle"])
    assert label == "paper, Table 3: bottle"
    assert values == paper_numbers.PER_CLASS[("mvtec", "pixel_auroc")]["bottle"]
    assert bench.paper_reference("visa", "image_auroc", ["pcb1", "candle"])[1] == "paper, Table 4: mean over candle, pcb1"
    values, label = bench.paper_reference("mvtec", "image_auroc", paper_numbers.PER_CLASS[("mvtec", "image_auroc")])
    assert label == "paper, Table 1: all 15 classes" and values == paper_numbers.TABLE1[("mvtec", "image_auroc")]


def test_variant_summary_and_outcome_follow_the_numbers():
    df = fake_runs(["bottle"], ["affine", "additive", "additive_lu"], seed=7)
    summary = bench.variant_summary(df)
    assert not any("_" in c for c in summary.columns)
    img = summary[summary.metric == "image AUROC"].set_index("coupling")
    for c in ("additive", "additive_lu"):
        mine, base = df[df.coupling == c].image_auroc, df[df.coupling == "affine"].image_auroc
        row = img.loc[bench.COUPLING_LABELS[c]]
        assert row["mean (%)"] == pytest.approx(mine.mean()) and row["std over seeds (pp)"] == pytest.approx(mine.std())
        assert row["Δ mean vs affine (pp)"] == pytest.approx(mine.mean() - base.mean())
        assert row["Δ std vs affine (pp)"] == pytest.approx(mine.std() - base.std())
    assert np.isnan(img.loc[bench.COUPLING_LABELS["affine"], "Δ mean vs affine (pp)"])
    # a run where every USF variant is better and steadier than affine, and one where none is
    value = np.where(df.coupling == "affine", 50.0 + 10 * df.seed, 90.0 + 0.1 * df.seed)  # affine: 60 ± 10
    good = df.assign(image_auroc=value, pixel_auroc=value)
    text = bench.outcome_sentences(bench.variant_summary(good))
    assert len(text) == 3 and "beats it by 30.1 pp" in text[0] and "are smaller than the affine 10.0 pp" in text[0]
    assert "4 of 4 USF comparisons have the higher mean and 4 of 4 the smaller std, so this run shows" in text[-1]
    bad = good.assign(coupling=good.coupling.map({"affine": "additive", "additive": "affine",
                                                  "additive_lu": "additive_lu"}))
    bad = bad[bad.coupling != "additive_lu"]
    text = bench.outcome_sentences(bench.variant_summary(bad))
    assert "trails it by 30.1 pp" in text[0] and "not smaller than" in text[0] and "does not show" in text[-1]


def test_outcome_compares_each_architecture_with_its_own_affine_baseline():
    """With two architectures, a USF variant's std is compared with the affine std of its own
    architecture: FastFlow's USF is steadier than FastFlow's affine flow, U-Flow's is not."""
    fast = fake_runs(["bottle"], ["affine", "additive_lu"], arch="fastflow")
    uflow = fake_runs(["bottle"], ["affine", "additive_lu"], arch="uflow")
    spread = {("fastflow", "affine"): 5.0, ("fastflow", "additive_lu"): 1.0,   # steadier
              ("uflow", "affine"): 0.5, ("uflow", "additive_lu"): 2.0}         # less steady
    df = pd.concat([fast, uflow])
    value = [80 + spread[(a, c)] * (s - 1) for a, c, s in zip(df["head"], df.coupling, df.seed)]
    text = bench.outcome_sentences(bench.variant_summary(df.assign(image_auroc=value, pixel_auroc=value)))
    assert "0 of 2 USF variants (architecture × coupling) beat the affine mean" in text[0]
    assert "and 1 of 2 have a smaller std over seeds" in text[0]
    assert "0 of 4 USF comparisons have the higher mean and 2 of 4 the smaller std" in text[-1]


def record(coupling, history, allowed, seed=0):
    from usfkit.results import RunRecord
    return RunRecord(ok=True, epochs_allowed=allowed, epochs_run=len(history), info={"loss_history": history},
                     spec={"experiment": "main", "dataset": "mvtec", "class": "bottle", "head": "fastflow",
                           "coupling": coupling, "seed": seed})


def test_convergence_from_the_loss_history():
    falling = [100.0 - 10 * i for i in range(10)]           # 90 down in total, 30 of it in the last 3 epochs
    flat = [100.0, 50.0, 20.0, 10.0, 10.0, 10.0, 9.99, 9.99]  # stopped by its budget, but flat
    early = [10.0, 5.0, 4.0, 4.5, 4.2, 4.1]                   # early stopping ended it
    conv = bench.convergence([record("affine", falling, 10), record("additive", flat, 8),
                              record("additive_lu", early, 20)])
    share = [c for c in conv.columns if "share" in c][0]
    assert share.startswith("last 3 epochs") and conv[share].iloc[0] == pytest.approx(100 * 30 / 90)
    assert conv[share].iloc[1] == pytest.approx(100 * 0.01 / 90.01)
    assert conv["stopped early"].tolist() == [False, False, True]
    answer = bench.convergence_answer(conv, patience=3)
    assert answer.startswith("Only 2 of 3 had: 1 of 3 runs stopped early") and "the other 2 used all 8/10" in answer
    assert bench.convergence_answer(conv.iloc[:1], patience=3).startswith("No: early stopping")
    assert "33% of the loss decrease" in bench.convergence_answer(conv.iloc[:1], patience=3)
    assert bench.convergence_answer(conv.iloc[2:], patience=3).startswith("Yes")


def test_epoch_benchmark_table_beside_this_run():
    committed = bench.load_epoch_benchmark()
    assert committed is not None and {r["coupling"] for r in committed["runs"]} == set(bench.COUPLING_LABELS)
    fake = {"epochs": 80, "image_size": 48, "runs": [
        {"coupling": "affine", "ok": True, "image_auroc": 95.0, "pixel_auroc": 86.0, "provenance": {"seeds": [0]}},
        {"coupling": "additive", "ok": True, "image_auroc": 93.0, "pixel_auroc": 86.5, "provenance": {"seeds": [0]}},
        {"coupling": "additive_lu", "ok": True, "image_auroc": 94.0, "pixel_auroc": 86.0, "provenance": {"seeds": [0]}}]}
    df = fake_runs(["bottle"], ["affine", "additive", "additive_lu"], seeds=(0, 1), seed=2).assign(
        image_size=48, weights="random-abc", epochs_run=12)
    table = bench.epoch_benchmark_table(fake, df)
    assert table.shape == (3, 4) and table.attrs["this_run_epochs"] == 12
    assert table.iloc[:, 2].tolist() == pytest.approx(df.groupby("coupling").image_auroc.mean()
                                                      .reindex(list(bench.COUPLING_LABELS)).tolist())
    text = bench.epoch_benchmark_sentences(fake, table)
    assert "80 epochs" in text[0] and "seed 0" in text[0]
    assert "1.0 to 2.0 pp behind at image level and level or ahead at pixel level" in text[0]
    assert "after at most 12 epochs in this run" in text[0]
    other = bench.epoch_benchmark_table(fake, df.assign(image_size=256))  # another setting: no comparison
    assert other.shape == (3, 2) and "this run" not in bench.epoch_benchmark_sentences(fake, other)[0]


def test_full_profile_without_a_gpu_stops_before_training(tmp_path, monkeypatch):
    monkeypatch.setenv("USFKIT_RESULTS", str(tmp_path))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    specs = [{"dataset": "mvtec", "class": "bottle", "head": "fastflow", "coupling": c, "seed": 0}
             for c in ("affine", "additive_lu")]
    with pytest.raises(bench.NeedsGPU, match="2 of the 2 runs .* no GPU"):
        bench.run_benchmark(specs, "full")
    bench.check_can_train(specs, "full", allow_cpu=True)  # the reader's explicit choice
    bench.check_can_train(specs, "quick")  # the quick profile is the CPU check
    folder = sweep.runs_dir(bench.CHAPTER, "full")
    folder.mkdir(parents=True)
    for spec in specs:  # every run committed: nothing to train, any machine reads them
        (folder / f"{sweep.spec_key(spec)}.json").write_text("{}")
    bench.check_can_train(specs, "full")


def test_committed_records_of_classes_not_on_disk_count_as_the_profile(tmp_path, monkeypatch):
    """A reader without the images reads the committed full records as whole tables: a class recorded but not
    on disk is in the profile's specs, with the same keys the GPU machine wrote (example maps stay with the
    first class of the paper's order, whichever classes this machine has)."""
    from usfkit import profiles, results

    monkeypatch.setenv("USFKIT_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("USFKIT_DATA", str(tmp_path / "no-images"))
    cfg = profiles.of(bench.CHAPTER, "full", datasets=["mvtec"], archs=["fastflow"], couplings=["affine"],
                           seeds=[0])
    grid = bench.profile_specs(cfg, every_class=True)
    main = [s for s in grid if s["experiment"] == "main"]
    assert [s["class"] for s in main][:2] == ["bottle", "cable"] and [s["save_maps"] for s in main][:2] == [True, False]
    assert [s for s in bench.profile_specs(cfg) if s["experiment"] == "main"] == []  # nothing on disk, nothing recorded
    cable = main[1]
    path = sweep.record_paths(bench.CHAPTER, "full", [cable])[0]
    path.parent.mkdir(parents=True)
    path.write_text(results.RunRecord(ok=True, metrics={"image_auroc": 0.9}, chapter=bench.CHAPTER, key=path.stem,
                                      spec=cable, settings={}, provenance={}).to_json())
    found = [s for s in bench.profile_specs(cfg) if s["experiment"] == "main"]
    assert found == [cable] and sweep.record_paths(bench.CHAPTER, "full", found) == [path]
