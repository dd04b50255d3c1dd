"""Fault injection for ``nemod serve`` (off by default). Pure bookkeeping, thread-safe.

A fault is armed with a count (how many times it fires; -1: until cleared) and an
optional path prefix (it fires only on requests whose path starts with it).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass

#: Every fault ``nemod serve`` can inject, with what it does.
FAULTS: Mapping[str, str] = {
    "expire_token": "the next authenticated request finds its token expired (code 1001)",
    "forget_session": "the next session request finds the session gone (code 1002)",
    "no_credits": "the account has no credits (balance 0, run_sse answers code 2001)",
    "http_429": "answer HTTP 429 (rate limited)",
    "http_5xx": "answer HTTP 503",
    "drop_sse": "break the /run_sse connection mid-edit (the edit still completes)",
    "no_text": "close the /run_sse stream without any text (the edit still completes)",
    "fail_render": "the render ends as failed",
    "slow_heartbeats": "send /run_sse heartbeats at the slow interval",
    "bad_output_url": "a completed render's output.url answers 404 (the fallback works)",
    "second_stage": "after an edit, change the timeline again a moment later (BGM/title stage)",
}


@dataclass
class _Armed:
    count: int
    path: str


class Faults:
    """The armed faults. ``initial`` maps fault names to counts (from the command line)."""

    def __init__(self, initial: Mapping[str, int] | None = None) -> None:
        self._lock = threading.Lock()
        self._armed: dict[str, _Armed] = {}
        self.fired: dict[str, int] = {}
        for name, count in (initial or {}).items():
            self.arm(name, count)

    def arm(self, name: str, count: int = 1, path: str = "") -> None:
        """Arm ``name`` for ``count`` requests (-1: until cleared); raises ValueError
        for an unknown fault."""
        if name not in FAULTS:
            raise ValueError(f"unknown fault {name!r} (known: {', '.join(FAULTS)})")
        with self._lock:
            if count == 0:
                self._armed.pop(name, None)
            else:
                self._armed[name] = _Armed(count, path)

    def clear(self) -> None:
        """Disarm every fault."""
        with self._lock:
            self._armed.clear()

    def active(self, name: str) -> bool:
        """True while ``name`` is armed (does not consume it)."""
        with self._lock:
            return name in self._armed

    def take(self, name: str, path: str = "") -> bool:
        """Consume one firing of ``name`` for a request to ``path``; True when it fires."""
        with self._lock:
            armed = self._armed.get(name)
            if armed is None or not path.startswith(armed.path):
                return False
            if armed.count > 0:
                armed.count -= 1
                if armed.count == 0:
                    del self._armed[name]
            self.fired[name] = self.fired.get(name, 0) + 1
            return True

    def snapshot(self) -> dict[str, dict[str, object]]:
        """The armed faults and how often each has fired."""
        with self._lock:
            return {
                "armed": {name: {"count": a.count, "path": a.path} for name, a in self._armed.items()},
                "fired": dict(self.fired),
            }
