"""The report's vocabulary and its registry: verdicts and directions, what a rule says (:class:`Judgement`), what a
check finds (:class:`Finding`, with its :class:`Effect`), where the results are read (:class:`Source`,
:class:`Loaded`) and the registry :data:`CLAIMS` that :func:`claim` fills.

A :class:`Claim` holds what the paper says (quoted briefly, with its place), the paper's number where it gives
one, the tolerance rule (stated before any result is read) and a function that reads our saved results and
returns a :class:`Finding`.  Verdicts (:data:`VERDICTS`): ``"reproduced"``, ``"partly"``, ``"not reproduced"``
(always with a direction, :data:`DIRECTIONS`) and ``"not run here"`` (always with the reason).

Which results are read (:class:`Source`): with ``profile="quick"``, each chapter's full-profile results
(``results/full``, committed) when they exist, else its quick ones, labelled "quick"; with ``profile="full"``,
the full ones only.
"""
from __future__ import annotations

import collections
import math
from dataclasses import dataclass, field
from typing import Any, Callable, NamedTuple

import pandas as pd

from ... import results, sweep

__all__ = ["CHAPTER", "REPRODUCED", "PARTLY", "NOT_REPRODUCED", "NOT_RUN", "VERDICTS", "CONTRADICTED",
           "NOT_SUPPORTED", "USF_FAVOUR", "DIRECTIONS", "PP", "RANGE", "HELD", "FROM_PAPER", "FAILED_RUN",
           "Judgement", "Effect", "Finding", "NotRun", "Loaded", "Source", "Claim", "CLAIMS", "claim", "finding"]


CHAPTER = "08_reproduction_report"
REPRODUCED, PARTLY, NOT_REPRODUCED, NOT_RUN = "reproduced", "partly", "not reproduced", "not run here"
VERDICTS = (REPRODUCED, PARTLY, NOT_REPRODUCED, NOT_RUN)

#: Beside every "not reproduced": which way our result departs from the claim.
CONTRADICTED, NOT_SUPPORTED, USF_FAVOUR = "contradicted", "not supported", "differs in USF's favour"
DIRECTIONS = (CONTRADICTED, NOT_SUPPORTED, USF_FAVOUR)
PP, RANGE, HELD = "pp", "% (range of the 47-set mean)", "% of statements that hold"  # the units of an Effect
FROM_PAPER = RANGE  # the older name


#: App. D's failed run, the one definition the report counts in every chapter: the run gave no valid result
#: because its training loss or its test scores became NaN/inf (its record's ``ok`` is false).  A run whose
#: losses stayed finite but ended worse than the untrained flow (chapter 03's "diverged") is counted apart.
FAILED_RUN = "no valid result: the training loss or the test scores became NaN/inf"


class Judgement(NamedTuple):
    """What a rule says: the verdict, how the rule applied, and (for "not reproduced") the direction."""
    verdict: str
    why: str
    direction: str = ""


@dataclass(frozen=True)
class Effect:
    """A claim's effect as the report's figure draws it: ``value`` with a 95% interval ``low``-``high`` in
    ``unit`` — :data:`PP` (AUC-ROC or std percentage points, signed so that > 0 is the direction the paper
    claims), :data:`RANGE` (our mean with the range the 47-set mean can take, and the paper's value as
    ``reference``) or :data:`HELD` (the share of a claim's statements that hold) — with the test's ``p`` (NaN:
    no test) and ``n`` pairs/datasets/runs of ``of``.  ``what`` says which statistic ``value`` is (a median of
    per-dataset differences, a difference of means, ...); ``by`` names the rule when the verdict follows a rank
    or a point value rather than this effect's interval (the figure marks such rows)."""
    value: float
    low: float = math.nan
    high: float = math.nan
    unit: str = PP
    p: float = math.nan
    n: int = 0
    of: str = "datasets"
    what: str = ""
    reference: float = math.nan
    by: str = ""  # "rank rule" / "point rule": the verdict follows a rank or a point value, not this interval


@dataclass
class Finding:
    """What one claim's check found: ``verdict`` (with its ``direction`` when not reproduced), ``ours``
    (our number, as text), ``why`` (how the rule applied, or why it could not be run), ``basis`` (which
    results: profile, how many runs/datasets), ``conditions`` (what differs from the paper's setting), an
    optional ``detail`` table, the ``effect`` the figure draws, and ``alt``: the same claim judged on the
    tabular benchmark's other protocol (without the resampling leak)."""
    verdict: str
    ours: str = ""
    why: str = ""
    basis: str = ""
    conditions: str = ""
    detail: pd.DataFrame | None = None
    error: bool = False  # the check itself raised: a bug or results of another usfkit version
    direction: str = ""
    effect: Effect | None = None
    alt: "Finding | None" = None
    setup: str = ""  # when our setup is a substitute for the paper's: which, in a phrase (the headline says it)

    def __post_init__(self):
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")
        if self.verdict == NOT_RUN and not self.why:
            raise ValueError("a claim that is not run here must say why")
        if (self.verdict == NOT_REPRODUCED) != (self.direction in DIRECTIONS):
            raise ValueError(f"a 'not reproduced' verdict, and only that one, has a direction of {DIRECTIONS}, "
                             f"got {self.verdict!r} with {self.direction!r}")


