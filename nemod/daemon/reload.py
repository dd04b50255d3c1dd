"""Reloading the config (SIGHUP): the new config and its backend, or the old ones kept when
the new config is bad (the problems are logged, the daemon goes on)."""

from __future__ import annotations

from collections.abc import Callable

import structlog

from nemod.backends.base import Backend
from nemod.config import Config
from nemod.errors import ConfigError


def load_new(loader: Callable[[], Config],
             backend_factory: Callable[[Config], Backend] | None) -> tuple[Config, Backend | None] | None:
    """``loader()``'s config and, when ``backend_factory`` is given, the backend it builds for
    it; None (after logging ``config_reload_failed`` with the problems) when either fails."""
    log = structlog.get_logger("nemod.daemon")
    try:
        config = loader()
    except ConfigError as exc:
        log.error("config_reload_failed", problems=[str(p) for p in exc.problems])  # noqa: TRY400 - the problems are the message
        return None
    except Exception as exc:  # noqa: BLE001 - whatever went wrong, the old config stays
        log.error("config_reload_failed", problems=[str(exc) or type(exc).__name__])  # noqa: TRY400 - the problems are the message
        return None
    if backend_factory is None:
        return config, None
    try:
        return config, backend_factory(config)
    except Exception as exc:  # noqa: BLE001 - as above
        log.error("config_reload_failed", problems=[str(exc) or type(exc).__name__])  # noqa: TRY400 - the problems are the message
        return None
