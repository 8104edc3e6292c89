"""The registries (usfkit.models.METHODS / HEADS) and the run-key contract: a run's key is its spec plus exactly
the settings it reads.

* a toy method registered through the public API runs through the chapter's sweep, its tables and figures
  (and the report's tabular rows) with no other file touched;
* a setting added to a profile changes no run's key, in any chapter;
* every committed record is found by the current code (nothing missing under either ADBench protocol).
"""
import time
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from usfkit import models, profiles, sweep
from usfkit.experiments import alignment, collapse, tabular
from usfkit.experiments import vae as ve
from usfkit.train import FitResult


class Centroid(torch.nn.Module):
    """A toy one-class model: the distance to the training mean, scaled by a learning rate that does nothing
    else (it is there to be a declared setting)."""

    def __init__(self, dim: int, scale: float):
        super().__init__()
        self.register_buffer("centre", torch.zeros(dim))
        self.scale = scale

    def score(self, x):
        return self.scale * (x - self.centre).norm(dim=1)


def _build(dim, coupling, cfg, seed):
    assert not hasattr(cfg, "nu") and not hasattr(cfg, "blocks"), "a method sees only the settings it declares"
    return Centroid(dim, cfg.lr)


def _train(model, x, cfg, fit):
    started = time.time()
    model.centre = x.mean(0)
    return FitResult(ok=True, epochs=1, wall_time_s=time.time() - started, best_loss=0.0)


@pytest.fixture
def toy():
    spec = models.register_method(models.MethodSpec("Toy", build=_build, train=_train, score=lambda m: m.score,
                                                    settings=("lr",), colour="#2ca02c"))
    try:
        yield spec
    finally:
        models.METHODS.pop("Toy")


def test_a_method_registered_through_the_api_runs_in_the_sweep_its_tables_figures_and_report(
        toy, shared_data, tmp_path, monkeypatch):
    from usfkit import plots
    from usfkit.experiments import claims

    monkeypatch.setenv("USFKIT_RESULTS", str(tmp_path))
    with pytest.raises(ValueError, match="registered already"):
        models.register_method(toy)
    cfg = profiles.of(tabular.CHAPTER, "quick", datasets=["38_thyroid", "6_cardio"], methods=["USFlow", "Toy", "DOHSC"],
                      seeds=1, epochs=2, blocks=2, hidden=32, layers=1, dohsc_pretrain_epochs=1, accelerator="cpu",
                      protocol="adbench")
    runs = tabular.run(cfg, progress="none")
    toy_runs = runs[runs["method"] == "Toy"]
    assert len(toy_runs) == 2 and toy_runs["ok"].all() and toy_runs["auroc"].between(0, 1).all()
    record = next(r for r in sweep.load_runs(tabular.CHAPTER, "quick") if r.spec["method"] == "Toy")
    assert set(record.settings) == set(tabular.SHARED_SETTINGS) | {"lr"}  # exactly what it reads
    wide = tabular.wide(runs)
    assert list(wide.columns) == ["USFlow", "DOHSC", "Toy"]  # the registry's order
    views = tabular.paper_settings_views(sweep.load_runs(tabular.CHAPTER, "quick"))
    assert set(views[tabular.ADBENCH_VIEW]["method"]) == {"USFlow", "DOHSC", "Toy"}  # the chapter's views hold it
    # the report's tabular rows read these records: each evaluates (here "not run": 2 datasets, fewer than the 40 a
    # claim over the paper's 47 needs), and the paper's comparisons stay between the paper's methods
    src = claims.Source("quick", None)
    found = {c.key: claims.evaluate(c, src) for c in claims.CLAIMS if c.topic == "tabular"}
    assert len(found) >= 10 and not any(f.error for f in found.values())
    usflow = found["§5.1.2: USFlow 85.61 ± 13.54"]
    assert usflow.verdict == claims.NOT_RUN and "n = 2 datasets" in usflow.why
    assert not any("Toy" in f.ours for f in found.values())
    ax = plots.benchmark_boxplot(wide)
    colours = {tuple(np.round(p.get_facecolor()[:3], 3)) for p in ax.patches}
    assert (0.173, 0.627, 0.173) in colours  # the registered colour, #2ca02c
    assert "Toy" in tabular.runs_frame(sweep.load_runs(tabular.CHAPTER, "quick"))["method"].values


def test_the_cli_lists_the_registered_methods():
    from usfkit import cli

    p = cli.tabular_parser()
    choices = next(a.choices for a in p._actions if a.dest == "methods")
    assert choices == list(models.METHODS) and "OneFlow" in choices


def test_a_method_reads_only_what_it_declares():
    cfg = profiles.of(tabular.CHAPTER, "full")
    assert set(tabular.run_settings(cfg, "USFlow")) == set(tabular.SHARED_SETTINGS) | {
        "lr", "blocks", "hidden", "layers", "clamp", "prior_sigma"}
    assert "nu" not in tabular.run_settings(cfg, "USFlow") and "nu" in tabular.run_settings(cfg, "DOHSC")
    with pytest.raises(TypeError, match="reads setting"):
        tabular.run_settings(SimpleNamespace(epochs=1), "USFlow")
    with pytest.raises(KeyError, match="unknown method"):
        tabular.run_settings(cfg, "NoSuchFlow")


