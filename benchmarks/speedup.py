"""Before/after timing of the tabular training step, in one run: the same runs trained by an
older commit of usfkit and by the working tree (eager, and with the loss compiled), alternately,
on the same data.

    python benchmarks/speedup.py                       # before = 56edeb4 (when issue 10 was filed)
    python benchmarks/speedup.py --before HEAD~3 --dataset 6_cardio --epochs 6 --repeats 3

Each version runs in its own process with one torch thread; the training set is the working
tree's ``adbench.split`` of ``--dataset`` (protocol ``adbench``, seed 1), saved once and read
by both, so both train on the same rows.  Every run trains exactly ``--epochs`` epochs (patience
above the epoch budget), so the seconds compare like with like.  The working tree runs twice:
``eager`` (``USFKIT_COMPILE=0``) and ``compiled`` (``USFKIT_COMPILE=1``, ``torch.compile``; its
cache starts empty, so the first repeat pays the compilation and later ones read torch's on-disk
cache, as a sweep's later seeds do).  Per method the script reports the median training seconds
of each version and the speed-ups, per run (compiling included: the first repeat cold, later ones
warm) and per step (the median epoch time after the first epoch), and whether the computation is
the same: the largest relative difference between the epoch losses and the AUC-ROCs.
Writes ``--out`` (JSON, with provenance).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
FLOW_METHODS = ["USFlow", "NonUSFlow", "OneFlow", "VAE-USFlow", "VAE-NonUSFlow"]

# Runs inside each version's tree: train every method once on the saved split, print JSON.
CHILD = r"""
import json, sys, time, torch
torch.set_num_threads(1)
from sklearn.metrics import roc_auc_score
try:
    from usfkit.experiments import tabular
except ImportError:  # commits before usfkit.experiments existed
    from usfkit import tabular
from usfkit import profiles, train
ends = []  # wall clock at every epoch end: the steady per-epoch time leaves the first epoch (and compiling) out
_on_epoch_end = train.History.on_train_epoch_end
def on_epoch_end(self, trainer, module):
    ends.append(time.time())
    _on_epoch_end(self, trainer, module)
train.History.on_train_epoch_end = on_epoch_end
data, methods, epochs = torch.load(sys.argv[1]), sys.argv[2].split(","), int(sys.argv[3])
cfg = profiles.resolve("05_tabular_benchmark", "full", epochs=epochs, patience=epochs + 1)
out = {}
for method in methods:
    ends.clear()
    model, fit, score = tabular.build_and_train(method, data["x_train"], cfg, seed=1, progress="none")
    s = tabular.scores(score, data["x_test"])
    out[method] = {"seconds": fit.wall_time_s, "epochs": fit.epochs, "epoch_s": (ends[-1] - ends[0]) / (len(ends) - 1), "losses": [r["train_loss"] for r in fit.history],
                   "auroc": float(roc_auc_score(data["y_test"].numpy(), s))}
