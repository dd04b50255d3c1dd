"""systemd's readiness protocol (``sd_notify``) without libsystemd.

When systemd starts nemod with ``Type=notify`` it sets ``$NOTIFY_SOCKET`` to the path
of a datagram socket (``@name`` for an abstract-namespace socket). nemod sends
newline-separated ``KEY=value`` assignments there:

* ``READY=1`` once the store is open and the watchers run (``systemctl start`` returns),
* ``STATUS=…`` a one-line summary shown by ``systemctl status nemod``,
* ``WATCHDOG=1`` keep-alives from the main loop, at least every half of
  ``$WATCHDOG_USEC``, so systemd restarts a hung daemon,
* ``RELOADING=1`` / ``READY=1`` around a SIGHUP reload, ``STOPPING=1`` on shutdown.

Without ``$NOTIFY_SOCKET`` (a terminal, launchd, tests) every call is a no-op.
A failed send is logged once and otherwise ignored: the service manager's
bookkeeping must never take the daemon down.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping

import structlog

log = structlog.get_logger(__name__)


def socket_address(value: str) -> str | bytes | None:
    """The ``connect``-able address for a ``$NOTIFY_SOCKET`` value.

    ``/run/systemd/notify`` → the path; ``@name`` → ``b"\\0name"`` (abstract namespace,
    Linux only); an empty value → None. Other schemes (``vsock:``) → None: not supported.
    """
    if not value:
        return None
    if value.startswith("@"):
        return b"\0" + value[1:].encode()
    if value.startswith("/"):
        return value
    return None


def watchdog_interval(env: Mapping[str, str], pid: int | None = None) -> float | None:
    """Seconds between keep-alives systemd expects, from ``$WATCHDOG_USEC``/``$WATCHDOG_PID``.

    Returns half the configured watchdog timeout (systemd's own advice), or None when
    the watchdog is off or meant for another process (``$WATCHDOG_PID`` names another pid).
    """
    usec = env.get("WATCHDOG_USEC", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    watchdog_pid = env.get("WATCHDOG_PID", "")
    if watchdog_pid.isdigit() and int(watchdog_pid) != (pid if pid is not None else os.getpid()):
        return None
    return int(usec) / 1_000_000 / 2


class SdNotifier:
    """Sends sd_notify messages to ``address`` (see :func:`socket_address`); None: no-op.

    ``keepalive_every`` is the watchdog pace in seconds (None: send ``WATCHDOG=1`` only
    when asked with :meth:`watchdog`). Build one with :meth:`from_environment`.
    """

    def __init__(self, address: str | bytes | None, keepalive_every: float | None = None) -> None:
        self.address = address
        self.keepalive_every = keepalive_every
        self._socket: socket.socket | None = None
        self._last_keepalive: float | None = None
        self._last_status: str | None = None
        self._warned = False

    @classmethod
    def from_environment(cls, env: Mapping[str, str] | None = None) -> SdNotifier:
        """A notifier for ``$NOTIFY_SOCKET`` (and the watchdog pace from ``$WATCHDOG_USEC``)."""
        env = os.environ if env is None else env
        return cls(socket_address(env.get("NOTIFY_SOCKET", "")), watchdog_interval(env))

    @property
    def enabled(self) -> bool:
        """True when messages go somewhere."""
        return self.address is not None

    def send(self, **fields: str | int) -> bool:
        """Send one message of ``KEY=value`` lines (``send(READY=1, STATUS="…")``).

        Returns True when the datagram was sent, False when disabled or on error.
        Newlines in values are replaced by spaces (one assignment per line).
        """
        if self.address is None:
            return False
        message = "\n".join(
            f"{key}={str(value).replace(chr(10), ' ')}" for key, value in fields.items()
        )
        try:
            if self._socket is None:
                self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._socket.sendto(message.encode(), self.address)
        except OSError as exc:
            if not self._warned:
                log.warning("sd_notify_failed", error=str(exc), address=repr(self.address))
                self._warned = True
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        """``READY=1`` (with an optional ``STATUS=``): startup or a reload is complete."""
        if status is None:
            return self.send(READY=1)
        self._last_status = status
        return self.send(READY=1, STATUS=status)

    def reloading(self, monotonic_usec: int | None = None) -> bool:
        """``RELOADING=1`` with ``MONOTONIC_USEC=`` (CLOCK_MONOTONIC in µs, default now): a
        SIGHUP reload started; follow it with :meth:`ready` when it is over."""
        usec = monotonic_usec
        if usec is None:
            usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.send(RELOADING=1, MONOTONIC_USEC=usec)

    def status(self, text: str) -> bool:
        """``STATUS=text``; unchanged text is not sent again (returns False then)."""
        if text == self._last_status:
            return False
        self._last_status = text
        return self.send(STATUS=text)

    def watchdog(self) -> bool:
        """``WATCHDOG=1`` now."""
        return self.send(WATCHDOG=1)

    def keepalive(self, now: float | None = None) -> bool:
        """Send ``WATCHDOG=1`` if ``keepalive_every`` seconds passed since the last one.

        Call it from every iteration of the main loop with a monotonic ``now``
        (default :func:`time.monotonic`); returns True when a keep-alive was sent.
        """
        if self.keepalive_every is None or self.address is None:
            return False
        now = time.monotonic() if now is None else now
        if self._last_keepalive is not None and now - self._last_keepalive < self.keepalive_every:
            return False
        self._last_keepalive = now
        return self.watchdog()

    def stopping(self, status: str = "stopping: finishing the running step") -> bool:
        """``STOPPING=1`` with a status line: shutdown began."""
        return self.send(STOPPING=1, STATUS=status)

    def close(self) -> None:
        """Close the socket (sending again reopens it)."""
        if self._socket is not None:
            self._socket.close()
            self._socket = None


def status_line(
    *, queued: int, running: tuple[str, ...] = (), waiting: int = 0, window: str | None = None
) -> str:
    """The one-line ``STATUS=`` text: ``"2 running (a.mp4 render 45%); 3 queued; 1 waiting"``.

    ``running`` holds one short description per running job; ``window`` explains
    why nothing starts (e.g. ``"outside processing window until 22:00"``).
    """
    parts: list[str] = []
    if running:
        parts.append(f"{len(running)} running ({', '.join(running)})")
    else:
        parts.append("idle")
    parts.append(f"{queued} queued")
    if waiting:
        parts.append(f"{waiting} waiting")
    if window:
        parts.append(window)
    return "; ".join(parts)
