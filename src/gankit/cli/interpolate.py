"""gankit interpolate: walk between latents and show what the generator does along the way."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("interpolate", help="latent interpolation as a grid PNG or an animated GIF",
                       description="Spherical interpolation between the latents of two seeds. A .png has "
                       "one row per pair (seeds A+r -> B+r); a .gif animates the first row there and back.")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--out", required=True, help="FILE.png or FILE.gif")
    p.add_argument("--seeds", default="0,1", metavar="A,B", help="the two seeds (default 0,1)")
    p.add_argument("--frames", type=int, default=10, help="steps from A to B (default 10)")
    p.add_argument("--rows", type=int, default=4, help="pairs in a .png grid (default 4)")
    p.add_argument("--space", choices=["z", "w"], default="z",
                   help="z: spherical in the latent (default); w: linear in StyleGAN2's style space")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gankit.data.images import make_grid, to_uint8
    from gankit.errors import UserError
    from gankit.tasks.gan import load

    try:
        a, b = (int(s) for s in args.seeds.split(","))
    except ValueError:
        raise UserError(f"--seeds expects two integers A,B, got '{args.seeds}'") from None
    if args.frames < 2 or args.rows < 1:
        raise UserError("--frames must be >= 2 and --rows >= 1")
    out = Path(args.out)
    if out.suffix.lower() not in (".png", ".gif"):
        raise UserError(f"--out must end in .png or .gif, got '{out.name}'")
    gen = load(args.run_dir)
    if gen.data_meta["kind"] != "image":
        raise UserError("interpolation pictures need an image run")
    rows = 1 if out.suffix.lower() == ".gif" else args.rows
    x = gen.interpolate(a, b, args.frames, rows, space=args.space)
    scale = max(1, 64 // x.shape[-1])
    if out.suffix.lower() == ".png":
        make_grid(x, nrow=args.frames, scale=scale).save(out)
    else:
        from PIL import Image

        frames = [Image.fromarray(f.squeeze(-1) if f.shape[-1] == 1 else f) for f in to_uint8(x)]
        frames = [f.resize((f.width * scale, f.height * scale), Image.Resampling.NEAREST) for f in frames]
        frames = frames + frames[-2:0:-1]
        frames[0].save(out, save_all=True, append_images=frames[1:], duration=80, loop=0)
    print(f"wrote {out}")
    return 0
