"""Deciding when a file is finished. Pure: the clock is the ``now`` passed in.

A file is settled once its signature (size, mtime) has been observed unchanged for
``settle_seconds``. Any change restarts the wait, so a file that is still growing
is never reported.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

Key = TypeVar("Key", bound=Hashable)
Signature = tuple[int, float]


@dataclass
class _Pending:
    signature: Signature
    since: float


class SettleTracker(Generic[Key]):
    """Files waiting to settle, keyed by anything hashable (e.g. a relative path)."""

    def __init__(self, settle_seconds: float) -> None:
        self.settle_seconds = settle_seconds
        self._pending: dict[Key, _Pending] = {}

    def __len__(self) -> int:
        return len(self._pending)

    def __contains__(self, key: object) -> bool:
        return key in self._pending

    def pending(self) -> list[Key]:
        """The keys still waiting, in arrival order."""
        return list(self._pending)

    def observe(self, key: Key, signature: Signature | None, now: float) -> bool:
        """Record what ``key`` looks like at ``now``; True when it is settled (and then it
        is no longer pending). ``signature`` None means the file is gone: forgotten."""
        if signature is None:
            self._pending.pop(key, None)
            return False
        entry = self._pending.get(key)
        if entry is None or entry.signature != signature:
            self._pending[key] = _Pending(signature, now)
            return self.settle_seconds <= 0
        if now - entry.since >= self.settle_seconds:
            del self._pending[key]
            return True
        return False

    def postpone(self, key: Key, signature: Signature, now: float) -> None:
        """Start the wait for ``key`` again (e.g. it is still open for writing)."""
        self._pending[key] = _Pending(signature, now)

    def forget(self, key: Key) -> None:
        """Stop tracking ``key``."""
        self._pending.pop(key, None)

    def next_due(self) -> float | None:
        """The earliest time a pending file could settle, or None when nothing is pending."""
        if not self._pending:
            return None
        return min(entry.since for entry in self._pending.values()) + self.settle_seconds