print("RESULT " + json.dumps(out))
"""


def run_version(tree: Path, data: Path, methods: list[str], epochs: int, **env_extra: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", **env_extra}
    proc = subprocess.run([sys.executable, "-c", CHILD, str(data), ",".join(methods), str(epochs)],
                          env=env, capture_output=True, text=True, cwd=tree)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode or not lines:
        raise RuntimeError(f"the run in {tree} failed:\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def prepare(split, rev: str, folder: Path) -> tuple[Path, Path]:
    """Save ``split`` for the children to read, and extract the tree of commit ``rev``; both in ``folder``."""
    data, tree = folder / "split.pt", folder / "before"
    torch.save({"x_train": split.x_train, "x_test": split.x_test, "y_test": torch.as_tensor(split.y_test)}, data)
    tree.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
    return data, tree


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--before", default="56edeb4", help="commit to compare with (default: 56edeb4)")
    p.add_argument("--dataset", default="6_cardio")
    p.add_argument("--methods", nargs="+", default=FLOW_METHODS)
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "speedup.json"))
    args = p.parse_args()
    sys.path.insert(0, str(ROOT))
    from usfkit import results
    from usfkit.data import adbench

    start = time.time()
    with tempfile.TemporaryDirectory(prefix="usf-speedup-") as tmp:
        split = adbench.split(args.dataset, seed=1, protocol="adbench")
        data, before = prepare(split, args.before, Path(tmp))
        versions = (("before", before, {}), ("eager", ROOT, {"USFKIT_COMPILE": "0"}),
                    ("compiled", ROOT, {"USFKIT_COMPILE": "1", "TORCHINDUCTOR_CACHE_DIR": str(Path(tmp) / "inductor")}))
        rows = []
        for repeat in range(args.repeats):  # alternate, so that a busy spell hits every version
            for version, tree, env in versions:
                for method, r in run_version(tree, data, args.methods, args.epochs, **env).items():
                    rows.append({"repeat": repeat, "version": version, "method": method, **r})
                    print(f"repeat {repeat + 1}/{args.repeats} {version:8s} {method:14s} {r['seconds']:7.1f} s "
                          f"AUC-ROC {r['auroc']:.4f}", flush=True)
    runs = pd.DataFrame(rows)
    table = []
    for method, g in runs.groupby("method", sort=False):
        v = {name: g[g.version == name] for name, _, _ in versions}
        med = {name: d.seconds.median() for name, d in v.items()}
        warm = v["compiled"][v["compiled"].repeat > 0].seconds.median() if args.repeats > 1 else float("nan")
        # each warm repeat's own before/compiled ratio (same repeat, so the same spell of machine load)
        paired = (v["before"].set_index("repeat").seconds / v["compiled"].set_index("repeat").seconds).iloc[1:]
        lb = np.array(v["before"].losses.iloc[0])
        ep = {name: d.epoch_s.median() for name, d in v.items()}
        table.append({"method": method, "before_s": med["before"], "eager_s": med["eager"],
                      "epoch_s_before": ep["before"], "epoch_s_eager": ep["eager"], "epoch_s_compiled": ep["compiled"],
                      "step_speedup_eager": ep["before"] / ep["eager"], "step_speedup_compiled": ep["before"] / ep["compiled"],
                      "compiled_cold_s": v["compiled"].seconds.iloc[0], "compiled_warm_s": warm,
                      "speedup_eager": med["before"] / med["eager"], "speedup_compiled_warm": med["before"] / warm,
                      "speedup_compiled_warm_min": paired.min(), "speedup_compiled_warm_max": paired.max(),
                      **{f"max_rel_loss_diff_{k}": float(np.max(np.abs(np.array(v[k].losses.iloc[0]) - lb) / np.abs(lb)))
                         for k in ("eager", "compiled")},
                      **{f"auroc_{k}": v[k].auroc.iloc[0] for k in v}})
    table = pd.DataFrame(table)
    pd.set_option("display.width", 200)
    print(table.to_string(index=False, float_format=lambda x: f"{x:.4g}"))
    total = {k: table[f"{k}_s"].sum() for k in ("before", "eager", "compiled_cold", "compiled_warm")}
    print("all methods together: " + ", ".join(f"{k} {t:.1f} s" for k, t in total.items())
          + f"; eager x{total['before'] / total['eager']:.2f}, compiled (warm cache) x"
          f"{total['before'] / total['compiled_warm']:.2f}; per step: eager x"
          f"{table.epoch_s_before.sum() / table.epoch_s_eager.sum():.2f}, compiled x"
          f"{table.epoch_s_before.sum() / table.epoch_s_compiled.sum():.2f}; n_train {len(split.x_train)}, dim {split.dim}, "
          f"{args.epochs} epochs, 1 thread")
    # the provenance first: once the output file is opened for writing, git sees the tree as changed
    payload = {"before": args.before, "dataset": args.dataset, "epochs": args.epochs, "n_train": len(split.x_train),
               "dim": split.dim, "table": table.to_dict("records"), "seconds_all": total,
               "runs": runs.to_dict("records"),
               "provenance": results.provenance("full", seeds=[1], started=start)}
    with open(args.out, "w") as f:
        json.dump(payload, f, indent=1)


if __name__ == "__main__":
    main()
