"""Running the daemon until it is stopped: signals (SIGTERM/SIGINT stop it, SIGHUP reloads
the config), the periodic rescan and pruning (APScheduler), the service hooks around
the loop, and sleeping on the daemon's wakeup between :meth:`Daemon.run_once` calls."""

from __future__ import annotations

import signal
from datetime import UTC, datetime
from types import FrameType
from typing import TYPE_CHECKING

from apscheduler.schedulers.background import BackgroundScheduler

if TYPE_CHECKING:
    from nemod.daemon.core import Daemon
    from nemod.service.runtime import ServiceHooks


def run_forever(daemon: Daemon, service: ServiceHooks | None, *, install_signals: bool = True) -> int:
    """Run ``daemon`` until SIGTERM/SIGINT (or :meth:`Daemon.request_stop`), then stop it
    gracefully, calling ``service``'s hooks as it starts, after each iteration and as it stops.

    SIGHUP reloads the config (a bad one is reported and the old one kept). A
    BackgroundScheduler requests a full rescan every ``rescan_seconds``. Returns 0.
    """
    if install_signals:
        _install_signals(daemon)
    daemon.start()
    scheduler = BackgroundScheduler(daemon=True)
    scheduler.add_job(
        daemon.request_rescan, "interval", seconds=daemon.config.rescan_seconds, id="rescan",
        max_instances=1, coalesce=True,
    )
    scheduler.add_job(
        daemon.prune, "interval", days=1, id="prune", max_instances=1, coalesce=True,
        next_run_time=datetime.now(UTC),
    )
    scheduler.start()
    if service is not None:
        service.started(daemon)  # READY=1, beacon, status endpoint
    try:
        while not daemon.stopping:
            daemon.wakeup.clear()
            daemon.run_once(daemon.clock())
            if service is not None:
                service.tick(daemon)  # WATCHDOG=1, STATUS=, beacon
            daemon.wakeup.wait(daemon.options.tick_seconds)
    finally:
        if service is not None:
            service.stopping(daemon)  # STOPPING=1
        scheduler.shutdown(wait=True)
        daemon.stop()
        if service is not None:
            service.stopped()
    return 0


def _install_signals(daemon: Daemon) -> None:
    def on_stop(signum: int, frame: FrameType | None) -> None:
        daemon.request_stop()

    def on_hup(signum: int, frame: FrameType | None) -> None:
        daemon.request_reload()

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, on_hup)
