"""gankit sequence: text and music models (a next-token language model and sequence GANs).

``fit`` trains into a run folder, ``sample`` writes text lines or .mid files, ``eval`` measures a run.
"""

from __future__ import annotations

import argparse
import json

DATA_HELP = ("a text file (one sequence per line), a .mid file or a folder of them, or a built-in set: "
             "words (Debian's word list, letters), fortunes (short fortunes, words), chorales (Bach, music21)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sequence", help="text and music: language model vs sequence GANs",
                       description="Generate token sequences (text, MIDI). 'fit' trains a model into a run "
                       "folder, 'sample' draws from it, 'eval' measures it (BLEU-4, self-BLEU, novelty, "
                       "NLL for text; MuseGAN statistics for music).")
    verbs = p.add_subparsers(dest="verb", metavar="VERB", parser_class=type(p))
    verbs.required = True

    f = verbs.add_parser("fit", help="train a language model or a sequence GAN",
                         description="Train on DATA into --out. lm: an LSTM by maximum likelihood. gan: the "
                         "same LSTM as a generator against a CNN discriminator, after MLE pre-training, through "
                         "the adversarial engine; --estimator gumbel (Gumbel-softmax, annealed temperature) or "
                         "reinforce (SeqGAN policy gradient with rollouts). pianoroll-gan: a MuseGAN-style "
                         "convolutional GAN on 4-bar piano-rolls (MIDI only).")
    f.add_argument("data", metavar="DATA", help=DATA_HELP)
    f.add_argument("--out", required=True, metavar="RUN_DIR", help="the run folder to write")
    f.add_argument("--kind", choices=["auto", "text", "midi"], default="auto",
                   help="what DATA is (default: midi for chorales and .mid files, else text)")
    f.add_argument("--model", choices=["lm", "gan", "pianoroll-gan"], default="lm", help="(default lm)")
    f.add_argument("--estimator", choices=["gumbel", "reinforce"], help="gan: gradient estimator (default gumbel)")
    f.add_argument("--level", choices=["auto", "char", "word"], help="text tokens (default: char for words, "
                   "word otherwise)")
    f.add_argument("--steps", type=int, help="lm: MLE steps; GANs: adversarial steps (default 2000; "
                   "unlimited when --seconds is given)")
    f.add_argument("--seconds", type=float, help="time budget for training, pre-training included")
    f.add_argument("--clock", choices=["wall", "cpu"], help="the budget's clock: wall (default) or this "
                   "process's CPU time (fair comparisons on a shared machine)")
    f.add_argument("--pretrain-steps", type=int, help="gan without --seconds: MLE pre-training steps (default 1000)")
    f.add_argument("--pretrain-share", type=float, help="gan with --seconds: share of it for pre-training "
                   "(default 0.5)")
    f.add_argument("--max-len", type=int, help="tokens per sequence incl. end token (default: longest + 1)")
    f.add_argument("--drop-long", action="store_true", default=None,
                   help="drop sequences longer than --max-len instead of refusing the data")
    f.add_argument("--rollouts", type=int, help="reinforce: Monte-Carlo rollouts per prefix (default 4)")
    f.add_argument("--hidden", type=int, help="LSTM units (default 256)")
    f.add_argument("--batch-size", type=int, help="(default 64)")
    f.add_argument("--seed", type=int, help="(default 0)")
    f.add_argument("--set", dest="overrides", metavar="KEY=VALUE", action="append", default=[],
                   help="any other option of gankit.tasks.sequence.SequenceConfig, e.g. --set tau_end=0.05")
    f.add_argument("--quiet", action="store_true", help="no progress bars")
    f.set_defaults(func=run_fit)

    s = verbs.add_parser("sample", help="write samples: text lines or .mid files",
                         description="Draw N samples. A text run writes one sample per line to --out; a MIDI "
                         "run writes FILE.mid (N=1), FILE-000.mid ... (N>1), or .mid files into a folder.")
    s.add_argument("run_dir", metavar="RUN_DIR")
    s.add_argument("--n", type=int, default=20, help="number of samples (default 20)")
    s.add_argument("--out", required=True, metavar="FILE", help="a text file, FILE.mid or a folder")
    s.add_argument("--seed", type=int, default=0, help="the same seed gives the same samples (default 0)")
    s.add_argument("--temperature", type=float, default=1.0, help="below 1: safer, less varied (default 1)")
    s.add_argument("--top-k", type=int, default=0, help="sample among the k likeliest tokens (0: all)")
    s.set_defaults(func=run_sample)

    e = verbs.add_parser("eval", help="measure a run against reference data",
                         description="Text: BLEU-4 against --ref (quality), self-BLEU-4 (lower = more "
                         "diverse), novelty (share not in the training split), NLL of the samples under "
                         "--lm (or the run itself when it is a language model) and, for an LM, held-out "
                         "NLL and perplexity. Music: MuseGAN statistics of generated vs reference.")
    e.add_argument("run_dir", metavar="RUN_DIR")
    e.add_argument("--ref", metavar="DATA", help="reference data (default: the run's held-out split)")
    e.add_argument("--lm", metavar="LM_RUN_DIR", help="a language-model run that scores the samples")
    e.add_argument("--n", type=int, default=500, help="samples to draw (default 500)")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--temperature", type=float, default=1.0)
    e.add_argument("--top-k", type=int, default=0)
    e.add_argument("--json", action="store_true", help="print JSON instead of a table")
    e.set_defaults(func=run_eval)


