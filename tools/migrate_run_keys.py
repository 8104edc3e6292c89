"""Re-key committed run records to the run-key contract of usfkit 3 (ARCHITECTURE.md, "Run keys").

A run's key is its spec plus exactly the settings the run reads.  Before, a tabular run (chapter 05) hashed
every setting of the profile, so each record also carried the other methods' settings (a USFlow run held
DOHSC's ``nu`` and ``dohsc_lr``) and a setting added to the profile for one method changed the key of every
record.  This script rewrites each record under ``<results>/<profile>/05_tabular_benchmark/runs/`` with the
settings its method declares (:func:`usfkit.experiments.tabular.run_settings`) and the key they hash to, and
removes the old file.  Nothing else in a record changes: the script checks, record by record, that metrics,
info, outcome, epochs, times, spec and provenance (plus a ``rekeyed`` note: the old key and the settings
dropped) are equal before and after, that every kept setting has its old value, and that no two records land
on one key.  Chapter 07's specs said ``cls`` and ``arch`` where every other chapter says ``class`` and ``head``:
its records (none is committed; a GPU run or a local quick run may have made some) are re-keyed under the one
vocabulary, their saved anomaly maps renamed with them.  The records of the other chapters already hash exactly
what their runs read; the script checks that the current code finds each of them under its own key.

    python tools/migrate_run_keys.py             # full profile, dry run: what would change
    python tools/migrate_run_keys.py --write     # rewrite the records
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from usfkit import results, sweep
from usfkit.experiments import tabular
from usfkit.models import method as registered

SCRIPT = "tools/migrate_run_keys.py"


def rekeyed(old: dict) -> dict:
    """``old`` (a tabular record as JSON) under the new contract; a ValueError when it cannot be re-keyed."""
    spec, settings = old["spec"], old["settings"]
    names = tabular.SHARED_SETTINGS + registered(spec["method"]).settings
    lacking = [k for k in names if k not in settings]
    if lacking:
        raise ValueError(f"{old['key']}: its settings lack {lacking}")
    kept = {k: settings[k] for k in names}
    new = dict(old, settings=kept, key=sweep.spec_key(spec, kept))
    if new["key"] != old["key"]:
        new["provenance"] = dict(old["provenance"], rekeyed={
            "from": old["key"], "dropped_settings": {k: v for k, v in settings.items() if k not in kept},
            "by": SCRIPT, "why": "a run's key is its spec plus exactly the settings its method reads"})
    return new


def check_same_result(old: dict, new: dict) -> None:
    """Everything but the key, the settings and the provenance note is equal; kept settings keep their values."""
    for field in old:
        if field not in ("key", "settings", "provenance") and old[field] != new[field]:
            raise AssertionError(f"{old['key']}: {field} changed")
    def bare(provenance: dict) -> dict:  # the provenance without the migration's note (a record re-keyed before)
        return {k: v for k, v in provenance.items() if k != "rekeyed"}

    if bare(new["provenance"]) != bare(old["provenance"]):
        raise AssertionError(f"{old['key']}: provenance changed")
    if any(old["settings"][k] != v for k, v in new["settings"].items()):
        raise AssertionError(f"{old['key']}: a kept setting changed")


def migrate_tabular(profile: str, write: bool) -> tuple[int, int]:
    """Re-key chapter 05's records of ``profile``; return (records, re-keyed).  Two records that land on one key
    are one run trained twice under settings it does not read (a quick run repeated after an unrelated setting
    changed): the newer is kept, and each one dropped is named on stdout (with ``--write``: deleted)."""
    folder = sweep.runs_dir(tabular.CHAPTER, profile)
    files = sorted(folder.glob("*.json")) if folder.is_dir() else []
    chosen: dict[str, tuple] = {}
    for path in files:
        old = json.loads(path.read_text())
        new = rekeyed(old)
        check_same_result(old, new)
        rival = chosen.get(new["key"])
        if rival is not None:
            keep, drop = sorted([rival, (path, new)], key=lambda pn: pn[1]["provenance"].get("finished_at", ""))[::-1]
            print(f"  {drop[0].name}: the same run as {keep[0].name} (same spec, same settings read), older: "
                  f"{'deleted' if write else 'to delete'}")
            if write:
                drop[0].unlink()
            chosen[new["key"]] = keep
        else:
            chosen[new["key"]] = (path, new)
    plan = [(path, folder / f"{key}.json", new) for key, (path, new) in chosen.items() if key != path.stem]
    if write:
        for path, target, new in plan:
            results.write_atomic(target, json.dumps(new, indent=1))
            path.unlink()
    return len(files), len(plan)


#: Chapter 07's old spec words and the one vocabulary's.
IMAGE_WORDS = {"cls": "class", "arch": "head"}
IMAGE_CHAPTER = "07_image_benchmarks"


def migrate_images(profile: str, write: bool) -> tuple[int, int]:
    """Re-key chapter 07's records of ``profile`` whose spec says ``cls``/``arch``; return (records, re-keyed)."""
    folder = sweep.runs_dir(IMAGE_CHAPTER, profile)
    files = sorted(folder.glob("*.json")) if folder.is_dir() else []
    plan = []
    for path in files:
        old = json.loads(path.read_text())
        if not set(IMAGE_WORDS) & set(old["spec"]):
            continue
        spec = {IMAGE_WORDS.get(k, k): v for k, v in old["spec"].items()}
        new = dict(old, spec=spec, key=sweep.spec_key(spec, old["settings"]))
        new["provenance"] = dict(old["provenance"], rekeyed={"from": old["key"], "by": SCRIPT,
                                                              "why": "one spec vocabulary: class, head"})
        if any(old[f] != new[f] for f in old if f not in ("key", "spec", "provenance")):
            raise AssertionError(f"{old['key']}: a result changed")
        plan.append((path, folder / f"{new['key']}.json", new, old))
    if write:
        maps = folder.parent / "maps"
        for path, target, new, old in plan:
            results.write_atomic(target, json.dumps(new, indent=1))
            path.unlink()
            saved = maps / f"{sweep.spec_key(old['spec'])}.pt"  # experiments.images.maps_path's name
            if saved.exists():
                saved.rename(maps / f"{sweep.spec_key(new['spec'])}.pt")
    return len(files), len(plan)


def check_found(chapter: str, profile: str) -> int:
    """Every record of ``chapter`` sits under the key its spec and settings hash to (what the code looks up)."""
    records = sweep.load_runs(chapter, profile)
    wrong = [r.key for r in records if sweep.spec_key(r.spec, r.settings) != r.key]
    if wrong:
        raise AssertionError(f"{chapter}: {len(wrong)} record(s) not under their key, e.g. {wrong[:3]}")
    return len(records)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--profile", default="full", choices=["quick", "full"])
    p.add_argument("--write", action="store_true", help="rewrite the records (default: only say what would change)")
    args = p.parse_args(argv)
    n, moved = migrate_tabular(args.profile, args.write)
    print(f"{tabular.CHAPTER}: {n} records, {moved} {'re-keyed' if args.write else 'to re-key'}")
    n, moved = migrate_images(args.profile, args.write)
    print(f"{IMAGE_CHAPTER}: {n} records, {moved} {'re-keyed' if args.write else 'to re-key'}")
    for chapter in ("03_collapse", "04_alignment", "06_vae_usflow", tabular.CHAPTER if args.write else None):
        if chapter:
            print(f"{chapter}: {check_found(chapter, args.profile)} records, each under its own key")


if __name__ == "__main__":
    sys.exit(main())
