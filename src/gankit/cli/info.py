"""gankit info: what a run folder holds."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="summarise a run folder", description="Print a run's config summary, "
                       "steps trained, last logged losses and D outputs, and its checkpoints.")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gankit.tasks.gan import info

    data = info(args.run_dir)
    print(json.dumps(data, indent=1) if args.json else format_info(data))
    return 0


def format_info(data: dict) -> str:
    """A run's summary as aligned ``key  value`` lines (one screen)."""
    width = max(len(k) for k in data)
    lines = []
    for key, value in data.items():
        if isinstance(value, dict):
            value = "  ".join(f"{k}={v}" for k, v in value.items())
        lines.append(f"{key:<{width}}  {value}")
    return "\n".join(lines)
