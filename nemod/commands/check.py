"""``nemod check``: validate the config and every rule; print all problems at once."""

from __future__ import annotations

import argparse
from typing import Any

from nemod.commands import add_config_option, load_config
from nemod.engine.preflight import engine_problems
from nemod.errors import ConfigError


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the subcommand."""
    parser: argparse.ArgumentParser = subparsers.add_parser("check", help="validate config and rules")
    add_config_option(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    """Exit 0 when valid; ConfigError (exit 2, all problems listed) otherwise — including what
    only this machine lacks for the rules (the multilingual model, a CJK font)."""
    config = load_config(args)
    problems = engine_problems(config)
    if problems:
        raise ConfigError(problems)
    print(
        f"{config.path}: OK ({len(config.rules)} rules, {len(config.watches)} watched folders, "
        f"backend {config.backend})"
    )
    return 0
