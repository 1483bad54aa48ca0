"""gankit project: find the w whose StyleGAN2 image matches a given image (Karras et al., 2020, sec. 5).

Optimises one w (shared by all layers), starting from ``w_avg``, with Adam on a pixel loss plus the
same loss on 2x and 4x downsampled copies (a multi-scale loss that weighs overall shape over exact pixels).
LPIPS would be the paper's perceptual distance; it needs downloaded network weights, which gankit does not
fetch, so it is not used.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.nn import functional as F


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("project", help="project an image into a StyleGAN2 run's w space",
                       description="Optimise w so that the run's generator reproduces IMG (resized and "
                       "centre-cropped to the run's size). Writes DIR/target.png, DIR/projected.png, "
                       "DIR/compare.png (target | projection), DIR/w.safetensors (the w, shape 1 x w_dim) "
                       "and DIR/projection.json (losses).")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--image", required=True, metavar="IMG", help="the image to project")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created)")
    p.add_argument("--steps", type=int, default=300, help="optimisation steps (default 300)")
    p.add_argument("--lr", type=float, default=0.05, help="Adam learning rate on w (default 0.05)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def multiscale_mse(x: Tensor, target: Tensor, levels: int = 3) -> Tensor:
    """Mean squared error at full, half and quarter resolution, summed."""
    loss = x.new_zeros(())
    for i in range(levels):
        if i:
            x, target = F.avg_pool2d(x, 2), F.avg_pool2d(target, 2)
        loss = loss + F.mse_loss(x, target)
    return loss


def project(gen: Any, target: Tensor, steps: int = 300, lr: float = 0.05, seed: int = 0,
            progress: bool = True) -> tuple[Tensor, Tensor, list[float]]:
    """w (1, w_dim), its image and the loss per step for ``target`` (1, C, H, W) in [-1, 1]."""
    from tqdm import tqdm

    from gankit.errors import UserError

    if not gen.style_based:
        raise UserError(f"projection needs a StyleGAN2 run (g.family=stylegan2), not {gen.config.g.family}")
    if steps <= 0 or lr <= 0:
        raise UserError("--steps and --lr must be positive")
    G = gen.G
    torch.manual_seed(seed)
    device = G.w_avg.device
    target = target.to(device)
    # start from w_avg, slightly perturbed so two seeds can find different optima
    w_std = G.mapping(torch.randn(256, G.z_dim, device=device),
                      torch.zeros(256, dtype=torch.long, device=device) if G.num_classes else None).std(0).mean()
    w = (G.w_avg[None] + 0.05 * w_std * torch.randn_like(G.w_avg[None])).detach().requires_grad_(True)
    opt = torch.optim.Adam([w], lr=lr, betas=(0.9, 0.999))
    G.requires_grad_(False)
    losses = []
    for step in tqdm(range(steps), desc="project", disable=not progress):
        for group in opt.param_groups:  # warm up then cosine down, as the paper's projector
            t = step / steps
            group["lr"] = lr * min(1.0, t / 0.05) * 0.5 * (1 + torch.cos(torch.tensor(t * torch.pi)).item())
        img = G.synthesis(w[:, None].expand(-1, G.num_ws, -1), G.noise_mode)
        loss = multiscale_mse(img, target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    with torch.no_grad():
        img = G.synthesis(w[:, None].expand(-1, G.num_ws, -1), G.noise_mode)
    return w.detach().cpu(), img.cpu(), losses


def run(args: argparse.Namespace) -> int:
    import numpy as np
    from safetensors.torch import save_file

    from gankit.data.images import make_grid, read_image, resize_center_crop, save_image
    from gankit.errors import UserError
    from gankit.tasks.gan import load

    image = Path(args.image)
    if not image.is_file():
        raise UserError(f"image not found: {image}")
    gen = load(args.run_dir)
    if gen.data_meta["kind"] != "image":
        raise UserError("projection needs an image run")
    c, side = gen.data_meta["shape"][0], gen.data_meta["shape"][-1]
    im = resize_center_crop(read_image(image, c), side)
    arr = np.asarray(im, dtype=np.float32).reshape(side, side, c)
    target = torch.from_numpy(arr).permute(2, 0, 1)[None] / 127.5 - 1
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out must be a folder, but {out} is a file")
    w, img, losses = project(gen, target, args.steps, args.lr, args.seed)
    out.mkdir(parents=True, exist_ok=True)
    save_image(target[0], out / "target.png")
    save_image(img[0], out / "projected.png")
    make_grid(torch.cat([target, img]), nrow=2, scale=max(1, 128 // side)).save(out / "compare.png")
    save_file({"w": w.contiguous()}, str(out / "w.safetensors"))
    mse = float(F.mse_loss(img.clamp(-1, 1), target))
    (out / "projection.json").write_text(json.dumps({
        "image": str(image), "run_dir": str(args.run_dir), "steps": args.steps, "lr": args.lr,
        "final_loss": losses[-1], "initial_loss": losses[0], "pixel_mse": mse,
        "psnr_db": float(10 * np.log10(4.0 / max(mse, 1e-12)))}, indent=2))
    print(f"projected {image} into {out} (pixel MSE {mse:.4f}, multi-scale loss {losses[0]:.4f} -> {losses[-1]:.4f})")
    return 0
