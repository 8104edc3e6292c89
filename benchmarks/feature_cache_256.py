"""The feature cache at the paper's size: FastFlow on MVTec AD bottle at 256 px with its paper
backbone (ResNet-18, layers 1-3; random weights here: no ImageNet weights on this machine, which
changes no timing), on this CPU with one torch thread.

It times a training epoch on cached features against an epoch that runs the frozen backbone on
every batch (usfkit.image.features.measure_speedup: the same head, the same batches, both reading
the images from disk), and writes CPU and wall seconds to ``--out``; usfkit.experiments.dryrun's
``cache_saving_text`` projects the saving onto §5.2 with the dry run's FLOPs.

    USFKIT_DATA=../shared/data python benchmarks/feature_cache_256.py --epochs 2
"""
from __future__ import annotations

import argparse
import json
import time

import torch


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--coupling", default="additive_lu")
    p.add_argument("--out", default="benchmarks/feature_cache_256.json")
    args = p.parse_args()
    torch.set_num_threads(1)
    from usfkit import results
    from usfkit.data import MVTecAD
    from usfkit.rng import seeded
    from usfkit.image import build_model
    from usfkit.image.features import measure_speedup

    start = time.time()
    images = MVTecAD("bottle", "train", 256)
    with seeded(0):
        model = build_model("fastflow", coupling=args.coupling, pretrained=False, image_size=256)
    sp = measure_speedup(model.backbone, model.head, images, epochs=args.epochs, batch_size=32,
                         lr=model.config["lr"], seed=0)
    cached_train_cpu = sp.cpu_s["cached"] - sp.cpu_s["extract"]
    out = {
        "what": f"FastFlow ({args.coupling}) on ResNet-18, MVTec AD bottle train ({len(images)} images), 256 px, "
                f"batch 32, {args.epochs} epochs, 1 thread, CPU seconds",
        "epochs": args.epochs, "n_images": len(images),
        "recompute_epoch_s": sp.cpu_s["recompute"] / args.epochs,
        "cached_epoch_s": cached_train_cpu / args.epochs,
        "extract_s": sp.cpu_s["extract"],
        "wall_s": {"recompute": sp.recompute_s, "cached_incl_extract": sp.cached_s, "extract": sp.extract_s},
        "cpu_s": sp.cpu_s, "losses": sp.losses, "backbone_images": sp.backbone_images,
        "provenance": {**results.provenance(profile="full", seeds=[0], started=start),
                       "machine": "this project's 2-core CPU (shared), no GPU; random backbone weights"},
    }
    print(f"epoch recomputing the backbone {out['recompute_epoch_s']:.1f} CPU s, on cached features "
          f"{out['cached_epoch_s']:.1f} CPU s; the cache itself {out['extract_s']:.1f} CPU s")
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
