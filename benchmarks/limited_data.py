"""Limited-data GAN training: no augmentation vs DiffAugment vs ADA on digits subsets, equal wall time.

For each training-set size (subsets of the digits train split: 100, 500 images and the full split) and
each ``train.augment`` arm, trains the same generator for the same wall-clock budget (the engine's clean
stop, triggered by a timer), then measures FID in the eval issue's classifier feature space
(``gankit.eval.evaluate``, features=classifier) of the EMA generator against the real digits test split.
Also reports the real-vs-real floor (train split vs test split in the same feature space).
Prints one JSON object.

    .venv/bin/python benchmarks/limited_data.py --seconds 90 --out runs/bench-limited
    .venv/bin/python benchmarks/limited_data.py --family stylegan2 --set g.width=32 ...  # on a GPU
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import threading
import time
from pathlib import Path

import numpy as np
import torch

import gankit
from gankit.config import DataConfig, apply_overrides
from gankit.data import Dataset, load_data
from gankit.data.images import make_grid
from gankit.eval import builtin_set, evaluate, reference_classifier, split_indices


def confidence(clf, x) -> dict:
    """Leak check: augmentation artefacts (holes, shifts, turned digits) in generated samples would make the
    classifier of real digits unsure, so compare its confidence on samples with that on real test digits."""
    top = clf.predict_proba(x).max(axis=1)
    return {"mean_max_prob": round(float(top.mean()), 4), "share_confident": round(float((top > 0.9).mean()), 4)}


def train_for(cfg, out: Path, data: Dataset, seconds: float, clock: str) -> dict:
    """Train until ``seconds`` have passed on ``clock`` (SIGINT -> the Trainer's clean stop).

    ``cpu`` counts this process's CPU time: with one torch thread on an otherwise idle core it equals wall time,
    and on a shared machine it still gives every arm the same compute, which wall time would not."""
    now = time.process_time if clock == "cpu" else time.monotonic
    start, done = now(), threading.Event()

    def watch() -> None:
        while not done.wait(0.2):
            if now() - start >= seconds:
                os.kill(os.getpid(), signal.SIGINT)
                return

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        return gankit.train(cfg, out, data=data)
    finally:
        done.set()
        watcher.join()
        # The engine remembers a caught SIGINT so that a user's Ctrl-C ends a multi-run script; this one
        # was ours, so the next arm may train.
        gankit.engine._SIGNALLED = None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/bench-limited", help="folder for the runs (replaced)")
    p.add_argument("--seconds", type=float, default=90.0, help="wall-time budget per arm (default 90)")
    p.add_argument("--clock", choices=["cpu", "wall"], default="cpu",
                   help="what the budget counts: process CPU time (default; fair on a shared machine) or wall time")
    p.add_argument("--sizes", default="100,500,full", help="training-set sizes (default 100,500,full)")
    p.add_argument("--arms", default="none,diffaugment,ada", help="train.augment values (default all three)")
    p.add_argument("--family", default="dcgan", help="network family for G and D (default dcgan)")
    p.add_argument("--n", type=int, default=1000, help="generated samples per FID (default 1000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1: the box is shared)")
    p.add_argument("--set", dest="overrides", action="append", default=[])
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    full = load_data(DataConfig(source="digits", size=16))
    train_idx = split_indices(len(full), "train")
    order = np.random.default_rng(args.seed).permutation(train_idx)
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)

    floor = evaluate(real="digits:test", fake="digits:train", metrics="fid", features="classifier", progress=False)
    clf = reference_classifier(builtin_set("digits:test"), progress=False)
    real_conf = confidence(clf, builtin_set("digits:test").collect()[0])
    rows = []
    for size in args.sizes.split(","):
        k = len(order) if size == "full" else int(size)
        idx = torch.as_tensor(np.sort(order[:k]))
        data = Dataset(x=full.x[idx], y=full.y[idx], classes=full.classes, kind="image", name=f"digits-{k}")
        for arm in args.arms.split(","):
            cfg = apply_overrides(gankit.preset("digits"), [
                f"train.seed={args.seed}", f"train.augment={arm}", f"train.threads={args.threads}",
                "train.steps=1000000", "health.enabled=false", "log.progress=false", "log.every=100",
                "log.sample_every=1000000", "log.checkpoint_every=1000000",
                f"g.family={args.family}", f"d.family={args.family}", *args.overrides])
            run = out / f"{size}-{arm}"
            cpu0 = time.process_time()
            summary = train_for(cfg, run, data, args.seconds, args.clock)
            cpu_s = time.process_time() - cpu0
            res = evaluate(run, ref="digits:test", n=args.n, metrics="fid", features="classifier",
                           seed=args.seed, progress=False)
            last = summary.get("last") or {}
            gen = gankit.load(run)
            make_grid(gen.sample(64, seed=args.seed), scale=2).save(run / "samples.png")
            conf = confidence(clf, gen.sample(args.n, seed=args.seed + 1))
            rows.append({"train_images": k, "augment": arm, "steps": summary["step"], "classifier": conf,
                         "train_seconds": summary["train_seconds"], "cpu_seconds": round(cpu_s, 1), "fid": round(res["fid"], 3),
                         "ada_p_last": round(last["ada_p"], 3) if "ada_p" in last else None,
                         "d_real_last": round(last.get("d_real", float("nan")), 3),
                         "grid": str(run / "samples.png")})
            print(json.dumps(rows[-1]), flush=True)

    print(json.dumps({
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__,
                    "threads": args.threads, "note": "2-core x86_64 CPU"},
        "command": "benchmarks/limited_data.py " + " ".join(
            [f"--seconds {args.seconds}", f"--clock {args.clock}", f"--sizes {args.sizes}", f"--arms {args.arms}",
             f"--family {args.family}", f"--n {args.n}", f"--seed {args.seed}"]
            + [f"--set {o}" for o in args.overrides]),
        "fid_features": "classifier (gankit.eval reference classifier on digits:test)",
        "reference": "digits:test", "real_vs_real_floor_fid": round(floor["fid"], 3),
        "real_test_classifier": real_conf, "runs": rows,
    }, indent=2))


if __name__ == "__main__":
    main()
