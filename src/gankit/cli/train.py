"""gankit train: train a GAN from a preset or a YAML config into a run folder."""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from gankit.config import PRESETS, Config, all_keys, apply_overrides, preset


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a GAN into a run folder",
                       description="Train a GAN. Starts from --preset (default: digits) or --config FILE, "
                       "then applies --set overrides. The run folder receives config.yaml, checkpoints/, "
                       "metrics.jsonl, samples/ and summary.json. Several processes or GPUs: launch with "
                       "torchrun --nproc_per_node=N -m gankit train ... (global batch = data.batch_size x N).",
                       epilog="Config keys for --set: " + ", ".join(all_keys()))
    src = p.add_mutually_exclusive_group()
    src.add_argument("--preset", help=f"a built-in starting point: {', '.join(PRESETS)} (default: digits)")
    src.add_argument("--config", metavar="FILE", help="a YAML config (e.g. a run folder's config.yaml)")
    p.add_argument("--set", dest="overrides", metavar="KEY=VALUE", action="append", default=[],
                   help="override one config value, e.g. --set loss.name=hinge (repeatable)")
    p.add_argument("--out", required=True, metavar="RUN_DIR", help="the run folder to write")
    p.add_argument("--steps", type=int, help="generator steps in total (overrides train.steps)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--print-config", action="store_true", help="print the resolved config as YAML and exit")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gankit.errors import UserError
    from gankit.tasks.gan import info, train

    saved = Path(args.out) / "config.yaml"
    if args.config:
        config = Config.load(args.config)
    elif args.resume and not args.preset and saved.is_file():
        config = Config.load(saved)  # so that --resume without --steps keeps the run's own length
    else:
        config = preset(args.preset or "digits")
    config = apply_overrides(config, args.overrides)
    if args.steps is not None:
        if args.steps < 0:
            raise UserError(f"--steps must be >= 0, got {args.steps}")
        config.train.steps = args.steps
    if args.quiet:
        config.log.progress = False
    config.validate()
    if args.print_config:
        print(config.to_yaml(), end="")
        return 0
    from gankit.distributed import world

    out = Path(args.out)
    created = not out.exists()
    main = world().is_main  # under torchrun only rank 0 touches the run folder and prints
    try:
        summary = train(config, out, steps=args.steps, resume=args.resume)
        if not main:
            return 0
        about = info(out)
    except BaseException:
        # A run that failed before its first checkpoint leaves no half-written folder behind.
        if main and created and out.is_dir() and not (out / "checkpoints" / "manifest.json").exists():
            shutil.rmtree(out, ignore_errors=True)
        raise
    from gankit.cli.info import format_info

    print(format_info(about))
    if summary["interrupted"]:
        print(f"stopped at step {summary['step']}; continue with: gankit train --out {args.out} --resume")
    elif summary.get("stop_reason"):
        print(f"gankit train: stopped at step {summary['step']}: {summary['stop_reason']}", file=sys.stderr)
    return 0
