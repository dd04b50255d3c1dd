"""The daemon's timing knobs and its retry backoff."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DaemonOptions:
    """Timing knobs (seconds). Defaults suit a service; tests shorten them."""

    lease_seconds: float = 120.0
    heartbeat_seconds: float = 15.0
    stop_timeout: float = 30.0
    cancel_timeout: float = 15.0
    tick_seconds: float = 0.25
    retry_base_seconds: float = 30.0
    retry_max_seconds: float = 3600.0
    waiting_default_seconds: float = 300.0
    unreachable_retry_seconds: float = 60.0
    #: how long a job of a paused folder waits before it is looked at again
    paused_retry_seconds: float = 10.0
    check_open_files: bool = True


def backoff(attempt: int, base: float, maximum: float) -> float:
    """Seconds before retry number ``attempt`` (1, 2, …): ``base · 2^(attempt-1)``, capped."""
    return float(min(maximum, base * 2 ** max(attempt - 1, 0)))
