"""The alignment experiment (chapter 4): exactness of the USF ranking, search, resume."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from usfkit.experiments import alignment


@pytest.fixture
def cfg(monkeypatch, tmp_path):
    monkeypatch.setenv("USFKIT_RESULTS", str(tmp_path))
    return SimpleNamespace(profile="quick", dims=[2, 4], n_train=256, n_val=128, n_test=256, epochs=2, patience=2,
                           search_runs=2, blocks=[2, 3], layers=[1, 2], hidden=16, lrs=[3e-3, 1e-3],
                           batch_sizes=[64], svdd_depths=[2, 3], svdd_pretrain_epochs=1, seed=0)


def test_run_search_selects_by_validation_and_usf_ranks_exactly(cfg, tmp_path):
    out = alignment.run(cfg, verbose=False)
    assert len(out["trials"]) == len(cfg.dims) * len(alignment.METHODS) * cfg.search_runs
    for (dim, method), ev in out["best"].items():
        assert ev["ok"] and -1 <= ev["rho"] <= 1
        same = [t for t in out["trials"] if t["dim"] == dim and t["method"] == method]
        assert ev["val_loss"] == min(t["val_loss"] for t in same)
        assert getattr(ev["model"], "constant_det", False) is (method == "USFlow")
        if method != "Deep SVDD" and ev["model"].constant_det:
            assert ev["rho_est_norm"] == pytest.approx(1.0, abs=1e-9)
    assert alignment.summary_table(out).shape[0] == len(cfg.dims) * 3
    from usfkit import plots  # every figure of the chapter says which run drew it

    for fig in (plots.latent_panels(out, dim=2), plots.norm_vs_loglik(out), plots.volume_map(out, "USFlow", dim=2)):
        assert [t.get_text() for t in fig.texts] == ["quick profile: 2 configuration(s) per method and dimension"]
    __import__("matplotlib.pyplot").pyplot.close("all")
    records = list((tmp_path / "quick" / "04_alignment" / "runs").glob("*.json"))  # the shared sweep's records
    weights = list((tmp_path / "quick" / "04_alignment" / "checkpoints").glob("*.pt"))
    assert len(records) == len(out["trials"]) and len(weights) == sum(t["ok"] for t in out["trials"])


def test_rerun_resumes_from_saved_trials_and_settings_change_the_key(cfg, tmp_path, monkeypatch):
    first = alignment.run(cfg, verbose=False)
    calls, trained = [], alignment.train_model
    monkeypatch.setattr(alignment, "train_model", lambda *a, **k: calls.append(a))
    again = alignment.run(cfg, verbose=False)
    assert calls == []  # everything came from disk
    for key, ev in first["best"].items():
        assert again["best"][key]["rho"] == pytest.approx(ev["rho"])
    cfg.epochs = 3
    with pytest.raises(AttributeError):  # the stub returns None: a new training was attempted
        alignment.run(cfg, verbose=False)
    assert calls
    # checkpoints are a cache: a lost one of a trial not chosen is never needed; a chosen trial whose
    # weights are gone is trained again (its record stays), to the same weights
    cfg.epochs = 2
    folder = tmp_path / "quick" / "04_alignment" / "checkpoints"
    chosen = {t["key"] for t in first["trials"]
              if first["best"][(t["dim"], t["method"])]["run"] == t["run"]}
    other = next(p for p in folder.glob("*.pt") if p.stem not in chosen)
    best = folder / f"{sorted(chosen)[0]}.pt"
    weights = torch.load(best)
    other.unlink(), best.unlink()
    calls.clear()
    monkeypatch.setattr(alignment, "train_model", lambda *a, **k: calls.append(a) or trained(*a, **k))
    third = alignment.run(cfg, verbose=False)
    assert len(calls) == 1 and best.exists() and not other.exists()
    assert all(torch.equal(weights[k], v) for k, v in torch.load(best).items())
    for key, ev in first["best"].items():
        assert third["best"][key]["rho"] == pytest.approx(ev["rho"])


def test_search_space_is_deterministic_and_first_run_uses_first_values(cfg):
    assert alignment.search_space("USFlow", cfg, 0) == {"blocks": 2, "layers": 1, "lr": 3e-3, "batch_size": 64}
    assert alignment.search_space("Deep SVDD", cfg, 0)["depth"] == 2
    assert alignment.search_space("NonUSFlow", cfg, 5) == alignment.search_space("NonUSFlow", cfg, 5)


def test_second_mixture_component_is_2_5_to_the_d_over_4_times_as_voluminous():
    """Chapter 04's statement: det Sigma_2 = 2.5^(d/2), and the volume of a level-set ellipsoid
    {(x - mu)^T Sigma^-1 (x - mu) <= r^2} scales with sqrt(det Sigma), so the ratio is 2.5^(d/4).
    Checked by Monte Carlo in d = 2 (ratio 2.5^(1/2)) and d = 4 (ratio 2.5)."""
    from usfkit.data import AsymmetricGaussianMixture

    gen = np.random.default_rng(0)
    for dim in (2, 4):
        gm = AsymmetricGaussianMixture(dim)
        volumes = []
        for var in gm.variances:
            half = 1.5 * np.sqrt(var)  # a box around the ellipsoid of radius 1
            u = gen.uniform(-half, half, size=(400_000, dim))
            inside = ((u ** 2 / var).sum(1) <= 1.0).mean()
            volumes.append(inside * np.prod(2 * half))
        assert volumes[1] / volumes[0] == pytest.approx(2.5 ** (dim / 4), rel=0.02)


def test_a_search_with_fewer_configurations_is_labelled_reduced():
    from usfkit import profiles
    from usfkit.experiments import alignment

    assert alignment.search_label(profiles.of("04_alignment", "full")).startswith("full search: 10")
    reduced = alignment.search_label(profiles.of("04_alignment", "full", search_runs=3))
    assert reduced.startswith("REDUCED search: 3 of the full search's 10") and "full search:" not in reduced
    assert alignment.search_label(profiles.of("04_alignment", "quick")).startswith("quick profile")
    specs, settings = alignment.trial_sweep(profiles.of("04_alignment", "full"))
    assert len(specs) == 4 * 3 * 10 and "search_runs" not in settings  # a reduced search's trials are full-search trials


def test_styled_summary_shows_three_decimals_and_a_dash_for_a_stored_nan():
    from usfkit.experiments import alignment as al

    saved = [{"d": 2, "method": "Deep SVDD", al.RHO: -0.194849, al.TAU: -0.1191, al.RHO_EST: "nan", "config": "{}"},
             {"d": 2, "method": "USFlow", al.RHO: 0.990321, al.TAU: 0.92827, al.RHO_EST: 0.990321, "config": "{}"}]
    html = al.styled(saved).to_html()
    assert "0.990" in html and "-0.195" in html and "–" in html and "nan" not in html and "0.990321" not in html
