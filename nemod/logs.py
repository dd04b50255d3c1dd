"""Logging setup: structlog, JSON lines for services, readable console on a terminal.

Log lines are an event name plus key-values (``log.info("job_started", job=…, file=…)``).
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

import structlog


def configure(
    level: str = "info", *, json: bool | None = None, stream: TextIO | None = None, host: str | None = None
) -> None:
    """Configure structlog once for the process.

    ``json`` None chooses by the stream: JSON lines when it is not a TTY (systemd,
    launchd, files), coloured key-values when it is. ``host`` (the config's ``host_id``)
    is added to every line, so the logs of several hosts can be read side by side.
    """
    stream = stream or sys.stderr
    if json is None:
        json = not stream.isatty()
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=stream.isatty())
    )
    def add_host(logger: object, method: str, event: structlog.typing.EventDict) -> structlog.typing.EventDict:
        if host is not None:
            event.setdefault("host", host)
        return event

    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            add_host,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper())),
        logger_factory=structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=False,
    )
