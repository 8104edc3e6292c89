"""The §5.2 dry run (usfkit.experiments.dryrun): configurations, measurements at a tiny size, the plan
and GPU shares on a constructed dry-run dict."""
from pathlib import Path

import pytest
import torch

from usfkit.data import MVTEC_CLASSES, VISA_CLASSES
from usfkit import gpuplan
from usfkit.experiments import dryrun

torch.set_num_threads(1)
BOTTLE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mvtec_ad_256"


def test_configurations_cover_the_full_profile():
    configs = dryrun.configurations()
    assert len(configs) == len({c["key"] for c in configs}) == 12
    main = [c for c in configs if c["experiment"] == "main"]
    assert len(main) == 9  # 3 architectures x 3 couplings
    for c in main:
        assert c["runs"] == {"mvtec": 15 * 3, "visa": 12 * 3} and c["seeds"] == [0, 1, 2]
    assert {c["image_size"] for c in main if c["arch"] == "uflow"} == {448}
    ablations = {c["key"]: c for c in configs if c["experiment"] != "main"}
    assert all(c["runs"] == {"mvtec": 45} for c in ablations.values())
    assert {c["backbone"] for c in ablations.values()} == {"mcait", "resnet18"}
    assert sum(sum(c["runs"].values()) for c in configs) == 9 * 27 * 3 + 3 * 45


def test_image_counts_are_the_published_ones():
    assert set(gpuplan.IMAGE_COUNTS["mvtec"]) == set(MVTEC_CLASSES)
    assert set(gpuplan.IMAGE_COUNTS["visa"]) == set(VISA_CLASSES)
    totals = {d: tuple(map(sum, zip(*counts.values()))) for d, counts in gpuplan.IMAGE_COUNTS.items()}
    assert totals == {"mvtec": (3629, 1725), "visa": (8659, 2162)}


@pytest.mark.skipif(not (BOTTLE / "bottle").is_dir(), reason="real MVTec AD bottle class not present")
def test_image_counts_match_bottle_on_disk():
    from usfkit.data import MVTecAD
    counts = tuple(len(MVTecAD("bottle", split, 32, root=BOTTLE)) for split in ("train", "test"))
    assert counts == gpuplan.IMAGE_COUNTS["mvtec"]["bottle"]


def test_live_bytes_follows_allocations():
    torch.manual_seed(0)
    x = torch.randn(1000)  # 4000 bytes, present before
    mem = dryrun.LiveBytes(x)
    with mem:
        y = x * 2      # +4000
        del y          # freed
        z = x + 1      # +4000 again, never 12000 at once
        w = torch.cat([z, z])  # +8000 while z lives
    assert mem.start == 4000
    assert mem.peak == 4000 + 4000 + 8000
    assert w.numel() == 2000


def _fastflow(size, batch=4):
    config = next(c for c in dryrun.configurations() if c["key"] == "main_fastflow_resnet18_256px_additive")
    return dryrun.measure({**config, "image_size": size}, batch_size=batch, backbone_batch=2)


def test_measure_fields_and_flops_grow_with_image_size():
    small, large = _fastflow(32), _fastflow(64)
    for rec in (small, large):
        assert rec["ok"] and rec["head_params"] > 0 and rec["backbone_params"] > 10 ** 6
        assert set(rec["flops_per_image"]) == {"backbone", "train_step", "eval"}
        assert all(v > 0 for v in rec["flops_per_image"].values())
        assert all(v > 0 for v in rec["cpu_s"].values()) and all(v > 0 for v in rec["wall_s"].values())
        # the training step holds at least the head's parameters, their gradients and Adam's two moments
        assert rec["peak_bytes"]["train_step"] >= 4 * 4 * rec["head_params"]
    for phase in ("backbone", "train_step", "eval"):  # 4x the pixels: about 4x the FLOPs of every phase
        ratio = large["flops_per_image"][phase] / small["flops_per_image"][phase]
        assert 3.0 < ratio < 5.0, (phase, ratio)
    assert large["peak_bytes"]["train_step"] > small["peak_bytes"]["train_step"]
    assert large["feature_shapes"] == [[64, 16, 16], [128, 8, 8], [256, 4, 4]]


