"""``nemod check``: validate the config and every rule; print all problems at once."""

from __future__ import annotations

import argparse
from typing import Any

from nemod.commands import add_config_option, load_config


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the subcommand."""
    parser: argparse.ArgumentParser = subparsers.add_parser("check", help="validate config and rules")
    add_config_option(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    """Exit 0 when valid; ConfigError (exit 2, all problems listed) otherwise."""
    config = load_config(args)
    print(
        f"{config.path}: OK ({len(config.rules)} rules, {len(config.watches)} watched folders, "
        f"backend {config.backend})"
    )
    return 0
