"""Chapter 01's Figure 1 on the 2-D moons, read back from saved records (``figure1_moons``): the
numbers and sentences the page states about a run, and how two runs (the committed full profile and a
live quick one) compare.  An AUROC's error bar is its test-sample standard error
(:func:`usfkit.metrics.auroc_se`: the part of the run-to-run spread that comes from drawing the test points).

* :func:`describe_full` — the full run's result as Markdown;
* :func:`compare_runs` — a second run against the full one: both AUROCs, their difference in standard
  errors, and the settings in which the runs differ.
"""
from __future__ import annotations

import math

from ..metrics import auroc_se

__all__ = ["SETTING_WORDS", "GAUSS_TOL", "OUTLIERS_MIN", "NORMALS_MAX", "figure1_parts", "describe_full",
           "describe_gaussian", "compare_runs", "key_table"]

#: the settings that make two runs of chapter 01 differ, in the words the comparison uses
SETTING_WORDS = {"n_train": "training points", "n_test": "normal test points", "n_outliers": "test outliers",
                 "noise": "moon noise", "blocks": "USFlow blocks", "hidden": "hidden units",
                 "layers": "conditioner layers", "lr": "USFlow learning rate", "epochs": "USFlow max. epochs",
                 "svdd_widths": "Deep SVDD widths"}


def _sizes(data: dict) -> tuple[int, int]:
    s = data["settings"]
    return s["n_outliers"], s["n_test"]


def _chi2_gap(data: dict) -> float:
    inside = data["inside_k_sigma"]
    expected, observed = inside["expected (chi-square, 2 dof)"], inside["observed (test normals)"]
    return max(abs(expected[k] - observed[k]) for k in expected)


#: the report's rule for Figure 1 (chapter 08, ``usfkit.experiments.claims``): the USFlow's latents count as
#: Gaussian when the share inside each of the 1/2/3-sigma circles is within this of the base's mass
GAUSS_TOL = 0.05
#: ... and a model separates the outliers when it flags more than this share of them ...
OUTLIERS_MIN = 0.5
#: ... while flagging at most this share of the test normals
NORMALS_MAX = 0.05


def figure1_parts(data: dict) -> dict[str, bool]:
    """The three parts of the report's Figure 1 rule on a ``figure1_moons`` record (``data``): each model
    separates the outliers (flags more than :data:`OUTLIERS_MIN` of them and at most :data:`NORMALS_MAX` of the
    test normals), and the USFlow's latents are Gaussian (largest gap to the base's masses at most
    :data:`GAUSS_TOL`).  All hold: reproduced; some: partly; none: not reproduced."""
    flagged = data["flagged"]
    parts = {f"{m} separates the outliers": flagged["outliers flagged"][m] > OUTLIERS_MIN
             and flagged["test normals flagged"][m] <= NORMALS_MAX for m in ("Deep SVDD", "USFlow")}
    parts["the USFlow's latents are Gaussian"] = _chi2_gap(data) <= GAUSS_TOL
    return parts


def describe_full(data: dict) -> str:
    """The full run's Figure 1 result (``data``: the ``data`` of a saved ``figure1_moons`` record) as
    Markdown: both AUROCs with their test-sample standard errors, what each model flags at the 99 %
    threshold, the latent norm's AUROC beside the NLL's, then (:func:`describe_gaussian`) how closely the
    USFlow's latents follow the base, judged by the report's rule."""
    s, auc = data["settings"], data["auroc"]
    n_pos, n_neg = _sizes(data)
    se = {m: auroc_se(a, n_pos, n_neg) for m, a in auc.items()}
    flagged = data["flagged"]
    return (
        f"**At the full profile** ({s['n_train']:,} normal training points, noise {s['noise']:g}; a USFlow of "
        f"{s['blocks']} blocks with {s['layers']}-layer conditioners of {s['hidden']} units; a Deep SVDD of widths "
        f"{'-'.join(map(str, s['svdd_widths']))}), tested on {n_neg:,} normal points and {n_pos} uniform outliers: "
        f"the USFlow reaches an AUROC of **{100 * auc['USFlow']:.2f} %** (± {100 * se['USFlow']:.1f} pp standard "
        f"error from the test sample alone), Deep SVDD **{100 * auc['Deep SVDD']:.2f} %** "
        f"(± {100 * se['Deep SVDD']:.1f} pp), a difference of {100 * (auc['USFlow'] - auc['Deep SVDD']):.1f} pp. "
        f"With the threshold set so that 99 % of the training data counts as normal, both flag a similar share of "
        f"the test normals (Deep SVDD {100 * flagged['test normals flagged']['Deep SVDD']:.1f} %, USFlow "
        f"{100 * flagged['test normals flagged']['USFlow']:.1f} %), but the USFlow flags "
        f"{100 * flagged['outliers flagged']['USFlow']:.1f} % of the outliers against Deep SVDD's "
        f"{100 * flagged['outliers flagged']['Deep SVDD']:.1f} %. Ranked by its latent norm alone, the USFlow "
        f"has an AUROC of {100 * data['auroc_usf_latent_norm']:.2f} %, the same as by its NLL, as a constant "
        f"determinant implies (Eq. 4).\n\n" + describe_gaussian(data)
    )


