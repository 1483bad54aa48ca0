"""gankit upscale: super-resolution (SRGAN) at x2 or x4."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("upscale", help="super-resolution x2 / x4 (SRGAN)",
                       description="Train an SRGAN on photos (fit), upscale images with a trained run "
                       "(apply), or measure PSNR/SSIM against bicubic (eval).")
    actions = p.add_subparsers(dest="action", metavar="ACTION", parser_class=type(p))
    f = actions.add_parser("fit", help="train on a folder of photos or a built-in set",
                           description="Train an SRGAN (Ledig et al., 2017) on random patches of high-resolution "
                           "images: first pixel-loss (MSE) pre-training of the SRResNet generator, then "
                           "adversarial fine-tuning. Built-in data: 'photos' (photos bundled with scikit-learn "
                           "and scikit-image; china, astronaut and coffee are held out as 'photos-heldout').",
                           epilog="--set keys: patch, batch_size, width, n_blocks, d_width, pretrain_steps, "
                           "content (pixel|vgg54), feature_weights, pixel_weight, feature_weight, adv_weight, "
                           "opt_g.lr, opt_d.lr, train.steps, train.seed, train.device, train.ema, log.every ...")
    f.add_argument("--data", required=True, metavar="DIR_OR_BUILTIN", help="image folder, or: photos")
    f.add_argument("--out", required=True, metavar="RUN_DIR", help="the run folder to write")
    f.add_argument("--scale", type=int, default=4, choices=(2, 4), help="upscaling factor (default 4)")
    f.add_argument("--steps", type=int, help="generator steps in all (default 20000)")
    f.add_argument("--pretrain-steps", type=int, help="of which pixel-loss pre-training (default half)")
    f.add_argument("--set", dest="overrides", metavar="KEY=VALUE", action="append", default=[],
                   help="override one config value, e.g. --set n_blocks=8 (repeatable)")
    f.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    f.add_argument("--quiet", action="store_true", help="no progress bar")
    f.set_defaults(func=run_fit)

    a = actions.add_parser("apply", help="upscale an image or a folder",
                           description="Upscale one image (--in FILE --out FILE) or every image of a folder "
                           "(--in DIR --out DIR, PNG files). Any size: the image is processed in tiles of "
                           "--tile low-resolution pixels overlapping by --overlap and cross-faded, so memory "
                           "stays bounded and seams do not show.")
    a.add_argument("run_dir", metavar="RUN_DIR")
    a.add_argument("--in", dest="inp", required=True, metavar="PATH", help="an image file or a folder")
    a.add_argument("--out", required=True, metavar="PATH", help="an image file (.png ...) or a folder")
    a.add_argument("--tile", type=int, default=128, help="tile side in input pixels (default 128)")
    a.add_argument("--overlap", type=int, default=32, help="tile overlap in input pixels (default 32)")
    a.add_argument("--pretrained", action="store_true",
                   help="use the generator at the end of pixel pre-training (SRResNet) instead of the final one")
    a.set_defaults(func=run_apply)

    e = actions.add_parser("eval", help="PSNR / SSIM against bicubic on high-resolution images",
                           description="Downscale each image bicubically by the run's scale, upscale it back "
                           "with bicubic, the pre-trained and the final generator, and print PSNR (dB) and "
                           "SSIM on the Y channel with a border of `scale` pixels cropped, as JSON.")
    e.add_argument("run_dir", metavar="RUN_DIR")
    e.add_argument("--data", default="photos-heldout", metavar="DIR_OR_BUILTIN",
                   help="image folder or built-in set (default photos-heldout)")
    e.set_defaults(func=run_eval)
    p.set_defaults(func=lambda args: p.print_help() or 2)


def run_fit(args: argparse.Namespace) -> int:
    from gankit.config import apply_overrides
    from gankit.errors import UserError
    from gankit.tasks.upscale import UpscaleConfig, fit

    cfg = apply_overrides(UpscaleConfig(scale=args.scale), args.overrides)
    cfg.scale = args.scale
    if args.steps is not None:
        if args.steps < 0:
            raise UserError(f"--steps must be >= 0, got {args.steps}")
        cfg.train.steps = args.steps
        if args.pretrain_steps is None and not any(o.startswith("pretrain_steps=") for o in args.overrides):
            cfg.pretrain_steps = args.steps // 2
    if args.pretrain_steps is not None:
        cfg.pretrain_steps = args.pretrain_steps
    if args.quiet:
        cfg.log.progress = False
    # --resume continues with the run's saved config; only --steps may extend it
    config = None if args.resume and args.steps is None else cfg.validate()
    summary = fit(args.data, args.out, config, resume=args.resume)
    print(json.dumps({k: summary[k] for k in ("step", "steps", "finished", "train_seconds")}))
    if summary["interrupted"]:
        print(f"stopped at step {summary['step']}; continue with: gankit upscale fit --data {args.data} "
              f"--out {args.out} --resume")
    return 0


def run_apply(args: argparse.Namespace) -> int:
    from gankit.cli.translate import map_images
    from gankit.errors import UserError
    from gankit.tasks.upscale import load

    if args.tile <= 0 or not 0 <= args.overlap < args.tile:
        raise UserError(f"need --tile > 0 and 0 <= --overlap < --tile, got {args.tile} and {args.overlap}")
    up = load(args.run_dir, phase="pretrain" if args.pretrained else "final")
    n = map_images(args.inp, args.out, lambda im: up.upscale_image(im, args.tile, args.overlap))
    print(f"upscaled {n} image(s) x{up.scale} into {args.out}")
    return 0


def run_eval(args: argparse.Namespace) -> int:
    from gankit.tasks.upscale import evaluate, load, load_images

    final = load(args.run_dir)
    images = load_images(args.data)
    result = {"scale": final.scale, "bicubic": evaluate(None, images, final.scale)["mean"],
              "pretrained": evaluate(load(args.run_dir, phase="pretrain"), images, final.scale)["mean"],
              "final": evaluate(final, images, final.scale)["mean"]}
    print(json.dumps(result, indent=1))
    return 0
