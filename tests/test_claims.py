"""The reproduction report's verdict logic (usfkit.experiments.claims), on synthetic records written to a temporary
results folder: for each tolerance rule a reproduced and a non-reproduced case (with its direction), and "not run
here" when records are absent or too few; one row per comparison, both tabular protocols side by side, the
47-set range rule, App. D's failures counted once at the paper's settings, and the page's text and links."""
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from usfkit import profiles, results, sweep
from usfkit.experiments import claims
from usfkit.image import paper_numbers

PAPER_TEXT = Path(__file__).resolve().parents[2] / "shared" / "paper" / "usf-paper-full-text.md"
TABULAR = "05_tabular_benchmark"


@pytest.fixture(autouse=True)
def results_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("USFKIT_RESULTS", str(tmp_path))
    monkeypatch.delenv("USFKIT_PROFILE", raising=False)
    return tmp_path


def by_key(prefix: str) -> claims.Claim:
    """The claim whose key is ``prefix``, else the one claim whose key starts with it."""
    found = [c for c in claims.CLAIMS if c.key == prefix] or [c for c in claims.CLAIMS if c.key.startswith(prefix)]
    assert len(found) == 1, [c.key for c in found]
    return found[0]


def check(prefix: str, profile: str = "quick") -> claims.Finding:
    finding = claims.evaluate(by_key(prefix), claims.Source(profile))
    assert not finding.error, finding.why
    return finding


def write_runs(chapter: str, profile: str, rows: list[dict]) -> None:
    """One run record per row: ``spec``, ``settings``, ``metrics``, ``info``, ``ok`` (failure said when not ok)."""
    folder = sweep.runs_dir(chapter, profile)
    folder.mkdir(parents=True, exist_ok=True)
    for row in rows:
        key = sweep.spec_key(row["spec"], row.get("settings"))
        ok = row.get("ok", True)
        rec = results.RunRecord(ok=ok, failure=None if ok else "loss became NaN", metrics=row["metrics"],
                                epochs_allowed=10, epochs_run=10, info=row.get("info", {}), chapter=chapter, key=key,
                                spec=row["spec"], settings=row.get("settings", {}),
                                provenance={"profile": profile, "device": "cpu: test"})
        (folder / f"{key}.json").write_text(rec.to_json())


# --------------------------------------------------------------------------
# the rules
# --------------------------------------------------------------------------
def test_sign_rule():
    rng = np.random.default_rng(0)
    up = 1.0 + 0.1 * rng.standard_normal(10)
    assert claims.sign_rule(up, +1)[0] == claims.REPRODUCED
    assert claims.sign_rule(-up, +1)[0] == claims.NOT_REPRODUCED
    assert claims.sign_rule(-up, -1)[0] == claims.REPRODUCED
    mixed = np.array([1.0, -0.9, 0.8, -0.7, 0.6, 0.5, -0.4])  # median > 0, far from significant
    assert claims.sign_rule(mixed, +1)[0] == claims.PARTLY
    # the direction of a failure: the opposite sign, significant -> contradicted; not significant -> not supported
    assert claims.sign_rule(-up, +1).direction == claims.CONTRADICTED
    assert claims.sign_rule(mixed, -1) == (claims.NOT_REPRODUCED, claims.sign_rule(mixed, -1).why, claims.NOT_SUPPORTED)
    assert claims.sign_rule(np.zeros(8), +1).direction == claims.NOT_SUPPORTED
    effect = claims.sign_effect(-up, -1)  # in the claimed direction: > 0
    assert effect.value > 0 and effect.low <= effect.value <= effect.high and effect.p < 0.05 and effect.n == 10
    assert claims.sign_rule(np.zeros(8), +1)[0] == claims.NOT_REPRODUCED
    # a median that is 0 up to float rounding (two equal stds computed apart) is a tie, not a sign
    rounding = np.array([1.0, -1.0, 2.0, -2.0, -1.6e-15, 3.0, -3.0])
    assert claims.sign_rule(rounding, -1)[0] == claims.NOT_REPRODUCED
    assert "median difference 0 (a tie) " in claims.sign_rule(rounding, -1)[1]
    with pytest.raises(claims.NotRun, match="at least 6"):
        claims.sign_rule(up[:5], +1)


def test_cells_rule():
    cells = pd.DataFrame({"paper_mean": [90.0, 80.0, 70.0, 60.0], "paper_std": [0.5, 2.0, 0.0, 1.0],
                          "our_mean": [90.8, 78.5, 70.9, 59.2], "our_std": [0.2, 0.1, 0.3, 0.4]})
    assert claims.cells_rule(cells)[0] == claims.REPRODUCED  # every gap within max(std, 1 pp)
    assert claims.cells_rule(cells.assign(our_mean=cells["paper_mean"] - 10))[0] == claims.NOT_REPRODUCED
    half = cells.assign(our_mean=[90.0, 80.0, 50.0, 40.0])
    assert claims.cells_rule(half)[0] == claims.PARTLY
    assert claims.cell_tolerance(0.0, 3.0) == 3.0 and claims.cell_tolerance(0.0, float("nan")) == claims.MIN_TOL_PP
    with pytest.raises(claims.NotRun):
        claims.cells_rule(cells.assign(our_mean=np.nan))


def test_parts_count_within_rules():
    assert claims.parts_rule({"a": True, "b": True})[0] == claims.REPRODUCED
    assert claims.parts_rule({"a": True, "b": False})[0] == claims.PARTLY
    assert claims.parts_rule({"a": False, "b": False})[0] == claims.NOT_REPRODUCED
    assert claims.count_rule(0, 0)[0] == claims.REPRODUCED and claims.count_rule(1, 0)[0] == claims.NOT_REPRODUCED
    assert claims.within_rule(85.0, 85.61, 3.95)[0] == claims.REPRODUCED
    assert claims.within_rule(80.0, 85.61, 3.95)[0] == claims.NOT_REPRODUCED
    # a direction beside every "not reproduced", and only there
    assert claims.parts_rule({"a": False}).direction == claims.NOT_SUPPORTED
    assert claims.parts_rule({"a": True, "b": False}).direction == ""
    assert claims.count_rule(1, 0).direction == claims.CONTRADICTED  # a failure where the paper saw none
    assert claims.count_rule(0, 2).direction == claims.NOT_SUPPORTED  # fewer failures than the paper's
    assert claims.within_rule(90.0, 85.61, 1.0, favour=+1).direction == claims.USF_FAVOUR
    assert claims.within_rule(80.0, 85.61, 1.0, favour=+1).direction == claims.CONTRADICTED
    with pytest.raises(ValueError, match="direction"):
        claims.Finding(claims.NOT_REPRODUCED, why="x")
    with pytest.raises(ValueError, match="direction"):
        claims.Finding(claims.REPRODUCED, direction=claims.CONTRADICTED)


def test_a_run_is_a_usf_run_by_its_coupling_one_rule_for_every_chapter():
    """No translator of label spellings: a run is a USF's when it recorded a constant determinant, else when its
    coupling (the spec's, or its registered method's) is additive."""
    assert claims.usf_run({"coupling": "affine", "constant_det": True})  # what the run recorded decides
    assert not claims.usf_run({"coupling": "affine_lu", "seed": 0}) and claims.usf_run({"coupling": "additive"})
    assert claims.usf_run({"dataset": "x", "method": "OneFlow", "seed": 1})  # OneFlow's flow is a USFlow
    assert claims.usf_run({"method": "VAE-USFlow"}) and not claims.usf_run({"method": "VAE-NonUSFlow"})
    assert not claims.usf_run({"method": "DOHSC"}) and not claims.usf_run({"method": "Deep SVDD"})
    assert not claims.usf_run({})


