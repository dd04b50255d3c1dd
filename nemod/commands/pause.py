"""``nemod pause FOLDER`` / ``nemod resume FOLDER``: stop or restart starting jobs from a
watch folder. Its files are still detected and queued; they wait (``waiting: paused``)
until it is resumed. The pause is kept in ``state_dir/paused.json`` (it survives
restarts) and the running daemon reads it before each job.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from nemod.commands import add_config_option, load_config
from nemod.config import Config
from nemod.daemon.pauses import PausedFolders
from nemod.errors import NemodError


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the subcommand."""
    parser: argparse.ArgumentParser = subparsers.add_parser("pause", help="stop starting jobs from a watch folder")
    add_config_option(parser)
    parser.add_argument("folder", help="the folder's id: or its path")
    return parser


def set_paused(config: Config, folder: str, *, paused: bool) -> str:
    """Pause or resume the watch folder named ``folder`` (its ``id:``, its key in the store
    or its path); returns a sentence for the person. Raises NemodError for an unknown folder."""
    watch = config.watch_for(folder)
    if watch is None:
        wanted = Path(folder).expanduser().resolve()
        watch = next((w for w in config.watches if w.path == wanted), None)
    if watch is None:
        raise NemodError(f"no watch folder {folder!r} in the configuration")
    PausedFolders.for_state_dir(config.state_dir).set(watch.key, paused=paused)
    if paused:
        return f"{watch.key} is paused: its files are still queued but not started"
    return f"{watch.key} is resumed"


def run(args: argparse.Namespace) -> int:
    """Pause the folder; exit 1 when it is not configured."""
    print(set_paused(load_config(args, check_folders=False), args.folder, paused=True))
    return 0
