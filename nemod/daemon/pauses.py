"""Paused watch folders: a small JSON record in ``state_dir`` (``paused.json``).

The dashboard writes it; the daemon reads it before starting each job, so a paused folder's files are still
detected and queued but wait (``waiting: paused``) until the folder is resumed. Being a
file, the pause survives a restart and is seen by every process using the state dir.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from pathlib import Path

#: The record's file name inside ``state_dir``.
PAUSES_NAME = "paused.json"

_LOCK = threading.Lock()  # one writer at a time within a process (the file is replaced atomically)


class PausedFolders:
    """The set of paused folder keys (as the job store names folders) kept at ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def for_state_dir(cls, state_dir: Path) -> PausedFolders:
        """The record of the daemon using ``state_dir``."""
        return cls(state_dir / PAUSES_NAME)

    def paused(self) -> frozenset[str]:
        """The paused folder keys (empty when the record is missing or unreadable)."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return frozenset()
        folders = data.get("paused") if isinstance(data, dict) else None
        return frozenset(str(f) for f in folders) if isinstance(folders, list) else frozenset()

    def set(self, folder: str, *, paused: bool) -> None:
        """Pause (``paused=True``) or resume ``folder``; raises OSError when unwritable."""
        with _LOCK:
            folders = set(self.paused())
            if paused:
                folders.add(folder)
            else:
                folders.discard(folder)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle, name = tempfile.mkstemp(dir=self.path.parent, prefix=".paused-", suffix=".tmp")
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                json.dump({"paused": sorted(folders)}, out)
            Path(name).replace(self.path)