# --------------------------------------------------------------------------
# the package: one module per topic, the rules and the rendering apart
# --------------------------------------------------------------------------
TOPIC_MODULES = {"theory": "theory", "synthetic": "synthetic", "tabular": "tabular", "vae": "vae",
                 "failures": "failures", "image": "image"}


def test_each_topic_module_registers_its_claims_in_the_reports_order():
    for c in claims.CLAIMS:
        assert c.check.__module__ == f"usfkit.experiments.claims.{TOPIC_MODULES[c.topic]}", (c.key, c.check.__module__)
    order = list(claims.TOPICS)
    ranks = [order.index(c.topic) for c in claims.CLAIMS]
    assert ranks == sorted(ranks)  # grouped by topic, as the page shows them
    assert [c.key for c in claims.CLAIMS[:2]] == ["Eq. 4: constant determinant", "Eq. 5: NLL = SVDD term - ln psi_det"]


def test_every_module_declares_its_public_names_and_the_rules_read_no_record():
    import ast
    import importlib
    import inspect

    for name in ("core", "rules", "render", "evaluation", *TOPIC_MODULES.values()):
        module = importlib.import_module(f"usfkit.experiments.claims.{name}")
        assert all(hasattr(module, n) for n in module.__all__), name
        assert all(getattr(claims, n) is getattr(module, n) for n in module.__all__), name  # re-exported
    tree = ast.parse(inspect.getsource(claims.rules))
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
    assert not imported & {"results", "sweep", "Source"}  # pure rules on numbers
    tree = ast.parse(inspect.getsource(claims.render))
    assert not any(isinstance(n, ast.ImportFrom) and n.module in TOPIC_MODULES for n in ast.walk(tree))


# --------------------------------------------------------------------------
# the registry on synthetic results
# --------------------------------------------------------------------------
def test_no_results_means_not_run_here_with_a_reason():
    src = claims.Source("quick", eq6=pd.DataFrame({"NLL - KL": [1.0, 1.0], "data entropy E[-ln p_X]": [1.0, 1.0],
                                                   "KL (latent space)": [0.5, 2.0]}, index=["USFlow", "NonUSFlow"]))
    for c in claims.CLAIMS:
        f = claims.evaluate(c, src)
        assert not f.error, (c.key, f.why)
        if c.chapter != "08":
            assert f.verdict == claims.NOT_RUN and f.why, c.key
    with pytest.raises(ValueError, match="say why"):
        claims.Finding(claims.NOT_RUN)


def test_full_results_are_preferred_and_full_profile_reads_full_only():
    prior = lambda paper: {"prior_samples": [{"rule": "exact", "sample var / sigma^2": 1.01},  # noqa: E731
                                             {"rule": "paper", "sample var / sigma^2": paper}],
                           "settings": {"prior_shape": [16, 4, 4], "prior_samples": 1000}}
    results.save("03_collapse", "summary", prior(1 / 16), "quick")
    f = check("App. B.2: sigma0")  # the paper's sigma0 gives sigma^2 / c: the claim as stated is contradicted
    assert f.verdict == claims.NOT_REPRODUCED and f.direction == claims.CONTRADICTED
    assert "0.0625 σ² (theory: σ²/c = σ²/16, 16x too small)" in f.why and "gives 1.01 σ²" in f.why
    assert check("App. B.2: sigma0", "full").verdict == claims.NOT_RUN
    results.save("03_collapse", "summary", prior(0.99), "full")
    f = check("App. B.2: sigma0")
    assert f.verdict == claims.REPRODUCED and f.basis.startswith("full")
    results.save("03_collapse", "summary", {**prior(1 / 16), "prior_samples": [
        {"rule": "exact", "sample var / sigma^2": 0.5}, {"rule": "paper", "sample var / sigma^2": 0.1}]}, "full")
    assert check("App. B.2: sigma0").verdict == claims.NOT_REPRODUCED


def test_sigma0_is_reproduced_only_when_the_papers_formula_gives_sigma_squared():
    rows = lambda paper: [{"rule": "exact", "sample var / sigma^2": 1.0}, {"rule": "paper", "sample var / sigma^2": paper}]  # noqa: E731
    assert claims.sigma0_judgement(rows(1.04), 64).verdict == claims.REPRODUCED
    j = claims.sigma0_judgement(rows(1 / 64), 64)
    assert j.verdict == claims.NOT_REPRODUCED and j.direction == claims.CONTRADICTED and "64x too small" in j.why


def test_collapse_is_judged_on_the_one_class_phase():
    """A variant already constant before training is set aside (it did not collapse through the objective); the
    verdict rests on how the spread of the others shrank during training, and on the USF's spread within 0.5-2x."""
    variants = {"ruff": {"bias": False}, "bias": {"bias": True}, "constant": {"bias": True}}
    rows = [{"variant": "ruff", "spread start": 2.0, "spread end": 0.3, "loss start": 100.0},
            {"variant": "bias", "spread start": 2.0, "spread end": 0.002, "loss start": 100.0},
            {"variant": "constant", "spread start": 0.0, "spread end": 0.0, "loss start": 3.5e-13}]
    usf = {"latent spread": 1.26, "base std": 0.707}
    judged, ours = claims.collapse_parts(rows, usf, variants)
    assert judged.verdict == claims.REPRODUCED
    assert "set aside, constant before training (spread 0, loss 3.5e-13 at the start): constant" in ours
    assert "bias 0.1 %" in ours and "ruff 15 %" in ours and "1.78x its base std 0.71 (tolerance 0.5-2x)" in ours
    # only the constant-from-the-start variant collapses: no collapse during training, so that part is not met
    rows[1]["spread end"] = 1.0
    judged, _ = claims.collapse_parts(rows, usf, variants)
    assert judged.verdict == claims.PARTLY and f"{claims.NOT_MET}: an encoder with biases collapses" in judged.why
    judged, _ = claims.collapse_parts(rows, {"latent spread": 1.5, "base std": 0.707}, variants)  # 2.1x: outside
    assert f"{claims.NOT_MET}: the USF keeps its spread" in judged.why


def test_prior_scale_row_gives_nats_the_scale_chapter_05_uses_and_the_nll_cost():
    rows = [{"coupling": "additive_lu", "constant_det": True, "sigma": s, "seed": k, "status": "ok", "ln_det_mean": v,
             "test_nll": nll} for s, v, nll in (("0.01", 2.0, 34.6), ("1", 276.0, -196.7), ("no prior", 278.0, -199.4))
            for k in range(2)]
    judged, ours = claims.prior_scale_parts(rows, used=1.0)
    assert judged.verdict == claims.REPRODUCED
    assert ours.startswith("USF mean ln|det J| (nats): σ = 0.01 2, σ = 1 276, no prior 278")
    assert "σ = 1 (chapter 05's) barely changes it (276 vs 278)" in ours
    assert "σ = 0.01 costs +234 nats of mean test NLL (34.6 vs -199)" in ours


