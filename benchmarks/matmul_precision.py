"""float32 against bfloat16 matrix products at the tabular GAN's shapes on this CPU. Prints JSON.

Why ``TabularGAN(precision="auto")`` picks bf16 only where the CPU multiplies bfloat16 natively: with
AVX512-BF16 or AMX these products run several times as fast as float32; without, oneDNN emulates them and
they are slower. Each product is timed alone (median of ``--repeats`` blocks of ``--calls`` calls, after a
warm-up), so the figures are a ceiling for what a whole training step gains (BENCHMARKS.md, tables).

    python benchmarks/matmul_precision.py --threads 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tabular_vs_ctgan import machine

# (rows, inner, columns) on fair: the generator's x = (z, cond) block and hidden block on a batch of 500 rows
# (x is 128 + 29 wide), the PacGAN critic's first and hidden layers on 150 packs (real, fake, interpolated)
# of 10 rows of 49 + 29 columns, and the critic's first weight gradient
SHAPES = [(500, 157, 256), (500, 256, 256), (150, 780, 256), (150, 256, 256), (256, 150, 780)]


def time_product(m: int, k: int, n: int, dtype: torch.dtype, calls: int, repeats: int) -> float:
    a, b = torch.randn(m, k).to(dtype), torch.randn(k, n).to(dtype)
    for _ in range(calls):
        a @ b
    blocks = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(calls):
            a @ b
        blocks.append((time.perf_counter() - t) / calls)
    return statistics.median(blocks)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--calls", type=int, default=200)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    from gankit.tasks.tabular import native_bf16

    rows = []
    for m, k, n in SHAPES:
        t32 = time_product(m, k, n, torch.float32, args.calls, args.repeats)
        t16 = time_product(m, k, n, torch.bfloat16, args.calls, args.repeats)
        rows.append({"shape": [m, k, n], "fp32_us": round(t32 * 1e6, 1), "bf16_us": round(t16 * 1e6, 1),
                     "fp32_gmac_s": round(m * k * n / t32 / 1e9, 1), "bf16_gmac_s": round(m * k * n / t16 / 1e9, 1),
                     "bf16_speedup": round(t32 / t16, 2)})
    result = {"config": {**vars(args), "machine": machine(),
                         "native_bf16": native_bf16(torch.device("cpu"))}, "products": rows}
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
