"""gankit doctor: diagnose a run folder's training health from its metrics.jsonl and events.jsonl."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("doctor", help="diagnose a run's training health, with remedies",
                       description="Read RUN_DIR/metrics.jsonl (and events.jsonl) and report what went wrong "
                       "in training: mode_collapse, vanishing_gradients, d_overpowers, g_overpowers, "
                       "oscillation, divergence (or converging when the run looks healthy). Each finding "
                       "has the steps it covers, the numbers behind it and a remedy. Exit code 0 either way.",
                       epilog="The same diagnoses run live while training (health.enabled, default on).")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run folder written by gankit train")
    p.add_argument("--json", action="store_true",
                   help='print {"findings": [{"code", "first_step", "last_step", "evidence", "remedy"}], '
                   '"verdict": "healthy" | "unhealthy"}')
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gankit.health import doctor

    result = doctor(args.run_dir)
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    print(format_diagnosis(result))
    return 0


def format_diagnosis(result: dict) -> str:
    lines = [f"verdict: {result['verdict']}"]
    if not result["findings"]:
        lines.append("no findings: no failure pattern, and not (yet) settled at equilibrium")
    for f in result["findings"]:
        evidence = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in f["evidence"].items())
        lines += [f"{f['code']}  steps {f['first_step']}-{f['last_step']}", f"  evidence: {evidence}",
                  f"  remedy:   {f['remedy']}"]
    return "\n".join(lines)