def _every_key(chapter: str) -> list[str]:
    """The record file names of every full-profile run of ``chapter`` as the code names them now."""
    if chapter == tabular.CHAPTER:
        return [p.name for todo, settings in tabular.full_sweeps().values()
                for p in sweep.record_paths(chapter, "full", todo, settings)]
    cfg = profiles.of(chapter, "full")
    if chapter == "03_collapse":
        pairs = list(collapse.sweeps(cfg).values())
    elif chapter == "04_alignment":
        pairs = [alignment.trial_sweep(cfg)]
    else:
        pairs = [(ve.embedding_specs(cfg), ve.embedding_settings(cfg))]
    return [p.name for todo, settings in pairs for p in sweep.record_paths(chapter, "full", todo, settings)]


@pytest.mark.parametrize("chapter", ["03_collapse", "04_alignment", tabular.CHAPTER, "06_vae_usflow"])
def test_a_setting_added_to_a_profile_changes_no_key(chapter, shared_data, monkeypatch):
    before = _every_key(chapter)
    for profile in ("quick", "full"):
        monkeypatch.setitem(profiles.PROFILES[chapter], profile,
                            {**profiles.PROFILES[chapter][profile], "new_knob": 0.5})
    assert profiles.of(chapter, "full").new_knob == 0.5
    assert _every_key(chapter) == before and len(before) > 0


@pytest.mark.parametrize("chapter", ["03_collapse", "04_alignment", tabular.CHAPTER, "06_vae_usflow"])
def test_every_committed_record_is_found_by_the_current_code(chapter, shared_data, monkeypatch):
    monkeypatch.delenv("USFKIT_RESULTS", raising=False)  # the repository's committed results
    committed = {p.name for p in sweep.runs_dir(chapter, "full").glob("*.json")}
    assert committed, f"no committed records of {chapter}"
    assert committed <= set(_every_key(chapter))


def test_usf_tabular_status_finds_every_committed_record(shared_data, monkeypatch):
    monkeypatch.delenv("USFKIT_RESULTS", raising=False)
    table = tabular.status()
    assert int(table["missing"].sum()) == 0 and int(table["present"].sum()) == 1155
    assert all(not lines for lines in table.attrs["missing"].values())


def _migration():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "tools" / "migrate_run_keys.py"
    spec = importlib.util.spec_from_file_location("migrate_run_keys", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_migration_rekeys_old_records_without_touching_their_results(tmp_path, monkeypatch):
    """tools/migrate_run_keys.py on records written the old way: a tabular record keyed by every setting of the
    profile, the same run again under an unrelated setting, and an image record saying cls/arch."""
    import json

    from usfkit import results

    monkeypatch.setenv("USFKIT_RESULTS", str(tmp_path))
    migrate = _migration()
    cfg = profiles.of(tabular.CHAPTER, "full")
    every = {k: v for k, v in vars(cfg).items() if k not in ("profile", "chapter", "datasets", "methods", "seeds",
                                                              "seed", "tie")}  # the old key: all but selectors
    spec = {"dataset": "4_breastw", "method": "USFlow", "seed": 1}
    folder = sweep.runs_dir(tabular.CHAPTER, "full")
    folder.mkdir(parents=True)
    for i, (lr_of_dohsc, finished) in enumerate(((1e-4, "2026-01-01"), (3e-4, "2026-02-01"))):
        settings = {**every, "dohsc_lr": lr_of_dohsc}  # a setting USFlow does not read
        key = sweep.spec_key(spec, settings)
        record = results.RunRecord(ok=True, metrics={"auroc": 0.9 + i / 100}, chapter=tabular.CHAPTER, key=key,
                                   spec=spec, settings=settings, provenance={"finished_at": finished})
        (folder / f"{key}.json").write_text(record.to_json())
    n, moved = migrate.migrate_tabular("full", write=True)
    left = sorted(folder.glob("*.json"))
    assert (n, moved, len(left)) == (2, 1, 1)  # the same run twice: the newer kept, re-keyed
    new = json.loads(left[0].read_text())
    assert left[0] == sweep.record_paths(tabular.CHAPTER, "full", [spec], tabular.run_settings(cfg, "USFlow"))[0]
    assert new["metrics"] == {"auroc": 0.91} and new["settings"] == tabular.run_settings(cfg, "USFlow")
    assert new["provenance"]["rekeyed"]["dropped_settings"]["dohsc_lr"] == 3e-4
    assert migrate.migrate_tabular("full", write=True) == (1, 0)  # a second call changes nothing

    old_spec = {"experiment": "main", "dataset": "mvtec", "cls": "bottle", "arch": "fastflow", "coupling": "affine",
                "seed": 0}
    images = sweep.runs_dir(migrate.IMAGE_CHAPTER, "full")
    images.mkdir(parents=True)
    key = sweep.spec_key(old_spec)
    (images / f"{key}.json").write_text(results.RunRecord(ok=True, metrics={"image_auroc": 0.8}, key=key,
                                                          spec=old_spec).to_json())
    (images.parent / "maps").mkdir()
    (images.parent / "maps" / f"{key}.pt").write_bytes(b"maps")
    assert migrate.migrate_images("full", write=True) == (1, 1)
    (record,) = sweep.load_runs(migrate.IMAGE_CHAPTER, "full")
    assert list(record.spec) == ["experiment", "dataset", "class", "head", "coupling", "seed"]
    assert record.metrics == {"image_auroc": 0.8} and record.key == sweep.spec_key(record.spec)
    assert (images.parent / "maps" / f"{record.key}.pt").read_bytes() == b"maps"
