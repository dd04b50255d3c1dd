"""``nemod status``: is the daemon up, and what is it doing?

Reads the job store in ``state_dir`` read-only and the daemon's beacon
(``state_dir/daemon.json``); it never talks to the daemon, so it works while the
daemon is stopped or hung. Shows per-folder counts, the running job with its step and
progress, the queue, recent failures with their one-line reasons and the last known
cloud credits: as tables on a terminal, JSON with ``--json``.

Exit status: 0 when the daemon is running, 3 when it is not (like ``systemctl status``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from nemod.app import build_store
from nemod.commands import add_config_option, load_config
from nemod.schedule import local_zone
from nemod.service.status import render_text, to_json
from nemod.service.storeview import StoreStatusSource

EXIT_RUNNING, EXIT_NOT_RUNNING = 0, 3


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the subcommand."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "status", help="show whether the daemon runs and what it is doing",
        description="Show the daemon's state, per-folder counts, the running job, the queue, "
        "recent failures and credits. Exit status 0 when the daemon runs, 3 when not.",
    )
    add_config_option(parser)
    parser.add_argument("--json", action="store_true", help="print JSON (for scripts)")
    parser.add_argument(
        "--limit", type=int, default=10, metavar="N", help="queue and failure rows shown (10)"
    )
    return parser


def run(args: argparse.Namespace) -> int:
    """Print the status; returns 0 when the daemon runs, 3 when it does not."""
    config = load_config(args, check_folders=False)
    source = StoreStatusSource.for_state_dir(
        config.state_dir, folders=[watch.key for watch in config.watches],
        open_store=lambda: build_store(config, read_only=True), host_id=config.host_id,
        store_name=config.store_name,
    )
    snapshot = source.snapshot(time.time())
    if args.json:
        json.dump(to_json(snapshot), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(render_text(snapshot, zone=local_zone(), limit=args.limit))
    return EXIT_RUNNING if snapshot.daemon.up else EXIT_NOT_RUNNING
