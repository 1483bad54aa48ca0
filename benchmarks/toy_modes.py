"""Toy mode-coverage benchmark: ring8 and grid25 under the VEEGAN/PacGAN protocol.

For each data set and configuration, train on 5 seeds, draw 2,500 samples from the EMA generator and
count modes captured (>= 20 high-quality samples), the high-quality share (within 3 std of the
nearest centre) and the reverse KL of the mode histogram to uniform. Prints one JSON object.

    .venv/bin/python benchmarks/toy_modes.py                 # defaults and the original minimax GAN
    .venv/bin/python benchmarks/toy_modes.py --seeds 0 1 --configs default
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time

import numpy as np
import torch

import gankit
from gankit.data.builtin import MIXTURES
from gankit.metrics.modes import mode_coverage

# The plain GAN of the 2014 paper: saturating minimax loss, no minibatch-std, no R1, no EMA, no InfoGAN code,
# same nets/steps. "nocode": the preset without its InfoGAN code (a connected latent space, z of 4 dimensions).
CONFIGS = {
    "default": [],
    "nocode": ["g.codes=0", "loss.info=0", "train.z_dim=4"],
    "minimax": ["loss.name=minimax", "loss.r1=0", "d.mbstd=false", "d.pack=1", "train.ema=0", "g.codes=0",
                "loss.info=0", "train.z_dim=4"],
}


def train_and_sample(data: str, overrides: list[str], seed: int, n: int = 2500) -> tuple[np.ndarray, float, int]:
    """Train the ``data`` preset with ``overrides`` on ``seed``; (samples, seconds, steps)."""
    cfg = gankit.preset(data)
    cfg = gankit.config.apply_overrides(cfg, [*overrides, f"train.seed={seed}", "log.progress=false"])
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        summary = gankit.train(cfg, out)
        seconds = time.perf_counter() - t0
        samples = gankit.load(out).sample(n, seed=10_000 + seed).numpy()
    return samples, seconds, summary["step"]


def run(data: str, config: str, seed: int, n: int = 2500) -> dict:
    samples, seconds, steps = train_and_sample(data, CONFIGS[config], seed, n)
    centers, std = MIXTURES[data]
    result = mode_coverage(samples, centers, std)
    return {"seed": seed, "seconds": round(seconds, 2), "steps": steps, **result}


def aggregate(runs: list[dict]) -> dict:
    out = {}
    for key in ("modes", "hq", "reverse_kl", "seconds"):
        v = np.array([r[key] for r in runs], float)
        out[key] = {"mean": round(float(v.mean()), 4), "min": round(float(v.min()), 4),
                    "max": round(float(v.max()), 4)}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", nargs="+", default=["ring8", "grid25"], choices=list(MIXTURES))
    p.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    args = p.parse_args()
    report = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                          "torch_threads": torch.get_num_threads(), "torch": torch.__version__},
              "protocol": "2500 samples; HQ = within 3 std of nearest centre; mode captured = >= 20 HQ samples",
              "results": {}}
    for data in args.data:
        for config in args.configs:
            runs = [run(data, config, s) for s in args.seeds]
            report["results"][f"{data}/{config}"] = {"runs": runs, **aggregate(runs)}
            print(json.dumps({"done": f"{data}/{config}", **aggregate(runs)}), flush=True, file=os.sys.stderr)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
