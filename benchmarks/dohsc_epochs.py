"""Are DOHSC and DO2HSC below chance so often because §5.1.1's shared rule stops them early?

Chapter 05 trains every method with the paper's rule: at most 200 epochs, stopped after 5 epochs
without a training-loss gain above 1e-4. DOHSC and DO2HSC then stop after a median of about 18 and 8
epochs, and a third of their runs rank the test set worse than chance. This script trains both for
the whole epoch budget (no early stopping, the rest of the full profile unchanged) on the chosen
datasets, with ADBench's protocol, and saves each run as it finishes to ``--out`` (JSON: AUC-ROC,
epochs, seconds, provenance), so a rerun resumes. Chapter 05 sets them beside the committed runs of
the same dataset and seed (``usfkit.experiments.tabular.dohsc_epochs``).

    USFKIT_DATA=../shared/data python benchmarks/dohsc_epochs.py                 # every dataset, seed 1
    USFKIT_DATA=../shared/data python benchmarks/dohsc_epochs.py --datasets 29_Pima 6_cardio --epochs 50
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from usfkit import profiles, results  # noqa: E402
from usfkit.data import adbench  # noqa: E402
from usfkit.experiments import tabular  # noqa: E402

METHODS = ("DOHSC", "DO2HSC")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--datasets", nargs="+", help="ADBench names (default: every present dataset)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--epochs", type=int, default=None, help="epochs, all trained (default: the full profile's, 200)")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "dohsc_epochs.json"))
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    cfg = profiles.resolve("05_tabular_benchmark", "full", **({"epochs": args.epochs} if args.epochs else {}))
    cfg = profiles.resolve("05_tabular_benchmark", "full", epochs=cfg.epochs, patience=cfg.epochs + 1)
    out = Path(args.out)
    saved = json.loads(out.read_text()) if out.exists() else {"runs": []}
    if saved.get("epochs", cfg.epochs) != cfg.epochs:
        raise SystemExit(f"{out} holds runs of {saved['epochs']} epochs, not {cfg.epochs}: pass --out for a new file")
    done = {(r["dataset"], r["method"], r["seed"]) for r in saved["runs"]}
    datasets = args.datasets or adbench.available()
    todo = [(d, m) for d in datasets for m in METHODS if (d, m, args.seed) not in done]
    print(f"{len(todo)} runs to train ({len(done)} saved in {out}), {cfg.epochs} epochs each, no early stopping")
    for dataset, method in tqdm(todo, desc="DOHSC/DO2HSC, all epochs", unit="run"):
        start = time.time()
        r = tabular.run_one({"dataset": dataset, "method": method, "seed": args.seed}, cfg, progress="none")
        saved["runs"].append({"dataset": dataset, "method": method, "seed": args.seed, "ok": r.ok,
                              "failure": r.failure, "auroc": r.metrics.get("auroc"), "epochs_run": r.epochs_run,
                              "train_time_s": r.train_time_s,
                              "provenance": results.provenance("full", seeds=[args.seed], started=start)})
        saved.update(epochs=cfg.epochs, patience=cfg.patience, protocol=cfg.protocol,
                     rule="all epochs trained (patience above the epoch budget); everything else as chapter 05's full profile")
        tmp = out.with_suffix(".tmp")
        tmp.write_text(json.dumps(saved, indent=1))
        tmp.replace(out)  # saved after every run: an interrupted run loses at most the one in progress


if __name__ == "__main__":
    main()
