"""Wall time of each chapter's quick run, from scratch.

Runs every ``chapters/NN_*.ipynb`` (or the chapters named on the command line)
through ``usfkit.reproduce.run_chapter`` with ``--profile`` (default quick), with
``USFKIT_RESULTS`` pointed at a fresh temporary folder so that no chapter can resume
from earlier results, and prints the wall seconds per chapter and the total.
A failing chapter is reported and timed, the others still run, and the exit status is 1.

    .venv/bin/python benchmarks/time_chapters.py                      # all chapters
    .venv/bin/python benchmarks/time_chapters.py 04_alignment 02      # by name or number
    .venv/bin/python benchmarks/time_chapters.py --json times.json
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from usfkit import results
from usfkit.reproduce import find_chapters, run_chapter

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("chapters", nargs="*", help="chapters to run (stem, file name or number); default: all")
    p.add_argument("--chapters-dir", type=Path, default=ROOT / "chapters", help="where the notebooks are")
    p.add_argument("--profile", default="quick", help="value of the notebooks' `profile` parameter")
    p.add_argument("--kernel", default="python3", help="Jupyter kernel name")
    p.add_argument("--keep", type=Path, default=None, metavar="DIR",
                   help="keep the executed notebooks here (default: a temporary folder)")
    p.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write the timings here")
    args = p.parse_args(argv)

    try:
        chapters = find_chapters(args.chapters, args.chapters_dir)
    except ValueError as err:
        print(err, file=sys.stderr)
        return 1
    if not chapters:
        print(f"no chapter notebooks (NN_*.ipynb) found in {args.chapters_dir}", file=sys.stderr)
        return 1

    started, rows = time.time(), []
    with tempfile.TemporaryDirectory(prefix="time_chapters_") as tmp:
        os.environ["USFKIT_RESULTS"] = str(Path(tmp) / "results")  # fresh: nothing to resume from
        out_dir = args.keep or Path(tmp) / "executed"
        width = max(len(c.stem) for c in chapters)
        print(f"{'chapter':<{width}}  {'seconds':>9}  status")
        for nb in chapters:
            outcome = run_chapter(nb, out_dir, args.profile, force=True, kernel=args.kernel, progress_bar=False)
            rows.append({"chapter": outcome.chapter, "seconds": round(outcome.seconds, 2),
                         "status": "ok" if outcome.status == "done" else outcome.status,
                         "error": outcome.error or None})
            print(f"{outcome.chapter:<{width}}  {outcome.seconds:>9.1f}  {rows[-1]['status']}"
                  + (f"  ({outcome.error.splitlines()[0]})" if outcome.error else ""), flush=True)
    total = round(sum(r["seconds"] for r in rows), 2)
    print(f"{'total':<{width}}  {total:>9.1f}")

    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {"provenance": results.provenance(args.profile, started=started), "chapters": rows,
                   "total_seconds": total, "cpu_count": os.cpu_count()}
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0 if all(r["status"] == "ok" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