class NotRun(Exception):
    """Raised by a check that cannot judge its claim; carries the reason and what was found anyway."""

    def __init__(self, why: str, **found: Any):
        super().__init__(why)
        self.why, self.found = why, found


@dataclass
class Loaded:
    data: Any  # a summary's "data" or a list of run records
    profile: str  # the profile the results come from
    provenance: list[dict]  # one provenance per summary / record

    @property
    def devices(self) -> str:
        """The device the results ran on; with several (or one machine described two ways by usfkit versions),
        each with how many results it gave."""
        n = collections.Counter(p.get("device", "?") for p in self.provenance)
        if len(n) == 1:
            return next(iter(n))
        return ", ".join(f"{d} ({k} result{'s' * (k != 1)})" for d, k in n.most_common())


@dataclass
class Source:
    """Where the report reads results: a chapter's full-profile results when present, else (unless
    ``profile == "full"``) its quick ones.  Raises :class:`NotRun` when there are none."""
    profile: str = "quick"
    eq6: pd.DataFrame | None = None  # a precomputed eq6_check() (else the Eq. 6 claim computes it)
    _cache: dict = field(default_factory=dict)
    #: every (chapter, profile) read, with its devices: the report states the devices once, and which chapters
    #: it read from the quick profile (``reads`` since the last ``reads.clear()``: the claim being checked)
    devices: dict = field(default_factory=dict)
    reads: list = field(default_factory=list)

    def _seen(self, chapter: str, loaded: Loaded) -> Loaded:
        self.devices[(chapter, loaded.profile)] = sorted({p.get("device", "?") for p in loaded.provenance})
        self.reads.append((chapter, loaded.profile))
        return loaded

    def _profiles(self) -> tuple[str, ...]:
        return ("full",) if self.profile == "full" else ("full", "quick")

    def summary(self, chapter: str, name: str = "summary") -> Loaded:
        for p in self._profiles():
            rec = results.load(chapter, name, p)
            if rec is not None:
                return self._seen(chapter, Loaded(rec["data"], p, [rec["provenance"]]))
        raise NotRun(f"no saved {name!r} of chapter {chapter} ({' or '.join(self._profiles())} profile): "
                     "run the chapter")

    def runs(self, chapter: str) -> Loaded:
        if chapter not in self._cache:
            self._cache[chapter] = None
            for p in self._profiles():
                recs = sweep.load_runs(chapter, p)
                if recs:
                    self._cache[chapter] = Loaded(recs, p, [r.provenance for r in recs])
                    break
        if self._cache[chapter] is None:
            raise NotRun(f"no run records of chapter {chapter} ({' or '.join(self._profiles())} profile): "
                         "run the chapter")
        return self._seen(chapter, self._cache[chapter])


@dataclass(frozen=True)
class Claim:
    key: str  # short name shown in the report
    topic: str  # "theory", "synthetic", "tabular", "vae", "failures" or "image" (TOPICS)
    where: str  # section / equation / figure / table
    says: str  # the paper's words, quoted briefly (verbatim)
    paper: str  # the paper's number, or what it shows
    rule: str  # the tolerance rule, stated before any result is read
    chapter: str  # the chapter whose results the check reads ("08" for checks computed here)
    check: Callable[[Source], Finding]
    section: str = ""  # the heading of that chapter the row reads (the report links it; see section_link)
    label: str = ""  # a short name for the report's figure (default: the key)


CLAIMS: list[Claim] = []


def claim(key: str, topic: str, where: str, says: str, paper: str, rule: str, chapter: str, section: str = "",
          label: str = ""):
    """Register the decorated check as a claim of :data:`CLAIMS`."""
    def register(check: Callable[[Source], Finding]):
        if any(c.key == key for c in CLAIMS):
            raise ValueError(f"claim {key!r} registered twice")
        CLAIMS.append(Claim(key, topic, where, says, paper, rule, chapter, check, section, label))
        return check
    return register


def finding(judged: tuple, ours: str, loaded: Loaded | None = None, basis: str = "",
            conditions: str = "", detail: pd.DataFrame | None = None, effect: Effect | None = None) -> Finding:
    """A Finding from a rule's :class:`Judgement`; ``basis`` gets the profile of ``loaded`` added (the devices
    are stated once for the whole report: :func:`~.render.devices_text`)."""
    verdict, why, direction = (*judged, "")[:3]
    where = loaded.profile if loaded is not None else "computed here"
    return Finding(verdict, ours, why, f"{where}{'; ' + basis if basis else ''}", conditions, detail,
                   direction=direction, effect=effect)

