"""Who owns a lease: this process's name, and whether another owner on this host is dead."""

from __future__ import annotations

import os
import secrets
import socket
from pathlib import Path


def _process_start(pid: int) -> str | None:
    """The start time of ``pid`` in clock ticks since boot (Linux), or None; zombies: None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    if len(fields) < 20 or fields[0] in ("Z", "X"):
        return None
    return fields[19]


def make_owner(host_id: str | None = None) -> str:
    """This process's lease-owner name: ``host:pid:start`` (start time, or a random tag).

    ``host`` is the config's ``host_id`` (default: the machine's host name). Hosts that
    share a store must have distinct ids: a process judges the leases of its own host id
    by pid (:func:`owner_is_dead`)."""
    pid = os.getpid()
    return f"{host_id or socket.gethostname()}:{pid}:{_process_start(pid) or secrets.token_hex(4)}"


def owner_is_dead(owner: str | None, me: str) -> bool:
    """True when ``owner`` is a process of this host that no longer runs (so its leases can
    be taken at once). Other hosts' owners are never judged: their leases expire."""
    if not owner or owner == me:
        return False
    try:
        host, pid_text, tag = owner.rsplit(":", 2)
        pid = int(pid_text)
    except ValueError:
        return False
    my_host, my_pid, _ = me.rsplit(":", 2)
    if host != my_host:
        return False
    if pid == int(my_pid):
        return True  # same pid, different tag: an earlier process that had our pid
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass
    start = _process_start(pid)
    if start is None:
        # Where /proc exists, an unreadable stat means gone or a zombie; elsewhere: unknown.
        return Path("/proc/self/stat").exists()
    return tag.isdigit() and start != tag  # a different process now has that pid
