"""The daemon's beacon: ``<state_dir>/daemon.json``, how ``nemod status`` knows it is alive.

The running daemon rewrites the file (atomically: temp file + rename) from its main
loop, at most every ``every`` seconds, with its pid, host, start time, last
heartbeat, health checks, the ``STATUS`` line and the last known cloud credits. On a
clean stop it writes ``stopped_at``.

A reader calls the daemon *up* when the beacon exists, was not stopped, its
heartbeat is fresh (younger than three beats, and at least 30 s) and, when it was
written on this host, its pid is alive.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from nemod import __version__

log = structlog.get_logger(__name__)

BEACON_NAME = "daemon.json"


def beacon_path(state_dir: Path) -> Path:
    """Where the beacon of the daemon using ``state_dir`` lives."""
    return state_dir / BEACON_NAME


class DaemonBeacon:
    """Writes the beacon for the running daemon (pass one to the daemon; no globals).

    ``every`` is the heartbeat pace in seconds: :meth:`beat` only writes when that much
    time passed (or ``force``). Write errors are logged once and otherwise ignored.
    """

    def __init__(
        self, path: Path, *, started_at: float, every: float = 10.0,
        status_port: int | None = None, pid: int | None = None, host: str | None = None,
    ) -> None:
        self.path = path
        self.every = every
        self._base: dict[str, Any] = {
            "pid": pid if pid is not None else os.getpid(),
            "host": host or socket.gethostname(),
            "version": __version__,
            "started_at": started_at,
            "heartbeat_every": every,
            "status_port": status_port,
        }
        self._last: float | None = None
        self._warned = False
        self._extra: dict[str, Any] = {}

    def update(self, **fields: Any) -> None:
        """Remember fields for the next write: ``health={…}``, ``status="…"``,
        ``credits={"balance": 12, "minimum": 50, "checked_at": t}``."""
        self._extra.update(fields)

    def beat(self, now: float, *, force: bool = False) -> bool:
        """Write the beacon if ``every`` seconds passed since the last write (wall-clock
        ``now``, seconds since the epoch); returns True when written."""
        if not force and self._last is not None and now - self._last < self.every:
            return False
        self._last = now
        return self._write({**self._base, **self._extra, "heartbeat_at": now})

    def stopped(self, now: float) -> bool:
        """Record a clean stop (``nemod status`` then says "stopped", not "crashed")."""
        return self._write({**self._base, **self._extra, "heartbeat_at": now, "stopped_at": now})

    def _write(self, data: Mapping[str, Any]) -> bool:
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temporary.write_text(json.dumps(data, sort_keys=True), encoding="utf-8")
            temporary.replace(self.path)
        except OSError as exc:
            if not self._warned:
                log.warning("beacon_write_failed", path=str(self.path), error=str(exc))
                self._warned = True
            with contextlib.suppress(OSError):
                temporary.unlink()
            return False
        return True


def read_beacon(path: Path) -> dict[str, Any] | None:
    """The beacon's content, or None when it is missing or unreadable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def pid_alive(pid: int) -> bool:
    """True when a process with this pid exists (also when it belongs to another user)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


@dataclass(frozen=True)
class DaemonState:
    """What the beacon says about the daemon: ``up`` and one line of ``detail``."""

    up: bool
    detail: str
    pid: int | None = None
    host: str | None = None
    version: str | None = None
    started_at: float | None = None
    heartbeat_at: float | None = None
    status: str | None = None
    status_port: int | None = None
    health: Mapping[str, bool] = field(default_factory=dict)
    credits: Mapping[str, Any] | None = None


def daemon_state(
    beacon: Mapping[str, Any] | None, now: float, *,
    host: str | None = None, alive: Any = pid_alive,
) -> DaemonState:
    """Judge a beacon (see the module docstring) at wall-clock ``now``.

    ``host`` is this machine's name (default: :func:`socket.gethostname`); ``alive`` the
    pid check (tests pass a fake).
    """
    if beacon is None:
        return DaemonState(False, "not running (no daemon has used this state folder)")
    host = host or socket.gethostname()
    pid = beacon.get("pid")
    heartbeat = float(beacon.get("heartbeat_at") or 0.0)
    every = float(beacon.get("heartbeat_every") or 10.0)
    common: dict[str, Any] = {
        "pid": pid, "host": beacon.get("host"), "version": beacon.get("version"),
        "started_at": beacon.get("started_at"), "heartbeat_at": heartbeat,
        "status": beacon.get("status"), "status_port": beacon.get("status_port"),
        "health": dict(beacon.get("health") or {}), "credits": beacon.get("credits"),
    }
    age = now - heartbeat
    if beacon.get("stopped_at"):
        return DaemonState(False, f"stopped {_ago(now - float(beacon['stopped_at']))}", **common)
    same_host = beacon.get("host") == host
    if same_host and isinstance(pid, int) and not alive(pid):
        detail = f"not running (pid {pid} is gone; last heartbeat {_ago(age)})"
        return DaemonState(False, detail, **common)
    if age > max(3 * every, 30.0):
        return DaemonState(False, f"not responding (last heartbeat {_ago(age)})", **common)
    where = "" if same_host else f" on {beacon.get('host')}"
    return DaemonState(True, f"running (pid {pid}{where}, heartbeat {_ago(age)})", **common)


def _ago(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f}s ago"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min ago"
    if seconds < 36 * 3600:
        return f"{seconds / 3600:.1f} h ago"
    return f"{seconds / 86400:.1f} days ago"
