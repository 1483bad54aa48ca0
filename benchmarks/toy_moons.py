"""Two moons with and without the InfoGAN code: prints one JSON line.

Data: ``sklearn.datasets.make_moons(50000, noise=0.05, random_state=0)``; the ring8 preset's networks and steps.
Reported: the share of 2,500 samples within 0.1 of a data point (precision-like) and the share of 5,000 data
points within 0.1 of a sample (recall-like).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/toy_moons.py code 0      # g.codes=-1 (counts 2 clusters)
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/toy_moons.py nocode 0    # g.codes=0 loss.info=0 train.z_dim=4
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree
from sklearn.datasets import make_moons

import gankit
from gankit.config import apply_overrides

MODES = {"code": ["g.codes=-1"], "nocode": ["g.codes=0", "loss.info=0", "train.z_dim=4"]}


def main() -> None:
    if len(sys.argv) != 3 or sys.argv[1] not in MODES:
        raise SystemExit(__doc__)
    mode, seed = sys.argv[1], int(sys.argv[2])
    x, _ = make_moons(50000, noise=0.05, random_state=0)
    with tempfile.TemporaryDirectory() as tmp:
        np.savez(Path(tmp) / "moons.npz", samples=x.astype(np.float32))
        cfg = apply_overrides(gankit.preset("ring8"), [f"data.source={tmp}/moons.npz", f"train.seed={seed}",
                                                       "log.progress=false", "train.threads=1", *MODES[mode]])
        t = time.perf_counter()
        gankit.train(cfg, f"{tmp}/run")
        seconds = time.perf_counter() - t
        codes = gankit.Config.load(f"{tmp}/run/config.yaml").g.codes
        s = gankit.load(f"{tmp}/run").sample(2500, seed=10_000 + seed).numpy()
    near_data = cKDTree(x).query(s)[0] < 0.1
    near_sample = cKDTree(s).query(x[:5000])[0] < 0.1
    print(json.dumps({"mode": mode, "seed": seed, "codes": codes, "seconds": round(seconds, 1),
                      "samples_near_data": round(float(near_data.mean()), 4),
                      "data_near_samples": round(float(near_sample.mean()), 4)}))


if __name__ == "__main__":
    main()
