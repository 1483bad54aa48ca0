"""gankit translate: unpaired image-to-image translation (CycleGAN) between two image folders."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

from PIL import Image


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("translate", help="unpaired image-to-image translation (CycleGAN)",
                       description="Train a CycleGAN between two folders of unpaired images (fit), "
                       "translate images with a trained run (apply), or score a run (eval).")
    actions = p.add_subparsers(dest="action", metavar="ACTION", parser_class=type(p))
    f = actions.add_parser("fit", help="train on two folders of images",
                           description="Train a CycleGAN (Zhu et al., 2017, with the paper's defaults: LSGAN "
                           "loss, cycle lambda 10, identity 0.5 lambda, history pool of 50, Adam 2e-4, lr "
                           "constant then linearly decayed) between the images of --a and --b. The run folder "
                           "receives config.yaml, checkpoints/, metrics.jsonl and samples/ grids of "
                           "input / translation / reconstruction. --semantic adds CyCADA's semantic "
                           "consistency (Hoffman et al., 2018) for folders with one sub-folder per class.",
                           epilog="--set keys: size, channels, batch_size, g_width, g_blocks, g_down, d_width, d_layers, "
                           "lambda_cycle, lambda_identity, lambda_semantic, semantic_epochs, pool_size, decay_start, opt_g.lr, opt_d.lr, "
                           "train.steps, train.seed, train.device, train.ema, log.every, log.checkpoint_every ...")
    f.add_argument("--a", required=True, metavar="DIR_A", help="folder of domain A images (searched recursively)")
    f.add_argument("--b", required=True, metavar="DIR_B", help="folder of domain B images")
    f.add_argument("--out", required=True, metavar="RUN_DIR", help="the run folder to write")
    f.add_argument("--size", type=int, help="training image side in pixels, a multiple of 4, >= 32 (default 128)")
    f.add_argument("--steps", type=int, help="generator steps (default 20000)")
    f.add_argument("--semantic", type=float, metavar="WEIGHT",
                   help="semantic consistency weight (default 0: the paper's CycleGAN). Needs class labels: "
                   "one sub-folder per class in --a and/or --b (the same names in both). A classifier trained on "
                   "each labelled domain's images must read every translation as its source's class, which "
                   "keeps the meaning (e.g. which digit) that the cycle loss alone does not protect")
    f.add_argument("--set", dest="overrides", metavar="KEY=VALUE", action="append", default=[],
                   help="override one config value, e.g. --set g_blocks=6 (repeatable)")
    f.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    f.add_argument("--quiet", action="store_true", help="no progress bar")
    f.set_defaults(func=run_fit)

    a = actions.add_parser("apply", help="translate an image or a folder with a trained run",
                           description="Translate one image (--in FILE --out FILE) or every image of a folder "
                           "(--in DIR --out DIR, PNG files with the same names). Each image is first scaled so "
                           "its short side is the training size (the scale the generators learnt), then "
                           "translated whole, fully convolutionally; --native keeps its own resolution.")
    a.add_argument("run_dir", metavar="RUN_DIR")
    a.add_argument("--in", dest="inp", required=True, metavar="PATH", help="an image file or a folder")
    a.add_argument("--out", required=True, metavar="PATH", help="an image file (.png, .jpg ...) or a folder")
    a.add_argument("--direction", choices=("a2b", "b2a"), default="a2b", help="a2b (default) or b2a")
    a.add_argument("--native", action="store_true", help="translate at the input's own resolution")
    a.set_defaults(func=run_apply)

    e = actions.add_parser("eval", help="score a trained run: target domain, labels kept, cycle error",
                           description="Score a trained run on real images of both domains (best: images it did "
                           "not train on). Half of each folder trains fresh judges (a domain classifier, and a "
                           "classifier per domain when both folders have one sub-folder per class); the other half "
                           "is translated both ways. Per direction: the share of translations judged as the target "
                           "domain, the share whose class the target domain's judge reads as the source's class "
                           "(labelled folders only), and the cycle reconstruction error (mean |x - F(G(x))|, "
                           "images in [-1, 1]). The judges' accuracy on the real held-out half is printed too.")
    e.add_argument("run_dir", metavar="RUN_DIR")
    e.add_argument("--a", required=True, metavar="DIR_A", help="folder of domain A images")
    e.add_argument("--b", required=True, metavar="DIR_B", help="folder of domain B images")
    e.add_argument("--epochs", type=int, help="judge training epochs (default: enough for about 600 updates, "
                   "8 to 200)")
    e.add_argument("--judge-size", type=int, default=32, help="judges see images at most this many pixels on a "
                   "side (default 32)")
    e.add_argument("--seed", type=int, default=0, help="the split and the judges' seed (default 0)")
    e.add_argument("--json", action="store_true", help="print the scores as one JSON object")
    e.set_defaults(func=run_eval)
    p.set_defaults(func=lambda args: p.print_help() or 2)


def run_fit(args: argparse.Namespace) -> int:
    from gankit.config import apply_overrides
    from gankit.errors import UserError
    from gankit.tasks.translate import TranslateConfig, fit

    cfg = apply_overrides(TranslateConfig(), args.overrides)
    if args.size is not None:
        cfg.size = args.size
    if args.semantic is not None:
        cfg.lambda_semantic = args.semantic
    if args.steps is not None:
        if args.steps < 0:
            raise UserError(f"--steps must be >= 0, got {args.steps}")
        cfg.train.steps = args.steps
    if args.quiet:
        cfg.log.progress = False
    # --resume continues with the run's saved config; only --steps may extend it
    config = None if args.resume and args.steps is None else cfg.validate()
    summary = fit(args.a, args.b, args.out, config, resume=args.resume)
    print(json.dumps({k: summary[k] for k in ("step", "steps", "finished", "train_seconds")}))
    if summary["interrupted"]:
        print(f"stopped at step {summary['step']}; continue with: gankit translate fit --a {args.a} --b {args.b} "
              f"--out {args.out} --resume")
    return 0


def run_apply(args: argparse.Namespace) -> int:
    from gankit.tasks.translate import load

    translator = load(args.run_dir)
    n = map_images(args.inp, args.out, lambda im: translator.translate_image(im, args.direction, args.native))
    print(f"translated {n} image(s) {args.direction} into {args.out}")
    return 0


def run_eval(args: argparse.Namespace) -> int:
    from gankit.errors import UserError
    from gankit.metrics.translation import translation_scores
    from gankit.tasks.translate import load, load_domain

    if (args.epochs is not None and args.epochs < 1) or args.judge_size < 8:
        raise UserError("--epochs must be >= 1 and --judge-size >= 8")
    translator = load(args.run_dir)
    size = translator.config.size
    a, b = load_domain(args.a, size, "a"), load_domain(args.b, size, "b")
    scores = translation_scores(translator, a, b, epochs=args.epochs, judge_size=args.judge_size, seed=args.seed)
    if args.json:
        print(json.dumps(scores, indent=1))
        return 0

    def pct(v: float | None) -> str:
        return "-" if v is None else f"{100 * v:.1f} %"

    print(f"{'direction':<10} {'judged target':>14} {'label kept':>11} {'cycle L1':>9} {'n':>6}")
    for d in ("a2b", "b2a"):
        r = scores[d]
        print(f"{d:<10} {pct(r['judged_target']):>14} {pct(r['label_kept']):>11} {r['cycle_l1']:>9.4f} {r['n']:>6}")
    j = scores["judges"]
    labels = "" if "label_accuracy_real_a" not in j else (
        f", labels A {pct(j['label_accuracy_real_a'])}, B {pct(j['label_accuracy_real_b'])}")
    print(f"judges on the real held-out half: domain {pct(j['domain_accuracy_real'])}{labels}")
    if scores["a2b"]["label_kept"] is None:
        print("label kept: '-' (needs one sub-folder per class in both --a and --b)")
    return 0


def map_images(inp: str | Path, out: str | Path, fn: Callable[[Image.Image], Image.Image]) -> int:
    """Apply ``fn`` to one image file (written to the file ``out``, or into the folder ``out``) or to every
    image of a folder (written as PNGs with the same relative names under the folder ``out``)."""
    from tqdm import tqdm

    from gankit.data.images import IMAGE_SUFFIXES, _is_grey, list_images, read_image
    from gankit.errors import UserError

    inp, out = Path(inp), Path(out)

    def one(src: Path, dest: Path) -> None:
        result = fn(read_image(src, 1 if _is_grey(src) else 3))
        try:
            result.save(dest)
        except (OSError, ValueError) as exc:
            raise UserError(f"{dest}: cannot write ({str(exc).splitlines()[0]})") from None

    if inp.is_dir():
        files = list_images(inp)
        if not files:
            raise UserError(f"{inp}: no images found")
        if out.suffix.lower() in IMAGE_SUFFIXES:
            raise UserError(f"--in is a folder, so --out must be a folder, not {out}")
        for src in tqdm(files, desc="images", unit="img", disable=len(files) < 4):
            dest = out / src.relative_to(inp).with_suffix(".png")
            dest.parent.mkdir(parents=True, exist_ok=True)
            one(src, dest)
        return len(files)
    if not inp.is_file():
        raise UserError(f"input not found: {inp}")
    if out.is_dir():
        out = out / inp.with_suffix(".png").name
    elif out.suffix.lower() not in IMAGE_SUFFIXES:
        raise UserError(f"{out}: unknown image format; use one of {', '.join(sorted(IMAGE_SUFFIXES))} or a folder")
    elif not out.parent.is_dir():
        raise UserError(f"output folder does not exist: {out.parent}")
    one(inp, out)
    return 1
