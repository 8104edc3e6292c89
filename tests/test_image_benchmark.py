"""Feature cache, evaluation and the resumable image sweep, on a tiny stand-in head (the real
heads are tested in test_image_heads.py) and the real MVTec AD bottle images."""
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from usfkit.data import MVTecAD
from usfkit.experiments import images as bench
from usfkit.image import features, paper_numbers
from usfkit.train import _Base

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


class HeadModule(_Base):
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
    monkeypatch.setattr(bench, "build_model", fake_build_model)
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

    monkeypatch.setattr(bench, "build_model", nan_build)
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

    rows = [{"experiment": "main", "dataset": "mvtec", "cls": "bottle", "arch": "fastflow", "coupling": c,
             "seed": s, "ok": True, "image_auroc": 90.0 + s, "pixel_auroc": 95.0 + s}
            for c in ("affine", "additive_lu") for s in (0, 1, 2)]
    tables = bench.per_class_tables(pd.DataFrame(rows))
    t = tables[("mvtec", "image_auroc")]
    usf = [col for col in t.columns if col[2] == "paper" and "fastflow" in col[1].lower()]
    assert len(usf) == 2 and list(t.index) == ["bottle", "Average"]
    paper = paper_numbers.PER_CLASS[("mvtec", "image_auroc")]["bottle"]
    assert set(t.loc["bottle", usf]) == {bench.fmt(*paper[("affine", "fastflow")]),
                                          bench.fmt(*paper[("additive_lu", "fastflow")])}
    ours = [col for col in t.columns if col[2] == "ours"]
    assert set(t.loc["bottle", ours]) == {"91.0 ± 1.0"}
