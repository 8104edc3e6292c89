"""Time the full-profile tabular sweep (chapter 05) on a few real datasets and
extrapolate to every ADBench dataset present.

    python benchmarks/time_tabular.py --datasets 4_breastw 29_Pima 18_Ionosphere 47_yeast 6_cardio

Runs the ``full`` profile (§5.1.1: up to 200 epochs, early stopping 5 / 1e-4, batch 64)
with one seed into a scratch results folder, then models each method's time per run as
``seconds per (training sample × epoch) × n_train × epochs`` and predicts all datasets in
two ways: with the mean number of epochs each method took here (expected) and with all
200 epochs (upper bound).  Prints a table and writes ``--out`` (JSON).
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import torch


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--datasets", nargs="+", default=["4_breastw", "29_Pima", "18_Ionosphere", "47_yeast", "6_cardio"])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="benchmarks/time_tabular.json")
    args = p.parse_args()
    os.environ.setdefault("USFKIT_RESULTS", tempfile.mkdtemp(prefix="usf-timing-"))
    torch.set_num_threads(args.threads)
    import pandas as pd

    from usfkit import profiles, results
    from usfkit.experiments import tabular
    from usfkit.data import adbench

    cfg = profiles.resolve(tabular.CHAPTER, "full", datasets=args.datasets, seeds=1)
    start = time.time()
    runs = tabular.run(cfg, progress="none")
    total = time.time() - start
    runs["cost"] = runs["train_time_s"] / (runs["n_train"] * runs["epochs_run"])  # s per sample-epoch
    per_method = runs.groupby("method").agg(cost=("cost", "median"), epochs=("epochs_run", "mean"))
    sizes = {}
    for name in adbench.available():
        x, y = adbench.load(name)
        sizes[name] = int(round(0.7 * (y == 0).sum()))  # training normals of a 70/30 split
    n_all = sum(sizes.values())
    per_method["expected_s_all_datasets"] = per_method["cost"] * per_method["epochs"] * n_all
    per_method["upper_s_all_datasets"] = per_method["cost"] * cfg.epochs * n_all
    pd.set_option("display.width", 160)
    print(runs[["dataset", "method", "ok", "auroc", "epochs_run", "train_time_s", "n_train"]].to_string())
    print(per_method.round(6).to_string())
    exp_h, up_h = per_method["expected_s_all_datasets"].sum() / 3600, per_method["upper_s_all_datasets"].sum() / 3600
    print(f"measured: {len(runs)} runs in {total:.0f} s; training normals over all {len(sizes)} datasets: {n_all}")
    print(f"extrapolated, one seed, all methods, all present datasets: {exp_h:.1f} h expected, {up_h:.1f} h at most"
          f"; three seeds: {3 * exp_h:.1f} h / {3 * up_h:.1f} h")
    # the provenance first: once the output file is opened for writing, git sees the tree as changed
    payload = {"runs": runs.drop(columns=["failure"]).to_dict("records"), "per_method": per_method.reset_index()
               .to_dict("records"), "n_train_all": n_all, "measured_s": total, "expected_h_one_seed": exp_h,
               "upper_h_one_seed": up_h, "threads": args.threads,
               "provenance": results.provenance("full", seeds=[cfg.seed], started=start)}
    with open(args.out, "w") as f:
        json.dump(payload, f, indent=1)


if __name__ == "__main__":
    main()
