"""Logging setup: structlog, JSON lines for services, readable console on a terminal.

Log lines are an event name plus key-values (``log.info("job_started", job=…, file=…)``).
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

import structlog


def configure(level: str = "info", *, json: bool | None = None, stream: TextIO | None = None) -> None:
    """Configure structlog once for the process.

    ``json`` None chooses by the stream: JSON lines when it is not a TTY (systemd,
    launchd, files), coloured key-values when it is.
    """
    stream = stream or sys.stderr
    if json is None:
        json = not stream.isatty()
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=stream.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper())),
        logger_factory=structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=False,
    )