def tabular_rows(n_datasets: int, usf_better: bool, seed: int = 0, protocol: str = "adbench",
                 vae_better: bool | None = None, elbo_opposite: bool = False) -> list[dict]:
    """Every method on ``n_datasets`` datasets, seed 1: the USF variants ahead of their partners by 5 pp
    (``usf_better``; ``vae_better`` sets the VAE pair apart).  VAE runs record the book's primary VAE score
    ("balanced") as their AUC-ROC; with ``elbo_opposite`` their first score (``auroc``) says the opposite."""
    rng = np.random.default_rng(seed)
    vae_better = usf_better if vae_better is None else vae_better
    base = {"USFlow": 0.85, "NonUSFlow": 0.80, "VAE-USFlow": 0.83, "VAE-NonUSFlow": 0.78, "OneFlow": 0.84,
            "DOHSC": 0.70, "DO2HSC": 0.68}
    if not usf_better:
        base["USFlow"], base["NonUSFlow"] = base["NonUSFlow"], base["USFlow"]
    if not vae_better:
        base["VAE-USFlow"], base["VAE-NonUSFlow"] = base["VAE-NonUSFlow"], base["VAE-USFlow"]
    rows = []
    for i in range(n_datasets):
        level = rng.uniform(-0.1, 0.1)
        for method, mean in base.items():
            auroc = float(np.clip(mean + level + 0.01 * rng.standard_normal(), 0, 1))
            metrics = {"auroc": auroc}
            if method.startswith("VAE-"):
                partner = base["VAE-NonUSFlow" if method == "VAE-USFlow" else "VAE-USFlow"]
                metrics = {"auroc": float(np.clip(partner + level, 0, 1)) if elbo_opposite else auroc,
                           "auroc_balanced": auroc}
            rows.append({"spec": {"dataset": f"{i + 1}_set{i}", "method": method, "seed": 1},
                         "settings": {"epochs": 200, "protocol": protocol}, "metrics": metrics})
    return rows


PAIR = "§5.1.2: USF variants beat their non-USF counterparts: USFlow vs NonUSFlow"
VAE_PAIR = "§5.1.2: USF variants beat their non-USF counterparts: VAE-USFlow vs VAE-NonUSFlow"
STABLE, VAE_STABLE = (f"Abstract: USFs make tabular training more stable: {u} vs {n}"
                      for u, n in (("USFlow", "NonUSFlow"), ("VAE-USFlow", "VAE-NonUSFlow")))
MEAN = "§5.1.2: USFlow 85.61 ± 13.54"


def test_tabular_sign_rule_through_the_registry():
    write_runs(TABULAR, "full", tabular_rows(claims.MIN_DATASETS, usf_better=True))
    f = check(PAIR)
    assert f.verdict == claims.REPRODUCED and "40 of 47 datasets" in f.basis
    assert f.effect.unit == claims.PP and 4 < f.effect.value < 6 and f.effect.n == claims.MIN_DATASETS
    assert check("§5.1.2: DOHSC and DO2HSC trail all flows: vs USFlow, NonUSFlow, OneFlow").verdict == claims.REPRODUCED


def test_a_claim_over_two_pairs_is_two_rows_each_with_its_own_verdict():
    """USFlow beats NonUSFlow, VAE-NonUSFlow beats VAE-USFlow: one row reproduced, the other contradicted —
    never one row with "the weaker of the two"."""
    write_runs(TABULAR, "full", tabular_rows(claims.MIN_DATASETS, usf_better=True, vae_better=False))
    assert [c.key for c in claims.CLAIMS if c.key.startswith("§5.1.2: USF variants beat")] == [PAIR, VAE_PAIR]
    assert check(PAIR).verdict == claims.REPRODUCED
    vae = check(VAE_PAIR)
    assert vae.verdict == claims.NOT_REPRODUCED and vae.direction == claims.CONTRADICTED and vae.effect.value < 0
    assert not any("weaker" in c.rule for c in claims.CLAIMS)


def test_tabular_claims_read_only_the_profiles_protocol():
    """The full sweep also holds leak-free control runs of the small sets: the claims read the benchmark's
    protocol only, so a control run never mixes into a dataset's mean."""
    write_runs(TABULAR, "full", tabular_rows(claims.MIN_DATASETS, usf_better=True)
               + tabular_rows(claims.MIN_DATASETS, usf_better=False, seed=3, protocol="adbench-noresample"))
    f = check(PAIR)
    assert f.verdict == claims.REPRODUCED and f"{2 * claims.MIN_DATASETS} runs" in f.basis


def leaky_rows(n: int, small: int, control_usf_better: bool = False) -> list[dict]:
    """ADBench's runs of ``n`` datasets (the first ``small`` leak test normals into training) and leak-free
    control runs of those ``small`` sets, where NonUSFlow leads unless ``control_usf_better``."""
    leaky = tabular_rows(n, usf_better=True)
    for r in leaky:
        r["info"] = {"leaked_test_normals": 150 if int(r["spec"]["dataset"].split("_")[0]) <= small else 0}
    control = [dict(r, info={"leaked_test_normals": 0}) for r in
               tabular_rows(n, usf_better=control_usf_better, seed=3, protocol="adbench-noresample")
               if int(r["spec"]["dataset"].split("_")[0]) <= small]
    return leaky + control


def test_tabular_claims_are_judged_under_both_protocols_side_by_side():
    """Every tabular row carries the leak-free judgement beside ADBench's (primary): the control run where
    ADBench's split copied test normals into training, ADBench's run elsewhere."""
    n = claims.MIN_DATASETS
    write_runs(TABULAR, "full", leaky_rows(n, small=30))
    primary = check(PAIR)
    assert primary.verdict == claims.REPRODUCED and f"{2 * n} runs" in primary.basis
    alt = primary.alt
    assert f"{2 * n} runs" in alt.basis and alt.conditions.startswith("protocol without the leak")
    assert alt.verdict == claims.NOT_REPRODUCED and alt.direction == claims.CONTRADICTED  # NonUSF leads on 30 of 40
    tabular_claims = [c for c in claims.CLAIMS if c.topic == "tabular"]
    assert all(check(c.key).alt is not None for c in tabular_claims)
    table, _ = claims.report(claims.settings("quick"), eq6=claims.eq6_check(dim=3, n=300, blocks=2, hidden=8))
    common = claims.tabular_common_text(table)  # what every tabular row shares, said once
    assert "under ADBench's protocol (the primary verdict) and without the leak" in common
    assert "Read from: full; 40 of 47 datasets" in common and "runs." not in common
    assert not any("without the leak" in c.key for c in claims.CLAIMS)  # one row, both verdicts


def test_a_verdict_that_flips_without_the_leak_is_said_in_the_totals(results_dir):
    write_runs(TABULAR, "full", leaky_rows(claims.MIN_DATASETS, small=30))
    table, _ = claims.report(claims.settings("quick"), eq6=claims.eq6_check(dim=3, n=300, blocks=2, hidden=8))
    row = table.set_index("claim").loc[PAIR]
    assert row["verdict"] == claims.REPRODUCED and row[f"verdict {claims.ALT}"] == claims.NOT_REPRODUCED
    text = claims.verdict_text(table)
    assert "Without the leak" in text and "USFlow > NonUSFlow: reproduced → not reproduced (contradicted)" in text
    assert claims.PRIMARY_PROTOCOL_REASON in text


def test_tabular_claims_compare_methods_on_the_same_datasets():
    """A sweep in progress: datasets where only some methods ran are left out of every tabular claim."""
    rows = tabular_rows(claims.MIN_DATASETS, usf_better=True)
    partial = [r for r in tabular_rows(5, usf_better=False, seed=4) if r["spec"]["method"] in ("NonUSFlow", "DOHSC")]
    for r in partial:
        r["spec"]["dataset"] = "99_" + r["spec"]["dataset"]
    write_runs(TABULAR, "full", rows + partial)
    f = check("§5.1.2: USFlow has the highest mean: vs NonUSFlow, OneFlow, DOHSC, DO2HSC")
    assert f"{claims.MIN_DATASETS} of 47 datasets (chapter 05's; 1 seed on {claims.MIN_DATASETS} datasets)" in f.basis
    assert f.verdict == claims.REPRODUCED  # the partial datasets, where NonUSFlow leads, do not count


