"""Conditional digits: does a classifier trained on real digits agree with the generator's labels?

Trains the ``digits-cond`` preset (conditional DCGAN, 32x32, projection discriminator) on the digits
train split, a small CNN classifier on the same split, and reports the classifier's accuracy on the
real test split (the ceiling) beside its label agreement on generated digits. Writes a class-row grid.
Prints one JSON object.

    .venv/bin/python benchmarks/conditional_digits.py --out runs/bench-cond --grid docs/digits_cond.png
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

import gankit
from gankit.classifier import train_classifier
from gankit.config import DataConfig, apply_overrides
from gankit.data import Dataset, load_data
from gankit.data.images import make_grid
from gankit.tasks.augment import intra_class_spread, label_agreement


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/bench-cond", help="run folder (reused with --resume if present)")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--set", dest="overrides", action="append", default=[])
    p.add_argument("--grid", default="docs/digits_cond.png")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    cfg = apply_overrides(gankit.preset("digits-cond"), [f"train.seed={args.seed}", *args.overrides])
    ds = load_data(DataConfig(source="digits", size=cfg.data.size))
    rng = np.random.default_rng(args.seed)
    order = torch.as_tensor(rng.permutation(len(ds)))
    n_test = len(ds) // 4
    test, train = order[:n_test], order[n_test:]
    train_ds = Dataset(x=ds.x[train], y=ds.y[train], classes=ds.classes, kind="image", name="digits-train")

    t0 = time.perf_counter()
    resume = (Path(args.out) / "config.yaml").exists()
    gankit.train(cfg, args.out, steps=args.steps, resume=resume, data=train_ds)
    gan_seconds = time.perf_counter() - t0

    t0 = time.perf_counter()
    clf = train_classifier(train_ds.x, train_ds.y, epochs=8, seed=args.seed, classes=ds.classes)
    clf_seconds = time.perf_counter() - t0
    ceiling = clf.accuracy(ds.x[test], ds.y[test].numpy())

    G = gankit.load(args.out)
    agreement = label_agreement(G, clf, n_per_class=200, seed=args.seed)
    spread = intra_class_spread(G, ds.x[test], ds.y[test], n_per_class=200, seed=args.seed)
    labels = G.balanced_labels(100)
    Path(args.grid).parent.mkdir(parents=True, exist_ok=True)
    make_grid(G.sample(100, seed=args.seed, labels=labels), nrow=10, scale=2).save(args.grid)

    print(json.dumps({
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__},
        "command": "benchmarks/conditional_digits.py " + " ".join(f"--set {o}" for o in args.overrides),
        "seed": args.seed, "steps": G.step, "size": cfg.data.size, "d_cond": cfg.d.cond,
        "gan_train_seconds": round(gan_seconds, 1), "classifier_train_seconds": round(clf_seconds, 1),
        "classifier_test_accuracy": round(ceiling, 4),
        "label_agreement": round(agreement["overall"], 4),
        "label_agreement_per_class": {k: round(v, 3) for k, v in agreement["per_class"].items()},
        "intra_class_spread": round(spread["overall"], 3),
        "intra_class_spread_per_class": {k: round(v, 3) for k, v in spread["per_class"].items()},
        "n_generated": agreement["n"], "grid": args.grid,
    }, indent=2))


if __name__ == "__main__":
    main()
