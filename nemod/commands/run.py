"""``nemod run``: the watch-folder daemon, in the foreground (systemd, launchd, Docker).

SIGTERM/SIGINT stop it gracefully (exit 0); SIGHUP reloads the config, keeping the
old one when the new one is invalid.
"""

from __future__ import annotations

import argparse
from typing import Any

from nemod.app import build_backend
from nemod.commands import add_config_option, load_config
from nemod.daemon import Daemon
from nemod.logs import configure
from nemod.service.malloc import limit_arenas
from nemod.service.runtime import build_runtime
from nemod.store import open_store
from nemod.web.data import status_source
from nemod.web.server import DashboardServer


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the subcommand."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "run", help="watch the configured folders and process new files (the daemon)"
    )
    add_config_option(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    """Run the daemon until stopped; exit 0 after a graceful stop."""
    config = load_config(args)
    configure(config.log_level)
    limit_arenas()  # before any daemon thread starts: keeps RSS flat over long runs
    store = open_store(config.state_dir)
    runtime = build_runtime(config)  # sd_notify, beacon, notifications, status_port
    if config.status_port is not None and runtime.server is not None:
        # The dashboard replaces the read-only page; it refuses a non-loopback bind without
        # status_auth (ConfigError, exit 2) even if the config check was bypassed.
        runtime.server = DashboardServer(config, status_source(config), port=config.status_port,
                                         health=runtime.health)
    try:
        daemon = Daemon(
            config, store, build_backend(config),
            config_loader=lambda: load_config(args), backend_factory=build_backend,
            events=runtime.on_event, service=runtime,
        )
        return daemon.run_forever()
    finally:
        store.close()
