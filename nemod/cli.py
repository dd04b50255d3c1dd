"""The ``nemod`` command line.

Exit codes (also in README):

====  =========================================================
0     success
1     the command ran but failed (a job failed, a server refused)
2     bad configuration or usage (``nemod check`` found problems)
3     the daemon or a service it needs is unreachable
130   interrupted (Ctrl-C)
====  =========================================================

Errors are printed as one line on stderr; ``--debug`` adds the traceback.
Each subcommand lives in :mod:`nemod.commands` as ``add_parser`` + ``run``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback
from collections.abc import Sequence

from nemod import __version__
from nemod.errors import ConfigError, NemodError

EXIT_OK, EXIT_FAILED, EXIT_CONFIG, EXIT_UNREACHABLE, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

#: Subcommands, each the name of a module in nemod.commands.
COMMANDS = (
    "check", "explain", "process", "run", "demo", "serve", "credits", "status", "jobs", "retry", "forget", "pause", "resume",
    "password",
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="nemod", description="Watch folders and turn raw footage into edited MP4s."
    )
    parser.add_argument("--version", action="version", version=f"nemod {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        module = importlib.import_module(f"nemod.commands.{name}")
        sub = module.add_parser(subparsers)
        sub.set_defaults(handler=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args))
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return EXIT_CONFIG
    except NemodError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"nemod: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("nemod: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - the CLI's last line of defence: one line, not a trace
        if args.debug:
            traceback.print_exc()
        print(f"nemod: unexpected error: {type(exc).__name__}: {exc} (run with --debug for details)", file=sys.stderr)
        return EXIT_FAILED
