"""Which files some process has open for writing (Linux ``/proc``; elsewhere: unknown).

Only processes we may inspect are seen (our own user's, or all as root); a file
written from another host over a network share cannot be seen at all — the settle
time covers those.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

PROC = Path("/proc")
_WRITE_MODES = (os.O_WRONLY, os.O_RDWR)


def open_for_writing(paths: Iterable[Path], proc: Path = PROC) -> set[Path]:
    """The subset of ``paths`` (absolute) that a visible process holds open for writing."""
    wanted = {os.path.realpath(p): Path(p) for p in paths}
    found: set[Path] = set()
    if not wanted or not proc.is_dir():
        return found
    try:
        # os.listdir/readlink on plain strings: thousands of entries, Path objects cost.
        pids = [entry for entry in os.listdir(proc) if entry.isdigit()]  # noqa: PTH208
    except OSError:
        return found
    for pid in pids:
        fd_dir = proc / pid / "fd"
        try:
            fds = os.listdir(fd_dir)  # noqa: PTH208
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(fd_dir / fd)  # noqa: PTH115
            except OSError:
                continue
            if target not in wanted:
                continue
            try:
                info = (proc / pid / "fdinfo" / fd).read_text()
            except OSError:
                continue
            for line in info.splitlines():
                if line.startswith("flags:"):
                    flags = int(line.split()[1], 8)
                    if flags & os.O_ACCMODE in _WRITE_MODES:
                        found.add(wanted[target])
    return found
