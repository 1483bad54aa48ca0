"""gankit tabular: synthetic tables from a CSV file (fit, sample, report)."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from contextlib import closing
from pathlib import Path

CHUNK_ROWS = 100_000  # rows `tabular sample` generates and writes at a time (memory stays flat for any --n)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tabular", help="synthetic tables: fit a CTGAN-class model to a CSV, sample, report",
                       description="A conditional tabular GAN (mode-specific normalisation, training-by-sampling, "
                       "PacGAN, WGAN-GP) for CSV files with numeric, integer, categorical, boolean and date "
                       "columns, missing values included.")
    verbs = p.add_subparsers(dest="verb", metavar="VERB", parser_class=type(p))
    verbs.required = True

    f = verbs.add_parser("fit", help="learn a table", description="Fit a model to DATA.csv and write the run "
                         "folder RUN_DIR (model.json + model.safetensors, logs, checkpoint). Column types are "
                         "inferred and printed; override them with --discrete or --type. A failed or "
                         "interrupted fit leaves no RUN_DIR behind.")
    f.add_argument("data", metavar="DATA.csv", help="the table to learn: CSV or TSV with a header row")
    f.add_argument("--out", required=True, metavar="RUN_DIR", help="run folder to create (must not hold a run)")
    f.add_argument("--epochs", type=int, default=300, help="passes over the data (default 300)")
    f.add_argument("--batch-size", type=int, default=500, help="rows per step, a multiple of 10 (default 500)")
    f.add_argument("--discrete", default="", metavar="COL1,COL2", help="columns to treat as categorical")
    f.add_argument("--type", action="append", default=[], metavar="COL=KIND", help="force a column's type: "
                   "continuous, integer, categorical, boolean or datetime (repeatable)")
    f.add_argument("--constraint", action="append", default=[], metavar="EXPR",
                   help="a rule every sampled row keeps, e.g. 'start <= end' or 'age >= 18' (repeatable)")
    f.add_argument("--seed", type=int, default=0, help="random seed (default 0); the same data, seed, --threads and CPU give the same model")
    f.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: PyTorch's choice)")
    f.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    f.add_argument("--precision", choices=("auto", "fp32", "bf16"), default=None,
                   help="the training step's arithmetic: bf16 multiplies in bfloat16 (weights stay float32); auto "
                   "(the default) picks bf16 on a CPU with native bfloat16 products (AVX512-BF16 or AMX), "
                   "fp32 elsewhere")
    f.add_argument("--set", dest="overrides", metavar="KEY=VALUE", action="append", default=[],
                   help="override one model setting, e.g. --set gp_every=4 (repeatable). Keys: z_dim, g_dims, "
                   "d_dims, pack, lr_g, lr_d, betas, weight_decay, gp, gp_every, n_critic, max_modes, tau, "
                   "log_frequency, ema, reuse_fake (true: one generator pass a step, faster, less useful rows "
                   "on some tables)")
    f.set_defaults(func=fit)

    s = verbs.add_parser("sample", help="draw synthetic rows", description="Write N synthetic rows to a CSV. "
                         "--condition fixes a categorical or boolean column to a value. Rows are generated and "
                         f"written {CHUNK_ROWS:,} at a time, so memory stays flat for any N; up to that many, "
                         "they are the rows TabularGAN.sample(N, seed=SEED) returns.")
    s.add_argument("run_dir", metavar="RUN_DIR", help="a folder written by `gankit tabular fit`")
    s.add_argument("--n", type=int, required=True, help="number of rows")
    s.add_argument("--out", required=True, metavar="SYNTH.csv", help="file to write (.csv or .tsv); replaced only when complete")
    s.add_argument("--condition", action="append", default=[], metavar="COL=VALUE",
                   help="every row has this value in this categorical or boolean column (repeatable)")
    s.add_argument("--seed", type=int, default=0, help="the same seed gives the same rows (default 0)")
    s.set_defaults(func=sample)

    r = verbs.add_parser("report", help="fidelity, utility and privacy of a model's samples",
                         description="Sample as many rows as --real has and compare: fidelity (column shapes, "
                         "pair trends, overall), utility (models trained on synthetic vs real rows, scored on "
                         "--holdout, for each --target) and privacy (distance to closest record, exact copies). "
                         "Writes an HTML page with plots; --json also prints the figures.")
    r.add_argument("run_dir", metavar="RUN_DIR", help="a folder written by `gankit tabular fit`")
    r.add_argument("--real", required=True, metavar="DATA.csv", help="the training table")
    r.add_argument("--holdout", metavar="HOLDOUT.csv", help="real rows the model never saw")
    r.add_argument("--target", action="append", default=[], metavar="COL",
                   help="column to predict for machine-learning efficacy (repeatable; needs --holdout)")
    r.add_argument("--out", required=True, metavar="REPORT.html", help="the HTML report to write")
    r.add_argument("--json", action="store_true", help="print the figures as JSON on stdout")
    r.add_argument("--n", type=int, default=0, help="synthetic rows (default: as many as --real)")
    r.add_argument("--seed", type=int, default=0, help="seed for sampling and the scoring models (default 0)")
    r.set_defaults(func=report)


def _pairs(items: list[str], what: str) -> dict[str, str]:
    from gankit.errors import UserError

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"{what} '{item}': expected COL=VALUE")
        out[key.strip()] = value.strip()
    return out


def _out_file(path: str, suffixes: tuple[str, ...]) -> Path:
    from gankit.errors import UserError

    out = Path(path)
    if out.suffix.lower() not in suffixes:
        raise UserError(f"{out}: expected a {' or '.join(suffixes)} file")
    if not out.parent.exists():
        raise UserError(f"output folder does not exist: {out.parent}")
    if out.is_dir():
        raise UserError(f"{out}: a folder; give a file name")
    return out


def fit(args: argparse.Namespace) -> int:
    import dataclasses

    from gankit.config import apply_overrides
    from gankit.data.tables import read_csv
    from gankit.errors import UserError
    from gankit.tasks.tabular import TabularConfig, TabularGAN, check_one_process

    check_one_process()  # before anything is written
    out = Path(args.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{out} already exists and is not empty; choose another --out")
    config = TabularConfig(epochs=args.epochs, batch_size=args.batch_size, seed=args.seed, threads=args.threads,
                           device=args.device, constraints=args.constraint)
    if args.precision:
        config.precision = args.precision
    config = apply_overrides(config, args.overrides)
    df = read_csv(args.data)
    gan = TabularGAN(**dataclasses.asdict(config))
    discrete = [c.strip() for c in args.discrete.split(",") if c.strip()]
    out.parent.mkdir(parents=True, exist_ok=True)
    # Everything is written to a hidden sibling folder first and renamed at the end, so a failed or
    # interrupted fit leaves nothing half-written under --out.
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.partial-"))
    tmp.chmod(0o755)
    try:
        gan.fit(df, discrete_columns=discrete, column_types=_pairs(args.type, "--type"), run_dir=tmp)
        gan.save(tmp)
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    width = max(len(c) for c in gan.types)
    for col, kind in gan.types.items():
        print(f"  {col:<{width}}  {kind}")
    info = gan.fit_info
    print(f"fitted {info['rows']} rows x {len(gan.types)} columns in {info['fit_seconds']:.1f} s "
          f"({info['steps']} steps, {info['precision']}); run folder {out}")
    return 0


def sample(args: argparse.Namespace) -> int:
    from gankit import checkpoint as ckpt
    from gankit.tasks.tabular import TabularGAN

    out = _out_file(args.out, (".csv", ".tsv"))
    gan = TabularGAN.load(args.run_dir)
    # Written piece by piece, so the rows never all sit in memory, and atomically: an interrupted or failed
    # run leaves an existing file as it was.
    pieces = gan.sample_chunks(args.n, conditions=_pairs(args.condition, "--condition"), seed=args.seed,
                               chunk_rows=CHUNK_ROWS, progress=True)
    # pandas writes a datetime column as dates alone when every value in the frame is midnight: the format
    # must not change from one piece to the next
    stamps = [c for c, kind in gan.types.items() if kind == "datetime" and not gan.transformer.column(c).get("date_only")]
    rows = 0
    with closing(pieces), ckpt.atomic_open(out, "w", newline="", encoding="utf-8") as f:
        for df in pieces:
            for c in stamps:
                df[c] = df[c].dt.strftime("%Y-%m-%d %H:%M:%S")
            df.to_csv(f, index=False, header=rows == 0, sep="\t" if out.suffix.lower() == ".tsv" else ",")
            rows += len(df)
            del df  # (not held while the next piece is drawn)
    print(f"wrote {rows} rows to {out}")
    return 0


def report(args: argparse.Namespace) -> int:
    from gankit import checkpoint as ckpt
    from gankit.data.tables import read_csv
    from gankit.errors import UserError
    from gankit.metrics.tabular import evaluate
    from gankit.report_tabular import render
    from gankit.tasks.tabular import TabularGAN

    out = _out_file(args.out, (".html", ".htm"))
    gan = TabularGAN.load(args.run_dir)
    real = read_csv(args.real)
    holdout = read_csv(args.holdout) if args.holdout else None
    if args.target and holdout is None:
        raise UserError("--target needs --holdout (real rows the model never saw) to score the models on")
    n = args.n or len(real)
    synth = gan.sample(n, seed=args.seed)
    result = evaluate(real, synth, gan.types, holdout, args.target, seed=args.seed)
    result["model"] = {"run_dir": str(args.run_dir), "types": gan.types, "fit": gan.fit_info}
    ckpt.atomic_write_bytes(out, render(result, real, synth, gan.types, f"Synthetic table report: {args.run_dir}")
                            .encode())
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        fid = result["fidelity"]
        print(f"fidelity {fid['overall']:.3f} (shapes {fid['column_shape_score']:.3f}, "
              f"trends {fid['pair_trend_score']:.3f})", file=sys.stdout)
        for t, u in result["utility"].items():
            print(f"utility[{t}] {u['metric']}: synthetic {u['synthetic_mean']:.3f} vs real {u['real_mean']:.3f}")
        pv = result["privacy"]
        print(f"privacy: exact copies {pv['exact_copies_share']:.3%}, DCR median {pv['dcr_synthetic_median']:.3f}"
              + (f" (holdout {pv['dcr_holdout_median']:.3f})" if "dcr_holdout_median" in pv else ""))
        print(f"wrote {out}")
    return 0
