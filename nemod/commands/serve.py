"""``nemod serve``: not built yet."""

from __future__ import annotations

import argparse
from typing import Any

from nemod.commands import add_config_option
from nemod.errors import NemodError


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the subcommand."""
    parser: argparse.ArgumentParser = subparsers.add_parser("serve", help="(not built yet)")
    add_config_option(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    """Not built yet."""
    raise NemodError("nemod serve is not built yet")