def describe_gaussian(data: dict) -> str:
    """How closely a ``figure1_moons`` record's USFlow latents follow the base, judged by the report's rule
    (:func:`figure1_parts`), as Markdown: the shares inside the 1/2/3-sigma circles, the largest gap against
    the tolerance, which parts of the rule hold, and the verdict the rule gives."""
    inside = data["inside_k_sigma"]
    exp_, obs = inside["expected (chi-square, 2 dof)"], inside["observed (test normals)"]
    within = ", ".join(f"{100 * obs[k]:.1f} % inside {k} (expected {100 * exp_[k]:.1f} %)" for k in exp_)
    worst = max(exp_, key=lambda k: abs(exp_[k] - obs[k]))
    gap, parts = _chi2_gap(data), figure1_parts(data)
    held = [p for p, ok in parts.items() if ok]
    failed = [p for p, ok in parts.items() if not ok]
    verdict = "reproduced" if not failed else "partly reproduced" if held else "not reproduced"
    return (f"**Do the USFlow's latents follow its base 𝒩(c, ½ I)?** Of its normal test latents, {within}. The report (chapter 08) "
            f"calls them Gaussian when every share is within {100 * GAUSS_TOL:.0f} pp of the base's mass; the largest "
            f"gap here is **{100 * gap:.1f} pp** (at {worst}), so this part "
            f"{'holds' if gap <= GAUSS_TOL else '**fails**'}. With the other parts of its rule (each model flags more "
            f"than {100 * OUTLIERS_MIN:.0f} % of the outliers and at most {100 * NORMALS_MAX:.0f} % of the test "
            f"normals) the report judges Figure 1 **{verdict}**: "
            + "; ".join([f"holds: {p}" for p in held] + [f"fails: {p}" for p in failed])
            + f". The USFlow's density integrates to {data['usf_density_integral']:.4f} over the plane.")


def compare_runs(full: dict, this: dict, label: str = "this run") -> str:
    """``this`` run's USFlow and Deep SVDD AUROCs beside the ``full`` run's (both the ``data`` of a
    ``figure1_moons`` record) as Markdown: the differences in percentage points, measured in the combined
    test-sample standard error (:func:`~usfkit.metrics.auroc_se`), and the settings in which the two runs differ.  The
    spread over training seeds is not known (one seed per profile) and is said to be unknown."""
    parts = []
    for model in ("USFlow", "Deep SVDD"):
        a, b = this["auroc"][model], full["auroc"][model]
        se = math.hypot(auroc_se(a, *_sizes(this)), auroc_se(b, *_sizes(full)))
        z = (a - b) / se if se > 0 else math.inf
        verdict = "within" if abs(z) <= 2 else "outside"
        parts.append(f"{model} {100 * a:.2f} % here against {100 * b:.2f} % at the full profile, a difference of "
                     f"{100 * (a - b):+.2f} pp, {abs(z):.1f} combined standard errors of the two test samples "
                     f"({verdict} ±2)")
    def show(v) -> str:
        return "-".join(map(str, v)) if isinstance(v, (list, tuple)) else f"{v:g}" if isinstance(v, float) else str(v)

    differ = [f"{word} {show(this['settings'][k])} vs {show(full['settings'][k])}" for k, word in SETTING_WORDS.items()
              if k in this["settings"] and k in full["settings"] and this["settings"][k] != full["settings"][k]]
    return (f"**{label.capitalize()} against the full profile.** AUROC: {'; '.join(parts)}. The two runs differ "
            f"in {', '.join(differ) if differ else 'no recorded setting'}, and they are scored on different test "
            "draws: the outliers fall uniformly in the box, and how many of them land on the moons (where no "
            "detector can tell them apart) varies from draw to draw, which is what the standard error above "
            "measures. How much the AUROC moves from one training seed to the next is not known here (each "
            "profile trains one seed), so a difference within the test-sample error says the runs agree, "
            "not that either is better.")


def key_table(runs: dict[str, dict]):
    """The runs' key numbers side by side (``runs``: label -> the ``data`` of a ``figure1_moons`` record), one
    row per quantity, rounded for reading: AUROCs and shares in % with two and one decimals."""
    import pandas as pd

    def column(d: dict) -> dict:
        flagged = d["flagged"]
        return {"AUROC Deep SVDD (%)": f"{100 * d['auroc']['Deep SVDD']:.2f}",
                "AUROC USFlow (%)": f"{100 * d['auroc']['USFlow']:.2f}",
                "AUROC USFlow latent norm (%)": f"{100 * d['auroc_usf_latent_norm']:.2f}",
                "s.e. of the USFlow AUROC, test sample (pp)":
                    f"{100 * auroc_se(d['auroc']['USFlow'], *_sizes(d)):.1f}",
                "outliers flagged, Deep SVDD / USFlow (%)":
                    f"{100 * flagged['outliers flagged']['Deep SVDD']:.1f} / {100 * flagged['outliers flagged']['USFlow']:.1f}",
                "test normals flagged, Deep SVDD / USFlow (%)":
                    f"{100 * flagged['test normals flagged']['Deep SVDD']:.1f} / {100 * flagged['test normals flagged']['USFlow']:.1f}",
                "largest gap inside k sigma (pp)": f"{100 * _chi2_gap(d):.1f}",
                "training / test normals / outliers":
                    f"{d['settings']['n_train']} / {d['settings']['n_test']} / {d['settings']['n_outliers']}",
                "USFlow epochs": d["fits"]["usf"]["epochs"]}

    return pd.DataFrame({label: column(d) for label, d in runs.items()})
