"""Cost of training-health monitoring on the digits preset: prints JSON.

Two measurements. (1) Wall clock: the same run with ``health.enabled=false`` and ``true``, alternated
``--repeats`` times (on a shared machine this is noisy). (2) In-run share: the time spent inside the
monitor's hook divided by the run's training time, measured in the same run, so that load from other
processes affects both sides alike.

    python benchmarks/health_overhead.py --steps 400 --repeats 2
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import tempfile
import time
from pathlib import Path


def run(enabled: bool, steps: int, seed: int, threads: int, root: Path) -> dict:
    import gankit
    from gankit import health

    spent = [0.0, 0]
    original = health.Monitor.on_log

    def timed(self, trainer, record):
        t = time.perf_counter()
        original(self, trainer, record)
        spent[0] += time.perf_counter() - t
        spent[1] += 1

    health.Monitor.on_log = timed
    try:
        cfg = gankit.preset("digits")
        cfg.health.enabled = enabled
        cfg.train.steps, cfg.train.seed, cfg.train.threads = steps, seed, threads
        cfg.log.progress = False
        out = root / f"run-{enabled}-{time.time_ns()}"
        t = time.perf_counter()
        gankit.train(cfg, out)
        wall = time.perf_counter() - t
    finally:
        health.Monitor.on_log = original
    shutil.rmtree(out, ignore_errors=True)
    return {"health": enabled, "wall_s": round(wall, 2), "hook_s": round(spent[0], 3), "hook_calls": spent[1]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=500, help="generator steps per run (digits logs every 50)")
    ap.add_argument("--repeats", type=int, default=2, help="off/on pairs")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    args = ap.parse_args()
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        run(True, 50, args.seed, args.threads, Path(tmp))  # warm caches (imports, data, kernels)
        for _ in range(args.repeats):
            for enabled in (False, True):
                runs.append(run(enabled, args.steps, args.seed, args.threads, Path(tmp)))
    off = min(r["wall_s"] for r in runs if not r["health"])
    on = min(r["wall_s"] for r in runs if r["health"])
    share = [r["hook_s"] / r["wall_s"] for r in runs if r["health"]]
    print(json.dumps({
        "machine": f"{platform.machine()}, {args.threads} torch thread(s)", "preset": "digits",
        "steps": args.steps, "repeats": args.repeats,
        "wall_off_s_best": off, "wall_on_s_best": on, "wall_overhead_pct": round(100 * (on / off - 1), 2),
        "hook_share_pct_median": round(100 * sorted(share)[len(share) // 2], 2), "runs": runs,
    }, indent=1))


if __name__ == "__main__":
    main()
