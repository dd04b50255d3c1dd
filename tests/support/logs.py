"""Capturing structlog events with the context a daemon attempt binds (job, file, rule)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import structlog


@contextmanager
def captured_logs() -> Iterator[list[dict[str, Any]]]:
    """Like :func:`structlog.testing.capture_logs`, but each event also carries the
    contextvars bound where it was logged (a worker thread's job, file and rule)."""
    capture = structlog.testing.LogCapture()
    previous = structlog.get_config()
    structlog.configure(processors=[structlog.contextvars.merge_contextvars, capture])
    try:
        yield capture.entries
    finally:
        structlog.configure(**previous)
