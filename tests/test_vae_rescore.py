"""Chapter 05's VAE runs rescored by a rerun (both AUC-ROCs kept) and scored by one named score."""
import numpy as np
import pandas as pd
import pytest

from usfkit.experiments import tabular


def test_a_vae_rerun_adds_its_score_parts_and_keeps_both_elbo_aurocs(tmp_path, monkeypatch):
    """rerun_for_vae_parts on constructed records: the record's own AUC-ROC stays, the rerun's sits beside it
    with whether it reproduced it; records that have the parts, or are not VAEs, are left alone."""
    from usfkit.results import RunRecord
    from usfkit.sweep import record_paths

    monkeypatch.setenv("USFKIT_RESULTS", str(tmp_path))
    settings = {"epochs": 3, "protocol": "adbench"}

    def saved(method, seed, metrics):
        spec = {"dataset": "4_breastw", "method": method, "seed": seed}
        path = record_paths(tabular.CHAPTER, "full", [spec], settings)[0]
        path.parent.mkdir(parents=True, exist_ok=True)
        rec = RunRecord(ok=True, metrics=metrics, chapter=tabular.CHAPTER, key=path.stem, spec=spec,
                        settings=settings, train_time_s=float(seed), provenance={"git_commit": "old"})
        path.write_text(rec.to_json())
        return path

    parts = {"auroc_reconstruction": 0.7, "auroc_latent": 0.6, "auroc_balanced": 0.8}
    same, other = saved("VAE-USFlow", 1, {"auroc": 0.9}), saved("VAE-NonUSFlow", 2, {"auroc": 0.9})
    done_before = saved("VAE-USFlow", 3, {"auroc": 0.9, **parts})
    flow = saved("USFlow", 1, {"auroc": 0.9})
    before = {p: p.read_text() for p in (done_before, flow)}
    calls = []

    def fake_run_one(spec, cfg, progress="auto"):
        calls.append((spec["method"], cfg.epochs, cfg.protocol))
        auroc = 0.9 if spec["method"] == "VAE-USFlow" else 0.85  # the second rerun does not reproduce its record
        return tabular.RunResult(ok=True, metrics={"auroc": auroc, **parts}, epochs_run=3, train_time_s=1.0)

    monkeypatch.setattr(tabular, "run_one", fake_run_one)
    assert [r.key for r in tabular.lacking_vae_parts()] == [same.stem, other.stem]  # shortest first
    assert tabular.rerun_for_vae_parts() == [same, other]
    assert calls == [("VAE-USFlow", 3, "adbench"), ("VAE-NonUSFlow", 3, "adbench")]
    a, b = RunRecord.from_file(same), RunRecord.from_file(other)
    assert a.metrics == {"auroc": 0.9, **parts} and a.rerun["reproduced_auroc"] and a.info["score_parts_from"] == "this run"
    assert b.metrics["auroc"] == 0.9 and b.rerun["metrics"]["auroc"] == 0.85 and not b.rerun["reproduced_auroc"]
    assert "rerun" in b.info["score_parts_from"] and b.rerun["provenance"]["profile"] == "full"
    assert all(p.read_text() == t for p, t in before.items())  # the others untouched
    assert tabular.lacking_vae_parts() == [] and tabular.rerun_for_vae_parts() == []


def test_with_vae_score_takes_one_named_score_and_never_fills_in_another():
    runs = pd.DataFrame({"dataset": ["a", "a", "a", "b"], "method": ["USFlow", "VAE-USFlow", "VAE-NonUSFlow", "VAE-USFlow"],
                         "ok": [True, True, True, False], "auroc": [0.9, 0.7, 0.6, np.nan],
                         "auroc_balanced": [np.nan, 0.8, np.nan, np.nan]})
    out = tabular.with_vae_score(runs)
    assert list(zip(out["method"], out["auroc"].fillna(-1))) == [("USFlow", 0.9), ("VAE-USFlow", 0.8),
                                                                 ("VAE-USFlow", -1)]  # failed run kept, lacking one dropped
    assert list(out["vae_score"]) == ["", "balanced", "balanced"]
    assert tabular.with_vae_score(runs, "elbo")["auroc"].tolist()[:3] == [0.9, 0.7, 0.6]
    with pytest.raises(ValueError, match="unknown VAE score"):
        tabular.with_vae_score(runs, "best")