def test_tabular_sign_rule_not_reproduced():
    write_runs(TABULAR, "full", tabular_rows(claims.MIN_DATASETS, usf_better=False))
    assert check(PAIR).verdict == claims.NOT_REPRODUCED
    mean = check(MEAN)  # mean 80 + noise on 40 datasets: the 47-set mean can reach at most (40 x 80 + 7 x 100) / 47
    assert mean.verdict == claims.NOT_REPRODUCED and mean.direction == claims.CONTRADICTED


def test_tabular_claims_need_enough_datasets():
    write_runs(TABULAR, "full", tabular_rows(6, usf_better=True))
    f = check(PAIR)
    assert f.verdict == claims.NOT_RUN and "rests on n = 6 datasets" in f.why and f.ours


def test_vae_claims_use_the_primary_vae_score_and_wait_for_it():
    """The VAE rows read tabular.PRIMARY_VAE_SCORE, never the ELBO's AUC-ROC; on fewer than MIN_DATASETS
    datasets with that score they are not run here, saying how many have it; they judge once enough have it."""
    rows = tabular_rows(claims.MIN_DATASETS, usf_better=True, elbo_opposite=True)
    for r in rows:  # only the first 12 datasets' VAE runs have the score so far, and on the first only one VAE's
        k = int(r["spec"]["dataset"].split("_")[0])
        if r["spec"]["method"].startswith("VAE-") and (k > 12 or (k == 1 and r["spec"]["method"] == "VAE-NonUSFlow")):
            del r["metrics"]["auroc_balanced"]
    write_runs(TABULAR, "full", rows)
    f = check(VAE_PAIR)  # chapter 05's rule: a dataset counts once all its VAE runs have the score (11 here)
    assert f.verdict == claims.NOT_RUN and "rests on n = 11 datasets" in f.why
    assert "the 11 of its 40 datasets where all their runs have the 'balanced' score" in f.why
    assert check(PAIR).verdict == claims.REPRODUCED  # the pair without a VAE is judged on all 40
    write_runs(TABULAR, "full", tabular_rows(claims.MIN_DATASETS, usf_better=True, elbo_opposite=True))
    f = check(VAE_PAIR)  # the ELBO says the opposite: the verdict follows the balanced score
    assert f.verdict == claims.REPRODUCED and "VAE runs scored by 'balanced'" in f.conditions


def seeded_rows(n_datasets: int, usf_stable: bool, seeds: int = 3) -> list[dict]:
    """Every method on every dataset and seed; the USF variants (or, with ``usf_stable`` False, their non-USF
    counterparts) vary little from seed to seed, their partners much."""
    rng = np.random.default_rng(5)
    rows = []
    for r in tabular_rows(n_datasets, usf_better=True):
        m = r["spec"]["method"]
        usf = m in ("USFlow", "VAE-USFlow")
        calm = usf == usf_stable if m in ("USFlow", "VAE-USFlow", "NonUSFlow", "VAE-NonUSFlow") else True
        for s in range(1, seeds + 1):
            auroc = float(np.clip(r["metrics"]["auroc"] + (0.002 if calm else 0.03) * rng.standard_normal(), 0, 1))
            metrics = {"auroc": auroc, "auroc_balanced": auroc} if m.startswith("VAE-") else {"auroc": auroc}
            rows.append({**r, "spec": {**r["spec"], "seed": s}, "metrics": metrics})
    return rows


def test_tabular_seed_std_claim():
    """The stability rows compare the seed std of each USF variant with its non-USF partner's, per dataset;
    they need two seeds of every method, and (like every tabular row) MIN_DATASETS datasets."""
    write_runs(TABULAR, "full", tabular_rows(claims.MIN_DATASETS, usf_better=True))
    f = check(STABLE)
    assert f.verdict == claims.NOT_RUN and "no dataset has two or more seeds" in f.why
    write_runs(TABULAR, "full", seeded_rows(claims.MIN_DATASETS, usf_stable=True))
    for key in (STABLE, VAE_STABLE):
        f = check(key)
        assert f.verdict == claims.REPRODUCED, f.why
        assert f"over {claims.MIN_DATASETS} datasets with 2+ seeds" in f.ours and f.effect.value > 0
    assert f.detail.loc["VAE-USFlow", "mean seed std (pp)"] < f.detail.loc["VAE-NonUSFlow", "mean seed std (pp)"]


def test_tabular_seed_std_claim_not_reproduced():
    write_runs(TABULAR, "full", seeded_rows(claims.MIN_DATASETS, usf_stable=False))
    f = check(STABLE)
    assert f.verdict == claims.NOT_REPRODUCED and f.direction == claims.CONTRADICTED


def test_aggregate_range_rule():
    """The 47-set mean from 43 datasets: whatever the 4 missing score (50-100 %), widened by 2 seed stds."""
    means = pd.Series([90.0] * 43)
    r = claims.aggregate_range(means, [89.0, 90.0, 91.0])
    assert r["missing"] == 4 and r["seed sd"] == pytest.approx(1.0)
    assert r["low"] == pytest.approx((43 * 90 + 4 * 50) / 47) and r["high"] == pytest.approx((43 * 90 + 4 * 100) / 47)
    assert r["wide low"] == pytest.approx(r["low"] - 2) and r["wide high"] == pytest.approx(r["high"] + 2)
    assert claims.range_rule(r["low"] - 1.5, r).verdict == claims.REPRODUCED  # only the seed widening holds it
    assert claims.range_rule(r["wide low"] - 0.1, r).direction == claims.USF_FAVOUR  # ours above the paper's
    assert claims.range_rule(r["wide high"] + 0.1, r).direction == claims.CONTRADICTED
    one_seed = claims.aggregate_range(means, [90.0])
    assert one_seed["seed sd"] == 0 and one_seed["wide low"] == one_seed["low"]
    assert claims.aggregate_range(pd.Series([80.0] * 47), [])["low"] == 80.0  # nothing missing: no range


def test_the_aggregate_claim_says_which_protocols_range_holds_the_papers_mean():
    """ADBench's runs put USFlow near 92 %, the leak-free ones near 87 %: the paper's 85.61 lies in the
    leak-free range only."""
    rows = tabular_rows(43, usf_better=True)
    control = [dict(r, info={"leaked_test_normals": 0}, settings={"epochs": 200, "protocol": "adbench-noresample"})
               for r in tabular_rows(43, usf_better=True)]
    for i, (leaky, clean) in enumerate(zip(rows, control)):
        leaky["info"] = {"leaked_test_normals": 10}
        if leaky["spec"]["method"] == "USFlow":
            leaky["metrics"]["auroc"] = 0.92 + (-1) ** i * 0.01
            clean["metrics"] = {"auroc": 0.87 + (-1) ** i * 0.01}
    write_runs(TABULAR, "full", rows + control)
    f = check(MEAN)
    assert f.verdict == claims.NOT_REPRODUCED and f.direction == claims.USF_FAVOUR
    assert f.alt.verdict == claims.REPRODUCED and f.effect.unit == claims.FROM_PAPER
    text = claims.aggregate_text(f)
    assert "our runs cover 43 of the 47 datasets" in text and "within the widened range without the leak" in text


def vae_rows(usf_better: bool, classes: int = 6, nonusf_failures: int = 0) -> list[dict]:
    rng = np.random.default_rng(1)
    rows = []
    for c in range(classes):
        for coupling in ("additive_lu", "affine_lu"):
            good = (coupling == "additive_lu") == usf_better
            for s in range(3):
                failed = coupling == "affine_lu" and c * 3 + s < nonusf_failures
                value = (0.85 + 0.005 * rng.standard_normal()) if good else (0.65 + 0.05 * rng.standard_normal())
                rows.append({"spec": {"class": f"class{c}", "coupling": coupling, "seed": s},
                             "settings": {"experiment": "embeddings"}, "ok": not failed,
                             "metrics": {"auroc_balanced": None if failed else value}})
    return rows


