"""gankit stylemix: a style-mixing grid from a StyleGAN2 run (Karras et al., 2019, fig. 3)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch
from torch import Tensor


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("stylemix", help="style-mixing grid of a StyleGAN2 run",
                       description="Each cell takes the styles of its row's seed, except the first "
                       "--crossover layers (the coarse ones: pose, shape), which come from its column's seed. "
                       "The top row shows the column seeds' own samples, the left column the row seeds'.")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--rows", required=True, metavar="S1,S2,...", help="seeds of the rows (fine styles)")
    p.add_argument("--cols", required=True, metavar="S3,S4,...", help="seeds of the columns (coarse styles)")
    p.add_argument("--out", required=True, help="FILE.png")
    p.add_argument("--crossover", type=int, default=None, metavar="K",
                   help="layers taken from the column seed (default: half of the generator's layers)")
    p.add_argument("--truncation", type=float, default=1.0, metavar="PSI", help="w-space truncation (default 1)")
    p.set_defaults(func=run)


def _seeds(text: str, flag: str) -> list[int]:
    from gankit.errors import UserError

    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise UserError(f"{flag} expects comma-separated integer seeds, got '{text}'") from None
    if not seeds:
        raise UserError(f"{flag} needs at least one seed")
    return seeds


def style_mix_grid(gen: Any, rows: list[int], cols: list[int], crossover: int | None = None,
                   truncation: float = 1.0) -> Tensor:
    """(1 + len(rows)) x (1 + len(cols)) images, row-major, the top-left cell blank (white)."""
    from gankit.errors import UserError
    from gankit.nets.stylegan2 import mix_styles

    if not gen.style_based:
        raise UserError(f"style mixing needs a StyleGAN2 run (g.family=stylegan2), not {gen.config.g.family}")
    num_ws = gen.G.num_ws
    crossover = num_ws // 2 if crossover is None else crossover
    if not 1 <= crossover < num_ws:
        raise UserError(f"--crossover must be from 1 to {num_ws - 1} for this generator, got {crossover}")
    z_rows = torch.cat([gen.latents(1, s) for s in rows])
    z_cols = torch.cat([gen.latents(1, s) for s in cols])
    w_rows, w_cols = gen.ws(z_rows, truncation=truncation), gen.ws(z_cols, truncation=truncation)
    r, c = len(rows), len(cols)
    mixed = mix_styles(w_cols[None].expand(r, -1, -1, -1).reshape(r * c, num_ws, -1),
                       w_rows[:, None].expand(-1, c, -1, -1).reshape(r * c, num_ws, -1), crossover)
    row_imgs, col_imgs, cells = gen.synthesize(w_rows), gen.synthesize(w_cols), gen.synthesize(mixed)
    blank = torch.ones_like(row_imgs[:1])
    grid = [blank, col_imgs]
    for i in range(r):
        grid += [row_imgs[i : i + 1], cells[i * c : (i + 1) * c]]
    return torch.cat(grid)


def run(args: argparse.Namespace) -> int:
    from gankit.data.images import make_grid
    from gankit.errors import UserError
    from gankit.tasks.gan import check_truncation, load

    rows, cols = _seeds(args.rows, "--rows"), _seeds(args.cols, "--cols")
    check_truncation(args.truncation)
    out = Path(args.out)
    if out.suffix.lower() != ".png":
        raise UserError(f"--out must end in .png, got '{out.name}'")
    if not out.parent.exists():
        raise UserError(f"output folder does not exist: {out.parent}")
    gen = load(args.run_dir)
    x = style_mix_grid(gen, rows, cols, args.crossover, args.truncation)
    make_grid(x, nrow=len(cols) + 1, scale=max(1, 64 // x.shape[-1])).save(out)
    print(f"wrote {out}")
    return 0
