"""Which file system a folder lives on, and whether watching it needs polling.

inotify (watchdog's native observer on Linux) is silent for changes made by other
hosts on network file systems (NFS, SMB/CIFS) and for most FUSE mounts, so those get
watchdog's polling observer. The mount table is ``/proc/self/mountinfo``; parsing it is
pure, reading it is one function.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

MOUNTINFO = Path("/proc/self/mountinfo")

#: File systems where change notifications cannot be trusted (prefix ``fuse`` too).
NETWORK_FS_TYPES = frozenset({
    "nfs", "nfs4", "cifs", "smb", "smb2", "smb3", "smbfs", "ncpfs", "afs", "9p", "ceph",
    "glusterfs", "lustre", "gpfs", "davfs", "coda", "sshfs", "beegfs", "ocfs2", "gfs2", "virtiofs",
})


@dataclass(frozen=True)
class Mount:
    """One mount: where it is mounted and its file-system type."""

    mount_point: str
    fs_type: str


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as ``\\ooo`` octal."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def parse_mountinfo(text: str) -> list[Mount]:
    """The mounts listed in a ``/proc/<pid>/mountinfo`` text (malformed lines skipped)."""
    mounts: list[Mount] = []
    for line in text.splitlines():
        before, separator, after = line.partition(" - ")
        fields = before.split()
        rest = after.split()
        if not separator or len(fields) < 5 or not rest:
            continue
        mounts.append(Mount(_unescape(fields[4]), rest[0]))
    return mounts


def mount_of(path: str, mounts: Sequence[Mount]) -> Mount | None:
    """The mount holding absolute ``path`` (the longest mount point that contains it;
    the last such mount wins, as later mounts hide earlier ones)."""
    best: Mount | None = None
    for mount in mounts:
        point = mount.mount_point.rstrip("/") or "/"
        inside = path == point or path.startswith(point + "/") or point == "/"
        if inside and (best is None or len(point) >= len(best.mount_point.rstrip("/") or "/")):
            best = mount
    return best


def is_network(fs_type: str) -> bool:
    """True for network and FUSE file systems (inotify cannot see other hosts' writes)."""
    return fs_type in NETWORK_FS_TYPES or fs_type.startswith("fuse") or fs_type.startswith("nfs")


def needs_polling(setting: str | bool, fs_type: str | None) -> bool:
    """The observer choice: ``polling: true/false`` wins; ``auto`` polls on network/FUSE
    mounts and when the file system is unknown to be local (``fs_type`` None: native)."""
    if setting is True or setting is False:
        return setting
    return fs_type is not None and is_network(fs_type)


def fs_type_of(path: Path, mountinfo: Path = MOUNTINFO) -> str | None:
    """The file-system type of ``path`` from the mount table, or None when unknown."""
    try:
        text = mountinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    mount = mount_of(os.path.realpath(path), parse_mountinfo(text))
    return mount.fs_type if mount else None
