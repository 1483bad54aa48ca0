"""The ``gankit`` command: one module per verb, each with ``register(subparsers)``.

A verb parses its arguments, calls the Python API and prints. Problems with the user's input are
:class:`~gankit.errors.UserError`; they become one line on stderr and exit code 2, never a traceback.
What the system refuses (a full disk, a folder without write permission) is one line and exit code 1.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings
from typing import Any

from gankit.errors import UserError

# Verb modules under gankit.cli, in the order --help lists them.
COMMANDS = ["train", "sample", "interpolate", "info", "eval", "classifier", "doctor", "report", "augment", "sequence", "translate", "upscale", "tabular", "stylemix", "project"]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line and exit 2, like every other user error
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="gankit", description="Train, diagnose, measure and use generative adversarial "
                     "networks.", epilog="Run 'gankit COMMAND --help' for a command's options.")
    from gankit import __version__

    parser.add_argument("--version", action="version", version=f"gankit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS:
        importlib.import_module(f"gankit.cli.{name}").register(sub)
    return parser


def _one_line_warnings(command: str) -> Any:
    """Warnings as the CLI's errors look: one line naming the command, without Python's source location."""

    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int, file: Any = None,
             line: str | None = None) -> None:
        print(f"gankit {command}: warning: {' '.join(str(message).split())}", file=file or sys.stderr)

    return show


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            warnings.showwarning = _one_line_warnings(args.command)
            return int(args.func(args) or 0)
    except UserError as exc:
        message = " ".join(str(exc).split())  # one line, whatever the message quotes
        print(f"gankit {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"gankit {args.command}: interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        print(f"gankit {args.command}: error: out of memory; lower the batch size or --n", file=sys.stderr)
        return 2
    except OSError as exc:  # the system refused (disk full, permissions): not the user's input, but no traceback
        where = f": {exc.filename}" if exc.filename else ""
        print(f"gankit {args.command}: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 1