def test_figure11_sign_rules_and_failure_counts():
    write_runs("06_vae_usflow", "quick", vae_rows(usf_better=True, nonusf_failures=1))
    assert check("Figure 11: VAE-USFlow above").verdict == claims.REPRODUCED
    assert check("Figure 11: VAE-USFlow is more stable").verdict == claims.REPRODUCED
    assert check("App. D: VAE-NonUSFlow fails").verdict == claims.REPRODUCED
    found = check("App. D: no USF run fails")  # quick runs are not the paper's settings: listed apart, not counted
    assert found.verdict == claims.NOT_RUN and "full-profile" in found.why
    write_runs("06_vae_usflow", "full", vae_rows(usf_better=True, nonusf_failures=1))
    found = check("App. D: no USF run fails")
    assert found.verdict == claims.REPRODUCED and "quick" not in found.ours


def test_figure11_rows_say_their_setup_is_a_substitute():
    write_runs("06_vae_usflow", "full", vae_rows(usf_better=True))
    f = check("Figure 11: VAE-USFlow above")
    assert "ResNet-18 embeddings of MVTec AD, not the paper's Wide-ResNet-50-2 image model (0 full runs" in f.setup
    assert f.effect.what == "median per-class difference"
    assert check("Figure 11: VAE-USFlow is more stable").effect.what == "median per-class std reduction (NonUSF − USF)"


def test_figure11_not_reproduced():
    write_runs("06_vae_usflow", "quick", vae_rows(usf_better=False))
    f = check("Figure 11: VAE-USFlow above")
    assert f.verdict == claims.NOT_REPRODUCED and "USF - NonUSF above 0 on 0, below 0 on 6 of 6 classes" in f.ours
    assert check("Figure 11: VAE-USFlow is more stable").verdict == claims.NOT_REPRODUCED
    found = check("App. D: VAE-NonUSFlow fails")  # no NonUSF failure here; VAE-USFlow's runs count elsewhere
    assert found.verdict == claims.NOT_REPRODUCED and found.direction == claims.NOT_SUPPORTED


def test_figure11_too_few_classes():
    write_runs("06_vae_usflow", "quick", vae_rows(usf_better=True, classes=3))
    f = check("Figure 11: VAE-USFlow above")
    assert f.verdict == claims.NOT_RUN and "only 3" in f.why


def image_rows(weights: str, offset: float) -> list[dict]:
    """MVTec AD bottle, FastFlow, affine and additive + LU, three seeds: the paper's Table 2 values + offset."""
    rows = []
    for coupling in ("affine", "additive_lu"):
        img = paper_numbers.PER_CLASS[("mvtec", "image_auroc")]["bottle"][(coupling, "fastflow")][0]
        pix = paper_numbers.PER_CLASS[("mvtec", "pixel_auroc")]["bottle"][(coupling, "fastflow")][0]
        for seed in range(3):
            spec = {"experiment": "main", "dataset": "mvtec", "class": "bottle", "head": "fastflow",
                    "coupling": coupling, "seed": seed, "image_size": 256, "epochs": 100, "backbone": None}
            jitter = 0.1 * (seed - 1)
            rows.append({"spec": spec, "info": {"weights": weights},
                         "metrics": {"image_auroc": min(img - offset + jitter, 100.0) / 100,
                                     "pixel_auroc": min(pix - offset + jitter, 100.0) / 100}})
    return rows


def test_image_tables_one_class_is_not_a_table():
    """A table over 15 (or 12) classes is not judged on one class: "not run here", saying what is missing
    (every verdict of the image rules is tested on complete constructed sweeps in tests/test_image_claims.py)."""
    write_runs("07_image_benchmarks", "quick", image_rows("imagenet", offset=0.0))
    f = check("Table 1: MVTec AD")
    assert f.verdict == claims.NOT_RUN and "incomplete sweep" in f.why and f.detail is not None
    assert check("Table 1: VisA").verdict == claims.NOT_RUN


def test_image_tables_random_backbone_not_run():
    write_runs("07_image_benchmarks", "quick", image_rows("random-0123456789", offset=0.0))
    f = check("Table 1: MVTec AD")
    assert f.verdict == claims.NOT_RUN and "not ImageNet" in f.why and f.detail is not None


# --------------------------------------------------------------------------
# Eq. 6, the report and the verdict paragraph
# --------------------------------------------------------------------------
def test_eq6_check_holds_and_a_broken_identity_is_caught():
    table = claims.eq6_check(dim=3, n=300, blocks=2, hidden=8, seed=0)
    gap = (table["NLL - KL"] - table["data entropy E[-ln p_X]"]).abs().max()
    assert gap < 1e-8 and table["KL (latent space)"].max() - table["KL (latent space)"].min() > 0.1
    eq6 = by_key("Eq. 6")
    assert claims.evaluate(eq6, claims.Source(eq6=table)).verdict == claims.REPRODUCED
    broken = table.assign(**{"NLL - KL": table["NLL - KL"] + [0.0, 0.3]})  # a flow-dependent "constant"
    assert claims.evaluate(eq6, claims.Source(eq6=broken)).verdict == claims.PARTLY


def test_report_counts_and_verdict_text():
    write_runs("06_vae_usflow", "quick", vae_rows(usf_better=True, nonusf_failures=1))
    cfg = claims.settings("quick")
    table, findings = claims.report(cfg, eq6=claims.eq6_check(dim=3, n=300, blocks=2, hidden=8))
    n = claims.counts(table)
    assert n.loc["all"].sum() == len(claims.CLAIMS) == len(table) == len(findings)
    assert set(table["verdict"]) <= set(claims.VERDICTS) and not any(f.error for f in findings.values())
    text = claims.verdict_text(table)
    assert f"{n.loc['all', claims.REPRODUCED]} reproduced" in text and "quick profile" in text
    assert "chapter 06 (" in text and "The results read here ran on cpu: test (chapter 06)." in text
    assert not table["conditions (ours)"].str.contains("cpu: test").any()  # the devices are said once
    saved = claims.save(table, cfg)["this report"]
    assert saved["profile"].startswith("quick") and saved["wall_time_s"] >= 0  # the report's own wall time


def test_claims_quote_the_paper_verbatim():
    if not PAPER_TEXT.exists():
        pytest.skip(f"the paper's text is not at {PAPER_TEXT}")
    squash = lambda t: re.sub(r"\s+", " ", t)  # noqa: E731
    paper = squash(PAPER_TEXT.read_text())
    missing = [c.key for c in claims.CLAIMS if squash(c.says) not in paper]
    assert not missing, f"quotes not found verbatim in the paper: {missing}"
    keys = [c.key for c in claims.CLAIMS]
    assert len(keys) == len(set(keys)) and {c.topic for c in claims.CLAIMS} <= set(claims.TOPICS)


def test_quotes_with_inline_tex_show_as_plain_text_in_the_report_tables():
    quote = next(c.says for c in claims.CLAIMS if c.key.startswith("App. B.2: sigma0"))
    assert claims.plain_math(quote) == "with σ₀ = σ/(chw) on each u_i := U_ii"
    assert claims.plain_math(1.5) == 1.5 and claims.plain_math("no maths") == "no maths"


def test_a_failed_oneflow_run_is_a_failed_usf_run():
    """OneFlow's model is a USFlow (coupling additive_lu): App. D's count of failed USF runs includes it."""
    write_runs("05_tabular_benchmark", "full", [
        {"spec": {"dataset": "d", "method": m, "seed": 1}, "metrics": {"auroc": 0.9}, "ok": m != "OneFlow"}
        for m in ("USFlow", "NonUSFlow", "OneFlow", "DOHSC")])
    found = check("App. D: no USF run fails")
    assert found.verdict == claims.NOT_REPRODUCED and found.direction == claims.CONTRADICTED
    assert found.ours == "1 of 2 USF runs at the paper's settings failed (paper: 0)"


