"""One toy run with --set style overrides on top of a preset; prints one JSON line. The tuning sweep
behind the ring8/grid25 presets ran this (results: benchmarks/results_toy_sweep.jsonl).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/toy_sweep.py grid25 0 d.mbstd=true d.pack=1
"""

from __future__ import annotations

import json
import sys

import numpy as np
from toy_modes import train_and_sample  # same folder

from gankit.data.builtin import MIXTURES
from gankit.metrics.modes import mode_coverage


def main() -> None:
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    data, seed, *overrides = sys.argv[1:]
    x, seconds, _ = train_and_sample(data, [*overrides, "train.threads=1"], int(seed))
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
