"""App. D's failed runs over every chapter (topic "failures"): "no such instabilities" for the USFlows, counted
once over every saved run of a uniformly scaling flow (:func:`usf_failures`), App. D's failed run being
:data:`~.core.FAILED_RUN`."""
from __future__ import annotations

import pandas as pd

from .core import Finding, NotRun, Source, claim
from ...models import coupling_of, is_usf
from .rules import count_rule
from .theory import collapse_rows, stress_test

__all__ = ["QUICK_RUNS", "usf_failures", "usf_run"]


QUICK_RUNS = "quick runs"  # usf_failures' settings of a group read from the quick profile: not the paper's


def usf_run(row: dict) -> bool:
    """Whether a saved run (a summary's row or a run's spec) is a uniformly scaling flow's: the ``constant_det``
    it recorded, else whether its coupling (:func:`usfkit.models.coupling_of`: the spec's, or its registered
    method's, so OneFlow's USFlow counts) is additive."""
    return bool(row["constant_det"]) if "constant_det" in row else is_usf(coupling_of(row))


def usf_failures(src: Source) -> pd.DataFrame:
    """The runs of uniformly scaling flows from every saved record, per chapter (chapter 03: per sweep), with
    App. D's failed runs (:data:`~.core.FAILED_RUN`) and chapter 03's diverged ones: one row per group (runs, failed,
    diverged, profile, and whether it ran at the paper's settings or is our stress test: chapter 03's sweeps
    at learning rates above the paper's, :func:`~.theory.stress_test`).  Each run is counted once."""
    rows = []

    def add(chapter: str, part: str, profile: str, statuses: list[str], stress: bool = False) -> None:
        rows.append({"chapter": chapter, "part": part, "runs": len(statuses), "failed": statuses.count("failed"),
                     "diverged": statuses.count("diverged"), "profile": profile,
                     "settings": "our stress test" if stress else "paper's" if profile == "full" else QUICK_RUNS})

    for part, name in (("explode", "§3"), ("sigma_sweep", "§4b")):  # each sweep from where it is complete
        try:
            loaded, _, lr = collapse_rows(src, part)
        except NotRun:
            continue
        add("03_collapse", f"{name}, lr {lr:g}", loaded.profile, [r["status"] for r in loaded.data if usf_run(r)],
            stress_test(lr))
    try:
        s = src.summary("04_alignment")
        add("04_alignment", "", s.profile, ["ok" if t["ok"] else "failed" for t in s.data["trials"] if usf_run(t)])
    except NotRun:
        pass
    for chapter in ("05_tabular_benchmark", "06_vae_usflow", "07_image_benchmarks"):
        try:
            loaded = src.runs(chapter)
        except NotRun:
            continue
        add(chapter, "", loaded.profile, ["ok" if r.ok else "failed" for r in loaded.data if usf_run(r.spec)])
    return pd.DataFrame(rows, columns=["chapter", "part", "runs", "failed", "diverged", "profile", "settings"])


@claim("App. D: no USF run fails anywhere", "failures", "App. D",
       "we observed no such instabilities when working with the USFlows architecture",
       "0 failed USF runs",
       "count of failed runs (App. D's: FAILED_RUN) of uniformly scaling flows (OneFlow's USFlow included) over "
       "every saved full-profile record at the paper's settings (chapters 04-07, and chapter 03's runs at its "
       "learning rates) equals 0; quick runs and our stress tests (chapter 03 above the paper's learning rates) are "
       "listed apart, not counted", "03-07",
       label="no USF run fails (paper's settings)")
def _no_usf_failure(src: Source) -> Finding:
    counts = usf_failures(src)
    paper = counts[counts["settings"] == "paper's"]
    if paper.empty:
        raise NotRun("no saved full-profile results at the paper's settings (chapters 03-07)")
    failed, total = int(paper["failed"].sum()), int(paper["runs"].sum())
    ours = f"{failed} of {total} USF runs at the paper's settings failed (paper: 0)"
    for kind, what in (("our stress test", "our stress tests"), (QUICK_RUNS, "quick runs")):
        apart = counts[counts["settings"] == kind]
        if len(apart):
            where = ", ".join(f"chapter {r['chapter'][:2]}{' ' + r['part'] if r['part'] else ''}"
                              for _, r in apart.iterrows())
            ours += (f"; apart, not counted, {what} ({where}): {int(apart['failed'].sum())} failed"
                     + (f" and {int(apart['diverged'].sum())} diverged" if apart["diverged"].sum() else "")
                     + f" of {int(apart['runs'].sum())} USF runs")
    judged = count_rule(failed, 0)
    basis = "; ".join(f"chapter {r['chapter'][:2]}{' ' + r['part'] if r['part'] else ''}: {r['runs']} USF runs "
                      f"({r['profile']})" for _, r in paper.iterrows())
    detail = counts.assign(chapter=counts["chapter"].str[:2], part=counts["part"].replace("", "–"))
    return Finding(judged.verdict, ours, judged.why, basis, "each chapter's own settings, see its rows",
                   detail.set_index(["chapter", "part"]), direction=judged.direction)