def _overrides(pairs: list[str]) -> dict[str, object]:
    import dataclasses

    from gankit.errors import UserError
    from gankit.tasks.sequence import SequenceConfig

    types = {f.name: f.type for f in dataclasses.fields(SequenceConfig)}
    out: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise UserError(f"--set expects KEY=VALUE, got '{pair}'")
        if key not in types:
            raise UserError(f"--set: unknown option '{key}'; options: {', '.join(types)}")
        kind = types[key]
        try:
            if kind == "bool":
                if value.lower() not in ("true", "false", "1", "0"):
                    raise ValueError
                out[key] = value.lower() in ("true", "1")
            else:
                out[key] = {"int": int, "float": float}.get(str(kind), str)(value)
        except ValueError:
            raise UserError(f"--set {key}: expected a {kind}, got '{value}'") from None
    return out


def run_fit(args: argparse.Namespace) -> int:
    from gankit.tasks.sequence import SequenceConfig, fit

    opts = _overrides(args.overrides)
    opts.update({"kind": args.kind, "estimator": args.estimator, "level": args.level, "steps": args.steps,
                 "seconds": args.seconds, "clock": args.clock, "pretrain_steps": args.pretrain_steps,
                 "pretrain_share": args.pretrain_share, "max_len": args.max_len, "drop_long": args.drop_long,
                 "rollouts": args.rollouts, "hidden": args.hidden, "batch_size": args.batch_size,
                 "seed": args.seed})
    if args.seconds and args.steps is None:
        opts["steps"] = 10**9  # the budget stops the run
    if args.quiet:
        opts["progress"] = False
    if args.model == "pianoroll-gan" and args.kind == "auto":
        opts["kind"] = "midi"
    cfg = SequenceConfig.for_model(args.model, **opts)
    summary = fit(args.data, args.out, cfg)
    print(json.dumps(summary, indent=1))
    return 0


def run_sample(args: argparse.Namespace) -> int:
    from gankit.tasks.sequence import load, write_samples

    run = load(args.run_dir)
    paths = write_samples(run, args.n, args.out, seed=args.seed, temperature=args.temperature, top_k=args.top_k)
    where = paths[0] if len(paths) == 1 else f"{paths[0].parent} ({len(paths)} files)"
    print(f"wrote {args.n} samples to {where}")
    return 0


def run_eval(args: argparse.Namespace) -> int:
    from gankit.tasks.sequence import evaluate

    result = evaluate(args.run_dir, ref=args.ref, n=args.n, seed=args.seed, temperature=args.temperature,
                      top_k=args.top_k, lm_run=args.lm)
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    for key, value in result.items():
        if isinstance(value, dict):
            print(f"{key}:")
            for k, v in value.items():
                print(f"  {k:24s} {v:.4f}" if isinstance(v, float) else f"  {k:24s} {v}")
        elif isinstance(value, list):
            print(f"{key}:")
            for item in value:
                print(f"  {item}")
        else:
            print(f"{key:26s} {value:.4f}" if isinstance(value, float) else f"{key:26s} {value}")
    return 0
