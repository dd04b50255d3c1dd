"""``nemod run``: the watch-folder daemon, in the foreground (systemd, launchd, Docker).

SIGTERM/SIGINT stop it gracefully (exit 0); SIGHUP reloads the config, keeping the
old one when the new one is invalid.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import structlog

from nemod.app import build_backend, build_store
from nemod.commands import add_config_option, load_config
from nemod.config import Config
from nemod.daemon import Daemon
from nemod.daemon.identity import make_owner
from nemod.errors import StoreUnavailableError
from nemod.logs import configure
from nemod.malloc import limit_arenas
from nemod.service.runtime import build_runtime
from nemod.store.base import JobStore
from nemod.web.data import status_source
from nemod.web.server import DashboardServer


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the subcommand."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "run", help="watch the configured folders and process new files (the daemon)"
    )
    add_config_option(parser)
    return parser


def _open_store(config: Config, sleep: Callable[[float], None] = time.sleep) -> JobStore:
    """The config's store; while its database cannot be reached (a host started before
    PostgreSQL), wait and try again with backoff (up to 30 s apart) instead of exiting."""
    log = structlog.get_logger("nemod.daemon")
    delay = 1.0
    while True:
        try:
            return build_store(config)
        except StoreUnavailableError as exc:
            log.warning("store_unavailable", store=config.store_name, error=str(exc), retry_in=delay)
            sleep(delay)
            delay = min(delay * 2, 30.0)


def run(args: argparse.Namespace) -> int:
    """Run the daemon until stopped; exit 0 after a graceful stop."""
    config = load_config(args)
    configure(config.log_level, host=config.host_id)
    limit_arenas()  # before any daemon thread starts: keeps RSS flat over long runs
    store = _open_store(config)
    # sd_notify, beacon, notifications, status_port (reading the store as `nemod status` does)
    runtime = build_runtime(config, open_store=lambda: build_store(config, read_only=True))
    if config.status_port is not None and runtime.server is not None:
        # The dashboard replaces the read-only page; it refuses a non-loopback bind without
        # status_auth (ConfigError, exit 2) even if the config check was bypassed.
        runtime.server = DashboardServer(
            config, status_source(config, lambda: build_store(config, read_only=True)),
            port=config.status_port, health=runtime.health)
    try:
        daemon = Daemon(
            config, store, build_backend(config),
            config_loader=lambda: load_config(args), backend_factory=build_backend,
            events=runtime.on_event, service=runtime, owner=make_owner(config.host_id),
        )
        return daemon.run_forever()
    finally:
        store.close()
