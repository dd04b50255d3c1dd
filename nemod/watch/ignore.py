"""Which files in a watched folder are never jobs. Pure.

Ignored by default: hidden files and folders (``.*``: also covers ``.DS_Store``,
``._*`` AppleDouble files, rsync's ``.name.XXXXXX`` temporaries, Syncthing's
``.syncthing.*.tmp``), partial downloads (``*.part``, ``*.crdownload``, ``*.tmp``,
``*.partial``, ``*.download``), Office lock files (``~$*``), Syncthing's
``~syncthing~*``, nemod's own ``*.error.txt`` and ``*.log.json`` notes, and anything inside nemod's own output, done and failed folders.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence
from pathlib import PurePosixPath

DEFAULT_IGNORE = (
    ".*", "*.part", "*.crdownload", "*.tmp", "*.partial", "*.download", "~$*", "~syncthing~*",
    "*.!sync", "Thumbs.db", "desktop.ini", "*.error.txt", "*.log.json",
)


def is_ignored(
    relative: str, patterns: Sequence[str] = (), excluded_dirs: Iterable[str] = ()
) -> bool:
    """True when the file at ``relative`` (to the watch root, ``/``-separated) is not a job.

    A pattern without ``/`` is matched against every path component (so ``.*`` ignores
    files inside hidden folders too); one with ``/`` against the whole relative path.
    ``excluded_dirs`` are relative folders (output, done, failed inside the watch root).
    """
    path = PurePosixPath(relative)
    for folder in excluded_dirs:
        prefix = folder.rstrip("/") + "/"
        if folder in ("", ".") or relative == folder or relative.startswith(prefix):
            return True
    parts = path.parts
    for pattern in (*DEFAULT_IGNORE, *patterns):
        if "/" in pattern:
            if fnmatch.fnmatchcase(relative, pattern):
                return True
        elif any(fnmatch.fnmatchcase(part, pattern) for part in parts):
            return True
    return False
