"""Does the quick profile's gap between the ``"affine"`` coupling and the uniformly scaling
``"additive"`` / ``"additive_lu"`` in chapter 07 close with more training?  FastFlow on MVTec
AD bottle at 48 px (random frozen ResNet-18, as the quick profile), those three couplings, one seed, a fixed number of epochs (no early stopping).

    USFKIT_DATA=../shared/data python benchmarks/image_epochs.py --epochs 80

Runs go to a scratch results folder; the script prints image/pixel AUROC per coupling and
writes ``--out`` (JSON, with each run's provenance).
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
    p.add_argument("--epochs", type=int, default=80)
    p.add_argument("--image-size", type=int, default=48)
    p.add_argument("--out", default="benchmarks/image_epochs.json")
    args = p.parse_args()
    os.environ.setdefault("USFKIT_RESULTS", tempfile.mkdtemp(prefix="usf-image-epochs-"))
    torch.set_num_threads(1)
    from usfkit.experiments import images

    specs = images.make_specs({"mvtec": ["bottle"]}, ["fastflow"], ["affine", "additive", "additive_lu"], [0],
                                 image_size=args.image_size, epochs=args.epochs, patience=args.epochs,
                                 pretrained=False)
    start = time.time()
    records = images.run_benchmark(specs, "quick")
    rows = [{"coupling": r.spec["coupling"], "ok": r.ok, "failure": r.failure, "epochs_run": r.epochs_run,
             **{k: None if v is None else 100 * v for k, v in r.metrics.items()}, "provenance": r.provenance}
            for r in records]  # AUROCs in %
    for r in rows:
        print(f"{r['coupling']:12s} image {r['image_auroc']:.1f}  pixel {r['pixel_auroc']:.1f}  "
              f"({r['epochs_run']} epochs)")
    print(f"{time.time() - start:.0f} s")
    with open(args.out, "w") as f:
        json.dump({"epochs": args.epochs, "image_size": args.image_size, "runs": rows}, f, indent=1)


if __name__ == "__main__":
    main()