def test_devices_say_how_many_results_each_gave_when_there_are_several():
    one = claims.Loaded([], "full", [{"device": "cpu: A"}] * 2)
    two = claims.Loaded([], "full", [{"device": "cpu: A"}, {"device": "cpu: B"}, {"device": "cpu: B"}])
    assert one.devices == "cpu: A" and two.devices == "cpu: B (2 results), cpu: A (1 result)"


def collapse_summary(usf_bad: int) -> dict:
    """A chapter 03 summary with two USF and two NonUSF runs per sweep; ``usf_bad`` USF runs diverged in §3."""
    explode = [{"flow": c, "seed": s, "constant_det": c == "additive_lu",
                "status": "diverged" if (c == "affine_lu" and s == 0) or (c == "additive_lu" and s < usf_bad) else "ok"}
               for s in range(2) for c in ("affine_lu", "additive_lu")]
    sweep_rows = [{"coupling": c, "constant_det": c == "additive_lu", "sigma": "1", "seed": s, "status": "ok"}
                  for s in range(2) for c in ("affine_lu", "additive_lu")]
    settings = {"explode_dim": 8, "explode_lr": 0.07, "explode_epochs": 3, "sweep_dim": 8, "sweep_lr": 0.01,
                "sweep_epochs": 3}
    return {"explode": explode, "sigma_sweep": sweep_rows, "settings": settings}


def write_full_explode_runs(usf_diverged: int) -> list[Path]:
    """Every run of chapter 03's full §3 sweep as a record; ``usf_diverged`` USF runs diverged (and the first
    NonUSF run).  Returns the record paths."""
    from usfkit.experiments import collapse

    specs, settings = collapse.explode_sweep(profiles.of("03_collapse", "full"))
    rows, n_usf = [], 0
    for spec in specs:
        usf = spec["coupling"] == "additive_lu"
        bad = (usf and n_usf < usf_diverged) or (not usf and spec["seed"] == specs[0]["seed"])
        n_usf += usf
        trajectory = [{"epoch": e, "logdet_mean": -1.0 * e, "logdet_std": 0.0 if usf else 2.0, "logdet_absmax": 1.0 * e,
                       "nll": 100.0 - e if not bad or e < 2 else 1e9, "lu_cond": 10.0 + (1e8 if bad and e == 2 else 0)}
                      for e in range(3)]
        rows.append({"spec": spec, "settings": settings, "metrics": {"test_nll": 98.0},
                     "info": {"status": "diverged" if bad else "ok", "constant_det": usf, "final_nll": 98.0,
                              "trajectory": trajectory}})
    write_runs("03_collapse", "full", rows)
    return sweep.record_paths("03_collapse", "full", specs, settings)


def test_exploding_determinants_judge_the_papers_learning_rates_and_list_the_stress_test_apart():
    """§4.2's row is judged on chapter 03's runs at the paper's learning rates (§4b here); the §3 stress test is listed
    apart, read from the full records as soon as all of §3's runs are there (before that, the quick summary)."""
    summary = collapse_summary(usf_bad=0)
    summary["settings"]["sweep_lr"] = 1e-3  # §4b at the paper's learning rate, one NonUSF run diverged
    summary["sigma_sweep"][0]["status"] = "diverged"
    results.save("03_collapse", "summary", summary, "quick")
    paths = write_full_explode_runs(usf_diverged=1)
    paths[-1].unlink()  # one run still missing: the quick summary decides
    quick = check("§4.2: exploding")
    assert quick.verdict == claims.REPRODUCED and quick.basis.startswith("quick")
    assert quick.ours == ("at the paper's learning rates (lr 0.001; the paper trains its flows at 1e-4 (§5.1) and its "
                          "image baselines at up to 1e-3 (App. E)): USF 0 failed and 0 diverged of 2, NonUSF 0 failed "
                          "and 1 diverged of 2; apart, our stress test (d = 8, lr 0.07, 3 epochs, above the paper's, "
                          "not judged): USF 0 failed and 0 diverged of 2, NonUSF 0 failed and 1 diverged of 2")
    paths = write_full_explode_runs(usf_diverged=1)  # complete: the stress test from the full records
    full = check("§4.2: exploding")
    n = len(paths) // 2
    full_cfg = profiles.of("03_collapse", "full")
    assert full.verdict == claims.REPRODUCED  # the diverged USF run of the stress test is listed, not judged
    assert (f"our stress test (d = {full_cfg.explode_dim}, lr {full_cfg.explode_lr}, {full_cfg.explode_epochs} epochs, "
            f"above the paper's, not judged): USF 0 failed and 1 diverged of {n}") in full.ours
    assert "cpu: test" not in full.conditions  # the devices are said once for the whole report
    summary["settings"]["sweep_lr"] = 0.01  # no run at the paper's learning rates: nothing to judge
    results.save("03_collapse", "summary", summary, "quick")
    assert check("§4.2: exploding").verdict == claims.NOT_RUN


def test_app_d_counts_runs_at_the_papers_settings_once_and_lists_stress_tests_apart():
    """A USF run that diverged in chapter 03's stress test is judged under §4.2 only: App. D's count reads the
    chapters that rerun the paper's experiments (here chapter 05, no failure) and lists the stress test apart.
    One definition of a failed run: no valid result (NaN/inf), so a diverged run is not a failed one."""
    results.save("03_collapse", "summary", collapse_summary(usf_bad=1), "quick")
    assert check("App. D: no USF run fails").verdict == claims.NOT_RUN  # no chapter at the paper's settings yet
    write_runs(TABULAR, "full", [{"spec": {"dataset": "d", "method": m, "seed": 1}, "metrics": {"auroc": 0.9}}
                                 for m in ("USFlow", "NonUSFlow", "OneFlow")])
    found = check("App. D: no USF run fails")
    assert found.verdict == claims.REPRODUCED
    assert found.ours.startswith("0 of 2 USF runs at the paper's settings failed (paper: 0); apart, not counted, our "
                                 "stress tests (chapter 03 §3, lr 0.07, chapter 03 §4b, lr 0.01): 0 failed and 1 "
                                 "diverged of 4 USF runs")
    assert "chapter 03" not in found.basis
    counts = claims.usf_failures(claims.Source("quick"))
    assert (counts.loc[counts["chapter"] == "03_collapse", "settings"] == "our stress test").all()
    assert counts["runs"].sum() == 4 + 2  # every USF run once: chapter 03's two sweeps and chapter 05
    # chapter 03's quick runs at the paper's learning rates are quick runs: listed apart, never the paper's settings
    summary = collapse_summary(usf_bad=1)
    summary["settings"]["sweep_lr"] = 1e-3
    results.save("03_collapse", "summary", summary, "quick")
    found = check("App. D: no USF run fails")
    assert found.ours.startswith("0 of 2 USF runs at the paper's settings failed")
    assert "quick runs (chapter 03 §4b, lr 0.001): 0 failed of 2 USF runs" in found.ours


