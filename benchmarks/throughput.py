"""Throughput of one full D+G step: gankit's ``adversarial_step`` vs a plain PyTorch loop. Prints JSON.

Both sides train the same networks (built by ``gankit.nets`` from the digits preset, with the family,
image side and width of each configuration), on the same batches, with the non-saturating BCE loss and
Adam. The reference is written the way the PyTorch DCGAN tutorial writes its loop (``BCEWithLogitsLoss``
on label tensors; one G forward reused by both phases; D's weights not frozen in the G phase).
Timings alternate gankit / reference in one process, ``--repeats`` times; the JSON reports the median
images per second of each and their ratio (> 1: gankit is faster), by wall clock and by process CPU time.

    python benchmarks/throughput.py --width 16 --batch 32 --steps 10 --repeats 5
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch
from torch import nn

CONFIGS = {  # name -> (generator/discriminator family, image side, D spectral norm)
    "dcgan32": ("dcgan", 32, True),
    "dcgan64": ("dcgan", 64, True),
    "resnet_sn32": ("resnet", 32, True),
}


def build(name: str, width: int, batch: int, device: torch.device, seed: int):
    """Two identical copies of (G, D) and the batches, from the digits preset at this size and width."""
    from gankit.config import preset
    from gankit.data import Batches, load_data
    from gankit.tasks.gan import build_nets

    family, side, sn = CONFIGS[name]
    cfg = preset("digits")
    cfg.data.size, cfg.data.batch_size = side, batch
    cfg.g.family, cfg.d.family, cfg.g.width, cfg.d.width = family, family, width, width
    cfg.d.spectral_norm = sn
    ds = load_data(cfg.data)
    torch.manual_seed(seed)
    G, D = build_nets(cfg, ds.meta())
    nets = [(G.to(device), D.to(device))]
    G2, D2 = build_nets(cfg, ds.meta())
    G2.load_state_dict(G.state_dict())
    D2.load_state_dict(D.state_dict())
    nets.append((G2.to(device), D2.to(device)))
    return cfg, nets, Batches(ds, batch, device, seed=seed)


def adam(net: nn.Module) -> torch.optim.Optimizer:
    return torch.optim.Adam(net.parameters(), lr=2e-4, betas=(0.5, 0.999))


def gankit_steps(G, D, cfg, batches, steps: int, fast: dict | None = None):
    """``steps`` calls of gankit's adversarial step; returns a function that runs them. ``fast``:
    precision / channels_last / compile, as train.precision, train.channels_last and train.compile set them."""
    from gankit.engine import Precision, adversarial_step
    from gankit.tasks.gan import GAN, players_for

    fast = fast or {}
    if fast.get("channels_last"):
        G, D = G.to(memory_format=torch.channels_last), D.to(memory_format=torch.channels_last)
        batches.x = batches.x.contiguous(memory_format=torch.channels_last)
    task, opt_g, opt_d = GAN(G, D, cfg.loss), adam(G), adam(D)
    synced = players_for(G, D, False, bool(fast.get("compile")))
    precision = Precision(fast.get("precision", "fp32"), next(G.parameters()).device.type)
    state = {"step": 0}

    def run() -> None:
        for _ in range(steps):
            adversarial_step(task, opt_d, opt_g, batches, state["step"], synced=synced, precision=precision)
            state["step"] += 1

    return run


def reference_steps(G, D, cfg, batches, steps: int):
    """The PyTorch DCGAN tutorial's loop, with logits and BCEWithLogitsLoss (our D has no sigmoid)."""
    criterion = nn.BCEWithLogitsLoss()
    opt_g, opt_d = adam(G), adam(D)
    z_dim = cfg.train.z_dim

    def run() -> None:
        for _ in range(steps):
            real = next(batches)["x"]
            b = real.size(0)
            # (1) update D: maximise log(D(x)) + log(1 - D(G(z)))
            D.zero_grad()
            label = torch.full((b,), 1.0, device=real.device)
            err_real = criterion(D(real).view(-1), label)
            err_real.backward()
            noise = torch.randn(b, z_dim, device=real.device)
            fake = G(noise)
            label.fill_(0.0)
            err_fake = criterion(D(fake.detach()).view(-1), label)
            err_fake.backward()
            opt_d.step()
            # (2) update G: maximise log(D(G(z)))
            G.zero_grad()
            label.fill_(1.0)
            err_g = criterion(D(fake).view(-1), label)
            err_g.backward()
            opt_g.step()

    return run


def timed(run) -> tuple[float, float]:
    """Wall-clock and process CPU seconds of ``run()``. On a shared CPU the CPU seconds are the steadier
    figure (time other processes take from us is not counted); on a GPU only wall clock means anything."""
    t, c = time.perf_counter(), time.process_time()
    run()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - t, time.process_time() - c


def measure(name: str, width: int, batch: int, steps: int, repeats: int, device: torch.device, seed: int,
            fast: dict | None = None) -> dict:
    cfg, ((G1, D1), (G2, D2)), batches = build(name, width, batch, device, seed)
    ours = gankit_steps(G1, D1, cfg, batches, steps, fast)
    ref = reference_steps(G2, D2, cfg, batches, steps)  # always the fp32 tutorial loop
    ours(), ref()  # warm-up (allocator, kernels)
    t_ours, t_ref = [], []
    for r in range(repeats):  # alternate, and swap who goes first, so drifting load hits both alike
        pair = [(ours, t_ours), (ref, t_ref)]
        for run, out in pair if r % 2 == 0 else reversed(pair):
            out.append(timed(run))
    out = {"config": name, "gankit_options": fast or {}, "side": CONFIGS[name][1], "family": CONFIGS[name][0], "width": width,
           "batch": batch, "steps_per_repeat": steps, "repeats": repeats}
    for i, clock in enumerate(("wall", "cpu")):
        ours = statistics.median(steps * batch / t[i] for t in t_ours)
        ref = statistics.median(steps * batch / t[i] for t in t_ref)
        out[clock] = {"gankit_images_per_s": round(ours, 1), "reference_images_per_s": round(ref, 1),
                      "ratio": round(ours / ref, 3), "gankit_s": [round(t[i], 3) for t in t_ours],
                      "reference_s": [round(t[i], 3) for t in t_ref]}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configs", default=",".join(CONFIGS), help=f"comma-separated subset of {', '.join(CONFIGS)}")
    p.add_argument("--width", type=int, default=16, help="base channels of both networks")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=10, help="D+G steps per timed repeat")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: PyTorch's default)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"], help="gankit side only")
    p.add_argument("--channels-last", action="store_true", help="gankit side only")
    p.add_argument("--compile", action="store_true", help="gankit side only: torch.compile both networks")
    args = p.parse_args()
    fast = {"precision": args.precision, "channels_last": args.channels_last, "compile": args.compile}
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    results = [measure(name, args.width, args.batch, args.steps, args.repeats, device, args.seed, fast)
               for name in args.configs.split(",")]
    print(json.dumps({"device": str(device), "machine": platform.machine(), "torch": torch.__version__,
                      "threads": torch.get_num_threads(), "seed": args.seed, "results": results}, indent=1))


if __name__ == "__main__":
    main()
