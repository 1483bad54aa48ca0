"""gankit sample: new samples from a trained run, as a grid, an array or a folder of files."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sample", help="draw new samples from a trained run",
                       description="Draw N samples from a run's EMA generator. The --out suffix picks the "
                       "format: .png writes a grid (images) or a scatter plot (2-D points); .npz writes an "
                       "array 'samples' (images in [-1, 1] as N,C,H,W; vectors in data units); a path with "
                       "no suffix becomes a folder with one PNG per sample.")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--n", type=int, default=64, help="number of samples (default 64)")
    p.add_argument("--out", required=True, help="FILE.png, FILE.npz or a folder")
    p.add_argument("--seed", type=int, default=0, help="the same seed gives the same samples (default 0)")
    p.add_argument("--truncation", type=float, default=1.0, metavar="PSI",
                   help="pull latents toward the average: 1 = none, 0 = the average sample "
                   "(StyleGAN2 runs: in w space, around the tracked w_avg)")
    p.add_argument("--class", dest="label", metavar="NAME_OR_INDEX",
                   help="conditional runs: the class to draw, or 'all' for a balanced set (the default): "
                   "a .png then has one row per class, a folder one sub-folder per class, a .npz 'labels'")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from gankit.data.images import make_grid, save_image
    from gankit.errors import UserError
    from gankit.tasks.gan import load, save_scatter

    gen = load(args.run_dir)
    labels = None
    if gen.classes:
        if args.label is None or args.label == "all":
            labels = gen.balanced_labels(args.n)
        else:
            labels = torch.full((args.n,), gen.class_index(args.label), dtype=torch.long)
    elif args.label is not None:
        gen.class_index(args.label)  # explains that the run is not conditional
    x = gen.sample(args.n, seed=args.seed, truncation=args.truncation, labels=labels)
    out = Path(args.out)
    if out.suffix and not out.parent.exists():
        raise UserError(f"output folder does not exist: {out.parent}")
    image = gen.data_meta["kind"] == "image"
    if out.suffix.lower() == ".npz":
        arrays = {"samples": x.numpy()}
        if gen.classes:
            arrays["labels"] = labels.numpy()
            arrays["classes"] = np.array(gen.classes)
        np.savez_compressed(out, **arrays)
    elif out.suffix.lower() == ".png":
        if image:
            per_row = -(-args.n // len(gen.classes)) if labels is not None and len(labels.unique()) > 1 else None
            make_grid(x, nrow=per_row, scale=max(1, 64 // x.shape[-1])).save(out)
        else:
            if x.shape[1] != 2:
                raise UserError("a .png of vector samples needs 2-D data; use .npz")
            save_scatter(x.numpy(), out)
    elif out.suffix:
        raise UserError(f"unknown output format '{out.suffix}'; use .png, .npz or a folder")
    else:
        if not image:
            raise UserError("a folder of files needs image samples; use .npz for vectors")
        out.mkdir(parents=True, exist_ok=True)
        for i in range(args.n):
            folder = out / gen.classes[int(labels[i])] if labels is not None else out
            folder.mkdir(exist_ok=True)
            save_image(x[i], folder / f"{args.seed}-{i:06d}.png")
    print(f"wrote {args.n} samples to {out}")
    return 0
