"""One toy run with --set style overrides on top of a preset; prints one JSON line. The tuning sweep
behind the ring8/grid25 presets ran this (results: benchmarks/results_toy_sweep.jsonl).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/toy_sweep.py grid25 0 d.mbstd=true d.pack=1
"""

from __future__ import annotations

import json
import sys
import tempfile
import time

import numpy as np

import gankit
from gankit.data.builtin import MIXTURES
from gankit.metrics.modes import mode_coverage


def main() -> None:
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    data, seed, *overrides = sys.argv[1:]
    cfg = gankit.config.apply_overrides(gankit.preset(data), [*overrides, f"train.seed={seed}", "log.progress=false",
                                                              "train.threads=1"])
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        gankit.train(cfg, out)
        seconds = time.perf_counter() - t0
        x = gankit.load(out).sample(2500, seed=10_000 + int(seed)).numpy()
    centers, std = MIXTURES[data]
    r = mode_coverage(x, centers, std)
    # share of samples within k std of their nearest centre: where the non-HQ samples sit
    d = np.sqrt(((x[:, None] - centers[None]) ** 2).sum(-1)).min(1) / std
    within = {k: round(float((d < k).mean()), 3) for k in (1, 2, 3, 5, 10)}
    print(json.dumps({"data": data, "seed": int(seed), "overrides": " ".join(overrides), "seconds": round(seconds, 1),
                      "modes": r["modes"], "hq": round(r["hq"], 3), "reverse_kl": round(r["reverse_kl"], 3),
                      "within_std": within}))


if __name__ == "__main__":
    main()
