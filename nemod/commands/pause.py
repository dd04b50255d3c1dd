"""``nemod pause FOLDER`` / ``nemod resume FOLDER``: stop or restart starting jobs from a
watch folder. Its files are still detected and queued; they wait (``waiting: paused``)
until it is resumed. The pause is kept in ``state_dir/paused.json`` (it survives
restarts) and the running daemon reads it before each job.
"""

from __future__ import annotations

import argparse
from typing import Any

from nemod.actions import set_paused
from nemod.commands import add_config_option, load_config


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the subcommand."""
    parser: argparse.ArgumentParser = subparsers.add_parser("pause", help="stop starting jobs from a watch folder")
    add_config_option(parser)
    parser.add_argument("folder", help="the folder's id: or its path")
    return parser




def run(args: argparse.Namespace) -> int:
    """Pause the folder; exit 1 when it is not configured."""
    print(set_paused(load_config(args, check_folders=False), args.folder, paused=True))
    return 0
