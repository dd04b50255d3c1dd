"""A clock the test moves by hand, for stores, leases, tokens and schedules."""

from __future__ import annotations


class ManualClock:
    """Callable returning ``now`` (seconds since the epoch); ``advance`` moves it."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