def test_baselines_claim_names_their_means_trained_for_every_epoch(tmp_path, monkeypatch):
    """With benchmarks/dohsc_epochs.py's file, the DOHSC/DO2HSC row says which mean is which: every epoch, under
    the shared rule, and USFlow's on the same runs."""
    import json

    from usfkit.experiments import tabular

    rows = tabular_rows(claims.MIN_DATASETS, usf_better=True)
    write_runs(TABULAR, "full", rows)
    longer = [{**r["spec"], "ok": True, "auroc": r["metrics"]["auroc"] + 0.05, "epochs_run": 10}
              for r in rows if r["spec"]["method"] in ("DOHSC", "DO2HSC")]
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks" / "dohsc_epochs.json").write_text(json.dumps(
        {"epochs": 10, "protocol": "adbench", "runs": longer}))  # write_runs' records allow 10 epochs
    monkeypatch.setattr(tabular, "project_root", lambda: tmp_path)
    mean = {m: 100 * np.mean([r["metrics"]["auroc"] for r in rows if r["spec"]["method"] == m])
            for m in ("DOHSC", "USFlow")}
    longer_mean = 100 * np.mean([r["auroc"] for r in longer if r["method"] == "DOHSC"])
    found = check("§5.1.2: DOHSC and DO2HSC trail all flows: vs USFlow, NonUSFlow, OneFlow")
    assert found.verdict == claims.REPRODUCED
    assert (f"; trained for every epoch instead of the shared early stop (chapter 05, seed 1): "
            f"DOHSC {longer_mean:.1f} (under the rule {mean['DOHSC']:.1f}; USFlow {mean['USFlow']:.1f}) on the "
            f"same {claims.MIN_DATASETS} runs, DO2HSC ") in found.ours


# --------------------------------------------------------------------------
# the page's top: links, counts with directions, the summary and the headline answers
# --------------------------------------------------------------------------
def test_every_row_links_to_a_heading_its_chapter_has():
    for c in claims.CLAIMS:
        link = claims.claim_link(c)
        page, _, anchor = link.partition("#")
        chapter = page.removesuffix(".html") or claims.CHAPTER
        assert page == "" or (page.endswith(".html") and "/" not in page), link  # relative, as the book's pages
        if anchor:
            assert anchor in {claims.anchor(h) for h in claims.chapter_headings(chapter)}, (c.key, link)
    assert claims.anchor("At the paper's settings") == "at-the-paper-s-settings"
    assert claims.anchor("3 · Exploding determinants of NonUSFlows") == "exploding-determinants-of-nonusflows"


def test_section_link_prefers_the_papers_settings_section(monkeypatch):
    headings = ("Intro", "At the paper's settings", "Figure 3a")
    monkeypatch.setattr(claims.render, "chapter_headings", lambda ch: headings)  # section_link reads render's
    assert claims.section_link("05_x", "Figure 3a") == "05_x.html#at-the-paper-s-settings"
    monkeypatch.setattr(claims.render, "chapter_headings", lambda ch: ("Intro", "Figure 3a"))
    assert claims.section_link("05_x", "Figure 3a") == "05_x.html#figure-3a"
    assert claims.section_link("05_x", "No such heading") == "05_x.html"


def report_rows(**rows: dict) -> pd.DataFrame:
    """A constructed report table: one row per keyword (the claim's key), with the report's columns."""
    base = {"topic": "tabular", "label": "", "ours": "", "why": "", "direction": "", "link": "05_x.html#a",
            "effect": np.nan, "low": np.nan, "high": np.nan, "unit": "", "p": np.nan, "n": 0, "n of": "",
            "chapter": "05_x", "read from": "full"}
    return pd.DataFrame([{**base, "claim": k, "label": k, **v} for k, v in rows.items()])


def test_counts_split_not_reproduced_by_direction_and_the_summary_gives_every_number():
    table = report_rows(
        a={"verdict": claims.REPRODUCED, "effect": 0.31, "low": 0.04, "high": 1.18, "unit": claims.PP, "p": 0.014,
           "n": 43, "n of": "datasets", "effect is": "median per-dataset difference",
           f"verdict {claims.ALT}": claims.REPRODUCED, f"direction {claims.ALT}": "",
           f"effect {claims.ALT}": 1.28, f"low {claims.ALT}": 0.1, f"high {claims.ALT}": 1.7, f"unit {claims.ALT}": claims.PP,
           f"p {claims.ALT}": 0.0018, f"n {claims.ALT}": 43, f"n of {claims.ALT}": "datasets"},
        b={"verdict": claims.NOT_REPRODUCED, "direction": claims.USF_FAVOUR, "effect": -2.52, "low": -10.2, "high": 1.1,
           "unit": claims.PP, "n": 43, "n of": "datasets"},
        c={"verdict": claims.NOT_REPRODUCED, "direction": claims.CONTRADICTED, "ours": "1 of 9 USF runs failed",
           "effect": 0.0, "unit": claims.HELD, "topic": "vae"},
        d={"verdict": claims.NOT_RUN, "why": "rests on 15 datasets", "link": ""})
    n = claims.counts(table)
    assert n.loc["all"].sum() == 4
    assert n.loc["all", f"{claims.NOT_REPRODUCED}: {claims.USF_FAVOUR}"] == 1
    assert n.loc["vae", f"{claims.NOT_REPRODUCED}: {claims.CONTRADICTED}"] == 1
    assert claims.counts_shown(table).loc["all", (claims.NOT_REPRODUCED, claims.NOT_SUPPORTED)] == 0
    text = claims.summary_text(table)
    assert "- [a](05_x.html#a): median per-dataset difference +0.31 pp [+0.04, +1.18], p = 0.014, n = 43 datasets" in text
    assert "*without the leak*: reproduced, effect +1.28 pp [+0.10, +1.70], p = 0.0018, n = 43 datasets" in text
    assert "**not reproduced (differs in USF's favour)** (1)" in text and "-2.52 pp [-10.20, +1.10]" in text
    assert "1 of 9 USF runs failed (claim not met)" in text and "- d: rests on 15 datasets" in text
    assert "(fails)" not in text and "(holds)" not in text
    totals = claims.verdict_text(table)
    assert "**1 reproduced, 0 partly and 2 not reproduced** (1 contradicted, 0 not supported, 1 differs in USF's favour)" in totals


def test_headline_answers_are_computed_from_the_rows():
    keys = {"Eq. 5: NLL = SVDD term - ln psi_det": {"verdict": claims.REPRODUCED, "ours": "float32: 2.5e-07",
                                                    "effect": 100.0, "unit": claims.HELD, "n": 2, "n of": "statements"},
            PAIR: {"verdict": claims.REPRODUCED, "effect": 0.31, "low": 0.04, "high": 1.18, "unit": claims.PP,
                   "p": 0.014, "n": 43, "n of": "datasets", "effect is": "median per-dataset difference"},
            VAE_PAIR: {"verdict": claims.NOT_RUN, "why": "rests on n = 13 datasets (chapter 05 compares ...)"},
            "Figure 11: VAE-USFlow above VAE-NonUSFlow": {
                "verdict": claims.NOT_REPRODUCED, "direction": claims.NOT_SUPPORTED, "effect": -0.06, "low": -0.39,
                "high": 0.77, "unit": claims.PP, "p": 0.76, "n": 15, "n of": "classes",
                "effect is": "median per-class difference", "setup": "a substitute setup: ResNet-18 embeddings"},
            MEAN: {"verdict": claims.REPRODUCED, "effect": 89.31, "low": 84.97, "high": 91.21, "unit": claims.RANGE,
                   "reference": 85.61, "n": 43, "n of": "datasets"},
            "Table 1: MVTec AD": {"verdict": claims.NOT_RUN, "why": "no run records of chapter 07", "topic": "image"}}
    text = claims.headline_text(report_rows(**keys))
    lines = text.split("\n")
    assert len(lines) == 9 and all(line.startswith("- **") for line in lines)  # one line per headline claim
    assert "*reproduced*: 2 of 2 statements met" in lines[0]
    assert ("USFlow over NonUSFlow:** *reproduced*: median per-dataset difference +0.31 pp [+0.04, +1.18], p = 0.014, "
            "n = 43 datasets") in text
    assert "(on a substitute setup: ResNet-18 embeddings): *not reproduced (not supported)*: median per-class" in text
    assert "tabular benchmark:** *not run here*: rests on n = 13 datasets" in text and "compares ..." not in text
    assert "the paper's 85.61 % against our range 84.97–91.21 % for the 47-set mean" in text
    assert "none of the 1 image claims" in text and "no GPU" in text
    assert "no such row" in text  # rows absent from the table are said to be absent, not invented


