"""Super-resolution x4 on photos that ship offline: bicubic vs the pixel-pretrained SRResNet vs SRGAN.

Trains `gankit.tasks.upscale.fit` on random patches of the bundled training photos (scikit-learn and
scikit-image; see gankit.tasks.upscale.TRAIN_PHOTOS) and measures PSNR / SSIM (Y channel, border of
`scale` pixels cropped) on the held-out photos (china, astronaut, coffee), each bicubically downscaled
x4 first. Prints JSON; writes side-by-side crops (bicubic / SRResNet / SRGAN / original) to --figure.

    .venv/bin/python benchmarks/superres.py --steps 1200 --pretrain-steps 1000
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def crops_figure(models: dict, images: list, scale: int, path: Path, size: int = 96) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gankit.data.images import to_uint8
    from gankit.tasks.upscale import bicubic_upscale, downscale, image_tensor

    cols = ["bicubic", *models, "original"]
    fig, axes = plt.subplots(len(images), len(cols), figsize=(2.2 * len(cols), 2.3 * len(images)), dpi=110)
    for r, (name, arr) in enumerate(images):
        h, w = (arr.shape[0] // scale) * scale, (arr.shape[1] // scale) * scale
        hr = arr[:h, :w]
        lr = downscale(image_tensor(hr)[None], scale)
        outs = {"bicubic": to_uint8(bicubic_upscale(lr, scale))[0]}
        for label, up in models.items():
            outs[label] = to_uint8(up.upscale(lr))[0]
        outs["original"] = hr
        # the crop with the most detail (largest gradient energy) in a coarse grid
        grey = hr.mean(axis=-1)
        best, top, left = -1.0, 0, 0
        for y in range(0, h - size, size // 2):
            for x in range(0, w - size, size // 2):
                g = np.abs(np.diff(grey[y : y + size, x : x + size], axis=0)).mean()
                if g > best:
                    best, top, left = g, y, x
        for c, label in enumerate(cols):
            ax = axes[r, c]
            ax.imshow(outs[label][top : top + size, left : left + size], interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(label, fontsize=9)
        axes[r, 0].set_ylabel(Path(name).stem, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=1200, help="generator steps in all")
    p.add_argument("--pretrain-steps", type=int, default=1000, help="of which pixel-loss pre-training")
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--blocks", type=int, default=4)
    p.add_argument("--d-width", type=int, default=16)
    p.add_argument("--paper-output", action="store_true",
                   help="the paper's tanh output instead of the residual over bicubic (slower to converge)")
    p.add_argument("--patch", type=int, default=48, help="high-resolution patch side")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-3, help="generator lr (pre-training and fine-tuning)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--run-dir", default="", help="keep the run here (default: a temporary folder)")
    p.add_argument("--figure", default="docs/superres.png")
    args = p.parse_args()

    from gankit.tasks.upscale import UpscaleConfig, evaluate, fit, load, load_images

    torch.set_num_threads(args.threads)
    scale = 4
    cfg = UpscaleConfig(scale=scale, patch=args.patch, batch_size=args.batch_size, width=args.width,
                        n_blocks=args.blocks, d_width=args.d_width, pretrain_steps=args.pretrain_steps, residual=not args.paper_output)
    cfg.train.steps, cfg.train.seed, cfg.train.device = args.steps, args.seed, "cpu"
    cfg.opt_g.lr = args.lr
    cfg.log.every, cfg.log.checkpoint_every, cfg.log.sample_every = 100, 500, 10**9
    train, held = load_images("photos"), load_images("photos-heldout")
    run_dir = Path(args.run_dir) if args.run_dir else Path(tempfile.mkdtemp(prefix="superres-")) / "run"
    t0 = time.time()
    fit([a for _, a in train], run_dir, cfg)
    train_s = time.time() - t0
    pre, final = load(run_dir, phase="pretrain"), load(run_dir)
    res = {"bicubic": evaluate(None, held, scale), "pretrained": evaluate(pre, held, scale),
           "srgan": evaluate(final, held, scale)}
    gain = res["pretrained"]["mean"]["psnr"] - res["bicubic"]["mean"]["psnr"]
    crops_figure({"SRResNet (pixel)": pre, "SRGAN": final}, held, scale, Path(args.figure))
    out = {
        "benchmark": "superres_x4",
        "train_photos": [n for n, _ in train], "held_out": [n for n, _ in held],
        "config": {"steps": args.steps, "pretrain_steps": args.pretrain_steps, "width": args.width,
                   "blocks": args.blocks, "residual": not args.paper_output, "patch": args.patch, "batch_size": args.batch_size, "lr": args.lr,
                   "seed": args.seed},
        "results": res,
        "pretrained_minus_bicubic_db": round(gain, 3),
        "target_met": bool(gain >= 1.0),
        "train_seconds": round(train_s, 1),
        "machine": f"{platform.machine()} CPU, {args.threads} threads, shared with other jobs",
        "figure": args.figure,
    }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
