"""What every chapter does around its content: settings, thread policy, results with provenance,
the committed full-profile results, and the end of the run.

The cell after a chapter's ``parameters`` cell and its last cells read::

    chapter = book.start("04_alignment", profile, epochs=epochs)  # settings, threads, clock, figure style
    cfg = chapter.cfg
    ...
    chapter.save("summary", data, seeds=[cfg.seed])  # -> the provenance, as a table to show
    full = chapter.full_results("summary")           # the committed full-profile record, or None (said why)
    chapter.finish()                                 # marks the chapter complete, prints its wall time
"""
from __future__ import annotations

import collections
import math
import textwrap
import time
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pandas as pd
import torch

from . import profiles, results, sweep
from .plots import apply_style

__all__ = ["provenance_table", "Chapter", "wrap", "compact", "expect", "expectations", "describe_specs", "start"]


def provenance_table(record: dict[str, Any], label: str) -> pd.DataFrame:
    """A saved record's provenance (profile, seeds, device, wall time, versions, commit) as one column."""
    return pd.Series(record["provenance"]).to_frame(label)


@dataclass
class Chapter:
    """One run of a chapter: its resolved settings ``cfg`` and the time it started."""
    cfg: SimpleNamespace
    started: float = field(default_factory=time.time)
    seeds: list[int] | int | None = None  # the seeds of the last save, which finish() records too

    @property
    def name(self) -> str:
        return self.cfg.chapter

    def save(self, name: str, data: dict[str, Any], seeds: list[int] | int | None = None) -> pd.DataFrame:
        """Save ``data`` with provenance as ``<results>/<profile>/<chapter>/<name>.json``; return the provenance."""
        self.seeds = seeds
        results.save(self.name, name, data, self.cfg.profile, seeds=seeds, started=self.started)
        return provenance_table(results.load(self.name, name, self.cfg.profile), "this run")

    def full_results(self, name: str | None = None) -> dict[str, Any] | list[results.RunRecord] | None:
        """The committed full-profile record ``name`` (``None``: the run records of the chapter's sweep).

        ``None`` when this run is the full profile itself, or when nothing is committed; either is printed,
        the latter with the command that produces the results."""
        if self.cfg.profile == "full":
            print("This run is the full profile: its results are the ones above.")
            return None
        found = results.load(self.name, name, "full") if name else sweep.load_runs(self.name, "full")
        if not found and name:
            print(f"The full-profile {name} of this chapter is not committed yet: it is written when the whole "
                  f"chapter has run at the full profile (`usf-reproduce {self.name} --profile full`, to "
                  f"results/full/{self.name}/{name}.json); committed run records, if any, are listed above.")
            return None
        if not found:
            print(f"No full-profile results of this chapter are committed yet: run `usf-reproduce {self.name} "
                  f"--profile full`; they are written to results/full/{self.name}/.")
            return None
        if name:
            prov = found["provenance"]
            print(f"Committed full-profile results ({prov['device']}, {prov['wall_time_s']} s, "
                  f"commit {prov['git_commit']}, {prov['finished_at']}):")
        else:
            print(f"Committed full-profile results: {len(found)} runs, {sum(not r.ok for r in found)} failed")
        return found

    def full_runs(self, specs: list[dict], settings: dict[str, Any], what: str = "runs",
                  by: tuple[str, str] | None = None) -> list[results.RunRecord]:
        """The committed full-profile run records of ``specs`` (under the full profile's ``settings``), in
        order; prints how many are present and which are missing, so that no missing run goes unseen.
        ``by=(group, item)``, e.g. ``("seed", "dataset")``: the missing runs are listed per group as the items
        that miss runs (:func:`usfkit.sweep.describe_missing`), for sweeps too large for :func:`describe_specs`."""
        paths = sweep.record_paths(self.name, "full", specs, settings)
        found = [results.RunRecord.from_file(p) for p in paths if p.exists()]
        missing = [s for s, p in zip(specs, paths) if not p.exists()]
        status = collections.Counter(r.info["status"] for r in found if "status" in r.info)
        outcome = f" Outcomes: {', '.join(f'{n} {k}' for k, n in status.items())}." if status else ""
        print(wrap(f"Committed full-profile {what}: {len(found)} of {len(specs)} present, "
                    f"{sum(not r.ok for r in found)} of them failed runs (training broke off).{outcome}"))
        if missing and by:
            print(f"Missing ({len(missing)}):")
            for line in sweep.describe_missing(missing, specs, *by):
                print(wrap("- " + line))
        elif missing:
            print(wrap(f"Missing ({len(missing)}): {describe_specs(missing)}."))
        return found

    def finish(self) -> None:
        """Record that the chapter ran to its end (with the seeds of its last save) and print its wall time."""
        results.mark_complete(self.name, self.cfg.profile, seeds=self.seeds, started=self.started)
        print(f"chapter finished in {time.time() - self.started:.0f} s")


