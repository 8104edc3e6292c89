"""The report itself: chapter 08's settings, every claim of :data:`~.core.CLAIMS` evaluated against the saved
results into one table (one row per judged comparison), and the report saved with its provenance."""
from __future__ import annotations

import time

import pandas as pd

from ... import profiles, results
from .core import CHAPTER, CLAIMS, NOT_RUN, Claim, Finding, NotRun, Source
from .render import ALT, SHORT_LABELS, claim_link, counts, effect_columns
from .theory import eq6_check

__all__ = ["settings", "evaluate", "report", "save"]


def settings(profile: str = "quick"):
    """Chapter 08's settings (:func:`usfkit.profiles.resolve`; ``USFKIT_PROFILE`` overrides ``profile``), with
    the time they were made (``started``), from which :func:`save` records the report's wall time."""
    cfg = profiles.resolve(CHAPTER, profile)
    cfg.started = time.time()
    return cfg


def evaluate(claim_: Claim, src: Source) -> Finding:
    """The claim's finding; a check that cannot judge gives "not run here" with its reason, and one that
    raises anything else gives "not run here" marked ``error`` (the notebook asserts there is none)."""
    try:
        return claim_.check(src)
    except NotRun as err:
        found = err.found
        return Finding(NOT_RUN, found.get("ours", ""), err.why, found.get("basis", ""), found.get("conditions", ""),
                       found.get("detail"))
    except Exception as err:  # noqa: BLE001 - shown in the report and asserted against in the notebook
        return Finding(NOT_RUN, why=f"the check failed: {type(err).__name__}: {err}", error=True)


def report(cfg, eq6: pd.DataFrame | None = None) -> tuple[pd.DataFrame, dict[str, Finding]]:
    """Every claim of :data:`~.core.CLAIMS` checked against the results ``cfg.profile`` selects: one row per claim
    (one judged comparison), and the findings by claim key (for their detail tables).  A tabular row holds
    both protocols: its verdict under ADBench's protocol and, in the ``... without the leak`` columns, the
    leak-free one's.  ``eq6``: a precomputed :func:`~.theory.eq6_check`."""
    eq6 = eq6 if eq6 is not None else eq6_check(cfg.eq6_dim, cfg.eq6_samples, cfg.eq6_blocks, cfg.eq6_hidden, cfg.seed)
    src = Source(cfg.profile, eq6)
    findings, quick = {}, {}
    for c in CLAIMS:
        src.reads.clear()
        findings[c.key] = evaluate(c, src)
        quick[c.key] = ", ".join(sorted({ch for ch, p in src.reads if p != "full"}))
    rows = []
    for c, f in zip(CLAIMS, findings.values()):
        row = {"claim": c.key, "label": c.label or SHORT_LABELS.get(c.key, c.key), "topic": c.topic, "where": c.where,
               "the paper says": c.says, "paper": c.paper, "ours": f.ours, "rule": c.rule, "verdict": f.verdict,
               "direction": f.direction, "why": f.why, "read from": f.basis, "conditions (ours)": f.conditions,
               "chapter": c.chapter, "link": claim_link(c), "setup": f.setup, "quick from": quick[c.key],
               **effect_columns(f)}
        if f.alt is not None:
            row.update({f"{k} {ALT}": v for k, v in effect_columns(f.alt).items()})
            row.update({f"verdict {ALT}": f.alt.verdict, f"direction {ALT}": f.alt.direction, f"ours {ALT}": f.alt.ours,
                        f"why {ALT}": f.alt.why, f"read from {ALT}": f.alt.basis})
        rows.append(row)
    table = pd.DataFrame(rows)
    table.attrs["devices"] = dict(src.devices)
    return table, findings


def save(table: pd.DataFrame, cfg) -> pd.DataFrame:
    """Save the report (one record per claim) with provenance under ``results/<profile>/08_reproduction_report``;
    return the provenance as a one-column table."""
    records = table.astype(object).where(table.notna(), None).to_dict("records")
    results.save(CHAPTER, "report", {"claims": records, "counts": counts(table).to_dict("index")},
                 cfg.profile, seeds=[cfg.seed], started=getattr(cfg, "started", None))
    prov = pd.Series(results.load(CHAPTER, "report", cfg.profile)["provenance"])
    if prov.get("profile") == "quick":  # the page's own profile: it reads full-profile results wherever committed
        prov["profile"] = "quick (reads full-profile results where committed)"
    prov = prov.map(lambda v: ", ".join(map(str, v)) if isinstance(v, (list, tuple)) else v)  # no list reprs
    return prov.to_frame("this report")