def test_quick_results_and_devices_are_said_once_for_the_page():
    table = report_rows(a={"verdict": claims.REPRODUCED, "quick from": "05_tabular_benchmark"},
                        b={"verdict": claims.REPRODUCED, "quick from": "07_image_benchmarks"},
                        c={"verdict": claims.NOT_RUN, "why": "x", "quick from": "07_image_benchmarks"},
                        d={"verdict": claims.NOT_RUN, "why": "x", "quick from": "07_image_benchmarks"},
                        e={"verdict": claims.REPRODUCED, "quick from": ""})
    text = claims.quick_text(table)
    assert "chapter 05 (in a)" in text and "chapter 07 (3 rows)" in text and "no count at the paper's settings" in text
    table.attrs["devices"] = {("05_tabular_benchmark", "full"): ["cpu: A", "cpu: B"], ("06_vae_usflow", "full"): ["cpu: A"]}
    assert claims.devices_text(table) == "The results read here ran on cpu: A (chapters 05, 06); cpu: B (chapter 05)."
    assert claims.quick_text(report_rows(a={"verdict": claims.REPRODUCED, "quick from": ""})) == ""


def test_effect_text_says_which_statistic_and_the_range_rule_shows_the_papers_value():
    row = {"unit": claims.PP, "effect": -2.52, "low": -10.24, "high": 1.08, "p": np.nan, "n": 43, "n of": "datasets",
           "effect is": "OneFlow's median − USFlow's", "by": "point rule"}
    assert claims.effect_text(row) == ("OneFlow's median − USFlow's -2.52 pp [-10.24, +1.08] (point rule; the interval includes 0), "
                                       "n = 43 datasets")
    row = {"unit": claims.RANGE, "effect": 89.31, "low": 84.97, "high": 91.21, "reference": 85.61, "n": 43,
           "n of": "datasets"}
    assert "ours − paper" not in claims.effect_text(row)
    assert claims.effect_text({"unit": claims.HELD, "effect": 0.0, "n": 0}) == claims.NOT_MET


def test_pair_counts_use_chapter_05s_tie():
    """Wins, ties and losses by chapter 05's margin (claims.TIE), the same counts as chapter 05's."""
    rows = []
    for i, gap in enumerate([0.002, -0.003, 0.02, 0.03, -0.01, 0.004, 0.05]):  # AUC-ROC: 3 ties, 3 wins, 1 loss
        rows += [{"dataset": f"{i + 1}_d", "method": "USFlow", "seed": 1, "ok": True, "auroc": 0.8 + gap},
                 {"dataset": f"{i + 1}_d", "method": "NonUSFlow", "seed": 1, "ok": True, "auroc": 0.8}]
    _, ours, effect = claims.pair_judge("USFlow", "NonUSFlow")(pd.DataFrame(rows))
    assert claims.TIE == profiles.PROFILES[TABULAR]["full"]["tie"]
    assert "USFlow wins 3, ties 3, loses 1 of 7 datasets (a tie: within 0.5 pp)" in ours
    assert effect.what == "median per-dataset difference" and effect.n == 7


def test_detail_view_names_in_words_and_no_bare_index_or_nan():
    detail = pd.DataFrame({"d": [5, 10], "rel_error": [0.001, np.nan], "data entropy E[-ln p_X]": [1.0, 2.0],
                           "rho": ["0.9", "nan"]})
    html = claims.detail_view(detail).to_html()
    assert "relative error" in html and "rel_error" not in html and "p_X" in html and "nan" not in html and "–" in html
    assert "row_heading" not in html  # no bare 0, 1 index
    wide = pd.DataFrame(np.ones((2, 9)), columns=[f"c{i}" for i in range(9)])
    assert claims.detail_view(wide).data.shape == (9, 2)  # transposed: within the text column
    cols = pd.MultiIndex.from_tuples([(a, c, w) for a in ("fastflow", "uflow") for c in ("affine", "additive_lu")
                                      for w in ("paper", "ours")])
    paper = pd.DataFrame([["90.0 ± 1.0", "–"] * 4], columns=cols, index=pd.Index(["bottle"], name="class"))
    view = claims.detail_view(paper).data
    assert list(view.columns) == [("affine", "paper"), ("additive + LU", "paper")]  # empty "ours" columns dropped
    assert list(view.index) == [("bottle", "FastFlow"), ("bottle", "U-Flow")]  # the architecture in the rows


def test_readable_rounds_floats_to_significant_digits_only():
    detail = pd.DataFrame({"a": [1.0025170, 7.629395e-06, 0.0208333], "b": ["x", "y", "z"]})
    html = claims.readable(detail).to_html()
    assert "1.003" in html and "7.63e-06" in html and "0.0208<" in html and "1.002517" not in html and ">x<" in html


def test_tabular_table_shows_both_protocols_side_by_side_with_directions():
    table = report_rows(a={"verdict": claims.NOT_REPRODUCED, "direction": claims.USF_FAVOUR, "ours": "median 95.4",
                           "where": "§5.1.2", "paper": "USFlow below", f"verdict {claims.ALT}": claims.REPRODUCED,
                           f"direction {claims.ALT}": "", f"ours {claims.ALT}": "median 90.1"})
    view = claims.styled(table, "tabular", claims.TABULAR_COLUMNS)
    assert list(view.data.columns) == claims.TABULAR_COLUMNS
    assert view.data.loc["a", "verdict"] == "not reproduced (differs in USF's favour)"
    assert view.data.loc["a", claims.ALT] == "reproduced, median 90.1"
    assert len(claims.TABULAR_COLUMNS) <= 5 and len(claims.TABULAR_RULE_COLUMNS) <= 3


def test_the_aggregate_headline_says_when_the_verdict_rests_on_the_widening():
    """85.61 outside the range under ADBench's protocol before widening: the headline must say so, not only
    'reproduced'."""
    def finding(low, high, wide_low, wide_high):
        detail = pd.DataFrame({"x": [0]})
        detail.attrs = {"low": low, "high": high, "wide low": wide_low, "wide high": wide_high, "seed sd": 0.5,
                        "datasets": 43, "missing": 4}
        return claims.Finding(claims.REPRODUCED, ours="x", detail=detail)

    f = finding(85.96, 90.22, 84.97, 91.21)
    f.alt = finding(83.18, 87.44, 82.47, 88.14)
    row = pd.Series({"verdict": claims.REPRODUCED, "direction": None})
    text = claims.render._aggregate_headline(row, f)
    assert "85.96–90.22 %" in text and "84.97–91.21" in text and "83.18–87.44 %" in text
    assert "within the range before widening only without the leak" in text
    assert claims.render._aggregate_headline(None, f) == ""


def test_a_rank_rule_row_says_when_its_interval_includes_zero():
    row = {"unit": claims.PP, "effect": 0.48, "low": -2.44, "high": 1.35, "p": float("nan"), "n": 43,
           "n of": "datasets", "effect is": "margin", "by": "rank rule"}
    assert "(rank rule; the interval includes 0)" in claims.effect_text(row)
    assert "(rank rule)" in claims.effect_text({**row, "low": 0.1}) and "includes" not in claims.effect_text({**row, "low": 0.1})