def wrap(text: str, initial_indent: str = "") -> str:
    """``text`` filled to the book's text column (74 characters), continuation lines indented, words and
    hyphenated names never broken: how every chapter prints a sentence.

    >>> print(wrap("The USFlow ranks the test points by the density it estimates, and so does the "
    ...            "NonUSFlow on this dataset."))
    The USFlow ranks the test points by the density it estimates, and so does
      the NonUSFlow on this dataset.
    """
    return textwrap.fill(text, width=74, initial_indent=initial_indent, subsequent_indent="  ",
                         break_long_words=False, break_on_hyphens=False)


def compact(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` without the columns that hold one value in every row, which are printed once above it
    instead (e.g. ``same in every row: dataset MVTec AD, backbone resnet18``): a table narrow enough for the
    book's column, nothing dropped.  Returns the narrowed table for display."""
    same = [c for c in table.columns if len(table) > 1 and table[c].astype(str).nunique() == 1]
    if same:
        print(wrap("same in every row: " + ", ".join(f"{c} {table[c].iloc[0]}" for c in same)))
    return table.drop(columns=same)


def expect(findings: dict[str, bool], profile: str) -> None:
    """Print each expected outcome of a training run (what the paper or the text above says should happen)
    and whether this run shows it.  On the quick profile a miss stops the chapter: its settings are picked
    to show these effects, and CI checks that they still do.  On the full profile they are results,
    printed here and judged beside the paper's claims in the report (chapter 08), never an error."""
    for what, ok in findings.items():
        print(wrap(f"{'holds' if ok else 'does NOT hold'}: {what}"))
    missed = [what for what, ok in findings.items() if not ok]
    if missed and profile == "quick":
        raise AssertionError("the quick profile no longer shows: " + "; ".join(missed))


def expectations(findings: dict[str, bool], profile: str) -> str:
    """:func:`expect`'s verdicts as a Markdown list, for a page that shows them as text rather than as printed
    output; :func:`expect` judges them (its printed lines swallowed), so a miss still stops the quick profile."""
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        expect(findings, profile)
    return "\n".join(f"* {'holds' if ok else '**does NOT hold**'}: {what}" for what, ok in findings.items())


def describe_specs(specs: list[dict], limit: int = 6) -> str:
    """A list of run specs in a few words: the first field's values (at most ``limit`` shown, then a count)
    per combination of the other fields, merging combinations that miss the same values when they form a
    full grid, e.g. ``"method USFlow/NonUSFlow x seed 2/3: dataset 1_ALOI, ..., 37 more (43)"``."""
    if not specs:
        return "none"
    first = next(iter(specs[0]))
    groups: dict[tuple, list] = {}
    for spec in specs:
        groups.setdefault(tuple((k, v) for k, v in spec.items() if k != first), []).append(spec[first])
    by_values: dict[tuple, list[tuple]] = {}
    for key, values in groups.items():
        by_values.setdefault(tuple(values), []).append(key)
    parts = []
    for values, keys in by_values.items():
        fields = [k for k, _ in keys[0]]
        axes = [list(dict.fromkeys(key[i][1] for key in keys)) for i in range(len(fields))]
        grid = len(keys) == math.prod(len(a) for a in axes)
        labels = ([" x ".join(f"{f} {'/'.join(map(str, a))}" for f, a in zip(fields, axes))] if grid else
                  [", ".join(f"{k} {v}" for k, v in key) for key in keys])
        shown = ", ".join(map(str, values[:limit])) + (f", ... {len(values) - limit} more" if len(values) > limit else "")
        parts += [f"{label + ': ' if label else ''}{first} {shown} ({len(values)})" for label in labels]
    return "; ".join(parts)


def start(chapter: str, profile: str = "quick", **overrides: Any) -> Chapter:
    """Resolve ``chapter``'s settings (:func:`usfkit.profiles.resolve`), apply the thread policy, set the
    figure style, start the clock and print the settings.

    Thread policy: on a CPU, torch runs the profile's ``threads`` (chapters without that setting: 1), because
    the book's small models are fastest with one thread on a shared CPU; ``threads=None`` keeps torch's default.
    """
    cfg = profiles.resolve(chapter, profile, **overrides)
    threads = getattr(cfg, "threads", 1)
    if threads and not torch.cuda.is_available():
        torch.set_num_threads(threads)
    apply_style()
    device = "cuda" if torch.cuda.is_available() else f"cpu, {torch.get_num_threads()} torch thread(s)"
    print(f"{chapter}, profile {cfg.profile}, {device}")
    settings = ", ".join(f"{k}={v}" for k, v in vars(cfg).items() if k not in ("chapter", "profile"))
    print(wrap(settings, initial_indent="settings: "))
    return Chapter(cfg)