def test_run_dry_run_writes_and_resumes(tmp_path, monkeypatch):
    out = tmp_path / "dry.json"
    kw = dict(archs=["fastflow"], couplings=["additive"], experiments=["main"], batch_size=4, image_size=32,
              progress=False, tabular=False)
    data = dryrun.run_dry_run(out, **kw)
    assert list(data["configurations"]) == ["main_fastflow_resnet18_256px_additive"]
    assert data["configurations"]["main_fastflow_resnet18_256px_additive"]["ok"]
    assert data["image_size_override"] == 32 and "git_commit" in data["provenance"]

    def boom(*a, **k):
        raise AssertionError("a finished configuration must not be measured again")
    monkeypatch.setattr(dryrun, "measure", boom)
    again = dryrun.run_dry_run(out, **kw)
    assert again["configurations"] == data["configurations"]
    # a configuration that fails is recorded with its reason, not hidden
    monkeypatch.setattr(dryrun, "measure", lambda *a, **k: (_ for _ in ()).throw(MemoryError("too big")))
    failed = dryrun.run_dry_run(out, **{**kw, "couplings": ["affine"]})
    rec = failed["configurations"]["main_fastflow_resnet18_256px_affine"]
    assert not rec["ok"] and "MemoryError: too big" in rec["failure"]
    # ... and measured again by the next call, unless told not to
    calls = []
    monkeypatch.setattr(dryrun, "measure", lambda *a, **k: calls.append(1) or {"ok": True})
    dryrun.run_dry_run(out, **{**kw, "couplings": ["affine"]}, retry_failed=False)
    assert calls == []
    assert dryrun.run_dry_run(out, **{**kw, "couplings": ["affine"]})["configurations"][
        "main_fastflow_resnet18_256px_affine"]["ok"] and calls == [1]


def _constructed_dry():
    """One main FastFlow configuration on one class of each dataset, with round numbers."""
    config = dict(key="main_fastflow", experiment="main", arch="fastflow", backbone="resnet18", image_size=256,
                  coupling="additive", prior_sigma=None, seeds=[0, 1, 2],
                  classes={"mvtec": ["bottle"], "visa": ["candle"]}, runs={"mvtec": 3, "visa": 3})
    rec = dict(ok=True, config=config, backbone_key="resnet18-layer1+layer2+layer3-256px", batch_size=32,
               flops_per_image={"backbone": 1e9, "train_step": 2e9, "eval": 1e9},
               peak_bytes={"backbone_batch": 1e9, "train_step": 3e9, "eval": 2e9})
    failed = dict(ok=False, failure="MemoryError", config={**config, "key": "main_cflow", "arch": "cflow"})
    return {"configurations": {"main_fastflow": rec, "main_cflow": failed}, "cpu_efficiency": {"fastflow": 0.4},
            "tabular": dict(ok=True, dim=1555, peak_bytes=0.5e9)}


def test_flop_budget_and_gpu_hours_by_hand():
    dry = _constructed_dry()
    b = gpuplan.flop_budget(dry, ("main",), ("mvtec",), epochs=10)
    n_train, n_test = 209, 83
    assert b["runs"] == 3 and b["caches"] == 1
    assert b["head"] == pytest.approx(3 * (2e9 * n_train * 10 + 1e9 * n_test))
    assert b["backbone"] == pytest.approx(1e9 * (n_train + n_test))  # once, shared by the three seeds
    assert b["recompute"] == pytest.approx(3 * 1e9 * (n_train * 10 + n_test))
    both = gpuplan.flop_budget(dry, ("main",), ("mvtec", "visa"), epochs=10)
    assert both["caches"] == 2 and both["head"] > b["head"]
    assert gpuplan.gpu_hours(67e12 * 0.5 * 3600, "H100", 0.5) == pytest.approx(1.0)
    with pytest.raises(KeyError, match="unknown GPU"):
        gpuplan.gpu_hours(1.0, "GTX 480")


