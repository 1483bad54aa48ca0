"""gankit augment / augment-report / agreement: a conditional GAN as a source of labelled training data."""

from __future__ import annotations

import argparse
import json
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("augment", help="write synthetic labelled data from a conditional run",
                       description="Write K synthetic samples per class from a conditional run's EMA generator: "
                       "a folder with one sub-folder per class (usable as --set data.source=DIR), or an .npz "
                       "with arrays 'samples', 'labels' and 'classes'.")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--n-per-class", type=int, required=True, metavar="K", help="samples per class")
    p.add_argument("--out", required=True, help="a new folder, or FILE.npz")
    p.add_argument("--seed", type=int, default=0, help="the same seed gives the same samples (default 0)")
    p.add_argument("--truncation", type=float, default=1.0, metavar="PSI", help="1 = none (default)")
    p.set_defaults(func=run_augment)

    p = sub.add_parser("augment-report", help="measure whether synthetic data helps a classifier",
                       description="The whole augmentation experiment. For each label budget L and seed: hold "
                       "out 30%% of the real data for testing, keep L labelled images per class, train a "
                       "conditional GAN on them, then train the same classifier on (real) the L images, "
                       "(real_classic) with random shifts, (real_synth) plus synthetic images, "
                       "(real_classic_synth) both, (synth) synthetic images only; report test accuracy "
                       "mean +- std over seeds and the gains of synthetic data.")
    p.add_argument("--data", default="digits", help="a labelled image data set (default digits)")
    p.add_argument("--labeled-per-class", default="10", metavar="L[,L2,...]",
                   help="labelled real images per class, e.g. 5,10,50 (default 10)")
    p.add_argument("--seeds", type=int, default=5, help="seeds per label budget (default 5)")
    p.add_argument("--size", type=int, default=16, help="image side in pixels (default 16)")
    p.add_argument("--gan-steps", type=int, default=1500, help="conditional GAN steps per run (default 1500)")
    p.add_argument("--synth-per-class", type=int, default=100, help="synthetic images per class (default 100)")
    p.add_argument("--classifier-steps", type=int, default=400,
                   help="classifier updates per arm, equal for every arm (default 400)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override the GAN's config (the digits preset made conditional)")
    p.add_argument("--plot", metavar="FILE.png", help="also plot accuracy against the label budget")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run_report)

    p = sub.add_parser("agreement", help="does a real-data classifier agree with a conditional run's labels?",
                       description="Label agreement: the share of generated samples of class c that a "
                       "classifier trained on real data (gankit classifier train) puts in class c, per class "
                       "and overall.")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--classifier", required=True, metavar="FILE", help="a classifier file")
    p.add_argument("--n-per-class", type=int, default=100, metavar="K", help="samples per class (default 100)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run_agreement)


def run_augment(args: argparse.Namespace) -> int:
    from gankit.tasks.augment import write_augmentation
    from gankit.tasks.gan import load

    out = write_augmentation(load(args.run_dir), args.n_per_class, args.out, args.seed, args.truncation)
    print(f"wrote {args.n_per_class} samples per class to {out}")
    return 0


def _budgets(text: str) -> list[int]:
    from gankit.errors import UserError

    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UserError(f"--labeled-per-class expects integers like 5,10,50, got '{text}'") from None
    if not values or min(values) <= 0:
        raise UserError(f"--labeled-per-class expects positive integers like 5,10,50, got '{text}'")
    return values


def run_report(args: argparse.Namespace) -> int:
    from gankit.errors import UserError
    from gankit.tasks.augment import ARMS, augment_report, plot_report

    for name in ("seeds", "gan_steps", "synth_per_class", "classifier_steps", "size"):
        if getattr(args, name) <= 0:
            raise UserError(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    report = augment_report(args.data, _budgets(args.labeled_per_class), args.seeds, args.size, args.gan_steps,
                            args.synth_per_class, args.classifier_steps, args.overrides,
                            progress=lambda line: print(line, file=sys.stderr, flush=True))
    if args.plot:
        plot_report(report, args.plot)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"{report['data']}: test accuracy on held-out real data, mean +- std over {report['seeds']} seeds")
    print(f"{'L/class':>8} " + " ".join(f"{a:>20}" for a in ARMS) + f" {'synth gain':>11} {'over classic':>12}")
    for r in report["results"]:
        cells = " ".join(f"{r[a]['mean']:>13.3f} +- {r[a]['std']:.3f}" for a in ARMS)
        print(f"{r['labeled_per_class']:>8} {cells} {r['gain_synth_over_real']:>+11.3f} "
              f"{r['gain_synth_over_classic']:>+12.3f}")
    return 0


def run_agreement(args: argparse.Namespace) -> int:
    from gankit.classifier import Classifier
    from gankit.errors import UserError
    from gankit.tasks.augment import label_agreement
    from gankit.tasks.gan import load

    if args.n_per_class <= 0:
        raise UserError(f"--n-per-class must be positive, got {args.n_per_class}")
    result = label_agreement(load(args.run_dir), Classifier.load(args.classifier), args.n_per_class, args.seed)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"label agreement: {result['overall']:.3f} over {result['n']} samples")
    for name, value in result["per_class"].items():
        print(f"  {name:>10}  {value:.3f}")
    return 0
