"""``nemod resume FOLDER``: start jobs from a paused watch folder again (see ``nemod pause``)."""

from __future__ import annotations

import argparse
from typing import Any

from nemod.actions import set_paused
from nemod.commands import add_config_option, load_config


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the subcommand."""
    parser: argparse.ArgumentParser = subparsers.add_parser("resume", help="start jobs from a paused watch folder")
    add_config_option(parser)
    parser.add_argument("folder", help="the folder's id: or its path")
    return parser


def run(args: argparse.Namespace) -> int:
    """Resume the folder; exit 1 when it is not configured."""
    print(set_paused(load_config(args, check_folders=False), args.folder, paused=False))
    return 0
