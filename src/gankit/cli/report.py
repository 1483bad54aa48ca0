"""gankit report: write a run's self-contained HTML report (curves, sample grids, diagnosis)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="write RUN_DIR/report/index.html (plots, samples, diagnosis)",
                       description="Write a self-contained HTML page for a run: sample grids over time, curves "
                       "of the losses, D(real)/D(fake), gradient norms, diversity and coverage, the evaluation "
                       "metrics if the run logged any, and the health diagnosis with its evidence. Images "
                       "are embedded, so the page opens offline and can be mailed as one file.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run folder written by gankit train")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gankit.report import build_report

    print(build_report(args.run_dir))
    return 0
