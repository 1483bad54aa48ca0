"""gankit eval: FID, KID, IS, precision/recall, density/coverage, mode coverage and classifier scores."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval", help="measure a trained run (or a set of samples) against real data",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Compare generated samples with real ones.\n\n"
        "  gankit eval RUN_DIR [--ref DATA]   draws --n samples from the run's EMA generator and compares\n"
        "                                      them with DATA (default: the run's training data)\n"
        "  gankit eval --real A --fake B      compares two sets directly\n\n"
        "DATA, A and B are a built-in data set (digits, ring8, grid25; add :train or :test for a fixed\n"
        "80/20 split, e.g. digits:test), an image folder, or a .npy/.npz file (array 'samples' or\n"
        "'images', optional 'labels'). Features are computed batch by batch; the reference set's\n"
        "features are cached under $GANKIT_HOME/cache (default ~/.cache/gankit) by a hash of the data\n"
        "and the feature network, so evaluating again against the same data does not recompute them.",
        epilog="Metrics: fid, kid (kid_mean, kid_std), is (is_mean, is_std), pr (precision, recall; k=3),\n"
        "dc (density, coverage; k=5), modes (modes, hq, reverse_kl; toy mixtures with --features raw),\n"
        "agreement (share of a conditional run's samples the classifier puts in their own class) and\n"
        "cas (classification accuracy score: a classifier trained on generated samples, tested on real).\n\n"
        "Features: classifier (penultimate layer of a small CNN trained on the real data: `gankit classifier\n"
        "train`, or trained once and cached when --classifier is not given), inception (the FID\n"
        "Inception-v3; needs the weights file, see --weights), raw (flattened values). Default auto:\n"
        "classifier for labelled reference data, raw otherwise.")
    p.add_argument("run_dir", nargs="?", metavar="RUN_DIR", help="a run folder written by gankit train")
    p.add_argument("--ref", metavar="DATA", help="reference data for RUN_DIR (default: the run's training data)")
    p.add_argument("--real", metavar="DATA", help="real set, compared with --fake")
    p.add_argument("--fake", metavar="DATA", help="generated set, compared with --real")
    p.add_argument("--n", type=int, default=10_000, help="samples drawn from RUN_DIR's generator (default 10000)")
    p.add_argument("--metrics", default="fid,kid,pr,dc", help="comma-separated (default fid,kid,pr,dc)")
    p.add_argument("--features", default="auto", choices=["auto", "classifier", "inception", "raw"],
                   help="feature space of the metrics (default auto)")
    p.add_argument("--classifier", metavar="FILE", help="a classifier file for --features classifier")
    p.add_argument("--weights", metavar="FILE",
                   help="Inception weights (pt_inception-2015-12-05-6726825d.pth; default $GANKIT_HOME/weights/)")
    p.add_argument("--seed", type=int, default=0, help="latents and KID subsets (default 0)")
    p.add_argument("--truncation", type=float, default=1.0, metavar="PSI", help="latent truncation (default 1)")
    p.add_argument("--batch-size", type=int, default=256, help="samples per feature batch (default 256)")
    p.add_argument("--device", default="cpu", help="device of the generator: cpu, cuda, auto (default cpu)")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the reference cache")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gankit.errors import UserError
    from gankit.eval import evaluate, format_table

    if args.run_dir is None and (args.real is None or args.fake is None):
        raise UserError("give a RUN_DIR, or both --real and --fake")
    if args.ref is not None and args.run_dir is None:
        raise UserError("--ref goes with RUN_DIR; to compare two sets use --real and --fake")
    result = evaluate(args.run_dir, ref=args.ref, real=args.real, fake=args.fake, n=args.n, metrics=args.metrics,
                      features=args.features, classifier=args.classifier, weights=args.weights,
                      batch_size=args.batch_size, seed=args.seed, truncation=args.truncation, device=args.device,
                      cache=not args.no_cache, progress=False if args.quiet else None)
    print(json.dumps(result) if args.json else format_table(result))
    return 0
