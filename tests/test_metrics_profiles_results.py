import json

import numpy as np
import pytest

from usfkit import metrics, profiles, results


def test_auroc_and_rank_correlations():
    assert metrics.auroc([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]) == 1.0
    assert metrics.auroc([0, 0, 1, 1], [0.4, 0.3, 0.2, 0.1]) == 0.0
    assert metrics.spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert metrics.kendall([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="both normal"):
        metrics.auroc([0, 0], [0.1, 0.2])
    with pytest.raises(ValueError, match="non-finite"):
        metrics.auroc([0, 1], [np.nan, 0.2])


def test_profiles_resolve(monkeypatch):
    monkeypatch.delenv("USFKIT_PROFILE", raising=False)
    cfg = profiles.resolve("04_alignment", "quick", epochs=3, seed=None)
    assert cfg.profile == "quick" and cfg.epochs == 3 and cfg.seed == 0
    monkeypatch.setenv("USFKIT_PROFILE", "full")
    assert profiles.resolve("04_alignment", "quick").profile == "full"
    monkeypatch.delenv("USFKIT_PROFILE")
    with pytest.raises(ValueError, match="unknown profile"):
        profiles.resolve("04_alignment", "fast")
    with pytest.raises(KeyError, match="unknown chapter"):
        profiles.resolve("99_nope")
    with pytest.raises(TypeError, match="no setting"):
        profiles.resolve("04_alignment", "full", epochz=3)


def test_every_chapter_has_both_profiles_with_the_same_keys():
    for chapter, table in profiles.PROFILES.items():
        assert set(table) == {"quick", "full"}, chapter
        assert set(table["quick"]) == set(table["full"]), chapter


def test_results_roundtrip_with_provenance(monkeypatch, tmp_path):
    monkeypatch.setenv("USFKIT_RESULTS", str(tmp_path))
    path = results.save("04_alignment", "table", {"rho": np.float32(0.5), "bad": float("nan")}, "quick",
                        seeds=[0, 1], started=0.0)
    assert path == tmp_path / "quick" / "04_alignment" / "table.json"
    rec = results.load("04_alignment", "table", "quick")
    assert rec["data"]["rho"] == 0.5 and rec["data"]["bad"] == "nan"
    prov = rec["provenance"]
    assert prov["profile"] == "quick" and prov["seeds"] == [0, 1] and prov["device"]
    assert prov["git_commit"] and prov["wall_time_s"] > 0
    assert results.load("04_alignment", "missing", "quick") is None
    assert not results.is_complete("04_alignment", "quick")
    results.mark_complete("04_alignment", "quick")
    assert results.is_complete("04_alignment", "quick")
    json.loads((tmp_path / "quick" / "04_alignment" / "complete.json").read_text())


def test_ranking_agreement_tolerates_rounding_ties_but_not_swaps():
    """Duplicated items scored a few ulps apart (as a batch may do in float32) make Spearman's rho
    fall below 1, yet no pair is discordant and the AUROC gap stays within the stated slack;
    one genuine swap of two well-separated items is caught."""
    rng = np.random.default_rng(0)
    a = rng.normal(size=200).astype(np.float32)
    a = np.concatenate([a, a[:40]])  # 40 duplicated items
    b = 2 * a + 1
    b[200:] *= 1 + np.float32(2e-7) * rng.choice([-1, 1], size=40).astype(np.float32)  # ties broken by rounding
    y = (rng.random(240) < 0.3).astype(int)
    agree = metrics.ranking_agreement(a, b, y)
    assert metrics.spearman(a, b) < 1.0
    assert agree["discordant"] == 0 and agree["near_ties"] >= 40
    assert abs(metrics.auroc(y, a) - metrics.auroc(y, b)) <= agree["auroc_slack"]
    swapped = b.copy()
    lo, hi = int(np.argmin(b)), int(np.argmax(b))
    swapped[lo], swapped[hi] = swapped[hi], swapped[lo]
    assert metrics.ranking_agreement(a, swapped, y)["discordant"] > 0