def test_plan_table_and_text():
    dry = _constructed_dry()
    table = gpuplan.plan_table(dry, epochs=10)
    assert list(table.index) == list(gpuplan.TABLES)
    assert table.loc["Table 1 (all main runs)", "runs"] == 6
    assert table.loc["§5.2.3 log-det prior", "runs"] == 0
    assert table.loc["All of §5.2", "A100 GPU-h"] == pytest.approx(
        table.loc["All of §5.2", "H100 GPU-h"] * 67.0 / 19.5)
    half = gpuplan.plan_table(dry, gpu="T4", epochs=10, fraction=0.15)
    assert list(half.columns) == ["runs", "PFLOP", "T4 GPU-h"]
    assert half.loc["All of §5.2", "T4 GPU-h"] == pytest.approx(2 * gpuplan.plan_table(
        dry, gpu="T4", epochs=10, fraction=0.3).loc["All of §5.2", "T4 GPU-h"])
    text = gpuplan.plan_text(dry, gpu="H100", epochs=10)
    assert "All of §5.2" in text and "main_cflow" in text and "FastFlow 40%" in text and "28%-36%" in text


def test_gpu_fraction_rounds_up_to_a_divisor():
    dry = _constructed_dry()  # fastflow peak 3 GB + 1 GB CUDA allowance = 4 GB
    assert gpuplan.run_peak_gb("fastflow", dry) == pytest.approx(3.0)
    assert gpuplan.gpu_fraction("fastflow", 16, dry) == 0.25
    assert gpuplan.gpu_fraction("fastflow", 80, dry) == 1 / 16
    assert gpuplan.gpu_fraction("fastflow", 5, dry) == 1.0
    with pytest.raises(ValueError, match="more than the 3 GB"):
        gpuplan.gpu_fraction("fastflow", 3, dry)
    with pytest.raises(ValueError, match="no finished configuration of 'cflow'"):
        gpuplan.gpu_fraction("cflow", 80, dry)
    assert gpuplan.tabular_gpu_fraction(80, dry) == 1 / 32  # 1.5 GB: 80 / 32 = 2.5 GB
    assert gpuplan.tabular_gpu_fraction(80, {**dry, "tabular": dict(ok=True, peak_bytes=0.1e9)}) == 1 / 64


def test_cache_saving_text_projects_the_benchmark():
    dry = _constructed_dry()
    bench = dict(what="constructed", n_images=100, recompute_epoch_s=30.0, cached_epoch_s=20.0, extract_s=10.0)
    text = gpuplan.cache_saving_text(dry, bench, epochs=10)
    # recompute: 3 seeds x 1e9 x (n_train x 10 + n_test) on both classes; the cache: 1e9 x (n_train + n_test) each
    recompute = 3 * 1e9 * ((209 + 900) * 10 + 83 + 200)
    assert f"{recompute / 1e15:,.0f} PFLOP recomputing" in text and "2 caches" in text
    # 10 s saved per 100 images and epoch, over 3 seeds x (209 + 900) training images x 10 epochs
    assert f"{10 / 100 * 3 * (209 + 900) * 10 / 3600:,.0f} CPU-hours saved" in text and "1.50x" in text
    assert "Measured on this CPU" not in gpuplan.cache_saving_text(dry, {}, epochs=10)


def test_the_hardware_page_numbers_are_the_committed_dry_runs():
    """hardware_numbers.md (included by the book page hardware.md) is what the committed dry run gives:
    after a new dry run, `python -m usfkit.gpuplan` writes it again."""
    from usfkit import results

    page = results.project_root(Path(__file__).parent) / gpuplan.DOCS_PAGE
    assert page.read_text() == gpuplan.docs_markdown(), "run: python -m usfkit.gpuplan"


def test_runs_per_gpu_follow_the_shares():
    dry = {"configurations": {a: {"ok": True, "config": {"arch": a}, "peak_bytes": {"train_step": gb * 1e9}}
                              for a, gb in (("fastflow", 3.0), ("cflow", 9.0), ("uflow", 30.0))},
           "tabular": {"ok": True, "peak_bytes": 0.5e9, "dim": 10}}
    table = gpuplan.runs_per_gpu(dry, memories=(16, 80))
    # (3 + 1) GB fits 1/4 of 16 GB and 1/16 of 80; (9 + 1) needs all of 16 and 1/8 of 80; 31 GB does not fit 16
    assert table.loc["FastFlow"].tolist() == [4, 16] and table.loc["CFlow"].tolist() == [1, 8]
    assert table.loc["U-Flow"].tolist() == [0, 2] and table.loc["tabular flow (ch. 05)"].tolist() == [8, 32]
