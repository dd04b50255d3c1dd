"""One module per ``nemod`` subcommand, each with ``add_parser(subparsers)`` and ``run(args)``."""

from __future__ import annotations

import argparse

from nemod import config as config_module


def add_config_option(parser: argparse.ArgumentParser) -> None:
    """Add the shared ``-c/--config`` option."""
    parser.add_argument(
        "-c", "--config", metavar="PATH", help="config file (default: $NEMOD_CONFIG, else ./nemod.yaml)"
    )


def load_config(args: argparse.Namespace, *, check_folders: bool = True) -> config_module.Config:
    """Load the config named by ``args.config`` (raises ConfigError)."""
    return config_module.load(config_module.default_config_path(args.config), check_folders=check_folders)
